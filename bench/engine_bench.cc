// engine_bench — Google Benchmark of the engine's claim path with the
// in-memory claim log: successful claims (code minting included), rejected
// presses (sold out; member already holding a pack), single thread and two
// threads, with heap allocations per claim counted; then the pieces of the
// path one by one: inventory take (contended and spread), SKU choice, the
// allowance index, code minting and verification.
//
//   build/bin/engine_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "bench/alloc/alloc_count.h"
#include "engine/claim_engine.h"
#include "engine/memory_claim_log.h"

namespace {

using namespace voucherd;

constexpr std::int64_t kHugeStock = 1'000'000'000;

struct BenchClaim final : ClaimOp {
  Outcome outcome = Outcome::kInternal;
  void on_claim_done(const ClaimResult& r) override { outcome = r.outcome; }
};

CampaignSpec make_campaign(const std::string& id, std::int64_t stock_per_sku, int skus) {
  CampaignSpec c;
  c.id = id;
  c.name = id;
  c.mode = CampaignMode::kFirstCome;
  c.starts_at_us = 1;
  c.ends_at_us = INT64_C(4'000'000'000'000'000);
  c.per_member_limit = 1;
  c.sites.push_back(SiteSpec{"site-1", "Site", "Guangzhou", SkuKind::kHotel});
  for (int i = 0; i < skus; ++i) {
    c.skus.push_back(SkuSpec{"sku-" + std::to_string(i), "site-1", SkuKind::kHotel, "Room", 38800,
                             stock_per_sku});
  }
  return c;
}

// One engine for the whole binary, so two-thread runs share it as voucherd does.
struct World {
  MemoryClaimLog log;
  SystemClock clock;
  SecureRandom random;
  std::vector<std::uint8_t> secret = std::vector<std::uint8_t>(32, 7);
  ClaimEngine engine{log, clock, random, secret};
  std::atomic<std::int64_t> next_member{0};
  World() {
    (void)engine.create_campaign(make_campaign("plenty", kHugeStock, 8));
    (void)engine.create_campaign(make_campaign("empty", 0, 8));
    (void)engine.create_campaign(make_campaign("held", kHugeStock, 8));
  }
};
World& world() {
  // Never destroyed: tearing down millions of vouchers at exit would only
  // slow the binary down and blur profiles.
  static World* w = new World;
  return *w;
}

// Writes "m<number>" into buf; returns the view.
std::string_view member_name(char (&buf)[32], std::int64_t n) {
  buf[0] = 'm';
  auto [end, ec] = std::to_chars(buf + 1, buf + sizeof(buf), n);
  (void)ec;
  return {buf, static_cast<std::size_t>(end - buf)};
}

// A whole first-come campaign the size of the Guangdong giveaway (59,000
// packs over 307 SKUs) sold out to distinct members, on a fresh engine each
// iteration, by 1 or 2 threads sharing the engine. This is the claim path as
// a campaign sees it: tables sized for the campaign, code minting included.
void BM_SellOut59k(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  constexpr std::int64_t kPacks = 59'000;
  constexpr int kSkus = 307;
  std::vector<std::string> members;
  for (std::int64_t i = 0; i < kPacks; ++i) members.push_back("member-" + std::to_string(i));
  std::int64_t issued_total = 0;
  for (auto _ : state) {
    MemoryClaimLog log;
    SystemClock clock;
    SecureRandom random;
    ClaimEngine engine(log, clock, random, std::vector<std::uint8_t>(32, 7));
    CampaignSpec spec = make_campaign("gd", 0, kSkus);
    for (int i = 0; i < kSkus; ++i)
      spec.skus[static_cast<std::size_t>(i)].stock = kPacks / kSkus + (i < kPacks % kSkus ? 1 : 0);
    (void)engine.create_campaign(spec);
    std::atomic<std::int64_t> issued{0};
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        BenchClaim op;
        std::int64_t ok = 0;
        for (std::size_t i = static_cast<std::size_t>(t); i < members.size();
             i += static_cast<std::size_t>(threads)) {
          op.campaign_id = "gd";
          op.member_id = members[i];
          engine.claim(op);
          ok += op.outcome == Outcome::kOk;
        }
        issued.fetch_add(ok);
      });
    }
    for (auto& w : workers) w.join();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    issued_total += issued.load();
    if (issued.load() != kPacks) state.SkipWithError("the campaign did not sell out exactly");
  }
  state.counters["claims/s"] =
      benchmark::Counter(static_cast<double>(issued_total), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SellOut59k)
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_ClaimSuccess(benchmark::State& state) {
  World& w = world();
  BenchClaim op;
  char buf[32];
  std::int64_t ok = 0;
  const std::int64_t allocs_before = bench::allocations();
  for (auto _ : state) {
    op.campaign_id = "plenty";
    op.member_id = member_name(buf, w.next_member.fetch_add(1, std::memory_order_relaxed));
    w.engine.claim(op);
    ok += op.outcome == Outcome::kOk;
  }
  if (ok != state.iterations()) state.SkipWithError("a claim did not succeed");
  state.counters["claims/s"] =
      benchmark::Counter(static_cast<double>(ok), benchmark::Counter::kIsRate);
  state.counters["allocs/claim"] = static_cast<double>(bench::allocations() - allocs_before) /
                                   static_cast<double>(state.iterations() * state.threads());
}
BENCHMARK(BM_ClaimSuccess)->Threads(1)->Threads(2)->UseRealTime();

