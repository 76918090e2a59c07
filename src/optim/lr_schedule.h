// Learning-rate schedule: linear warmup, then cosine decay to min_ratio * peak
// (min_ratio 0 = HF get_cosine_schedule_with_warmup), or constant after warmup.
#pragma once
#include <cstdint>
#include <string>

namespace abm {

struct LrSchedule {
  double peak = 1e-4;
  int64_t warmup = 0;
  int64_t total = 1;
  double min_ratio = 0.0;
  std::string kind = "cosine";  // cosine | constant

  double at(int64_t step) const;  // step counts from 0 (the first update uses at(0))
};

}  // namespace abm
