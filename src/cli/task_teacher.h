// --abm-teacher task, the official ABM-LoRA protocol: before ABM, train trains a LoRA on the
// task itself (RUN/teacher: its checkpoints, metrics.jsonl, adapter/ and teacher.json), and
// ABM then matches the boundaries of base + that LoRA instead of the frozen base's.
#pragma once
#include <cstdint>
#include <string>

#include "abm/abm_config.h"
#include "checkpoints/checkpoint_state.h"
#include "comm/communicator.h"
#include "data/dataset.h"
#include "model/llama_model.h"
#include "train/stop_signal.h"
#include "train/train_config.h"

namespace abm {

struct TaskTeacher {
  std::string adapter;   // PEFT dir of the trained teacher: RUN/teacher/adapter
  int64_t steps = 0;     // its optimizer steps
  double loss = 0;       // its last step's train loss
  double seconds = 0;    // its training time (sum of step times, over restarts too)
  bool reused = false;   // finished by an earlier start of this run (not trained again)
  bool finished = true;  // false: stopped early (signal, --time-budget) with a checkpoint
  std::string reason;    // why it stopped
};

// Collective. Trains the teacher with the student's hyperparameters (lr, schedule, batch,
// data order, LoRA layout; its own A draw) for --abm-teacher-steps, while the student's
// adapters (attached to `model`) are set aside. With --resume a finished teacher
// (RUN/teacher/teacher.json) is reused and an unfinished one continues from its
// checkpoint. `identity` is what the teacher's checkpoints say about the run.
TaskTeacher train_task_teacher(const TrainConfig& cfg, const AbmConfig& abm, LlamaModel& model,
                               const DataSplits& data, Communicator& comm,
                               const CheckpointState& identity, const TimeBudget& budget);

}  // namespace abm
