// slot_pool_test — SlotPool hands out each slot to one owner at a time, keeps
// it where it was under a number that names it both ways (across slabs), and
// reuses what was freed: on one thread, and with slots made on one thread
// and freed on another, where the counts come out exact once the threads
// end. Each test has a pool of its own (a Tag of its own).
#include "engine/slot_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "engine/model.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace voucherd {
namespace {

struct Payload {
  std::uint64_t words[8];  // 64 bytes, as a voucher's record
};

void fill(void* at, std::uint64_t tag) {
  auto* p = static_cast<Payload*>(at);
  for (std::uint64_t& w : p->words) w = tag;
}
bool holds(const void* at, std::uint64_t tag) {
  const auto* p = static_cast<const Payload*>(at);
  return std::all_of(std::begin(p->words), std::end(p->words),
                     [&](std::uint64_t w) { return w == tag; });
}

TEST(SlotPoolTest, NumbersNameSlotsBothWaysAcrossSlabs) {
  using Pool = SlotPool<struct NumbersTag, sizeof(Payload), 1 << 20>;
  // Three slabs and a bit, so slots on both sides of each slab's edge.
  const std::uint32_t count = 3 * Pool::kSlotsPerSlab + 100;
  std::vector<void*> slots;
  std::set<std::uint32_t> numbers;
  std::thread([&] {
    for (std::uint32_t i = 0; i < count; ++i) {
      void* at = Pool::allocate();
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(at) % 8, 0u);
      fill(at, i);
      slots.push_back(at);
      const std::uint32_t n = Pool::number_of(at);
      ASSERT_EQ(Pool::slot(n), at) << "slot " << i;
      // A slab's place in the high bits, the slot's place in the slab below.
      ASSERT_LT(n & Pool::kPlaceMask, Pool::kSlotsPerSlab) << "slot " << i;
      ASSERT_LT(n >> Pool::kNumberShift, Pool::kSlabsMax) << "slot " << i;
      ASSERT_TRUE(numbers.insert(n).second) << "number " << n << " given twice";
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      ASSERT_TRUE(holds(slots[i], i)) << "slot " << i << " was written over";
    }
    for (void* at : slots) Pool::free(at);
  }).join();
  // The first three slabs are full: every place of each was given out, and a
  // slab's last slot ends where the slab does.
  static_assert(Pool::kNumberShift == 12 && Pool::kSlotsPerSlab == 4095);
  for (std::uint32_t slab = 0; slab < 3; ++slab) {
    for (std::uint32_t place = 0; place < Pool::kSlotsPerSlab; ++place) {
      ASSERT_TRUE(numbers.contains((slab << Pool::kNumberShift) | place))
          << "slab " << slab << " place " << place;
    }
    const auto end = reinterpret_cast<std::uintptr_t>(
                         Pool::slot((slab << Pool::kNumberShift) | (Pool::kSlotsPerSlab - 1))) +
                     Pool::kSlotBytes;
    EXPECT_EQ(end % slot_pool::kSlabBytes, 0u) << "slab " << slab;
  }
  const Pool::Counts c = Pool::counts();
  EXPECT_GE(c.carved, count);
  EXPECT_EQ(c.carved, c.listed) << "every slot was freed, and the thread's cache handed back";
}

TEST(SlotPoolTest, NumbersOfSlotsThatDoNotFillASlabExactly) {
  // 24-byte slots: 10,920 to a slab, numbered in 14 bits of place.
  struct Small {
    std::uint64_t words[3];
  };
  using Pool = SlotPool<struct SmallTag, sizeof(Small), 1 << 20>;
  static_assert(Pool::kSlotsPerSlab == 10920 && Pool::kNumberShift == 14);
  // Two slabs and more than a batch of the third, so both are given out
  // whole (a thread takes fresh slots a batch at a time, last first).
  const std::uint32_t count = 2 * Pool::kSlotsPerSlab + 100;
  std::thread([&] {
    std::vector<void*> slots;
    std::set<std::uint32_t> numbers;
    for (std::uint32_t i = 0; i < count; ++i) {
      void* at = Pool::allocate();
      slots.push_back(at);
      const std::uint32_t n = Pool::number_of(at);
      ASSERT_EQ(Pool::slot(n), at) << "slot " << i;
      ASSERT_LT(n & Pool::kPlaceMask, Pool::kSlotsPerSlab) << "slot " << i;
      ASSERT_TRUE(numbers.insert(n).second) << "number " << n << " given twice";
    }
    for (std::uint32_t place = 0; place < Pool::kSlotsPerSlab; ++place) {
      ASSERT_TRUE(numbers.contains((std::uint32_t{1} << Pool::kNumberShift) | place)) << place;
    }
    for (void* at : slots) Pool::free(at);
  }).join();
}

