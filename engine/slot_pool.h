// slot_pool.h — fixed-size slots for small objects that are made and freed on
// any thread: a slot never moves, has a 32-bit number, and is reused once
// freed.
//
// SlotPool<Tag, kSlotBytes, kSlotsMax> is one pool for the whole process (its
// state is static, one set per Tag). Slots are carved, as they are first
// needed, from slabs of kSlabBytes (256 KiB) that are aligned to their size
// and open with a 64-byte header naming their place in the slab directory.
// A slot's number is its slab's place, shifted left by kNumberShift, or'ed
// with its place in the slab (numbers a slab has no slot for are never given
// out). So a slot's number follows from its address (the slab's header, then
// the offset) and its address from its number (the directory, then the
// offset: a shift and a mask, no division), and a slot costs its size and
// nothing more: a 64-byte record takes 64 bytes, where malloc takes an
// 80-byte chunk (glibc: the size and 8 bytes, rounded up to 16). The
// directory holds the pointers to every slab there can be (kSlotsMax
// slots), sized up front and each written once, so a reader never sees it
// move.
//
// Freed slots are kept by the thread that frees them (up to kCacheSlots) and
// handed between threads in batches of up to kBatchSlots through one list
// under a mutex: a thread takes the mutex once per kBatchSlots slots at
// most, and no lock is shared by every allocation. A thread's cached slots go
// back to the list when it ends.
//
// Memory: slabs are never given back to the system. A pool holds the peak of
// its slots in use at once, plus up to kCacheSlots free ones per thread
// (every slab page is touched only once a slot on it is carved).
//
// Under AddressSanitizer a free slot is poisoned, so a use after free is
// reported until the slot is made again. LeakSanitizer scans the slabs
// (map_slab registers each as a root region), so what a live record points
// to is not a leak; a slot that is never freed is not reported as one either
// (counts() shows it).
//
// Usage:
//   using Pool = SlotPool<struct RecordTag, sizeof(Record), 1 << 20>;
//   void* at = Pool::allocate();  auto* r = new (at) Record(...);
//   std::uint32_t n = Pool::number_of(r);  Pool::slot(n) == r;
//   r->~Record();  Pool::free(r);
//
// Thread-safety: every function may be called from any thread. A number or
// an address obtained on one thread may be used on another that received it
// through any synchronisation (the slab was published before).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "engine/check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define VOUCHERD_POOL_POISON(at, bytes) ASAN_POISON_MEMORY_REGION(at, bytes)
#define VOUCHERD_POOL_UNPOISON(at, bytes) ASAN_UNPOISON_MEMORY_REGION(at, bytes)
#else
#define VOUCHERD_POOL_POISON(at, bytes) ((void)(at), (void)(bytes))
#define VOUCHERD_POOL_UNPOISON(at, bytes) ((void)(at), (void)(bytes))
#endif

namespace voucherd {
namespace slot_pool {

// The size of a slab, and the alignment it is mapped at.
inline constexpr std::size_t kSlabBytes = std::size_t{1} << 18;
// A slab's header: its number in the directory (a cache line, so the slots
// after it start on one).
inline constexpr std::size_t kHeaderBytes = 64;

// A new slab of kSlabBytes, aligned to kSlabBytes, zero-filled; its pages
// become resident as they are first written. Aborts when the system has no
// memory to map.
[[nodiscard]] std::byte* map_slab();

}  // namespace slot_pool

template <class Tag, std::size_t kSlotBytesArg, std::uint64_t kSlotsMaxArg>
class SlotPool final {
 public:
  static constexpr std::size_t kSlotBytes = kSlotBytesArg;
  static constexpr std::uint32_t kSlotsPerSlab =
      static_cast<std::uint32_t>((slot_pool::kSlabBytes - slot_pool::kHeaderBytes) / kSlotBytes);
  static constexpr std::uint32_t kSlabsMax =
      static_cast<std::uint32_t>((kSlotsMaxArg + kSlotsPerSlab - 1) / kSlotsPerSlab);
  // A number's low kNumberShift bits are the slot's place in its slab.
  static constexpr int kNumberShift = std::bit_width(kSlotsPerSlab - 1);
  static constexpr std::uint32_t kPlaceMask = (std::uint32_t{1} << kNumberShift) - 1;
  // Free slots a thread keeps for itself, and how many it hands on (or
  // takes) at once.
  static constexpr std::uint32_t kCacheSlots = 128;
  static constexpr std::uint32_t kBatchSlots = 64;
  // No slot: no number is this.
  static constexpr std::uint32_t kNone = UINT32_MAX;

  static_assert(kSlotBytes >= 16 && kSlotBytes % 8 == 0,
                "a free slot holds its links, and slots stay 8-byte aligned");
  static_assert(kSlotsPerSlab > kBatchSlots, "a slab holds a batch");
  static_assert((std::uint64_t{kSlabsMax} << kNumberShift) < kNone, "numbers fit 32 bits");
  static_assert(kBatchSlots * 2 == kCacheSlots, "a full cache hands on half of it");

