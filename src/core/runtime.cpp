#include "core/runtime.h"

#include <mpi.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/mpi_check.h"
#include "core/mpi_watchdog.h"

namespace abm {
namespace {
int g_rank = 0, g_size = 1, g_local_rank = 0, g_local_size = 1;
bool g_init = false;
std::string g_host = [] {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return std::string(buf);
}();
}  // namespace

void Runtime::init(int* argc, char*** argv) {
  if (g_init) return;
  int provided = 0;
  ABM_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  // Errors come back as codes so ABM_MPI_CHECK can report them with context.
  ABM_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  ABM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
  ABM_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
  MPI_Comm node;
  ABM_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank,
                                    MPI_INFO_NULL, &node));
  ABM_MPI_CHECK(MPI_Comm_rank(node, &g_local_rank));
  ABM_MPI_CHECK(MPI_Comm_size(node, &g_local_size));
  MPI_Comm_free(&node);
  g_init = true;
}

void Runtime::finalize() {
  if (!g_init) return;
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
  g_init = false;
}

bool Runtime::initialized() { return g_init; }
int Runtime::rank() { return g_rank; }
int Runtime::size() { return g_size; }
int Runtime::local_rank() { return g_local_rank; }
int Runtime::local_size() { return g_local_size; }
const std::string& Runtime::host() { return g_host; }

int Runtime::set_threads(int requested) {
  ABM_REQUIRE(requested >= 0 && requested <= 4096, "--threads must be in [0, 4096], got ",
              requested);  // checked at parse time too (Options), where every rank agrees
  int n = requested;
  if (n <= 0) {
    int cores = static_cast<int>(std::thread::hardware_concurrency());
    n = std::max(1, cores / std::max(1, g_local_size));
  }
  at::set_num_threads(n);
  return n;
}

void Runtime::agree(const std::function<void()>& step) {
  std::string msg;
  try {
    step();
  } catch (const Error& e) {
    msg = e.what();
    if (g_size == 1) throw;
  }
  if (g_size == 1) return;
  static const std::string everyone = "the other ranks";
  int mine = msg.empty() ? g_size : g_rank, first = g_size;
  {
    MpiWatch watch("agreement", everyone);  // a rank that never arrives must not hang us
    ABM_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  }
  if (first == g_size) return;
  // The first failing rank sends its message to everyone (length, then bytes).
  int len = static_cast<int>(msg.size());
  ABM_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, first, MPI_COMM_WORLD));
  std::vector<char> buf(msg.begin(), msg.end());
  buf.resize(len);
  ABM_MPI_CHECK(MPI_Bcast(buf.data(), len, MPI_CHAR, first, MPI_COMM_WORLD));
  if (g_rank == 0) {
    std::string text(buf.begin(), buf.end());
    for (char& c : text)
      if (c == '\n' || c == '\r') c = ' ';
    text = cat("[rank ", first, "] ", text);
    std::fprintf(stderr, "abmlora: error: %s\n", text.c_str());
    std::fflush(stderr);
  }
  throw ReportedExit{2};
}

void Runtime::abort_all(const std::string& reason, int status, bool common) {
  // One line, whatever a library put into its message (HDF5's texts carry newlines).
  std::string line = reason;
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  if (g_init && g_size > 1 && common) {
    // Every rank is here, at the same point: no abort is needed (and Open MPI 4.1's abort
    // path sometimes adds an ORTE_ERROR_LOG line of its own). Rank 0 reports, all finalize
    // and exit; should finalize not return, the exit comes anyway after 30 s (the launcher
    // then ends the other ranks).
    if (g_rank == 0) {
      std::fprintf(stderr, "abmlora: error: %s\n", line.c_str());
      std::fflush(stderr);
    }
    std::thread([status] {
      std::this_thread::sleep_for(std::chrono::seconds(30));
      std::_Exit(status);
    }).detach();
    finalize();
    std::_Exit(status);
  }
  if (g_size > 1) {
    // An error every rank meets (a bad file all of them read) should be printed once: a
    // rank > 0 gives rank 0 a moment to report it and abort the job first. A fault only
    // this rank has is still printed, half a second later.
    if (g_rank > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::fprintf(stderr, "abmlora: error: [%s] %s\n", where().c_str(), line.c_str());
  } else {
    std::fprintf(stderr, "abmlora: error: %s\n", line.c_str());
  }
  std::fflush(stderr);
  if (g_init && g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
  finalize();
  std::_Exit(status);
}

}  // namespace abm
