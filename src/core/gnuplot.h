// Writes a gnuplot script and runs it when gnuplot is installed. Reports are useful
// without their PNGs, so a missing gnuplot is a warning line, not an error.
#pragma once
#include <string>

namespace abm {

// Writes `script` to `script_path` (atomically) and runs gnuplot on it. Returns the line
// to print: "plot: PNG" or "warning: gnuplot not found ...; wrote SCRIPT". A gnuplot that
// fails is an abm::Error naming the script.
std::string run_gnuplot(const std::string& script_path, const std::string& script,
                        const std::string& png);

}  // namespace abm
