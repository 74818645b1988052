// replicas_e2e_test — proves the production shape: voucherd replicas on one
// real redis-server (AOF, appendfsync always), called over real gRPC by
// members who press once and take the first answer, with no client retry
// and nobody calling a repair RPC:
//   1. a replica is ready with no traffic at all: after start (with no
//      campaign), after CreateCampaign, and after a Redis restart; the gRPC
//      health service agrees; the store's loss and return are logged once;
//   2. first presses are served: a trickle with idle gaps, and a first wave
//      of 128 concurrent presses over two replicas on a fresh campaign;
//   3. a campaign created on one replica is served by another within a
//      second, a replica started empty serves the store's campaigns, and
//      ListCampaigns pages through them;
//   4. replicas killed with SIGKILL mid-storm strand nothing: within 10 s of
//      the last kill the campaign is sold out to exactly its stock and
//      SOLD_OUT is answered;
//   5. a replica paused (SIGSTOP) until its leases were taken back issues
//      nothing from them when resumed;
//   6. a member holding a voucher gets it back from the other replica,
//      before and after the sell-out; newcomers' presses after the sell-out
//      cost Redis nothing; a cancellation on one replica frees the member on
//      the other.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/grpc_generic.h"
#include "tests/support/health_watch.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The one FIRST_COME campaign of first_come_campaign(), as a message.
v1::Campaign campaign_message(const std::string& id, std::int64_t stock, int skus) {
  return first_come_campaign(id, stock, skus).message();
}

grpc::Status create_campaign(const std::string& target, const v1::Campaign& campaign) {
  return Client(target).create_campaign(campaign).status;
}

bool ready(const VoucherdProcess& p) { return http_get(p.ops_port(), "/readyz").status == 200; }

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

struct Shared {
  TempDir dir;
  RedisServer redis{dir};
  std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  std::unique_ptr<VoucherdProcess> start(std::vector<std::string> extra = {},
                                         const std::string& campaigns = "") {
    auto args = replica_args(redis, secret, campaigns);
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<VoucherdProcess>(dir, args);
    EXPECT_GT(p->port(), 0) << p->stderr_text();
    return p;
  }
};

TEST(Replicas, ReadyWithNoTrafficAndFollowsRedisBothWays) {
  Shared s;
  auto a = s.start();
  // Nothing has been called: ready as soon as it can serve, campaign or not.
  EXPECT_TRUE(wait_until([&] { return ready(*a); }, seconds(5))) << a->stderr_text();
  EXPECT_EQ(health_status(a->target(), ""), std::optional<int>(1));
  EXPECT_EQ(health_status(a->target(), "voucher.v1.VoucherService"), std::optional<int>(1));
  ASSERT_TRUE(create_campaign(a->target(), campaign_message("spring", 100, 2)).ok());
  EXPECT_TRUE(ready(*a));
  // A balancer's client-side health check holds a Watch open.
  HealthWatch watch(a->target(), "");
  EXPECT_EQ(watch.next(seconds(5)), std::optional<int>(1));

  // Redis goes away: readiness and health follow with no traffic.
  s.redis.kill_hard();
  auto went = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_until([&] { return !ready(*a); }, seconds(5)));
  const auto noticed_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - went).count();
  EXPECT_TRUE(wait_until([&] { return health_status(a->target(), "") == 2; }, seconds(5)));
  EXPECT_EQ(health_status(a->target(), "voucher.v1.AdminService"), std::optional<int>(2));
  EXPECT_EQ(watch.next(seconds(5)), std::optional<int>(2));
  const std::string down = http_get(a->ops_port(), "/readyz").body;
  EXPECT_NE(down.find("not connected"), std::string::npos) << down;

  s.redis.start();
  const auto back = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_until([&] { return ready(*a); }, seconds(5)));
  const auto recovered_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - back).count();
  EXPECT_TRUE(wait_until([&] { return health_status(a->target(), "") == 1; }, seconds(5)));
  EXPECT_EQ(watch.next(seconds(5)), std::optional<int>(1));
  std::cout << "readiness followed Redis: down after " << noticed_ms << " ms, up after "
            << recovered_ms << " ms\n";
  // The member's first press after the outage is served.
  const Press p = press_once(a->target(), "spring", "after-outage");
  EXPECT_TRUE(p.ok()) << p.status.error_message();

  const std::string log = a->stderr_text();
  EXPECT_EQ(count_of(log, "store lost"), 1) << log;
  EXPECT_EQ(count_of(log, "store back"), 1) << log;
  EXPECT_NE(log.find("outage_seconds"), std::string::npos) << log;
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(a->stop(SIGTERM), std::optional<int>(0)) << a->stderr_text();
}

