// redis_link_faults_e2e_test — proves, with a real redis-server (AOF,
// appendfsync always), real voucherd processes (--store=redis) that reach it
// through the link proxy of tests/support/link_proxy.h, and members pressing
// Claim once each over real gRPC (no retry), that for each fault of the
// link — 50 ms of latency each way, a blackhole, a reset in the middle of a
// claim batch, a half-open connection (either direction shut), a slow
// reader (holding everything, or trickling):
//   - no press is answered OK unless its voucher is in Redis: read straight
//     from Redis afterwards, every acknowledged voucher is there with its
//     member and code, no code or member twice, never more issued than the
//     stock, and after a clean stop every unit is either issued or back in
//     the pool (none stranded in a lease);
//   - voucherd notices the fault within its Redis I/O timeout plus a margin
//     (the first UNAVAILABLE, and /readyz turning 503, timed from the
//     moment the fault began; a correctness bound, kept wide);
//   - /readyz follows: not ready while the link is cut, with no traffic as
//     well as under a crowd, and ready again soon after it heals; and it
//     answers within a second throughout;
//   - once healed, with nobody calling an admin RPC, a new member's first
//     press is served, and a member who was told UNAVAILABLE is served at
//     their next press — with the very voucher their unanswered write left
//     in Redis, when it landed;
//   - members of a replica whose link is fine are served throughout;
//   - with 50 ms each way every press is answered (slower), and the counts
//     are exact: the stock issued, everyone else SOLD_OUT.
// Each test prints what it measured (docs/reliability.md quotes them).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_map>

#include "server/redis/connection.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/scripts.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/grpc_generic.h"
#include "tests/support/http_get.h"
#include "tests/support/link_proxy.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/timed_crowd.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kCampaign[] = "links";
constexpr int kSkus = 8;

// voucherd's Redis I/O timeout: it bounds every connect, and every read and
// write on a connection. It is not a flag; the store's own default is read
// here so that the bound follows it.
const milliseconds kIoTimeout = redis::ClaimLogOptions{}.io_timeout;
// Added to the timeout before a detection counts as late: a correctness
// bound (the fault is noticed by the timeout, not by luck or never), kept
// wide so that a loaded two-core machine does not make it flaky.
constexpr milliseconds kDetectMargin{1500};
// From the heal to ready again: a reconnection waits at most 500 ms of
// backoff, then connects and reads the registry.
constexpr milliseconds kReadyAgainMax{5000};
// /readyz answers within this, whatever the link does: a load balancer's
// check gives up on a slow answer (and /healthz is served the same way).
constexpr milliseconds kReadyzAnswerMax{1000};
// An answer decided just before a fault may reach its member this much
// later; after that, nothing can be confirmed through a cut link.
constexpr milliseconds kInFlightGrace{500};

bool ready(const VoucherdProcess& p) { return http_get(p.ops_port(), "/readyz").status == 200; }

// A real redis-server, the proxy in front of it, and voucherd replicas:
// `behind` reaches Redis through the proxy, `direct` (when asked for)
// straight. FIRST_COME campaigns of `stock` packs each over kSkus SKUs:
// kCampaign alone, or links-0, links-1, ...
struct Rig {
  TempDir dir;
  RedisServer redis{dir};
  LinkProxy proxy;
  std::int64_t stock;
  std::vector<std::string> campaign_ids;
  std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  std::string campaigns;
  std::unique_ptr<VoucherdProcess> behind;
  std::unique_ptr<VoucherdProcess> direct;

  Rig(std::int64_t stock_units, bool with_direct, LinkProxyOptions proxy_options = {},
      int campaign_count = 1)
      : proxy(redis.port(), proxy_options), stock(stock_units) {
    nlohmann::json all = {{"campaigns", nlohmann::json::array()}};
    for (int i = 0; i < campaign_count; ++i) {
      campaign_ids.push_back(campaign_count == 1
                                 ? std::string(kCampaign)
                                 : std::string(kCampaign) + "-" + std::to_string(i));
      const auto one = nlohmann::json::parse(
          first_come_campaign(campaign_ids.back(), stock_units, kSkus).text());
      all["campaigns"].push_back(one["campaigns"][0]);
    }
    campaigns = dir.write("links.json", all.dump()).string();
    behind = start(proxy.url(), "behind");
    if (with_direct) direct = start(redis.url(), "direct");
  }

