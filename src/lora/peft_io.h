// PEFT adapter directories (adapter_config.json + adapter_model.safetensors), written the
// way PEFT 0.7.1's save_pretrained writes a LoRA of LlamaForCausalLM, and read back from
// ours or PEFT's own (docs/design.md §7). Tensor keys:
//   base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight  [r, in]  F32
//   base_model.model.model.layers.<i>.self_attn.q_proj.lora_B.weight  [out, r] F32
#pragma once
#include <torch/torch.h>

#include <string>

#include "lora/adapter_set.h"
#include "lora/lora_config.h"
#include "model/llama_model.h"

namespace abm {

// Writes out_dir/adapter_config.json and out_dir/adapter_model.safetensors (creating
// out_dir). Needs the adapters of every layer. Deterministic: keys sorted (as safetensors'
// own writer orders them), JSON with sorted keys and PEFT's indentation, so
// export -> import -> export is byte-identical.
// rsLoRA: PEFT 0.7.1 has no use_rslora field (and silently ignores unknown ones), so the
// scale is folded into lora_alpha (alpha * sqrt(r)); every PEFT version then computes the
// same scale, and import reads it back as plain LoRA with that alpha.
void export_peft(const AdapterSet& set, const std::string& base_model_path,
                 const std::string& out_dir);
// The same from named tensors ("<module>.lora_A" [r,in], ".lora_B" [out,r], as
// AdapterSet::named_tensors() names them), e.g. gathered from pipeline stages that each
// loaded only their layers.
void export_peft(const NamedTensors& adapters, const LoraConfig& cfg,
                 const std::string& base_model_path, const std::string& out_dir);

// The adapter_config.json of a PEFT directory.
struct PeftConfigFile {
  LoraConfig config;        // targets in canonical order (unless target_regex is set)
  std::string base_model;   // base_model_name_or_path ("" when null)
  std::string target_regex; // PEFT's string form of target_modules (a regex over module
                            // names); import_peft resolves it against the tensor names
};
// Unsupported PEFT features (bias, fan_in_fan_out, rank/alpha patterns,
// layers_to_transform, modules_to_save, LoftQ, DoRA) are clear errors.
PeftConfigFile read_peft_config(const std::string& dir);

struct PeftAdapter {
  LoraConfig config;
  AdapterSet adapters;         // attached to the model passed to import_peft
  std::string base_model;      // base_model_name_or_path as written
};

// Reads a PEFT LoRA directory and attaches it to `model` (its loaded layer range; tensors
// of other layers are checked, not loaded). Errors name the file and the offending
// tensor: missing files, unknown modules, wrong shapes, a different base geometry.
PeftAdapter import_peft(const std::string& dir, LlamaModel& model);

// A full HF model directory with the adapter folded into the weights: loads base_dir in
// fp32 onto `device`, merges adapter_dir there, saves config.json + model.safetensors in
// `dtype` (fp32 or bf16) and copies the tokenizer files that exist next to the base weights.
void merge_to_model_dir(const std::string& base_dir, const std::string& adapter_dir,
                        const std::string& out_dir, at::ScalarType dtype,
                        at::Device device = at::kCPU);
// Same from memory: merges `set` into `model` (whole range), saves, unmerges again, and
// copies the tokenizer files of `tokenizer_dir` when given. Merging into bf16 weights
// rounds twice; load the model in fp32 for the best merged copy.
void merge_to_model_dir(LlamaModel& model, AdapterSet& set, const std::string& out_dir,
                        at::ScalarType dtype, const std::string& tokenizer_dir = "");

}  // namespace abm
