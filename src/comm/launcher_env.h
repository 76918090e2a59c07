// What the launcher (mpirun, srun, torchrun-style) tells a process through the
// environment: its local rank for GPU binding, and its global rank / size for launches
// where MPI has no world (no PMIx), so NCCL must bootstrap from a shared file instead.
#pragma once
#include <string>

namespace abm {

// OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID, LOCAL_RANK (first set wins),
// or -1 when none is set.
int launcher_local_rank();
// OMPI_COMM_WORLD_RANK/SIZE, SLURM_PROCID/SLURM_NTASKS, PMI_RANK/PMI_SIZE, RANK/WORLD_SIZE;
// -1 when none is set.
int launcher_rank();
int launcher_size();

// The GPU a local rank drives: one rank per GPU. Errors (abm::Error) when there are more
// local ranks than devices, or no device at all ("no CUDA device").
int device_for_local_rank(int local_rank, int device_count);

// Rendezvous through a shared file system: rank 0 writes `payload` to `path` (atomically,
// via rename) and returns it; other ranks wait until the file appears (up to timeout_s)
// and return its content. `bytes` is the expected size; a shorter file is an error.
std::string share_via_file(const std::string& path, int rank, const std::string& payload,
                           size_t bytes, double timeout_s);

}  // namespace abm
