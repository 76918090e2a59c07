#include "data/batch.h"

#include <algorithm>

#include "core/check.h"

namespace abm {

Batch collate(const std::vector<std::vector<const Example*>>& rows, const CollateOptions& o) {
  ABM_CHECK(!rows.empty(), "collate of no rows");
  const int64_t B = static_cast<int64_t>(rows.size());
  int64_t T = 0;
  bool packed = false;
  for (const auto& r : rows) {
    int64_t len = 0;
    for (const Example* ex : r) len += ex->size();
    T = std::max(T, len);
    packed |= r.size() > 1;
  }
  ABM_CHECK(o.pad_to == 0 || o.pad_to >= T, "pad_to ", o.pad_to, " < longest row ", T);
  if (o.pad_to) T = o.pad_to;

  Batch b;
  b.ids = at::full({B, T}, o.pad_id, at::kLong);
  b.labels = at::full({B, T}, kIgnore, at::kLong);
  b.positions = at::arange(T, at::kLong).repeat({B, 1});
  at::Tensor segment = at::full({B, T}, -1, at::kLong);  // [B, T] example index in row; pad -1
  auto ids = b.ids.accessor<int64_t, 2>();
  auto labels = b.labels.accessor<int64_t, 2>();
  auto pos = b.positions.accessor<int64_t, 2>();
  auto seg = segment.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    int64_t t = 0;
    for (size_t e = 0; e < rows[r].size(); ++e) {
      const Example& ex = *rows[r][e];
      for (int64_t i = 0; i < ex.size(); ++i, ++t) {
        ids[r][t] = ex.ids[i];
        labels[r][t] = ex.labels[i];
        pos[r][t] = i;
        seg[r][t] = static_cast<int64_t>(e);
      }
      b.examples++;
    }
    if (packed)
      for (int64_t i = 0; t < T; ++i, ++t) pos[r][t] = i;  // padding: a block of its own
  }
  b.tokens = b.labels.narrow(1, 1, T - 1).ne(kIgnore).sum().item<int64_t>();
  if (packed) {
    at::Tensor causal = at::ones({T, T}, at::kBool).tril();                      // [T, T]
    at::Tensor same = segment.unsqueeze(2).eq(segment.unsqueeze(1));             // [B, T, T]
    b.allowed = same.logical_and(causal).unsqueeze(1);                           // [B, 1, T, T]
  }
  return b;
}

Batch make_batch(const Dataset& d, const std::vector<int64_t>& row_indices, const CollateOptions& o) {
  std::vector<std::vector<const Example*>> rows;
  for (int64_t r : row_indices) rows.push_back(d.row(r));
  return collate(rows, o);
}

}  // namespace abm
