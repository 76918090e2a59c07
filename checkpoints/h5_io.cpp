#include "checkpoints/h5_io.h"

#include "checkpoints/xxh64.h"

namespace abm {
namespace {

struct TypeMap {
  at::ScalarType dtype;
  const char* name;  // safetensors dtype name, stored in the "dtype" attribute
  hid_t file, mem;   // HDF5 has no bf16/f16 in 1.10: their bits are stored as u16
};

std::vector<TypeMap> type_maps() {
  return {{at::kFloat, "F32", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT},
          {at::kDouble, "F64", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE},
          {at::kBFloat16, "BF16", H5T_STD_U16LE, H5T_NATIVE_UINT16},
          {at::kHalf, "F16", H5T_STD_U16LE, H5T_NATIVE_UINT16},
          {at::kLong, "I64", H5T_STD_I64LE, H5T_NATIVE_INT64},
          {at::kInt, "I32", H5T_STD_I32LE, H5T_NATIVE_INT32},
          {at::kByte, "U8", H5T_STD_U8LE, H5T_NATIVE_UINT8}};
}

void write_scalar(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, const void* v) {
  H5Id space(ABM_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Id a(ABM_H5_CHECK(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)),
         H5Aclose);
  ABM_H5_CHECK(H5Awrite(a, mem_type, v));
}

template <typename T>
T read_scalar(hid_t obj, const char* name, hid_t mem_type) {
  H5Id a(ABM_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  T v{};
  ABM_H5_CHECK(H5Aread(a, mem_type, &v));
  return v;
}

herr_t collect_name(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// HDF5 1.10 leaks a little free-list memory when a damaged object header fails its
// checksum; at exit its atexit cleanup then prints "HDF5: infinite loop closing library"
// after find_resume or inspect met a damaged checkpoint. Files are always closed
// explicitly, so the process can skip that cleanup (must run before HDF5 initializes).
const bool g_no_atexit = H5dont_atexit() >= 0;

}  // namespace

hid_t ckpt_fapl() {
  hid_t fapl = ABM_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
  // The atomic rename protects readers; HDF5's own file locks fail on some parallel file
  // systems (Lustre, NFS) and would only turn a good checkpoint into an error there.
  ABM_H5_CHECK(H5Pset_file_locking(fapl, false, true));
  // 1.8+ format: metadata is checksummed, so a damaged header is an HDF5 error, not garbage.
  ABM_H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
  return fapl;
}

hid_t ckpt_fcpl() {
  hid_t fcpl = ABM_H5_CHECK(H5Pcreate(H5P_FILE_CREATE));
  ABM_H5_CHECK(H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  return fcpl;
}

hid_t create_group(hid_t parent, const std::string& name) {
  H5Id gcpl(ABM_H5_CHECK(H5Pcreate(H5P_GROUP_CREATE)), H5Pclose);
  // Module order matters (it is the optimizer's order) and name order would put layer 10
  // before layer 2, so groups remember the order they were written in.
  ABM_H5_CHECK(H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
  return ABM_H5_CHECK(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT));
}

std::vector<std::string> children(hid_t group) {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->push_back(name);
    return 0;
  };
  {
    H5Quiet quiet;
    if (H5Literate(group, H5_INDEX_CRT_ORDER, H5_ITER_INC, nullptr, cb, &names) >= 0)
      return names;
    H5Eclear2(H5E_DEFAULT);  // not tracked: fall back to name order
  }
  names.clear();
  ABM_H5_CHECK(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, nullptr, cb, &names));
  return names;
}

bool has_child(hid_t group, const std::string& name) {
  return ABM_H5_CHECK(H5Lexists(group, name.c_str(), H5P_DEFAULT)) > 0;
}

void put_attr(hid_t obj, const char* name, int64_t v) {
  write_scalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}
void put_attr(hid_t obj, const char* name, uint64_t v) {
  write_scalar(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}
void put_attr(hid_t obj, const char* name, double v) {
  write_scalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}
void put_attr(hid_t obj, const char* name, const std::string& v) {
  H5Id type(ABM_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  ABM_H5_CHECK(H5Tset_size(type, v.size() + 1));  // NUL-terminated fixed length
  write_scalar(obj, name, type, type, v.c_str());
}

bool has_attr(hid_t obj, const char* name) {
  return ABM_H5_CHECK(H5Aexists(obj, name)) > 0;
}
int64_t get_i64(hid_t obj, const char* name) {
  return read_scalar<int64_t>(obj, name, H5T_NATIVE_INT64);
}
uint64_t get_u64(hid_t obj, const char* name) {
  return read_scalar<uint64_t>(obj, name, H5T_NATIVE_UINT64);
}
double get_f64(hid_t obj, const char* name) {
  return read_scalar<double>(obj, name, H5T_NATIVE_DOUBLE);
}

std::string get_str(hid_t obj, const char* name) { return h5_read_str_attr(obj, name); }

uint64_t attrs_hash(hid_t obj) {
  std::vector<std::string> names;
  ABM_H5_CHECK(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_name, &names));
  uint64_t h = 0;
  for (const std::string& name : names) {
    if (name == "attrs_xxh64") continue;
    H5Id a(ABM_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT)), H5Aclose);
    H5Id type(ABM_H5_CHECK(H5Aget_type(a)), H5Tclose);
    H5Id space(ABM_H5_CHECK(H5Aget_space(a)), H5Sclose);
    hssize_t points = ABM_H5_CHECK(H5Sget_simple_extent_npoints(space));
    size_t size = H5Tget_size(type);
    ABM_CHECK(size > 0 && points >= 0, "attribute ", name, " has no readable size");
    std::vector<char> raw(size * static_cast<size_t>(points));
    if (!raw.empty()) ABM_H5_CHECK(H5Aread(a, type, raw.data()));  // file type: raw bytes
    h = xxh64(name.c_str(), name.size() + 1, h);  // NUL keeps name and value apart
    h = xxh64(raw.data(), raw.size(), h);
  }
  return h;
}

void seal_attrs(hid_t obj) { put_attr(obj, "attrs_xxh64", attrs_hash(obj)); }

void verify_attrs(hid_t obj, const std::string& where) {
  ABM_REQUIRE(has_attr(obj, "attrs_xxh64"), where, ": attribute checksum missing");
  uint64_t stored = get_u64(obj, "attrs_xxh64");
  ABM_REQUIRE(stored == attrs_hash(obj), where, ": attribute checksum mismatch (damaged)");
}

void put_tensor(hid_t group, const std::string& name, const at::Tensor& t) {
  const at::Tensor c = t.detach().cpu().contiguous();
  ABM_CHECK(c.dim() >= 1, name, ": 0-d tensors are stored as shape [1]");
  const TypeMap* tm = nullptr;
  auto maps = type_maps();
  for (auto& m : maps)
    if (m.dtype == c.scalar_type()) tm = &m;
  ABM_CHECK(tm, name, ": unsupported dtype ", c.scalar_type());
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  H5Id space(ABM_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)),
             H5Sclose);
  H5Id ds(ABM_H5_CHECK(H5Dcreate2(group, name.c_str(), tm->file, space, H5P_DEFAULT,
                                  H5P_DEFAULT, H5P_DEFAULT)),
          H5Dclose);
  // Contiguous, uncompressed: one large write straight from the tensor's memory.
  if (c.numel() > 0) ABM_H5_CHECK(H5Dwrite(ds, tm->mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.data_ptr()));
  put_attr(ds, "dtype", std::string(tm->name));
  put_attr(ds, "xxh64", xxh64(c.data_ptr(), c.numel() * c.element_size()));
}

