#include "bench/load/load.h"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "proto/grpc_code_names.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::load {
namespace {

namespace v1 = voucher::v1;
using Clock = std::chrono::steady_clock;

constexpr int kStatusCodes = static_cast<int>(kGrpcCodes);  // grpc::StatusCode 0..16
// Longest run the timeline keeps seconds for (a bound on its memory).
constexpr std::size_t kTimelineSecondsMax = 3600;

bool retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE;
}

// What one second of one client thread saw.
struct SecondTally {
  std::int64_t calls = 0;
  std::int64_t ok = 0;
  std::int64_t errors = 0;
  LatencyHistogram latency;
};

// What one client thread saw. Only its thread writes; the atomics are read
// live by the progress line (relaxed: counters only).
struct Tally {
  LatencyHistogram latency;
  std::atomic<std::int64_t> calls{0};
  std::array<std::atomic<std::int64_t>, kStatusCodes> codes{};
  std::map<std::string, std::int64_t> reasons;
  std::vector<std::unique_ptr<SecondTally>> seconds;
  std::int64_t answers = 0, retries = 0, late_sends = 0;
  std::int64_t issued = 0, already_claimed = 0, sold_out = 0;
  std::int64_t redeemed = 0, already_redeemed = 0;
  bool sold_out_seen = false;
  Clock::time_point last_issue{};
  // OK claim answers: (member, code), and each new code's site.
  std::vector<std::pair<std::string, std::string>> claims_seen;
  std::vector<std::pair<std::string, std::string>> issued_codes;  // (code, site)
  // First redemptions per code (two would be a double redemption).
  std::unordered_map<std::string, int> fresh_redemptions;
  bool timed_out = false;

