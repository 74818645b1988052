#include "bench/load/histogram.h"

#include <algorithm>
#include <bit>

namespace voucherd::load {
namespace {

constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << LatencyHistogram::kSubBucketBits;
constexpr int kLinearBits = LatencyHistogram::kSubBucketBits + 1;  // values < 256: exact

// Single writer: load-then-store (a plain move on x86) instead of a locked
// read-modify-write.
void bump(std::atomic<std::uint64_t>& a, std::uint64_t by) {
  a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

std::size_t LatencyHistogram::bucket_of(std::uint64_t v) {
  const int width = std::bit_width(v);
  if (width <= kLinearBits) return static_cast<std::size_t>(v);
  const int shift = width - kLinearBits;  // >= 1; v >> shift is in [128, 256)
  const std::uint64_t index =
      static_cast<std::uint64_t>(shift) * kSubBuckets + (v >> static_cast<unsigned>(shift));
  return static_cast<std::size_t>(std::min<std::uint64_t>(index, kBuckets - 1));
}

std::uint64_t LatencyHistogram::upper_edge(std::size_t bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  const std::uint64_t shift = (bucket - kSubBuckets) / kSubBuckets;  // >= 1
  const std::uint64_t sub = bucket - shift * kSubBuckets;            // in [128, 256)
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::record(std::uint64_t value_ns) {
  bump(counts_[bucket_of(value_ns)], 1);
  bump(total_, 1);
  bump(sum_ns_, value_ns);
  if (value_ns > max_ns_.load(std::memory_order_relaxed)) {
    max_ns_.store(value_ns, std::memory_order_relaxed);
  }
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    const std::uint64_t n = other.counts_[i].load(std::memory_order_relaxed);
    if (n != 0) bump(counts_[i], n);
  }
  bump(total_, other.total_.load(std::memory_order_relaxed));
  bump(sum_ns_, other.sum_ns_.load(std::memory_order_relaxed));
  max_ns_.store(std::max(max_ns(), other.max_ns()), std::memory_order_relaxed);
}

std::uint64_t LatencyHistogram::count() const { return total_.load(std::memory_order_relaxed); }

std::uint64_t LatencyHistogram::min_ns() const {
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i].load(std::memory_order_relaxed) != 0) return upper_edge(i);
  }
  return 0;
}

double LatencyHistogram::mean_ns() const {
  const std::uint64_t n = count();
  return n == 0 ? 0.0
                : static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) /
                      static_cast<double>(n);
}

std::uint64_t LatencyHistogram::value_at_quantile(double q) const {
  std::uint64_t total = 0;
  for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const double wanted = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  auto rank = static_cast<std::uint64_t>(wanted);
  if (static_cast<double>(rank) < wanted || rank == 0) ++rank;  // ceil, at least 1
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    // The last bucket also holds every value past its edge: its edge bounds
    // nothing, and the maximum is the honest answer there.
    if (seen >= rank) return i == kBuckets - 1 ? max_ns() : std::min(upper_edge(i), max_ns());
  }
  return max_ns();
}

}  // namespace voucherd::load