at::Tensor get_tensor(hid_t group, const std::string& name, uint64_t max_bytes,
                      const std::string& where) {
  const std::string what = where + "/" + name;
  ABM_REQUIRE(has_child(group, name), what, ": missing");
  H5Id ds(ABM_H5_CHECK(H5Dopen2(group, name.c_str(), H5P_DEFAULT)), H5Dclose);
  ABM_REQUIRE(has_attr(ds, "dtype") && has_attr(ds, "xxh64"), what, ": no dtype/checksum attribute");
  std::string dname = get_str(ds, "dtype");
  const TypeMap* tm = nullptr;
  auto maps = type_maps();
  for (auto& m : maps)
    if (dname == m.name) tm = &m;
  ABM_REQUIRE(tm, what, ": unknown dtype \"", dname, "\"");
  H5Id ftype(ABM_H5_CHECK(H5Dget_type(ds)), H5Tclose);
  ABM_REQUIRE(ABM_H5_CHECK(H5Tequal(ftype, tm->file)) > 0, what, ": stored type does not match dtype ", dname);
  H5Id space(ABM_H5_CHECK(H5Dget_space(ds)), H5Sclose);
  int rank = ABM_H5_CHECK(H5Sget_simple_extent_ndims(space));
  ABM_REQUIRE(rank >= 1 && rank <= 8, what, ": bad rank ", rank);
  std::vector<hsize_t> dims(rank);
  ABM_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
  std::vector<int64_t> shape(dims.begin(), dims.end());
  // Overflow-safe: dims such as 256^8 must not wrap around to a small count.
  uint64_t numel = 1, bytes = 0;
  bool wraps = false;
  for (hsize_t d : dims) wraps = wraps || __builtin_mul_overflow(numel, uint64_t(d), &numel);
  wraps = wraps || __builtin_mul_overflow(numel, uint64_t(c10::elementSize(tm->dtype)), &bytes);
  ABM_REQUIRE(!wraps && bytes <= max_bytes, what, ": claims ", wraps ? "more" : cat(bytes),
              " bytes, more than the file's ", max_bytes);
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(tm->dtype));
  if (numel > 0) ABM_H5_CHECK(H5Dread(ds, tm->mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()));
  uint64_t stored = get_u64(ds, "xxh64"), got = xxh64(t.data_ptr(), bytes);
  ABM_REQUIRE(stored == got, what, ": checksum mismatch (damaged data)");
  return t;
}

std::vector<int64_t> tensor_shape(hid_t group, const std::string& name) {
  H5Id ds(ABM_H5_CHECK(H5Dopen2(group, name.c_str(), H5P_DEFAULT)), H5Dclose);
  H5Id space(ABM_H5_CHECK(H5Dget_space(ds)), H5Sclose);
  int rank = ABM_H5_CHECK(H5Sget_simple_extent_ndims(space));
  std::vector<hsize_t> dims(std::max(rank, 0));
  if (rank > 0) ABM_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
  return std::vector<int64_t>(dims.begin(), dims.end());
}

}  // namespace abm
