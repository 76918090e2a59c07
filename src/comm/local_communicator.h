// LocalCommunicator: a Communicator of one rank (collectives are identities). Lets code
// written for a group — the ABM trainer's data-parallel step — run on one rank of a larger
// job, e.g. one pipeline stage that owns its layers alone.
#pragma once
#include "comm/communicator.h"
#include "core/check.h"

namespace abm {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(at::Tensor&, ReduceOp) override {}
  void broadcast(at::Tensor&, int root) override { ABM_CHECK(root == 0, "root ", root, " of 1 rank"); }
  at::Tensor all_gather(const at::Tensor& mine) override { return mine.reshape({-1}).clone(); }
  std::vector<at::Tensor> all_gather_v(const at::Tensor& mine) override {
    return {mine.reshape({-1}).clone()};
  }
  void send(const at::Tensor&, int dst, int) override { ABM_CHECK(false, "send to ", dst, " on 1 rank"); }
  void recv(at::Tensor&, int src, int) override { ABM_CHECK(false, "recv from ", src, " on 1 rank"); }
  void barrier() override {}
};

}  // namespace abm
