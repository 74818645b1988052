// metrics_primitives.h — lock-free counters and histograms for the hot path.
//
// Why not prometheus-cpp's own types: its Histogram::Observe takes a mutex
// shared by every observer of the histogram, and its Counter is an atomic
// double updated with a compare-exchange loop. On the claim path (two
// completion-queue threads, hundreds of thousands of calls a second) both
// make the two cores bounce one cache line, and bench/metrics_bench.cc
// measured prometheus-cpp above the 5% budget of the engine's claim (see
// bench/README.md). Here every counter is striped: each thread adds to its
// own cache line with one relaxed fetch_add, and a scrape sums the stripes.
// prometheus-cpp is still used for the exposition (server/metrics.cc builds
// its MetricFamily values and serializes them with its TextSerializer).
//
// Usage:
//   metrics::CounterArray<3> outcomes;   outcomes.add(1);   outcomes.value(1);
//   metrics::Histogram latency(metrics::kLatencyBoundsNs);
//   latency.observe(elapsed_ns);         auto snap = latency.snapshot();
//
// Thread-safety: add()/observe() from any thread, concurrently with
// value()/snapshot() from any other. A snapshot taken while observers run is
// not atomic as a whole (a count may be ahead of the sum by an observation in
// flight); Prometheus tolerates that, and every counter is monotonic.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace voucherd::metrics {

// Stripes per counter: enough for the completion-queue threads, the Redis
// writer and the ops thread to each have a line of their own most of the time.
inline constexpr std::size_t kStripes = 4;
static_assert((kStripes & (kStripes - 1)) == 0, "stripe index is taken with a mask");

// This thread's stripe, assigned round-robin the first time a thread counts.
inline std::size_t this_thread_stripe() {
  static std::atomic<std::size_t> next{0};
  // Relaxed: the index only spreads threads over stripes; any value is correct.
  thread_local const std::size_t stripe = next.fetch_add(1, std::memory_order_relaxed);
  return stripe & (kStripes - 1);
}

// N monotonic counters (e.g. one per outcome), striped per thread.
template <std::size_t N>
class CounterArray {
 public:
  // Relaxed: a counter orders nothing else; scrapes only need each value to
  // be monotonic, which per-location coherence gives.
  void add(std::size_t i, std::uint64_t n = 1) {
    stripes_[this_thread_stripe()].values[i].fetch_add(n, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t value(std::size_t i) const {
    std::uint64_t sum = 0;
    for (const Stripe& s : stripes_) sum += s.values[i].load(std::memory_order_relaxed);
    return sum;
  }
  static constexpr std::size_t size() { return N; }

 private:
  struct alignas(64) Stripe {
    std::array<std::atomic<std::uint64_t>, N> values{};
  };
  std::array<Stripe, kStripes> stripes_{};
};

// The most buckets a histogram may have (plus the +Inf bucket).
inline constexpr std::size_t kBucketsMax = 20;

// RPC latency bounds, in nanoseconds: 5 us (an in-memory claim answered
// inside voucherd) .. 10 s.
inline constexpr std::array<std::uint64_t, 20> kLatencyBoundsNs = {
    5'000,       10'000,        25'000,        50'000,        100'000,
    250'000,     500'000,       1'000'000,     2'500'000,     5'000'000,
    10'000'000,  25'000'000,    50'000'000,    100'000'000,   250'000'000,
    500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
static_assert(kLatencyBoundsNs.size() <= kBucketsMax);

// A histogram's buckets (not cumulative; the last one is +Inf), count and sum,
// in the histogram's integer unit.
struct HistogramSnapshot {
  std::vector<std::uint64_t> buckets;
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
};

// A fixed-bucket histogram of integer observations (nanoseconds, claims per
// batch, ...). The bounds are upper bounds, inclusive, strictly increasing.
class Histogram {
 public:
  // REQUIRES: bounds.size() <= kBucketsMax, strictly increasing; `bounds`
  // outlives the histogram (it is a constant table).
  explicit Histogram(std::span<const std::uint64_t> bounds) : bounds_(bounds) {}

  void observe(std::uint64_t value) {
    std::size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    counts_.add(i);
    counts_.add(kSumSlot, value);
  }

  [[nodiscard]] std::span<const std::uint64_t> bounds() const { return bounds_; }

  [[nodiscard]] HistogramSnapshot snapshot() const {
    HistogramSnapshot s;
    s.buckets.resize(bounds_.size() + 1);
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
      s.buckets[i] = counts_.value(i);
      s.count += s.buckets[i];
    }
    s.sum = counts_.value(kSumSlot);
    return s;
  }

 private:
  static constexpr std::size_t kSumSlot = kBucketsMax + 1;
  std::span<const std::uint64_t> bounds_;
  CounterArray<kBucketsMax + 2> counts_;
};

// The value below which a share `q` (0..1) of the observations in `buckets`
// fall, taken as the upper bound of the bucket that holds it (the last finite
// bound for the +Inf bucket); 0 without observations. Used for the
// dashboard's p99 series, where a bucket's resolution is enough.
inline std::uint64_t quantile_upper_bound(std::span<const std::uint64_t> bounds,
                                          std::span<const std::uint64_t> buckets, double q) {
  std::uint64_t total = 0;
  for (std::uint64_t b : buckets) total += b;
  if (total == 0 || bounds.empty()) return 0;
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen >= rank) return i < bounds.size() ? bounds[i] : bounds.back();
  }
  return bounds.back();
}

}  // namespace voucherd::metrics
