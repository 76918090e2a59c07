#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/sampler.h"
#include "data/token_cache.h"
#include "model/tokenizer.h"

namespace abm {
namespace {

constexpr int64_t kProgressRows = 50000;  // rows from which tokenizing shows progress

// Everything besides the file contents that changes the tokenized examples.
std::string cache_options(const DataOptions& o) {
  return cat("format=", format_name(o.format), " template=", template_name(o.tmpl),
             " train_on_inputs=", o.train_on_inputs, " empty_response=untrained",
             o.truncate ? cat(" text_budget_for=", o.max_length) : "");
}

TokenizedFile tokenize_file(const std::string& path, const DataOptions& o) {
  Records recs = read_records(path, o.format);
  std::unique_ptr<Tokenizer> tok;
  if (!o.tokenizer.empty()) tok = std::make_unique<Tokenizer>(o.tokenizer);
  ABM_REQUIRE(tok || recs.format == DataFormat::Tokens, path, ": ", format_name(recs.format),
              " data needs a tokenizer (tokenizer.model of the model, or --tokenizer)");
  const Template t = resolve_template(o.tmpl, recs.format);
  TokenizedFile out;
  out.format = recs.format;
  out.json_array = recs.json_array;
  // One token stands for at most max_piece_bytes of text, so text past this budget can
  // only make tokens past --max-length (a single 10 MB line took a minute to tokenize).
  const size_t budget = tok ? static_cast<size_t>(o.max_length + 1) * tok->max_piece_bytes() : 0;
  // Large files (minutes of tokenizing on a 7B-sized corpus) say how far they are; a small
  // one finishes before a line would help.
  std::optional<Progress> progress;
  const int64_t rows = static_cast<int64_t>(recs.records.size());
  if (rows >= kProgressRows) progress = Progress::pass(rows, "data: tokenizing " + path + " ", "row");
  for (const Record& r : recs.records) {
    bool cut = false;
    Example ex = make_example(r, recs.format, t, tok.get(), o.train_on_inputs, budget, &cut);
    ABM_REQUIRE(!cut || o.truncate, r.where, ": example is longer than --max-length ",
                o.max_length, " tokens (its text has more bytes than that many tokens can ",
                "hold); pass --truncate to cut it, or raise --max-length");
    if (tok && recs.format == DataFormat::Tokens)
      for (int64_t id : ex.ids)
        ABM_REQUIRE(id < tok->vocab_size(), r.where, ": token id ", id,
                    " is outside the tokenizer's vocabulary of ", tok->vocab_size());
    ex.source = r.source;
    out.examples.push_back(std::move(ex));
    if (progress) progress->update(static_cast<int64_t>(out.examples.size()));
  }
  if (progress) progress->finish();
  return out;
}

// Through the cache when there is one; `status` says what happened.
TokenizedFile tokenize_cached(const std::string& path, const DataOptions& o, std::string& status) {
  // The cache key hashes the whole file, which must therefore end: no FIFO, no /dev/zero.
  refuse_special_file(path);
  if (o.cache_dir.empty()) {
    status = "off";
    return tokenize_file(path, o);
  }
  CacheKey key = make_cache_key(path, o.tokenizer, cache_options(o));
  std::string cache = token_cache_path(o.cache_dir, key), why;
  TokenizedFile t;
  if (read_token_cache(cache, key, t, why)) {
    status = "hit " + cache;
    return t;
  }
  const bool fresh = why == "no cache file yet";
  if (!fresh) log0("token cache ", cache, ": ", why, "; rebuilding it");
  t = tokenize_file(path, o);
  try {
    write_token_cache(cache, key, t);
    status = fresh ? "built " + cache : cat("rebuilt ", cache, " (", why, ")");
  } catch (const Error& e) {  // a cache is an optimization: go on without one
    status = cat("not written (", e.what(), ")");
    log0("token cache: ", status);
  }
  return t;
}

// Length policy, vocabulary check, untrained drop, rows.
Dataset finish(const std::string& path, const TokenizedFile& t, std::vector<Example> examples,
               const DataOptions& o) {
  Dataset d;
  d.path = path;
  d.format = t.format;
  d.tmpl = resolve_template(o.tmpl, t.format);
  auto where = [&](const Example& ex) { return locate(path, t.json_array, ex.source); };
  if (!o.truncate) {
    auto too_long = [&](const Example& ex) { return ex.size() > o.max_length; };
    auto first = std::find_if(examples.begin(), examples.end(), too_long);
    if (first != examples.end())
      throw Error(cat(where(*first), ": example has ", first->size(), " tokens, more than --max-length ",
                      o.max_length, " (", std::count_if(examples.begin(), examples.end(), too_long),
                      " example(s) of ", path, " are longer; pass --truncate to cut them, or raise "
                      "--max-length)"));
  }
  for (Example& ex : examples) {
    if (o.vocab_size > 0)
      for (int64_t id : ex.ids)
        ABM_REQUIRE(id < o.vocab_size, where(ex), ": token id ", id,
                    " is outside the model's vocabulary of ", o.vocab_size);
    if (ex.size() > o.max_length) {  // only with truncate (checked above)
      d.stats.truncated++;
      d.stats.tokens_dropped += ex.size() - o.max_length;
      ex.ids.resize(o.max_length);
      ex.labels.resize(o.max_length);
    }
    if (ex.targets() == 0) {
      d.stats.untrained++;
      continue;
    }
    d.stats.tokens += ex.size();
    d.stats.targets += ex.targets();
    d.examples.push_back(std::move(ex));
  }
  d.stats.examples = static_cast<int64_t>(d.examples.size());
  ABM_REQUIRE(!d.examples.empty(), path, ": no example has a trained token left (",
              d.stats.untrained, " with an empty response or nothing trained; max length ",
              o.max_length, ")");
  int64_t len = 0;
  for (int64_t i = 0; i < d.stats.examples; ++i) {
    const int64_t n = d.examples[i].size();
    if (!o.pack || d.rows.empty() || len + n > o.max_length) {
      d.rows.emplace_back();
      len = 0;
    }
    d.rows.back().push_back(i);
    len += n;
  }
  return d;
}

void validate(const DataOptions& o) {
  ABM_REQUIRE(!o.path.empty(), "--data: no training data file given");
  ABM_REQUIRE(o.max_length > 1, "--max-length ", o.max_length, " must be at least 2");
  ABM_REQUIRE(o.eval_fraction >= 0 && o.eval_fraction < 1, "--eval-fraction ", o.eval_fraction,
              " must be in [0, 1)");
  ABM_REQUIRE(o.eval_path.empty() || o.eval_fraction == 0,
              "--eval-data and --eval-fraction are alternatives; give one");
}

}  // namespace

std::vector<const Example*> Dataset::row(int64_t r) const {
  ABM_CHECK(r >= 0 && r < size(), "row ", r, " of ", size());
  std::vector<const Example*> out;
  for (int64_t i : rows[r]) out.push_back(&examples[i]);
  return out;
}

std::string Dataset::summary() const {
  std::string s = cat(path, ": ", stats.examples, " examples (", format_name(format),
                      format == DataFormat::Tokens ? "" : cat(", template ", template_name(tmpl)),
                      ") in ", size(), " rows, ", stats.tokens, " tokens, ", stats.targets,
                      " trained");
  if (stats.truncated)
    s += cat("; ", stats.truncated, " truncated (", stats.tokens_dropped, " tokens dropped)");
  if (stats.untrained)
    s += cat("; ", stats.untrained, " dropped with nothing to train on (empty response)");
  return s + "; token cache " + cache;
}

std::string Dataset::fingerprint() const {
  uint64_t h = kFnvOffset;
  for (int64_t r = 0; r < size(); ++r)
    for (const Example* e : row(r)) {
      const int64_t n = e->size();
      h = fnv1a(&n, sizeof n, h);
      h = fnv1a(e->ids.data(), e->ids.size() * sizeof(int64_t), h);
      h = fnv1a(e->labels.data(), e->labels.size() * sizeof(int64_t), h);
    }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return cat(size(), ":", hex);
}

DataSplits load_datasets(const DataOptions& o) {
  validate(o);
  DataSplits out;
  std::string status;
  TokenizedFile t = tokenize_cached(o.path, o, status);
  std::vector<Example> train = std::move(t.examples), eval;
  if (o.eval_fraction > 0) {
    const int64_t n = static_cast<int64_t>(train.size());
    const int64_t n_eval = std::max<int64_t>(1, std::llround(o.eval_fraction * n));
    ABM_REQUIRE(n_eval < n, o.path, ": --eval-fraction ", o.eval_fraction, " of ", n,
                " examples leaves none to train on");
    // The first n_eval of a seeded permutation, kept in file order on both sides.
    std::vector<int64_t> perm = permutation(n, o.split_seed);
    std::vector<char> is_eval(n, 0);
    for (int64_t i = 0; i < n_eval; ++i) is_eval[perm[i]] = 1;
    std::vector<Example> keep;
    for (int64_t i = 0; i < n; ++i) (is_eval[i] ? eval : keep).push_back(std::move(train[i]));
    train = std::move(keep);
  }
  out.train = finish(o.path, t, std::move(train), o);
  out.train.cache = status;
  log0("data: ", out.train.summary());
  if (!eval.empty()) {
    out.eval = finish(o.path, t, std::move(eval), o);
    out.eval.cache = status;
    log0("eval data (held-out ", o.eval_fraction, " of the training file): ", out.eval.summary());
  } else if (!o.eval_path.empty()) {
    TokenizedFile te = tokenize_cached(o.eval_path, o, status);
    out.eval = finish(o.eval_path, te, std::move(te.examples), o);
    out.eval.cache = status;
    log0("eval data: ", out.eval.summary());
  }
  return out;
}

}  // namespace abm
