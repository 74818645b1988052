// storm.h — a crowd of members pressing "claim" at once, over gRPC.
//
// Drives VoucherService.Claim with `concurrency` calls in flight: every
// distinct member presses once, and a share of them press again (the
// impatient ones). Records every answer and checks on the client side that no
// member got two different codes and no code went to two members. Bounded by
// press count and by wall time.
//
// A small face of voucher-load's engine (bench/load/load.h) for the
// end-to-end tests: the same crowd, loops and checks, with the answers the
// tests look at.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace voucherd::load {

struct StormOptions {
  std::string target;  // host:port, loopback in tests
  std::string campaign_id;
  std::int64_t members = 100'000;
  std::int64_t member_first = 0;  // members are member_first .. member_first + members - 1
  double repeat_share = 0.5;      // extra presses, as a share of members
  int concurrency = 64;           // calls in flight
  int threads = 1;                // client threads (one connection each)
  double max_seconds = 120;       // stop sending after this long
  std::uint64_t seed = 1;
  std::string member_prefix = "member-";
  bool progress = false;  // a line per second on stderr
  // Presses answered RESOURCE_EXHAUSTED or UNAVAILABLE (both say "retry") are
  // sent again after retry_delay, up to this many times, as an app would.
  int max_retries = 0;
  std::chrono::milliseconds retry_delay{5};
};

struct StormReport {
  std::int64_t presses = 0;                    // calls answered
  std::int64_t issued = 0;                     // OK with a new voucher
  std::int64_t already_claimed = 0;            // OK, already_claimed = true
  std::int64_t sold_out = 0;                   // FAILED_PRECONDITION SOLD_OUT
  std::map<int, std::int64_t> errors_by_code;  // other non-OK statuses (after retries)
  std::int64_t retries = 0;                    // presses sent again
  std::int64_t members_with_two_codes = 0;
  std::int64_t codes_with_two_members = 0;
  std::int64_t distinct_codes = 0;
  bool timed_out = false;
  double elapsed_s = 0;
  double sellout_s = -1;  // first press to the last new voucher, when sold out
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  std::unordered_map<std::string, std::string> code_by_member;

  [[nodiscard]] bool consistent() const {
    return members_with_two_codes == 0 && codes_with_two_members == 0;
  }
};

[[nodiscard]] StormReport run_storm(const StormOptions& options);

// Human-readable report.
[[nodiscard]] std::string format_report(const StormReport& r);

}  // namespace voucherd::load
