// redis_e2e_test — proves, with real voucherd processes sharing one real
// redis-server (AOF, appendfsync always) over real gRPC on loopback, that:
// three replicas and a crowd of 150,000 members with repeat presses issue
// exactly the 59,000 packs, no member holding two; a replica killed with
// SIGKILL mid-storm loses no acknowledged voucher, and with nobody
// reconciling the campaign still sells out to exactly its stock; a
// Redis restart mid-storm loses no acknowledged voucher and claims resume;
// an unreachable Redis means UNAVAILABLE, no crash, and recovery; and the
// settlement CSVs add up, with ids that look like spreadsheet formulas
// written as text.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "server/redis/connection.h"
#include "server/redis/records.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;

// A small campaign: `skus` SKUs sharing `stock` packs.
std::string small_campaign(const TempDir& dir, std::int64_t stock, int skus) {
  return first_come_campaign("small", stock, skus).write(dir, "small.json");
}

load::StormOptions storm(const std::string& target, const std::string& campaign, std::int64_t first,
                         std::int64_t members, std::uint64_t seed) {
  load::StormOptions o;
  o.target = target;
  o.campaign_id = campaign;
  o.member_first = first;
  o.members = members;
  o.repeat_share = 0.3;
  o.concurrency = 32;
  o.max_seconds = 240;
  o.seed = seed;
  o.max_retries = 400;
  o.retry_delay = std::chrono::milliseconds(10);
  return o;
}

v1::CampaignStats stats_of(const std::string& target, const std::string& campaign) {
  auto reply = Client(target).stats(campaign);
  EXPECT_TRUE(reply.ok()) << reply.status.error_message();
  return reply.response;
}

