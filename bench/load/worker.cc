// worker.cc — voucher-load's client thread: the send loop (closed or open),
// answers and retries on its completion queue, the refusal reasons, and the
// helpers that tally what an answer says.
#include "bench/load/worker.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace voucherd::load::detail {
namespace {

bool retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE;
}

std::chrono::system_clock::time_point to_system(Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
}

}  // namespace

const std::string& ReasonDecoder::reason(const grpc::Status& s) {
  if (s.error_details() == last_details_) return last_reason_;
  last_details_ = s.error_details();
  last_reason_.clear();
  google::rpc::Status detail;
  if (detail.ParseFromString(last_details_)) {
    for (const auto& any : detail.details()) {
      google::rpc::ErrorInfo info;
      if (any.UnpackTo(&info)) {
        last_reason_ = info.reason();
        break;
      }
    }
  }
  return last_reason_;
}

Worker::Worker(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds,
               int index)
    : options(o), index_(index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  args.SetMaxReceiveMessageSize(16 << 20);
  channel_ = grpc::CreateCustomChannel(o.target, creds, args);
  stub = v1::VoucherService::NewStub(channel_);
}

void Worker::run(Workload& workload, WorkSource& source, Clock::time_point start, int cap,
                 double rate_per_s) {
  start_ = start;
  stop_sending_ = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(options.duration_s));
  const Clock::time_point stop_sending = stop_sending_;
  const bool open_loop = rate_per_s > 0;
  const auto interval = open_loop ? std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(1.0 / rate_per_s))
                                  : Clock::duration::zero();
  // Each open-loop thread starts its schedule offset so threads interleave.
  Clock::time_point next_due = start + interval * index_ / std::max(1, options.threads);
  bool sending = true;
  for (;;) {
    Clock::time_point now = Clock::now();
    if (sending && now >= stop_sending) {
      sending = false;
      tally.timed_out = !source.exhausted();
    }
    while (sending && in_flight_ < cap && (!open_loop || now >= next_due)) {
      std::vector<std::int64_t> work = source.take(workload.work_per_call());
      if (work.empty()) {
        sending = false;
        break;
      }
      std::unique_ptr<Call> call = workload.make(*this, std::move(work));
      if (open_loop) {
        call->intended = next_due;
        if (now - next_due > std::chrono::milliseconds(1)) ++tally.late_sends;
        next_due += interval;
      } else {
        call->intended = now;
      }
      ++in_flight_;
      call.release()->start(*this);
      if (open_loop) now = Clock::now();
    }
    if (!sending && in_flight_ == 0) break;
    Clock::time_point wake = now + std::chrono::milliseconds(100);
    if (sending) {
      wake = std::min(wake, stop_sending);
      if (open_loop && in_flight_ < cap) wake = std::min(wake, next_due);
    }
    void* tag = nullptr;
    bool ok = false;
    const auto got = cq.AsyncNext(&tag, &ok, to_system(wake));
    if (got == grpc::CompletionQueue::SHUTDOWN) break;
    if (got == grpc::CompletionQueue::GOT_EVENT) answered(workload, static_cast<Call*>(tag));
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) delete static_cast<Call*>(tag);
}

SecondTally& Worker::second(Clock::time_point now) {
  auto i = static_cast<std::size_t>(
      std::chrono::duration_cast<std::chrono::seconds>(now - start_).count());
  i = std::min(i, kTimelineSecondsMax - 1);
  while (tally.seconds.size() <= i) tally.seconds.push_back(std::make_unique<SecondTally>());
  return *tally.seconds[i];
}

void Worker::answered(Workload& workload, Call* raw) {
  std::unique_ptr<Call> call(raw);
  if (call->alarm) {  // its wait before a retry is over: send it now
    call->alarm.reset();
    call.release()->start(*this);
    return;
  }
  const Clock::time_point now = Clock::now();
  std::vector<std::int64_t> again = call->finish(*this, now);
  const bool whole_call_again = again.size() == call->work.size();
  if (!whole_call_again) {
    const auto ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->intended).count());
    tally.latency.record(ns);
    tally.calls.store(tally.calls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    SecondTally& s = second(now);
    ++s.calls;
    s.latency.record(ns);
  }
  if (again.empty()) {
    --in_flight_;
    return;
  }
  // The work refused with "retry" goes out again after a pause, as a call
  // of its own that takes this one's place in flight.
  tally.retries += static_cast<std::int64_t>(again.size());
  std::unique_ptr<Call> retry = workload.make(*this, std::move(again));
  retry->attempt = call->attempt + 1;
  retry->intended = call->intended;
  retry->alarm = std::make_unique<grpc::Alarm>();
  grpc::Alarm* alarm = retry->alarm.get();
  alarm->Set(&cq, std::chrono::system_clock::now() + options.retry_delay, retry.release());
}

bool send_again(const Worker& w, const Call& call, grpc::StatusCode code) {
  return retryable(code) && call.attempt < w.options.max_retries && w.still_sending();
}

void tally_refusal(Worker& w, grpc::StatusCode code, const std::string& reason,
                   Clock::time_point now) {
  w.tally.count_code(code);
  ++w.tally.answers;
  ++w.second(now).errors;
  if (!reason.empty()) ++w.tally.reasons[reason];
  if (reason == "SOLD_OUT") {
    ++w.tally.sold_out;
    w.tally.sold_out_seen = true;
  }
}

void tally_ok(Worker& w, Clock::time_point now) {
  w.tally.count_code(grpc::StatusCode::OK);
  ++w.tally.answers;
  ++w.second(now).ok;
}

void tally_issued(Worker& w, const std::string& member, const v1::Voucher& v,
                  Clock::time_point now) {
  ++w.tally.issued;
  w.tally.last_issue = now;
  w.tally.issued_codes.emplace_back(v.code(), v.site_id());
  if (w.options.mode == Mode::kMixed) w.to_redeem.emplace_back(v.code(), v.site_id());
  w.tally.claims_seen.emplace_back(member, v.code());
}

void tally_claimed(Worker& w, const std::string& member, const v1::ClaimResponse& response,
                   Clock::time_point now) {
  tally_ok(w, now);
  const v1::Voucher& v = response.voucher();
  if (!response.already_claimed()) return tally_issued(w, member, v, now);
  ++w.tally.already_claimed;
  w.tally.claims_seen.emplace_back(member, v.code());
}

}  // namespace voucherd::load::detail
