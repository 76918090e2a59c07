#include "sharding/stage_loader.h"

#include "core/check.h"

namespace abm {

LlamaModel load_stage(const std::string& model_dir, const StagePlan& stage,
                      at::ScalarType dtype, at::ScalarType storage, at::Device device) {
  LoadOptions lo;
  lo.device = device;
  lo.storage = storage;
  lo.first = stage.first_layer;
  lo.last = stage.last_layer;
  lo.dtype = dtype;
  LlamaModel m = LlamaModel::load(model_dir, lo);
  // The planner and the loader must agree on where embedding and head live.
  ABM_CHECK(m.has_embedding() == stage.has_embedding && m.has_head() == stage.has_head,
            "stage ", stage.stage, " of ", model_dir, ": loader and plan disagree on embed/head");
  return m;
}

}  // namespace abm
