#include "core/options.h"

#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"

namespace abm {
namespace {

// boost::any holds the typed value; show the types our configs use.
std::string to_text(const boost::any& v) {
  if (v.empty()) return "";
  if (auto p = boost::any_cast<std::string>(&v)) return *p;
  if (auto p = boost::any_cast<int>(&v)) return std::to_string(*p);
  if (auto p = boost::any_cast<int64_t>(&v)) return std::to_string(*p);
  if (auto p = boost::any_cast<uint64_t>(&v)) return std::to_string(*p);
  if (auto p = boost::any_cast<double>(&v)) return cat(*p);
  if (auto p = boost::any_cast<float>(&v)) return cat(*p);
  if (auto p = boost::any_cast<bool>(&v)) return *p ? "true" : "false";
  if (auto p = boost::any_cast<std::vector<std::string>>(&v)) {
    std::string s;
    for (auto& x : *p) s += (s.empty() ? "" : ",") + x;
    return s;
  }
  return "?";
}

}  // namespace

Options::Options(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)), desc_("Options") {
  desc_.add_options()("help,h", "show this help and exit")(
      "config", po::value<std::string>(), "INI file with options (command line wins)");
}

bool Options::parse(int argc, char** argv) {
  bool go = true;
  Runtime::agree([&] { go = parse_local(argc, argv); });
  return go;
}

bool Options::parse_local(int argc, char** argv) {
  try {
    auto parsed = po::command_line_parser(argc, argv).options(desc_).positional(pos_).run();
    po::store(parsed, vm_);
    if (vm_.count("help")) {
      if (Runtime::rank() == 0)
        std::cout << "Usage: abmlora " << command_ << " [options]\n" << summary_ << "\n\n"
                  << desc_ << std::endl;
      return false;
    }
    if (vm_.count("config")) {
      std::string path = vm_["config"].as<std::string>();
      try {
        require_regular_file(path);  // a directory would open and read as empty
      } catch (const Error& e) {
        throw Error(cat("--config ", e.what()));
      }
      std::ifstream in(path);
      ABM_REQUIRE(in, "--config ", path, ": cannot open file: ", std::strerror(errno));
      try {
        // Stored after the command line, so command-line values win (first store wins).
        po::store(po::parse_config_file(in, desc_, /*allow_unregistered=*/false), vm_);
      } catch (const po::error& e) {
        throw Error(cat("--config ", path, ": ", e.what()));
      }
    }
    po::notify(vm_);
    // No option of any command means anything as inf or NaN (--lr inf made every adapter
    // value NaN); ranges are each command's own validation, except the thread counts,
    // which are applied before any command validates (the dtype measurement needs them).
    for (auto& [k, v] : vm_) {
      const double* d = boost::any_cast<double>(&v.value());
      const float* f = boost::any_cast<float>(&v.value());
      ABM_REQUIRE((!d || std::isfinite(*d)) && (!f || std::isfinite(*f)), "--", k,
                  ": must be a finite number (got ", to_text(v.value()), ")");
      const int* n = boost::any_cast<int>(&v.value());
      ABM_REQUIRE(!n || !(k == "threads" || k.ends_with("-threads")) || (*n >= 0 && *n <= 4096),
                  "--", k, " must be in [0, 4096], got ", *n);
    }
  } catch (const po::too_many_positional_options_error&) {
    throw Error(cat("abmlora ", command_, ": unexpected argument \"", extra_positional(argc, argv),
                    "\" (see abmlora ", command_, " --help)"));
  } catch (const po::error& e) {
    throw Error(cat("abmlora ", command_, ": ", e.what(), " (see abmlora ", command_,
                    " --help)"));
  }
  return true;
}

// The first positional argument past what the command takes (for its error message).
std::string Options::extra_positional(int argc, char** argv) const {
  auto parsed = po::command_line_parser(argc, argv).options(desc_).allow_unregistered().run();
  std::vector<std::string> rest = po::collect_unrecognized(parsed.options, po::include_positional);
  std::vector<std::string> positional;
  for (const std::string& a : rest)
    if (a.empty() || a[0] != '-') positional.push_back(a);
  const size_t max = pos_.max_total_count();
  return max < positional.size() ? positional[max] : std::string("?");
}

void Options::set(const std::string& name, const std::string& value) {
  auto it = vm_.find(name);
  if (it != vm_.end()) it->second.value() = value;
}

std::string Options::resolved_ini() const {
  std::map<std::string, std::string> sorted;
  for (auto& [k, v] : vm_)
    if (k != "help" && k != "config") sorted[k] = to_text(v.value());
  std::ostringstream os;
  for (auto& [k, v] : sorted) os << k << " = " << v << "\n";
  return os.str();
}

void Options::print_table() const {
  if (Runtime::rank() != 0) return;
  size_t w = 6;
  for (auto& [k, v] : vm_) w = std::max(w, k.size());
  std::ostringstream os;
  os << "abmlora " << command_ << " — resolved configuration\n";
  std::map<std::string, const po::variable_value*> sorted;
  for (auto& [k, v] : vm_)
    if (k != "help") sorted[k] = &v;
  for (auto& [k, v] : sorted) {
    os << "  " << k << std::string(w - k.size() + 2, ' ') << to_text(v->value())
       << (v->defaulted() ? "" : "   *") << "\n";
  }
  os << "  (* = set on the command line or in --config)";
  log_line(os.str());
}

}  // namespace abm
