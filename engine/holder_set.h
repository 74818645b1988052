// holder_set.h — the members of one campaign who hold a voucher in a shared
// store, as far as this replica has heard (the store's holders feed).
//
// A replica's own allowance index knows only the members who pressed here.
// A member who got their voucher from another replica and presses here must
// still get it back (`already_claimed`), also after the sell-out, when a
// newcomer is refused without a store round trip. This set says which
// members to look up in the store: only actual holders cost a look-up.
//
// Members are kept as 64-bit hashes of their ids (8 bytes each, no string):
// a collision only costs one needless look-up, whose answer is exact, so
// the set may say "maybe" but never hides a holder it was told about.
//
// Thread-safety: all methods may be called concurrently; 64 shards, each
// under its own spin lock, as in the allowance index.
#pragma once

#include <absl/container/flat_hash_set.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "engine/limits.h"
#include "engine/sharded_map.h"

namespace voucherd {

class HolderSet final {
  using Set = absl::flat_hash_set<std::size_t>;

 public:
  // `member_hash` is ShardedMap<>::hash(member_id), the allowance index's hash.
  void add(std::size_t member_hash) {
    const bool fresh =
        with_shard(member_hash, [&](Set& set) { return set.insert(member_hash).second; });
    // Relaxed: a count for the fast "empty" check and for /status; the
    // shard lock orders the set itself.
    if (fresh) size_.fetch_add(1, std::memory_order_relaxed);
  }
  void remove(std::size_t member_hash) {
    const bool gone = with_shard(member_hash, [&](Set& set) { return set.erase(member_hash) > 0; });
    if (gone) size_.fetch_sub(1, std::memory_order_relaxed);
  }
  [[nodiscard]] bool contains(std::size_t member_hash) {
    // Most campaigns on most replicas: nobody elsewhere holds anything yet.
    if (size_.load(std::memory_order_relaxed) == 0) return false;
    return with_shard(member_hash, [&](Set& set) { return set.contains(member_hash); });
  }
  [[nodiscard]] std::int64_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  template <class Fn>
  bool with_shard(std::size_t h, Fn&& fn) {
    Shard& s = shards_[(h >> 52) & (kShards - 1)];
    std::lock_guard lock(s.mu);
    return fn(s.set);
  }
  static constexpr std::size_t kShards = limits::kAllowanceShards;
  struct alignas(64) Shard {
    SpinLock mu;
    Set set;
  };
  std::array<Shard, kShards> shards_;
  std::atomic<std::int64_t> size_{0};
};

}  // namespace voucherd
