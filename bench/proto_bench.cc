// proto_bench — the messages of one call on a queue thread of the gRPC
// front: its request parsed from the wire's bytes, and an Apply's answer
// built and serialized, each on the heap (a message of its own per call, as
// the front did until 2026-12-03) and on a per-call arena whose first block
// lives in the call (server/grpc/call.h). Counts the allocations of each.
//
//   build/bin/proto_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
//
// The allocations here are served from a warm thread cache, so the time
// saved is a lower bound of the server's: there, perf put the parse of an
// Apply's request at 8.6% of its queue thread.
#include <benchmark/benchmark.h>
#include <google/protobuf/arena.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "bench/alloc/alloc_count.h"
#include "server/grpc/proto_convert.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd {
namespace {

namespace v1 = voucher::v1;

constexpr std::size_t kBlockBytes = 2048;  // as UnaryCall's

std::string claim_bytes() {
  v1::ClaimRequest r;
  r.set_campaign_id("guangdong-2024");
  r.set_member_id("member-123456");
  r.set_request_id("r-123456-0");
  return r.SerializeAsString();
}

std::string apply_bytes() {
  v1::ApplyRequest r;
  r.set_campaign_id("guangdong-apply-2024");
  r.set_member_id("member-123456");
  r.set_request_id("r-123456-0");
  for (const char* sku : {"sku-017-a", "sku-203-b", "sku-088-c"}) r.add_preferred_sku_ids(sku);
  return r.SerializeAsString();
}

// Allocations per iteration.
void count_allocations(benchmark::State& state, std::int64_t before) {
  state.counters["allocs"] = benchmark::Counter(static_cast<double>(bench::allocations() - before),
                                                benchmark::Counter::kAvgIterations);
}

template <class Request>
void parse_on_heap(benchmark::State& state, const std::string& bytes) {
  const std::int64_t before = bench::allocations();
  for (auto _ : state) {
    Request r;
    benchmark::DoNotOptimize(r.ParseFromString(bytes));
  }
  count_allocations(state, before);
}

template <class Request>
void parse_on_arena(benchmark::State& state, const std::string& bytes) {
  alignas(std::max_align_t) std::array<char, kBlockBytes> block;
  const std::int64_t before = bench::allocations();
  for (auto _ : state) {
    google::protobuf::Arena arena(block.data(), block.size());
    auto& r = *google::protobuf::Arena::CreateMessage<Request>(&arena);
    benchmark::DoNotOptimize(r.ParseFromString(bytes));
  }
  count_allocations(state, before);
}

void BM_ParseClaimRequestHeap(benchmark::State& state) {
  parse_on_heap<v1::ClaimRequest>(state, claim_bytes());
}
BENCHMARK(BM_ParseClaimRequestHeap);
void BM_ParseClaimRequestArena(benchmark::State& state) {
  parse_on_arena<v1::ClaimRequest>(state, claim_bytes());
}
BENCHMARK(BM_ParseClaimRequestArena);
void BM_ParseApplyRequestHeap(benchmark::State& state) {
  parse_on_heap<v1::ApplyRequest>(state, apply_bytes());
}
BENCHMARK(BM_ParseApplyRequestHeap);
void BM_ParseApplyRequestArena(benchmark::State& state) {
  parse_on_arena<v1::ApplyRequest>(state, apply_bytes());
}
BENCHMARK(BM_ParseApplyRequestArena);

CampaignSpec apply_campaign() {
  CampaignSpec s;
  s.id = "guangdong-apply-2024";
  s.name = "Bench";
  s.mode = CampaignMode::kApplyThenDraw;
  s.sites = {{"site-1", "Site", "City", SkuKind::kHotel}};
  for (int i = 0; i < 307; ++i) {
    s.skus.push_back({"sku-" + std::to_string(i), "site-1", SkuKind::kHotel, "Room", 100, 200});
  }
  return s;
}

ApplicationResult recorded_application() {
  ApplicationResult r;
  r.outcome = Outcome::kOk;
  r.application.member_id = "member-123456";
  r.application.preferred = {17, 203, 88};
  r.application.applied_at_us = 1'795'795'200'123'000;
  return r;
}

// What ApplyCall::answer does with a recorded application, up to the bytes
// gRPC sends.
void build_answer(const CampaignSpec& spec, const ApplicationResult& in, v1::ApplyResponse& out,
                  std::string& wire) {
  application_to_proto(spec, in, in.application.applied_at_us, out.mutable_application());
  out.set_replaced(false);
  out.set_already_applied(false);
  wire.clear();
  out.AppendToString(&wire);
}

void BM_ApplyAnswerHeap(benchmark::State& state) {
  const CampaignSpec spec = apply_campaign();
  const ApplicationResult in = recorded_application();
  std::string wire;
  wire.reserve(256);
  const std::int64_t before = bench::allocations();
  for (auto _ : state) {
    v1::ApplyResponse response;
    build_answer(spec, in, response, wire);
    benchmark::DoNotOptimize(wire.data());
  }
  count_allocations(state, before);
}
BENCHMARK(BM_ApplyAnswerHeap);

void BM_ApplyAnswerArena(benchmark::State& state) {
  const CampaignSpec spec = apply_campaign();
  const ApplicationResult in = recorded_application();
  std::string wire;
  wire.reserve(256);
  alignas(std::max_align_t) std::array<char, kBlockBytes> block;
  const std::int64_t before = bench::allocations();
  for (auto _ : state) {
    google::protobuf::Arena arena(block.data(), block.size());
    auto& response = *google::protobuf::Arena::CreateMessage<v1::ApplyResponse>(&arena);
    build_answer(spec, in, response, wire);
    benchmark::DoNotOptimize(wire.data());
  }
  count_allocations(state, before);
}
BENCHMARK(BM_ApplyAnswerArena);

}  // namespace
}  // namespace voucherd

BENCHMARK_MAIN();
