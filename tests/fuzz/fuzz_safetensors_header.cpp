// libFuzzer driver: the safetensors reader (model/safetensors.h) on a hostile file — the
// u64 header length, the JSON header (depth limit, entries, __metadata__), the dtype /
// shape / data_offsets validation, then reading every tensor the header lets through.
// Bad input must end in an exception (abm::Error); a crash, a sanitizer report, a leak,
// a hang or a tensor whose bytes do not match its shape is a finding.
#include <torch/torch.h>

#include <cstdlib>

#include "fuzz_input.h"
#include "model/safetensors.h"

namespace {
abm::fuzz::ScratchCleanup cleanup("in.safetensors");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = abm::fuzz::write_input("in.safetensors", data, size);
  try {
    abm::SafetensorsFile f(path);
    for (const std::string& name : f.names()) {
      const abm::TensorEntry& e = f.entry(name);
      // What validation promised: element count x dtype size == the byte range, inside
      // the file (no wrap-around). Checked here independently of the reader's own check.
      const uint64_t item = c10::elementSize(abm::dtype_from_name(e.dtype));
      uint64_t numel = 1, bytes = 0;
      for (int64_t d : e.shape)
        if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel)) std::abort();
      if (__builtin_mul_overflow(numel, item, &bytes)) std::abort();
      if (e.end < e.begin || e.end - e.begin != bytes || e.end > size) std::abort();
      at::Tensor t = f.read(name, at::kFloat);
      if (uint64_t(t.numel()) != numel || t.sizes().vec() != e.shape) std::abort();
    }
    for (const auto& [k, v] : f.metadata()) (void)v.size();
  } catch (const std::exception&) {
    // Refusing bad input is the expected outcome.
  }
  return 0;
}
