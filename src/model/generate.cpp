#include "model/generate.h"

#include "core/check.h"

namespace abm {
namespace {

// logits [vocab] fp32 -> next id
int64_t pick(at::Tensor logits, const SampleOptions& o, at::Generator& gen) {
  if (o.temperature <= 0.0) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  if (o.top_k > 0 && o.top_k < logits.size(0)) {
    auto kth = std::get<0>(logits.topk(o.top_k)).min();
    logits = logits.masked_fill(logits < kth, -INFINITY);
  }
  at::Tensor probs = at::softmax(logits, -1);
  if (o.top_p < 1.0) {
    auto [sorted, idx] = probs.sort(/*dim=*/-1, /*descending=*/true);
    at::Tensor before = sorted.cumsum(-1) - sorted;  // mass strictly above each token
    sorted = sorted.masked_fill(before > o.top_p, 0.0);
    probs = at::zeros_like(probs).scatter(-1, idx, sorted);
  }
  return at::multinomial(probs, 1, /*replacement=*/false, gen).item<int64_t>();
}

}  // namespace

std::vector<int64_t> generate(const LlamaModel& model, const std::vector<int64_t>& prompt,
                              const SampleOptions& o) {
  ABM_REQUIRE(!prompt.empty(), "generate: the prompt is empty");
  const LlamaConfig& c = model.config();
  int64_t capacity = std::min<int64_t>(prompt.size() + o.max_new_tokens, c.max_positions);
  ABM_REQUIRE(static_cast<int64_t>(prompt.size()) < capacity, "generate: prompt of ",
              prompt.size(), " tokens leaves no room (max_position_embeddings ",
              c.max_positions, ")");
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  KVCache cache = model.make_cache(1, capacity);
  at::Tensor ids = at::tensor(prompt, at::kLong).unsqueeze(0);  // [1, T]
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < o.max_new_tokens && cache.length + ids.size(1) <= capacity) {
    at::Tensor logits = model.forward(ids, &cache);  // [1, T, vocab]
    int64_t next = pick(logits[0][-1], o, gen);
    out.push_back(next);
    if (o.stop_at_eos && next == c.eos_id) break;
    ids = at::full({1, 1}, next, at::kLong);
  }
  return out;
}

}  // namespace abm
