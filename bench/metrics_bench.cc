// metrics_bench — what instrumenting one claim costs: prometheus-cpp's own
// Counter and Histogram against voucherd's striped lock-free ones
// (server/metrics_primitives.h), on one thread and on two threads sharing
// the same metrics, as the two completion-queue threads do.
//
// "PerClaim" is what a Claim RPC records: its outcome counter (by campaign
// and outcome), its gRPC status counter and its latency histogram, with the
// two clock reads that time it. "MetricsCountClaimAndObserveRpc" is
// voucherd's Metrics object as the Claim handler calls it (campaign found by
// id), without the clock reads. Compare with the engine's claim (~0.9 us,
// build/bin/engine_bench) and a gRPC claim (~30 us of CPU); the budget is
// 5% of the claim path.
//
//   build/bin/metrics_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>

#include "engine/memory_claim_log.h"
#include "server/base/metrics_primitives.h"
#include "server/ops/metrics.h"

namespace {

using voucherd::metrics::CounterArray;
using voucherd::metrics::Histogram;
using voucherd::metrics::kLatencyBoundsNs;

prometheus::Histogram::BucketBoundaries latency_bounds_seconds() {
  prometheus::Histogram::BucketBoundaries b;
  for (std::uint64_t ns : kLatencyBoundsNs) b.push_back(static_cast<double>(ns) / 1e9);
  return b;
}

// Shared by every benchmark thread, as the server's metrics are.
struct Prom {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& claims =
      prometheus::BuildCounter().Name("claims_total").Register(*registry);
  prometheus::Family<prometheus::Counter>& codes =
      prometheus::BuildCounter().Name("responses_total").Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram().Name("rpc_duration_seconds").Register(*registry);
  prometheus::Counter& issued = claims.Add({{"campaign", "guangdong-2024"}, {"outcome", "issued"}});
  prometheus::Counter& ok = codes.Add({{"rpc", "Claim"}, {"code", "OK"}});
  prometheus::Histogram& claim_latency = latency.Add({{"rpc", "Claim"}}, latency_bounds_seconds());
};
Prom& prom() {
  static Prom p;
  return p;
}

struct Ours {
  CounterArray<32> claims;  // one campaign's outcomes
  CounterArray<17> codes;   // the Claim RPC's status codes
  Histogram claim_latency{kLatencyBoundsNs};
};
Ours& ours() {
  static Ours o;
  return o;
}

// A latency that lands in a middle bucket, varied so the branch predictor
// does not see one value only.
std::uint64_t fake_latency_ns(std::uint64_t i) { return 400'000 + (i & 1023) * 1000; }

void BM_PromCounterIncrement(benchmark::State& state) {
  prometheus::Counter& c = prom().issued;
  for (auto _ : state) c.Increment();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PromCounterIncrement)->Threads(1)->Threads(2)->UseRealTime();

void BM_OurCounterAdd(benchmark::State& state) {
  CounterArray<32>& c = ours().claims;
  for (auto _ : state) c.add(1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OurCounterAdd)->Threads(1)->Threads(2)->UseRealTime();

void BM_PromHistogramObserve(benchmark::State& state) {
  prometheus::Histogram& h = prom().claim_latency;
  std::uint64_t i = 0;
  for (auto _ : state) h.Observe(static_cast<double>(fake_latency_ns(++i)) / 1e9);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PromHistogramObserve)->Threads(1)->Threads(2)->UseRealTime();

void BM_OurHistogramObserve(benchmark::State& state) {
  Histogram& h = ours().claim_latency;
  std::uint64_t i = 0;
  for (auto _ : state) h.observe(fake_latency_ns(++i));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OurHistogramObserve)->Threads(1)->Threads(2)->UseRealTime();

// Finding a labelled child by its labels at every call: what resolving
// handles once at start-up avoids.
void BM_PromFamilyAddLookup(benchmark::State& state) {
  prometheus::Family<prometheus::Counter>& f = prom().claims;
  for (auto _ : state) {
    f.Add({{"campaign", "guangdong-2024"}, {"outcome", "issued"}}).Increment();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PromFamilyAddLookup)->Threads(1)->Threads(2)->UseRealTime();

void BM_PromPerClaim(benchmark::State& state) {
  Prom& p = prom();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    p.issued.Increment();
    p.ok.Increment();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    p.claim_latency.Observe(std::chrono::duration<double>(elapsed).count());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PromPerClaim)->Threads(1)->Threads(2)->UseRealTime();

void BM_OursPerClaim(benchmark::State& state) {
  Ours& o = ours();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    o.claims.add(0);
    o.codes.add(0);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    o.claim_latency.observe(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OursPerClaim)->Threads(1)->Threads(2)->UseRealTime();

// voucherd's own Metrics, as the Claim handler calls it: the campaign's
// counters found by id (a hash and a lock-free probe), one outcome
// increment, then the RPC's status counter and latency histogram.
struct Server {
  voucherd::MemoryStore store;
  voucherd::SystemClock clock;
  voucherd::SecureRandom random;
  voucherd::ClaimEngine engine{store.claim_log(), clock, random, std::vector<std::uint8_t>(32, 1)};
  std::unique_ptr<voucherd::Metrics> metrics;
  Server() {
    voucherd::CampaignSpec c;
    c.id = "guangdong-2024";
    c.name = "Guangdong";
    c.mode = voucherd::CampaignMode::kFirstCome;
    c.starts_at_us = 1;
    c.ends_at_us = INT64_C(4'000'000'000'000'000);
    c.per_member_limit = 1;
    c.sites.push_back(voucherd::SiteSpec{"site-1", "Site", "Guangzhou", voucherd::SkuKind::kHotel});
    c.skus.push_back(
        voucherd::SkuSpec{"sku-1", "site-1", voucherd::SkuKind::kHotel, "Room", 38800, 100});
    (void)engine.create_campaign(std::move(c));
    metrics = std::make_unique<voucherd::Metrics>(
        engine, voucherd::MetricsOptions{"bench", &store, std::nullopt});
  }
};
Server& server() {
  static Server s;
  return s;
}

void BM_MetricsCountClaimAndObserveRpc(benchmark::State& state) {
  voucherd::Metrics& m = *server().metrics;
  std::uint64_t i = 0;
  for (auto _ : state) {
    m.count_claim("guangdong-2024", voucherd::Outcome::kOk);
    m.observe_rpc(voucherd::Rpc::kClaim, 0, fake_latency_ns(++i));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricsCountClaimAndObserveRpc)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
