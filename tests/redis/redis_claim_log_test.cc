// redis_claim_log_test — proves, with the real engine on a real redis-server,
// that the Redis claim log (1) records every acknowledged voucher and member
// allowance in Redis, (2) lets three replicas sharing one Redis issue exactly
// the stock with no member holding two vouchers, (3) lets a restarted
// replica see what was issued before, (4) answers UNAVAILABLE-type outcomes
// while Redis is down and recovers when it is back, (5) hands unused leases
// back on a clean stop, (6) gives a dead replica's leased units back on its
// own when its beat lapses (and the manual reconciliation does the same),
// (7) decodes the holders feed and refuses malformed entries, and (8)
// answers a repeat, a cancellation and "my vouchers" on a replica that never
// saw the voucher exactly as on the one that issued it, although every
// script declares every key it touches (the held record, the member's
// allowance and the records are declared by a second call when the first
// did not know them; that first call writes nothing).
#include "server/redis/redis_claim_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "engine/claim_engine.h"
#include "server/grpc/proto_convert.h"
#include "server/redis/records.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/redis_server.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

const std::vector<std::uint8_t> kSecret(32, 42);

// A claim whose caller waits for the answer.
struct WaitedClaim final : ClaimOp {
  std::promise<ClaimResult> done;
  void on_claim_done(const ClaimResult& r) override { done.set_value(r); }
};

struct WaitedLookup final : VoucherLookupOp {
  std::promise<std::pair<Outcome, VoucherPtr>> done;
  void on_lookup_done(Outcome o, VoucherPtr v, VoucherState) override {
    done.set_value({o, std::move(v)});
  }
};

CampaignSpec campaign(std::int64_t stock_a, std::int64_t stock_b) {
  return SpecBuilder("gd-redis", "Redis test")
      .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Hot spring")
      .sku("sku-a", stock_a, 19800, "Two tickets")
      .sku("sku-b", stock_b, 29800, "Family");
}

// One voucherd replica, minus gRPC: an engine on a Redis claim log.
struct Replica {
  Replica(const std::string& url, const std::string& id, CampaignSpec spec)
      : log(make_options(url, id), encode_campaign_definition),
        engine(log, clock, random, kSecret) {
    log.start();
    created = engine.create_campaign(std::move(spec)).has_value();
  }
  // The log's threads call into the engine's campaigns: stop them first.
  ~Replica() { log.stop(); }
  static redis::ClaimLogOptions make_options(const std::string& url, const std::string& id) {
    redis::ClaimLogOptions o;
    o.endpoint = *redis::parse_url(url, nullptr);
    o.replica_id = id;
    o.io_timeout = std::chrono::milliseconds(1000);
    return o;
  }
  // Presses until the answer is not "refilling" (a lease is on its way).
  ClaimResult claim(const std::string& member, const std::string& request_id = "") {
    for (int attempt = 0; attempt < 2000; ++attempt) {
      WaitedClaim op;
      op.campaign_id = "gd-redis";
      op.member_id = member;
      op.request_id = request_id;
      auto f = op.done.get_future();
      engine.claim(op);
      ClaimResult r = f.get();
      if (r.outcome != Outcome::kStockRefilling) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return ClaimResult{Outcome::kStockRefilling, nullptr, nullptr};
  }
  std::pair<Outcome, VoucherPtr> lookup(const std::string& code) {
    WaitedLookup op;
    op.code = code;
    auto f = op.done.get_future();
    engine.get_voucher(op);
    return f.get();
  }

  SystemClock clock;
  SecureRandom random;
  redis::RedisClaimLog log;
  ClaimEngine engine;
  bool created = false;
};

TEST(RedisClaimLog, RecordsVouchersAllowancesAndAnswersRepeats) {
  TempDir dir;
  RedisServer redis_server(dir);
  Replica r(redis_server.url(), "replica-1", campaign(5, 5));
  ASSERT_TRUE(r.created);

  const ClaimResult first = r.claim("member-1");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  const std::string code = std::string(first.voucher->code());
  const VoucherPtr stored =
      redis::decode_voucher("gd-redis", code, redis_server.cli({"GET", "vd:{gd-redis}:v:" + code}));
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->member_id(), "member-1");
  EXPECT_EQ(stored->sku_id(), first.voucher->sku_id());
  EXPECT_EQ(stored->state(), VoucherState::kIssued);
  EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:m:member-1"}), code);  // allowance 1

  const ClaimResult again = r.claim("member-1");
  EXPECT_EQ(again.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(again.voucher->code(), code);

  auto [found, v] = r.lookup(code);
  ASSERT_EQ(found, Outcome::kOk);
  EXPECT_EQ(v->member_id(), "member-1");
  EXPECT_EQ(v->face_value_cents(), first.voucher->face_value_cents());
  EXPECT_EQ(v->issued_at_us(), first.voucher->issued_at_us());

  auto counts = r.log.read_counts(r.engine.find_campaign("gd-redis")->spec());
  ASSERT_TRUE(counts.has_value()) << counts.error().message;
  EXPECT_EQ((*counts)->issued[0] + (*counts)->issued[1], 1);
}

TEST(RedisClaimLog, AllowanceAboveOneIsDecidedInRedisAcrossReplicas) {
  TempDir dir;
  RedisServer redis_server(dir);
  CampaignSpec spec = campaign(20, 20);
  spec.per_member_limit = 3;
  Replica a(redis_server.url(), "replica-a", spec);
  Replica b(redis_server.url(), "replica-b", spec);
  ASSERT_TRUE(a.created && b.created);

  // Three requests over two replicas: three different vouchers.
  const ClaimResult r1 = a.claim("member-9", "req-1");
  const ClaimResult r2 = b.claim("member-9", "req-2");
  const ClaimResult r3 = a.claim("member-9", "req-3");
  ASSERT_EQ(r1.outcome, Outcome::kOk);
  ASSERT_EQ(r2.outcome, Outcome::kOk);
  ASSERT_EQ(r3.outcome, Outcome::kOk);
  EXPECT_NE(r1.voucher->code(), r2.voucher->code());
  EXPECT_NE(r2.voucher->code(), r3.voucher->code());

  // A retry of req-2 on the replica that did not issue it: the same voucher.
  const ClaimResult retry = a.claim("member-9", "req-2");
  EXPECT_EQ(retry.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(retry.voucher->code(), r2.voucher->code());
  // A fourth request is over the allowance: answered with the latest voucher.
  const ClaimResult fourth = b.claim("member-9", "req-4");
  EXPECT_EQ(fourth.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(fourth.voucher->code(), r3.voucher->code());

  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:m:member-9", "n"}), "3");
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:m:member-9", "r:req-2"}), r2.voucher->code());
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "_members"}), "1");
  auto issued = [&](const char* sku) {
    const std::string n = redis_server.cli({"HGET", "vd:{gd-redis}:issued", sku});
    return n.empty() ? 0 : std::stoll(n);
  };
  EXPECT_EQ(issued("sku-a") + issued("sku-b"), 3);
}

