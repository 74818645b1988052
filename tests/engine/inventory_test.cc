// inventory_test.cc — proves that Inventory never oversells: single-threaded
// take/take_any/give_back/sold_out semantics, and under 8 concurrent threads
// exactly `stock` takes succeed (over 1 and over 300 SKUs), no counter ever
// goes below zero, sold_out() holds at the end, and with concurrent
// give_back() the successful takes equal initial stock plus units given back.
#include "engine/inventory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <thread>
#include <vector>

#include "engine/limits.h"

namespace voucherd {
namespace {

constexpr int kThreads = 8;

// `total` units spread as evenly as possible over `skus` SKUs.
std::vector<std::int64_t> spread(std::int64_t total, std::size_t skus) {
  std::vector<std::int64_t> units(skus, total / static_cast<std::int64_t>(skus));
  for (std::size_t i = 0; i < static_cast<std::size_t>(total % static_cast<std::int64_t>(skus));
       ++i) {
    ++units[i];
  }
  return units;
}

TEST(InventoryTest, TakeCountsDownToZeroAndStops) {
  const std::vector<std::int64_t> units{3, 0, 1};
  Inventory inv(units);
  EXPECT_EQ(inv.sku_count(), 3u);
  EXPECT_FALSE(inv.sold_out());
  EXPECT_EQ(inv.available(0), 3);
  EXPECT_EQ(inv.available(1), 0);
  EXPECT_TRUE(inv.sku_empty(1));
  EXPECT_FALSE(inv.sku_empty(0));

  EXPECT_FALSE(inv.take(1));  // no stock at all
  EXPECT_TRUE(inv.take(0));
  EXPECT_TRUE(inv.take(0));
  EXPECT_TRUE(inv.take(0));
  EXPECT_FALSE(inv.take(0));
  EXPECT_EQ(inv.available(0), 0);
  EXPECT_TRUE(inv.sku_empty(0));
  EXPECT_FALSE(inv.sold_out());  // SKU 2 still has one

  EXPECT_TRUE(inv.take(2));
  EXPECT_FALSE(inv.take(2));
  EXPECT_TRUE(inv.sold_out());
  for (std::uint32_t s = 0; s < 3; ++s) EXPECT_EQ(inv.available(s), 0) << "sku " << s;
}

TEST(InventoryTest, TakeAnyStartsAtHintAndSkipsEmptySkus) {
  const std::vector<std::int64_t> units{1, 0, 2, 0};
  Inventory inv(units);
  // Hint 2: SKU 2 first.
  EXPECT_EQ(inv.take_any(2), 2u);
  // Hint 3 (empty SKU) wraps around within the word to the next with stock: 0.
  EXPECT_EQ(inv.take_any(3), 0u);
  // Only SKU 2 is left, whatever the hint.
  EXPECT_EQ(inv.take_any(0), 2u);
  EXPECT_EQ(inv.take_any(1), kNoSku);
  EXPECT_EQ(inv.take_any(123456789), kNoSku);
  EXPECT_TRUE(inv.sold_out());
}

TEST(InventoryTest, TakeAnyDrainsEverySkuAcrossBitmapWords) {
  // 300 SKUs span five 64-bit bitmap words; hints beyond sku_count wrap.
  const std::vector<std::int64_t> units = spread(1000, 300);
  Inventory inv(units);
  std::vector<std::int64_t> taken(300, 0);
  for (int i = 0; i < 1000; ++i) {
    const std::uint32_t sku = inv.take_any(static_cast<std::uint32_t>(i) * 2654435761u);
    ASSERT_NE(sku, kNoSku) << "take " << i;
    ASSERT_LT(sku, 300u);
    ++taken[sku];
  }
  EXPECT_EQ(inv.take_any(7), kNoSku);
  EXPECT_TRUE(inv.sold_out());
  EXPECT_EQ(taken, units);
}

TEST(InventoryTest, GiveBackRefillsASoldOutInventory) {
  const std::vector<std::int64_t> units{1, 1};
  Inventory inv(units);
  EXPECT_TRUE(inv.take(0));
  EXPECT_TRUE(inv.take(1));
  EXPECT_TRUE(inv.sold_out());
  EXPECT_EQ(inv.take_any(0), kNoSku);

  inv.give_back(1, 2);
  EXPECT_FALSE(inv.sold_out());
  EXPECT_FALSE(inv.sku_empty(1));
  EXPECT_TRUE(inv.sku_empty(0));
  EXPECT_EQ(inv.available(1), 2);
  EXPECT_EQ(inv.take_any(0), 1u);  // found although the hint names SKU 0
  EXPECT_TRUE(inv.take(1));
  EXPECT_FALSE(inv.take(1));
  EXPECT_TRUE(inv.sold_out());
}

TEST(InventoryTest, EmptyAndZeroStockInventoriesAreSoldOut) {
  Inventory none(std::span<const std::int64_t>{});
  EXPECT_EQ(none.sku_count(), 0u);
  EXPECT_TRUE(none.sold_out());
  EXPECT_EQ(none.take_any(0), kNoSku);

  const std::vector<std::int64_t> zeros(70, 0);
  Inventory zero(zeros);
  EXPECT_TRUE(zero.sold_out());
  EXPECT_EQ(zero.take_any(65), kNoSku);
  EXPECT_FALSE(zero.take(69));
}

TEST(InventoryTest, MaximumSkuCountIsUsable) {
  const std::vector<std::int64_t> units(limits::kSkusPerCampaignMax, 1);
  Inventory inv(units);
  std::vector<int> seen(limits::kSkusPerCampaignMax, 0);
  for (std::size_t i = 0; i < limits::kSkusPerCampaignMax; ++i) {
    const std::uint32_t sku = inv.take_any(static_cast<std::uint32_t>(i * 977));
    ASSERT_NE(sku, kNoSku);
    ASSERT_LT(sku, limits::kSkusPerCampaignMax);
    ++seen[sku];
  }
  EXPECT_EQ(inv.take_any(0), kNoSku);
  EXPECT_TRUE(inv.sold_out());
  for (std::size_t s = 0; s < seen.size(); ++s) EXPECT_EQ(seen[s], 1) << "sku " << s;
}

// ---------------------------------------------------------------- concurrency

struct HammerParam {
  std::int64_t stock;
  std::size_t skus;
  bool use_take_any;  // false: take() on SKUs picked round-robin by thread
};

void PrintTo(const HammerParam& p, std::ostream* os) {
  *os << p.stock << " units over " << p.skus << " SKUs with "
      << (p.use_take_any ? "take_any" : "take");
}

class InventoryHammerTest : public ::testing::TestWithParam<HammerParam> {};

// A watcher thread samples every counter while the takers run and records the
// lowest value it ever saw.
class CounterWatcher {
 public:
  explicit CounterWatcher(const Inventory& inv) : inv_(inv), thread_([this] { run(); }) {}
  ~CounterWatcher() { stop(); }
  void stop() {
    stop_.store(true, std::memory_order_release);
    if (thread_.joinable()) thread_.join();
  }
  std::int64_t lowest() const { return lowest_; }

