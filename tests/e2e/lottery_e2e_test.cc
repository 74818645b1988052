// lottery_e2e_test — LOTTERY campaigns on two real voucherd replicas sharing
// a real redis-server, over real gRPC: one seed and commitment for both, the
// daily draw limit and the prize limit held across replicas, retries
// answered with the same draw from either replica, and a crowd's draws that
// voucher-audit verifies from the revealed seed, while tampered exports are
// reported.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using SystemClock = std::chrono::system_clock;

// A LOTTERY campaign "lucky" of two SKUs at one site.
CampaignJson lottery_campaign(SystemClock::time_point starts, SystemClock::time_point ends,
                              int stock_a, int stock_b, double p, int draws_per_day) {
  return CampaignJson("lucky", "Lucky")
      .lottery(p, draws_per_day)
      .window(starts, ends)
      .spring_site()
      .sku("sku-a", "Day pass", 9'800, stock_a)
      .sku("sku-b", "Night pass", 19'800, stock_b);
}

// The calls of these tests, on campaign "lucky".
struct LuckyClient : Client {
  using Client::Client;
  grpc::Status draw(const std::string& member, const std::string& request,
                    v1::DrawResponse* out) const {
    auto reply = Client::draw("lucky", member, request);
    *out = std::move(reply.response);
    return reply.status;
  }
  v1::Campaign campaign() const {
    auto reply = get_campaign("lucky");
    EXPECT_TRUE(reply.ok());
    return reply.response;
  }
};

// Runs a command; returns its exit status and stdout.
int run(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::array<char, 4096> buf{};
  out->clear();
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) *out += buf.data();
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(LotteryEndToEnd, TwoReplicasShareTheSeedTheDailyLimitAndThePrizeLimit) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const auto now = SystemClock::now();
  const std::string campaigns =
      lottery_campaign(now - std::chrono::hours(1), now + std::chrono::hours(1), 600, 400, 1.0, 3)
          .write(dir, "lucky.json");
  VoucherdProcess a(dir, replica_args(redis, secret, campaigns));
  VoucherdProcess b(dir, replica_args(redis, secret, campaigns));
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);
  LuckyClient ca(a.target()), cb(b.target());

  // One commitment, published by both, and no seed before the end.
  const std::string commitment = ca.campaign().seed_commitment();
  EXPECT_EQ(commitment.size(), 64u);
  EXPECT_EQ(cb.campaign().seed_commitment(), commitment);
  {
    const grpc::Status st = ca.reveal_seed("lucky").status;
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(st.error_message().find("is not over"), std::string::npos) << st.error_message();
  }

  // p = 1: alice's first draw wins.
  v1::DrawResponse first;
  ASSERT_TRUE(ca.draw("alice", "a1", &first).ok());
  ASSERT_TRUE(first.won());
  EXPECT_EQ(first.draws_left_today(), 2);
  EXPECT_EQ(first.proof().rfind("draw 1, HMAC-SHA256 ", 0), 0u) << first.proof();
  // The retry, on the other replica: the same draw, nothing spent.
  v1::DrawResponse retry;
  ASSERT_TRUE(cb.draw("alice", "a1", &retry).ok());
  EXPECT_TRUE(retry.won());
  EXPECT_EQ(retry.voucher().code(), first.voucher().code());
  EXPECT_EQ(retry.proof(), first.proof());
  EXPECT_EQ(retry.draws_left_today(), 2);
  // Two more draws, one on each replica: lucky, but one prize per member.
  v1::DrawResponse second, third;
  ASSERT_TRUE(cb.draw("alice", "a2", &second).ok());
  EXPECT_FALSE(second.won());
  EXPECT_EQ(second.reason(), v1::NO_PRIZE_REASON_ALREADY_WON);
  EXPECT_EQ(second.draws_left_today(), 1);
  EXPECT_EQ(second.proof().rfind("draw 2, ", 0), 0u) << second.proof();
  ASSERT_TRUE(ca.draw("alice", "a3", &third).ok());
  EXPECT_EQ(third.reason(), v1::NO_PRIZE_REASON_ALREADY_WON);
  EXPECT_EQ(third.draws_left_today(), 0);
  // The fourth, on either replica: over the limit, saying when draws reset
  // (midnight in Shanghai).
  for (const LuckyClient* c : {&cb, &ca}) {
    v1::DrawResponse over;
    const grpc::Status st = c->draw("alice", "a4", &over);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(st.error_message().find("draws reset at "), std::string::npos) << st.error_message();
    EXPECT_NE(st.error_message().find("T00:00:00+08:00"), std::string::npos) << st.error_message();
  }

  // The prize is a voucher like any other, seen from either replica.
  {
    const auto v = cb.get_voucher(first.voucher().code());
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.response.member_id(), "alice");
    EXPECT_EQ(v.response.state(), v1::VOUCHER_STATE_ISSUED);
  }
  {
    const auto stats = cb.stats("lucky");
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats.response.issued(), 1);
    EXPECT_EQ(stats.response.remaining(), 999);
    EXPECT_EQ(stats.response.members(), 1);
  }
  // Modes: no Claim on a lottery.
  {
    const grpc::Status st = ca.claim("lucky", "bob").status;
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(st.error_message().find("use Draw"), std::string::npos) << st.error_message();
  }
  // Bad input names what is wrong.
  v1::DrawResponse bad;
  const grpc::Status no_request = ca.draw("bob", "", &bad);
  EXPECT_EQ(no_request.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(no_request.error_message().find("request_id"), std::string::npos);
}

