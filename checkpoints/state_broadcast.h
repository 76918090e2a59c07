// Handing a checkpoint read by one rank to every rank: rank `root` reads and verifies the
// file once, the others receive the same values over the Communicator. Keeps a 1000-rank
// resume from reading one file 1000 times, and every rank from possibly seeing a different
// file (one published in between).
#pragma once
#include "checkpoints/checkpoint_state.h"
#include "comm/communicator.h"

namespace abm {

// Collective. On root `s` is the input; elsewhere it is replaced by root's state.
void broadcast_state(CheckpointState& s, Communicator& comm, int root = 0);

}  // namespace abm
