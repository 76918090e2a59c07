#include "abm/abm_init.h"

#include "abm/abm_pipeline.h"
#include "core/log.h"
#include "lora/peft_io.h"
#include "model/projection.h"

namespace abm {
namespace {

TeacherSigns capture_adapter_teacher(const AbmConfig& cfg, LlamaModel& model,
                                     const RepresentativeBatch& rb, AbmTrainer& t,
                                     const std::vector<int64_t>& layers) {
  TeacherSigns signs;
  with_teacher_adapter(cfg.teacher_adapter, model, [&] {
    signs = capture_teacher(model, rb, layers, t.needed_samples(), cfg.micro_batch);
  });
  return signs;
}

std::string percent(double x) { return cat(int(x * 1000 + 0.5) / 10.0, "%"); }

}  // namespace

void with_student_detached(LlamaModel& model, const std::function<void()>& fn) {
  std::vector<std::shared_ptr<LinearAdapter>> saved;
  auto each = [&](auto f) {
    for (auto& l : model.layers()) for_each_projection(l, [&](const ProjInfo&, Linear& p) { f(p); });
  };
  each([&](Linear& p) { saved.push_back(p.adapter); p.adapter = nullptr; });
  fn();
  size_t i = 0;
  each([&](Linear& p) { p.adapter = saved[i++]; });
}

void with_teacher_adapter(const std::string& dir, LlamaModel& model,
                          const std::function<void()>& fn) {
  with_student_detached(model, [&] {
    PeftAdapter teacher = import_peft(dir, model);
    teacher.adapters.set_train(false);
    fn();
    teacher.adapters.detach();
  });
}

namespace {

// Every rank holds every layer; each ABM step's samples are split over the ranks.
AbmRun abm_initialize_replicated(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                                 const Dataset& train, Communicator& comm) {
  AbmRun run;
  RepresentativeBatch rb = draw_representative(train, cfg.samples, cfg.max_length, cfg.seed, comm);
  run.indices = rb.indices;
  run.samples = rb.size();
  run.tokens = rb.tokens();
  const std::vector<int64_t> layers = select_abm_layers(cfg.layers, model.config().layers);
  std::vector<double> coef = abm_layer_weights(static_cast<int64_t>(layers.size()));
  for (double& c : coef) c /= double(layers.size());
  AbmTrainer t(cfg, model, student, rb, layers, coef, comm);
  if (cfg.teacher_adapter.empty()) t.capture_base_teacher();
  else t.set_teacher(capture_adapter_teacher(cfg, model, rb, t, layers));
  run.result = t.run();
  return run;
}

}  // namespace

AbmRun abm_initialize(const AbmConfig& cfg, LlamaModel& model, AdapterSet& student,
                      const Dataset& train, Communicator& comm) {
  const int stages = cfg.resolved_stages(comm.size());
  log0("abm: ", cfg.samples, " samples of <= ", cfg.max_length, " tokens, layers ", cfg.layers,
       ", margin ", cfg.margin, ", ", cfg.steps, " steps of ", cfg.batch, " sample(s), lr ",
       cfg.lr, ", teacher ", cfg.teacher_adapter.empty() ? "base model" : cfg.teacher_adapter,
       ", ", stages == 1 ? std::string("one stage (data parallel)")
                         : cat(stages, " stages, scope ", cfg.scope));
  AbmRun run = stages == 1 ? abm_initialize_replicated(cfg, model, student, train, comm)
                           : abm_initialize_staged(cfg, model, student, train, comm);
  run.scope = stages == 1 ? "replicated" : cfg.scope;
  const AbmResult& r = run.result;
  for (size_t j = 0; j < r.layers.size(); ++j)
    log0("abm: layer ", r.layers[j], ": sign agreement ", percent(r.before.layers[j].accuracy()),
         " -> ", percent(r.after.layers[j].accuracy()), ", margin violations ",
         percent(r.before.layers[j].violation_rate()), " -> ",
         percent(r.after.layers[j].violation_rate()));
  log0("abm: loss ", r.before.loss, " -> ", r.after.loss, " in ", r.teacher_seconds, " s teacher + ",
       r.seconds, " s optimization (", r.step_seconds, " s in ", cfg.steps, " steps, the rest in "
       "the before/after reports)");
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
                      {"stages", run.stages},
                      {"scope", run.scope},
                      {"samples", run.samples},
                      {"tokens", run.tokens},
                      {"indices", run.indices},
                      {"loss", r.loss},
                      {"loss_before", r.before.loss},
                      {"loss_after", r.after.loss},
                      {"teacher_seconds", r.teacher_seconds},
                      {"seconds", r.seconds},
                      {"step_seconds", r.step_seconds}};
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
