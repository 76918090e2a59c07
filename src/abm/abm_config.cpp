#include "abm/abm_config.h"

#include <algorithm>

#include "core/check.h"
#include "core/text.h"
#include "sharding/stage_map.h"

namespace abm {

void AbmConfig::declare(Options& o) {
  o.add()("abm-layers", po::value(&layers)->default_value(layers),
          "ABM layers: last-half | all | last:N | list like 2,3,5")
      ("abm-margin", po::value(&margin)->default_value(margin), "ABM margin m")
      ("abm-samples", po::value(&samples)->default_value(samples), "representative samples (drawn by --seed)")
      ("abm-steps", po::value(&steps)->default_value(steps), "ABM AdamW steps")
      ("abm-lr", po::value(&lr)->default_value(lr), "ABM learning rate")
      ("abm-weight-decay", po::value(&weight_decay)->default_value(weight_decay), "ABM AdamW weight decay")
      ("abm-batch", po::value(&batch)->default_value(batch), "samples per ABM step (all ranks)")
      ("abm-micro-batch", po::value(&micro_batch)->default_value(micro_batch), "samples per ABM forward on one rank")
      ("abm-recompute", po::bool_switch(&recompute),
       "pipeline stages (global scope): keep only each layer's input and recompute its "
       "activations in backward: one layer's activations in memory instead of the stage's, "
       "~1.3x compute")
      ("abm-max-length", po::value(&max_length)->default_value(max_length), "tokens per representative sample")
      ("abm-stages", po::value(&stages)->default_value(stages),
       "ABM pipeline stages, dividing the ranks: 0 = one per rank (each loads its layers), "
       "1 = data parallel, S = S stages of ranks/S replicas each")
      ("abm-scope", po::value(&scope)->default_value(scope),
       "with several stages: shard (each stage alone, fed teacher states) | global (exact)")
      ("teacher-adapter", po::value(&teacher_adapter)->default_value(""),
       "PEFT dir: teacher = base + this adapter (default: the frozen base)")
      ("abm-teacher", po::value(&teacher)->default_value(teacher),
       "base: the frozen base (or --teacher-adapter) is ABM's teacher | task: train first "
       "trains a LoRA on the task (RUN/teacher, --abm-teacher-steps) and uses it, as the "
       "official code does")
      ("abm-teacher-steps", po::value(&teacher_steps)->default_value(teacher_steps),
       "optimizer steps of the task teacher (0 = the student's --steps)");
}

void AbmConfig::validate(int ranks) const {
  const StageMap map(ranks, stages);  // checks that the stages divide the ranks
  const int S = map.stages();
  ABM_REQUIRE(scope == "shard" || scope == "global", "--abm-scope \"", scope,
              "\": valid values are shard and global");
  ABM_REQUIRE(!recompute || (S > 1 && scope == "global"), "--abm-recompute applies to pipeline "
              "stages with --abm-scope global (here: ", S, " stage(s), scope ", scope, ")");
  const int data_ranks = map.replicas();  // the ranks of one stage split each step's samples
  ABM_REQUIRE(teacher == "base" || teacher == "task", "--abm-teacher \"", teacher,
              "\": valid values are base and task");
  ABM_REQUIRE(teacher != "task" || teacher_adapter.empty(), "--abm-teacher task trains its own "
              "teacher and --teacher-adapter gives one: choose one");
  ABM_REQUIRE(teacher_steps >= 0 && teacher_steps <= (int64_t(1) << 30),
              "--abm-teacher-steps must be in [0, 2^30], got ", teacher_steps);
  ABM_REQUIRE(margin >= 0 && margin <= 1e3, "--abm-margin must be in [0, 1000], got ", margin);
  ABM_REQUIRE(samples > 0 && samples <= (int64_t(1) << 20), "--abm-samples must be in [1, 1048576]");
  ABM_REQUIRE(steps >= 0 && steps <= (int64_t(1) << 30), "--abm-steps must be in [0, 2^30]");
  ABM_REQUIRE(lr > 0 && lr <= 1, "--abm-lr must be in (0, 1], got ", lr);
  ABM_REQUIRE(weight_decay >= 0 && weight_decay <= 1, "--abm-weight-decay must be in [0, 1]");
  ABM_REQUIRE(max_length > 1 && max_length <= (int64_t(1) << 20),
              "--abm-max-length must be in [2, 1048576]");
  ABM_REQUIRE(batch <= samples, "--abm-batch (", batch, ") exceeds --abm-samples (", samples, ")");
  const int64_t per_step = micro_batch * data_ranks;  // one stage splits a step over the ranks
  ABM_REQUIRE(batch > 0 && micro_batch > 0 && batch % per_step == 0, "--abm-batch ", batch,
              " is not a multiple of --abm-micro-batch ", micro_batch, " x ", data_ranks,
              " rank(s) sharing one ABM stage = ", per_step, ": use --abm-batch ", per_step,
              " (or a multiple), or one stage per rank (--abm-stages 0)");
  select_abm_layers(layers, 1 << 20);  // syntax only; the range is checked against the model
}

std::vector<int64_t> select_abm_layers(const std::string& spec, int64_t n) {
  std::vector<int64_t> out;
  auto bad = [&](const std::string& why) {
    return Error(cat("--abm-layers \"", spec, "\": ", why,
                     " (last-half | all | last:N | comma list of indices)"));
  };
  if (spec == "last-half") {
    for (int64_t i = n / 2; i < n; ++i) out.push_back(i);
  } else if (spec == "all") {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
  } else if (spec.rfind("last:", 0) == 0) {
    int64_t k = 0;
    try { k = std::stoll(spec.substr(5)); } catch (...) { throw bad("N is not a number"); }
    if (k < 1 || k > n) throw bad(cat("N must be in [1, ", n, "]"));
    for (int64_t i = n - k; i < n; ++i) out.push_back(i);
  } else {
    for (const std::string& t : split_commas(spec)) {
      size_t used = 0;
      int64_t i = -1;
      try { i = std::stoll(t, &used); } catch (...) { throw bad(cat("\"", t, "\" is not a layer index")); }
      if (used != t.size()) throw bad(cat("\"", t, "\" is not a layer index"));
      if (i < 0 || i >= n) throw bad(cat("layer ", i, " is outside [0, ", n, ")"));
      out.push_back(i);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
  if (out.empty()) throw bad("selects no layer");
  return out;
}

std::vector<double> abm_layer_weights(int64_t n) {
  std::vector<double> c(n);
  for (int64_t j = 0; j < n; ++j) c[j] = double(j + 1) * double(j + 1) / (double(n) * double(n));
  return c;
}

}  // namespace abm
