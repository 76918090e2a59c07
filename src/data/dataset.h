// From a data file to tokenized, length-checked (and optionally packed) datasets: the one
// call the trainer makes (docs/design.md §4). Every rank calls it independently (no collective),
// reading the token cache or building and writing it; identical inputs give identical
// results on every rank.
//
// Length policy: an example longer than max_length is an error naming its FILE:LINE
// unless `truncate` is set; then it is cut to its first max_length tokens and the number
// of cut examples and dropped tokens are reported. Examples left with no trained token
// (e.g. a response cut away entirely) are dropped and counted.
//
// Rows: the sampler draws rows. Unpacked, a row is one example. Packed, examples are
// concatenated in file order into rows of at most max_length tokens (next-fit), so the
// packing is fixed for the run and the sampler shuffles whole rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/example.h"
#include "data/jsonl_reader.h"
#include "data/templates.h"

namespace abm {

struct DataOptions {
  std::string path;            // training data file
  std::string tokenizer;       // tokenizer.model; may be "" for pre-tokenized data
  DataFormat format = DataFormat::Auto;
  Template tmpl = Template::Auto;
  bool train_on_inputs = false;
  int64_t max_length = 512;
  bool truncate = false;       // false: a longer example is an error
  bool pack = false;
  std::string eval_path;       // a separate eval file, or
  double eval_fraction = 0.0;  // a held-out fraction of `path`, in [0, 1)
  uint64_t split_seed = 0;     // which examples the held-out fraction takes
  std::string cache_dir;       // "" = no token cache
  int64_t vocab_size = 0;      // > 0: every token id must be below it (the model's vocab)
};

struct DataStats {
  int64_t examples = 0;        // examples kept
  int64_t truncated = 0;       // examples cut to max_length
  int64_t tokens_dropped = 0;  // tokens cut away by truncation
  int64_t untrained = 0;       // examples dropped: no trained token
  int64_t tokens = 0;          // tokens kept
  int64_t targets = 0;         // trained targets kept (labels != kIgnore)
};

struct Dataset {
  std::string path;                 // the file it came from
  DataFormat format = DataFormat::Auto;
  Template tmpl = Template::Auto;   // resolved (unused for tokens data)
  std::vector<Example> examples;
  std::vector<std::vector<int64_t>> rows;  // row r = examples[rows[r][0]], ... (>1 when packed)
  DataStats stats;
  std::string cache;                // "off", "hit PATH", "built PATH", "rebuilt PATH (why)", ...

  int64_t size() const { return static_cast<int64_t>(rows.size()); }  // rows to sample
  std::vector<const Example*> row(int64_t r) const;
  std::string summary() const;      // one line for the log
  // "<rows>:<16 hex>": a hash of every row's token ids and labels in sampling order. A
  // checkpoint records it, so resuming on edited data (where the saved data position
  // would point at other examples) is refused instead of silently training on them.
  std::string fingerprint() const;
};

struct DataSplits {
  Dataset train;
  Dataset eval;  // size() == 0 when there is no eval data
};

// Reads, tokenizes (through the cache), checks lengths, splits and packs. Logs each
// dataset's summary on rank 0. Bad input: one abm::Error line naming FILE:LINE or option.
DataSplits load_datasets(const DataOptions& o);

}  // namespace abm
