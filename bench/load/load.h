// load.h — voucher-load's engine: a crowd of members driving voucherd over
// gRPC, and what it saw.
//
// A run sends `count` pieces of work (presses, or redemptions) from `threads`
// client threads, each with its own completion queue and its own connection:
//   closed loop  `concurrency` calls in flight, a new one when one returns;
//   open loop    `rate` calls per second at fixed intended start times. A
//                call's latency is measured from its intended start, so a
//                client or server that falls behind shows up as latency
//                instead of silently lowering the rate (no coordinated
//                omission).
// It stops by itself: after `count` pieces or after `duration_s`, whichever
// comes first, then waits for the calls in flight (each has a deadline).
//
// The crowd: `members` distinct members press once each, and a share
// `repeat_share` of them press again (random members, shuffled in). Presses
// answered RESOURCE_EXHAUSTED or UNAVAILABLE are sent again after
// `retry_delay`, up to `max_retries` times, as an app would; their latency
// runs from the first press to the last answer.
//
// Every claim answer is checked on the client side: no member may hold two
// different codes, no code may belong to two members. In apply mode each
// press is an application (a member's repeat applies again, half the time
// with the same request id and preferences, else with new ones); once the
// applications are sent the run waits for the allocation to be done, reads
// every applicant's outcome with GetApplication (each found, none PENDING,
// per SKU at most its stock, the same checks of codes), and redeems every
// voucher won. In draw mode each
// press is a new draw (its request id is its place in the run, so a retry
// is the same draw), the crowd's repeats are members drawing again, and a
// win counts as an issued voucher: the same check holds for a lottery with
// one prize per member (the default).
//
// Usage:
//   LoadOptions o; o.target = "127.0.0.1:50051"; o.campaign_id = "c";
//   LoadReport r = run_load(o);         // blocks until the run is over
//   std::cout << format_text(r);
//
// Thread-safety: run_load() may be called from several threads at once
// (each run has its own channels and threads).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/load/histogram.h"
#include "client/credentials.h"

namespace voucherd::load {

// Apply mode waits for the allocation: at most this long before it is due.
inline constexpr std::chrono::seconds kApplyLeadMax{3600};

enum class Mode : std::uint8_t {
  kClaim,   // VoucherService.Claim, or ClaimBatch with batch > 0
  kRedeem,  // claims first (or codes from a file), then Redeem of each code
  kMixed,   // claims, with each issued voucher redeemed soon after
  kDraw,    // VoucherService.Draw of a LOTTERY campaign: each press is one draw
  kApply,   // VoucherService.Apply to an APPLY_THEN_DRAW campaign; once it is
            // allocated, GetApplication of every applicant, then Redeem of
            // each voucher won
};

using TlsOptions = ClientTls;  // client/credentials.h

struct LoadOptions {
  std::string target;  // host:port
  std::string campaign_id;
  Mode mode = Mode::kClaim;
  std::string app_token;   // bearer token for claims ("" sends none)
  std::string site_token;  // bearer token for redemptions
  TlsOptions tls;

  // The crowd.
  std::int64_t members = 100'000;
  std::int64_t member_first = 0;  // members member_first .. member_first + members - 1
  std::string member_prefix = "member-";
  double repeat_share = 0.3;  // extra presses, as a share of members
  std::uint64_t seed = 1;
  // Work to send: -1 means the whole crowd (members * (1 + repeat_share));
  // beyond the crowd, presses go round it again.
  std::int64_t count = -1;
  double duration_s = 120;  // stop sending after this long

  // How hard.
  int threads = 1;             // client threads, one completion queue and connection each
  int concurrency = 64;        // closed loop: calls in flight (over all threads)
  double rate = 0;             // > 0: open loop at this many calls per second
  int max_in_flight = 10'000;  // open loop: a cap, beyond it sends wait (and count as late)
  int batch = 0;               // > 0: ClaimBatch with this many claims per call
  int max_retries = 0;
  std::chrono::milliseconds retry_delay{5};
  std::chrono::milliseconds call_timeout{30'000};

  // Apply: each application names this many SKUs of the campaign (read
  // with GetCampaign), drawn at random per member; 0 names none (any SKU).
  int preferences = 3;
  // Apply: how long to wait, after allocation_at, for the allocation to be
  // done (GetCampaignStats). The campaign must be allocated within
  // kApplyLeadMax of the run's start.
  double allocation_wait_s = 600;

  // Redeem: codes to redeem ("code site_id" per line); empty: claim first.
  std::string codes_file;
  double mixed_redeem_share = 0.3;  // mixed: share of calls that redeem

  // Vouchers the campaign holds in all, for the check issued <= stock; 0:
  // ask AdminService.GetCampaignStats (with admin_token) after the run.
  std::int64_t expect_stock = 0;
  std::string admin_token;
  bool skip_stats = false;  // no GetCampaignStats at all (benchmarks)

  bool progress = false;  // a line per second on stderr
};

// What one second of the run saw (by the time answers arrived).
struct SecondStats {
  std::int64_t calls = 0;
  std::int64_t ok = 0;  // claims (or redemptions) answered OK
  std::int64_t errors = 0;
  std::uint64_t p50_ns = 0, p99_ns = 0, max_ns = 0;
};

// One phase of a run (a redeem run has two: the claims, then the redemptions).
struct PhaseReport {
  std::string name;  // "claim", "claim-batch", "redeem", "mixed"
  double elapsed_s = 0;
  std::int64_t calls = 0;             // RPCs answered
  std::int64_t answers = 0;           // claims / redemptions answered (> calls with batches)
  std::int64_t retries = 0;           // pieces of work sent again
  std::int64_t late_sends = 0;        // open loop: sends that waited for the in-flight cap
  bool timed_out = false;             // stopped by duration with work left
  LatencyHistogram latency;           // per RPC
  std::map<int, std::int64_t> codes;  // answers by gRPC status code
  std::map<std::string, std::int64_t> reasons;  // refusals by ErrorInfo reason
  std::vector<SecondStats> timeline;

