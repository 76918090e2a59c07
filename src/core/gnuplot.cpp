#include "core/gnuplot.h"

#include <cstdlib>

#include "core/check.h"
#include "core/fs.h"

namespace abm {

std::string run_gnuplot(const std::string& script_path, const std::string& script,
                        const std::string& png) {
  write_text_atomic(script_path, script);
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return "warning: gnuplot not found (apt-get install gnuplot-nox); wrote " + script_path + "\n";
  ABM_REQUIRE(std::system(("gnuplot " + script_path).c_str()) == 0, "gnuplot failed on ",
              script_path);
  return "plot: " + png + "\n";
}

}  // namespace abm
