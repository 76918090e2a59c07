#include "core/check.h"

#include "core/runtime.h"

namespace abm {

std::string where() { return cat(Runtime::rank(), "@", Runtime::host()); }

void throw_check(const char* file, int line, const std::string& what) {
  // Keep only the path below src/ so messages stay short and stable across build dirs.
  std::string f(file);
  auto pos = f.rfind("/src/");
  if (pos != std::string::npos) f = f.substr(pos + 5);
  throw Error(cat(f, ":", line, " [", where(), "] ", what));
}

}  // namespace abm
