// sharded_map_test.cc — proves that ShardedMap (the allowance index) is exact
// under concurrency: when 8 threads race to insert the same 50,000 member ids
// with try_emplace inside with_shard, exactly one insert per id wins, size()
// is 50,000, every id maps to the value its winner wrote, and ids never
// inserted are not found (no false positives).
#include "engine/sharded_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace voucherd {
namespace {

std::string member_id(int i) { return "member-" + std::to_string(i); }

TEST(ShardedMapTest, SingleThreadInsertFindErase) {
  ShardedMap<int> map;
  const std::string a = "alice";
  const std::size_t ha = ShardedMap<int>::hash(a);
  EXPECT_EQ(ha, ShardedMap<int>::hash(std::string_view("alice")));  // stable

  const bool first = map.with_shard(ha, [&](auto& m) { return m.try_emplace(a, 7).second; });
  const bool second = map.with_shard(ha, [&](auto& m) { return m.try_emplace(a, 8).second; });
  EXPECT_TRUE(first);
  EXPECT_FALSE(second);
  EXPECT_EQ(map.size(), 1u);
  const int value = map.with_shard(ha, [&](auto& m) {
    auto it = m.find(to_absl(a));
    return it == m.end() ? -1 : it->second;
  });
  EXPECT_EQ(value, 7);  // the losing try_emplace did not overwrite

  const std::string b = "bob";
  const bool found_b =
      map.with_shard(ShardedMap<int>::hash(b), [&](auto& m) { return m.contains(to_absl(b)); });
  EXPECT_FALSE(found_b);

  const std::size_t erased = map.with_shard(ha, [&](auto& m) { return m.erase(a); });
  EXPECT_EQ(erased, 1u);
  EXPECT_EQ(map.size(), 0u);
}

TEST(ShardedMapTest, KeysAreComparedInFullNotByHash) {
  // Keys that share a prefix and keys that differ only in the last byte are
  // different entries.
  ShardedMap<int> map;
  const std::vector<std::string> keys{"m", "m1", "m2", "m10", std::string("m\0x", 3), "M"};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const bool fresh = map.with_shard(ShardedMap<int>::hash(keys[i]), [&](auto& m) {
      return m.try_emplace(keys[i], static_cast<int>(i)).second;
    });
    EXPECT_TRUE(fresh) << i;
  }
  EXPECT_EQ(map.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const int v = map.with_shard(ShardedMap<int>::hash(keys[i]), [&](auto& m) {
      auto it = m.find(to_absl(keys[i]));
      return it == m.end() ? -1 : it->second;
    });
    EXPECT_EQ(v, static_cast<int>(i)) << i;
  }
}

TEST(ShardedMapConcurrencyTest, EveryIdIsInsertedExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kIds = 50'000;
  std::vector<std::string> ids;
  ids.reserve(kIds);
  for (int i = 0; i < kIds; ++i) ids.push_back(member_id(i));

  ShardedMap<int> map;  // value: the thread whose insert won
  std::vector<std::atomic<int>> wins(kIds);
  std::vector<std::vector<int>> won_by(kThreads);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      // Half the threads walk forward, half backward, each from a different
      // start, so that every id is contended from several sides.
      for (int k = 0; k < kIds; ++k) {
        const int i = (t % 2 == 0) ? (k + t * 6'247) % kIds : (kIds - 1 - k + t * 6'247) % kIds;
        const std::string& id = ids[i];
        const bool fresh = map.with_shard(ShardedMap<int>::hash(id),
                                          [&](auto& m) { return m.try_emplace(id, t).second; });
        if (fresh) {
          wins[i].fetch_add(1, std::memory_order_relaxed);
          won_by[t].push_back(i);
        }
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();

  int wrong = 0;
  for (int i = 0; i < kIds; ++i) {
    if (wins[i].load() != 1) {
      if (++wrong <= 10) ADD_FAILURE() << ids[i] << " inserted " << wins[i].load() << " times";
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(map.size(), static_cast<std::size_t>(kIds));

  // Each id holds the value of the thread whose insert succeeded.
  for (int t = 0; t < kThreads; ++t) {
    for (int i : won_by[t]) {
      const int v = map.with_shard(ShardedMap<int>::hash(ids[i]), [&](auto& m) {
        auto it = m.find(to_absl(ids[i]));
        return it == m.end() ? -1 : it->second;
      });
      ASSERT_EQ(v, t) << ids[i];
    }
  }

  // No false positives: ids never inserted (including near misses of real
  // ones) are not found.
  int false_positives = 0;
  for (int i = 0; i < kIds; ++i) {
    for (const std::string& absent : {member_id(kIds + i), ids[i] + "x", "x" + ids[i],
                                      ids[i].substr(0, ids[i].size() - 1) + "#"}) {
      const bool found = map.with_shard(ShardedMap<int>::hash(absent),
                                        [&](auto& m) { return m.contains(to_absl(absent)); });
      if (found) ++false_positives;
    }
  }
  EXPECT_EQ(false_positives, 0);
  EXPECT_EQ(map.size(), static_cast<std::size_t>(kIds));  // look-ups inserted nothing
}

TEST(ShardedMapConcurrencyTest, LookupsDuringInsertsNeverSeeAbsentIds) {
  constexpr int kWriters = 4;
  constexpr int kReaders = 4;
  constexpr int kIds = 20'000;
  ShardedMap<int> map;
  std::atomic<bool> go{false};
  std::atomic<int> writers_left{kWriters};
  std::atomic<int> false_positives{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = w; i < kIds; i += kWriters) {
        const std::string id = "present-" + std::to_string(i);
        (void)map.with_shard(ShardedMap<int>::hash(id),
                             [&](auto& m) { return m.try_emplace(id, i).second; });
      }
      writers_left.fetch_sub(1, std::memory_order_release);
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      int i = r;
      while (writers_left.load(std::memory_order_acquire) > 0 || i < kIds) {
        const std::string id = "absent-" + std::to_string(i % kIds);
        const bool found = map.with_shard(ShardedMap<int>::hash(id),
                                          [&](auto& m) { return m.contains(to_absl(id)); });
        if (found) false_positives.fetch_add(1, std::memory_order_relaxed);
        i += kReaders;
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  EXPECT_EQ(false_positives.load(), 0);
  EXPECT_EQ(map.size(), static_cast<std::size_t>(kIds));
}

}  // namespace
}  // namespace voucherd
