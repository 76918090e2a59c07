#include "train/scaling_report.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/gnuplot.h"
#include "train/metrics.h"

namespace abm {
namespace {

bool is_file(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string fixed(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

std::string plot(const std::vector<ScalingRun>& runs, const std::string& out) {
  const std::string dat = out + "/scaling.dat", script = out + "/scaling.gp";
  std::ofstream d(dat);
  const double per_rank0 = runs.front().tokens_per_s / double(runs.front().ranks);
  for (const ScalingRun& r : runs)
    d << r.ranks << " " << r.tokens_per_s << " " << per_rank0 * double(r.ranks) << " "
      << r.tokens_per_s / double(r.ranks) / per_rank0 << "\n";
  d.close();
  std::ostringstream gp;
  gp << "set terminal png size 900,540\nset output '" << out << "/scaling.png'\n"
     << "set xlabel 'ranks'\nset ylabel 'tokens/s'\nset y2label 'efficiency'\n"
     << "set y2range [0:1.2]\nset ytics nomirror\nset y2tics\nset key top left\nset grid\n"
     << "plot '" << dat << "' using 1:2 with linespoints lw 2 title 'tokens/s', '" << dat
     << "' using 1:3 with lines dt 2 title 'ideal (linear)', '" << dat
     << "' using 1:4 axes x1y2 with linespoints title 'efficiency'\n";
  return run_gnuplot(script, gp.str(), out + "/scaling.png");
}

}  // namespace

std::vector<std::string> scaling_run_dirs(const std::vector<std::string>& args) {
  std::vector<std::string> dirs;
  for (const std::string& a : args) {
    if (is_file(a + "/metrics.jsonl")) {
      dirs.push_back(a);
      continue;
    }
    std::vector<std::string> subs;
    if (DIR* d = ::opendir(a.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && is_file(a + "/" + n + "/metrics.jsonl")) subs.push_back(a + "/" + n);
      }
      ::closedir(d);
    }
    ABM_REQUIRE(!subs.empty(), a, ": neither a run directory (metrics.jsonl) nor a sweep directory "
                "of runs (as slurm/scaling_sweep.sh writes)");
    std::sort(subs.begin(), subs.end());
    dirs.insert(dirs.end(), subs.begin(), subs.end());
  }
  return dirs;
}

ScalingRun read_scaling_run(const std::string& dir) {
  ScalingRun r;
  r.dir = dir;
  r.name = run_name(dir);
  std::vector<double> tps;
  for_each_metrics_record(dir, [&](const nlohmann::json& j, const std::string& where) {
    if (!j.contains("tokens_per_s")) return;  // e.g. the step-0 record
    ABM_REQUIRE(j.contains("ranks"), where,
                ": no \"ranks\" field (written by an abmlora before the scaling report)");
    ABM_REQUIRE(j["ranks"].is_number_integer() && j["tokens_per_s"].is_number() &&
                    j.value("nodes", nlohmann::json(1)).is_number_integer(),
                where, ": ranks, nodes and tokens_per_s must be numbers");
    const int64_t ranks = j["ranks"].get<int64_t>();
    ABM_REQUIRE(r.ranks == 0 || r.ranks == ranks, where, ": the rank count changed (",
                r.ranks, " -> ", ranks, "; a resumed run on another world size cannot be one point)");
    r.ranks = ranks;
    r.nodes = j.value("nodes", int64_t(1));
    tps.push_back(j["tokens_per_s"].get<double>());
  });
  ABM_REQUIRE(!tps.empty(), dir, "/metrics.jsonl: no step records");
  r.steps = int64_t(tps.size());
  if (tps.size() > 1) tps.erase(tps.begin());
  std::sort(tps.begin(), tps.end());
  const size_t n = tps.size();
  r.tokens_per_s = n % 2 ? tps[n / 2] : 0.5 * (tps[n / 2 - 1] + tps[n / 2]);
  return r;
}

std::string scaling_report(std::vector<ScalingRun> runs, const std::string& out) {
  ABM_REQUIRE(!runs.empty(), "report --scaling: give at least one run directory");
  std::stable_sort(runs.begin(), runs.end(),
                   [](const ScalingRun& a, const ScalingRun& b) { return a.ranks < b.ranks; });
  const ScalingRun& base = runs.front();
  std::ostringstream t;
  t << "run\tnodes\tranks\tsteps\ttokens/s\tspeedup\tefficiency\n";
  for (const ScalingRun& r : runs) {
    const double speedup = r.tokens_per_s / base.tokens_per_s;
    const double eff = speedup * double(base.ranks) / double(r.ranks);
    t << r.name << "\t" << r.nodes << "\t" << r.ranks << "\t" << r.steps << "\t"
      << fixed(r.tokens_per_s, 0) << "\t" << fixed(speedup, 2) << "\t" << fixed(eff, 2) << "\n";
  }
  make_dirs(out);
  write_text_atomic(out + "/scaling.tsv", t.str());
  return t.str() + plot(runs, out);
}

}  // namespace abm
