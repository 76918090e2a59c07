// Which rank runs which stage for --abm-stages S on a world of N ranks.
//
// S must divide N (default S = N). The N / S ranks of one stage are its replicas; replica
// q's pipeline is the S consecutive ranks q*S .. q*S + S-1, so stage neighbours are
// neighbouring ranks (usually the same node: activations travel far more often than the
// replicas' small adapter all-reduces).
#pragma once
#include <string>

namespace abm {

class StageMap {
 public:
  // stages <= 0 means "one stage per rank". Errors (abm::Error) name --abm-stages and the
  // valid choices.
  StageMap(int world_size, int stages);

  int stages() const { return stages_; }
  int replicas() const { return world_ / stages_; }
  int stage_of(int rank) const { return rank % stages_; }
  int replica_of(int rank) const { return rank / stages_; }
  int rank_of(int stage, int replica) const { return replica * stages_ + stage; }
  // The neighbouring stage's rank in the same pipeline, or -1 at the ends.
  int prev_rank(int rank) const;
  int next_rank(int rank) const;

 private:
  int world_, stages_;
};

}  // namespace abm
