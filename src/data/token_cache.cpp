#include "data/token_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/fs.h"
#include "data/h5_check.h"

namespace abm {
namespace {

constexpr const char* kFormat = "abmlora-token-cache";
constexpr int64_t kVersion = 1;

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

template <typename T>
uint64_t hash_vec(const std::vector<T>& v, uint64_t h) {
  return fnv1a(v.data(), v.size() * sizeof(T), h);
}

// The arrays as stored: ids/labels as int32 (LLaMA vocabularies are far below 2^31).
struct Flat {
  std::vector<int32_t> ids, labels;
  std::vector<int64_t> offsets{0}, sources;
  uint64_t hash() const {
    return hash_vec(sources, hash_vec(offsets, hash_vec(labels, hash_vec(ids, kFnvOffset))));
  }
};

Flat flatten(const std::vector<Example>& examples) {
  Flat f;
  for (const Example& ex : examples) {
    for (size_t i = 0; i < ex.ids.size(); ++i) {
      ABM_CHECK(ex.ids[i] <= std::numeric_limits<int32_t>::max(), "token id ", ex.ids[i],
                " does not fit the cache's int32");
      f.ids.push_back(static_cast<int32_t>(ex.ids[i]));
      f.labels.push_back(static_cast<int32_t>(ex.labels[i]));
    }
    f.offsets.push_back(static_cast<int64_t>(f.ids.size()));
    f.sources.push_back(ex.source);
  }
  return f;
}

hid_t open_fapl() {
  hid_t fapl = ABM_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
  // Atomic rename already protects readers; HDF5's own locks fail on some parallel file
  // systems (Lustre, NFS) and would only turn a cache into an error there.
  ABM_H5_CHECK(H5Pset_file_locking(fapl, false, true));
  // The 1.8+ file format checksums its metadata, so a damaged header is reported by HDF5
  // instead of being read as garbage (the content hash covers the raw data).
  ABM_H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
  return fapl;
}

template <typename T>
void write_1d(hid_t file, const char* name, hid_t file_type, hid_t mem_type, const std::vector<T>& v) {
  hsize_t dim = v.size();
  H5Id space(ABM_H5_CHECK(H5Screate_simple(1, &dim, nullptr)), H5Sclose);
  H5Id ds(ABM_H5_CHECK(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)),
          H5Dclose);
  if (!v.empty()) ABM_H5_CHECK(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
}

// max_bytes (the file size) bounds the allocation when a damaged header claims a huge size.
template <typename T>
std::vector<T> read_1d(hid_t file, const char* name, hid_t mem_type, uint64_t max_bytes) {
  H5Id ds(ABM_H5_CHECK(H5Dopen2(file, name, H5P_DEFAULT)), H5Dclose);
  H5Id space(ABM_H5_CHECK(H5Dget_space(ds)), H5Sclose);
  ABM_CHECK(ABM_H5_CHECK(H5Sget_simple_extent_ndims(space)) == 1, "/", name, " is not 1-D");
  hsize_t dim = 0;
  ABM_H5_CHECK(H5Sget_simple_extent_dims(space, &dim, nullptr));
  ABM_CHECK(dim <= max_bytes / sizeof(T), "/", name, " claims ", dim, " elements, more than the file holds");
  std::vector<T> v(dim);
  if (dim) ABM_H5_CHECK(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
  return v;
}

void write_attr(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, const void* value) {
  H5Id space(ABM_H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Id a(ABM_H5_CHECK(H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)), H5Aclose);
  ABM_H5_CHECK(H5Awrite(a, mem_type, value));
}

void write_attr(hid_t obj, const char* name, uint64_t v) {
  write_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

void write_attr(hid_t obj, const char* name, const std::string& v) {
  H5Id type(ABM_H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  ABM_H5_CHECK(H5Tset_size(type, v.size() + 1));  // NUL-terminated
  write_attr(obj, name, type, type, v.c_str());
}

uint64_t read_u64(hid_t obj, const char* name) {
  H5Id a(ABM_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  uint64_t v = 0;
  ABM_H5_CHECK(H5Aread(a, H5T_NATIVE_UINT64, &v));
  return v;
}

// Reads the arrays and rebuilds the examples; throws when anything does not add up.
TokenizedFile read_checked(hid_t f, uint64_t file_size, const CacheKey& key, std::string& mismatch) {
  ABM_CHECK(h5_read_str_attr(f, "format") == kFormat, "not an abmlora token cache");
  uint64_t version = read_u64(f, "format_version");
  if (version != kVersion) mismatch = cat("format version ", version, ", expected ", kVersion);
  else if (read_u64(f, "data_hash") != key.data_hash) mismatch = "made from other data";
  else if (read_u64(f, "tokenizer_hash") != key.tokenizer_hash) mismatch = "made with another tokenizer";
  else if (read_u64(f, "options_hash") != key.options_hash()) mismatch = "made with other options";
  if (!mismatch.empty()) return {};
  Flat flat;
  flat.ids = read_1d<int32_t>(f, "ids", H5T_NATIVE_INT32, file_size);
  flat.labels = read_1d<int32_t>(f, "labels", H5T_NATIVE_INT32, file_size);
  flat.offsets = read_1d<int64_t>(f, "offsets", H5T_NATIVE_INT64, file_size);
  flat.sources = read_1d<int64_t>(f, "sources", H5T_NATIVE_INT64, file_size);
  ABM_CHECK(flat.hash() == read_u64(f, "content_hash"), "content hash mismatch (damaged file)");
  const int64_t n = static_cast<int64_t>(flat.sources.size());
  ABM_CHECK(flat.labels.size() == flat.ids.size() && flat.offsets.size() == size_t(n) + 1 &&
                flat.offsets[0] == 0 && flat.offsets[n] == int64_t(flat.ids.size()),
            "inconsistent array sizes");
  TokenizedFile out;
  out.format = parse_data_format(h5_read_str_attr(f, "data_format"), "token cache data_format");
  out.json_array = read_u64(f, "json_array") != 0;
  out.examples.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = flat.offsets[i], e = flat.offsets[i + 1];
    ABM_CHECK(b < e, "example ", i, " is empty");
    Example& ex = out.examples[i];
    ex.ids.assign(flat.ids.begin() + b, flat.ids.begin() + e);
    ex.labels.assign(flat.labels.begin() + b, flat.labels.begin() + e);
    ex.source = flat.sources[i];
  }
  return out;
}

}  // namespace

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

uint64_t fnv1a_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ABM_REQUIRE(in, path, ": cannot open: ", std::strerror(errno));
  std::vector<char> buf(1 << 20);
  uint64_t h = kFnvOffset;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(buf.data(), static_cast<size_t>(in.gcount()), h);
  }
  ABM_REQUIRE(in.eof(), path, ": read error");
  return h;
}

uint64_t CacheKey::options_hash() const { return fnv1a(options.data(), options.size()); }

uint64_t CacheKey::name_hash() const {
  // NUL separators keep ("ab", "c") and ("a", "bc") apart.
  std::string s = data_path + '\0' + tokenizer_path + '\0' + options;
  return fnv1a(s.data(), s.size());
}

CacheKey make_cache_key(const std::string& data_path, const std::string& tokenizer_path,
                        const std::string& options) {
  auto absolute = [](const std::string& p) {
    char* r = ::realpath(p.c_str(), nullptr);
    std::string out = r ? r : p;
    std::free(r);
    return out;
  };
  CacheKey k;
  k.data_path = absolute(data_path);
  k.tokenizer_path = tokenizer_path.empty() ? "" : absolute(tokenizer_path);
  k.options = options;
  k.data_hash = fnv1a_file(data_path);
  k.tokenizer_hash = tokenizer_path.empty() ? 0 : fnv1a_file(tokenizer_path);
  return k;
}

std::string token_cache_path(const std::string& cache_dir, const CacheKey& key) {
  std::string name = key.data_path.substr(key.data_path.rfind('/') + 1);  // npos + 1 == 0
  return cat(cache_dir, "/", name, "-", hex16(key.name_hash()), ".tokens.h5");
}

bool read_token_cache(const std::string& path, const CacheKey& key, TokenizedFile& out,
                      std::string& why) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    why = "no cache file yet";
    return false;
  }
  H5Quiet quiet;
  try {
    H5Id fapl(open_fapl(), H5Pclose);
    H5Id f(ABM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl)), H5Fclose);
    std::string mismatch;
    TokenizedFile t = read_checked(f, static_cast<uint64_t>(st.st_size), key, mismatch);
    if (!mismatch.empty()) {
      why = mismatch;
      return false;
    }
    out = std::move(t);
    return true;
  } catch (const std::exception& e) {  // abm::Error, or bad_alloc from a damaged size
    why = cat("unreadable: ", e.what());
    return false;
  }
}