  std::unique_ptr<VoucherdProcess> start(const std::string& redis_url, const std::string& name) {
    auto p = std::make_unique<VoucherdProcess>(
        dir, std::vector<std::string>{"--store", "redis", "--redis", redis_url, "--secret-file",
                                      secret, "--grpc-threads", "1", "--campaigns", campaigns,
                                      "--replica-id", name});
    EXPECT_GT(p->port(), 0) << p->stderr_text();
    return p;
  }

  // Stops every replica with SIGTERM (the link healed): each exits 0 and
  // hands its unused units back.
  void stop_all() {
    for (auto* p : {behind.get(), direct.get()}) {
      if (p != nullptr) {
        EXPECT_EQ(p->stop(SIGTERM), std::optional<int>(0)) << p->stderr_text();
      }
    }
  }
};

// What Redis's allowance keys hold for these members (limit 1: the code),
// each in the campaign they pressed.
std::unordered_map<std::string, std::string> held_in_redis(
    const RedisServer& redis, const std::vector<std::pair<std::string, std::string>>& presses) {
  std::unordered_map<std::string, std::string> out;
  if (presses.empty()) return out;
  auto conn = redis.connect(milliseconds(5000));
  EXPECT_TRUE(conn.has_value());
  if (!conn) return out;
  std::vector<redis::Command> gets;
  for (const auto& [campaign, member] : presses) {
    gets.push_back({"GET", redis::CampaignKeys(campaign).member(member)});
  }
  auto replies = (*conn)->pipeline(gets);
  EXPECT_TRUE(replies.has_value());
  if (!replies) return out;
  for (std::size_t i = 0; i < presses.size(); ++i) {
    if ((*replies)[i].type == redis::Reply::Type::kString) {
      out[presses[i].second] = (*replies)[i].str;
    }
  }
  return out;
}

// Every press answered OK is in Redis, read straight from it: the voucher's
// record names the member, the member's allowance holds that code; no code
// went to two members, no member got two codes; never more issued than the
// stock; and Redis holds exactly as many records as its issued counters
// say. Per campaign; returns how many vouchers Redis says were issued in
// all.
std::int64_t expect_every_ok_in_redis(const Rig& rig,
                                      const std::vector<const std::vector<TimedAnswer>*>& crowds) {
  auto conn = rig.redis.connect(milliseconds(5000));
  EXPECT_TRUE(conn.has_value());
  if (!conn) return -1;
  std::int64_t issued_all = 0;
  for (const std::string& campaign : rig.campaign_ids) {
    SCOPED_TRACE(campaign);
    const redis::CampaignKeys keys(campaign);
    Acknowledged ack;
    for (const auto* answers : crowds) {
      for (const TimedAnswer& a : *answers) {
        if (a.code == grpc::StatusCode::OK && a.campaign_id == campaign) {
          ack.add(a.member_id, a.voucher_code);
        }
      }
    }
    EXPECT_EQ(ack.members_with_two, 0);
    EXPECT_EQ(ack.codes_with_two, 0);
    std::vector<redis::Command> reads;
    std::vector<std::pair<std::string, std::string>> expected;  // code, member
    for (const auto& [code, member] : ack.member_by_code) {
      reads.push_back({"GET", keys.voucher(code)});
      reads.push_back({"GET", keys.member(member)});
      expected.emplace_back(code, member);
    }
    auto replies = (*conn)->pipeline(reads);
    EXPECT_TRUE(replies.has_value());
    if (!replies) return -1;
    int lost = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const auto& [code, member] = expected[i];
      const VoucherPtr v = redis::decode_voucher(campaign, code, (*replies)[2 * i].str);
      const bool record = v && v->member_id() == member;
      const bool allowance = (*replies)[2 * i + 1].str == code;
      if (!record || !allowance) {
        ++lost;
        ADD_FAILURE() << "acknowledged voucher " << code << " of " << member
                      << " is not in Redis as told (record " << record << ", allowance "
                      << allowance << ")";
      }
    }
    EXPECT_EQ(lost, 0) << "acknowledged vouchers missing from Redis";
    const std::int64_t issued = redis_sum(rig.redis, keys.issued());
    EXPECT_LE(issued, rig.stock) << "oversold";
    EXPECT_GE(issued, static_cast<std::int64_t>(ack.member_by_code.size()));
    EXPECT_EQ(rig.redis.cli({"HGET", keys.issued(), "_members"}),
              issued == 0 ? "" : std::to_string(issued));
    // The records themselves, counted with SCAN (bounded).
    std::int64_t records = 0;
    std::string cursor = "0";
    for (int pass = 0; pass < 100'000; ++pass) {
      auto page =
          (*conn)->command({"SCAN", cursor, "MATCH", keys.voucher_prefix() + "*", "COUNT", "1000"});
      if (!page || page->elements.size() != 2) break;
      cursor = page->elements[0].str;
      records += static_cast<std::int64_t>(page->elements[1].elements.size());
      if (cursor == "0") break;
    }
    EXPECT_EQ(records, issued) << "voucher records in Redis vs its issued counters";
    issued_all += issued;
  }
  return issued_all;
}

