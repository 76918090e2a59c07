#include "core/log.h"

#include <unistd.h>

namespace abm {

void log_line(const std::string& line) {
  std::string s = line + "\n";
  // A single write keeps the line whole even when many ranks share one terminal or log.
  ssize_t ignored = ::write(STDERR_FILENO, s.data(), s.size());
  (void)ignored;
}

}  // namespace abm
