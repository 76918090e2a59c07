// Import of llama2.c checkpoints (legacy header-less "version 0", version 1 fp32 and
// version 2 Q8_0) into a Hugging Face LlamaModel.
//
// llama2.c stores q/k rows in Meta's layout, where RoPE rotates interleaved pairs
// (x[2i], x[2i+1]); HF rotates halves (x[i], x[i + d/2]). Rows are permuted per head
// exactly like HF's convert_llama_weights_to_hf.py:
//   w.view(heads, d/heads/2, 2, in).transpose(1, 2).reshape(d, in)
#pragma once
#include <string>

#include "model/llama_model.h"

namespace abm {

struct Llama2cInfo {
  int version = 0;  // 0 = legacy
  bool shared_classifier = true;
};

// Reads IN.bin; returns the model (fp32) in HF layout.
LlamaModel import_llama2c(const std::string& path, Llama2cInfo* info = nullptr);

// Meta -> HF row permutation of a q or k projection [heads*hd, in].
at::Tensor permute_meta_to_hf(const at::Tensor& w, int64_t heads);

}  // namespace abm
