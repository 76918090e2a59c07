#include "sharding/stage_map.h"

#include "core/check.h"

namespace abm {

StageMap::StageMap(int world_size, int stages) : world_(world_size) {
  ABM_CHECK(world_size >= 1, "world size ", world_size);
  stages_ = stages <= 0 ? world_size : stages;
  if (stages_ > world_size || world_size % stages_ != 0) {
    std::string valid;
    for (int d = 1; d <= world_size; ++d)
      if (world_size % d == 0) valid += (valid.empty() ? "" : ", ") + std::to_string(d);
    ABM_REQUIRE(false, "--abm-stages ", stages_, " must divide the number of ranks (", world_size,
                "); valid: ", valid);
  }
}

int StageMap::prev_rank(int rank) const {
  return stage_of(rank) == 0 ? -1 : rank - 1;
}

int StageMap::next_rank(int rank) const {
  return stage_of(rank) == stages_ - 1 ? -1 : rank + 1;
}

}  // namespace abm
