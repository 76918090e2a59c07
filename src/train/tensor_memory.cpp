#include "train/tensor_memory.h"

#include <c10/core/CPUAllocator.h>

#include <atomic>

namespace abm {
namespace {

std::atomic<int64_t> g_current{0}, g_peak{0};
std::atomic<bool> g_installed{false};

void add(int64_t n) {
  int64_t now = g_current.fetch_add(n) + n;
  int64_t p = g_peak.load();
  while (now > p && !g_peak.compare_exchange_weak(p, now)) {
  }
}

struct Counted {  // the wrapped allocation and its size, owned by the outer DataPtr
  c10::DataPtr inner;
  int64_t bytes;
};

void release(void* ctx) {
  auto* c = static_cast<Counted*>(ctx);
  g_current.fetch_sub(c->bytes);
  delete c;  // frees through the inner allocator's deleter
}

struct CountingAllocator final : c10::Allocator {
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    c10::Device device = inner.device();
    auto* c = new Counted{std::move(inner), static_cast<int64_t>(n)};
    add(c->bytes);
    return {data, c, &release, device};
  }
  c10::Allocator* base_;
};

}  // namespace

void TensorMemory::install() {
  if (g_installed.exchange(true)) return;
  // Owned by c10 from here on (SetCPUAllocator's contract); priority above the default.
  c10::SetCPUAllocator(new CountingAllocator(c10::GetCPUAllocator()), /*priority=*/1);
}

bool TensorMemory::installed() { return g_installed.load(); }
int64_t TensorMemory::current() { return g_current.load(); }
int64_t TensorMemory::peak() { return g_peak.load(); }
void TensorMemory::reset_peak() { g_peak.store(g_current.load()); }

}  // namespace abm
