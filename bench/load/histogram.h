// histogram.h — a log-bucketed latency histogram (HdrHistogram-like).
//
// Values are nanoseconds. Below 256 ns every value has its own bucket; above,
// each power of two is cut into 128 equal buckets, so any recorded value is
// reported within 1/128 (0.8%) of itself. Values past ~270 s land in the last
// bucket. Recording is one array increment; percentiles walk the 4,096
// buckets.
//
// Usage:
//   LatencyHistogram h;
//   h.record(ns);
//   h.value_at_quantile(0.99);   // in ns, the bucket's upper edge
//
// Thread-safety: one writer, any number of readers. The counts are relaxed
// atomics: a reader (the live progress line) sees a recent, possibly torn
// between buckets, view; merge() and percentiles after the writer has
// stopped (joined) are exact.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace voucherd::load {

class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;  // 128 buckets per power of two
  static constexpr std::size_t kBuckets = 4096;

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram& other) { merge(other); }
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // REQUIRES: only one thread records into a histogram.
  void record(std::uint64_t value_ns);
  // Adds `other`'s counts (other's writer must be done, or the view is
  // approximate, as for any reader).
  void merge(const LatencyHistogram& other);

  [[nodiscard]] std::uint64_t count() const;
  [[nodiscard]] std::uint64_t max_ns() const { return max_ns_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t min_ns() const;
  [[nodiscard]] double mean_ns() const;
  // The smallest bucket edge at or below which a share `q` of the values
  // lie (0 when empty); the last one is the recorded maximum itself.
  [[nodiscard]] std::uint64_t value_at_quantile(double q) const;

  // Bucket arithmetic, exposed for tests.
  [[nodiscard]] static std::size_t bucket_of(std::uint64_t value_ns);
  // The largest value that falls into `bucket`.
  [[nodiscard]] static std::uint64_t upper_edge(std::size_t bucket);

 private:
  // Relaxed: counts carry no data other threads act on beyond themselves.
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
  std::atomic<std::uint64_t> max_ns_{0};
};

}  // namespace voucherd::load
