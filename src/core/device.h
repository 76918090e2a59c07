// --device auto|cpu|cuda: where a command computes (docs/performance.md). One rank drives one GPU,
// chosen by its local rank (the rank among this node's processes: OMPI_COMM_WORLD_LOCAL_RANK,
// SLURM_LOCALID, or MPI's shared-memory split), modulo the visible devices.
#pragma once
#include <torch/torch.h>

#include <string>

namespace abm {

// How many CUDA devices LibTorch sees (0 without a driver, a GPU or a CUDA build).
int cuda_devices();

// "auto": CUDA when a device is visible, else the CPU; "cuda" without one is an abm::Error
// naming `option`. For CUDA, makes the device current for this process. Logs the choice
// per rank ("[rank r@host] device cuda:1 (local rank 1 of 2, 4 visible)").
at::Device resolve_device(const std::string& flag, const std::string& option = "--device");

// The pure rule behind resolve_device: device index for a local rank.
at::Device pick_device(const std::string& flag, int visible, int local_rank, const std::string& option);

// Peak bytes LibTorch's caching allocator has handed out on a CUDA device since the last
// reset (0 on the CPU or without CUDA).
int64_t device_peak_bytes(at::Device device);
void reset_device_peak(at::Device device);
void synchronize(at::Device device);  // waits for the device's queued work (no-op on the CPU)

// `t` on `device` without making the host wait. A plain .to() from pageable host memory to a
// GPU synchronizes the stream: the host would wait, once per batch tensor, until the GPU has
// finished all queued work. Through pinned memory the copy is queued behind that work
// instead (the pinned block is kept until the copy is done). Elsewhere the same as .to().
at::Tensor to_device(const at::Tensor& t, at::Device device);

}  // namespace abm
