// libFuzzer driver: the token cache reader (data/token_cache.h, read_token_cache) on a
// hostile .h5 file, with the fixed key the seed maker writes its seed with (so mutations
// get past the key check to the arrays, sizes and content hash). The reader reports
// every problem as `false` + a reason; a crash, a sanitizer report or a hang is a finding.
#include <cstdlib>

#include "data/token_cache.h"
#include "fuzz_hdf5.h"
#include "fuzz_input.h"

namespace {
abm::fuzz::ScratchCleanup cleanup("in.tokens.h5");

abm::CacheKey fixed_key() {  // keep equal to make_seeds.cpp
  abm::CacheKey k;
  k.data_path = "/fuzz/data.jsonl";
  k.options = "fuzz";
  k.data_hash = 1;
  k.tokenizer_hash = 2;
  return k;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = abm::fuzz::write_input("in.tokens.h5", data, size);
  static const abm::CacheKey key = fixed_key();
  abm::TokenizedFile out;
  std::string why;
  try {
    if (abm::read_token_cache(path, key, out, why)) {
      for (const abm::Example& e : out.examples)
        if (e.ids.empty() || e.ids.size() != e.labels.size()) std::abort();
    } else if (why.empty()) {
      std::abort();  // a refusal must say why
    }
  } catch (const std::exception&) {
  }
  abm::fuzz::require_no_open_hdf5_objects();
  return 0;
}