TEST(SlotPoolTest, FreedSlotsAreReusedBeforeNewOnesAreCarved) {
  using Pool = SlotPool<struct ReuseTag, sizeof(Payload), 1 << 20>;
  std::thread([] {
    std::vector<void*> first;
    for (int i = 0; i < 1000; ++i) first.push_back(Pool::allocate());
    const std::uint64_t carved = Pool::counts().carved;
    for (void* at : first) Pool::free(at);
    // The same thousand slots come back, and nothing new is carved.
    std::vector<void*> second;
    for (int i = 0; i < 1000; ++i) second.push_back(Pool::allocate());
    EXPECT_EQ(Pool::counts().carved, carved);
    std::sort(first.begin(), first.end());
    std::sort(second.begin(), second.end());
    EXPECT_EQ(first, second);
    for (void* at : second) Pool::free(at);
  }).join();
  const Pool::Counts c = Pool::counts();
  EXPECT_EQ(c.carved, c.listed);
}

TEST(SlotPoolTest, SlotsMadeOnOneThreadAndFreedOnAnotherAreCountedExactly) {
  using Pool = SlotPool<struct ThreadsTag, sizeof(Payload), 1 << 20>;
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 50'000;
  // Each thread makes slots, checks that no live slot is given twice, and
  // hands every other one to the next thread to free; it frees the rest
  // itself, and what the previous thread handed it.
  std::mutex mu;
  std::set<std::uint32_t> live;  // made and not yet freed, by number
  std::size_t live_peak = 0;
  std::vector<std::deque<void*>> handed(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (std::uint64_t i = 0; i < kPerThread; ++i) {
        void* at = Pool::allocate();
        const std::uint64_t tag = (static_cast<std::uint64_t>(t) << 32) | i;
        fill(at, tag);
        {
          std::lock_guard lock(mu);
          ASSERT_TRUE(live.insert(Pool::number_of(at)).second) << "a live slot given again";
          live_peak = std::max(live_peak, live.size());
          if (i % 2 == 0) {
            handed[(t + 1) % kThreads].push_back(at);
          } else {
            mine.push_back(at);
          }
        }
        if (mine.size() == 300 || i + 1 == kPerThread) {
          for (void* m : mine) {
            ASSERT_TRUE(holds(m, *static_cast<std::uint64_t*>(m)));
            {
              std::lock_guard lock(mu);
              live.erase(Pool::number_of(m));
            }
            Pool::free(m);
          }
          mine.clear();
        }
        std::vector<void*> theirs;
        {
          std::lock_guard lock(mu);
          theirs.assign(handed[t].begin(), handed[t].end());
          handed[t].clear();
        }
        for (void* h : theirs) {
          ASSERT_EQ(*static_cast<std::uint64_t*>(h) >> 32,
                    static_cast<std::uint64_t>((t + kThreads - 1) % kThreads));
          {
            std::lock_guard lock(mu);
            live.erase(Pool::number_of(h));
          }
          Pool::free(h);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // Slots handed to a thread after it ended are freed here, on this thread,
  // and this thread's cache is emptied by a thread of its own doing nothing
  // else: so every slot ends in the shared list.
  std::vector<void*> rest;
  for (auto& h : handed) rest.insert(rest.end(), h.begin(), h.end());
  ASSERT_EQ(rest.size(), live.size());
  std::thread([&] {
    for (void* h : rest) Pool::free(h);
  }).join();
  const Pool::Counts c = Pool::counts();
  EXPECT_EQ(c.carved, c.listed) << "slots in use after every one was freed";
  // Reused rather than carved: no more than were in use at once, and what
  // the threads kept in their caches or were about to free (one each), and
  // one batch carved while the list was empty.
  EXPECT_LE(c.carved, live_peak + kThreads * (Pool::kCacheSlots + 2) + Pool::kBatchSlots);
  EXPECT_LT(c.carved, kThreads * kPerThread);
}

#if defined(__SANITIZE_ADDRESS__)
TEST(SlotPoolTest, AFreeSlotIsPoisonedForAddressSanitizer) {
  using Pool = SlotPool<struct PoisonTag, sizeof(Payload), 1 << 20>;
  std::thread([] {
    void* at = Pool::allocate();
    fill(at, 7);
    const auto* bytes = static_cast<const char*>(at);
    for (std::size_t i = 0; i < sizeof(Payload); ++i) {
      ASSERT_FALSE(__asan_address_is_poisoned(bytes + i)) << "byte " << i << " of a slot in use";
    }
    Pool::free(at);
    for (std::size_t i = 0; i < sizeof(Payload); ++i) {
      ASSERT_TRUE(__asan_address_is_poisoned(bytes + i)) << "byte " << i << " of a free slot";
    }
    EXPECT_EQ(Pool::allocate(), at) << "the slot freed last is made first";
    EXPECT_FALSE(__asan_address_is_poisoned(bytes));
    Pool::free(at);
  }).join();
}
#endif

TEST(SlotPoolTest, VoucherRecordsLiveInTheirPool) {
  const VoucherSku sku{"c", "s", "site", SkuKind::kHotel, 100, 1000};
  const std::optional<PackedCode> code = PackedCode::pack("X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  ASSERT_TRUE(code.has_value());
  std::thread([&] {
    const VoucherPtr v = VoucherRecord::make(&sku, *code, "m-1", "", 1'000);
    const std::uint32_t n = VoucherRecordPool::number_of(v.get());
    EXPECT_EQ(VoucherRecordPool::slot(n), v.get());
    EXPECT_EQ(v->member_id(), "m-1");
  }).join();
}

}  // namespace
}  // namespace voucherd