TEST(LotteryEndToEnd, ACrowdOnTwoReplicasKeepsTheInvariantsAndTheAuditVerifiesIt) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  VoucherdProcess a(dir, replica_args(redis, secret));
  VoucherdProcess b(dir, replica_args(redis, secret));
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);
  // The 10 s window starts once both replicas are up (however slow their
  // start was): created on one, served by the other from the store.
  const auto starts = SystemClock::now() - std::chrono::seconds(2);
  const auto ends = starts + std::chrono::seconds(10);
  const auto created =
      Client(a.target()).create_campaign(lottery_campaign(starts, ends, 25, 15, 0.3, 5).message());
  ASSERT_TRUE(created.ok()) << created.status.error_message();
  ASSERT_TRUE(wait_until([&] { return Client(b.target()).get_campaign("lucky").ok(); }))
      << "the other replica never served the campaign";

  // Four threads, two per replica; each member draws up to five times,
  // alternating replicas, until the window closes.
  std::mutex mu;
  std::map<std::string, std::string> code_by_member;
  std::set<std::string> codes;
  int draws = 0, wins = 0, paused = 0, members_with_two = 0, errors = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      LuckyClient mine(t % 2 == 0 ? a.target() : b.target());
      LuckyClient other(t % 2 == 0 ? b.target() : a.target());
      for (int round = 0; round < 5; ++round) {
        for (int m = 0; m < 40; ++m) {
          if (SystemClock::now() >= ends - std::chrono::milliseconds(500)) return;
          const std::string member = "m" + std::to_string(t) + "-" + std::to_string(m);
          v1::DrawResponse r;
          const LuckyClient& c = (round % 2 == 0) ? mine : other;
          const grpc::Status st = c.draw(member, "r" + std::to_string(round), &r);
          std::lock_guard lock(mu);
          if (!st.ok()) {
            ++errors;
            continue;
          }
          ++draws;
          if (r.reason() == v1::NO_PRIZE_REASON_PRIZES_PAUSED_UNTIL_NEXT_RELEASE) ++paused;
          if (!r.won()) continue;
          ++wins;
          if (!code_by_member.emplace(member, r.voucher().code()).second) ++members_with_two;
          codes.insert(r.voucher().code());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(members_with_two, 0);
  EXPECT_EQ(static_cast<int>(codes.size()), wins);
  EXPECT_LE(wins, 40);
  EXPECT_GT(draws, 200);
  EXPECT_GT(paused, 0);  // prizes are released over the window, not all at once

  // After the end: the seed, the export, and the audit.
  // Once the window has closed (the seed is revealed from then on).
  ASSERT_TRUE(wait_until([&] { return Client(a.target()).reveal_seed("lucky").ok(); },
                         std::chrono::seconds(30)))
      << "the seed was never revealed after the end";
  const std::filesystem::path out = dir.path() / "audit";
  std::string text;
  ASSERT_EQ(run(std::string(VOUCHERCTL_BINARY) + " export-draws --target " + a.target() +
                    " --campaign lucky --out " + out.string() + " 2>&1",
                &text),
            0)
      << text;
  ASSERT_TRUE(std::filesystem::exists(out / "seed.txt")) << text;
  const std::string audit = std::string(VOUCHER_AUDIT_BINARY) + " --campaign " +
                            (out / "campaign.json").string() + " --seed-file " +
                            (out / "seed.txt").string() + " --draws ";
  ASSERT_EQ(run(audit + (out / "draws.jsonl").string(), &text), 0) << text;
  EXPECT_EQ(text, "all " + std::to_string(draws) + " draws verified\n");
  const std::string log = read_text(out / "draws.jsonl");
  std::size_t won_lines = 0;
  for (std::size_t at = log.find("\"won\":true"); at != std::string::npos;
       at = log.find("\"won\":true", at + 1)) {
    ++won_lines;
  }
  EXPECT_EQ(won_lines, static_cast<std::size_t>(wins));

  // Tampering is reported: one outcome, one member id, one seed byte.
  auto tampered = [&](std::string from, std::string to) {
    std::string copy = log;
    const std::size_t at = copy.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    copy.replace(at, from.size(), to);
    const std::filesystem::path path = dir.write("tampered.jsonl", copy);
    std::string said;
    const int status = run(audit + path.string(), &said);
    return std::pair{status, said};
  };
  auto [flip_status, flip_text] =
      tampered("\"reason\":\"NO_PRIZE_REASON_UNLUCKY\"",
               "\"reason\":\"NO_PRIZE_REASON_PRIZES_PAUSED_UNTIL_NEXT_RELEASE\"");
  EXPECT_EQ(flip_status, 1) << flip_text;
  EXPECT_NE(flip_text.find("the rules say UNLUCKY"), std::string::npos) << flip_text;
  auto [member_status, member_text] = tampered("\"member_id\":\"m1-7\"", "\"member_id\":\"m1-7x\"");
  EXPECT_EQ(member_status, 1) << member_text;
  std::string seed = read_text(out / "seed.txt");
  seed[10] = seed[10] == '0' ? '1' : '0';
  std::string said;
  EXPECT_EQ(
      run(std::string(VOUCHER_AUDIT_BINARY) + " --campaign " + (out / "campaign.json").string() +
              " --seed " + seed.substr(0, 64) + " --draws " + (out / "draws.jsonl").string(),
          &said),
      1);
  EXPECT_NE(said.find("does not match the campaign's commitment"), std::string::npos) << said;
}

}  // namespace
}  // namespace voucherd::testing
