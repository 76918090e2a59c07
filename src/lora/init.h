// Per-module LoRA initialization. Every module draws from its own generator seeded by
// (seed, full module name), so A does not depend on which other modules are attached, on
// the layer range a rank loads, on attach order or on the world size (docs/design.md §5).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace abm {

// 64-bit FNV-1a of the bytes of s.
uint64_t fnv1a64(const std::string& s);

// The seed of one module's random stream. `purpose` separates streams of the same module
// ("init", "dropout"). Part of the checkpoint contract: changing it changes every init.
// = splitmix64(splitmix64(seed) ^ fnv1a64(purpose + ":" + module))
uint64_t module_seed(uint64_t seed, const std::string& module, const std::string& purpose);

struct LoraWeights {
  at::Tensor A;  // [r, in] fp32
  at::Tensor B;  // [out, r] fp32
};

// method "kaiming": A ~ U(-1/sqrt(in), 1/sqrt(in)) (nn.init.kaiming_uniform_ with a=sqrt(5),
//   PEFT's init_lora_weights=True); "gaussian": A ~ N(0, std = 1/r) (PEFT's "gaussian").
// B = 0 in both, so a fresh adapter leaves the model unchanged.
LoraWeights init_lora(const std::string& method, uint64_t seed, const std::string& module,
                      int64_t r, int64_t in, int64_t out);

}  // namespace abm
