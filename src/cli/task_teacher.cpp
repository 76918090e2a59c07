#include "cli/task_teacher.h"

#include <algorithm>
#include <filesystem>

#include "abm/abm_init.h"
#include "cli/find_checkpoint.h"
#include "core/fs.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/runtime.h"
#include "lora/peft_io.h"
#include "train/trainer.h"

namespace abm {
namespace {

// The teacher run's own config: the student's, for --abm-teacher-steps steps into RUN/teacher.
TrainConfig teacher_config(const TrainConfig& cfg, const AbmConfig& abm, int64_t rows) {
  TrainConfig t = cfg;
  t.out = cfg.out + "/teacher";
  t.init = "kaiming";
  t.steps = abm.teacher_steps > 0 ? abm.teacher_steps : cfg.total_steps(rows);
  t.epochs = 0;
  t.warmup = std::min(cfg.warmup, t.steps);
  t.eval_every = 0;
  t.info_loss_every = 0;
  t.keep_checkpoints = 1;
  t.resume = cfg.resume.empty() ? "" : "auto";  // a PATH names the student's checkpoint
  return t;
}

// Final loss and training time from RUN/teacher/metrics.jsonl (rank 0): restarts included.
void read_teacher_metrics(const std::string& dir, TaskTeacher& t) {
  t.seconds = 0;
  for_each_metrics_record(dir, [&](const nlohmann::json& j, const std::string&) {
    if (j.contains("loss")) t.loss = j["loss"].get<double>();
    if (j.contains("step_s")) t.seconds += j["step_s"].get<double>();
  });
}

}  // namespace

TaskTeacher train_task_teacher(const TrainConfig& cfg, const AbmConfig& abm, LlamaModel& model,
                               const DataSplits& data, Communicator& comm,
                               const CheckpointState& identity, const TimeBudget& budget) {
  const TrainConfig tc = teacher_config(cfg, abm, data.train.size());
  TaskTeacher t;
  t.adapter = tc.out + "/adapter";
  t.steps = tc.steps;
  const std::string record = tc.out + "/teacher.json";

  // A teacher finished by an earlier start of this run (stopped before the student's first
  // checkpoint) is reused, not trained again. Rank 0 decides; [reused, loss, seconds].
  at::Tensor done = at::zeros({3}, at::kDouble);
  if (comm.rank() == 0 && !cfg.resume.empty() && std::filesystem::exists(record) &&
      std::filesystem::exists(t.adapter + "/adapter_model.safetensors")) {
    const nlohmann::json j = parse_json(read_small_file(record), record);
    if (j.value("steps", int64_t(-1)) == t.steps)
      done = at::tensor({1.0, j.value("loss", 0.0), j.value("seconds", 0.0)}, at::kDouble);
  }
  comm.broadcast(done, 0);
  if (done[0].item<double>() == 1.0) {
    t.reused = true;
    t.loss = done[1].item<double>();
    t.seconds = done[2].item<double>();
    log0("abm: task teacher ", t.adapter, " reused (", t.steps, " steps, final loss ", t.loss,
         ", trained by an earlier start of this run)");
    return t;
  }

  log0("abm: training the task teacher: ", tc.steps, " steps into ", tc.out);
  with_student_detached(model, [&] {
    LoraConfig lc = tc.lora();
    lc.seed = cfg.seed ^ 0x7eac4e5ULL;  // its own A: the student's fresh A is not its start
    AdapterSet teacher = AdapterSet::attach(model, lc);
    CheckpointState ckpt;
    std::string path;
    const bool resumed = find_checkpoint(tc, &teacher, data.train, comm, ckpt, path);
    if (comm.rank() == 0) make_dirs(tc.out);
    comm.barrier();
    Trainer trainer(tc, model, &teacher, data, comm);
    trainer.set_run_identity(identity);
    trainer.set_time_budget(budget);
    if (resumed) {
      Runtime::agree([&] { trainer.restore(ckpt); });
      log0("abm: task teacher resumed from ", path, " at step ", ckpt.step);
    }
    const RunEnd end = trainer.run();
    t.finished = end.finished;
    t.reason = end.reason;
    if (end.finished && comm.rank() == 0) {
      read_teacher_metrics(tc.out, t);
      export_peft(teacher, cfg.model, t.adapter);
      write_text_atomic(record, nlohmann::json{{"adapter", t.adapter},
                                               {"steps", t.steps},
                                               {"loss", t.loss},
                                               {"seconds", t.seconds}}.dump(1) + "\n");
    }
    comm.barrier();  // the teacher adapter is on disk before any rank reads it
    teacher.detach();
  });
  at::Tensor stats = at::tensor({t.loss, t.seconds}, at::kDouble);
  comm.broadcast(stats, 0);
  t.loss = stats[0].item<double>();
  t.seconds = stats[1].item<double>();
  if (t.finished)
    log0("abm: task teacher trained: final loss ", t.loss, ", ", t.seconds, " s -> ", t.adapter);
  return t;
}

}  // namespace abm
