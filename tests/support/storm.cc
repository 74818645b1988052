#include "tests/support/storm.h"

#include <grpcpp/support/status.h>

#include <sstream>

#include "bench/load/load.h"

namespace voucherd::load {

StormReport run_storm(const StormOptions& o) {
  LoadOptions lo;
  lo.target = o.target;
  lo.campaign_id = o.campaign_id;
  lo.members = o.members;
  lo.member_first = o.member_first;
  lo.member_prefix = o.member_prefix;
  lo.repeat_share = o.repeat_share;
  lo.seed = o.seed;
  lo.concurrency = o.concurrency;
  lo.threads = o.threads;
  lo.duration_s = o.max_seconds;
  lo.progress = o.progress;
  lo.max_retries = o.max_retries;
  lo.retry_delay = o.retry_delay;
  lo.skip_stats = true;  // the tests ask the servers themselves
  LoadReport load = run_load(lo);

  StormReport r;
  if (load.phases.empty()) {  // the run could not start
    r.errors_by_code[static_cast<int>(grpc::StatusCode::UNKNOWN)] = 1;
    return r;
  }
  const PhaseReport& p = load.phases.front();
  r.presses = p.answers;
  r.issued = p.issued;
  r.already_claimed = p.already_claimed;
  r.sold_out = p.sold_out;
  for (const auto& [code, n] : p.codes) {
    if (code != 0) r.errors_by_code[code] = n;
  }
  // SOLD_OUT is an expected answer here, not an error.
  const auto failed_precondition = static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION);
  if (auto it = r.errors_by_code.find(failed_precondition); it != r.errors_by_code.end()) {
    it->second -= p.sold_out;
    if (it->second == 0) r.errors_by_code.erase(it);
  }
  r.retries = p.retries;
  r.members_with_two_codes = load.check.members_with_two_codes;
  r.codes_with_two_members = load.check.codes_with_two_members;
  r.distinct_codes = load.check.distinct_codes;
  r.timed_out = p.timed_out;
  r.elapsed_s = p.elapsed_s;
  r.sellout_s = p.sellout_s;
  r.p50_ms = static_cast<double>(p.latency.value_at_quantile(0.50)) / 1e6;
  r.p90_ms = static_cast<double>(p.latency.value_at_quantile(0.90)) / 1e6;
  r.p99_ms = static_cast<double>(p.latency.value_at_quantile(0.99)) / 1e6;
  r.max_ms = static_cast<double>(p.latency.max_ns()) / 1e6;
  r.code_by_member = std::move(load.code_by_member);
  return r;
}

std::string format_report(const StormReport& r) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << "presses answered   " << r.presses << " in " << r.elapsed_s << " s\n"
      << "vouchers issued    " << r.issued << "\n"
      << "already claimed    " << r.already_claimed << "\n"
      << "sold out           " << r.sold_out << "\n"
      << "retried presses    " << r.retries << "\n";
  for (const auto& [code, n] : r.errors_by_code) {
    out << "status " << status_code_name(code) << "    " << n << "\n";
  }
  out << "latency ms         p50 " << r.p50_ms << "  p90 " << r.p90_ms << "  p99 " << r.p99_ms
      << "  max " << r.max_ms << "\n"
      << "client check       distinct codes " << r.distinct_codes << ", members with two codes "
      << r.members_with_two_codes << ", codes with two members " << r.codes_with_two_members
      << (r.consistent() ? "  -> OK" : "  -> FAILED") << "\n";
  if (r.timed_out) out << "stopped at the time limit before every press was sent\n";
  return out.str();
}

}  // namespace voucherd::load
