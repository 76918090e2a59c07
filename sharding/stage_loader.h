// Loads only one stage's tensors: its layer range, plus the embedding on the first stage
// and the final norm + head on the last (LlamaModel::load reads just those byte ranges
// of the mmap'd safetensors).
#pragma once
#include <string>

#include <torch/torch.h>

#include "model/llama_model.h"
#include "sharding/partition_planner.h"

namespace abm {

// storage: the dtype the matrices are kept in (LoadOptions::storage; Undefined = dtype).
LlamaModel load_stage(const std::string& model_dir, const StagePlan& stage,
                      at::ScalarType dtype = at::kFloat,
                      at::ScalarType storage = at::ScalarType::Undefined,
                      at::Device device = at::kCPU);

}  // namespace abm
