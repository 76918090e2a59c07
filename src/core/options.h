// One place that turns argv (+ an optional INI file) into a subcommand's config struct.
//
// Each subcommand declares its options bound to the fields of its own flat config struct
// (po::value(&cfg.field)), then calls parse(). Precedence: command line > --config INI
// file > defaults. Unknown options, bad values and unreadable INI files become one-line
// abm::Error messages (exit 2). The resolved values can be printed as a table by rank 0
// and saved with a run.
#pragma once
#include <boost/program_options.hpp>
#include <string>

namespace abm {
namespace po = boost::program_options;

class Options {
 public:
  Options(std::string command, std::string summary);

  // Declare options: opts.add()("name", po::value(&cfg.x)->default_value(1), "help").
  po::options_description_easy_init add() { return desc_.add_options(); }
  // Declare a positional argument bound to an option already added.
  void positional(const char* name, int max_count = 1) { pos_.add(name, max_count); }

  // Returns false when --help was printed (the caller then exits 0). Collective: a bad
  // option is reported once for the whole job (Runtime::agree), every rank exits 2.
  bool parse(int argc, char** argv);

  // Records what an option resolved to (e.g. --dtype auto -> bf16), for resolved_ini().
  void set(const std::string& name, const std::string& value);
  // "key = value" lines of every resolved option, sorted; used for tables and run dirs.
  std::string resolved_ini() const;
  void print_table() const;  // rank 0 only

 private:
  bool parse_local(int argc, char** argv);
  std::string extra_positional(int argc, char** argv) const;
  std::string command_, summary_;
  po::options_description desc_;
  po::positional_options_description pos_;
  po::variables_map vm_;
};

}  // namespace abm
