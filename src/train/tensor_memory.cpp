#include "train/tensor_memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <malloc.h>

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

// Every allocation is a plain c10::alloc_cpu block whose DataPtr context is the data
// pointer itself, as c10's own CPU allocator makes them: oneDNN's bf16 kernels take scratch
// memory through Allocator::raw_allocate, which asserts exactly that (a wrapping context
// failed there with "dptr.get() == dptr.get_context()"). The size freed is read back with
// malloc_usable_size, so both ends count the same bytes.
void release(void* p) {
  g_current.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)));
  c10::free_cpu(p);
}

struct CountingAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    void* p = n ? c10::alloc_cpu(n) : nullptr;
    if (p) add(static_cast<int64_t>(malloc_usable_size(p)));
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

}  // namespace

void TensorMemory::install() {
  if (g_installed.exchange(true)) return;
  // Owned by c10 from here on (SetCPUAllocator's contract); priority above the default.
  c10::SetCPUAllocator(new CountingAllocator(), /*priority=*/1);
}

bool TensorMemory::installed() { return g_installed.load(); }
int64_t TensorMemory::current() { return g_current.load(); }
int64_t TensorMemory::peak() { return g_peak.load(); }
void TensorMemory::reset_peak() { g_peak.store(g_current.load()); }

}  // namespace abm