void write_token_cache(const std::string& path, const CacheKey& key, const TokenizedFile& data) {
  make_dirs(path.substr(0, path.rfind('/')));
  Flat flat = flatten(data.examples);
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  const std::string tmp = cat(path, ".tmp.", host, ".", ::getpid());
  H5Quiet quiet;
  try {
    {
      H5Id fapl(open_fapl(), H5Pclose);
      H5Id f(ABM_H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl)), H5Fclose);
      write_1d(f, "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, flat.ids);
      write_1d(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, flat.labels);
      write_1d(f, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, flat.offsets);
      write_1d(f, "sources", H5T_STD_I64LE, H5T_NATIVE_INT64, flat.sources);
      write_attr(f, "format", std::string(kFormat));
      write_attr(f, "format_version", static_cast<uint64_t>(kVersion));
      write_attr(f, "data_hash", key.data_hash);
      write_attr(f, "tokenizer_hash", key.tokenizer_hash);
      write_attr(f, "options_hash", key.options_hash());
      write_attr(f, "options", key.options);
      write_attr(f, "data_format", std::string(format_name(data.format)));
      write_attr(f, "json_array", static_cast<uint64_t>(data.json_array));
      write_attr(f, "content_hash", flat.hash());
      ABM_H5_CHECK(H5Fclose(f.release()));
    }
    int fd = ::open(tmp.c_str(), O_RDONLY);
    ABM_SYS_CHECK(fd, tmp);
    int rc = ::fsync(fd);
    ::close(fd);
    ABM_SYS_CHECK(rc, tmp);
    ABM_SYS_CHECK(::rename(tmp.c_str(), path.c_str()), tmp, " -> ", path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace abm
