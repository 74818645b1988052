// worker.h — the machinery every voucher-load mode shares: a client thread
// (Worker) with its own connection and completion queue, the RPC in flight
// (Call), what a mode sends (Workload), the work handed out to the threads
// (WorkSource), what each thread saw (Tally, SecondTally), the refusal
// reasons (ReasonDecoder), and the helpers that tally an answer or send
// refused work again.
//
// Internal to bench/load (namespace detail): workloads.h builds each mode's
// calls on it and load.cc runs the phases with it. Nothing outside
// bench/load includes it.
//
// Thread-safety: a Worker, its Tally and its calls belong to the one client
// thread that runs it; the only state read from another thread is the
// Tally's relaxed atomic counters (the progress line) and a Tally read after
// the thread is joined. A WorkSource is shared by all the threads of a
// phase (its counter is atomic).
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench/load/histogram.h"
#include "bench/load/load.h"
#include "proto/grpc_code_names.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::load::detail {

namespace v1 = voucher::v1;
using Clock = std::chrono::steady_clock;

inline constexpr int kStatusCodes = static_cast<int>(kGrpcCodes);  // grpc::StatusCode 0..16
// Longest run the timeline keeps seconds for (a bound on its memory).
inline constexpr std::size_t kTimelineSecondsMax = 3600;

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
  // Apply mode: members whose Apply was answered OK, and the SKUs won as
  // GetApplication says.
  std::vector<std::string> applicants;
  std::map<std::string, std::int64_t> won_per_sku;
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
  const std::string& reason(const grpc::Status& s);

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
  Worker(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds, int index);

  // Sends and answers until the work is done or the time is up, then waits
  // for the calls in flight.
  void run(Workload& workload, WorkSource& source, Clock::time_point start, int cap,
           double rate_per_s);

  // Whether refused work may still go out again: retries stop with the
  // sending.
  [[nodiscard]] bool still_sending() const { return Clock::now() < stop_sending_; }

  // Prepares a call's context: deadline and token.
  void prepare(Call& call, const std::string& token) const {
    call.ctx.set_deadline(std::chrono::system_clock::now() + options.call_timeout);
    if (!token.empty()) call.ctx.AddMetadata("authorization", "Bearer " + token);
  }

  SecondTally& second(Clock::time_point now);

  const LoadOptions& options;
  grpc::CompletionQueue cq;
  std::unique_ptr<v1::VoucherService::Stub> stub;
  Tally tally;
  ReasonDecoder reasons;
  std::mt19937_64 rng{0};
  std::deque<std::pair<std::string, std::string>> to_redeem;  // mixed: (code, site)

 private:
  void answered(Workload& workload, Call* raw);

  int index_;
  int in_flight_ = 0;
  Clock::time_point start_;
  Clock::time_point stop_sending_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Whether a refused piece of work should go out again.
bool send_again(const Worker& w, const Call& call, grpc::StatusCode code);

// A refusal, with its ErrorInfo reason ("" when it has none).
void tally_refusal(Worker& w, grpc::StatusCode code, const std::string& reason,
                   Clock::time_point now);

// An OK answer: a claim's, or a draw's.
void tally_ok(Worker& w, Clock::time_point now);

// A new voucher for `member` (a claim's, or a winning draw's).
void tally_issued(Worker& w, const std::string& member, const v1::Voucher& v,
                  Clock::time_point now);

// An OK claim answer: a new voucher, or the member's voucher again.
void tally_claimed(Worker& w, const std::string& member, const v1::ClaimResponse& response,
                   Clock::time_point now);

}  // namespace voucherd::load::detail
