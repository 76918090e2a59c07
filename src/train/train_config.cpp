#include "train/train_config.h"


#include "core/check.h"
#include "core/text.h"
#include "data/sampler.h"
#include "model/llama_model.h"
#include "model/tokenizer.h"

namespace abm {

void TrainConfig::declare(Options& o) {
  o.add()("model", po::value(&model)->required(), "base model directory (HF layout)")
      ("out", po::value(&out)->default_value(out), "run directory (config, metrics, adapter)")
      ("device", po::value(&device)->default_value(device), "auto (a GPU when one is visible, one per local rank) | cpu | cuda")
      ("dtype", po::value(&dtype)->default_value(dtype), "compute dtype: auto (bf16 where its matmuls are >= 1.5x faster, measured) | fp32 | bf16")
      ("init", po::value(&init)->default_value(init), "LoRA init: kaiming | gaussian | pissa (top-r SVD of each weight; the base becomes the residual) | lora-ga (SVD of each weight's gradient on the first global batch; the base is offset) | adapter | abm (kaiming, then ABM: see --abm-*)")
      ("init-adapter", po::value(&init_adapter)->default_value(""), "PEFT directory for --init adapter")
      ("full", po::bool_switch(&full), "train all weights (no LoRA): for making base models")
      ("data", po::value(&data)->required(), "training data: .txt, or JSONL (text/alpaca/messages/input_ids)")
      ("eval-data", po::value(&eval_data)->default_value(""), "evaluation data file")
      ("eval-fraction", po::value(&eval_fraction)->default_value(eval_fraction), "hold out this fraction of --data for eval")
      ("tokenizer", po::value(&tokenizer)->default_value(""), "tokenizer.model (default: MODEL/tokenizer.model)")
      ("format", po::value(&format)->default_value(format), "auto | text | alpaca | chat | tokens")
      ("template", po::value(&tmpl)->default_value(tmpl), "auto | plain | alpaca | llama2-chat")
      ("cache-dir", po::value(&cache_dir)->default_value(""), "tokenized-data cache, may be shared by runs (default OUT/.token-cache: nothing is written outside --out)")
      ("max-length", po::value(&max_length)->default_value(max_length), "tokens per example / packed row")
      ("truncate", po::bool_switch(&truncate), "cut longer examples (counted) instead of failing")
      ("pack", po::bool_switch(&pack), "pack examples into rows (no cross-attention)")
      ("train-on-inputs", po::bool_switch(&train_on_inputs), "also train on prompt tokens")
      ("lora-r", po::value(&lora_r)->default_value(lora_r), "LoRA rank")
      ("lora-alpha", po::value(&lora_alpha)->default_value(lora_alpha), "LoRA alpha (scale alpha/r)")
      ("lora-dropout", po::value(&lora_dropout)->default_value(lora_dropout), "dropout on the adapter input")
      ("lora-targets", po::value(&lora_targets)->default_value(lora_targets), "comma list of q_proj,...,down_proj or all-linear")
      ("rslora", po::bool_switch(&rslora), "scale alpha/sqrt(r)")
      ("global-batch", po::value(&global_batch)->default_value(global_batch), "sequences per optimizer step (all ranks)")
      ("micro-batch", po::value(&micro_batch)->default_value(micro_batch), "sequences per forward on one rank")
      ("steps", po::value(&steps)->default_value(steps), "optimizer steps (or --epochs)")
      ("epochs", po::value(&epochs)->default_value(epochs), "epochs over the training rows (when --steps is 0)")
      ("lr", po::value(&lr)->default_value(lr), "peak learning rate")
      ("warmup", po::value(&warmup)->default_value(warmup), "linear warmup steps")
      ("schedule", po::value(&schedule)->default_value(schedule), "cosine | constant (after warmup)")
      ("min-lr-ratio", po::value(&min_lr_ratio)->default_value(min_lr_ratio), "cosine floor as a fraction of --lr")
      ("weight-decay", po::value(&weight_decay)->default_value(weight_decay), "AdamW decoupled weight decay")
      ("clip", po::value(&clip)->default_value(clip), "global gradient-norm clip (0 = off)")
      ("seed", po::value(&seed)->default_value(seed), "seed of init, data order and dropout")
      ("recompute", po::bool_switch(&recompute), "recompute each layer's activations in the backward (less memory, ~1.5x the FLOPs)")
      ("backprop", po::value(&backprop)->default_value(backprop), "manual (hand-written, fast) | autograd (LibTorch autograd, reference)")
      ("info-loss-every", po::value(&info_loss_every)->default_value(info_loss_every), "log the information loss every N steps on the first global batch (0 = off; LoRA only)")
      ("eval-every", po::value(&eval_every)->default_value(eval_every), "evaluate every N steps (0 = at the end)")
      ("log-every", po::value(&log_every)->default_value(log_every), "plain log line every N steps")
      ("drift-check-every", po::value(&drift_check_every)->default_value(drift_check_every), "compare replicas every N steps (0 = off)")
      ("threads", po::value(&threads)->default_value(threads), "intra-op threads per rank (0 = cores / ranks)")
      ("checkpoint-every", po::value(&checkpoint_every)->default_value(checkpoint_every), "write OUT/checkpoints/ckpt-<step>.h5 every N steps (0 = only at the end and on a stop)")
      ("keep-checkpoints", po::value(&keep_checkpoints)->default_value(keep_checkpoints), "keep the newest K checkpoints (0 = all)")
      ("resume", po::value(&resume)->default_value(""), "auto (latest good checkpoint of OUT/checkpoints; fresh start if none) | CKPT.h5 | DIR")
      ("time-budget", po::value(&time_budget)->default_value(time_budget), "minutes of wall clock: stop with a checkpoint and exit 3 before they are spent (0 = none)");
}

void TrainConfig::validate(int data_ranks) const {
  if (dtype != "auto") parse_dtype(dtype, "--dtype");
  ABM_REQUIRE(init == "kaiming" || init == "gaussian" || init == "pissa" || init == "lora-ga" ||
                  init == "adapter" || init == "abm",
              "--init: unknown \"", init, "\" (kaiming | gaussian | pissa | lora-ga | adapter | abm)");
  ABM_REQUIRE((init == "adapter") == !init_adapter.empty(),
              "--init adapter and --init-adapter DIR go together");
  ABM_REQUIRE(steps > 0 || epochs > 0, "give --steps N or --epochs N");
  ABM_REQUIRE(steps >= 0 && epochs >= 0 && warmup >= 0, "--steps, --epochs, --warmup must be >= 0");
  // Upper bounds far above any real run, so that a typo fails at once instead of sizing
  // buffers or loops by it (--global-batch 99999999999 ran for minutes before failing).
  ABM_REQUIRE(steps <= kMaxSteps && epochs <= kMaxSteps && warmup <= kMaxSteps,
              "--steps, --epochs, --warmup must be <= ", kMaxSteps);
  ABM_REQUIRE(global_batch >= 1 && global_batch <= kMaxGlobalBatch,
              "--global-batch must be in [1, ", kMaxGlobalBatch, "], got ", global_batch);
  ABM_REQUIRE(micro_batch >= 1 && micro_batch <= global_batch,
              "--micro-batch must be in [1, --global-batch], got ", micro_batch);
  // AdamW's step is lr-sized per coordinate: above 1 it can only diverge.
  ABM_REQUIRE(lr > 0 && lr <= 1, "--lr must be in (0, 1], got ", lr);
  ABM_REQUIRE(min_lr_ratio >= 0 && min_lr_ratio <= 1, "--min-lr-ratio must be in [0, 1], got ",
              min_lr_ratio);
  ABM_REQUIRE(clip >= 0, "--clip must be >= 0 (0 = off), got ", clip);
  ABM_REQUIRE(weight_decay >= 0 && weight_decay <= 1, "--weight-decay must be in [0, 1], got ",
              weight_decay);
  ABM_REQUIRE(max_length > 1 && max_length <= kMaxLength, "--max-length must be in [2, ",
              kMaxLength, "], got ", max_length);
  ABM_REQUIRE(lora_r >= 1 && lora_r <= 65536, "--lora-r must be in [1, 65536], got ", lora_r);
  ABM_REQUIRE(eval_every >= 0 && log_every >= 0 && drift_check_every >= 0 && info_loss_every >= 0,
              "--eval-every, --log-every, --drift-check-every, --info-loss-every must be >= 0");
  ABM_REQUIRE(schedule == "cosine" || schedule == "constant", "--schedule: cosine | constant");
  ABM_REQUIRE(backprop == "manual" || backprop == "autograd", "--backprop: manual | autograd");
  ABM_REQUIRE(!(recompute && backprop == "autograd"), "--recompute needs --backprop manual");
  ABM_REQUIRE(eval_fraction >= 0 && eval_fraction < 1, "--eval-fraction must be in [0, 1)");
  ABM_REQUIRE(checkpoint_every >= 0 && keep_checkpoints >= 0,
              "--checkpoint-every and --keep-checkpoints must be >= 0");
  ABM_REQUIRE(time_budget >= 0, "--time-budget must be >= 0 (minutes)");
  check_batch_split(global_batch, micro_batch, data_ranks, "--global-batch", "--micro-batch");
  if (!full) {
    // The option names here; LoraConfig's own messages also serve adapter_config.json.
    ABM_REQUIRE(lora_dropout >= 0 && lora_dropout < 1, "--lora-dropout must be in [0, 1), got ",
                lora_dropout);
    ABM_REQUIRE(lora_alpha > 0, "--lora-alpha must be positive, got ", lora_alpha);
    try {
      lora().target_modules();
    } catch (const Error& e) {
      throw Error(cat("--lora-targets ", lora_targets, ": ", e.what()));
    }
    lora().validate();
  }
}

LoraConfig TrainConfig::lora() const {
  LoraConfig c;
  c.r = lora_r;
  c.alpha = lora_alpha;
  c.dropout = lora_dropout;
  c.rslora = rslora;
  c.init = init == "adapter" || init == "abm" ? "kaiming" : init;  // ABM starts from kaiming
  c.seed = seed;
  c.targets.clear();
  for (const std::string& t : split_commas(lora_targets))
    if (!t.empty()) c.targets.push_back(t);
  return c;
}

DataOptions TrainConfig::data_options(int64_t vocab) const {
  DataOptions d;
  d.path = data;
  d.tokenizer = tokenizer.empty() ? tokenizer_path(model) : tokenizer;
  d.format = parse_data_format(format, "--format");
  d.tmpl = parse_template(tmpl, "--template");
  d.train_on_inputs = train_on_inputs;
  d.max_length = max_length;
  d.truncate = truncate;
  d.pack = pack;
  d.eval_path = eval_data;
  d.eval_fraction = eval_fraction;
  d.split_seed = seed;
  d.cache_dir = cache_dir.empty() ? out + "/.token-cache" : cache_dir;
  d.vocab_size = vocab;
  return d;
}

int64_t TrainConfig::total_steps(int64_t rows) const {
  if (steps > 0) return steps;
  return std::max<int64_t>(1, epochs * rows / global_batch);
}

}  // namespace abm