TEST(RedisEndToEnd, ThreeReplicasSellExactlyTheStockToACrowd) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = guangdong_always_open(dir);
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(
        std::make_unique<VoucherdProcess>(dir, replica_args(redis, secret, campaigns)));
    ASSERT_GT(replicas.back()->port(), 0);
  }
  // 150,000 distinct members over three overlapping crowds, one per replica.
  std::vector<load::StormReport> reports(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      reports[static_cast<std::size_t>(i)] =
          load::run_storm(storm(replicas[static_cast<std::size_t>(i)]->target(), "guangdong-2024",
                                i * 45'000, 60'000, 10 + static_cast<std::uint64_t>(i)));
    });
  }
  for (auto& t : threads) t.join();
  Acknowledged ack;
  std::int64_t issued = 0;
  for (const auto& r : reports) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.errors_by_code.empty()) << load::format_report(r);
    issued += r.issued;
    ack.add(r);
  }
  EXPECT_EQ(issued, 59'000);
  EXPECT_EQ(ack.member_by_code.size(), 59'000u);
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(ack.codes_with_two, 0);
  EXPECT_EQ(redis_sum(redis, "vd:{guangdong-2024}:issued"), 59'000);
  EXPECT_EQ(redis.cli({"HGET", "vd:{guangdong-2024}:issued", "_members"}), "59000");
  EXPECT_EQ(missing_in_redis(redis, "guangdong-2024", ack), 0);
  const v1::CampaignStats stats = stats_of(replicas[0]->target(), "guangdong-2024");
  EXPECT_EQ(stats.issued(), 59'000);
  EXPECT_EQ(stats.remaining(), 0);
  EXPECT_EQ(stats.members(), 59'000);
  for (auto& r : replicas) EXPECT_EQ(r->stop(SIGTERM), std::optional<int>(0)) << r->stderr_text();
  EXPECT_EQ(redis.cli({"HLEN", "vd:{guangdong-2024}:leases"}), "0");  // clean stops hand back
}

TEST(RedisEndToEnd, KillNineMidStormLosesNothingAndItsLeasesComeBackOnTheirOwn) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = small_campaign(dir, 6'000, 12);
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    auto args = replica_args(redis, secret, campaigns);
    if (i == 2) {  // the one to be killed: named, to see its leases in Redis
      args.push_back("--replica-id");
      args.push_back("victim");
    }
    replicas.push_back(std::make_unique<VoucherdProcess>(dir, args));
    ASSERT_GT(replicas.back()->port(), 0);
  }
  std::vector<load::StormReport> reports(3);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      auto o = storm(replicas[static_cast<std::size_t>(i)]->target(), "small", i * 2'000, 2'000,
                     20 + static_cast<std::uint64_t>(i));
      o.max_retries = i == 2 ? 0 : 400;  // the killed replica's crowd gives up
      reports[static_cast<std::size_t>(i)] = load::run_storm(o);
    });
  }
  // Kill it while it holds leased units (however slow the machine is).
  auto victim_holds = [&] {
    const std::string all = redis.cli({"HGETALL", "vd:{small}:leases"});
    std::istringstream in(all);
    std::string field, value;
    while (std::getline(in, field) && std::getline(in, value)) {
      if (field.rfind("victim|", 0) == 0 && std::atoll(value.c_str()) > 0) return true;
    }
    return false;
  };
  EXPECT_TRUE(wait_until(victim_holds)) << "the replica to kill never held a lease";
  replicas[2]->stop(SIGKILL);
  for (auto& t : threads) t.join();
  Acknowledged ack;
  for (const auto& r : reports) ack.add(r);
  EXPECT_GT(ack.member_by_code.size(), 0u);
  EXPECT_EQ(missing_in_redis(redis, "small", ack), 0);
  EXPECT_EQ(ack.members_with_two, 0);

  // Restart it: a new replica. Nobody reconciles: its predecessor's leases
  // come back when their beat lapses, taken back by the live replicas.
  replicas[2] = std::make_unique<VoucherdProcess>(dir, replica_args(redis, secret, campaigns));
  ASSERT_GT(replicas[2]->port(), 0);
  EXPECT_TRUE(wait_until(
      [&] {
        return redis.cli({"HGETALL", "vd:{small}:leases"}).find("victim|") == std::string::npos;
      },
      std::chrono::seconds(15)));
  // Sell out the rest to new members on the surviving replicas.
  auto rest = storm(replicas[0]->target(), "small", 100'000, 30'000, 30);
  const load::StormReport last = load::run_storm(rest);
  ack.add(last);
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(redis_sum(redis, "vd:{small}:issued"), 6'000);
  EXPECT_EQ(redis.cli({"HGET", "vd:{small}:issued", "_members"}), "6000");
  EXPECT_EQ(missing_in_redis(redis, "small", ack), 0);
  // The manual tool finds nothing stranded.
  const auto reconciled = Client(replicas[0]->target()).reconcile("small");
  ASSERT_TRUE(reconciled.ok()) << reconciled.status.error_message();
  EXPECT_EQ(reconciled.response.units_returned(), 0);
}

TEST(RedisEndToEnd, RedisRestartMidStormLosesNoAcknowledgedVoucher) {
  TempDir dir;
  RedisServer redis(dir, /*aof=*/true, "always");
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = small_campaign(dir, 6'000, 12);
  VoucherdProcess a(dir, replica_args(redis, secret, campaigns));
  VoucherdProcess b(dir, replica_args(redis, secret, campaigns));
  ASSERT_GT(a.port(), 0);
  ASSERT_GT(b.port(), 0);
  std::vector<load::StormReport> reports(2);
  std::atomic<int> storms_done{0};
  std::thread ta([&] {
    reports[0] = load::run_storm(storm(a.target(), "small", 0, 5'000, 41));
    storms_done.fetch_add(1);
  });
  std::thread tb([&] {
    reports[1] = load::run_storm(storm(b.target(), "small", 4'000, 5'000, 42));
    storms_done.fetch_add(1);
  });
  // Kill Redis mid-storm: once the crowds have demonstrably been issued
  // vouchers (in Redis), however slow the machine, and while both still press.
  EXPECT_TRUE(wait_until([&] { return redis_sum(redis, "vd:{small}:issued") >= 100; },
                         std::chrono::seconds(60)))
      << "the storms never issued a voucher";
  EXPECT_EQ(storms_done.load(), 0) << "a storm had ended before Redis was killed";
  redis.kill_hard();  // AOF with appendfsync always: every reply was on disk
  // Restart it once a replica has found it gone (it reports not ready).
  EXPECT_TRUE(wait_until(
      [&] {
        return http_get(a.ops_port(), "/readyz").status == 503 ||
               http_get(b.ops_port(), "/readyz").status == 503;
      },
      std::chrono::seconds(10)))
      << "no replica noticed that Redis was gone";
  redis.start();
  ta.join();
  tb.join();
  Acknowledged ack;
  for (const auto& r : reports) ack.add(r);
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(ack.codes_with_two, 0);
  EXPECT_EQ(missing_in_redis(redis, "small", ack), 0);
  // Claims resumed: newcomers take what is left, and the campaign sells out
  // to exactly its stock.
  ack.add(load::run_storm(storm(a.target(), "small", 50'000, 4'000, 43)));
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(redis_sum(redis, "vd:{small}:issued"), 6'000);
  EXPECT_EQ(static_cast<std::int64_t>(ack.member_by_code.size()), 6'000);
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(b.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedisEndToEnd, UnreachableRedisIsUnavailableThenRecovers) {
  TempDir dir;
  RedisServer redis(dir);
  redis.stop();
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = small_campaign(dir, 100, 2);
  VoucherdProcess replica(dir, replica_args(redis, secret, campaigns));
  ASSERT_GT(replica.port(), 0);
  const Client client(replica.target());
  EXPECT_EQ(client.claim("small", "member-1").code(), grpc::StatusCode::UNAVAILABLE);
  redis.start();
  Reply<v1::ClaimResponse> claimed;
  for (int attempt = 0; attempt < 200; ++attempt) {
    claimed = client.claim("small", "member-1");
    if (claimed.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(claimed.ok()) << claimed.status.error_message();
  const v1::ClaimResponse& out = claimed.response;
  EXPECT_FALSE(out.already_claimed());
  const VoucherPtr stored = redis::decode_voucher(
      "small", out.voucher().code(), redis.cli({"GET", "vd:{small}:v:" + out.voucher().code()}));
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->member_id(), "member-1");
  EXPECT_EQ(replica.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedisEndToEnd, ReplaceCampaignsReplacesAStoredDefinitionOnlyBeforeItOpens) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  // Variants of the small campaign: opening in 2098 or already open, and
  // with 100 or 120 packs.
  auto variant = [&](const std::string& name, std::int64_t stock, bool open) {
    return first_come_campaign("small", stock, 2)
        .window(open ? "2020-01-01T00:00:00Z" : "2098-01-01T00:00:00Z", "2099-01-01T00:00:00Z")
        .write(dir, name);
  };
  const std::string later_100 = variant("later-100.json", 100, false);
  const std::string later_120 = variant("later-120.json", 120, false);
  const std::string open_100 = variant("open-100.json", 100, true);
  const std::string open_130 = variant("open-130.json", 130, true);
  auto pool = [&] {
    return std::stoll(redis.cli({"HGET", "vd:{small}:stock", "sku-0"})) +
           std::stoll(redis.cli({"HGET", "vd:{small}:stock", "sku-1"}));
  };
  auto serve_and_stop = [&](const std::string& file, bool replace) {
    std::vector<std::string> args = replica_args(redis, secret, file);
    if (replace) args.push_back("--replace-campaigns");
    VoucherdProcess replica(dir, args);
    EXPECT_GT(replica.port(), 0) << replica.stderr_text();
    EXPECT_EQ(replica.stop(SIGTERM), std::optional<int>(0));
  };

  serve_and_stop(later_100, false);
  EXPECT_EQ(pool(), 100);
  // A different definition without the flag: refused before listening.
  std::string err;
  EXPECT_EQ(run_voucherd(dir, replica_args(redis, secret, later_120), &err), 2);
  EXPECT_NE(err.find("--replace-campaigns"), std::string::npos) << err;
  EXPECT_EQ(pool(), 100);
  // With the flag, before it opens: replaced, stock and all.
  serve_and_stop(later_120, true);
  EXPECT_EQ(pool(), 120);
  serve_and_stop(open_100, true);  // still not open when replaced: fine
  EXPECT_EQ(pool(), 100);
  // Now the stored campaign has opened: no replacement, even with the flag.
  EXPECT_EQ(run_voucherd(dir, replica_args(redis, secret, open_130), &err), 2);
  EXPECT_EQ(run_voucherd(
                dir,
                [&] {
                  auto a = replica_args(redis, secret, open_130);
                  a.push_back("--replace-campaigns");
                  return a;
                }(),
                &err),
            2);
  EXPECT_NE(err.find("has opened"), std::string::npos) << err;
  EXPECT_EQ(pool(), 100);
}

TEST(RedisEndToEnd, RedemptionHappensExactlyOnceAcrossReplicasAndForgeriesNeverReachRedis) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = small_campaign(dir, 100, 2);
  VoucherdProcess a(dir, replica_args(redis, secret, campaigns));
  VoucherdProcess b(dir, replica_args(redis, secret, campaigns));
  ASSERT_GT(a.port(), 0);
  ASSERT_GT(b.port(), 0);
  // Every call here waits up to 20 s; claims press again until the
  // replica's first lease has arrived.
  auto client_of = [](const std::string& target) {
    return Client(target).with_deadline(std::chrono::seconds(20));
  };
  const auto claimed = client_of(a.target()).claim_until_final("small", "member-1", 200);
  ASSERT_TRUE(claimed.ok()) << claimed.status.error_message();
  const std::string code = claimed.response.voucher().code();
  auto redeem = [&](const Client& client, const std::string& c, const std::string& site,
                    const std::string& request_id, v1::RedeemResponse* out) {
    auto reply = client.redeem(c, site, request_id);
    *out = std::move(reply.response);
    return reply.status;
  };

  // Another site's desk: PERMISSION_DENIED, and the voucher stays ISSUED.
  v1::RedeemResponse out;
  grpc::Status s = redeem(client_of(b.target()), code, "site-2", "desk-x", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("site-2"), std::string::npos) << s.error_message();

  // 64 desks redeem the same code at once, over 64 channels, half through
  // each replica: exactly one succeeds.
  std::atomic<int> ok{0}, already{0}, other{0};
  std::vector<std::thread> desks;
  for (int i = 0; i < 64; ++i) {
    desks.emplace_back([&, i] {
      const Client desk = client_of(i % 2 == 0 ? a.target() : b.target());
      v1::RedeemResponse r;
      const grpc::Status st = redeem(desk, code, "site-1", "desk-" + std::to_string(i), &r);
      if (st.ok()) {
        ++ok;
      } else if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                 st.error_message().find("already redeemed") != std::string::npos &&
                 st.error_message().find("site-1") != std::string::npos) {
        ++already;
      } else {
        ++other;
      }
    });
  }
  for (auto& d : desks) d.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(already.load(), 63);
  EXPECT_EQ(other.load(), 0);

  // The same over one connection: 64 calls at once on one channel.
  {
    const auto claimed_second = client_of(b.target()).claim_until_final("small", "member-2", 200);
    ASSERT_TRUE(claimed_second.ok()) << claimed_second.status.error_message();
    const v1::ClaimResponse& second = claimed_second.response;
    const Client shared = client_of(a.target());
    std::atomic<int> one_ok{0}, one_refused{0};
    std::vector<std::thread> callers;
    for (int i = 0; i < 64; ++i) {
      callers.emplace_back([&, i] {
        v1::RedeemResponse r;
        const grpc::Status s2 =
            redeem(shared, second.voucher().code(), "site-1", "line-" + std::to_string(i), &r);
        if (s2.ok()) {
          ++one_ok;
        } else if (s2.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
          ++one_refused;
        }
      });
    }
    for (auto& t : callers) t.join();
    EXPECT_EQ(one_ok.load(), 1);
    EXPECT_EQ(one_refused.load(), 63);
  }

  // The winning desk retries (its answer was lost): OK, already_redeemed.
  std::string winner;
  {
    const auto read = client_of(b.target()).get_voucher(code);
    ASSERT_TRUE(read.ok());
    const v1::Voucher& v = read.response;
    EXPECT_EQ(v.state(), v1::VOUCHER_STATE_REDEEMED);
    EXPECT_EQ(v.redeemed_site_id(), "site-1");
    EXPECT_TRUE(v.has_redeemed_at());
    winner = v.redeem_request_id();
  }
  s = redeem(client_of(a.target()), code, "site-1", winner, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(out.already_redeemed());
  EXPECT_EQ(out.voucher().code(), code);
  EXPECT_EQ(redis_sum(redis, "vd:{small}:redeemed"), 2);  // both vouchers, once each
  EXPECT_EQ(redis.cli({"SISMEMBER", "vd:{small}:redeemed_codes", code}), "1");
  EXPECT_EQ(stats_of(a.target(), "small").redeemed(), 2);
  // "My vouchers" through the replica that did not issue it: read from Redis.
  {
    const auto listed = client_of(b.target()).list_member_vouchers("member-1");
    ASSERT_TRUE(listed.ok());
    const v1::ListMemberVouchersResponse& mine = listed.response;
    ASSERT_EQ(mine.vouchers_size(), 1);
    EXPECT_EQ(mine.vouchers(0).code(), code);
    EXPECT_EQ(mine.vouchers(0).state(), v1::VOUCHER_STATE_REDEEMED);
  }

  // Forgeries: a code minted under another secret (by a voucherd of its own),
  // the real code with one character changed, and random strings of the
  // right shape. None reaches Redis.
  const std::string other_secret = dir.write("other.hex", std::string(64, 'e')).string();
  VoucherdProcess stranger(dir, {"--campaigns", campaigns, "--secret-file", other_secret});
  ASSERT_GT(stranger.port(), 0);
  const auto foreign = client_of(stranger.target()).claim_until_final("small", "member-1", 200);
  ASSERT_TRUE(foreign.ok());
  std::vector<std::string> forged{foreign.response.voucher().code()};
  for (std::size_t pos = 0; pos < code.size(); pos += 3) {
    if (code[pos] == '-') continue;
    std::string typo = code;
    typo[pos] = code[pos] == 'A' ? 'B' : 'A';
    forged.push_back(typo);
  }
  std::mt19937 rng(7);
  const std::string alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  for (int i = 0; i < 20; ++i) {
    std::string random_code = code;
    for (char& ch : random_code) {
      if (ch != '-') ch = alphabet[rng() % alphabet.size()];
    }
    forged.push_back(random_code);
  }
  // Every command Redis gets while the forgeries are tried: the replicas'
  // keepers beat and look at the registry meanwhile, but no command names
  // a voucher key (vd:{C}:v:<code>).
  const Client client_a = client_of(a.target());
  const std::string seen = redis_commands_during(redis, dir, [&] {
    for (const std::string& f : forged) {
      const grpc::Status st = redeem(client_a, f, "site-1", "desk-forger", &out);
      EXPECT_TRUE(st.error_code() == grpc::StatusCode::NOT_FOUND ||
                  st.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
          << f << ": " << st.error_message();
    }
  });
  EXPECT_NE(seen.find("voucherd-monitor-end"), std::string::npos);
  EXPECT_EQ(seen.find("}:v:"), std::string::npos) << seen;

  EXPECT_EQ(stranger.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0)) << a.stderr_text();
  EXPECT_EQ(b.stop(SIGTERM), std::optional<int>(0)) << b.stderr_text();
}

TEST(RedisEndToEnd, CancelReturnsTheUnitSoANewMemberCanClaimIt) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  VoucherdProcess a(dir, replica_args(redis, secret, small_campaign(dir, 2, 1)));
  ASSERT_GT(a.port(), 0);
  const Client client(a.target());
  // Claims until the answer is final (not refilling, not "not connected yet").
  auto claim = [&](const std::string& member, v1::ClaimResponse* out) {
    auto reply = client.claim_until_final("small", member);
    *out = std::move(reply.response);
    return reply.status;
  };
  v1::ClaimResponse one, two, three;
  ASSERT_TRUE(claim("member-1", &one).ok());
  ASSERT_TRUE(claim("member-2", &two).ok());
  EXPECT_EQ(claim("member-3", &three).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  v1::Voucher cancelled;
  {
    auto reply = client.cancel_voucher(one.voucher().code());
    ASSERT_TRUE(reply.ok()) << reply.status.error_message();
    cancelled = std::move(reply.response);
  }
  EXPECT_EQ(cancelled.state(), v1::VOUCHER_STATE_CANCELLED);
  // The unit is back in Redis's pool and member-1's allowance is freed.
  const std::string sku = one.voucher().sku_id();
  EXPECT_EQ(redis.cli({"HGET", "vd:{small}:cancelled", sku}), "1");
  EXPECT_EQ(redis.cli({"EXISTS", "vd:{small}:m:member-1"}), "0");

  // A new member gets it (the replica looks again once units come back).
  const grpc::Status third = claim("member-3", &three);
  ASSERT_TRUE(third.ok()) << third.error_message();
  EXPECT_NE(three.voucher().code(), one.voucher().code());
  EXPECT_EQ(claim("member-4", &three).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(redis.cli({"HGET", "vd:{small}:issued", sku}), "2");
  EXPECT_EQ(redis.cli({"HGET", "vd:{small}:issued", "_members"}), "2");
  const v1::CampaignStats stats = stats_of(a.target(), "small");
  EXPECT_EQ(stats.issued(), 2);
  EXPECT_EQ(stats.remaining(), 0);
  // A redeemed voucher cannot be cancelled.
  ASSERT_TRUE(client.redeem(two.voucher().code(), "site-1").ok());
  {
    const grpc::Status st = client.cancel_voucher(two.voucher().code()).status;
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(st.error_message().find("cannot be cancelled"), std::string::npos)
        << st.error_message();
  }
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedisEndToEnd, ARotatedSecretKeepsEveryIssuedVoucherValid) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string old_hex = test_secret_hex();
  const std::string new_hex(64, 'b');
  const std::string old_only = dir.write("old.hex", old_hex + "\n").string();
  const std::string rotated =
      dir.write("rotated.hex", "# the new secret mints; the old one still verifies\n" + new_hex +
                                   "\n" + old_hex + "\n")
          .string();
  const std::string new_only = dir.write("new.hex", new_hex + "\n").string();
  const std::string campaign = small_campaign(dir, 10, 1);
  std::string before, after;  // codes minted under the old and the new secret
  {
    VoucherdProcess a(dir, replica_args(redis, old_only, campaign));
    ASSERT_GT(a.port(), 0);
    auto claimed = Client(a.target()).claim_until_final("small", "member-1");
    ASSERT_TRUE(claimed.ok()) << claimed.status.error_message();
    before = claimed.response.voucher().code();
    EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
  }
  {
    // The rotated file: the old voucher is looked up and redeemed once, a
    // new one is minted, and /metrics says which secret verified what.
    VoucherdProcess b(dir, replica_args(redis, rotated, campaign));
    ASSERT_GT(b.port(), 0);
    const Client client(b.target());
    const auto looked_up = client.get_voucher(before);
    ASSERT_TRUE(looked_up.ok()) << looked_up.status.error_message();
    EXPECT_EQ(looked_up.response.member_id(), "member-1");
    auto claimed = client.claim_until_final("small", "member-2");
    ASSERT_TRUE(claimed.ok()) << claimed.status.error_message();
    after = claimed.response.voucher().code();
    const auto redeemed = client.redeem(before, "site-1");
    ASSERT_TRUE(redeemed.ok()) << redeemed.status.error_message();
    EXPECT_FALSE(redeemed.response.already_redeemed());
    ASSERT_TRUE(client.get_voucher(after).ok());
    const std::string metrics = http_get(b.ops_port(), "/metrics").body;
    EXPECT_NE(metrics.find("voucherd_voucher_codes_verified_total{secret=\"1\"} 1\n"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("voucherd_voucher_codes_verified_total{secret=\"2\"} 2\n"),
              std::string::npos)
        << metrics;
    EXPECT_EQ(b.stop(SIGTERM), std::optional<int>(0));
  }
  {
    // Once the old secret is gone, its codes no longer verify; the new
    // secret's still do.
    VoucherdProcess c(dir, replica_args(redis, new_only, campaign));
    ASSERT_GT(c.port(), 0);
    const Client client(c.target());
    EXPECT_TRUE(client.get_voucher(after).ok());
    EXPECT_EQ(client.get_voucher(before).code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(c.stop(SIGTERM), std::optional<int>(0));
  }
  {
    // And the new code was made with the new secret, not the old one.
    VoucherdProcess d(dir, replica_args(redis, old_only, campaign));
    ASSERT_GT(d.port(), 0);
    EXPECT_EQ(Client(d.target()).get_voucher(after).code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(d.stop(SIGTERM), std::optional<int>(0));
  }
}

TEST(RedisEndToEnd, SettlementCsvAddsUpToTheRedeemedFaceValues) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns =
      CampaignJson("two", "Two sites")
          .site("spring", "Spring", "Qingyuan", "SKU_KIND_HOT_SPRING")
          .sku("spa", "Spa", 19'850, 20)
          .site("hotel", "Hotel, \"Old Town\"", "Chaozhou", "SKU_KIND_HOTEL")
          .sku("room", "Room", 39'800, 20)
          .write(dir, "two-sites.json");
  VoucherdProcess a(dir, replica_args(redis, secret, campaigns));
  ASSERT_GT(a.port(), 0);
  const Client client(a.target());
  // 30 members claim; every third voucher is redeemed at its site. Member 0
  // and its redemption's request id are spreadsheet formulas (printable
  // text, so valid ids): the CSV must show them as text.
  const std::string formula_member = "=HYPERLINK(\"http://x\",\"y\")";
  const std::string formula_request = "=1+1";
  std::int64_t expected_count = 0, expected_cents = 0;
  std::map<std::string, std::int64_t> expected_by_site;
  for (int m = 0; m < 30; ++m) {
    const auto reply =
        client.claim_until_final("two", m == 0 ? formula_member : "member-" + std::to_string(m));
    ASSERT_TRUE(reply.ok()) << reply.status.error_message();
    const v1::ClaimResponse& claimed = reply.response;
    if (m % 3 != 0) continue;
    ASSERT_TRUE(client
                    .redeem(claimed.voucher().code(), claimed.voucher().site_id(),
                            m == 0 ? formula_request : "desk-" + std::to_string(m))
                    .ok());
    ++expected_count;
    expected_cents += claimed.voucher().face_value_cents();
    expected_by_site[claimed.voucher().site_id()] += claimed.voucher().face_value_cents();
  }

  const std::string settlement = (dir.path() / "settlement.csv").string();
  const std::string detail = (dir.path() / "detail.csv").string();
  const std::string cmd = std::string(VOUCHERCTL_BINARY) + " export-redemptions --target " +
                          a.target() + " --campaign two --settlement " + settlement + " --detail " +
                          detail + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  auto lines_of = [](const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };
  const auto rows = lines_of(settlement);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front(), "site_id,sku_id,redeemed,face_value_cents,face_value_yuan");
  // The last line is the grand total; each site has its own ALL line.
  std::ostringstream total;
  total << "ALL,ALL," << expected_count << ',' << expected_cents << ',' << expected_cents / 100
        << '.' << (expected_cents % 100 < 10 ? "0" : "") << expected_cents % 100;
  EXPECT_EQ(rows.back(), total.str());
  std::int64_t site_sum = 0;
  for (const std::string& row : rows) {
    for (const auto& [site, cents] : expected_by_site) {
      if (row.rfind(site + ",ALL,", 0) == 0) {
        std::istringstream in(row.substr(site.size() + 5));
        std::int64_t n = 0, c = 0;
        char comma = 0;
        in >> n >> comma >> c;
        EXPECT_EQ(c, cents) << row;
        site_sum += c;
      }
    }
  }
  EXPECT_EQ(site_sum, expected_cents);
  // One detail line per redeemed voucher, plus the header.
  const auto detail_rows = lines_of(detail);
  EXPECT_EQ(static_cast<std::int64_t>(detail_rows.size()), expected_count + 1);
  // The formulas are written behind a quote, quoted; no field starts with "=".
  int formula_rows = 0;
  for (const std::string& row : detail_rows) {
    EXPECT_EQ(row.find(",="), std::string::npos) << row;
    if (row.find("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"") != std::string::npos) {
      ++formula_rows;
      EXPECT_TRUE(row.ends_with(",\"'=1+1\"")) << row;
    }
  }
  EXPECT_EQ(formula_rows, 1);
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedisEndToEnd, RedisStoreNeedsASecretFile) {
  TempDir dir;
  std::string err;
  EXPECT_EQ(run_voucherd(dir, {"--store", "redis", "--redis", "redis://127.0.0.1:1"}, &err), 2);
  EXPECT_NE(err.find("--secret-file"), std::string::npos) << err;
  EXPECT_EQ(run_voucherd(dir, {"--store", "redis"}, &err), 2);
  EXPECT_NE(err.find("--redis"), std::string::npos) << err;
}

}  // namespace
}  // namespace voucherd::testing
