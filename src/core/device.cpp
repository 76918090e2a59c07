#include "core/device.h"

#include <cstdlib>

#include "core/check.h"
#include "core/log.h"
#include "core/runtime.h"

#ifdef ABM_TORCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace abm {

int cuda_devices() {
#ifdef ABM_TORCH_CUDA
  return static_cast<int>(c10::cuda::device_count());  // 0 without a driver or a GPU
#else
  return 0;
#endif
}

at::Device pick_device(const std::string& flag, int visible, int local_rank, const std::string& option) {
  ABM_REQUIRE(flag == "auto" || flag == "cpu" || flag == "cuda", option, ": \"", flag,
              "\" is not auto, cpu or cuda");
  if (flag == "cpu" || (flag == "auto" && visible == 0)) return at::Device(at::kCPU);
#ifndef ABM_TORCH_CUDA
  ABM_REQUIRE(false, option, " cuda: this abmlora was built without CUDA (configure with ABM_CUDA=ON)");
#endif
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  ABM_REQUIRE(visible > 0, option, " cuda: no CUDA device is visible (CUDA_VISIBLE_DEVICES=",
              cvd ? cvd : "unset", "); use --device cpu or auto");
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank % visible));
}

at::Device resolve_device(const std::string& flag, const std::string& option) {
  const int visible = flag == "cpu" ? 0 : cuda_devices();
  at::Device d = pick_device(flag, visible, Runtime::local_rank(), option);
#ifdef ABM_TORCH_CUDA
  if (d.is_cuda()) c10::cuda::set_device(d.index());
#endif
  if (d.is_cuda())
    log_all("device ", d, " (local rank ", Runtime::local_rank(), " of ", Runtime::local_size(),
            ", ", visible, " visible)");
  else if (flag == "auto")
    log0("device cpu (--device auto: no CUDA device visible)");
  return d;
}

int64_t device_peak_bytes(at::Device device) {
#ifdef ABM_TORCH_CUDA
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[0].peak;  // [0]: the aggregate over pools, in every version
  }
#endif
  return 0;
}

void reset_device_peak(at::Device device) {
#ifdef ABM_TORCH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

at::Tensor to_device(const at::Tensor& t, at::Device device) {
  if (t.device() == device) return t;
  if (device.is_cuda() && t.is_cpu())  // contiguous: an expanded view pins as its own copy
    return t.contiguous().pin_memory().to(device, /*non_blocking=*/true);
  return t.to(device);
}

void synchronize(at::Device device) {
#ifdef ABM_TORCH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
}

}  // namespace abm
