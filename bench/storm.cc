#include "bench/storm.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::load {
namespace {

namespace v1 = voucher::v1;
using Clock = std::chrono::steady_clock;

struct Call {
  int attempt = 0;
  std::unique_ptr<grpc::Alarm> alarm;  // set while waiting to retry
  grpc::ClientContext ctx;
  v1::ClaimRequest request;
  v1::ClaimResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimResponse>> reader;
  Clock::time_point sent;
};

std::string reason_of(const grpc::Status& s) {
  // The ErrorInfo reason travels in the binary details; the message is
  // enough for the storm's tally ("... is sold out").
  return s.error_message();
}

double percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const std::size_t i = std::min(sorted.size() - 1, static_cast<std::size_t>(q * sorted.size()));
  return sorted[i];
}

}  // namespace

StormReport run_storm(const StormOptions& o) {
  StormReport r;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::VoucherService::NewStub(channel);

  // The crowd: every member once, then repeats of random members, shuffled.
  std::vector<std::int64_t> presses;
  const auto repeats = static_cast<std::int64_t>(o.repeat_share * static_cast<double>(o.members));
  presses.reserve(static_cast<std::size_t>(o.members + repeats));
  for (std::int64_t m = 0; m < o.members; ++m) presses.push_back(o.member_first + m);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(0, o.members - 1));
  for (std::int64_t i = 0; i < repeats; ++i) presses.push_back(o.member_first + pick(rng));
  std::shuffle(presses.begin(), presses.end(), rng);

  std::unordered_map<std::string, std::string> member_by_code;
  std::vector<double> latencies_ms;
  latencies_ms.reserve(presses.size());
  grpc::CompletionQueue cq;
  std::size_t next = 0;
  std::int64_t in_flight = 0;
  const Clock::time_point start = Clock::now();
  const Clock::time_point give_up = start + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(o.max_seconds));
  Clock::time_point last_issue = start;
  Clock::time_point last_progress = start;
  bool sold_out_seen = false;

  auto start_rpc = [&](Call* call) {
    call->alarm.reset();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));

    call->sent = Clock::now();
    call->reader = stub->AsyncClaim(&call->ctx, call->request, &cq);
    call->reader->Finish(&call->response, &call->status, call);
  };
  auto send = [&](std::int64_t member) {
    auto* call = new Call;
    call->request.set_campaign_id(o.campaign_id);
    call->request.set_member_id(o.member_prefix + std::to_string(member));
    start_rpc(call);
    ++in_flight;
  };

  while (next < presses.size() && in_flight < o.concurrency) send(presses[next++]);
  void* tag = nullptr;
  bool ok = false;
  while (in_flight > 0 && cq.Next(&tag, &ok)) {
    if (static_cast<Call*>(tag)->alarm) {  // a retry's wait is over
      start_rpc(static_cast<Call*>(tag));
      continue;
    }
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    const Clock::time_point now = Clock::now();
    const auto status_code = call->status.error_code();
    if ((status_code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         status_code == grpc::StatusCode::UNAVAILABLE) &&
        call->attempt < o.max_retries && now < give_up) {
      auto* again = new Call;
      again->attempt = call->attempt + 1;
      again->request = call->request;
      again->alarm = std::make_unique<grpc::Alarm>();
      again->alarm->Set(&cq, std::chrono::system_clock::now() + o.retry_delay, again);
      ++r.retries;
      continue;  // still in flight
    }
    --in_flight;
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(now - call->sent).count());
    ++r.presses;
    if (call->status.ok()) {
      const std::string& member = call->request.member_id();
      const std::string& code = call->response.voucher().code();
      if (call->response.already_claimed()) {
        ++r.already_claimed;
      } else {
        ++r.issued;
        last_issue = now;
      }
      auto [it, fresh] = r.code_by_member.try_emplace(member, code);
      if (!fresh && it->second != code) ++r.members_with_two_codes;
      auto [cit, cfresh] = member_by_code.try_emplace(code, member);
      if (!cfresh && cit->second != member) ++r.codes_with_two_members;
    } else if (call->status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
               reason_of(call->status).find("sold out") != std::string::npos) {
      ++r.sold_out;
      sold_out_seen = true;
    } else {
      ++r.errors_by_code[static_cast<int>(call->status.error_code())];
    }
    if (o.progress && now - last_progress >= std::chrono::seconds(1)) {
      last_progress = now;
      std::fprintf(stderr, "  %6.1fs  answered %lld  issued %lld  already %lld  sold-out %lld\n",
                   std::chrono::duration<double>(now - start).count(),
                   static_cast<long long>(r.presses), static_cast<long long>(r.issued),
                   static_cast<long long>(r.already_claimed), static_cast<long long>(r.sold_out));
    }
    if (now >= give_up) {
      r.timed_out = next < presses.size();
      continue;  // drain what is in flight, send nothing more
    }
    if (next < presses.size()) send(presses[next++]);
  }
  const Clock::time_point end = Clock::now();
  r.elapsed_s = std::chrono::duration<double>(end - start).count();
  if (sold_out_seen) r.sellout_s = std::chrono::duration<double>(last_issue - start).count();
  r.distinct_codes = static_cast<std::int64_t>(member_by_code.size());
  std::sort(latencies_ms.begin(), latencies_ms.end());
  r.p50_ms = percentile(latencies_ms, 0.50);
  r.p90_ms = percentile(latencies_ms, 0.90);
  r.p99_ms = percentile(latencies_ms, 0.99);
  r.max_ms = latencies_ms.empty() ? 0 : latencies_ms.back();
  return r;
}

std::string format_report(const StormReport& r) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << "presses answered   " << r.presses << " in " << r.elapsed_s << " s ("
      << (r.elapsed_s > 0 ? static_cast<double>(r.presses) / r.elapsed_s : 0) << " /s)\n"
      << "vouchers issued    " << r.issued << "\n"
      << "already claimed    " << r.already_claimed
      << " (repeat presses answered with the held voucher)\n"
      << "sold out           " << r.sold_out << "\n";
  if (r.retries > 0) {
    out << "retried presses    " << r.retries << " (RESOURCE_EXHAUSTED / UNAVAILABLE)\n";
  }
  for (const auto& [code, n] : r.errors_by_code) {
    out << "status " << code << " errors    " << n << "\n";
  }
  out << "latency ms         p50 " << r.p50_ms << "  p90 " << r.p90_ms << "  p99 " << r.p99_ms
      << "  max " << r.max_ms << "\n";
  if (r.sellout_s >= 0) out << "sold out after     " << r.sellout_s << " s from the first press\n";
  out << "client check       distinct codes " << r.distinct_codes << ", members with two codes "
      << r.members_with_two_codes << ", codes with two members " << r.codes_with_two_members
      << (r.consistent() ? "  -> OK" : "  -> FAILED") << "\n";
  if (r.timed_out) out << "stopped at the time limit before every press was sent\n";
  return out.str();
}

}  // namespace voucherd::load
