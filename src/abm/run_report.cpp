#include "abm/run_report.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/json_text.h"
#include "core/fs.h"
#include "core/gnuplot.h"
#include "train/metrics.h"

namespace abm {

RunCurves read_run(const std::string& dir) {
  RunCurves r;
  r.dir = dir;
  r.name = run_name(dir);
  for_each_metrics_record(dir, [&](const nlohmann::json& j, const std::string& where) {
    if (!j.contains("step")) return;
    ABM_REQUIRE(j["step"].is_number_integer(), where, ": step must be a whole number");
    try {
      const int64_t s = j["step"].get<int64_t>();
      if (j.contains("loss")) r.loss.push_back({s, j["loss"].get<double>()});
      if (j.contains("eval_loss")) r.eval_loss.push_back({s, j["eval_loss"].get<double>()});
      if (j.contains("info_loss")) r.info_loss.push_back({s, j["info_loss"]["total"].get<double>()});
      if (j.contains("step_s")) r.train_seconds += j["step_s"].get<double>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(where, ": unexpected field type (", e.what(), ")"));
    }
  });
  ABM_REQUIRE(!r.loss.empty(), dir, "/metrics.jsonl: no step records");
  r.init = "lora";
  bool task_teacher = false;  // --abm-teacher task: "abm-task" in the table
  if (std::ifstream ini(dir + "/config.ini"); ini) {  // "key = value" lines (Options::resolved_ini)
    for (std::string line; std::getline(ini, line);) {
      const size_t eq = line.find(" = ");
      if (eq == std::string::npos) continue;
      const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
      try {
        if (key == "seed") r.seed = std::stoll(value);
      } catch (const std::exception&) {
        throw Error(cat(dir, "/config.ini: seed \"", value, "\" is not a whole number"));
      }
      if (key == "init" && value != "kaiming") r.init = value;
      if (key == "abm-teacher") task_teacher = value == "task";
    }
  }
  if (std::ifstream(dir + "/abm.json").good()) {
    const std::string abm_path = dir + "/abm.json";
    nlohmann::json j = parse_json(read_small_file(abm_path), abm_path);
    r.init = task_teacher ? "abm-task" : "abm";
    r.init_seconds = j.value("teacher_seconds", 0.0) + j.value("seconds", 0.0);
  }
  if (std::ifstream(dir + "/init.json").good()) {  // runs since init.json existed: every init
    const std::string path = dir + "/init.json";
    r.init_seconds = parse_json(read_small_file(path), path).value("seconds", 0.0);
  }
  return r;
}

double smoothed_loss(const RunCurves& r, int64_t k, int64_t smooth) {
  double sum = 0;
  int64_t n = 0;
  for (auto& [s, l] : r.loss)
    if (s <= k && s > k - smooth) sum += l, ++n;
  return n ? sum / double(n) : std::nan("");
}

double target_loss(const std::vector<RunCurves>& runs, size_t i, const ReportOptions& o) {
  auto final_loss = [&](const RunCurves& r) { return smoothed_loss(r, r.loss.back().first, o.smooth); };
  if (o.target > 0) return o.target;
  if (!o.target_from.empty()) {
    for (const RunCurves& r : runs)
      if (r.dir == o.target_from || r.name == o.target_from) return final_loss(r);
    throw Error(cat("--target-from: \"", o.target_from, "\" is none of the runs given"));
  }
  if (runs[i].seed >= 0)
    for (const RunCurves& r : runs)
      if (r.init == "lora" && r.seed == runs[i].seed) return final_loss(r);
  return final_loss(runs.front());
}

int64_t steps_to_reach(const RunCurves& r, double target, int64_t smooth) {
  for (auto& [s, l] : r.loss)
    if (smoothed_loss(r, s, smooth) <= target) return s;
  return -1;
}

namespace {

std::string plot(const std::vector<RunCurves>& runs, const std::string& out, bool info) {
  std::ostringstream gp;
  gp << "set terminal png size 900,540\nset output '" << out << (info ? "/info_loss.png" : "/loss.png")
     << "'\nset xlabel 'step'\nset ylabel '" << (info ? "information loss (relative)" : "train loss")
     << "'\nset key top right\nset grid\nplot ";
  bool any = false;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& pts = info ? runs[i].info_loss : runs[i].loss;
    if (pts.empty()) continue;
    std::string dat = cat(out, "/", info ? "info" : "loss", "-", i, ".dat");
    std::ofstream d(dat);
    for (auto& [s, v] : pts) d << s << " " << v << "\n";
    gp << (any ? ", " : "") << "'" << dat << "' with lines lw 2 title '" << runs[i].name << "'";
    any = true;
  }
  if (!any) return "";
  const std::string script = cat(out, info ? "/info_loss.gp" : "/loss.gp");
  return run_gnuplot(script, gp.str() + "\n", cat(out, info ? "/info_loss.png" : "/loss.png"));
}

}  // namespace

std::string make_report(const std::vector<RunCurves>& runs, const ReportOptions& o) {
  ABM_REQUIRE(!runs.empty(), "report: give at least one run directory");
  std::ostringstream t;
  char buf[64];
  t << "run\tinit\tseed\tloss@1";
  for (int64_t k : o.at) t << "\tloss@" << k;
  t << "\ttarget\tsteps to target\tinfo loss@init\tfinal eval\twall s (init+train)\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunCurves& r = runs[i];
    const double target = target_loss(runs, i, o);
    auto num = [&](double x) {
      std::snprintf(buf, sizeof(buf), "%.4f", x);
      return std::string(x == x ? buf : "-");
    };
    t << r.name << "\t" << r.init << "\t" << (r.seed < 0 ? std::string("-") : std::to_string(r.seed))
      << "\t" << num(r.loss.front().second);
    for (int64_t k : o.at) t << "\t" << (k <= r.loss.back().first ? num(smoothed_loss(r, k, o.smooth)) : "-");
    int64_t reach = steps_to_reach(r, target, o.smooth);
    t << "\t" << num(target) << "\t" << (reach < 0 ? std::string("never") : std::to_string(reach));
    t << "\t" << (!r.info_loss.empty() && r.info_loss.front().first <= 1 ? num(r.info_loss.front().second) : "-");
    t << "\t" << (r.eval_loss.empty() ? "-" : num(r.eval_loss.back().second));
    std::snprintf(buf, sizeof(buf), "%.1f", r.init_seconds + r.train_seconds);
    t << "\t" << buf << "\n";
  }
  if (!o.out.empty()) {
    make_dirs(o.out);
    t << plot(runs, o.out, false) << plot(runs, o.out, true);
  }
  return t.str();
}

}  // namespace abm
