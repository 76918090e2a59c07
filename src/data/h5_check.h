// ABM_H5_CHECK: every HDF5 call of the data room goes through it (docs/design.md §10). A negative
// result throws abm::Error "file:line [rank@host] CALL failed: <HDF5's messages>". Usable
// as an expression: hid_t f = ABM_H5_CHECK(H5Fopen(...));
// H5Quiet silences HDF5's own stderr dump while our checks report instead (restored on
// scope exit, so other users of HDF5 keep their settings).
// (Generic enough for core/; it lives here because the data room owns only src/data.)
#pragma once
#include <hdf5.h>

#include <string>

#include "core/check.h"

namespace abm {

// Top (API) and innermost (cause) descriptions of HDF5's current error stack, then clears it.
inline std::string h5_error_string() {
  struct Acc {
    std::string first, last;
  } acc;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* d) -> herr_t {
        auto* a = static_cast<Acc*>(d);
        std::string desc = e && e->desc ? e->desc : "";
        if (a->first.empty()) a->first = desc;
        a->last = desc;
        return 0;
      },
      &acc);
  H5Eclear2(H5E_DEFAULT);
  if (acc.first.empty()) return "no HDF5 error message";
  return acc.first == acc.last ? acc.first : acc.first + ": " + acc.last;
}

class H5Quiet {
 public:
  H5Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~H5Quiet() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  H5Quiet(const H5Quiet&) = delete;
  H5Quiet& operator=(const H5Quiet&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// An HDF5 id closed by `close` at scope exit.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  operator hid_t() const { return id_; }
  hid_t release() {  // for a checked explicit close: ABM_H5_CHECK(H5Fclose(f.release()))
    hid_t id = id_;
    id_ = -1;
    return id;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace abm

#define ABM_H5_CHECK(call)                                                                 \
  ([&]() {                                                                                 \
    auto r_ = (call);                                                                      \
    if (r_ < 0)                                                                            \
      ::abm::throw_check(__FILE__, __LINE__,                                               \
                         ::abm::cat(#call " failed: ", ::abm::h5_error_string()));         \
    return r_;                                                                             \
  }())

namespace abm {

// A fixed-length string attribute, the kind the checkpoint and the token cache both write.
inline std::string h5_read_str_attr(hid_t obj, const char* name) {
  H5Id a(ABM_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  H5Id type(ABM_H5_CHECK(H5Aget_type(a)), H5Tclose);
  ABM_CHECK(ABM_H5_CHECK(H5Tget_class(type)) == H5T_STRING &&
                ABM_H5_CHECK(H5Tis_variable_str(type)) == 0,
            "attribute ", name, " is not a fixed-length string");
  size_t n = H5Tget_size(type);
  ABM_CHECK(n > 0, "H5Tget_size(", name, ") failed: ", h5_error_string());
  std::string buf(n, '\0');
  ABM_H5_CHECK(H5Aread(a, type, buf.data()));
  return std::string(buf.c_str());
}

}  // namespace abm
