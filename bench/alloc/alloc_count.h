// alloc_count.h — heap allocations counted in a benchmark process:
// alloc_count.cc (the object library voucherd_alloc_count, linked into the
// benchmark) replaces the global operator new (and delete), so that every
// allocation bumps one relaxed counter.
#pragma once

#include <cstdint>

namespace voucherd::bench {

// Allocations by operator new in this process so far.
[[nodiscard]] std::int64_t allocations();

}  // namespace voucherd::bench