void BM_RejectSoldOut(benchmark::State& state) {
  World& w = world();
  BenchClaim op;
  char buf[32];
  std::int64_t rejected = 0;
  std::int64_t n = state.thread_index() * INT64_C(1'000'000'000);
  const std::int64_t allocs_before = bench::allocations();
  for (auto _ : state) {
    op.campaign_id = "empty";
    op.member_id = member_name(buf, n++);
    w.engine.claim(op);
    rejected += op.outcome == Outcome::kSoldOut;
  }
  if (rejected != state.iterations()) state.SkipWithError("a press was not rejected as sold out");
  state.counters["rejects/s"] =
      benchmark::Counter(static_cast<double>(rejected), benchmark::Counter::kIsRate);
  state.counters["allocs/press"] = static_cast<double>(bench::allocations() - allocs_before) /
                                   static_cast<double>(state.iterations() * state.threads());
}
BENCHMARK(BM_RejectSoldOut)->Threads(1)->Threads(2)->UseRealTime();

void BM_RejectAlreadyHolds(benchmark::State& state) {
  World& w = world();
  constexpr int kMembers = 4096;
  static const bool seeded = [&] {
    BenchClaim op;
    char buf[32];
    for (int i = 0; i < kMembers; ++i) {
      op.campaign_id = "held";
      op.member_id = member_name(buf, i);
      w.engine.claim(op);
    }
    return true;
  }();
  (void)seeded;
  BenchClaim op;
  char buf[32];
  std::int64_t rejected = 0;
  // Each thread presses its own half of the holders, as different members do
  // on different cores (the same member on two cores at once shares one
  // voucher's reference count between them).
  const int slice = kMembers / state.threads();
  const int first = state.thread_index() * slice;
  int i = 0;
  const std::int64_t allocs_before = bench::allocations();
  for (auto _ : state) {
    op.campaign_id = "held";
    op.member_id = member_name(buf, first + (i++ % slice));
    w.engine.claim(op);
    rejected += op.outcome == Outcome::kAlreadyClaimed;
  }
  if (rejected != state.iterations())
    state.SkipWithError("a press was not answered already-claimed");
  state.counters["rejects/s"] =
      benchmark::Counter(static_cast<double>(rejected), benchmark::Counter::kIsRate);
  state.counters["allocs/press"] = static_cast<double>(bench::allocations() - allocs_before) /
                                   static_cast<double>(state.iterations() * state.threads());
}
BENCHMARK(BM_RejectAlreadyHolds)->Threads(1)->Threads(2)->UseRealTime();

void BM_MintCode(benchmark::State& state) {
  CodeSigner signer(std::vector<std::uint8_t>(32, 7));
  const SkuMacKey key = signer.derive_sku_key("campaign", "site", "sku");
  SecureRandom random;
  CodeFields f;
  for (auto _ : state) {
    random.fill(f.random);
    for (auto& r : f.random) r &= 31u;
    f.mac = compute_mac(key, f);
    std::string code = format_code(f);
    benchmark::DoNotOptimize(code);
  }
}
BENCHMARK(BM_MintCode);

void BM_ComputeMac(benchmark::State& state) {
  CodeSigner signer(std::vector<std::uint8_t>(32, 7));
  const SkuMacKey key = signer.derive_sku_key("campaign", "site", "sku");
  CodeFields f;
  for (auto _ : state) {
    f.random[0] = static_cast<std::uint8_t>((f.random[0] + 1) & 31u);
    f.mac = compute_mac(key, f);
    benchmark::DoNotOptimize(f.mac);
  }
}
BENCHMARK(BM_ComputeMac);

void BM_FormatCode(benchmark::State& state) {
  CodeFields f;
  for (auto _ : state) {
    f.random[0] = static_cast<std::uint8_t>((f.random[0] + 1) & 31u);
    std::string code = format_code(f);
    benchmark::DoNotOptimize(code);
  }
}
BENCHMARK(BM_FormatCode);

// What a record's code() costs: the text formatted from the packed code
// (every answer that carries a voucher does it once).
void BM_PackedCodeText(benchmark::State& state) {
  CodeFields f;
  f.random[3] = 17;
  f.mac = 0x1234'5678'9ABCULL;
  const PackedCode packed = PackedCode::pack(f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(packed.text());
  }
}
BENCHMARK(BM_PackedCodeText);

// What a look-up by code costs before the table: the text packed.
void BM_PackCodeText(benchmark::State& state) {
  CodeFields f;
  f.random[3] = 17;
  f.mac = 0x1234'5678'9ABCULL;
  const std::string code = format_code(f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(PackedCode::pack(code));
  }
}
BENCHMARK(BM_PackCodeText);

void BM_VerifyCode(benchmark::State& state) {
  CodeSigner signer(std::vector<std::uint8_t>(32, 7));
  const SkuMacKey key = signer.derive_sku_key("campaign", "site", "sku");
  CodeFields f;
  f.mac = compute_mac(key, f);
  const std::string code = format_code(f);
  for (auto _ : state) {
    auto parsed = parse_code(code);
    benchmark::DoNotOptimize(parsed->mac == compute_mac(key, *parsed));
  }
}
BENCHMARK(BM_VerifyCode);

// ---- The pieces of the claim path, one by one ----

// One unit taken from the lock-free inventory and put back (so the stock
// never runs out). "contended": every thread on one SKU's counter;
// "spread": each thread on an SKU of its own (a counter on its own cache
// line), sharing only the has-stock bitmap, which stays read-mostly.
void inventory_take(benchmark::State& state, bool contended) {
  static const std::vector<std::int64_t> units(64, 1'000'000);
  static Inventory* inventory = new Inventory(units);  // shared by the threads, never freed
  const auto sku = contended ? 0u : static_cast<std::uint32_t>(1 + state.thread_index());
  std::int64_t taken = 0;
  for (auto _ : state) {
    if (inventory->take(sku)) {
      ++taken;
      inventory->give_back(sku, 1);
    }
  }
  if (taken != state.iterations()) state.SkipWithError("a take found no unit");
  state.counters["takes/s"] =
      benchmark::Counter(static_cast<double>(taken), benchmark::Counter::kIsRate);
}
void BM_InventoryTakeContended(benchmark::State& state) { inventory_take(state, true); }
void BM_InventoryTakeSpread(benchmark::State& state) { inventory_take(state, false); }
BENCHMARK(BM_InventoryTakeContended)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_InventoryTakeSpread)->Threads(1)->Threads(2)->UseRealTime();

