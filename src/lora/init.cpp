#include "lora/init.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/check.h"

namespace abm {
namespace {

// splitmix64's finalizer: spreads nearby inputs (seed 0, 1, 2 ...) over all 64 bits.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

uint64_t module_seed(uint64_t seed, const std::string& module, const std::string& purpose) {
  return splitmix64(splitmix64(seed) ^ fnv1a64(purpose + ":" + module));
}

LoraWeights init_lora(const std::string& method, uint64_t seed, const std::string& module,
                      int64_t r, int64_t in, int64_t out) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(module_seed(seed, module, "init"));
  auto f32 = at::TensorOptions().dtype(at::kFloat);
  LoraWeights w;
  w.A = at::empty({r, in}, f32);
  if (method == "kaiming") {
    // kaiming_uniform(a=sqrt(5)): gain sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in) = 1/sqrt(in)
    double bound = 1.0 / std::sqrt(double(in));
    w.A.uniform_(-bound, bound, gen);
  } else if (method == "gaussian") {
    w.A.normal_(0.0, 1.0 / double(r), gen);
  } else {
    throw Error(cat("LoRA init \"", method, "\" is unknown (valid: kaiming, gaussian)"));
  }
  w.B = at::zeros({out, r}, f32);
  return w;
}

}  // namespace abm
