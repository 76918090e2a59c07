// Small string helpers shared by option parsers.
#pragma once
#include <string>
#include <vector>

namespace abm {

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {}; a trailing comma adds nothing (std::getline's
// rule, which every list option here has always followed). Callers decide what an empty
// item means.
std::vector<std::string> split_commas(const std::string& s);

}  // namespace abm
