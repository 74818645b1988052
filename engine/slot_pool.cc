#include "engine/slot_pool.h"

#include <sys/mman.h>

#include <cstdint>

#include "engine/check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace voucherd::slot_pool {

std::byte* map_slab() {
  // Twice the size, then the parts before and after the aligned slab are
  // unmapped: nothing of them stays mapped, touched or counted. (malloc's
  // aligned_alloc would leave a chunk header on the page below the slab.)
  constexpr std::size_t kMapped = 2 * kSlabBytes;
  void* mapped = mmap(nullptr, kMapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  VOUCHERD_CHECK(mapped != MAP_FAILED, "the system maps a slab of pool slots");
  const auto start = reinterpret_cast<std::uintptr_t>(mapped);
  const std::uintptr_t slab = (start + kSlabBytes - 1) & ~(std::uintptr_t{kSlabBytes} - 1);
  if (slab > start) munmap(mapped, slab - start);
  if (const std::uintptr_t end = start + kMapped; end > slab + kSlabBytes) {
    munmap(reinterpret_cast<void*>(slab + kSlabBytes), end - (slab + kSlabBytes));
  }
#if defined(__SANITIZE_ADDRESS__)
  // LeakSanitizer scans what malloc gave out, not this mapping: a heap
  // block that only a live record points to (its extras, a long member id,
  // a SKU of its own) would be reported as leaked. Slabs are never unmapped.
  __lsan_register_root_region(reinterpret_cast<void*>(slab), kSlabBytes);
#endif
  return reinterpret_cast<std::byte*>(slab);
}

}  // namespace voucherd::slot_pool