  // Claims.
  std::int64_t issued = 0;           // OK with a new voucher
  std::int64_t already_claimed = 0;  // OK, already_claimed
  std::int64_t sold_out = 0;
  double sellout_s = -1;  // first press to the last new voucher, once sold out was seen

  // Redemptions.
  std::int64_t redeemed = 0;          // OK, first redemption
  std::int64_t already_redeemed = 0;  // OK, a retry of the same request

  [[nodiscard]] std::int64_t status_ok() const {
    const auto it = codes.find(0);
    return it == codes.end() ? 0 : it->second;
  }
  [[nodiscard]] double throughput() const {
    return elapsed_s > 0 ? static_cast<double>(answers) / elapsed_s : 0;
  }
};

// An apply run's view of the allocation.
struct ApplyReport {
  std::int64_t applicants = 0;            // distinct members whose Apply was answered OK
  std::int64_t refused = 0;               // Apply answers other than OK (CLOSED, ...)
  std::int64_t server_applications = -1;  // GetCampaignStats.applications once done
  bool allocation_done = false;           // DONE within allocation_wait_s
  double waited_s = 0;                    // from the last application answered to DONE seen
  double allocated_after_s = -1;          // allocated_at - allocation_at (the store's clock)
  std::int64_t selected = 0, not_selected = 0;
  std::int64_t missing = 0;  // applicants GetApplication did not find
  std::int64_t pending = 0;  // applicants still PENDING after DONE
  std::map<std::string, std::int64_t> won_per_sku;
  std::int64_t skus_over_stock = 0;  // SKUs more applicants won than their stock
  // --preferences 0 (everyone takes any SKU): selected == min(stock, applicants).
  bool all_stock_allocated = true;
};

struct CheckReport {
  std::int64_t distinct_codes = 0;
  std::int64_t members_with_two_codes = 0;
  std::int64_t codes_with_two_members = 0;
  std::int64_t codes_redeemed_twice = 0;  // two requests both got a first redemption
  std::int64_t stock = -1;                // -1: unknown
  std::int64_t server_issued = -1;        // from GetCampaignStats, -1: not asked
  std::string stats_error;                // why GetCampaignStats failed
  bool issued_within_stock = true;
  bool server_agrees = true;         // server issued == client-seen issued (when no other client)
  std::optional<ApplyReport> apply;  // apply mode

  [[nodiscard]] bool ok() const {
    const bool allocated =
        !apply || (apply->allocation_done && apply->applicants > 0 && apply->refused == 0 &&
                   apply->missing == 0 && apply->pending == 0 && apply->skus_over_stock == 0 &&
                   apply->all_stock_allocated);
    return members_with_two_codes == 0 && codes_with_two_members == 0 &&
           codes_redeemed_twice == 0 && issued_within_stock && allocated;
  }
};

struct LoadReport {
  LoadOptions options;
  std::vector<PhaseReport> phases;
  CheckReport check;
  // Every member's code, as the client saw it (claims of every phase).
  std::unordered_map<std::string, std::string> code_by_member;
  // Site of every issued code (for redemptions).
  std::unordered_map<std::string, std::string> site_by_code;
  std::string error;  // the run could not start (bad TLS file, ...)
};

// Runs the load; blocks until done.
[[nodiscard]] LoadReport run_load(const LoadOptions& options);

// ghz/wrk-style text report.
[[nodiscard]] std::string format_text(const LoadReport& report);
// The report as JSON (for machines and tests).
[[nodiscard]] std::string format_json(const LoadReport& report);
// Throughput and latency over time as a self-contained SVG.
[[nodiscard]] std::string format_svg(const LoadReport& report);

const char* status_code_name(int code);

}  // namespace voucherd::load
