// claim_log_internal.h — what the files of RedisClaimLog share and nothing
// outside them uses (redis_claim_log.cc: the class's life and its link;
// writer.cc: the queues, the writer and its batches; leases.cc: the lease
// keeper; campaigns.cc: registration; admin_reads.cc: the admin reads).
// Not part of the store's API: include it only from those files.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace voucherd::redis::internal {

using Clock = std::chrono::steady_clock;

// Reconnection backoff (the writer's and the keeper's connections): doubles
// from 50 ms, capped at 500 ms so that a Redis that comes back is found
// within a second; each wait is jittered (half to all of it) so that
// replicas do not reconnect in step.
inline constexpr auto kBackoffMin = std::chrono::milliseconds(50);
inline constexpr auto kBackoffMax = std::chrono::milliseconds(500);

// A wait of half to all of `backoff`. Thread-safe (a generator per thread).
inline std::chrono::milliseconds jittered(std::chrono::milliseconds backoff) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const auto half = backoff.count() / 2;
  return std::chrono::milliseconds(half + static_cast<std::int64_t>(rng() % (half + 1)));
}

}  // namespace voucherd::redis::internal