// After every replica stopped cleanly: nothing leased, and every unit is
// issued or back in the pool.
void expect_stock_whole(const Rig& rig) {
  for (const std::string& campaign : rig.campaign_ids) {
    SCOPED_TRACE(campaign);
    const redis::CampaignKeys keys(campaign);
    EXPECT_EQ(rig.redis.cli({"HLEN", keys.leases()}), "0") << "units stranded in a lease";
    EXPECT_EQ(redis_sum(rig.redis, keys.leased()), 0);
    EXPECT_EQ(redis_sum(rig.redis, keys.stock()) + redis_sum(rig.redis, keys.issued()), rig.stock)
        << "pool + issued is not the stock";
  }
}

std::map<grpc::StatusCode, int> codes_of(const std::vector<TimedAnswer>& answers) {
  std::map<grpc::StatusCode, int> out;
  for (const TimedAnswer& a : answers) ++out[a.code];
  return out;
}

std::string describe(const std::map<grpc::StatusCode, int>& codes) {
  std::string out;
  for (const auto& [code, n] : codes) {
    out += (out.empty() ? "" : ", ") + std::to_string(static_cast<int>(code)) + ": " +
           std::to_string(n);
  }
  return out;
}

// One fault, from the crowd's point of view.
struct FaultScenario {
  std::string name;
  // Breaks the link; returns when the fault began (for a reset armed to
  // fire later, when it fired).
  std::function<SteadyTime(LinkProxy&)> inject;
  milliseconds hold{5000};  // from the fault to the heal
  LinkProxyOptions proxy_options{};
  // Members keep arriving while the link is cut, as a crowd does: the
  // presses in flight are not what paces them.
  int in_flight = 1024;
  double presses_per_second = 250;
  bool with_direct = true;         // a second replica straight on Redis
  int campaigns = 1;               // the crowd presses them in turn
  bool expect_unavailable = true;  // the crowd behind hears UNAVAILABLE
  bool expect_not_ready = true;    // 503 within the bound, until healed
  bool nothing_confirmed = true;   // no OK can come through while it lasts
};

struct FaultReport {
  long long first_unavailable_ms = -1;  // from the fault
  long long not_ready_ms = -1;          // from the fault to the first 503
  long long ready_again_ms = -1;        // from the heal to the first 200
  long long readyz_slowest_ms = 0;      // the longest /readyz answer while it lasted
  long long press_slowest_ms = 0;       // the longest wait of a press sent while it lasted
  int ok = 0;
  int unavailable = 0;
  int landed_unanswered = 0;  // told UNAVAILABLE, and their write is in Redis
  std::int64_t issued = 0;
};

