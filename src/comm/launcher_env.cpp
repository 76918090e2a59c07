#include "comm/launcher_env.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "core/check.h"

namespace abm {
namespace {

// The first of `names` that is set, as an int; -1 when none is.
int first_int(std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) {
      char* end = nullptr;
      long x = std::strtol(v, &end, 10);
      ABM_REQUIRE(*end == 0 && x >= 0, "environment variable ", n, "=\"", v,
                  "\" is not a non-negative integer");
      return static_cast<int>(x);
    }
  return -1;
}

}  // namespace

int launcher_local_rank() {
  return first_int({"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "LOCAL_RANK"});
}
int launcher_rank() {
  return first_int({"OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK", "RANK"});
}
int launcher_size() {
  return first_int({"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE", "WORLD_SIZE"});
}

int device_for_local_rank(int local_rank, int device_count) {
  ABM_REQUIRE(device_count > 0, "no CUDA device");
  ABM_REQUIRE(local_rank >= 0 && local_rank < device_count, "local rank ", local_rank,
              " has no GPU of its own: this node has ", device_count,
              " CUDA device(s); launch at most one rank per GPU");
  return local_rank;
}

std::string share_via_file(const std::string& path, int rank, const std::string& payload,
                           size_t bytes, double timeout_s) {
  if (rank == 0) {
    ABM_CHECK(payload.size() == bytes, "payload of ", payload.size(), " bytes, expected ", bytes);
    // A unique temporary name, then rename: readers never see a half-written file.
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      ABM_REQUIRE(f.good(), "cannot write ", tmp, " (ABM_NCCL_ID_FILE must be on a file system "
                  "every rank can reach)");
      f.write(payload.data(), static_cast<std::streamsize>(payload.size()));
      ABM_REQUIRE(f.good(), "cannot write ", tmp);
    }
    ABM_SYS_CHECK(::rename(tmp.c_str(), path.c_str()), tmp, " -> ", path);
    return payload;
  }
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    std::ifstream f(path, std::ios::binary);
    if (f.good()) {
      std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      ABM_REQUIRE(s.size() == bytes, path, ": ", s.size(), " bytes, expected ", bytes,
                  " (a stale file from another job? delete it and relaunch)");
      return s;
    }
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ABM_REQUIRE(waited < timeout_s, "rank ", rank, ": ", path, " did not appear within ",
                timeout_s, " s (rank 0 writes it; is the file system shared?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace abm
