// make_device_communicator: which transport carries a device's gradients.
#include <cstdlib>
#include <string>

#include "comm/communicator.h"
#include "core/check.h"
#ifdef ABM_WITH_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace abm {

std::unique_ptr<Communicator> make_device_communicator(at::Device device) {
  const char* env = std::getenv("ABM_COMM_BACKEND");
  const std::string backend = env && *env ? env : "auto";
  ABM_REQUIRE(backend == "auto" || backend == "mpi" || backend == "nccl",
              "ABM_COMM_BACKEND=\"", backend, "\" is not auto, mpi or nccl");
  if (device.is_cuda() && backend != "mpi") {
#ifdef ABM_WITH_NCCL
    return make_nccl_communicator();
#else
    ABM_REQUIRE(backend != "nccl", "ABM_COMM_BACKEND=nccl: this abmlora was built without NCCL");
#endif
  }
  ABM_REQUIRE(backend != "nccl" || device.is_cuda(), "ABM_COMM_BACKEND=nccl needs --device cuda");
  return make_mpi_communicator();
}

}  // namespace abm
