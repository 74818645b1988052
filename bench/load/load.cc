// load.cc — voucher-load's run: its phases (threads of Workers over one
// workload, the progress line, the phase's report), the client-side checks
// of the answers and the stock, and run_load(). Each mode's calls are in
// workloads.cc, the client threads' machinery in worker.cc.
#include "bench/load/load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "bench/load/worker.h"
#include "bench/load/workloads.h"
#include "proto/grpc_code_names.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::load {
namespace {

using detail::Clock;
using detail::kStatusCodes;
using detail::SecondTally;
using detail::Tally;
using detail::Worker;
using detail::Workload;
using detail::WorkSource;
namespace v1 = voucher::v1;

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

// An AdminService call with the run's deadline and admin token.
template <class Request, class Response, class Method>
grpc::Status admin_call(const LoadOptions& o, v1::AdminService::Stub& admin, Method method,
                        const Request& request, Response* response) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + o.call_timeout);
  if (!o.admin_token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.admin_token);
  return (admin.*method)(&ctx, request, response);
}

std::string refusal(const char* rpc, const grpc::Status& s) {
  return std::string(rpc) + ": " + status_code_name(s.error_code()) + ": " + s.error_message();
}

std::int64_t count_of(const PhaseReport& p, const std::string& reason) {
  auto it = p.reasons.find(reason);
  return it == p.reasons.end() ? 0 : it->second;
}

