// draw-storm — a crowd drawing in a LOTTERY campaign, over gRPC.
//
//   draw-storm --target 127.0.0.1:50051 --campaign city-lottery-2026
//     --members 100000 --draws-per-member 3 --concurrency 64 --max-seconds 120
//
// Every member draws `draws-per-member` times (each with its own request
// id), in shuffled order, with `concurrency` calls in flight from one
// completion-queue thread. Prints the outcomes, the rate and latency, and a
// client-side check: no code went to two members, and no member won more than
// `--prizes-per-member`. Exit status 0 when the check passes and every call
// was answered, 1 otherwise. Bounded by draw count and by wall time.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "voucher/v1/voucher.grpc.pb.h"

namespace {

namespace v1 = voucher::v1;
using Clock = std::chrono::steady_clock;

struct Call {
  grpc::ClientContext ctx;
  v1::DrawRequest request;
  v1::DrawResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::DrawResponse>> reader;
  Clock::time_point sent;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"draw-storm — a crowd drawing in a LOTTERY campaign", "draw-storm"};
  std::string target = "127.0.0.1:50051", campaign, prefix = "member-";
  std::int64_t members = 100'000;
  int draws_per_member = 3, concurrency = 64, prizes_per_member = 1;
  double max_seconds = 120;
  std::uint64_t seed = 1;
  app.add_option("--target", target, "voucherd address")->capture_default_str();
  app.add_option("--campaign", campaign, "LOTTERY campaign id")->required();
  app.add_option("--members", members, "distinct members")->capture_default_str();
  app.add_option("--draws-per-member", draws_per_member, "draws of each member")
      ->capture_default_str();
  app.add_option("--prizes-per-member", prizes_per_member, "the campaign's prize limit")
      ->capture_default_str();
  app.add_option("--concurrency", concurrency, "calls in flight")->capture_default_str();
  app.add_option("--max-seconds", max_seconds, "stop sending after this long")
      ->capture_default_str();
  app.add_option("--member-prefix", prefix, "member ids are <prefix><n>")->capture_default_str();
  app.add_option("--seed", seed, "shuffle seed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::vector<std::int64_t> draws;  // member numbers, each draws_per_member times
  draws.reserve(static_cast<std::size_t>(members * draws_per_member));
  for (int k = 0; k < draws_per_member; ++k) {
    for (std::int64_t m = 0; m < members; ++m) draws.push_back(m);
  }
  std::mt19937_64 rng(seed);
  std::shuffle(draws.begin(), draws.end(), rng);

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::VoucherService::NewStub(
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  grpc::CompletionQueue cq;
  std::vector<int> sent_per_member(static_cast<std::size_t>(members), 0);
  std::unordered_map<std::string, std::string> member_by_code;
  std::unordered_map<std::string, int> prizes_by_member;
  std::map<std::string, std::int64_t> outcomes;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(draws.size());
  std::int64_t in_flight = 0, answered = 0, codes_with_two_members = 0, over_prize_limit = 0;
  std::size_t next = 0;
  const Clock::time_point start = Clock::now();
  const auto give_up = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(max_seconds));

  auto send = [&](std::int64_t member) {
    auto* call = new Call;
    call->request.set_campaign_id(campaign);
    call->request.set_member_id(prefix + std::to_string(member));
    call->request.set_request_id("d" + std::to_string(sent_per_member[member]++));
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    call->sent = Clock::now();
    call->reader = stub->AsyncDraw(&call->ctx, call->request, &cq);
    call->reader->Finish(&call->response, &call->status, call);
    ++in_flight;
  };
  while (next < draws.size() && in_flight < concurrency) send(draws[next++]);
  void* tag = nullptr;
  bool ok = false;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    const Clock::time_point now = Clock::now();
    --in_flight;
    ++answered;
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - call->sent).count());
    if (!call->status.ok()) {
      ++outcomes["error " + std::to_string(call->status.error_code()) + " " +
                 call->status.error_message().substr(0, 60)];
    } else if (call->response.won()) {
      ++outcomes["WON"];
      const std::string& member = call->request.member_id();
      auto [it, fresh] = member_by_code.try_emplace(call->response.voucher().code(), member);
      if (!fresh && it->second != member) ++codes_with_two_members;
      if (++prizes_by_member[member] > prizes_per_member) ++over_prize_limit;
    } else {
      ++outcomes[v1::NoPrizeReason_Name(call->response.reason())];
    }
    if (next < draws.size() && now < give_up) send(draws[next++]);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double q) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<std::size_t>(q * latencies_ms.size()))];
  };
  std::printf("draws answered     %lld in %.2f s (%.0f draws/s)\n",
              static_cast<long long>(answered), elapsed, static_cast<double>(answered) / elapsed);
  std::printf("latency            p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", pct(0.5), pct(0.99),
              latencies_ms.empty() ? 0.0 : latencies_ms.back());
  std::int64_t errors = 0;
  for (const auto& [what, n] : outcomes) {
    std::printf("  %-32s %lld\n", what.c_str(), static_cast<long long>(n));
    if (what.rfind("error", 0) == 0) errors += n;
  }
  const bool consistent = codes_with_two_members == 0 && over_prize_limit == 0;
  std::printf(
      "client check       codes with two members %lld, wins over the prize limit %lld"
      "  -> %s\n",
      static_cast<long long>(codes_with_two_members), static_cast<long long>(over_prize_limit),
      consistent ? "OK" : "FAILED");
  const bool complete = answered == static_cast<std::int64_t>(draws.size());
  if (!complete) std::printf("stopped after %.0f s: not every draw was sent\n", max_seconds);
  return consistent && complete && errors == 0 ? 0 : 1;
}
