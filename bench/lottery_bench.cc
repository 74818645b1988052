// lottery_bench — the cost of one draw: its randomness (HMAC-SHA256), luck,
// the SKU choice over the Guangdong-sized 307 SKUs, and a whole draw through
// the engine with the memory claim log; and of an apply campaign's
// allocation: one applicant's rank, and allocate() of the Guangdong stock
// (59,000 packs over 307 SKUs) among 100,000 and 1,000,000 applicants (the
// replica's CPU part of an allocation: ranking, sorting, serving in rank
// order; no store).
//
//   build/bin/lottery_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/apply.h"
#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/lottery.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"

namespace voucherd {
namespace {

constexpr UnixMicros kStart = 1'795'795'200LL * kMicrosPerSecond;

CampaignSpec lottery(std::size_t skus, std::int64_t stock_each, double p) {
  CampaignSpec s;
  s.id = "bench-lottery";
  s.name = "Bench";
  s.mode = CampaignMode::kLottery;
  s.starts_at_us = kStart;
  s.ends_at_us = kStart + 30 * kMicrosPerDay;
  s.sites = {{"site-1", "Site", "City", SkuKind::kHotel}};
  for (std::size_t i = 0; i < skus; ++i) {
    s.skus.push_back(
        {"sku-" + std::to_string(i), "site-1", SkuKind::kHotel, "Room", 100, stock_each});
  }
  s.lottery.win_probability = p;
  s.lottery.draws_per_day = 1000;
  s.lottery.prizes_per_member = 1;
  return s;
}

void BM_DrawRandomness(benchmark::State& state) {
  const SkuMacKey key = hmac_key(LotterySeed{});
  std::int64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(draw_randomness(key, "bench-lottery", "member-123456", ++n));
  }
}
BENCHMARK(BM_DrawRandomness);

// Luck and the SKU choice of a lucky draw over `range(0)` SKUs.
void BM_DrawDecision(benchmark::State& state) {
  const CampaignSpec spec = lottery(static_cast<std::size_t>(state.range(0)), 200, 1.0);
  std::vector<std::int64_t> remaining(spec.skus.size(), 200);
  std::uint64_t pick = 0x123456789abcdull;
  for (auto _ : state) {
    pick = (pick * 6364136223846793005ull + 1442695040888963407ull) >> 11;
    benchmark::DoNotOptimize(decide_draw(spec, 0, remaining, true, pick, 1'000'000));
  }
}
BENCHMARK(BM_DrawDecision)->Arg(8)->Arg(307);

// A whole draw through the engine and the memory log: distinct members, p = 0.1.
void BM_EngineDraw(benchmark::State& state) {
  MemoryClaimLog log;
  FakeClock clock(kStart + 29 * kMicrosPerDay);
  DeterministicRandom random(1);
  const std::vector<std::uint8_t> secret(32, 7);
  ClaimEngine engine(log, clock, random, secret);
  if (!engine.create_campaign(lottery(307, 1'000'000, 0.1))) {
    state.SkipWithError("campaign refused");
    return;
  }
  struct Op final : DrawOp {
    void on_draw_done(const DrawOpResult& r) override { outcome = r.outcome; }
    Outcome outcome = Outcome::kInternal;
  };
  std::int64_t i = 0;
  std::string member;
  for (auto _ : state) {
    member = "member-" + std::to_string(++i);
    Op op;
    op.campaign_id = "bench-lottery";
    op.member_id = member;
    op.request_id = "r";
    engine.draw(op);
    benchmark::DoNotOptimize(op.outcome);
  }
}
BENCHMARK(BM_EngineDraw);

void BM_ApplyRank(benchmark::State& state) {
  const SkuMacKey key = hmac_key(LotterySeed{});
  std::string scratch;
  std::int64_t n = 0;
  std::string member;
  for (auto _ : state) {
    member = "member-" + std::to_string(++n);
    benchmark::DoNotOptimize(apply_rank(key, "guangdong-apply-2024", member, scratch));
  }
}
BENCHMARK(BM_ApplyRank);

// allocate() of 59,000 packs over 307 SKUs among range(0) applicants, each
// naming 3 SKUs at random (one in ten naming none). The stock is spread
// evenly (the sample's is not), and minting the winners' vouchers is not
// part of it: a lower bound of the replica's CPU in an allocation.
void BM_Allocate(benchmark::State& state) {
  CampaignSpec spec = lottery(307, 0, 0.1);
  spec.id = "guangdong-apply-2024";
  spec.mode = CampaignMode::kApplyThenDraw;
  spec.lottery = LotterySpec{};
  std::int64_t left = 59'000;
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    spec.skus[i].stock = left / static_cast<std::int64_t>(spec.skus.size() - i);
    left -= spec.skus[i].stock;
  }
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<ApplicationEntry> applications(n);
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (std::size_t i = 0; i < n; ++i) {
    applications[i].member_id = "member-" + std::to_string(i);
    if (next() % 10 == 0) continue;
    for (int k = 0; k < 3; ++k) {
      const auto sku = static_cast<std::uint32_t>(next() % spec.skus.size());
      auto& p = applications[i].preferred;
      if (std::find(p.begin(), p.end(), sku) == p.end()) p.push_back(sku);
    }
  }
  LotterySeed seed{};
  seed[0] = 7;
  std::int64_t selected = 0;
  for (auto _ : state) {
    const Allocation a = allocate(spec, seed, applications);
    selected = a.selected;
    benchmark::DoNotOptimize(a.order.data());
  }
  state.counters["selected"] = static_cast<double>(selected);
  state.counters["per_applicant"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                     benchmark::Counter::kInvert);
}
BENCHMARK(BM_Allocate)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace voucherd

BENCHMARK_MAIN();