  void count_code(grpc::StatusCode code, std::int64_t n = 1) {
    auto& c = codes[static_cast<std::size_t>(std::clamp(static_cast<int>(code), 0, 16))];
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// The ErrorInfo reason of a refusal. The details of one kind of refusal are
// the same bytes every time (one campaign sold out), so the last decoding
// is kept.
class ReasonDecoder {
 public:
  const std::string& reason(const grpc::Status& s) {
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

 private:
  std::string last_details_;
  std::string last_reason_;
};

class Worker;

// One RPC in flight: started by a workload, answered on the worker's
// completion queue with itself as the tag.
class Call {
 public:
  virtual ~Call() = default;
  // Starts the RPC; its completion comes back with `this` as tag.
  virtual void start(Worker& w) = 0;
  // The RPC answered: tallies what it says and returns the work to send
  // again (refusals that say "retry").
  virtual std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) = 0;

  grpc::ClientContext ctx;
  grpc::Status status;
  std::vector<std::int64_t> work;  // what this call carries (workload's indices)
  Clock::time_point intended;      // latency runs from here
  int attempt = 0;
  std::unique_ptr<grpc::Alarm> alarm;  // set while waiting to be sent again
};

// What a mode sends: turns pieces of work into calls.
class Workload {
 public:
  virtual ~Workload() = default;
  [[nodiscard]] virtual std::unique_ptr<Call> make(Worker& w, std::vector<std::int64_t> work) = 0;
  [[nodiscard]] virtual int work_per_call() const { return 1; }
};

// Hands out work indices 0 .. total-1 to the workers.
class WorkSource {
 public:
  explicit WorkSource(std::int64_t total) : total_(total) {}
  // Up to `n` indices; empty when the work is all handed out.
  std::vector<std::int64_t> take(int n) {
    // Relaxed: the indices are the only thing handed over.
    const std::int64_t first = next_.fetch_add(n, std::memory_order_relaxed);
    std::vector<std::int64_t> out;
    for (std::int64_t i = first; i < std::min(total_, first + n); ++i) out.push_back(i);
    return out;
  }
  [[nodiscard]] bool exhausted() const { return next_.load(std::memory_order_relaxed) >= total_; }

 private:
  const std::int64_t total_;
  std::atomic<std::int64_t> next_{0};
};

// One client thread: its own connection and completion queue.
class Worker {
 public:
  Worker(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds, int index)
      : options(o), index_(index) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    args.SetMaxReceiveMessageSize(16 << 20);
    channel_ = grpc::CreateCustomChannel(o.target, creds, args);
    stub = v1::VoucherService::NewStub(channel_);
  }

  // Sends and answers until the work is done or the time is up, then waits
  // for the calls in flight.
  void run(Workload& workload, WorkSource& source, Clock::time_point start, int cap,
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

  // Whether refused work may still go out again: retries stop with the
  // sending.
  [[nodiscard]] bool still_sending() const { return Clock::now() < stop_sending_; }

  // Prepares a call's context: deadline and token.
  void prepare(Call& call, const std::string& token) const {
    call.ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    if (!token.empty()) call.ctx.AddMetadata("authorization", "Bearer " + token);
  }

  SecondTally& second(Clock::time_point now) {
    auto i = static_cast<std::size_t>(
        std::chrono::duration_cast<std::chrono::seconds>(now - start_).count());
    i = std::min(i, kTimelineSecondsMax - 1);
    while (tally.seconds.size() <= i) tally.seconds.push_back(std::make_unique<SecondTally>());
    return *tally.seconds[i];
  }

  const LoadOptions& options;
  grpc::CompletionQueue cq;
  std::unique_ptr<v1::VoucherService::Stub> stub;
  Tally tally;
  ReasonDecoder reasons;
  std::mt19937_64 rng{0};
  std::deque<std::pair<std::string, std::string>> to_redeem;  // mixed: (code, site)

 private:
  static std::chrono::system_clock::time_point to_system(Clock::time_point t) {
    return std::chrono::system_clock::now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(t - Clock::now());
  }

  void answered(Workload& workload, Call* raw) {
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

  int index_;
  int in_flight_ = 0;
  Clock::time_point start_;
  Clock::time_point stop_sending_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Whether a refused piece of work should go out again.
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

// An OK answer: a claim's, or a draw's.
void tally_ok(Worker& w, Clock::time_point now) {
  w.tally.count_code(grpc::StatusCode::OK);
  ++w.tally.answers;
  ++w.second(now).ok;
}

// A new voucher for `member` (a claim's, or a winning draw's).
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

// The crowd: every member once, then repeats of random members, shuffled.
std::vector<std::int64_t> make_crowd(const LoadOptions& o) {
  std::vector<std::int64_t> crowd;
  const auto repeats = static_cast<std::int64_t>(o.repeat_share * static_cast<double>(o.members));
  crowd.reserve(static_cast<std::size_t>(o.members + repeats));
  for (std::int64_t m = 0; m < o.members; ++m) crowd.push_back(o.member_first + m);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(0, o.members - 1));
  for (std::int64_t i = 0; i < repeats; ++i) crowd.push_back(o.member_first + pick(rng));
  std::shuffle(crowd.begin(), crowd.end(), rng);
  return crowd;
}

// ---- claim mode: VoucherService.Claim, one member per call ----

class ClaimCall final : public Call {
 public:
  ClaimCall(const LoadOptions& o, std::string member) {
    request.set_campaign_id(o.campaign_id);
    request.set_member_id(std::move(member));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncClaim(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_claimed(w, request.member_id(), response, now);
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::ClaimRequest request;
  v1::ClaimResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimResponse>> reader;
};

// ---- claim mode with --batch: VoucherService.ClaimBatch ----

class ClaimBatchCall final : public Call {
 public:
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncClaimBatch(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  // Up to 1,000 claims and results of a few strings each: on one arena
  // rather than thousands of small allocations.
  google::protobuf::Arena arena;
  v1::ClaimBatchRequest& request =
      *google::protobuf::Arena::CreateMessage<v1::ClaimBatchRequest>(&arena);
  v1::ClaimBatchResponse& response =
      *google::protobuf::Arena::CreateMessage<v1::ClaimBatchResponse>(&arena);
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    std::vector<std::int64_t> again;
    const int n = request.claims_size();
    if (!status.ok() || response.results_size() != n) {
      // The whole call failed (or answered the wrong number of results:
      // counted as INTERNAL for every claim).
      const auto code = status.ok() ? grpc::StatusCode::INTERNAL : status.error_code();
      if (send_again(w, *this, code)) return work;
      const std::string reason = status.ok() ? "WRONG_RESULT_COUNT" : w.reasons.reason(status);
      for (int i = 0; i < n; ++i) tally_refusal(w, code, reason, now);
      return {};
    }
    for (int i = 0; i < n; ++i) {
      const v1::ClaimResult& r = response.results(i);
      const auto code = static_cast<grpc::StatusCode>(r.code());
      if (code == grpc::StatusCode::OK) {
        tally_claimed(w, request.claims(i).member_id(), r.response(), now);
      } else if (send_again(w, *this, code)) {
        again.push_back(work[static_cast<std::size_t>(i)]);
      } else {
        tally_refusal(w, code, r.reason(), now);
      }
    }
    return again;
  }

  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimBatchResponse>> reader;
};

// ---- draw mode: VoucherService.Draw of a LOTTERY campaign ----

class DrawCall final : public Call {
 public:
  DrawCall(const LoadOptions& o, std::string member, std::int64_t index) {
    request.set_campaign_id(o.campaign_id);
    request.set_member_id(std::move(member));
    // The draw's place in the run: a retry of this call is the same draw.
    request.set_request_id("load-draw-" + std::to_string(index));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncDraw(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_ok(w, now);
      if (response.won()) {
        tally_issued(w, request.member_id(), response.voucher(), now);
      } else {
        ++w.tally.reasons[v1::NoPrizeReason_Name(response.reason())];
      }
      return {};
    }
    const std::string reason = w.reasons.reason(status);
    // The day's draws used up is final for the day: not a "retry shortly".
    if (reason != "DAILY_DRAW_LIMIT" && send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), reason, now);
    return {};
  }

  v1::DrawRequest request;
  v1::DrawResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::DrawResponse>> reader;
};

class ClaimWorkload final : public Workload {
 public:
  explicit ClaimWorkload(const LoadOptions& o) : options_(o), crowd_(make_crowd(o)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    if (options_.mode == Mode::kDraw) {
      auto call = std::make_unique<DrawCall>(options_, member(work.front()), work.front());
      call->work = std::move(work);
      return call;
    }
    if (options_.batch > 0) {
      auto call = std::make_unique<ClaimBatchCall>();
      for (std::int64_t i : work) {
        v1::ClaimRequest* claim = call->request.add_claims();
        claim->set_campaign_id(options_.campaign_id);
        claim->set_member_id(member(i));
      }
      call->work = std::move(work);
      return call;
    }
    auto call = std::make_unique<ClaimCall>(options_, member(work.front()));
    call->work = std::move(work);
    return call;
  }
  int work_per_call() const override { return std::max(1, options_.batch); }
  [[nodiscard]] std::int64_t crowd_size() const { return static_cast<std::int64_t>(crowd_.size()); }
  [[nodiscard]] std::string member(std::int64_t i) const {
    const auto n = crowd_.size();
    return options_.member_prefix + std::to_string(crowd_[static_cast<std::size_t>(i) % n]);
  }

 private:
  const LoadOptions& options_;
  std::vector<std::int64_t> crowd_;
};

// ---- redeem mode: VoucherService.Redeem of issued codes ----

class RedeemCall final : public Call {
 public:
  RedeemCall(std::string code, std::string site) {
    // The request id is the code's own: a second redemption of a code by
    // this harness is a retry of the first, and must come back
    // already_redeemed, never as a second redemption.
    request.set_request_id("load-" + code);
    request.set_code(std::move(code));
    request.set_site_id(std::move(site));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.site_token);
    reader = w.stub->AsyncRedeem(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      w.tally.count_code(grpc::StatusCode::OK);
      ++w.tally.answers;
      ++w.second(now).ok;
      if (response.already_redeemed()) {
        ++w.tally.already_redeemed;
      } else {
        ++w.tally.redeemed;
        ++w.tally.fresh_redemptions[request.code()];
      }
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::RedeemRequest request;
  v1::RedeemResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::RedeemResponse>> reader;
};

class RedeemWorkload final : public Workload {
 public:
  explicit RedeemWorkload(std::vector<std::pair<std::string, std::string>> codes)
      : codes_(std::move(codes)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    const auto& [code, site] = codes_[static_cast<std::size_t>(work.front()) % codes_.size()];
    auto call = std::make_unique<RedeemCall>(code, site);
    call->work = std::move(work);
    return call;
  }

 private:
  std::vector<std::pair<std::string, std::string>> codes_;  // (code, site)
};

// ---- mixed mode: claims, and each thread redeems the vouchers it got ----

class MixedWorkload final : public Workload {
 public:
  explicit MixedWorkload(const LoadOptions& o) : options_(o), claims_(o) {}
  std::unique_ptr<Call> make(Worker& w, std::vector<std::int64_t> work) override {
    std::uniform_real_distribution<double> coin(0, 1);
    if (!w.to_redeem.empty() && coin(w.rng) < options_.mixed_redeem_share) {
      auto [code, site] = std::move(w.to_redeem.front());
      w.to_redeem.pop_front();
      auto call = std::make_unique<RedeemCall>(std::move(code), std::move(site));
      call->work = std::move(work);
      return call;
    }
    return claims_.make(w, std::move(work));
  }
  [[nodiscard]] std::int64_t crowd_size() const { return claims_.crowd_size(); }

 private:
  const LoadOptions& options_;
  ClaimWorkload claims_;
};

// ---- the run ----

void print_progress(const std::vector<std::unique_ptr<Worker>>& workers, double elapsed_s,
                    std::int64_t* last_calls) {
  LatencyHistogram merged;
  std::int64_t calls = 0;
  std::array<std::int64_t, kStatusCodes> codes{};
  for (const auto& w : workers) {
    merged.merge(w->tally.latency);
    calls += w->tally.calls.load(std::memory_order_relaxed);
    for (int c = 0; c < kStatusCodes; ++c) {
      codes[static_cast<std::size_t>(c)] +=
          w->tally.codes[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
    }
  }
  std::string errors;
  for (int c = 1; c < kStatusCodes; ++c) {
    if (codes[static_cast<std::size_t>(c)] == 0) continue;
    errors += " " + std::string(status_code_name(c)) + "=" +
              std::to_string(codes[static_cast<std::size_t>(c)]);
  }
  std::fprintf(stderr, "  %6.1fs  %8lld calls/s  ok %lld  errors:%s  p99 so far %.2f ms\n",
               elapsed_s, static_cast<long long>(calls - *last_calls),
               static_cast<long long>(codes[0]), errors.empty() ? " none" : errors.c_str(),
               static_cast<double>(merged.value_at_quantile(0.99)) / 1e6);
  *last_calls = calls;
}

PhaseReport run_phase(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds,
                      Workload& workload, std::int64_t total, const std::string& name,
                      std::vector<std::unique_ptr<Worker>>* kept) {
  const int threads = std::max(1, o.threads);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) workers.push_back(std::make_unique<Worker>(o, creds, t));
  WorkSource source(total);
  const Clock::time_point start = Clock::now();
  std::atomic<int> running{threads};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    // Closed loop: the calls in flight shared out; open loop: the rate.
    const int cap = o.rate > 0 ? std::max(1, o.max_in_flight / threads)
                               : std::max(1, (o.concurrency + threads - 1 - t) / threads);
    pool.emplace_back([&, t, cap] {
      workers[static_cast<std::size_t>(t)]->run(workload, source, start, cap, o.rate / threads);
      running.fetch_sub(1, std::memory_order_release);
    });
  }
  std::int64_t last_calls = 0;
  Clock::time_point next_line = start + std::chrono::seconds(1);
  while (running.load(std::memory_order_acquire) > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (o.progress && Clock::now() >= next_line) {
      next_line += std::chrono::seconds(1);
      print_progress(workers, std::chrono::duration<double>(Clock::now() - start).count(),
                     &last_calls);
    }
  }
  for (auto& t : pool) t.join();
  const Clock::time_point end = Clock::now();

  PhaseReport p;
  p.name = name;
  p.elapsed_s = std::chrono::duration<double>(end - start).count();
  Clock::time_point last_issue = start;
  bool sold_out_seen = false;
  std::size_t seconds = 0;
  for (const auto& w : workers) {
    const Tally& t = w->tally;
    p.latency.merge(t.latency);
    p.calls += t.calls.load(std::memory_order_relaxed);
    p.answers += t.answers;
    p.retries += t.retries;
    p.late_sends += t.late_sends;
    p.timed_out = p.timed_out || t.timed_out;
    for (int c = 0; c < kStatusCodes; ++c) {
      const auto n = t.codes[static_cast<std::size_t>(c)].load(std::memory_order_relaxed);
      if (n != 0) p.codes[c] += n;
    }
    for (const auto& [reason, n] : t.reasons) p.reasons[reason] += n;
    p.issued += t.issued;
    p.already_claimed += t.already_claimed;
    p.sold_out += t.sold_out;
    p.redeemed += t.redeemed;
    p.already_redeemed += t.already_redeemed;
    sold_out_seen = sold_out_seen || t.sold_out_seen;
    if (t.issued > 0) last_issue = std::max(last_issue, t.last_issue);
    seconds = std::max(seconds, t.seconds.size());
  }
  // The time to sell out is known when this run saw both its last voucher
  // and a SOLD_OUT.
  if (sold_out_seen && p.issued > 0) {
    p.sellout_s = std::chrono::duration<double>(last_issue - start).count();
  }
  for (std::size_t i = 0; i < seconds; ++i) {
    LatencyHistogram h;
    SecondStats s;
    for (const auto& w : workers) {
      if (i >= w->tally.seconds.size()) continue;
      const SecondTally& st = *w->tally.seconds[i];
      s.calls += st.calls;
      s.ok += st.ok;
      s.errors += st.errors;
      h.merge(st.latency);
    }
    s.p50_ns = h.value_at_quantile(0.5);
    s.p99_ns = h.value_at_quantile(0.99);
    s.max_ns = h.max_ns();
    p.timeline.push_back(s);
  }
  for (auto& w : workers) kept->push_back(std::move(w));
  return p;
}

// Client-side correctness over every worker of every phase.
void check_answers(const std::vector<std::unique_ptr<Worker>>& workers, LoadReport& r) {
  std::unordered_map<std::string, std::string> member_by_code;
  std::unordered_map<std::string, int> fresh;
  for (const auto& w : workers) {
    for (const auto& [member, code] : w->tally.claims_seen) {
      auto [it, is_new] = r.code_by_member.try_emplace(member, code);
      if (!is_new && it->second != code) ++r.check.members_with_two_codes;
      auto [cit, code_new] = member_by_code.try_emplace(code, member);
      if (!code_new && cit->second != member) ++r.check.codes_with_two_members;
    }
    for (const auto& [code, site] : w->tally.issued_codes) r.site_by_code.emplace(code, site);
    for (const auto& [code, n] : w->tally.fresh_redemptions) fresh[code] += n;
  }
  r.check.distinct_codes = static_cast<std::int64_t>(member_by_code.size());
  for (const auto& [code, n] : fresh) {
    if (n > 1) ++r.check.codes_redeemed_twice;
  }
}

void check_stock(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds,
                 LoadReport& r) {
  std::int64_t issued = 0;
  for (const auto& p : r.phases) issued += p.issued;
  r.check.stock = o.expect_stock > 0 ? o.expect_stock : -1;
  if (!o.skip_stats) {
    auto admin = v1::AdminService::NewStub(grpc::CreateChannel(o.target, creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + o.call_timeout);
    if (!o.admin_token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.admin_token);
    v1::GetCampaignStatsRequest req;
    req.set_campaign_id(o.campaign_id);
    v1::CampaignStats stats;
    const grpc::Status s = admin->GetCampaignStats(&ctx, req, &stats);
    if (s.ok()) {
      r.check.server_issued = stats.issued();
      if (o.expect_stock <= 0) r.check.stock = stats.stock_total();
      r.check.server_agrees = stats.issued() == issued;
    } else {
      r.check.stats_error = "GetCampaignStats: " + std::string(status_code_name(s.error_code())) +
                            ": " + s.error_message();
    }
  }
  if (r.check.stock >= 0) {
    r.check.issued_within_stock =
        issued <= r.check.stock &&
        (r.check.server_issued < 0 || r.check.server_issued <= r.check.stock);
  } else if (!o.skip_stats) {
    r.check.issued_within_stock = false;  // asked for, and could not be checked
  }
}

std::vector<std::pair<std::string, std::string>> read_codes(const std::string& path,
                                                            std::string* error) {
  std::vector<std::pair<std::string, std::string>> codes;
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read codes file " + path;
    return codes;
  }
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream fields(line);
    std::string code, site;
    if (!(fields >> code)) continue;  // blank line
    if (!(fields >> site)) {
      *error = path + ":" + std::to_string(number) + ": expected \"<code> <site_id>\"";
      return {};
    }
    codes.emplace_back(code, site);
  }
  return codes;
}

}  // namespace

const char* status_code_name(int code) {
  return code >= 0 ? grpc_code_name(static_cast<std::size_t>(code)) : "UNKNOWN";
}

LoadReport run_load(const LoadOptions& o) {
  LoadReport r;
  r.options = o;
  auto credentials = client_credentials(o.tls);
  if (!credentials) {
    r.error = credentials.error();
    return r;
  }
  const std::shared_ptr<grpc::ChannelCredentials>& creds = *credentials;
  std::vector<std::unique_ptr<Worker>> workers;  // kept for the check at the end

  const auto crowd_total = [&](std::int64_t crowd) { return o.count >= 0 ? o.count : crowd; };
  if (o.mode == Mode::kMixed) {
    MixedWorkload mixed(o);
    r.phases.push_back(
        run_phase(o, creds, mixed, crowd_total(mixed.crowd_size()), "mixed", &workers));
  } else if (o.mode == Mode::kClaim || o.mode == Mode::kDraw || o.codes_file.empty()) {
    ClaimWorkload claims(o);
    const char* name = o.mode == Mode::kDraw ? "draw" : o.batch > 0 ? "claim-batch" : "claim";
    r.phases.push_back(
        run_phase(o, creds, claims, crowd_total(claims.crowd_size()), name, &workers));
  }
  check_answers(workers, r);

  if (o.mode == Mode::kRedeem) {
    std::vector<std::pair<std::string, std::string>> codes;
    if (!o.codes_file.empty()) {
      codes = read_codes(o.codes_file, &r.error);
      if (!r.error.empty()) return r;
    } else {
      codes.assign(r.site_by_code.begin(), r.site_by_code.end());
      std::sort(codes.begin(), codes.end());
    }
    if (!codes.empty()) {
      const auto repeats =
          static_cast<std::int64_t>(o.repeat_share * static_cast<double>(codes.size()));
      const std::int64_t total =
          o.count >= 0 ? o.count : static_cast<std::int64_t>(codes.size()) + repeats;
      RedeemWorkload redeem(std::move(codes));
      r.phases.push_back(run_phase(o, creds, redeem, total, "redeem", &workers));
      r.code_by_member.clear();
      r.site_by_code.clear();
      r.check = CheckReport{};
      check_answers(workers, r);
    }
  }
  check_stock(o, creds, r);
  return r;
}

}  // namespace voucherd::load
