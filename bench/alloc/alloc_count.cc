// alloc_count.cc — the counting operator new of bench/alloc/alloc_count.h.
#include "bench/alloc/alloc_count.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::int64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace voucherd::bench {

std::int64_t allocations() { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace voucherd::bench