 private:
  void run() {
    while (!stop_.load(std::memory_order_acquire)) {
      for (std::uint32_t s = 0; s < inv_.sku_count(); ++s) {
        lowest_ = std::min(lowest_, inv_.available(s));
      }
      std::this_thread::yield();
    }
  }
  const Inventory& inv_;
  std::atomic<bool> stop_{false};
  std::int64_t lowest_ = 0;
  std::thread thread_;
};

TEST_P(InventoryHammerTest, ExactlyStockTakesSucceed) {
  const HammerParam p = GetParam();
  const std::vector<std::int64_t> units = spread(p.stock, p.skus);
  Inventory inv(units);
  CounterWatcher watcher(inv);

  std::atomic<bool> go{false};
  std::vector<std::int64_t> ok(kThreads, 0);
  std::vector<std::vector<std::int64_t>> per_sku(kThreads, std::vector<std::int64_t>(p.skus, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::uint32_t hint = static_cast<std::uint32_t>(t) * 2654435761u;
      if (p.use_take_any) {
        for (;;) {
          const std::uint32_t sku = inv.take_any(hint++);
          if (sku == kNoSku) break;
          ++ok[t];
          ++per_sku[t][sku];
        }
      } else {
        // take() on every SKU in turn, starting at different SKUs per
        // thread, until a full pass finds nothing.
        const auto n = static_cast<std::uint32_t>(p.skus);
        std::uint32_t sku = static_cast<std::uint32_t>(t) % n;
        std::uint32_t misses = 0;
        while (misses < n) {
          if (inv.take(sku)) {
            ++ok[t];
            ++per_sku[t][sku];
            misses = 0;
          } else {
            ++misses;
            sku = (sku + 1) % n;
          }
        }
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  watcher.stop();

  const std::int64_t total = std::accumulate(ok.begin(), ok.end(), std::int64_t{0});
  EXPECT_EQ(total, p.stock);
  for (std::size_t s = 0; s < p.skus; ++s) {
    std::int64_t taken = 0;
    for (int t = 0; t < kThreads; ++t) taken += per_sku[t][s];
    ASSERT_EQ(taken, units[s]) << "sku " << s;
    ASSERT_EQ(inv.available(static_cast<std::uint32_t>(s)), 0) << "sku " << s;
  }
  EXPECT_GE(watcher.lowest(), 0);
  EXPECT_TRUE(inv.sold_out());
  EXPECT_EQ(inv.take_any(0), kNoSku);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, InventoryHammerTest,
    ::testing::Values(HammerParam{1'000, 1, false}, HammerParam{1'000, 1, true},
                      HammerParam{1'000, 300, false}, HammerParam{1'000, 300, true},
                      HammerParam{100'000, 1, false}, HammerParam{100'000, 1, true},
                      HammerParam{100'000, 300, false}, HammerParam{100'000, 300, true}),
    [](const ::testing::TestParamInfo<HammerParam>& param_info) {
      return "Stock" + std::to_string(param_info.param.stock) + "Skus" +
             std::to_string(param_info.param.skus) +
             (param_info.param.use_take_any ? "TakeAny" : "Take");
    });

struct GiveBackParam {
  std::size_t skus;
  std::int64_t initial;
  std::int64_t gives_per_giver;
};

void PrintTo(const GiveBackParam& p, std::ostream* os) {
  *os << p.initial << " units over " << p.skus << " SKUs, " << p.gives_per_giver
      << " given back per giver";
}

class InventoryGiveBackTest : public ::testing::TestWithParam<GiveBackParam> {};

// Half the threads take (take_any), the other half return units with
// give_back() while the takers run. Every unit put in is taken exactly once,
// and none is left stranded behind a cleared bitmap bit. The one-SKU shape
// keeps the counter hovering at 0 and 1, so that takers clearing the SKU's
// bit race with givers setting it as often as possible.
TEST_P(InventoryGiveBackTest, GiveBackWhileTakingLosesNoUnit) {
  const std::size_t kSkus = GetParam().skus;
  const std::int64_t kInitial = GetParam().initial;
  constexpr int kGivers = 4;
  constexpr int kTakers = kThreads - kGivers;
  const std::int64_t kGivesPerGiver = GetParam().gives_per_giver;  // 1 or 2 units per call

  const std::vector<std::int64_t> units = spread(kInitial, kSkus);
  Inventory inv(units);
  CounterWatcher watcher(inv);

  std::atomic<bool> go{false};
  std::atomic<int> givers_left{kGivers};
  std::vector<std::int64_t> taken(kTakers, 0);
  std::vector<std::int64_t> given(kGivers, 0);
  std::vector<std::thread> threads;
  for (int g = 0; g < kGivers; ++g) {
    threads.emplace_back([&, g] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      auto sku = static_cast<std::uint32_t>(g * 17);
      std::int64_t done = 0;
      while (done < kGivesPerGiver) {
        const std::int64_t n = (done % 3 == 0 && done + 2 <= kGivesPerGiver) ? 2 : 1;
        inv.give_back(static_cast<std::uint32_t>(sku % kSkus), n);
        done += n;
        sku += 13;
        if (done % 64 == 0) std::this_thread::yield();  // let takers empty SKUs in between
      }
      given[g] = done;
      givers_left.fetch_sub(1, std::memory_order_release);
    });
  }
  for (int t = 0; t < kTakers; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::uint32_t hint = static_cast<std::uint32_t>(t) * 40503u;
      for (;;) {
        if (inv.take_any(hint++) != kNoSku) {
          ++taken[t];
          continue;
        }
        // Empty now. Stop only once no giver can add more, after one more
        // look (a give_back may have landed between the miss and the check).
        if (givers_left.load(std::memory_order_acquire) == 0) {
          if (inv.take_any(hint++) != kNoSku) {
            ++taken[t];
            continue;
          }
          break;
        }
        std::this_thread::yield();
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  watcher.stop();

  // Everything happened-before this point: a final drain must find nothing
  // the takers missed.
  std::int64_t late = 0;
  while (inv.take_any(0) != kNoSku) ++late;
  EXPECT_EQ(late, 0) << "units left behind after every taker saw the inventory empty";

  const std::int64_t total_given = std::accumulate(given.begin(), given.end(), std::int64_t{0});
  const std::int64_t total_taken =
      std::accumulate(taken.begin(), taken.end(), std::int64_t{0}) + late;
  EXPECT_EQ(total_given, kGivers * kGivesPerGiver);
  EXPECT_EQ(total_taken, kInitial + total_given);
  EXPECT_GE(watcher.lowest(), 0);
  for (std::uint32_t s = 0; s < kSkus; ++s) EXPECT_EQ(inv.available(s), 0) << "sku " << s;
  EXPECT_TRUE(inv.sold_out());
}

INSTANTIATE_TEST_SUITE_P(Shapes, InventoryGiveBackTest,
                         ::testing::Values(GiveBackParam{70, 20'000, 5'000},  // two bitmap words
                                           GiveBackParam{1, 0, 50'000}),
                         [](const ::testing::TestParamInfo<GiveBackParam>& param_info) {
                           return "Skus" + std::to_string(param_info.param.skus) + "Initial" +
                                  std::to_string(param_info.param.initial);
                         });

}  // namespace
}  // namespace voucherd