TEST(Replicas, ATrickleOfMembersIsServedAtTheFirstPress) {
  Shared s;
  auto a = s.start();
  auto b = s.start();
  ASSERT_TRUE(create_campaign(a->target(), campaign_message("trickle", 1'000, 4)).ok());
  // One press every 600 ms, alternating replicas: idle gaps between them.
  for (int m = 0; m < 8; ++m) {
    const VoucherdProcess& r = m % 2 == 0 ? *a : *b;
    const Press p = press_once(r.target(), "trickle", "trickle-" + std::to_string(m));
    EXPECT_TRUE(p.ok()) << "member " << m << ": " << p.status.error_code() << " " << p.reason()
                        << " " << p.status.error_message();
    EXPECT_FALSE(p.response.already_claimed());
    std::this_thread::sleep_for(milliseconds(600));
  }
}

TEST(Replicas, AFirstWaveOf128OverTwoReplicasIsServedAtTheFirstPress) {
  Shared s;
  auto a = s.start();
  auto b = s.start();
  // A fresh campaign, created on one replica ahead of its opening, as
  // operators do; the crowd presses at the opening second.
  v1::Campaign wave = campaign_message("wave", 2'000, 8);
  const auto opens = std::chrono::system_clock::now() + seconds(3);
  wave.mutable_starts_at()->set_seconds(
      std::chrono::duration_cast<seconds>(opens.time_since_epoch()).count() + 1);
  ASSERT_TRUE(create_campaign(a->target(), wave).ok());
  std::this_thread::sleep_until(opens + seconds(1));
  std::atomic<int> ok{0};
  std::vector<std::string> refusals(128);
  std::vector<std::thread> crowd;
  for (int m = 0; m < 128; ++m) {
    crowd.emplace_back([&, m] {
      const VoucherdProcess& r = m % 2 == 0 ? *a : *b;
      const Press p = press_once(r.target(), "wave", "wave-" + std::to_string(m));
      if (p.ok() && !p.response.already_claimed()) {
        ok.fetch_add(1);
      } else {
        refusals[static_cast<std::size_t>(m)] =
            std::to_string(p.status.error_code()) + " " + p.reason();
      }
    });
  }
  for (auto& t : crowd) t.join();
  EXPECT_EQ(ok.load(), 128);
  for (int m = 0; m < 128; ++m) {
    EXPECT_TRUE(refusals[static_cast<std::size_t>(m)].empty())
        << "member " << m << ": " << refusals[static_cast<std::size_t>(m)];
  }
  EXPECT_EQ(redis_sum(s.redis, "vd:{wave}:issued"), 128);
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(a->stop(SIGTERM), std::optional<int>(0)) << a->stderr_text();
  EXPECT_EQ(b->stop(SIGTERM), std::optional<int>(0)) << b->stderr_text();
}

TEST(Replicas, ACampaignCreatedOnOneIsServedByEveryReplica) {
  Shared s;
  auto a = s.start();
  auto b = s.start();
  ASSERT_TRUE(wait_until([&] { return ready(*a) && ready(*b); }));
  ASSERT_TRUE(create_campaign(a->target(), campaign_message("shared", 100, 2)).ok());
  // One second later a member presses on the other replica, once.
  std::this_thread::sleep_for(seconds(1));
  const Press p = press_once(b->target(), "shared", "first-on-b");
  EXPECT_TRUE(p.ok()) << p.status.error_code() << " " << p.status.error_message();

  // A replica started with no --campaigns serves what the store holds.
  ASSERT_TRUE(create_campaign(b->target(), campaign_message("second", 10, 1)).ok());
  ASSERT_TRUE(create_campaign(a->target(), campaign_message("third", 10, 1)).ok());
  auto c = s.start();
  const Press q = press_once(c->target(), "third", "first-on-c");
  EXPECT_TRUE(q.ok()) << q.status.error_code() << " " << q.status.error_message();
  const Press held = press_once(c->target(), "shared", "first-on-b");
  EXPECT_TRUE(held.ok());
  EXPECT_TRUE(held.response.already_claimed());
  EXPECT_EQ(held.response.voucher().code(), p.response.voucher().code());

  // ListCampaigns, a page at a time, in id order.
  const Client admin(c->target());
  std::vector<std::string> ids;
  std::string token;
  for (int page = 0; page < 10; ++page) {
    const auto listed = admin.list_campaigns(2, token);
    ASSERT_TRUE(listed.ok());
    const v1::ListCampaignsResponse& resp = listed.response;
    EXPECT_LE(resp.campaigns_size(), 2);
    for (const auto& campaign : resp.campaigns()) ids.push_back(campaign.id());
    token = resp.next_page_token();
    if (token.empty()) break;
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"second", "shared", "third"}));
  const grpc::Status refused = admin.list_campaigns(0, "not-a-token").status;
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("page_token"), std::string::npos);
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(a->stop(SIGTERM), std::optional<int>(0)) << a->stderr_text();
  EXPECT_EQ(b->stop(SIGTERM), std::optional<int>(0)) << b->stderr_text();
  EXPECT_EQ(c->stop(SIGTERM), std::optional<int>(0)) << c->stderr_text();
}

// New members pressing on `target`, each once, from `threads` threads at a
// time, until SOLD_OUT is answered or `limit` passes: the members served,
// whether SOLD_OUT came, and any other answers.
struct Drain {
  Acknowledged acknowledged;
  bool sold_out = false;
  std::map<std::string, int> other_answers;
};
Drain drain(const std::string& target, const std::string& campaign, const std::string& prefix,
            std::chrono::milliseconds limit, int threads = 1) {
  Drain out;
  std::mutex mu;
  std::atomic<bool> sold_out{false};
  const auto until = std::chrono::steady_clock::now() + limit;
  std::vector<std::thread> crowd;
  for (int t = 0; t < threads; ++t) {
    crowd.emplace_back([&, t] {
      for (int m = 0; !sold_out.load() && std::chrono::steady_clock::now() < until; ++m) {
        const std::string member = prefix + std::to_string(t) + "-" + std::to_string(m);
        const Press p = press_once(target, campaign, member);
        std::lock_guard lock(mu);
        if (p.ok()) {
          out.acknowledged.add(member, p.response.voucher().code());
        } else if (p.reason() == "SOLD_OUT") {
          sold_out.store(true);
        } else {
          ++out.other_answers[std::to_string(p.status.error_code()) + " " + p.reason()];
        }
      }
    });
  }
  for (auto& t : crowd) t.join();
  out.sold_out = sold_out.load();
  return out;
}

TEST(Replicas, KilledReplicasStrandNothingAndTheCampaignSellsOutExactly) {
  Shared s;
  const std::string campaigns =
      s.dir.write("small.json", first_come_campaign_json("small", 6'000, 12)).string();
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(s.start({"--replica-id", "replica-" + std::to_string(i)}, campaigns));
  }
  // A crowd on each replica, no retries; two replicas are killed mid-storm.
  std::vector<load::StormReport> reports(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      load::StormOptions o;
      o.target = replicas[static_cast<std::size_t>(i)]->target();
      o.campaign_id = "small";
      o.member_first = i * 100'000;
      o.members = 1'500;
      o.repeat_share = 0.2;
      o.concurrency = 16;
      o.max_seconds = 60;
      o.seed = 70 + static_cast<std::uint64_t>(i);
      reports[static_cast<std::size_t>(i)] = load::run_storm(o);
    });
  }
  auto holds_lease = [&](int n) {
    return std::stoll("0" + s.redis.cli({"HLEN", "vd:{small}:leases"})) >= n;
  };
  EXPECT_TRUE(wait_until([&] { return holds_lease(3); }, seconds(20)));
  // Mid-storm: once the crowds have been issued some vouchers.
  EXPECT_TRUE(
      wait_until([&] { return redis_sum(s.redis, "vd:{small}:issued") >= 300; }, seconds(20)));
  replicas[1]->stop(SIGKILL);
  replicas[2]->stop(SIGKILL);
  const auto last_kill = std::chrono::steady_clock::now();
  for (auto& t : threads) t.join();
  Acknowledged ack;
  for (const auto& r : reports) ack.add(r);
  // The survivor's crowd goes on: new members, each pressing once. Nobody
  // reconciles: within 10 s of the last kill no unit is leased to the dead
  // any more (their beats lapse after 3 s), and the crowd sells out the
  // rest, dead replicas' units included, to exactly the stock.
  std::atomic<bool> recovered{false};
  std::thread watch([&] {
    recovered = wait_until(
        [&] {
          const std::string leases = s.redis.cli({"HGETALL", "vd:{small}:leases"});
          return leases.find("replica-1|") == std::string::npos &&
                 leases.find("replica-2|") == std::string::npos;
        },
        seconds(10) -
            std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - last_kill));
  });
  Drain rest = drain(replicas[0]->target(), "small", "late-", seconds(60), 8);
  const auto sold_out_after =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - last_kill);
  watch.join();
  EXPECT_TRUE(recovered.load()) << "the dead replicas still held leases 10 s after the kill";
  for (const auto& [member, code] : rest.acknowledged.code_by_member) ack.add(member, code);
  EXPECT_TRUE(rest.sold_out) << "no SOLD_OUT; issued " << redis_sum(s.redis, "vd:{small}:issued");
  // (The sell-out time also depends on how fast this crowd presses; in a
  // Release build here it is 3.4-4.4 s, in a sanitizer build longer.)
  std::cout << "sold out " << sold_out_after.count() << " ms after the last kill\n";
  for (const auto& [answer, n] : rest.other_answers) ADD_FAILURE() << n << " x " << answer;
  EXPECT_EQ(redis_sum(s.redis, "vd:{small}:issued"), 6'000);
  EXPECT_EQ(s.redis.cli({"HGET", "vd:{small}:issued", "_members"}), "6000");
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(ack.codes_with_two, 0);
  EXPECT_EQ(missing_in_redis(s.redis, "small", ack), 0);
  // Every unit is issued or in the pool; none is leased to the dead.
  EXPECT_EQ(redis_sum(s.redis, "vd:{small}:stock"), 0);
  EXPECT_EQ(redis_sum(s.redis, "vd:{small}:leased"), 0);
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(replicas[0]->stop(SIGTERM), std::optional<int>(0)) << replicas[0]->stderr_text();
}

