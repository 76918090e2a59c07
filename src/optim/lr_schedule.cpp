#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace abm {

double LrSchedule::at(int64_t step) const {
  // HF's warmup is step/warmup, which makes the very first update a no-op (lr 0); we use
  // (step+1)/warmup so every step trains.
  if (warmup > 0 && step < warmup) return peak * double(step + 1) / double(warmup);
  if (kind == "constant") return peak;
  double span = std::max<int64_t>(1, total - warmup);
  double progress = std::clamp(double(step - warmup) / span, 0.0, 1.0);
  double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak * (min_ratio + (1.0 - min_ratio) * cosine);
}

}  // namespace abm
