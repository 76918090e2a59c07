// Rank-aware logging. log0(...) prints on rank 0 only (the default voice of a job);
// log_all(...) prints on every rank with a [rank@host] prefix, for per-rank facts.
// Both write whole lines to stderr so lines from different ranks do not interleave.
#pragma once
#include <cstdio>
#include <string>

#include "core/check.h"
#include "core/runtime.h"

namespace abm {

void log_line(const std::string& line);  // one write(2), newline added

template <typename... Ts>
void log0(const Ts&... parts) {
  if (Runtime::rank() == 0) log_line(cat(parts...));
}

template <typename... Ts>
void log_all(const Ts&... parts) {
  log_line(cat("[", where(), "] ", parts...));
}

}  // namespace abm