  SlotPool() = delete;

  // A slot (kSlotBytes, 8-byte aligned, contents unspecified).
  [[nodiscard]] static void* allocate() {
    Cache& c = cache_;
    if (c.count == 0) [[unlikely]] {
      if (!refill(c)) return take_one();
    }
    void* at = slot(c.numbers[--c.count]);
    VOUCHERD_POOL_UNPOISON(at, kSlotBytes);
    return at;
  }

  // Gives back a slot allocate() returned; what it held is gone.
  static void free(void* at) {
    const std::uint32_t n = number_of(at);
    VOUCHERD_POOL_POISON(at, kSlotBytes);
    Cache& c = cache_;
    if (c.count == kCacheSlots || !c.open) [[unlikely]] {
      if (!make_room(c)) {
        put_one(n);
        return;
      }
    }
    c.numbers[c.count++] = n;
  }

  // The number of a slot allocate() returned, and the slot of a number.
  [[nodiscard]] static std::uint32_t number_of(const void* at) {
    const auto address = reinterpret_cast<std::uintptr_t>(at);
    const auto* slab = reinterpret_cast<const std::byte*>(address & ~(slot_pool::kSlabBytes - 1));
    std::uint32_t slab_number = 0;
    std::memcpy(&slab_number, slab, sizeof slab_number);
    const auto offset = static_cast<std::uint32_t>(
        (address - reinterpret_cast<std::uintptr_t>(slab) - slot_pool::kHeaderBytes) / kSlotBytes);
    VOUCHERD_DCHECK(slab_number < kSlabsMax && offset < kSlotsPerSlab, "a slot of this pool");
    return (slab_number << kNumberShift) | offset;
  }
  [[nodiscard]] static void* slot(std::uint32_t number) {
    // Acquire pairs with the release that published the slab. (Whoever
    // holds a number got it after the slab was published, so the load sees
    // it; acquire costs nothing more on x86.)
    VOUCHERD_DCHECK((number >> kNumberShift) < kSlabsMax && (number & kPlaceMask) < kSlotsPerSlab,
                    "a number this pool gave out");
    std::byte* slab = slabs_[number >> kNumberShift].load(std::memory_order_acquire);
    VOUCHERD_DCHECK(slab != nullptr, "a number this pool gave out");
    return slab + slot_pool::kHeaderBytes + std::size_t{number & kPlaceMask} * kSlotBytes;
  }

  // Slots ever carved from slabs, and free slots in the list shared by
  // threads (not those a thread keeps). Once every thread that used the
  // pool has ended, carved - listed is the slots in use.
  struct Counts {
    std::uint64_t carved = 0;
    std::uint64_t listed = 0;
  };
  [[nodiscard]] static Counts counts() {
    std::lock_guard lock(shared_.mu);
    return {shared_.carved, shared_.listed};
  }

 private:
  // A thread's free slots, last freed last. Trivially destructible, so it
  // can be used until the thread's storage is gone; `open` is false before
  // the thread first registers its Closer, and again once it ran.
  struct Cache {
    std::uint32_t count = 0;
    bool open = false;
    bool closed = false;
    std::array<std::uint32_t, kCacheSlots> numbers{};
  };
  // Hands a thread's cached slots to the shared list when the thread ends.
  struct Closer {
    Closer() = default;
    Closer(const Closer&) = delete;
    Closer& operator=(const Closer&) = delete;
    ~Closer() {
      Cache& c = cache_;
      for (std::uint32_t from = 0; from < c.count; from += kBatchSlots) {
        push_batch(c.numbers.data() + from, std::min(kBatchSlots, c.count - from));
      }
      c.count = 0;
      c.open = false;
      c.closed = true;
    }
  };
  // A free slot's links (in its first 12 bytes): the next slot of its
  // batch, and, in a batch's first slot, the next batch and the batch's
  // size. Under ASan the pool unpoisons them only while it reads or writes
  // them, in whole 8-byte granules (kLinkBytes), so the slot stays poisoned
  // for anyone else.
  enum Link : std::size_t { kNextSlot = 0, kNextBatch = 1, kBatchSize = 2 };
  static constexpr std::size_t kLinkBytes = 16;
  static std::uint32_t read_link(std::uint32_t n, Link link) {
    auto* at = static_cast<std::byte*>(slot(n));
    std::uint32_t value = 0;
    VOUCHERD_POOL_UNPOISON(at, kLinkBytes);
    std::memcpy(&value, at + link * sizeof value, sizeof value);
    VOUCHERD_POOL_POISON(at, kLinkBytes);
    return value;
  }
  static void write_link(std::uint32_t n, Link link, std::uint32_t value) {
    auto* at = static_cast<std::byte*>(slot(n));
    VOUCHERD_POOL_UNPOISON(at, kLinkBytes);
    std::memcpy(at + link * sizeof value, &value, sizeof value);
    VOUCHERD_POOL_POISON(at, kLinkBytes);
  }

