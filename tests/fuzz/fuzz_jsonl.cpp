// libFuzzer driver: the data records reader (data/jsonl_reader.h) on a hostile data file:
// JSONL lines (any record format, auto-detected from the first record) or, when the file
// starts with '[', a JSON array of records. Bad input must end in abm::Error; a crash, a
// sanitizer report, a leak or a hang is a finding.
#include <cstdlib>

#include "data/jsonl_reader.h"
#include "fuzz_input.h"

namespace {
abm::fuzz::ScratchCleanup cleanup("in.jsonl");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = abm::fuzz::write_input("in.jsonl", data, size);
  try {
    abm::Records r = abm::read_records(path);
    if (r.records.empty() || r.format == abm::DataFormat::Auto) std::abort();  // promised
    for (const abm::Record& rec : r.records)
      if (rec.where.rfind(path, 0) != 0) std::abort();  // every record names the file
  } catch (const std::exception&) {
  }
  return 0;
}