TEST(Replicas, APausedReplicaIssuesNothingFromLeasesTakenBackMeanwhile) {
  Shared s;
  const std::string campaigns =
      s.dir.write("small.json", first_come_campaign_json("small", 3'000, 4)).string();
  auto a = s.start({"--replica-id", "sleeper"}, campaigns);
  auto b = s.start({}, campaigns);
  Acknowledged ack;
  // The sleeper serves a few members, and holds units.
  for (int m = 0; m < 5; ++m) {
    const Press p = press_once(a->target(), "small", "early-" + std::to_string(m));
    ASSERT_TRUE(p.ok()) << p.status.error_message();
    ack.add("early-" + std::to_string(m), p.response.voucher().code());
  }
  auto sleeper_leased = [&] {
    const std::string all = s.redis.cli({"HGETALL", "vd:{small}:leases"});
    return all.find("sleeper|") != std::string::npos;
  };
  ASSERT_TRUE(sleeper_leased());
  a->send_signal(SIGSTOP);
  // Its beat lapses; the other replica takes its leases back on its own.
  EXPECT_TRUE(wait_until([&] { return !sleeper_leased(); }, seconds(15)));
  // The other replica sells out everything, the sleeper's units included.
  Drain rest = drain(b->target(), "small", "b-", seconds(60), 4);
  for (const auto& [member, code] : rest.acknowledged.code_by_member) ack.add(member, code);
  EXPECT_TRUE(rest.sold_out);
  EXPECT_EQ(redis_sum(s.redis, "vd:{small}:issued"), 3'000);

  // Resumed: its local units are not its to hand out any more.
  a->send_signal(SIGCONT);
  int issued_by_sleeper = 0;
  for (int m = 0; m < 50; ++m) {
    const std::string member = "after-" + std::to_string(m);
    const Press p = press_once(a->target(), "small", member);
    if (p.ok()) {
      ++issued_by_sleeper;
      ack.add(member, p.response.voucher().code());
    } else {
      EXPECT_EQ(p.reason(), "SOLD_OUT") << p.status.error_code() << " " << p.status.error_message();
    }
  }
  EXPECT_EQ(issued_by_sleeper, 0);
  EXPECT_EQ(redis_sum(s.redis, "vd:{small}:issued"), 3'000);
  EXPECT_EQ(s.redis.cli({"HGET", "vd:{small}:issued", "_members"}), "3000");
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(ack.codes_with_two, 0);
  EXPECT_EQ(missing_in_redis(s.redis, "small", ack), 0);
  EXPECT_NE(a->stderr_text().find("lapsed"), std::string::npos) << a->stderr_text();
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(a->stop(SIGTERM), std::optional<int>(0)) << a->stderr_text();
  EXPECT_EQ(b->stop(SIGTERM), std::optional<int>(0)) << b->stderr_text();
}

TEST(Replicas, HoldersGetTheirVoucherFromEveryReplicaAndCancellationFreesThemEverywhere) {
  Shared s;
  const std::string campaigns =
      s.dir.write("tiny.json", first_come_campaign_json("tiny", 10, 2)).string();
  auto a = s.start({}, campaigns);
  auto b = s.start({}, campaigns);
  const Press first = press_once(a->target(), "tiny", "holder");
  ASSERT_TRUE(first.ok()) << first.status.error_message();
  const std::string code = first.response.voucher().code();
  // Before the sell-out, on the other replica: the same voucher.
  const Press again = press_once(b->target(), "tiny", "holder");
  ASSERT_TRUE(again.ok()) << again.status.error_message();
  EXPECT_TRUE(again.response.already_claimed());
  EXPECT_EQ(again.response.voucher().code(), code);
  // Sold out through the first replica.
  Drain rest = drain(a->target(), "tiny", "a-", seconds(20));
  EXPECT_TRUE(rest.sold_out);
  EXPECT_EQ(rest.acknowledged.code_by_member.size(), 9u);
  EXPECT_EQ(redis_sum(s.redis, "vd:{tiny}:issued"), 10);
  // After the sell-out, every holder gets their voucher on the other
  // replica, at the first press; a newcomer hears SOLD_OUT.
  for (const auto& [member, held] : rest.acknowledged.code_by_member) {
    const Press p = press_once(b->target(), "tiny", member);
    EXPECT_TRUE(p.ok()) << member << ": " << p.reason();
    EXPECT_TRUE(p.response.already_claimed());
    EXPECT_EQ(p.response.voucher().code(), held);
  }
  EXPECT_EQ(press_once(b->target(), "tiny", "newcomer").reason(), "SOLD_OUT");
  // Newcomers after the sell-out cost Redis no command: while 500 of them
  // press, Redis sees the replicas' keepers (beats, the registry's version,
  // the holders feed) but no command that names one of them.
  int sold_out = 0;
  const std::string seen = redis_commands_during(s.redis, s.dir, [&] {
    for (int m = 0; m < 500; ++m) {
      sold_out +=
          press_once(b->target(), "tiny", "late-" + std::to_string(m)).reason() == "SOLD_OUT";
    }
  });
  EXPECT_EQ(sold_out, 500);
  EXPECT_NE(seen.find("voucherd-monitor-end"), std::string::npos);
  EXPECT_EQ(seen.find("late-"), std::string::npos) << seen;
  std::cout << "500 sold-out presses: " << count_of(seen, "\n") - 2
            << " Redis commands meanwhile, none naming a member who pressed\n";

  // Cancelled on the first replica: the member is free on the other one too.
  ASSERT_TRUE(Client(a->target()).cancel_voucher(code).ok());
  // B learns it from the store's holders feed (every 50 ms); /status says
  // how many holders B knows of.
  auto holders_known_on_b = [&] {
    const std::string status = http_get(b->ops_port(), "/status").body;
    return status.find("\"store_holders_known\":9") != std::string::npos;
  };
  EXPECT_TRUE(wait_until(holders_known_on_b, seconds(5)));
  const Press renewed = press_once(b->target(), "tiny", "holder");
  ASSERT_TRUE(renewed.ok()) << renewed.status.error_code() << " " << renewed.reason();
  EXPECT_FALSE(renewed.response.already_claimed());
  EXPECT_NE(renewed.response.voucher().code(), code);
  EXPECT_EQ(redis_sum(s.redis, "vd:{tiny}:issued"), 10);
  // A clean stop exits 0 (and a sanitizer report would make it fail).
  EXPECT_EQ(a->stop(SIGTERM), std::optional<int>(0)) << a->stderr_text();
  EXPECT_EQ(b->stop(SIGTERM), std::optional<int>(0)) << b->stderr_text();
}

}  // namespace
}  // namespace voucherd::testing