// SKU choice: a claim without an SKU takes from any SKU with stock, starting
// at a hint, over the Guangdong sample's 307 SKUs of which only every 16th
// still has stock (late in a sell-out, when the search is longest).
void BM_SkuChoice(benchmark::State& state) {
  std::vector<std::int64_t> units(307, 0);
  for (std::size_t i = 0; i < units.size(); i += 16) units[i] = 1'000'000'000;
  Inventory inventory(units);
  std::uint32_t hint = 0;
  std::int64_t found = 0;
  for (auto _ : state) {
    const std::uint32_t sku = inventory.take_any(hint);
    hint = (hint + 37) % 307;
    if (sku != kNoSku) {
      ++found;
      inventory.give_back(sku, 1);
    }
  }
  if (found != state.iterations()) state.SkipWithError("no SKU with stock was found");
  state.counters["choices/s"] =
      benchmark::Counter(static_cast<double>(found), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SkuChoice);

// The allowance index (the sharded member map): inserting new members, and
// looking up members already in it (the repeat press).
struct AllowanceEntry {
  std::int64_t held = 0;
};
void BM_AllowanceInsert(benchmark::State& state) {
  constexpr std::int64_t kMembersPerMap = 1'000'000;  // then a fresh map: stays campaign-sized
  auto index = std::make_unique<ShardedMap<AllowanceEntry>>();
  char buf[32];
  std::int64_t n = 0;
  std::int64_t fresh = 0;
  for (auto _ : state) {
    if (n == kMembersPerMap) {
      state.PauseTiming();
      index = std::make_unique<ShardedMap<AllowanceEntry>>();
      n = 0;
      state.ResumeTiming();
    }
    const std::string_view member = member_name(buf, n++);
    const std::size_t h = ShardedMap<AllowanceEntry>::hash(member);
    fresh += index->with_shard(
        h, [&](auto& map) { return map.try_emplace(std::string(member)).second ? 1 : 0; });
  }
  if (fresh != state.iterations()) state.SkipWithError("an insert found its member");
  state.counters["inserts/s"] =
      benchmark::Counter(static_cast<double>(fresh), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_AllowanceInsert);

void BM_AllowanceLookup(benchmark::State& state) {
  constexpr std::int64_t kMembers = 59'000;
  static ShardedMap<AllowanceEntry>* index = [] {
    auto* m = new ShardedMap<AllowanceEntry>;  // shared by the threads, never freed
    char buf[32];
    for (std::int64_t i = 0; i < kMembers; ++i) {
      const std::string_view member = member_name(buf, i);
      m->with_shard(ShardedMap<AllowanceEntry>::hash(member),
                    [&](auto& map) { map.try_emplace(std::string(member)); });
    }
    return m;
  }();
  char buf[32];
  std::int64_t n = state.thread_index() * 7919;
  std::int64_t found = 0;
  const std::int64_t allocs_before = bench::allocations();
  for (auto _ : state) {
    const std::string_view member = member_name(buf, n++ % kMembers);
    found += index->with_shard(ShardedMap<AllowanceEntry>::hash(member), [&](auto& map) {
      return map.find(to_absl(member)) != map.end() ? 1 : 0;
    });
  }
  if (found != state.iterations()) state.SkipWithError("a member was not found");
  state.counters["lookups/s"] =
      benchmark::Counter(static_cast<double>(found), benchmark::Counter::kIsRate);
  state.counters["allocs/lookup"] = static_cast<double>(bench::allocations() - allocs_before) /
                                    static_cast<double>(state.iterations() * state.threads());
}
BENCHMARK(BM_AllowanceLookup)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // A server always runs threads. In a process that never started one,
  // libstdc++ counts shared_ptr references without atomic instructions
  // (glibc's __libc_single_threaded), which would flatter the one-thread
  // rows of a build that shares records by shared_ptr; once a thread has
  // started, it never does again. So one starts first, whatever the filter.
  std::thread([] {}).join();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