TEST(RedisClaimLog, ThreeReplicasIssueExactlyTheStock) {
  TempDir dir;
  RedisServer redis_server(dir);
  constexpr std::int64_t kStockA = 700, kStockB = 500;
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<Replica>(redis_server.url(), "replica-" + std::to_string(i),
                                                 campaign(kStockA, kStockB)));
    ASSERT_TRUE(replicas.back()->created);
  }
  // 3,000 members, each pressing twice on random replicas, from 6 threads.
  constexpr int kMembers = 3000;
  std::mutex mu;
  std::unordered_map<std::string, std::unordered_set<std::string>> codes_by_member;
  std::atomic<int> sold_out{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int m = t; m < kMembers * 2; m += 6) {
        const std::string member = "m-" + std::to_string(m % kMembers);
        Replica& r = *replicas[rng() % replicas.size()];
        const ClaimResult res = r.claim(member);
        if (res.outcome == Outcome::kOk || res.outcome == Outcome::kAlreadyClaimed) {
          std::lock_guard lock(mu);
          codes_by_member[member].insert(std::string(res.voucher->code()));
        } else if (res.outcome == Outcome::kSoldOut) {
          ++sold_out;
        } else {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::unordered_set<std::string> all_codes;
  for (const auto& [member, codes] : codes_by_member) {
    EXPECT_EQ(codes.size(), 1u) << member << " holds " << codes.size() << " codes";
    all_codes.insert(codes.begin(), codes.end());
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(static_cast<std::int64_t>(all_codes.size()), kStockA + kStockB);
  EXPECT_EQ(static_cast<std::int64_t>(codes_by_member.size()), kStockA + kStockB);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "sku-a"}), std::to_string(kStockA));
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "sku-b"}), std::to_string(kStockB));
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-a"}), "0");

  // Clean stops hand back nothing (all gone) and leave no lease behind.
  for (auto& r : replicas) r->log.stop();
  EXPECT_EQ(redis_server.cli({"HLEN", "vd:{gd-redis}:leases"}), "0");
}

TEST(RedisClaimLog, RestartedReplicaSeesWhatWasIssuedAndStopReturnsLeases) {
  TempDir dir;
  RedisServer redis_server(dir);
  std::string code;
  {
    Replica r(redis_server.url(), "before-restart", campaign(50, 50));
    ASSERT_TRUE(r.created);
    const ClaimResult c = r.claim("member-7");
    ASSERT_EQ(c.outcome, Outcome::kOk);
    code = c.voucher->code();
    r.log.stop();
  }
  // Stopped cleanly: 99 units back in the pool, one issued, no leases.
  const std::int64_t pool = std::stoll(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-a"})) +
                            std::stoll(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-b"}));
  EXPECT_EQ(pool, 99);
  EXPECT_EQ(redis_server.cli({"HLEN", "vd:{gd-redis}:leases"}), "0");

  Replica again(redis_server.url(), "after-restart", campaign(50, 50));
  ASSERT_TRUE(again.created);  // same definition: fine
  const ClaimResult repeat = again.claim("member-7");
  EXPECT_EQ(repeat.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(repeat.voucher->code(), code);
  auto [found, v] = again.lookup(code);
  EXPECT_EQ(found, Outcome::kOk);

  // A different definition of the same campaign is refused.
  redis::RedisClaimLog other(Replica::make_options(redis_server.url(), "other"),
                             encode_campaign_definition);
  SystemClock clock;
  SecureRandom random;
  ClaimEngine engine(other, clock, random, kSecret);
  auto created = engine.create_campaign(campaign(60, 50));
  ASSERT_FALSE(created.has_value());
  EXPECT_EQ(created.error().outcome, Outcome::kCampaignExists);
}

TEST(RedisClaimLog, ReplacesAStoredDefinitionOnlyBeforeItOpensAndWhenAsked) {
  TempDir dir;
  RedisServer redis_server(dir);
  const UnixMicros tomorrow = SystemClock{}.now_us() + kMicrosPerDay;
  CampaignSpec first = campaign(10, 10);
  first.starts_at_us = tomorrow;
  {
    Replica r(redis_server.url(), "first", first);
    ASSERT_TRUE(r.created);
  }
  CampaignSpec second = first;
  second.skus[0].stock = 25;
  const std::string def_before = redis_server.cli({"GET", "vd:{gd-redis}:def"});

  SystemClock clock;
  SecureRandom random;
  {
    // Not asked to replace: refused, and Redis keeps the first definition.
    redis::RedisClaimLog log(Replica::make_options(redis_server.url(), "keep"),
                             encode_campaign_definition);
    ClaimEngine engine(log, clock, random, kSecret);
    auto refused = engine.create_campaign(second);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().outcome, Outcome::kCampaignExists);
    EXPECT_NE(refused.error().field.message.find("replace_before_open"), std::string::npos)
        << refused.error().field.message;
    EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:def"}), def_before);
    EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-a"}), "10");
  }
  {
    // Asked, and not open yet: replaced, with the new stock.
    redis::RedisClaimLog log(Replica::make_options(redis_server.url(), "replace"),
                             encode_campaign_definition);
    ClaimEngine engine(log, clock, random, kSecret);
    ASSERT_TRUE(engine.create_campaign(second, StoredDefinition::kReplaceBeforeOpen).has_value());
    EXPECT_NE(redis_server.cli({"GET", "vd:{gd-redis}:def"}), def_before);
    EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-a"}), "25");
    EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-b"}), "10");
  }
  // Once it has opened (by Redis's clock), no replacement.
  EXPECT_EQ(redis_server.cli({"SET", "vd:{gd-redis}:opens", "1"}), "OK");
  {
    CampaignSpec third = second;
    third.skus[1].stock = 99;
    redis::RedisClaimLog log(Replica::make_options(redis_server.url(), "late"),
                             encode_campaign_definition);
    ClaimEngine engine(log, clock, random, kSecret);
    auto refused = engine.create_campaign(third, StoredDefinition::kReplaceBeforeOpen);
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().field.message.find("has opened"), std::string::npos)
        << refused.error().field.message;
    EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-b"}), "10");
  }
}

struct WaitedRedeem final : RedeemOp {
  std::promise<std::pair<Outcome, VoucherPtr>> done;
  void on_redeem_done(Outcome o, VoucherPtr v, bool, const char*) override {
    done.set_value({o, std::move(v)});
  }
};

// An APPLY_THEN_DRAW campaign whose window ended an hour before `now` (so
// its allocation is due).
CampaignSpec ended_apply_campaign(UnixMicros now) {
  CampaignSpec spec = campaign(2, 1);
  spec.mode = CampaignMode::kApplyThenDraw;
  spec.starts_at_us = now - 2 * 3600 * kMicrosPerSecond;
  spec.ends_at_us = now - 3600 * kMicrosPerSecond;
  spec.allocation_at_us = spec.ends_at_us;
  return spec;
}

// Applications of cat, ann and bob to "gd-redis" as apply.lua stores them,
// applied at 1,700,000,000 s, each preferring `preferences` (SKU indexes).
void store_applications(const RedisServer& redis_server, const std::string& preferences) {
  for (const char* member : {"cat", "ann", "bob"}) {
    ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:apps", member,
                                "1700000000000\x1f"
                                "r\x1f" +
                                    preferences}),
              "1");
  }
}

