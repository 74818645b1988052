// sharded_map.h — a concurrent string-keyed map: kShards hash maps, each under
// its own small spin lock. Exact (full keys are stored and compared: no false
// positives), and two threads only meet when their keys hash to one shard.
//
// Usage:
//   ShardedMap<Entry> index;
//   const std::size_t h = ShardedMap<Entry>::hash(member_id);
//   bool fresh = index.with_shard(h, [&](auto& map) {
//     return map.try_emplace(std::string(member_id)).second;
//   });
//
// The callback runs under the shard lock: it must be short, must not block
// and must not call back into anything that could take another shard lock.
// Lookups with absl::string_view do not allocate.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "engine/limits.h"

namespace voucherd {

// A test-and-test-and-set lock for critical sections of a few hundred
// nanoseconds. Acquire on lock / release on unlock order the protected data.
class SpinLock final {
 public:
  void lock() {
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ > 64) std::this_thread::yield();  // holder was preempted
      }
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// kShards values of `Data`, each under its own SpinLock; a key's hash picks
// the shard. `Data` is whatever one shard keeps (ShardedMap: one hash map).
template <class Data>
class Sharded final {
 public:
  static constexpr std::size_t kShards = limits::kAllowanceShards;

  template <class Fn>
  decltype(auto) with_shard(std::size_t key_hash, Fn&& fn) {
    // The low bits pick the hash map's own slots; use high bits for the shard.
    Shard& s = shards_[(key_hash >> 52) & (kShards - 1)];
    std::lock_guard lock(s.mu);
    return fn(s.data);
  }

  // Calls fn(data) for each shard in turn, under its lock (not for the hot path).
  template <class Fn>
  void for_each_shard(Fn&& fn) {
    for (Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      fn(s.data);
    }
  }

 private:
  struct alignas(64) Shard {
    SpinLock mu;
    Data data;
  };
  std::array<Shard, kShards> shards_;
};

template <class Entry>
class ShardedMap final {
 public:
  using Map = absl::flat_hash_map<std::string, Entry>;
  static constexpr std::size_t kShards = Sharded<Map>::kShards;

  [[nodiscard]] static std::size_t hash(std::string_view key) {
    return absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size()));
  }

  template <class Fn>
  decltype(auto) with_shard(std::size_t key_hash, Fn&& fn) {
    return shards_.with_shard(key_hash, std::forward<Fn>(fn));
  }

  // Total entries; takes every shard lock in turn (not for the hot path).
  [[nodiscard]] std::size_t size() {
    std::size_t n = 0;
    shards_.for_each_shard([&](const Map& map) { n += map.size(); });
    return n;
  }

 private:
  Sharded<Map> shards_;
};

inline absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace voucherd
