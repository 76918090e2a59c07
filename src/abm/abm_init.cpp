#include "abm/abm_init.h"

#include "core/log.h"
#include "lora/peft_io.h"

namespace abm {
namespace {

// The teacher adapter attaches to the same projections as the student, so the student's
// adapters are unplugged for the teacher pass and plugged back afterwards.
TeacherSigns capture_adapter_teacher(const AbmConfig& cfg, LlamaModel& model,
                                     const RepresentativeBatch& rb, AbmTrainer& t,
                                     const std::vector<int64_t>& layers) {
  std::vector<std::shared_ptr<LinearAdapter>> saved;
  auto each = [&](auto fn) {
    for (auto& l : model.layers())
      for (Linear* p : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) fn(*p);
  };
  each([&](Linear& p) { saved.push_back(p.adapter); p.adapter = nullptr; });
  TeacherSigns signs;
  {
    PeftAdapter teacher = import_peft(cfg.teacher_adapter, model);
    teacher.adapters.set_train(false);
    signs = capture_teacher(model, rb, layers, t.needed_samples(), cfg.micro_batch);
    teacher.adapters.detach();
  }
  size_t i = 0;
  each([&](Linear& p) { p.adapter = saved[i++]; });
  return signs;
}

std::string percent(double x) { return cat(int(x * 1000 + 0.5) / 10.0, "%"); }

}  // namespace

AbmRun abm_initialize(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                      const Dataset& train, Communicator& comm) {
  AbmRun run;
  RepresentativeBatch rb = draw_representative(train, cfg.samples, cfg.max_length, cfg.seed, comm);
  run.indices = rb.indices;
  run.samples = rb.size();
  run.tokens = rb.tokens();
  const std::vector<int64_t> layers = select_abm_layers(cfg.layers, model.config().layers);
  std::vector<double> coef = abm_layer_weights(static_cast<int64_t>(layers.size()));
  for (double& c : coef) c /= double(layers.size());
  log0("abm: ", rb.size(), " samples (", rb.tokens(), " tokens), layers ", layers.front(), "..",
       layers.back(), " (", layers.size(), "), margin ", cfg.margin, ", ", cfg.steps,
       " steps of ", cfg.batch, " sample(s), lr ", cfg.lr, ", teacher ",
       cfg.teacher_adapter.empty() ? "base model" : cfg.teacher_adapter);
  AbmTrainer t(cfg, model, student, rb, layers, coef, comm);
  if (cfg.teacher_adapter.empty()) t.capture_base_teacher();
  else t.set_teacher(capture_adapter_teacher(cfg, model, rb, t, layers));
  run.result = t.run();
  const AbmResult& r = run.result;
  for (size_t j = 0; j < layers.size(); ++j)
    log0("abm: layer ", layers[j], ": sign agreement ", percent(r.before.layers[j].accuracy()),
         " -> ", percent(r.after.layers[j].accuracy()), ", margin violations ",
         percent(r.before.layers[j].violation_rate()), " -> ",
         percent(r.after.layers[j].violation_rate()));
  log0("abm: loss ", r.before.loss, " -> ", r.after.loss, " in ", r.teacher_seconds, " s teacher + ",
       r.seconds, " s optimization");
  return run;
}

nlohmann::json abm_run_json(const AbmConfig& cfg, const AbmRun& run) {
  const AbmResult& r = run.result;
  nlohmann::json j = {{"layers", r.layers},
                      {"coef", r.coef},
                      {"margin", cfg.margin},
                      {"steps", cfg.steps},
                      {"lr", cfg.lr},
                      {"weight_decay", cfg.weight_decay},
                      {"batch", cfg.batch},
                      {"max_length", cfg.max_length},
                      {"seed", cfg.seed},
                      {"teacher", cfg.teacher_adapter.empty() ? "base" : cfg.teacher_adapter},
                      {"scope", "replicated"},
                      {"samples", run.samples},
                      {"tokens", run.tokens},
                      {"indices", run.indices},
                      {"loss", r.loss},
                      {"loss_before", r.before.loss},
                      {"loss_after", r.after.loss},
                      {"teacher_seconds", r.teacher_seconds},
                      {"seconds", r.seconds}};
  for (const auto* rep : {&r.before, &r.after}) {
    nlohmann::json acc = nlohmann::json::array(), vio = nlohmann::json::array();
    for (const auto& c : rep->layers) {
      acc.push_back(c.accuracy());
      vio.push_back(c.violation_rate());
    }
    const char* tag = rep == &r.before ? "before" : "after";
    j[cat("accuracy_", tag)] = acc;
    j[cat("violation_", tag)] = vio;
  }
  return j;
}

}  // namespace abm
