// On-disk cache of a tokenized data file (docs/design.md §4): tokenizing a large dataset takes
// minutes, and every rank of every restart needs the same result.
//
// One HDF5 file per (data file, tokenizer, options), named
// CACHE_DIR/<data file name>-<16 hex of CacheKey::name_hash>.tokens.h5:
//   /ids     [total] int32    all examples' ids, concatenated
//   /labels  [total] int32    their labels (kIgnore = -100)
//   /offsets [n + 1] int64    example i is [offsets[i], offsets[i+1])
//   /sources [n]     int64    line (or JSON-array record) each example came from
//   attrs: format="abmlora-token-cache", format_version, data_hash, tokenizer_hash,
//          options_hash, options (text), data_format, json_array, content_hash
// Keys are FNV-1a 64 hashes of the bytes. The content hash covers the four arrays, so a
// damaged file is detected even where HDF5 itself would read it without complaint.
// Written to a unique tmp name and renamed, so concurrent writers (ranks of one job
// sharing a file system) and readers never see a partial file.
// Truncation to max_length is applied after the cache (see dataset.h), so changing
// --max-length or --truncate reuses it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/jsonl_reader.h"

namespace abm {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvOffset);
uint64_t fnv1a_file(const std::string& path);  // errors name the file

// The file is named by what the user asked for (data path, tokenizer path, options), and
// its contents are valid for what those files contained (their hashes): edited data or a
// new tokenizer at the same path rebuild the same file instead of leaving stale ones.
struct CacheKey {
  std::string data_path;        // absolute when resolvable
  std::string tokenizer_path;   // "" for pre-tokenized data without a tokenizer
  std::string options;          // everything else that changes the result, as text
  uint64_t data_hash = 0;       // contents of the data file
  uint64_t tokenizer_hash = 0;  // contents of tokenizer.model (0: none)
  uint64_t options_hash() const;
  uint64_t name_hash() const;   // of the paths and options: names the file
};

CacheKey make_cache_key(const std::string& data_path, const std::string& tokenizer_path,
                        const std::string& options);

// The tokenized contents of one data file: what the cache stores.
struct TokenizedFile {
  DataFormat format = DataFormat::Auto;  // resolved
  bool json_array = false;               // Example::source is a record number
  std::vector<Example> examples;
};

std::string token_cache_path(const std::string& cache_dir, const CacheKey& key);

// True and fills `out` when `path` holds a valid cache for `key`; false with `why` when it
// is missing, unreadable, made for another key, or damaged (then the caller rebuilds).
bool read_token_cache(const std::string& path, const CacheKey& key, TokenizedFile& out,
                      std::string& why);

// Atomic: tmp file + rename. Creates the cache directory if needed.
void write_token_cache(const std::string& path, const CacheKey& key, const TokenizedFile& data);

}  // namespace abm