// Apply mode: the crowd's applications, the wait for the allocation, and
// every applicant's outcome (GetApplication), checked. False, with r.error,
// when the campaign cannot be read or is not an apply campaign.
bool run_apply(const LoadOptions& o, const std::shared_ptr<grpc::ChannelCredentials>& creds,
               LoadReport& r, std::vector<std::unique_ptr<Worker>>* workers) {
  auto admin = v1::AdminService::NewStub(grpc::CreateChannel(o.target, creds));
  v1::GetCampaignRequest get;
  get.set_campaign_id(o.campaign_id);
  v1::Campaign campaign;
  if (auto s = admin_call(o, *admin, &v1::AdminService::Stub::GetCampaign, get, &campaign);
      !s.ok()) {
    r.error = refusal("GetCampaign", s);
    return false;
  }
  if (campaign.mode() != v1::CAMPAIGN_MODE_APPLY_THEN_DRAW) {
    r.error = "campaign \"" + o.campaign_id + "\" is " + v1::CampaignMode_Name(campaign.mode()) +
              ", and --mode apply needs an APPLY_THEN_DRAW campaign";
    return false;
  }
  const auto at_us = [](const google::protobuf::Timestamp& t) {
    return t.seconds() * 1'000'000 + t.nanos() / 1'000;
  };
  // The run waits for the allocation: a campaign allocated far off (the
  // sample's week of applications, rehearsed) is not one it can wait for.
  const auto now_us = [] {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const double allocated_in_s =
      static_cast<double>(at_us(campaign.allocation_at()) - now_us()) / 1e6;
  if (allocated_in_s > kApplyLeadMax.count()) {
    r.error = "campaign \"" + o.campaign_id + "\" is allocated in " +
              std::to_string(static_cast<std::int64_t>(allocated_in_s)) +
              " s, and --mode apply waits for the allocation at most " +
              std::to_string(kApplyLeadMax.count()) +
              " s ahead: give it a window that closes sooner (bench/compare_apply.sh does)";
    return false;
  }
  std::vector<std::string> sku_ids;
  std::map<std::string, std::int64_t> stock;
  std::int64_t stock_total = 0;
  for (const v1::Sku& s : campaign.skus()) {
    sku_ids.push_back(s.id());
    stock[s.id()] = s.stock();
    stock_total += s.stock();
  }
  ApplyReport a;
  detail::CrowdWorkload crowd = detail::make_apply_workload(o, std::move(sku_ids));
  r.phases.push_back(run_phase(o, creds, *crowd.workload, o.count >= 0 ? o.count : crowd.crowd_size,
                               "apply", workers));
  std::vector<std::string> members;
  for (const auto& w : *workers) {
    members.insert(members.end(), w->tally.applicants.begin(), w->tally.applicants.end());
  }
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  a.applicants = static_cast<std::int64_t>(members.size());
  a.refused = r.phases.back().answers - r.phases.back().status_ok();

  // The allocation happens at allocation_at, by whichever replica: wait
  // until the store says it is done, at most allocation_wait_s after it was
  // due (and the last call's deadline).
  const Clock::time_point waiting = Clock::now();
  const double due_in_s =
      std::max(0.0, static_cast<double>(at_us(campaign.allocation_at()) - now_us()) / 1e6);
  const auto give_up = waiting + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(due_in_s + o.allocation_wait_s));
  v1::GetCampaignStatsRequest ask;
  ask.set_campaign_id(o.campaign_id);
  v1::CampaignStats stats;
  for (;;) {
    const grpc::Status s =
        admin_call(o, *admin, &v1::AdminService::Stub::GetCampaignStats, ask, &stats);
    if (s.ok() && stats.allocation() == v1::ALLOCATION_STATE_DONE) {
      a.allocation_done = true;
      break;
    }
    // Only a store or a replica that is not there yet is worth waiting for.
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
        s.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
      r.check.stats_error = refusal("GetCampaignStats", s);
      break;
    }
    if (Clock::now() >= give_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  a.waited_s = std::chrono::duration<double>(Clock::now() - waiting).count();
  if (a.allocation_done) {
    a.server_applications = stats.applications();
    a.allocated_after_s =
        static_cast<double>(at_us(stats.allocated_at()) - at_us(campaign.allocation_at())) / 1e6;
  }
  if (a.allocation_done && !members.empty()) {
    std::unique_ptr<Workload> results = detail::make_results_workload(o, members);
    r.phases.push_back(run_phase(o, creds, *results, a.applicants, "results", workers));
    const PhaseReport& p = r.phases.back();
    a.selected = count_of(p, "APPLICATION_STATE_SELECTED");
    a.not_selected = count_of(p, "APPLICATION_STATE_NOT_SELECTED");
    a.pending = count_of(p, "APPLICATION_STATE_PENDING");
    a.missing = a.applicants - a.selected - a.not_selected - a.pending;
    for (const auto& w : *workers) {
      for (const auto& [sku, n] : w->tally.won_per_sku) a.won_per_sku[sku] += n;
    }
    for (const auto& [sku, n] : a.won_per_sku) {
      auto it = stock.find(sku);
      if (it == stock.end() || n > it->second) ++a.skus_over_stock;
    }
    if (o.preferences == 0) {
      a.all_stock_allocated = a.selected == std::min(stock_total, a.applicants);
    }
  }
  r.check.apply = std::move(a);
  return true;
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
  // Every mode presses first, but a redeem run given its codes; an apply
  // run applies, then reads every outcome once allocated.
  if (o.mode == Mode::kApply) {
    if (!run_apply(o, creds, r, &workers)) return r;
  } else if (o.mode == Mode::kMixed || o.mode == Mode::kClaim || o.mode == Mode::kDraw ||
             o.codes_file.empty()) {
    detail::CrowdWorkload crowd = detail::make_crowd_workload(o);
    r.phases.push_back(run_phase(o, creds, *crowd.workload, crowd_total(crowd.crowd_size),
                                 crowd.phase_name, &workers));
  }
  check_answers(workers, r);

  // A redeem run redeems what it claimed (or its codes), an apply run every
  // voucher won.
  if (o.mode == Mode::kRedeem || o.mode == Mode::kApply) {
    std::vector<std::pair<std::string, std::string>> codes;
    if (o.mode == Mode::kRedeem && !o.codes_file.empty()) {
      codes = read_codes(o.codes_file, &r.error);
      if (!r.error.empty()) return r;
    } else {
      codes.assign(r.site_by_code.begin(), r.site_by_code.end());
      std::sort(codes.begin(), codes.end());
    }
    if (!codes.empty()) {
      // An apply run redeems each pack won once; --count and --repeat-share
      // were its applications'.
      const auto repeats =
          o.mode == Mode::kApply
              ? 0
              : static_cast<std::int64_t>(o.repeat_share * static_cast<double>(codes.size()));
      const std::int64_t total = o.count >= 0 && o.mode != Mode::kApply
                                     ? o.count
                                     : static_cast<std::int64_t>(codes.size()) + repeats;
      std::unique_ptr<Workload> redeem = detail::make_redeem_workload(std::move(codes));
      r.phases.push_back(run_phase(o, creds, *redeem, total, "redeem", &workers));
      r.code_by_member.clear();
      r.site_by_code.clear();
      std::optional<ApplyReport> apply = std::move(r.check.apply);
      r.check = CheckReport{};
      r.check.apply = std::move(apply);
      check_answers(workers, r);
    }
  }
  check_stock(o, creds, r);
  return r;
}

}  // namespace voucherd::load
