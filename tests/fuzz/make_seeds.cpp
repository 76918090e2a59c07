// Writes the binary seed corpora of the fuzzers with the product's own writers, so every
// seed is a file the product itself produces (launch/sanitize.sh runs it once per run;
// nothing binary is committed). Usage: fuzz_make_seeds OUT_DIR
//   OUT_DIR/safetensors_header/  save_safetensors: a tiny model-like file, a PEFT-like
//                                adapter with __metadata__, every dtype, an empty tensor
//   OUT_DIR/checkpoint_h5/       write_checkpoint_file: a LoRA checkpoint with AdamW
//                                moments, schedule, the real CPU generator state and ABM
//                                provenance; a full-parameter one without /abm
//   OUT_DIR/token_cache_h5/      write_token_cache with fuzz_token_cache_h5.cpp's key
// The text seeds (JSONL, config JSON) are committed under tests/fuzz/seeds/.
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "checkpoints/checkpoint_file.h"
#include "data/token_cache.h"
#include "model/safetensors.h"

namespace {

using abm::NamedTensors;

std::string dir_of(const std::string& root, const std::string& name) {
  std::string d = root + "/" + name;
  ::mkdir(root.c_str(), 0755);
  ::mkdir(d.c_str(), 0755);
  return d;
}

at::Tensor ramp(std::vector<int64_t> shape, at::ScalarType t) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return (at::arange(n, at::kFloat) * 0.25 - 1).reshape(shape).to(t);
}

void safetensors_seeds(const std::string& d) {
  abm::save_safetensors(d + "/model.safetensors",
                        {{"model.embed_tokens.weight", ramp({8, 4}, at::kFloat)},
                         {"model.layers.0.self_attn.q_proj.weight", ramp({4, 4}, at::kBFloat16)},
                         {"model.norm.weight", ramp({4}, at::kFloat)}});
  abm::save_safetensors(
      d + "/adapter_model.safetensors",
      {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", ramp({2, 4}, at::kFloat)},
       {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", ramp({4, 2}, at::kFloat)}},
      {{"format", "pt"}});
  abm::save_safetensors(d + "/dtypes.safetensors",
                        {{"f16", ramp({3}, at::kHalf)},
                         {"f64", ramp({2}, at::kDouble)},
                         {"i64", ramp({2}, at::kLong)},
                         {"i32", ramp({2}, at::kInt)},
                         {"u8", ramp({4}, at::kByte)},
                         {"i8", ramp({4}, at::kChar)},
                         {"empty", at::zeros({0, 3}, at::kFloat)}},
                        {{"note", "every dtype"}});
}

abm::CheckpointState checkpoint_state(bool lora) {
  abm::CheckpointState s;
  s.step = 3;
  s.epoch = 0;
  s.samples_seen = 12;
  s.tokens_seen = 345;
  s.global_batch = 4;
  s.world_size = 2;
  s.config = "[train]\nsteps = 8\nlr = 0.0003\n";
  s.base_model = "models/default";
  s.base_fingerprint = "0123456789abcdef";
  s.data_fingerprint = "fedcba9876543210";
  if (lora) {
    abm::LoraConfig c;
    c.r = 2;
    c.alpha = 4;
    c.targets = {"q_proj", "v_proj"};
    s.lora = c;
    s.trainable = {{"model.layers.0.self_attn.q_proj.lora_A", ramp({2, 4}, at::kFloat)},
                   {"model.layers.0.self_attn.q_proj.lora_B", ramp({4, 2}, at::kFloat)},
                   {"model.layers.0.self_attn.v_proj.lora_A", ramp({2, 4}, at::kFloat)},
                   {"model.layers.0.self_attn.v_proj.lora_B", ramp({2, 2}, at::kFloat)}};
  } else {
    s.trainable = {{"model.layers.0.mlp.up_proj.weight", ramp({3, 4}, at::kFloat)},
                   {"model.norm.weight", ramp({4}, at::kFloat)}};
  }
  s.optimizer.step = 3;
  s.optimizer.weight_decay = 0.01;
  for (auto& [name, t] : s.trainable) {
    s.optimizer.exp_avg.push_back(t * 0.1);
    s.optimizer.exp_avg_sq.push_back(t * t * 0.01);
  }
  s.scheduler.peak = 3e-4;
  s.scheduler.warmup = 2;
  s.scheduler.total = 8;
  s.sampler_seed = 42;
  s.rng = {{"torch_cpu", at::detail::getDefaultCPUGenerator().get_state()}};
  if (lora) {
    abm::AbmProvenance a;
    a.seed = 7;
    a.steps = 2;
    a.samples = {0, 3, 5};
    a.layers = {0};
    a.loss = {0.5, 0.25};
    a.accuracy = {0.75};
    s.abm = a;
  }
  return s;
}

void token_cache_seed(const std::string& d) {
  abm::CacheKey k;  // keep equal to fuzz_token_cache_h5.cpp
  k.data_path = "/fuzz/data.jsonl";
  k.options = "fuzz";
  k.data_hash = 1;
  k.tokenizer_hash = 2;
  abm::TokenizedFile t;
  t.format = abm::DataFormat::Alpaca;
  for (int64_t i = 0; i < 3; ++i) {
    abm::Example e;
    e.ids = {1, 5 + i, 6, 7, 2};
    e.labels = {abm::kIgnore, abm::kIgnore, 6, 7, 2};
    e.source = i + 1;
    t.examples.push_back(e);
  }
  abm::write_token_cache(d + "/cache.tokens.h5", k, t);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  try {
    safetensors_seeds(dir_of(out, "safetensors_header"));
    const std::string ck = dir_of(out, "checkpoint_h5");
    abm::write_checkpoint_file(ck + "/lora.h5", checkpoint_state(true));
    abm::write_checkpoint_file(ck + "/full.h5", checkpoint_state(false));
    // The seeds must be what the reader accepts, or the fuzzer starts from refusals only.
    for (const char* f : {"/lora.h5", "/full.h5"}) abm::read_checkpoint(ck + f);
    token_cache_seed(dir_of(out, "token_cache_h5"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
