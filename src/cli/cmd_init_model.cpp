// abmlora init-model: a new randomly initialized LLaMA directory (the starting point of
// `abmlora pretrain`, and the demo's model until a pretrained default exists).
#include "cli/commands.h"
#include "core/log.h"
#include "core/options.h"
#include "model/llama_model.h"

namespace abm {

int cmd_init_model(int argc, char** argv) {
  struct {
    std::string out, dtype = "fp32";
    int64_t hidden = 64, intermediate = 172, layers = 4, heads = 4, kv_heads = 2, vocab = 512;
    int64_t max_positions = 512;
    double rope_theta = 10000.0, std = 0.02;
    bool tie = false;
    uint64_t seed = 0;
  } cfg;
  Options opts("init-model", "Create a randomly initialized LLaMA model directory.");
  opts.add()("out", po::value(&cfg.out)->required(), "output directory")
      ("hidden", po::value(&cfg.hidden)->default_value(cfg.hidden), "hidden size")
      ("intermediate", po::value(&cfg.intermediate)->default_value(cfg.intermediate), "MLP size")
      ("layers", po::value(&cfg.layers)->default_value(cfg.layers), "decoder layers")
      ("heads", po::value(&cfg.heads)->default_value(cfg.heads), "query heads")
      ("kv-heads", po::value(&cfg.kv_heads)->default_value(cfg.kv_heads), "key/value heads (GQA)")
      ("vocab", po::value(&cfg.vocab)->default_value(cfg.vocab), "vocabulary size")
      ("max-positions", po::value(&cfg.max_positions)->default_value(cfg.max_positions), "context")
      ("rope-theta", po::value(&cfg.rope_theta)->default_value(cfg.rope_theta), "RoPE base")
      ("std", po::value(&cfg.std)->default_value(cfg.std), "init standard deviation")
      ("tie", po::bool_switch(&cfg.tie), "tie lm_head to the embedding")
      ("seed", po::value(&cfg.seed)->default_value(cfg.seed), "init seed")
      ("dtype", po::value(&cfg.dtype)->default_value(cfg.dtype), "stored dtype: fp32 | bf16");
  if (!opts.parse(argc, argv)) return 0;
  opts.print_table();
  nlohmann::json j = {{"hidden_size", cfg.hidden},        {"intermediate_size", cfg.intermediate},
                      {"num_hidden_layers", cfg.layers},  {"num_attention_heads", cfg.heads},
                      {"num_key_value_heads", cfg.kv_heads}, {"vocab_size", cfg.vocab},
                      {"max_position_embeddings", cfg.max_positions},
                      {"rope_theta", cfg.rope_theta},     {"rms_norm_eps", 1e-5},
                      {"tie_word_embeddings", cfg.tie}};
  LlamaConfig c;
  Runtime::agree([&] {
    c = LlamaConfig::from_json(j, "init-model options");
    at::ScalarType dtype = parse_dtype(cfg.dtype, "--dtype");
    LlamaModel m = LlamaModel::random(c, cfg.seed, at::kFloat, cfg.std);
    if (Runtime::rank() == 0) m.save(cfg.out, dtype);
  });
  log0("init-model: ", c.total_params(), " parameters -> ", cfg.out);
  return 0;
}

}  // namespace abm
