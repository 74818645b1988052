// timed_crowd.h — test support: a crowd of members pressing Claim once each,
// with every answer kept and timed, and /readyz watched on its own thread;
// for tests that break something at a known moment and then ask when (and
// what) each member was answered.
//
// TimedCrowd keeps up to `in_flight` calls going on one channel from one
// thread (gRPC's asynchronous API), paced to at most `presses_per_second`;
// each member presses once and takes the first answer (no retry). It stops
// at stop(), when its members run out, or after `max_seconds`.
//
// ReadyzWatch asks GET /readyz every 20 ms and keeps every answer with the
// moments it was asked and answered.
//
// Usage:
//   TimedCrowd crowd({.target = p.target(), .campaign_id = "links"});
//   ... break something at t ...
//   crowd.stop();
//   for (const TimedAnswer& a : crowd.answers()) ... a.code, a.answered_at ...
//
// Thread-safety: answered() and ReadyzWatch's readers may be called from any
// thread; answers() only after stop().
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace voucherd::testing {

using SteadyTime = std::chrono::steady_clock::time_point;

struct TimedAnswer {
  std::string campaign_id;
  std::string member_id;
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string reason;        // ErrorInfo.reason, when not OK
  std::string voucher_code;  // when OK
  bool already_claimed = false;
  SteadyTime sent_at;
  SteadyTime answered_at;
};

struct TimedCrowdOptions {
  std::string target{};
  std::string campaign_id{};
  // Instead: member i presses campaign_ids[i % size].
  std::vector<std::string> campaign_ids{};
  std::string member_prefix = "member-";  // members are prefix0, prefix1, ...
  std::vector<std::string> members{};     // instead: exactly these, in order
  // With `members`: the campaign each of them presses (else as above).
  std::vector<std::string> campaigns_of_members{};
  std::int64_t members_max = 1'000'000;  // with the prefix
  int in_flight = 64;
  double presses_per_second = 0;  // 0: as fast as answers come back
  std::chrono::milliseconds deadline{10'000};
  double max_seconds = 120;
};

class TimedCrowd {
 public:
  explicit TimedCrowd(TimedCrowdOptions options);  // starts pressing at once
  ~TimedCrowd();
  TimedCrowd(const TimedCrowd&) = delete;
  TimedCrowd& operator=(const TimedCrowd&) = delete;

  // No new press; waits for the answers in flight (each bounded by its
  // deadline).
  void stop();
  // Waits until every member pressed and was answered (or max_seconds).
  void finish();
  [[nodiscard]] std::int64_t answered() const { return answered_.load(std::memory_order_acquire); }
  [[nodiscard]] std::int64_t answered_ok() const {
    return answered_ok_.load(std::memory_order_acquire);
  }
  // REQUIRES: stop() or finish() returned.
  [[nodiscard]] const std::vector<TimedAnswer>& answers() const { return answers_; }

 private:
  void run();

  TimedCrowdOptions options_;
  std::vector<TimedAnswer> answers_;  // the crowd's thread's until it ends
  // Release (crowd thread) / acquire (readers): progress counters only.
  std::atomic<std::int64_t> answered_{0};
  std::atomic<std::int64_t> answered_ok_{0};
  std::atomic<bool> stop_{false};  // relaxed: only ends the pressing
  std::thread thread_;
};

class ReadyzWatch {
 public:
  struct Sample {
    SteadyTime asked_at;
    SteadyTime answered_at;
    int status = 0;  // 200, 503, or 0 (no answer)
  };
  explicit ReadyzWatch(int ops_port);
  ~ReadyzWatch();
  ReadyzWatch(const ReadyzWatch&) = delete;
  ReadyzWatch& operator=(const ReadyzWatch&) = delete;

  [[nodiscard]] std::vector<Sample> samples() const;
  // The first answer given at or after `from` with `status`.
  [[nodiscard]] std::optional<Sample> first(SteadyTime from, int status) const;
  // The last answer given before `until`.
  [[nodiscard]] std::optional<Sample> last_before(SteadyTime until) const;
  // How many answers given in [from, until) had `status`.
  [[nodiscard]] int count(SteadyTime from, SteadyTime until, int status) const;
  // The longest wait for an answer among those asked in [from, until).
  [[nodiscard]] std::chrono::milliseconds slowest(SteadyTime from, SteadyTime until) const;

 private:
  int port_;
  mutable std::mutex mu_;  // guards samples_
  std::vector<Sample> samples_;
  std::atomic<bool> stop_{false};  // relaxed: only ends the loop
  std::thread thread_;
};

// Milliseconds from `from` to `to` (negative when `to` is earlier).
[[nodiscard]] long long ms_between(SteadyTime from, SteadyTime to);

}  // namespace voucherd::testing
