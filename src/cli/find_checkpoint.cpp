#include "cli/find_checkpoint.h"

#include "checkpoints/fingerprint.h"
#include "checkpoints/resume.h"
#include "checkpoints/state_broadcast.h"
#include "core/log.h"
#include "core/runtime.h"

namespace abm {

bool find_checkpoint(const TrainConfig& cfg, const AdapterSet* adapters, const Dataset& data,
                     Communicator& comm, CheckpointState& out, std::string& path) {
  if (cfg.resume.empty()) return false;
  Runtime::agree([&] {
    if (comm.rank() != 0) return;
    ResumePoint p = resolve_resume(cfg.resume, cfg.checkpoint_dir());
    for (const std::string& why : p.skipped) log0("resume: skipped ", why);
    if (p.path.empty()) {
      log0("resume: no checkpoint in ", cfg.checkpoint_dir(), "; starting fresh");
      return;
    }
    ResumeExpect now;
    now.base_model = cfg.model;
    now.base_fingerprint = model_fingerprint(cfg.model);
    now.data_fingerprint = data.fingerprint();
    if (adapters) now.lora = adapters->config();
    now.global_batch = cfg.global_batch;
    now.sampler_seed = cfg.seed;
    check_compatible(p.state, now, p.path);
    out = std::move(p.state);
    path = p.path;
  });
  at::Tensor found = at::tensor({int64_t(path.empty() ? 0 : 1)}, at::kLong);
  comm.broadcast(found, 0);
  if (found.item<int64_t>() == 0) return false;
  broadcast_state(out, comm);
  return true;
}

}  // namespace abm
