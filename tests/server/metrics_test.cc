// metrics_test — proves that the striped counters lose no increment across
// threads, that histograms place values in the right buckets, that the
// /metrics exposition of an engine parses strictly and files unknown
// campaigns under "(unknown)", that the draw family is ready for the
// lottery, that the series ring stays bounded, and that the strict
// exposition parser used by the end-to-end tests refuses what Prometheus
// would refuse.
#include "server/ops/metrics.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "engine/memory_claim_log.h"
#include "server/ops/series.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/exposition_check.h"

namespace voucherd::testing {
namespace {

TEST(MetricsPrimitives, StripedCountersLoseNothingAcrossThreads) {
  metrics::CounterArray<3> counters;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100'000; ++i) counters.add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counters.value(1), 400'000u);
  EXPECT_EQ(counters.value(0), 0u);
}

TEST(MetricsPrimitives, HistogramBucketsAndQuantile) {
  static constexpr std::array<std::uint64_t, 3> kBounds = {10, 100, 1000};
  metrics::Histogram h(kBounds);
  for (std::uint64_t v : {1, 10, 11, 100, 5000}) h.observe(v);
  const auto s = h.snapshot();
  EXPECT_EQ(s.buckets, (std::vector<std::uint64_t>{2, 2, 0, 1}));  // bounds are inclusive
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(s.sum, 5122u);
  EXPECT_EQ(metrics::quantile_upper_bound(kBounds, s.buckets, 0.4), 10u);
  EXPECT_EQ(metrics::quantile_upper_bound(kBounds, s.buckets, 0.8), 100u);
  EXPECT_EQ(metrics::quantile_upper_bound(kBounds, s.buckets, 0.99), 1000u);  // +Inf: last bound
  const std::vector<std::uint64_t> none(4, 0);
  EXPECT_EQ(metrics::quantile_upper_bound(kBounds, none, 0.99), 0u);
}

class MetricsOfAnEngine : public ::testing::Test {
 protected:
  MetricsOfAnEngine() : engine_(log_, clock_, random_, std::vector<std::uint8_t>(32, 7)) {
    CampaignSpec c = SpecBuilder("spring", "Spring")
                         .per_member_limit(1)
                         .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Site")
                         .sku("spa", 5, 100, "Spa \"deluxe\"");
    EXPECT_TRUE(engine_.create_campaign(std::move(c)).has_value());
  }
  MemoryStore store_;
  MemoryClaimLog& log_ = static_cast<MemoryClaimLog&>(store_.claim_log());
  SystemClock clock_;
  SecureRandom random_;
  ClaimEngine engine_;
};

TEST_F(MetricsOfAnEngine, ExpositionParsesStrictlyAndCountsWhatItWasTold) {
  Metrics metrics(engine_, MetricsOptions{"1.2.3", &store_, std::nullopt});
  metrics.count_claim("spring", Outcome::kOk);
  metrics.count_claim("spring", Outcome::kOk);
  metrics.count_claim("spring", Outcome::kSoldOut);
  metrics.count_claim("no-such-campaign", Outcome::kCampaignNotFound);
  metrics.count_redemption("spring", Outcome::kWrongSite);
  metrics.count_draw("spring", Outcome::kOk, /*won=*/true);
  metrics.count_draw("spring", Outcome::kOk, /*won=*/false);
  metrics.count_draw("spring", Outcome::kNotOpen, false);
  metrics.observe_rpc(Rpc::kClaim, 0, 2'000'000);
  metrics.observe_rpc(Rpc::kClaim, 9, 20'000);
  const std::string text = metrics.exposition(/*ready=*/true, /*draining=*/false);
  const auto e = parse_exposition(text);
  ASSERT_TRUE(e.has_value()) << e.error() << "\n" << text;
  auto v = [&](const std::string& key) { return series_value(*e, key); };
  EXPECT_EQ(v("voucherd_claims_total{campaign=\"spring\",outcome=\"issued\"}"), 2);
  EXPECT_EQ(v("voucherd_claims_total{campaign=\"spring\",outcome=\"sold_out\"}"), 1);
  EXPECT_TRUE(
      e->contains("voucherd_claims_total{campaign=\"spring\",outcome=\"already_claimed\"}"));
  EXPECT_EQ(v("voucherd_claims_total{campaign=\"(unknown)\",outcome=\"campaign_not_found\"}"), 1);
  EXPECT_FALSE(e->contains(
      "voucherd_claims_total{campaign=\"no-such-campaign\",outcome=\"campaign_not_found\"}"));
  EXPECT_EQ(v("voucherd_redemptions_total{campaign=\"spring\",outcome=\"wrong_site\"}"), 1);
  EXPECT_EQ(v("voucherd_draws_total{campaign=\"spring\",outcome=\"won\"}"), 1);
  EXPECT_EQ(v("voucherd_draws_total{campaign=\"spring\",outcome=\"no_prize\"}"), 1);
  EXPECT_EQ(v("voucherd_draws_total{campaign=\"spring\",outcome=\"not_open\"}"), 1);
  EXPECT_EQ(v("voucherd_rpc_responses_total{code=\"OK\",rpc=\"Claim\"}"), 1);
  EXPECT_EQ(v("voucherd_rpc_responses_total{code=\"FAILED_PRECONDITION\",rpc=\"Claim\"}"), 1);
  EXPECT_EQ(v("voucherd_rpc_duration_seconds_count{rpc=\"Claim\"}"), 2);
  EXPECT_EQ(v("voucherd_rpc_duration_seconds_bucket{le=\"2.5e-05\",rpc=\"Claim\"}"), 1);
  EXPECT_EQ(v("voucherd_rpc_duration_seconds_bucket{le=\"0.0025\",rpc=\"Claim\"}"), 2);
  EXPECT_DOUBLE_EQ(v("voucherd_rpc_duration_seconds_sum{rpc=\"Claim\"}"), 0.00202);
  EXPECT_EQ(v("voucherd_sku_remaining{campaign=\"spring\",sku=\"spa\"}"), 5);
  EXPECT_EQ(v("voucherd_sku_leased{campaign=\"spring\",sku=\"spa\"}"), 5);
  EXPECT_EQ(v("voucherd_build_info{store=\"memory\",version=\"1.2.3\"}"), 1);
  EXPECT_EQ(v("voucherd_ready{}"), 1);
  EXPECT_EQ(v("voucherd_claim_log_queue_depth{}"), 0);

  const MetricsSnapshot snap = metrics.snapshot();
  EXPECT_EQ(snap.claim_calls, 2u);
  EXPECT_EQ(snap.codes_all[9], 1u);
}

TEST(Series, RatesFromDeltasAndABoundedRing) {
  Series series;
  MetricsSnapshot s;
  s.claim_latency.buckets.assign(metrics::kLatencyBoundsNs.size() + 1, 0);
  series.sample(100, s, {{"spring", 5}});
  EXPECT_EQ(series.size(), 0u);  // the first sample is the baseline
  s.claim_calls = 300;
  s.codes_all[9] = 40;
  s.claim_latency.buckets[3] = 299;  // <= 50 us
  s.claim_latency.buckets[7] = 1;    // <= 1 ms
  series.sample(102, s, {{"spring", 2}});
  const auto j = nlohmann::json::parse(series.json());
  EXPECT_EQ(j["t"], nlohmann::json::array({102}));
  EXPECT_EQ(j["claims_per_s"][0], 150.0);  // 300 over two seconds
  EXPECT_EQ(j["p99_ms"][0], 0.05);
  EXPECT_EQ(j["errors_per_s"]["FAILED_PRECONDITION"][0], 20);
  EXPECT_EQ(j["remaining"]["spring"][0], 2);
  for (int i = 0; i < 400; ++i) series.sample(103 + i, s, {});
  EXPECT_EQ(series.size(), kSeriesPointsMax);
}

TEST(ExpositionCheck, RefusesWhatPrometheusWouldRefuse) {
  const std::string good =
      "# HELP a_total help\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
  ASSERT_TRUE(parse_exposition(good).has_value()) << parse_exposition(good).error();
  for (const std::string& bad : {
           std::string("a_total 1\n"),                            // no # TYPE
           std::string("# TYPE a counter\na{x=\"\\q\"} 1\n"),     // bad escape
           std::string("# TYPE a counter\na{x=1} 1\n"),           // unquoted
           std::string("# TYPE a counter\na 1\na 2\n"),           // repeated
           std::string("# TYPE a counter\na -1\n"),               // negative counter
           std::string("# TYPE a gauge\na one\n"),                // not a number
           std::string("# TYPE a gauge\na 1"),                    // no final newline
           std::string("# TYPE 1a gauge\n1a 1\n"),                // bad name
           std::string("# TYPE a gauge\n# TYPE a gauge\na 1\n"),  // declared twice
           std::string("# TYPE a gauge\n# TYPE b gauge\na 1\n"),  // not its family
           std::string("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                       "h_sum 1\nh_count 1\n"),  // not cumulative
           std::string(
               "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),  // no +Inf
           std::string("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n"),
       }) {
    EXPECT_FALSE(parse_exposition(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace voucherd::testing