FaultReport run_fault(const FaultScenario& s) {
  SCOPED_TRACE(s.name);
  FaultReport report;
  Rig rig(20'000, s.with_direct, s.proxy_options, s.campaigns);
  if (rig.behind->port() == 0 || (s.with_direct && rig.direct->port() == 0)) return report;
  EXPECT_TRUE(wait_until([&] { return ready(*rig.behind); }, seconds(10)))
      << rig.behind->stderr_text();
  ReadyzWatch watch(rig.behind->ops_port());
  TimedCrowd behind_crowd({.target = rig.behind->target(),
                           .campaign_ids = rig.campaign_ids,
                           .member_prefix = "behind-",
                           .in_flight = s.in_flight,
                           .presses_per_second = s.presses_per_second});
  std::unique_ptr<TimedCrowd> direct_crowd;
  if (s.with_direct) {
    direct_crowd = std::make_unique<TimedCrowd>(TimedCrowdOptions{.target = rig.direct->target(),
                                                                  .campaign_ids = rig.campaign_ids,
                                                                  .member_prefix = "direct-",
                                                                  .in_flight = 16,
                                                                  .presses_per_second = 200});
  }
  EXPECT_TRUE(wait_until([&] { return behind_crowd.answered_ok() >= 100; }, seconds(15)))
      << "the crowd was not served before the fault";

  const SteadyTime fault_at = s.inject(rig.proxy);
  std::this_thread::sleep_until(fault_at + s.hold);
  const SteadyTime healed_at = Clock::now();
  rig.proxy.heal();
  const bool ready_again = wait_until([&] { return ready(*rig.behind); }, seconds(10));
  const SteadyTime ready_at = Clock::now();
  EXPECT_TRUE(ready_again) << rig.behind->stderr_text();
  // A member who never pressed before, pressing once as soon as the
  // replica says it is ready: served at the first answer.
  const Press fresh =
      press_once(rig.behind->target(), rig.campaign_ids.front(), "fresh-after-heal");
  EXPECT_TRUE(fresh.ok()) << fresh.status.error_code() << " " << fresh.reason() << " "
                          << fresh.status.error_message();
  EXPECT_FALSE(fresh.response.already_claimed());
  // The crowd carries on a while on the healed link.
  std::this_thread::sleep_for(seconds(1));
  behind_crowd.stop();
  if (direct_crowd) direct_crowd->stop();
  const std::vector<TimedAnswer>& answers = behind_crowd.answers();

  // What each member behind the link was answered, and when.
  const auto codes = codes_of(answers);
  for (const auto& [code, n] : codes) {
    EXPECT_TRUE(code == grpc::StatusCode::OK || code == grpc::StatusCode::UNAVAILABLE)
        << "a member behind the link was answered " << code << " (" << n
        << " times); all: " << describe(codes);
  }
  report.ok = codes.contains(grpc::StatusCode::OK) ? codes.at(grpc::StatusCode::OK) : 0;
  report.unavailable =
      codes.contains(grpc::StatusCode::UNAVAILABLE) ? codes.at(grpc::StatusCode::UNAVAILABLE) : 0;
  std::vector<std::pair<std::string, std::string>> told_unavailable;  // campaign, member
  int ok_while_cut = 0;
  int refused_after_ready = 0;
  for (const TimedAnswer& a : answers) {
    if (a.code != grpc::StatusCode::OK) told_unavailable.emplace_back(a.campaign_id, a.member_id);
    if (a.code == grpc::StatusCode::UNAVAILABLE && a.answered_at >= fault_at &&
        report.first_unavailable_ms < 0) {
      report.first_unavailable_ms = ms_between(fault_at, a.answered_at);
    }
    if (a.code == grpc::StatusCode::OK && a.answered_at >= fault_at + kInFlightGrace &&
        a.answered_at < healed_at) {
      ++ok_while_cut;
    }
    if (a.code != grpc::StatusCode::OK && a.sent_at >= ready_at) ++refused_after_ready;
    if (a.sent_at >= fault_at && a.sent_at < healed_at) {
      report.press_slowest_ms =
          std::max(report.press_slowest_ms, ms_between(a.sent_at, a.answered_at));
    }
  }
  if (s.expect_unavailable) {
    EXPECT_GE(report.first_unavailable_ms, 0) << "no member heard UNAVAILABLE";
  }
  if (report.first_unavailable_ms >= 0) {
    EXPECT_LE(report.first_unavailable_ms, (kIoTimeout + kDetectMargin).count())
        << "the first UNAVAILABLE came later than the I/O timeout and a margin";
  }
  // A press waits at most for the batch ahead of it and for its own, each
  // bounded by the timeout (and the tenth of it a blocking call may run
  // over), whatever the link does.
  EXPECT_LE(report.press_slowest_ms,
            (2 * (kIoTimeout + kIoTimeout / 10) + 2 * kDetectMargin).count())
      << "a press waited longer than two I/O timeouts and a margin";
  if (s.nothing_confirmed) {
    EXPECT_EQ(ok_while_cut, 0) << "OK answered through a cut link";
  }
  EXPECT_EQ(refused_after_ready, 0) << "members refused after the replica said it was ready";

  // Readiness followed.
  if (const auto first_503 = watch.first(fault_at, 503)) {
    report.not_ready_ms = ms_between(fault_at, first_503->answered_at);
  }
  if (const auto first_200 = watch.first(healed_at, 200)) {
    report.ready_again_ms = ms_between(healed_at, first_200->answered_at);
  }
  report.readyz_slowest_ms = watch.slowest(fault_at, healed_at).count();
  EXPECT_LE(report.readyz_slowest_ms, kReadyzAnswerMax.count())
      << "/readyz was held up while the link was cut";
  if (s.expect_not_ready) {
    EXPECT_GE(report.not_ready_ms, 0) << "/readyz never said 503";
    EXPECT_LE(report.not_ready_ms, (kIoTimeout + kDetectMargin).count());
    const auto last = watch.last_before(healed_at);
    EXPECT_TRUE(last && last->status == 503) << "ready again before the link healed";
  }
  EXPECT_GE(report.ready_again_ms, 0);
  EXPECT_LE(report.ready_again_ms, kReadyAgainMax.count());

  // The other replica's members were served throughout.
  if (direct_crowd) {
    const auto direct_codes = codes_of(direct_crowd->answers());
    EXPECT_EQ(direct_codes.size(), 1u) << describe(direct_codes);
    EXPECT_TRUE(direct_codes.contains(grpc::StatusCode::OK)) << describe(direct_codes);
  }

  // Members told UNAVAILABLE press again, once: each is served, and one
  // whose unanswered write landed gets that very voucher.
  const auto landed = held_in_redis(rig.redis, told_unavailable);
  report.landed_unanswered = static_cast<int>(landed.size());
  if (told_unavailable.empty()) told_unavailable.emplace_back(rig.campaign_ids.front(), "nobody");
  std::vector<std::string> again_members;
  std::vector<std::string> again_campaigns;
  for (const auto& [campaign, member] : told_unavailable) {
    again_campaigns.push_back(campaign);
    again_members.push_back(member);
  }
  TimedCrowd again({.target = rig.behind->target(),
                    .members = again_members,
                    .campaigns_of_members = again_campaigns,
                    .in_flight = 32});
  again.finish();
  int again_refused = 0;
  for (const TimedAnswer& a : again.answers()) {
    if (a.code != grpc::StatusCode::OK) {
      ++again_refused;
      continue;
    }
    const auto it = landed.find(a.member_id);
    if (it != landed.end()) {
      EXPECT_TRUE(a.already_claimed) << a.member_id;
      EXPECT_EQ(a.voucher_code, it->second) << a.member_id << ": not the voucher that landed";
    } else {
      EXPECT_FALSE(a.already_claimed) << a.member_id;
    }
  }
  EXPECT_EQ(again_refused, 0) << "members pressing again after the heal were refused";
  EXPECT_EQ(again.answers().size(), told_unavailable.size());

  // Redis itself: every OK told is there, nothing oversold.
  std::vector<TimedAnswer> fresh_answers(1);
  fresh_answers[0].campaign_id = rig.campaign_ids.front();
  fresh_answers[0].member_id = "fresh-after-heal";
  fresh_answers[0].code = fresh.status.error_code();
  fresh_answers[0].voucher_code = fresh.response.voucher().code();
  std::vector<const std::vector<TimedAnswer>*> all{&answers, &again.answers(), &fresh_answers};
  if (direct_crowd) all.push_back(&direct_crowd->answers());
  report.issued = expect_every_ok_in_redis(rig, all);
  rig.stop_all();
  expect_stock_whole(rig);

  std::cout << "link fault \"" << s.name << "\": first UNAVAILABLE after "
            << report.first_unavailable_ms << " ms, /readyz 503 after " << report.not_ready_ms
            << " ms (slowest /readyz answer " << report.readyz_slowest_ms << " ms, slowest press "
            << report.press_slowest_ms << " ms), ready again " << report.ready_again_ms
            << " ms after the heal; behind: " << report.ok << " OK, " << report.unavailable
            << " UNAVAILABLE (" << report.landed_unanswered
            << " of them written all the same, answered at the "
            << "next press); " << report.issued << " issued in Redis\n";
  return report;
}

SteadyTime now_after(const std::function<void()>& action) {
  const SteadyTime at = Clock::now();
  action();
  return at;
}

TEST(RedisLinkFaults, BlackholeIsNoticedWithinTheTimeoutAndHealsOnItsOwn) {
  run_fault({.name = "blackhole",
             .inject = [](LinkProxy& p) { return now_after([&] { p.blackhole(); }); }});
}

TEST(RedisLinkFaults, AResetInTheMiddleOfAClaimBatchLosesNothing) {
  // The cut falls 200 bytes into the next call of the claim script: a batch
  // of claims torn in the middle, then every connection reset.
  const std::string claim_sha = redis::claim_script().sha1;
  const FaultReport r =
      run_fault({.name = "reset mid-batch",
                 .inject =
                     [&](LinkProxy& p) {
                       p.reset_after_client_bytes(200, claim_sha);
                       EXPECT_TRUE(wait_until([&] { return p.reset_fired(); }, seconds(10)));
                       return p.reset_fired() ? p.reset_fired_at() : Clock::now();
                     },
                 .hold = milliseconds(1000),
                 .expect_not_ready = false,  // back at once: a reset is no outage
                 .nothing_confirmed = false});
  EXPECT_GE(r.unavailable, 1) << "the torn batch's claims were not answered UNAVAILABLE";
}

TEST(RedisLinkFaults, HalfOpenWithRepliesShutIsNoticedAtOnce) {
  run_fault(
      {.name = "half-open, Redis to voucherd shut",
       .inject =
           [](LinkProxy& p) { return now_after([&] { p.half_open(LinkDirection::kToClient); }); },
       .hold = milliseconds(3000)});
}

TEST(RedisLinkFaults, HalfOpenWithRequestsShutIsNoticedByTheTimeout) {
  run_fault({.name = "half-open, voucherd to Redis shut", .inject = [](LinkProxy& p) {
               return now_after([&] { p.half_open(LinkDirection::kToServer); });
             }});
}

TEST(RedisLinkFaults, AReaderThatStopsIsNoticedAndItsHeldWritesLandHarmlessly) {
  run_fault({.name = "slow reader, stopped", .inject = [](LinkProxy& p) {
               return now_after([&] { p.slow_reader(0, milliseconds(0)); });
             }});
}

TEST(RedisLinkFaults, ATricklingReaderDoesNotHoldABatchPastTheTimeout) {
  // 8 KiB every 250 ms, into a small receive buffer, from each connection:
  // every read and write of voucherd's makes some progress well within its
  // timeout, while a batch of hundreds of claims over eight campaigns (one
  // script call each, each answered as soon as it is all in) takes seconds
  // to go through.
  run_fault(
      {.name = "slow reader, trickling",
       .inject =
           [](LinkProxy& p) { return now_after([&] { p.slow_reader(8192, milliseconds(250)); }); },
       .hold = milliseconds(9000),  // longer than a press may wait
       .proxy_options = {.client_receive_buffer_bytes = 4096},
       .presses_per_second = 1000,
       .with_direct = false,
       .campaigns = 8,
       .expect_not_ready = false,  // small commands still pass: it may stay ready
       .nothing_confirmed = false});
}

TEST(RedisLinkFaults, FiftyMillisecondsEachWayIsSlowerAndExact) {
  constexpr std::int64_t kStock = 400;
  constexpr std::int64_t kMembers = 500;
  Rig rig(kStock, /*with_direct=*/false);
  ASSERT_GT(rig.behind->port(), 0);
  ASSERT_TRUE(wait_until([&] { return ready(*rig.behind); }, seconds(10)));
  ReadyzWatch watch(rig.behind->ops_port());
  const SteadyTime slowed_at = Clock::now();
  rig.proxy.add_latency(milliseconds(50));
  TimedCrowd crowd({.target = rig.behind->target(),
                    .campaign_id = kCampaign,
                    .member_prefix = "slow-",
                    .members_max = kMembers,
                    .in_flight = 32,
                    .max_seconds = 60});
  crowd.finish();
  const SteadyTime done_at = Clock::now();
  const auto& answers = crowd.answers();
  ASSERT_EQ(answers.size(), static_cast<std::size_t>(kMembers));
  int issued = 0;
  int sold_out = 0;
  std::vector<long long> took_ms;
  for (const TimedAnswer& a : answers) {
    took_ms.push_back(ms_between(a.sent_at, a.answered_at));
    if (a.code == grpc::StatusCode::OK && !a.already_claimed) {
      ++issued;
    } else if (a.code == grpc::StatusCode::FAILED_PRECONDITION && a.reason == "SOLD_OUT") {
      ++sold_out;
    } else {
      ADD_FAILURE() << a.member_id << " was answered " << a.code << " " << a.reason;
    }
  }
  EXPECT_EQ(issued, kStock);
  EXPECT_EQ(sold_out, kMembers - kStock);
  std::sort(took_ms.begin(), took_ms.end());
  const long long median_ms = took_ms[took_ms.size() / 2];
  EXPECT_GE(median_ms, 100) << "the latency did not reach the claims";
  EXPECT_EQ(watch.count(slowed_at, done_at, 503), 0) << "not ready on a slow link";
  EXPECT_EQ(expect_every_ok_in_redis(rig, {&answers}), kStock);
  rig.proxy.heal();
  rig.stop_all();
  expect_stock_whole(rig);
  std::cout << "link fault \"latency 50 ms each way\": " << issued << " issued, " << sold_out
            << " SOLD_OUT in " << ms_between(slowed_at, done_at) << " ms; press median "
            << median_ms << " ms, max " << took_ms.back() << " ms\n";
}

TEST(RedisLinkFaults, ReadinessFollowsTheLinkWithNoTraffic) {
  Rig rig(100, /*with_direct=*/false);
  ASSERT_GT(rig.behind->port(), 0);
  ASSERT_TRUE(wait_until([&] { return ready(*rig.behind); }, seconds(10)));
  const std::vector<std::pair<std::string, std::function<void(LinkProxy&)>>> faults{
      {"blackhole", [](LinkProxy& p) { p.blackhole(); }},
      {"half-open, Redis to voucherd shut",
       [](LinkProxy& p) { p.half_open(LinkDirection::kToClient); }},
      {"half-open, voucherd to Redis shut",
       [](LinkProxy& p) { p.half_open(LinkDirection::kToServer); }},
      {"slow reader, stopped", [](LinkProxy& p) { p.slow_reader(0, milliseconds(0)); }},
  };
  for (const auto& [name, inject] : faults) {
    SCOPED_TRACE(name);
    const SteadyTime fault_at = Clock::now();
    inject(rig.proxy);
    EXPECT_TRUE(wait_until([&] { return !ready(*rig.behind); }, kIoTimeout + kDetectMargin));
    const long long not_ready_ms = ms_between(fault_at, Clock::now());
    EXPECT_TRUE(
        wait_until([&] { return health_status(rig.behind->target(), "") == 2; }, seconds(2)))
        << "the gRPC health service does not agree";
    // Still not ready a timeout later: reconnecting does not make it so.
    std::this_thread::sleep_until(fault_at + kIoTimeout + milliseconds(500));
    EXPECT_FALSE(ready(*rig.behind));
    const SteadyTime healed_at = Clock::now();
    rig.proxy.heal();
    EXPECT_TRUE(wait_until([&] { return ready(*rig.behind); }, kReadyAgainMax));
    const long long ready_ms = ms_between(healed_at, Clock::now());
    EXPECT_TRUE(
        wait_until([&] { return health_status(rig.behind->target(), "") == 1; }, seconds(2)));
    std::cout << "no traffic, \"" << name << "\": not ready after " << not_ready_ms
              << " ms, ready again " << ready_ms << " ms after the heal\n";
  }
  const Press first = press_once(rig.behind->target(), kCampaign, "after-quiet-faults");
  EXPECT_TRUE(first.ok()) << first.status.error_code() << " " << first.reason();
  EXPECT_EQ(expect_every_ok_in_redis(rig, {}), first.ok() ? 1 : 0);
  rig.stop_all();
  expect_stock_whole(rig);
}

}  // namespace
}  // namespace voucherd::testing
