#include "train/compute_dtype.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/timer.h"
#include "model/llama_model.h"

namespace abm {
namespace {

// Best of 3 timed products after a warm-up, in GFLOP/s.
double product_gflops(int64_t m, int64_t k, int64_t n, at::ScalarType dt) {
  at::NoGradGuard ng;
  at::Tensor a = at::randn({m, k}).to(dt), b = at::randn({k, n}).to(dt);
  at::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    Timer t;
    at::mm(a, b);
    best = std::min(best, t.seconds());
  }
  return 2.0 * double(m) * double(k) * double(n) / best / 1e9;
}

// ABM_MATMUL_GFLOPS="fp32=A,bf16=B"; false when unset.
bool overridden(double& fp32, double& bf16) {
  const char* v = std::getenv("ABM_MATMUL_GFLOPS");
  if (!v || !*v) return false;
  fp32 = bf16 = 0;
  for (const std::string& item : split_commas(v)) {
    const size_t eq = item.find('=');
    ABM_REQUIRE(eq != std::string::npos, "ABM_MATMUL_GFLOPS=\"", v, "\": expected fp32=A,bf16=B");
    const double x = std::atof(item.c_str() + eq + 1);
    if (item.compare(0, eq, "fp32") == 0) fp32 = x;
    else if (item.compare(0, eq, "bf16") == 0) bf16 = x;
  }
  ABM_REQUIRE(fp32 > 0 && bf16 > 0, "ABM_MATMUL_GFLOPS=\"", v, "\": expected fp32=A,bf16=B, both positive");
  return true;
}

}  // namespace

const char* compute_dtype_name(at::ScalarType t) { return t == at::kBFloat16 ? "bf16" : "fp32"; }

at::ScalarType pick_faster_dtype(double fp32_gflops, double bf16_gflops) {
  return bf16_gflops >= kBf16MinSpeedup * fp32_gflops ? at::kBFloat16 : at::kFloat;
}

DtypeChoice resolve_compute_dtype(const std::string& flag, const LlamaConfig& c,
                                  Communicator* comm, const std::string& option, at::Device device) {
  DtypeChoice d;
  if (flag != "auto") {
    d.dtype = parse_dtype(flag, option);
    d.why = cat(compute_dtype_name(d.dtype), " (", option, " ", flag, ")");
    return d;
  }
  if (device.is_cuda()) {
    d.dtype = at::kBFloat16;
    d.why = cat("bf16 (", option, " auto on ", device, ")");
    return d;
  }
  const int64_t m = 256, k = std::min<int64_t>(c.hidden, 1024), n = std::min<int64_t>(c.intermediate, 1024);
  std::string source = "measured";
  if (overridden(d.fp32_gflops, d.bf16_gflops)) {
    source = "from ABM_MATMUL_GFLOPS";
  } else {
    d.fp32_gflops = product_gflops(m, k, n, at::kFloat);
    d.bf16_gflops = product_gflops(m, k, n, at::kBFloat16);
  }
  if (comm && comm->size() > 1) {  // one choice for the whole job
    at::Tensor t = at::tensor({d.fp32_gflops, d.bf16_gflops}, at::kDouble);
    comm->all_reduce(t);
    d.fp32_gflops = t[0].item<double>() / comm->size();
    d.bf16_gflops = t[1].item<double>() / comm->size();
  }
  d.dtype = pick_faster_dtype(d.fp32_gflops, d.bf16_gflops);
  std::ostringstream os;
  os.precision(3);
  os << compute_dtype_name(d.dtype) << " (" << option << " auto: bf16 matmul " << d.bf16_gflops
     << " GFLOP/s vs fp32 " << d.fp32_gflops << " at [" << m << "x" << k << "]x[" << k << "x" << n
     << "], " << source << ", " << d.bf16_gflops / d.fp32_gflops << "x "
     << (d.dtype == at::kBFloat16 ? ">=" : "<") << " " << kBf16MinSpeedup << "x)";
  d.why = os.str();
  return d;
}

at::ScalarType command_dtype(const std::string& command, const std::string& flag,
                             const std::string& model_dir, Communicator* comm, at::Device device) {
  LlamaConfig c;
  if (flag == "auto" && !device.is_cuda()) {
    require_dir(model_dir, "model");
    c = LlamaConfig::load(model_dir + "/config.json");
  }
  DtypeChoice d = resolve_compute_dtype(flag, c, comm, "--dtype", device);
  log0(command, ": compute dtype ", d.why);
  return d.dtype;
}

}  // namespace abm