  // Opens the thread's cache (registering its Closer) unless the thread is
  // ending; false when it is.
  static bool open(Cache& c) {
    if (c.open) return true;
    if (c.closed) return false;
    [[maybe_unused]] Closer& closer = closer_;  // constructed, so its destructor runs
    c.open = true;
    return true;
  }

  // Fills an empty cache with a batch from the shared list, or with fresh
  // slots; false (nothing taken) when the thread is ending.
  static bool refill(Cache& c) {
    if (!open(c)) return false;
    std::uint32_t first = kNone;
    {
      std::lock_guard lock(shared_.mu);
      first = pop_batch_locked();
      if (first == kNone) {
        for (std::uint32_t i = 0; i < kBatchSlots; ++i) c.numbers[i] = carve_locked();
        c.count = kBatchSlots;
        return true;
      }
    }
    // The batch is this thread's alone now: its links are read unlocked.
    std::uint32_t taken = 0;
    for (std::uint32_t n = first; n != kNone; n = read_link(n, kNextSlot)) {
      VOUCHERD_CHECK(taken < kBatchSlots, "a batch holds at most kBatchSlots slots");
      c.numbers[taken++] = n;
    }
    c.count = taken;
    return true;
  }

  // Makes room in a full cache by handing its oldest batch on; false when
  // the thread is ending (the slot goes straight to the shared list).
  static bool make_room(Cache& c) {
    if (!open(c)) return false;
    if (c.count < kCacheSlots) return true;
    push_batch(c.numbers.data(), kBatchSlots);
    std::memmove(c.numbers.data(), c.numbers.data() + kBatchSlots,
                 (kCacheSlots - kBatchSlots) * sizeof(std::uint32_t));
    c.count = kCacheSlots - kBatchSlots;
    return true;
  }

  // Links `count` (at most kBatchSlots) free slots into a batch, unlocked,
  // and puts it on the shared list.
  static void push_batch(const std::uint32_t* numbers, std::uint32_t count) {
    if (count == 0) return;
    for (std::uint32_t i = 0; i < count; ++i) {
      write_link(numbers[i], kNextSlot, i + 1 < count ? numbers[i + 1] : kNone);
    }
    write_link(numbers[0], kBatchSize, count);
    std::lock_guard lock(shared_.mu);
    write_link(numbers[0], kNextBatch, shared_.batches);
    shared_.batches = numbers[0];
    shared_.listed += count;
  }
  // Takes the first batch off the shared list; its first slot, or kNone.
  static std::uint32_t pop_batch_locked() {
    const std::uint32_t first = shared_.batches;
    if (first == kNone) return kNone;
    shared_.batches = read_link(first, kNextBatch);
    shared_.listed -= read_link(first, kBatchSize);
    return first;
  }
  // A slot never made before, from the last slab or a new one.
  static std::uint32_t carve_locked() {
    const std::uint64_t n = shared_.carved;
    VOUCHERD_CHECK(n < std::uint64_t{kSlabsMax} * kSlotsPerSlab,
                   "the pool's slots are bounded (limits.h): memory runs out long before");
    const auto slab_number = static_cast<std::uint32_t>(n / kSlotsPerSlab);
    if (n % kSlotsPerSlab == 0) {
      std::byte* slab = slot_pool::map_slab();
      std::memcpy(slab, &slab_number, sizeof slab_number);
      VOUCHERD_POOL_POISON(slab + slot_pool::kHeaderBytes,
                           slot_pool::kSlabBytes - slot_pool::kHeaderBytes);
      // Release: the header is written before any thread can read the slab
      // through the directory.
      slabs_[slab_number].store(slab, std::memory_order_release);
    }
    ++shared_.carved;
    return (slab_number << kNumberShift) | static_cast<std::uint32_t>(n % kSlotsPerSlab);
  }

  // A thread that is ending takes and gives slots one at a time.
  static void* take_one() {
    std::uint32_t n = kNone;
    {
      std::lock_guard lock(shared_.mu);
      n = pop_batch_locked();
      if (n == kNone) {
        n = carve_locked();
      } else if (const std::uint32_t rest = read_link(n, kNextSlot); rest != kNone) {
        // The rest of the batch goes back on the list as a batch.
        const std::uint32_t size = read_link(n, kBatchSize);
        write_link(rest, kBatchSize, size - 1);
        write_link(rest, kNextBatch, shared_.batches);
        shared_.batches = rest;
        shared_.listed += size - 1;
      }
    }
    void* at = slot(n);
    VOUCHERD_POOL_UNPOISON(at, kSlotBytes);
    return at;
  }
  static void put_one(std::uint32_t n) { push_batch(&n, 1); }

  struct Shared {
    std::mutex mu;
    std::uint32_t batches = kNone;  // the first slot of the first batch
    std::uint64_t listed = 0;       // free slots in the batches
    std::uint64_t carved = 0;       // slots carved so far (the next one follows from it)
  };

  static constinit inline Shared shared_{};
  static constinit inline std::array<std::atomic<std::byte*>, kSlabsMax> slabs_{};
  static inline thread_local constinit Cache cache_{};
  static inline thread_local Closer closer_;
};

}  // namespace voucherd