// A replica serving `spec`, with an allocation lease of `lease`.
struct ApplyReplica {
  ApplyReplica(const std::string& url, const std::string& id, std::chrono::milliseconds lease,
               CampaignSpec spec)
      : log(options(url, id, lease), encode_campaign_definition),
        engine(log, clock, random, kSecret) {
    log.start();
    auto created = engine.create_campaign(std::move(spec));
    if (created) served = &(*created)->spec();
  }
  ~ApplyReplica() { log.stop(); }
  static redis::ClaimLogOptions options(const std::string& url, const std::string& id,
                                        std::chrono::milliseconds lease) {
    redis::ClaimLogOptions o = Replica::make_options(url, id);
    o.allocation_lease = lease;
    return o;
  }
  SystemClock clock;
  SecureRandom random;
  redis::RedisClaimLog log;
  ClaimEngine engine;
  const CampaignSpec* served = nullptr;
};

TEST(RedisClaimLog, AnAllocationTurnIsHandedOnAtStopAndAReadEndsWhenItPasses) {
  TempDir dir;
  RedisServer redis_server(dir);
  store_applications(redis_server, "0");
  // a takes the turn (the allocation begins: three applications frozen),
  // reads them, and stops: its turn is handed on at once.
  const CampaignSpec spec = ended_apply_campaign(SystemClock{}.now_us());
  auto a = std::make_unique<ApplyReplica>(redis_server.url(), "a", std::chrono::seconds(10), spec);
  ASSERT_NE(a->served, nullptr);
  auto turn = a->log.take_allocation(*a->served, "a");
  ASSERT_TRUE(turn.has_value()) << turn.error().message;
  EXPECT_EQ(turn->kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(turn->epoch, 1);
  EXPECT_EQ(turn->total, 3);
  auto read = a->log.read_applications(*a->served, *turn);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  ASSERT_EQ(read->size(), 3u);
  EXPECT_EQ((*read)[0].member_id, "ann");  // ordered by member
  EXPECT_EQ((*read)[2].member_id, "cat");
  EXPECT_EQ((*read)[1].preferred, std::vector<std::uint32_t>{0});
  a.reset();
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:alloc", "beat"}), "0");
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:alloc", "owner"}), "a");

  // b takes it over at once, though a's lease would still run for seconds.
  // b renews its turn after every page it reads (a lease of 0 ms); when d
  // takes the turn meanwhile, b's read ends, naming why.
  ApplyReplica b(redis_server.url(), "b", std::chrono::milliseconds(0), spec);
  ASSERT_NE(b.served, nullptr);
  auto b_turn = b.log.take_allocation(*b.served, "b");
  ASSERT_TRUE(b_turn.has_value()) << b_turn.error().message;
  EXPECT_EQ(b_turn->kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(b_turn->epoch, 2);
  ApplyReplica d(redis_server.url(), "d", std::chrono::milliseconds(0), spec);
  ASSERT_NE(d.served, nullptr);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto d_turn = d.log.take_allocation(*d.served, "d");
  ASSERT_TRUE(d_turn.has_value()) << d_turn.error().message;
  EXPECT_EQ(d_turn->epoch, 3);
  auto cut = b.log.read_applications(*b.served, *b_turn);
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().kind, StoreErrorKind::kUnavailable);
  EXPECT_NE(cut.error().message.find("while its applications were read"), std::string::npos)
      << cut.error().message;
}

TEST(RedisClaimLog, TheExportReadsEveryApplicationWithWhatItGotOrderedByMember) {
  TempDir dir;
  RedisServer redis_server(dir);
  store_applications(redis_server, "1,0");
  const CampaignSpec spec = ended_apply_campaign(SystemClock{}.now_us());
  ApplyReplica replica(redis_server.url(), "a", std::chrono::seconds(10), spec);
  ASSERT_NE(replica.served, nullptr);
  auto read = [&] {
    auto got = replica.log.application_outcomes(*replica.served);
    EXPECT_TRUE(got.has_value()) << got.error().message;
    return got.value_or(ApplicationOutcomes{});
  };
  // Not begun: every application, by member, none with a SKU.
  ApplicationOutcomes before = read();
  EXPECT_FALSE(before.allocation_done);
  ASSERT_EQ(before.outcomes.size(), 3u);
  EXPECT_EQ(before.outcomes[0].application,
            (ApplicationEntry{"ann", {1, 0}, 1'700'000'000'000'000}));
  EXPECT_EQ(before.outcomes[1].application.member_id, "bob");
  EXPECT_EQ(before.outcomes[2].application.member_id, "cat");
  for (const ApplicationOutcome& o : before.outcomes) EXPECT_EQ(o.sku, kNoSku);
  // A winner written after the state was read as not begun is left for the
  // next export (the applications read may miss one that came meanwhile).
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:won", "bob", "1"}), "1");
  for (const ApplicationOutcome& o : read().outcomes) EXPECT_EQ(o.sku, kNoSku);
  // Running, bob written: bob's SKU; the rest are still to come.
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:alloc", "state", "running"}), "1");
  ApplicationOutcomes running = read();
  EXPECT_FALSE(running.allocation_done);
  EXPECT_EQ(running.outcomes[1].sku, 1u);
  EXPECT_EQ(running.outcomes[0].sku, kNoSku);
  // Done: the rest won nothing.
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:alloc", "state", "done"}), "0");
  EXPECT_TRUE(read().allocation_done);
  // A store that does not hold together is an error naming what is wrong.
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:won", "zed", "0"}), "1");
  auto stray = replica.log.application_outcomes(*replica.served);
  ASSERT_FALSE(stray.has_value());
  EXPECT_EQ(stray.error().kind, StoreErrorKind::kBadReply);
  EXPECT_EQ(stray.error().message,
            "vd:{gd-redis}:won holds 1 winners without an application in vd:{gd-redis}:apps");
  ASSERT_EQ(redis_server.cli({"HDEL", "vd:{gd-redis}:won", "zed"}), "1");
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:won", "bob", "7"}), "0");
  auto unreadable = replica.log.application_outcomes(*replica.served);
  ASSERT_FALSE(unreadable.has_value());
  EXPECT_EQ(unreadable.error().message,
            "unreadable SKU index \"7\" of \"bob\" in vd:{gd-redis}:won");
  ASSERT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:alloc", "state", "paused"}), "0");
  auto odd_state = replica.log.application_outcomes(*replica.served);
  ASSERT_FALSE(odd_state.has_value());
  EXPECT_EQ(odd_state.error().message, "unexpected reply reading vd:{gd-redis}:alloc: paused");
}

TEST(RedisClaimLog, RedeemScriptRefusesExpiredAndCancelledVouchersAndKeepsTheRecord) {
  TempDir dir;
  RedisServer redis_server(dir);
  FakeClock clock(SystemClock{}.now_us());
  SecureRandom random;
  redis::RedisClaimLog log(Replica::make_options(redis_server.url(), "clocked"),
                           encode_campaign_definition);
  log.start();
  ClaimEngine engine(log, clock, random, kSecret);
  CampaignSpec spec = campaign(10, 10);
  spec.voucher_valid_days = 1;
  ASSERT_TRUE(engine.create_campaign(spec).has_value());
  auto claim = [&](const std::string& member) {
    for (int attempt = 0; attempt < 2000; ++attempt) {
      WaitedClaim op;
      op.campaign_id = "gd-redis";
      op.member_id = member;
      auto f = op.done.get_future();
      engine.claim(op);
      ClaimResult r = f.get();
      if (r.outcome != Outcome::kStockRefilling && r.outcome != Outcome::kLogUnavailable) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return ClaimResult{Outcome::kStockRefilling, nullptr, nullptr};
  };
  auto redeem = [&](const std::string& code, const std::string& request) {
    WaitedRedeem op;
    op.code = code;
    op.site_id = "site-1";
    op.request_id = request;
    auto f = op.done.get_future();
    engine.redeem(op);
    return f.get();
  };
  const ClaimResult a = claim("member-a");
  const ClaimResult b = claim("member-b");
  ASSERT_EQ(a.outcome, Outcome::kOk);
  ASSERT_EQ(b.outcome, Outcome::kOk);

  // a: redeemed now; the record in Redis says where, when and by whom.
  auto [ok, redeemed] = redeem(std::string(a.voucher->code()), "desk-1");
  ASSERT_EQ(ok, Outcome::kOk);
  const VoucherPtr stored = redis::decode_voucher(
      "gd-redis", a.voucher->code().view(),
      redis_server.cli({"GET", "vd:{gd-redis}:v:" + std::string(a.voucher->code())}));
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->state(), VoucherState::kRedeemed);
  EXPECT_EQ(stored->redeemed_site_id(), "site-1");
  EXPECT_EQ(stored->redeemed_at_us(), clock.now_us());
  EXPECT_EQ(stored->redeem_request_id(), "desk-1");
  EXPECT_EQ(stored->member_id(), "member-a");

  // b: a day later it has expired; nothing is written.
  clock.advance_us(kMicrosPerDay);
  const std::string before =
      redis_server.cli({"GET", "vd:{gd-redis}:v:" + std::string(b.voucher->code())});
  EXPECT_EQ(redeem(std::string(b.voucher->code()), "desk-2").first, Outcome::kVoucherExpired);
  EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:v:" + std::string(b.voucher->code())}), before);
  // A redeemed voucher stays redeemed after its expiry: a retry still gets OK.
  EXPECT_EQ(redeem(std::string(a.voucher->code()), "desk-1").first, Outcome::kOk);
  // Stats count b as expired (a is redeemed) once its minute has passed.
  const CampaignSpec& stored_spec = engine.find_campaign("gd-redis")->spec();
  clock.advance_us(2 * 60 * kMicrosPerSecond);
  auto expired = log.expired_counts(stored_spec, clock.now_us());
  ASSERT_TRUE(expired.has_value()) << expired.error().message;
  EXPECT_EQ((*expired)[0] + (*expired)[1], 1);
  auto before_expiry = log.expired_counts(stored_spec, clock.now_us() - 2 * kMicrosPerDay);
  ASSERT_TRUE(before_expiry.has_value());
  EXPECT_EQ((*before_expiry)[0] + (*before_expiry)[1], 0);
  clock.advance_us(-2 * 60 * kMicrosPerSecond);

  // A cancelled voucher (state digit 4) is refused.
  clock.advance_us(-kMicrosPerDay);
  EXPECT_EQ(
      redis_server.cli({"SETRANGE", "vd:{gd-redis}:v:" + std::string(b.voucher->code()), "0", "4"}),
      std::to_string(before.size()));
  EXPECT_EQ(redeem(std::string(b.voucher->code()), "desk-2").first, Outcome::kVoucherCancelled);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:redeemed", a.voucher->sku_id()}), "1");
  log.stop();
}

TEST(RedisClaimLog, RedisDownMeansUnavailableThenRecovers) {
  TempDir dir;
  RedisServer redis_server(dir);
  const std::string url = redis_server.url();
  redis_server.stop();

  Replica r(url, "while-down", campaign(10, 10));
  ASSERT_TRUE(r.created);  // registered later, once Redis is up
  WaitedClaim op;
  op.campaign_id = "gd-redis";
  op.member_id = "early-bird";
  auto f = op.done.get_future();
  r.engine.claim(op);
  const Outcome early = f.get().outcome;
  EXPECT_TRUE(early == Outcome::kStockRefilling || early == Outcome::kLogUnavailable)
      << outcome_name(early);
  EXPECT_FALSE(r.log.connected());

  redis_server.start();
  // Nobody repairs anything: the log reconnects on its own, and then the
  // member's next press is served at once (it waits for the first lease).
  for (int i = 0; i < 500 && !r.log.connected(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(r.log.connected());
  WaitedClaim again;
  again.campaign_id = "gd-redis";
  again.member_id = "early-bird";
  auto g = again.done.get_future();
  r.engine.claim(again);
  const ClaimResult later = g.get();
  ASSERT_EQ(later.outcome, Outcome::kOk) << outcome_name(later.outcome);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", later.voucher->sku_id()}), "1");
}

TEST(RedisClaimLog, LeasesOfAReplicaThatStoppedBeatingComeBackWithoutAnOperator) {
  TempDir dir;
  RedisServer redis_server(dir);
  {
    // The campaign as a first replica stored it (registered, never started).
    SystemClock clock;
    SecureRandom random;
    redis::RedisClaimLog first(Replica::make_options(redis_server.url(), "dead-replica"),
                               encode_campaign_definition);
    ClaimEngine engine(first, clock, random, kSecret);
    ASSERT_TRUE(engine.create_campaign(campaign(100, 0)).has_value());
  }
  // It leased 30 units and died: by hand, its beat 10 s old.
  EXPECT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:stock", "sku-a", "70"}), "0");
  EXPECT_EQ(redis_server.cli({"HINCRBY", "vd:{gd-redis}:leases", "dead-replica|sku-a", "30"}),
            "30");
  EXPECT_EQ(redis_server.cli({"HINCRBY", "vd:{gd-redis}:leased", "sku-a", "30"}), "30");
  const std::string ten_s_ago = std::to_string(SystemClock{}.now_us() / 1000 - 10'000);
  EXPECT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:alive", "dead-replica", ten_s_ago}), "1");
  Replica live(redis_server.url(), "live", campaign(100, 0));
  ASSERT_TRUE(live.created);
  // Nobody reconciles: the live replica's first beat takes the dead one's
  // lease back, and every member is served at the first press: 100 packs,
  // then SOLD_OUT.
  auto press_once = [&](const std::string& member) {
    WaitedClaim op;
    op.campaign_id = "gd-redis";
    op.member_id = member;
    auto f = op.done.get_future();
    live.engine.claim(op);
    return f.get().outcome;
  };
  int ok = 0;
  for (int m = 0; m < 100; ++m) {
    const Outcome o = press_once("m-" + std::to_string(m));
    EXPECT_EQ(o, Outcome::kOk) << "member " << m << ": " << outcome_name(o);
    if (o == Outcome::kOk) ++ok;
  }
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(press_once("m-100"), Outcome::kSoldOut);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "sku-a"}), "100");
  EXPECT_EQ(redis_server.cli({"HEXISTS", "vd:{gd-redis}:leases", "dead-replica|sku-a"}), "0");
  EXPECT_EQ(redis_server.cli({"HEXISTS", "vd:{gd-redis}:alive", "dead-replica"}), "0");
  const LeaseHealth health = live.log.lease_health("gd-redis");
  EXPECT_EQ(health.reclaimed_units_total, 30);
  EXPECT_EQ(health.reclaimed_replicas_total, 1);
  // The manual tool finds nothing left to do.
  auto returned = live.log.reconcile(live.engine.find_campaign("gd-redis")->spec());
  ASSERT_TRUE(returned.has_value()) << returned.error().message;
  EXPECT_EQ((*returned)[0], 0);
}

TEST(RedisClaimLog, ReconcileGivesBackTheLeasesOfReplicasWhoseBeatLapsed) {
  TempDir dir;
  RedisServer redis_server(dir);
  Replica live(redis_server.url(), "live", campaign(100, 0));
  ASSERT_TRUE(live.created);
  // The beat of a replica that leased 30 units lapsed an instant ago; the
  // manual tool (the keepers' own script) gives its units back at once.
  EXPECT_FALSE(redis_server.cli({"HINCRBY", "vd:{gd-redis}:stock", "sku-a", "-30"}).empty());
  EXPECT_EQ(redis_server.cli({"HINCRBY", "vd:{gd-redis}:leases", "gone|sku-a", "30"}), "30");
  EXPECT_FALSE(redis_server.cli({"HINCRBY", "vd:{gd-redis}:leased", "sku-a", "30"}).empty());
  auto returned = live.log.reconcile(live.engine.find_campaign("gd-redis")->spec());
  ASSERT_TRUE(returned.has_value()) << returned.error().message;
  // The live replica's own beat may have taken it back first: either way,
  // exactly once, and every unit is accounted for.
  const std::int64_t by_tool = (*returned)[0];
  const std::int64_t by_beat = live.log.lease_health("gd-redis").reclaimed_units_total;
  EXPECT_EQ(by_tool + by_beat, 30);
  EXPECT_EQ(redis_server.cli({"HEXISTS", "vd:{gd-redis}:leases", "gone|sku-a"}), "0");
  const std::int64_t pool = std::stoll(redis_server.cli({"HGET", "vd:{gd-redis}:stock", "sku-a"}));
  const std::int64_t mine =
      std::stoll("0" + redis_server.cli({"HGET", "vd:{gd-redis}:leases", "live|sku-a"}));
  EXPECT_EQ(pool + mine, 100);
}

// ListReplicas' read: every replica that beats or holds leases, its age by
// Redis's clock, lapsed past the lease timeout (or never beaten), its units
// per SKU. Set up by hand, with no keeper running to take anything back.
TEST(RedisClaimLog, ReadReplicasShowsBeatsLeasesAndWhoLapsed) {
  TempDir dir;
  RedisServer redis_server(dir);
  redis::ClaimLogOptions options = Replica::make_options(redis_server.url(), "reader");
  options.lease_timeout = std::chrono::milliseconds(3000);
  redis::RedisClaimLog log(std::move(options), encode_campaign_definition);
  const CampaignSpec spec = campaign(100, 100);
  const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  for (auto [replica, beat] : {std::pair{"live", now_ms}, std::pair{"gone", now_ms - 10'000}}) {
    EXPECT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:alive", replica, std::to_string(beat)}),
              "1");
  }
  for (auto [field, units] : {std::pair{"live|sku-a", "3"}, std::pair{"gone|sku-b", "7"},
                              std::pair{"gone|sku-a", "1"}, std::pair{"silent|sku-a", "2"}}) {
    EXPECT_EQ(redis_server.cli({"HSET", "vd:{gd-redis}:leases", field, units}), "1");
  }
  auto read = log.read_replicas(spec);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  ASSERT_EQ(read->size(), 3u);
  const ReplicaLeases& gone = (*read)[0];
  EXPECT_EQ(gone.replica_id, "gone");
  EXPECT_TRUE(gone.lapsed);
  EXPECT_EQ(gone.last_beat_ms, now_ms - 10'000);
  EXPECT_GE(gone.beat_age_ms, 9'000);
  EXPECT_EQ(gone.leased, (std::vector<std::int64_t>{1, 7}));
  const ReplicaLeases& live = (*read)[1];
  EXPECT_EQ(live.replica_id, "live");
  EXPECT_FALSE(live.lapsed);
  EXPECT_LT(live.beat_age_ms, 3'000);
  EXPECT_EQ(live.leased, (std::vector<std::int64_t>{3, 0}));
  const ReplicaLeases& silent = (*read)[2];
  EXPECT_EQ(silent.replica_id, "silent");
  EXPECT_TRUE(silent.lapsed);  // holds a lease, never beat
  EXPECT_FALSE(silent.last_beat_ms.has_value());
  EXPECT_EQ(silent.leased, (std::vector<std::int64_t>{2, 0}));
  // Reading changed nothing.
  EXPECT_EQ(redis_server.cli({"HLEN", "vd:{gd-redis}:leases"}), "4");
}

struct WaitedCancel final : CancelOp {
  std::string code_text;
  std::promise<std::pair<Outcome, VoucherPtr>> done;
  void on_cancel_done(Outcome o, VoucherPtr v) override { done.set_value({o, std::move(v)}); }
};

struct WaitedList final : MemberVouchersOp {
  std::promise<std::pair<Outcome, std::vector<VoucherPtr>>> done;
  void on_member_vouchers_done(Outcome o, std::vector<VoucherPtr> v, UnixMicros) override {
    done.set_value({o, std::move(v)});
  }
};

std::pair<Outcome, VoucherPtr> cancel(ClaimEngine& engine, const std::string& code) {
  WaitedCancel op;
  op.code_text = code;
  op.code = op.code_text;
  auto f = op.done.get_future();
  engine.cancel(op);
  return f.get();
}

std::pair<Outcome, VoucherPtr> redeem(ClaimEngine& engine, const std::string& code,
                                      const std::string& request) {
  WaitedRedeem op;
  op.code = code;
  op.site_id = "site-1";
  op.request_id = request;
  auto f = op.done.get_future();
  engine.redeem(op);
  return f.get();
}

std::pair<Outcome, std::vector<VoucherPtr>> list(ClaimEngine& engine, const std::string& member) {
  WaitedList op;
  op.member_id = member;
  op.campaign_id = "gd-redis";
  auto f = op.done.get_future();
  engine.list_member_vouchers(op);
  return f.get();
}

std::set<std::string> codes_of(const std::vector<VoucherPtr>& vouchers) {
  std::set<std::string> out;
  for (const VoucherPtr& v : vouchers) out.insert(std::string(v->code()));
  return out;
}

// The number of voucher records stored.
std::size_t records(const RedisServer& redis_server) {
  const std::string keys = redis_server.cli({"KEYS", "vd:{gd-redis}:v:*"});
  if (keys.empty()) return 0;
  return static_cast<std::size_t>(std::count(keys.begin(), keys.end(), '\n')) + 1;
}

std::int64_t number(const std::string& s) { return s.empty() ? 0 : std::stoll(s); }

TEST(RedisClaimLog, ARepeatOnAnotherReplicaIsAnsweredWithTheHeldRecordAsItIsNow) {
  TempDir dir;
  RedisServer redis_server(dir);
  CampaignSpec spec = campaign(20, 20);
  spec.per_member_limit = 3;
  Replica a(redis_server.url(), "replica-a", spec);
  Replica b(redis_server.url(), "replica-b", spec);
  ASSERT_TRUE(a.created && b.created);

  const ClaimResult first = a.claim("member-5", "req-1");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  ASSERT_EQ(redeem(a.engine, std::string(first.voucher->code()), "desk-1").first, Outcome::kOk);

  // b never saw req-1: its claim script finds it held, names the code, and
  // the claim goes again declaring the record: the record as it is now.
  const ClaimResult again = b.claim("member-5", "req-1");
  ASSERT_EQ(again.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(again.voucher->code(), first.voucher->code());
  EXPECT_EQ(again.voucher->member_id(), "member-5");
  EXPECT_EQ(again.voucher->state(), VoucherState::kRedeemed);
  EXPECT_EQ(again.voucher->redeemed_site_id(), "site-1");

  // Nothing was written for the repeat.
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:m:member-5", "n"}), "1");
  EXPECT_EQ(number(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "sku-a"})) +
                number(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "sku-b"})),
            1);
  EXPECT_EQ(records(redis_server), 1u);
}

TEST(RedisClaimLog, ACancellationOnAReplicaThatNeverSawTheVoucherFreesTheAllowance) {
  TempDir dir;
  RedisServer redis_server(dir);
  Replica a(redis_server.url(), "replica-a", campaign(20, 20));
  Replica b(redis_server.url(), "replica-b", campaign(20, 20));
  ASSERT_TRUE(a.created && b.created);

  const ClaimResult claimed = a.claim("member-7");
  ASSERT_EQ(claimed.outcome, Outcome::kOk);
  const std::string code = std::string(claimed.voucher->code());
  const std::string sku = claimed.voucher->sku_id();

  // The first call learns the member (and writes nothing); the second,
  // declaring the member's allowance key, cancels.
  auto [outcome, voucher] = cancel(b.engine, code);
  ASSERT_EQ(outcome, Outcome::kOk);
  ASSERT_NE(voucher, nullptr);
  EXPECT_EQ(voucher->state(), VoucherState::kCancelled);
  EXPECT_EQ(voucher->member_id(), "member-7");

  const std::string stored = redis_server.cli({"GET", "vd:{gd-redis}:v:" + code});
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(stored[0], '4');
  EXPECT_EQ(redis_server.cli({"EXISTS", "vd:{gd-redis}:m:member-7"}), "0");
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", sku}), "0");
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:issued", "_members"}), "0");
  // The unit is back in the pool (which the replicas lease from meanwhile):
  // pool + leased + issued is the SKU's stock, with nothing issued.
  EXPECT_EQ(number(redis_server.cli({"HGET", "vd:{gd-redis}:stock", sku})) +
                number(redis_server.cli({"HGET", "vd:{gd-redis}:leased", sku})),
            20);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:cancelled", sku}), "1");
  EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:returns"}), "1");
  EXPECT_EQ(redis_server.cli({"LINDEX", "vd:{gd-redis}:holders", "-1"}),
            "-8:member-7" + std::to_string(code.size()) + ":" + code + "1");

  // Again: cancelled before (the first call answers it; nothing moves).
  auto [twice, same] = cancel(b.engine, code);
  EXPECT_EQ(twice, Outcome::kOk);
  EXPECT_EQ(same->state(), VoucherState::kCancelled);
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:cancelled", sku}), "1");

  // The allowance is free: the member gets a new voucher (once a, which
  // issued the first, has read the cancellation in the holders feed).
  ClaimResult anew;
  EXPECT_TRUE(wait_until([&] {
    anew = a.claim("member-7");
    return anew.outcome == Outcome::kOk;
  }));
  ASSERT_EQ(anew.outcome, Outcome::kOk);
  EXPECT_NE(anew.voucher->code(), code);
}

TEST(RedisClaimLog, ACancellationThatKeepsTheAllowanceIsOneCall) {
  TempDir dir;
  RedisServer redis_server(dir);
  CampaignSpec spec = campaign(20, 20);
  spec.cancel_keeps_allowance = true;
  Replica a(redis_server.url(), "replica-a", spec);
  ASSERT_TRUE(a.created);
  const ClaimResult claimed = a.claim("member-8");
  ASSERT_EQ(claimed.outcome, Outcome::kOk);

  auto [outcome, voucher] = cancel(a.engine, std::string(claimed.voucher->code()));
  ASSERT_EQ(outcome, Outcome::kOk);
  EXPECT_EQ(voucher->state(), VoucherState::kCancelled);
  EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:m:member-8"}), claimed.voucher->code());
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:cancelled", claimed.voucher->sku_id()}), "1");
}

TEST(RedisScripts, TheCancelScriptWritesNothingUntilTheMembersKeyIsDeclared) {
  TempDir dir;
  RedisServer redis_server(dir);
  Replica a(redis_server.url(), "replica-a", campaign(20, 20));
  ASSERT_TRUE(a.created);
  const ClaimResult claimed = a.claim("member-8");
  ASSERT_EQ(claimed.outcome, Outcome::kOk);
  const std::string code = std::string(claimed.voucher->code());
  const std::string before = redis_server.cli({"GET", "vd:{gd-redis}:v:" + code});

  auto conn = redis_server.connect();
  ASSERT_TRUE(conn.has_value()) << conn.error();
  ASSERT_TRUE((*conn)->load(redis::cancel_script()).has_value());
  const CancelRequestView request{0, 0, /*keep_allowance=*/false, /*per_member_limit=*/1, true};
  for (const char* declared : {"", "someone-else"}) {
    auto reply = (*conn)->command(redis::cancel_command("gd-redis", code, request, declared));
    ASSERT_TRUE(reply.has_value());
    const redis::CancelReply answer = redis::parse_cancel_reply("gd-redis", code, *reply);
    EXPECT_EQ(answer.status, CancelStatus::kUnavailable) << declared;
    EXPECT_EQ(answer.member_key_of, "member-8") << declared;
    EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:v:" + code}), before) << declared;
    EXPECT_EQ(redis_server.cli({"GET", "vd:{gd-redis}:m:member-8"}), code) << declared;
    EXPECT_EQ(redis_server.cli({"EXISTS", "vd:{gd-redis}:cancelled"}), "0") << declared;
  }
  auto reply = (*conn)->command(redis::cancel_command("gd-redis", code, request, "member-8"));
  ASSERT_TRUE(reply.has_value());
  const redis::CancelReply answer = redis::parse_cancel_reply("gd-redis", code, *reply);
  EXPECT_EQ(answer.status, CancelStatus::kCancelled);
  EXPECT_TRUE(answer.member_key_of.empty());
  EXPECT_EQ(redis_server.cli({"EXISTS", "vd:{gd-redis}:m:member-8"}), "0");
}

TEST(RedisClaimLog, MyVouchersAreTheSameOnEveryReplica) {
  TempDir dir;
  RedisServer redis_server(dir);
  CampaignSpec spec = campaign(20, 20);
  spec.per_member_limit = 3;
  Replica a(redis_server.url(), "replica-a", spec);
  Replica b(redis_server.url(), "replica-b", spec);
  ASSERT_TRUE(a.created && b.created);
  const ClaimResult r1 = a.claim("member-9", "req-1");
  const ClaimResult r2 = a.claim("member-9", "req-2");
  ASSERT_EQ(r1.outcome, Outcome::kOk);
  ASSERT_EQ(r2.outcome, Outcome::kOk);
  const std::set<std::string> both{std::string(r1.voucher->code()),
                                   std::string(r2.voucher->code())};

  // a knows the codes (one call declares them); b does not (a second call).
  auto [on_a, from_a] = list(a.engine, "member-9");
  ASSERT_EQ(on_a, Outcome::kOk);
  EXPECT_EQ(codes_of(from_a), both);
  auto [on_b, from_b] = list(b.engine, "member-9");
  ASSERT_EQ(on_b, Outcome::kOk);
  EXPECT_EQ(codes_of(from_b), both);
  for (const VoucherPtr& v : from_b) EXPECT_EQ(v->member_id(), "member-9");
  auto [none, nothing] = list(b.engine, "member-none");
  ASSERT_EQ(none, Outcome::kOk);
  EXPECT_TRUE(nothing.empty());

  // A cancellation frees one: both replicas list the other only.
  ASSERT_EQ(cancel(b.engine, std::string(r1.voucher->code())).first, Outcome::kOk);
  EXPECT_EQ(codes_of(list(b.engine, "member-9").second),
            std::set<std::string>{std::string(r2.voucher->code())});
  EXPECT_EQ(codes_of(list(a.engine, "member-9").second),
            std::set<std::string>{std::string(r2.voucher->code())});
  EXPECT_EQ(redis_server.cli({"HGET", "vd:{gd-redis}:m:member-9", "n"}), "1");

  // The script itself: undeclared codes are named, and nothing else read.
  auto conn = redis_server.connect();
  ASSERT_TRUE(conn.has_value()) << conn.error();
  ASSERT_TRUE((*conn)->load(redis::member_vouchers_script()).has_value());
  const ClaimResult r3 = a.claim("member-9", "req-3");
  ASSERT_EQ(r3.outcome, Outcome::kOk);
  const std::vector<std::string> one{std::string(r2.voucher->code())};
  auto partial = (*conn)->command(redis::member_vouchers_command("gd-redis", "member-9", one));
  ASSERT_TRUE(partial.has_value());
  auto named = redis::parse_member_vouchers("gd-redis", *partial);
  ASSERT_TRUE(named.has_value());
  EXPECT_FALSE(named->listed);
  EXPECT_TRUE(named->vouchers.empty());
  EXPECT_EQ(
      std::set<std::string>(named->codes.begin(), named->codes.end()),
      (std::set<std::string>{std::string(r2.voucher->code()), std::string(r3.voucher->code())}));
  auto whole =
      (*conn)->command(redis::member_vouchers_command("gd-redis", "member-9", named->codes));
  ASSERT_TRUE(whole.has_value());
  auto listed = redis::parse_member_vouchers("gd-redis", *whole);
  ASSERT_TRUE(listed.has_value());
  EXPECT_TRUE(listed->listed);
  EXPECT_EQ(codes_of(listed->vouchers), (std::set<std::string>{std::string(r2.voucher->code()),
                                                               std::string(r3.voucher->code())}));
}

TEST(RedisRecords, HoldersFeedEntriesDecodeAndRefuseMalformedOnes) {
  std::vector<redis::HolderChange> out;
  ASSERT_TRUE(redis::decode_holders_entry("+3:abc+1:z-3:abc6:CODE010", out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].holds);
  EXPECT_EQ(out[0].member_id, "abc");
  EXPECT_EQ(out[1].member_id, "z");
  EXPECT_FALSE(out[2].holds);
  EXPECT_EQ(out[2].code, "CODE01");
  EXPECT_FALSE(out[2].none_left);
  out.clear();
  ASSERT_TRUE(redis::decode_holders_entry("-3:abc6:CODE011", out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].code, "CODE01");
  EXPECT_TRUE(out[0].none_left);
  for (const char* bad :
       {"x3:abc", "+3:ab", "+:abc", "+0:", "-3:abc5:CODE0", "-3:abc5:CODE02", "+99999:a"}) {
    out.clear();
    EXPECT_FALSE(redis::decode_holders_entry(bad, out)) << bad;
    EXPECT_TRUE(out.empty()) << bad;
  }
}

}  // namespace
}  // namespace voucherd::testing
