// histogram_test — proves bench/load/histogram.h, the load harness's latency
// histogram: values below 256 ns have a bucket each; above, every value lies
// in a bucket whose upper edge is within 1/128 above it, and buckets are
// contiguous (each starts one past the previous edge); values past the range
// land in the last bucket; percentiles are exact ranks over the buckets,
// never above the recorded maximum, and 0 when empty; min, max, mean and
// count are what was recorded; and merging adds counts, sums and maxima as
// if one histogram had recorded everything.
#include "bench/load/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace voucherd::load {
namespace {

using H = LatencyHistogram;

TEST(LatencyHistogram, SmallValuesHaveABucketEach) {
  for (std::uint64_t v = 0; v < 256; ++v) {
    EXPECT_EQ(H::bucket_of(v), v);
    EXPECT_EQ(H::upper_edge(v), v);
  }
  EXPECT_EQ(H::bucket_of(256), 256u);  // 256 and 257 share the first two-wide bucket
  EXPECT_EQ(H::bucket_of(257), 256u);
  EXPECT_EQ(H::upper_edge(256), 257u);
}

TEST(LatencyHistogram, BucketsAreContiguousAndWithinOneIn128) {
  // Every bucket starts one past the previous one's upper edge.
  for (std::size_t b = 1; b + 1 < H::kBuckets; ++b) {
    const std::uint64_t first = H::upper_edge(b - 1) + 1;
    ASSERT_EQ(H::bucket_of(first), b) << "bucket " << b << " starts at " << first;
    ASSERT_EQ(H::bucket_of(H::upper_edge(b)), b);
    ASSERT_GT(H::upper_edge(b), H::upper_edge(b - 1));
  }
  // Any value's bucket edge is at or above it, by less than 1/128 of it.
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100'000; ++i) {
    const std::uint64_t v = rng() >> (rng() % 39 + 25);  // shifts 25..63: spread over the decades
    const std::uint64_t edge = H::upper_edge(H::bucket_of(v));
    if (H::bucket_of(v) == H::kBuckets - 1) continue;  // past the range
    ASSERT_GE(edge, v);
    ASSERT_LE(static_cast<double>(edge - v), static_cast<double>(v) / 128.0) << v;
  }
}

TEST(LatencyHistogram, ValuesPastTheRangeLandInTheLastBucket) {
  EXPECT_EQ(H::bucket_of(std::numeric_limits<std::uint64_t>::max()), H::kBuckets - 1);
  const std::uint64_t last_edge = H::upper_edge(H::kBuckets - 1);
  EXPECT_GT(last_edge, std::uint64_t{270} * 1'000'000'000);  // ~270 s, as documented
  EXPECT_EQ(H::bucket_of(last_edge + 1), H::kBuckets - 1);
  H h;
  h.record(std::uint64_t{3'600} * 1'000'000'000);  // an hour
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max_ns(), std::uint64_t{3'600} * 1'000'000'000);
  // A value past the range is reported as itself (the recorded maximum), not
  // as the last bucket's edge, which bounds nothing.
  EXPECT_EQ(h.value_at_quantile(0.5), h.max_ns());
  EXPECT_EQ(h.value_at_quantile(1.0), h.max_ns());
}

TEST(LatencyHistogram, EmptyReportsZeros) {
  const H h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min_ns(), 0u);
  EXPECT_EQ(h.max_ns(), 0u);
  EXPECT_EQ(h.mean_ns(), 0.0);
  EXPECT_EQ(h.value_at_quantile(0.5), 0u);
  EXPECT_EQ(h.value_at_quantile(1.0), 0u);
}

TEST(LatencyHistogram, PercentilesAreExactRanksOverTheBuckets) {
  H h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);  // exact buckets below 256
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min_ns(), 1u);
  EXPECT_EQ(h.max_ns(), 100u);
  EXPECT_DOUBLE_EQ(h.mean_ns(), 50.5);
  EXPECT_EQ(h.value_at_quantile(0.0), 1u);  // at least the first value
  EXPECT_EQ(h.value_at_quantile(0.01), 1u);
  EXPECT_EQ(h.value_at_quantile(0.5), 50u);
  EXPECT_EQ(h.value_at_quantile(0.505), 51u);  // ceil(50.5) = 51st value
  EXPECT_EQ(h.value_at_quantile(0.99), 99u);
  EXPECT_EQ(h.value_at_quantile(1.0), 100u);
  EXPECT_EQ(h.value_at_quantile(-3), 1u);  // clamped
  EXPECT_EQ(h.value_at_quantile(7), 100u);

  // Above 256 ns: the bucket's upper edge, but never above the maximum.
  H wide;
  wide.record(1'000);
  wide.record(1'000'000);
  EXPECT_EQ(wide.value_at_quantile(0.5), H::upper_edge(H::bucket_of(1'000)));
  EXPECT_GE(wide.value_at_quantile(0.5), 1'000u);
  EXPECT_LE(wide.value_at_quantile(0.5), 1'000u + 1'000u / 128);
  EXPECT_EQ(wide.value_at_quantile(1.0), 1'000'000u);
  EXPECT_EQ(wide.min_ns(), H::upper_edge(H::bucket_of(1'000)));
}

TEST(LatencyHistogram, MergingIsAsIfOneHistogramRecordedEverything) {
  std::mt19937_64 rng(5);
  H a, b, all;
  for (int i = 0; i < 20'000; ++i) {
    const std::uint64_t v = rng() % 50'000'000;
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  H merged;
  merged.merge(a);
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.max_ns(), all.max_ns());
  EXPECT_EQ(merged.min_ns(), all.min_ns());
  EXPECT_DOUBLE_EQ(merged.mean_ns(), all.mean_ns());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(merged.value_at_quantile(q), all.value_at_quantile(q)) << q;
  }
  // The copy constructor is a merge into an empty histogram.
  const H copy(a);
  EXPECT_EQ(copy.count(), a.count());
  EXPECT_EQ(copy.value_at_quantile(0.9), a.value_at_quantile(0.9));
  // Merging an empty one changes nothing.
  merged.merge(H{});
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.max_ns(), all.max_ns());
}

}  // namespace
}  // namespace voucherd::load
