// Errors and CHECK macros.
//
// Two kinds of failure:
//  * abm::Error — bad input or a failed call. Carries a one-line message that names what is
//    wrong; the CLI prints it once and exits with status 2 (in a multi-rank job every rank
//    is ended through MPI_Abort, see runtime.h).
//  * ABM_CHECK / ABM_MPI_CHECK / ABM_SYS_CHECK wrap conditions and library calls and add
//    file:line, rank@host and the library's own error string, so a log line from a
//    1000-rank job says where it came from.
#pragma once
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace abm {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An Error that every rank meets at the same point with the same message (a check of
// all-reduced figures): rank 0 alone reports it, the others wait for its abort.
struct CommonError : Error {
  using Error::Error;
};

// "rank@host" of this process (valid before and after MPI init).
std::string where();

[[noreturn]] void throw_check(const char* file, int line, const std::string& what);

// Streams any number of values into one string: cat("x=", 3, " y=", 4.5).
template <typename... Ts>
std::string cat(const Ts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace abm

// User-facing validation: throws abm::Error(message) with no source location, because
// the message itself names the file/option at fault.
#define ABM_REQUIRE(cond, ...)                       \
  do {                                               \
    if (!(cond)) throw ::abm::Error(::abm::cat(__VA_ARGS__)); \
  } while (0)

// The same for a condition every rank evaluates identically (see CommonError).
#define ABM_REQUIRE_COMMON(cond, ...)                               \
  do {                                                              \
    if (!(cond)) throw ::abm::CommonError(::abm::cat(__VA_ARGS__)); \
  } while (0)

// Internal invariant or library call: message gets file:line and rank@host.
#define ABM_CHECK(cond, ...)                                                     \
  do {                                                                           \
    if (!(cond))                                                                 \
      ::abm::throw_check(__FILE__, __LINE__,                                     \
                         ::abm::cat("check failed: " #cond ": ", ##__VA_ARGS__)); \
  } while (0)

// A POSIX call that returns -1 and sets errno on failure.
#define ABM_SYS_CHECK(call, ...)                                                   \
  do {                                                                             \
    if ((call) == -1) {                                                            \
      int e_ = errno;                                                              \
      ::abm::throw_check(__FILE__, __LINE__,                                       \
                         ::abm::cat(#call " failed: ", ##__VA_ARGS__, ": ",        \
                                    std::strerror(e_)));                           \
    }                                                                              \
  } while (0)
