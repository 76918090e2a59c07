#include "comm/allreduce_bench.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>

#include "comm/mpi_communicator.h"
#include "core/check.h"
#include "core/mpi_check.h"
#include "core/timer.h"

namespace abm {
namespace {

class MpiTarget : public AllReduceTarget {
 public:
  int rank() const override { return comm_.rank(); }
  int size() const override { return comm_.size(); }
  std::string name() const override { return "mpi"; }
  void resize(int64_t count) override { buf_ = at::empty({count}, at::kFloat); }
  int64_t check() override {
    const int64_t n = buf_.numel(), r = rank(), w = size();
    at::Tensor pattern = at::arange(n, at::kLong).remainder(13).add(1).to(at::kFloat);
    buf_.copy_(pattern * double(r + 1));
    comm_.all_reduce(buf_);
    return buf_.ne(pattern * double(w * (w + 1) / 2)).sum().item<int64_t>();
  }
  void all_reduce() override { comm_.all_reduce(buf_); }
  void sync() override {}  // MPI_Allreduce is blocking
  double max_over_ranks(double v) override {
    at::Tensor t = at::full({1}, v, at::kDouble);
    comm_.all_reduce(t, ReduceOp::Max);
    return t.item<double>();
  }
  void barrier() override { comm_.barrier(); }

 private:
  MpiCommunicator comm_;
  at::Tensor buf_;  // [count] fp32
};

}  // namespace

std::unique_ptr<AllReduceTarget> make_mpi_allreduce_target() {
  return std::make_unique<MpiTarget>();
}

std::vector<AllReduceRow> run_allreduce_bench(AllReduceTarget& t,
                                              const AllReduceBenchOptions& o) {
  ABM_REQUIRE(o.min_bytes >= 4 && o.min_bytes <= o.max_bytes,
              "bench allreduce: need 4 <= --min-bytes <= --max-bytes");
  ABM_REQUIRE(o.step_factor >= 2, "bench allreduce: --step-factor must be >= 2");
  std::vector<AllReduceRow> rows;
  const double n = t.size();
  for (int64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.step_factor) {
    AllReduceRow row;
    row.count = bytes / 4;
    row.bytes = row.count * 4;
    // Same on every rank (a function of the size only), so the loops match.
    row.iters = int(o.iters > 0 ? o.iters : std::clamp<int64_t>((int64_t{1} << 30) / bytes, 3, 200));
    t.resize(row.count);
    int64_t wrong = t.check();
    row.wrong = int64_t(t.max_over_ranks(double(wrong)) + 0.5);  // every rank checks all
    for (int i = 0; i < std::max(1, row.iters / 5); ++i) t.all_reduce();  // warm-up
    t.sync();
    t.barrier();
    Timer timer;
    for (int i = 0; i < row.iters; ++i) t.all_reduce();
    t.sync();
    // The slowest rank bounds the collective.
    double sec = t.max_over_ranks(timer.seconds()) / row.iters;
    row.time_us = sec * 1e6;
    row.algbw = double(row.bytes) / sec / 1e9;
    row.busbw = row.algbw * 2.0 * (n - 1) / n;
    rows.push_back(row);
  }
  return rows;
}

std::string allreduce_table(const std::vector<AllReduceRow>& rows, int ranks,
                            const std::string& backend) {
  std::string out = cat("# all-reduce (sum, in place) over ", backend, ", ", ranks,
                        " rank(s); time = slowest rank; busbw = algbw * 2(n-1)/n\n");
  char line[256];
  std::snprintf(line, sizeof(line), "%12s %12s %6s %6s %12s %10s %10s %8s\n", "size (B)",
                "count", "type", "iters", "time (us)", "algbw GB/s", "busbw GB/s", "#wrong");
  out += line;
  for (const AllReduceRow& r : rows) {
    std::snprintf(line, sizeof(line), "%12ld %12ld %6s %6d %12.1f %10.3f %10.3f %8ld\n",
                  static_cast<long>(r.bytes), static_cast<long>(r.count), "float", r.iters,
                  r.time_us, r.algbw, r.busbw, static_cast<long>(r.wrong));
    out += line;
  }
  return out;
}

}  // namespace abm
