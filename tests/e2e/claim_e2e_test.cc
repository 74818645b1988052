// claim_e2e_test — proves, against a real voucherd process over real gRPC on
// loopback, that a first-come campaign of 59,000 packs hands out exactly
// 59,000 vouchers to a crowd of 100,000+ members pressing repeatedly from
// many threads (all codes distinct, no member with two), that every kind of
// bad input gets its documented status code and reason without changing
// stored state, and that the server is healthy afterwards and exits 0 on
// SIGTERM; and that a member pressing faster than the press limit is told
// when to press again.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/replicas.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;

constexpr const char* kCampaign = "guangdong-2024";
constexpr std::int64_t kStock = 59'000;

// The calls of these tests, each a status with the response written to `out`.
class ClaimClient {
 public:
  explicit ClaimClient(const std::string& target) : client_(target) {}

  grpc::Status claim(const std::string& campaign, const std::string& member, const std::string& sku,
                     const std::string& request_id, v1::ClaimResponse* out) {
    return into(client_.claim(campaign, member, sku, request_id), out);
  }
  grpc::Status get_voucher(const std::string& code, v1::Voucher* out) {
    return into(client_.get_voucher(code), out);
  }
  grpc::Status create(const v1::Campaign& c, v1::Campaign* out) {
    return into(client_.create_campaign(c), out);
  }
  grpc::Status stats(const std::string& campaign, v1::CampaignStats* out) {
    return into(client_.stats(campaign), out);
  }
  grpc::Status get_campaign(const std::string& campaign, v1::Campaign* out) {
    return into(client_.get_campaign(campaign), out);
  }

 private:
  template <typename Response>
  static grpc::Status into(Reply<Response> reply, Response* out) {
    *out = std::move(reply.response);
    return reply.status;
  }
  Client client_;
};

// A small valid campaign whose window is open now (from a minute ago to an
// hour from now).
v1::Campaign small_campaign(const std::string& id, std::int64_t stock) {
  const auto now = std::chrono::system_clock::now();
  v1::Campaign c = CampaignJson(id)
                       .window(now - std::chrono::seconds(60), now + std::chrono::seconds(3600))
                       .per_member_limit(1)
                       .site("site-a", "Hot spring A", "Qingyuan", "SKU_KIND_HOT_SPRING")
                       .sku("sku-a", "2 adult tickets", 19'800, stock)
                       .message();
  c.set_voucher_valid_days(30);
  return c;
}

class ClaimEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto secret = dir_.write("secret.hex", test_secret_hex());
    server_ = std::make_unique<VoucherdProcess>(
        dir_, std::vector<std::string>{"--campaigns", guangdong_sample_path(), "--rehearse",
                                       "--secret-file", secret.string()});
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<ClaimClient>(server_->target());
  }
  void TearDown() override {
    // Close our connection first: gRPC 1.51's graceful GOAWAY waits for an idle
    // client to answer a PING, which an idle client in this process may not do
    // for ~5 s (bounded by voucherd's 10 s drain either way).
    client_.reset();
    if (server_) {
      const auto status = server_->stop(SIGTERM);
      EXPECT_EQ(status, std::optional<int>(0)) << server_->stderr_text();
    }
  }

  TempDir dir_;
  std::unique_ptr<VoucherdProcess> server_;
  std::unique_ptr<ClaimClient> client_;
};

TEST_F(ClaimEndToEnd, CrowdFromManyThreadsGetsExactlyTheStock) {
  // Four crowds in parallel threads over overlapping member ranges: 105,000
  // distinct members, members in the overlaps pressing from two threads at
  // once, plus 40% repeat presses within each crowd.
  constexpr int kThreads = 4;
  constexpr std::int64_t kPerThread = 30'000;
  constexpr std::int64_t kStride = 25'000;
  std::vector<load::StormReport> reports(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      load::StormOptions o;
      o.target = server_->target();
      o.campaign_id = kCampaign;
      o.members = kPerThread;
      o.member_first = t * kStride;
      o.repeat_share = 0.4;
      o.concurrency = 32;
      o.max_seconds = 300;
      o.seed = 100 + static_cast<std::uint64_t>(t);
      // A press the transport could not deliver (UNAVAILABLE: say a connect
      // that failed for a moment on a loaded machine) is pressed again, as
      // an app would; any other error still fails the test.
      o.max_retries = 50;
      o.retry_delay = std::chrono::milliseconds(50);  // past a reconnect backoff
      reports[static_cast<std::size_t>(t)] = load::run_storm(o);
    });
  }
  for (auto& th : threads) th.join();

  std::int64_t issued = 0, presses = 0, answered_ok_or_sold_out = 0;
  Acknowledged ack;
  for (const auto& r : reports) {
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.errors_by_code.empty()) << load::format_report(r);
    EXPECT_TRUE(r.consistent()) << load::format_report(r);
    issued += r.issued;
    presses += r.presses;
    answered_ok_or_sold_out += r.issued + r.already_claimed + r.sold_out;
    ack.add(r);
  }
  const auto& member_by_code = ack.member_by_code;
  const std::int64_t expected_presses = kThreads * (kPerThread + kPerThread * 4 / 10);
  EXPECT_EQ(presses, expected_presses);
  EXPECT_EQ(answered_ok_or_sold_out, presses);
  EXPECT_EQ(issued, kStock);
  EXPECT_EQ(static_cast<std::int64_t>(member_by_code.size()), kStock);
  EXPECT_EQ(static_cast<std::int64_t>(ack.code_by_member.size()), kStock);
  EXPECT_EQ(ack.members_with_two, 0);
  EXPECT_EQ(ack.codes_with_two, 0);

  v1::CampaignStats stats;
  ASSERT_TRUE(client_->stats(kCampaign, &stats).ok());
  EXPECT_EQ(stats.stock_total(), kStock);
  EXPECT_EQ(stats.issued(), kStock);
  EXPECT_EQ(stats.remaining(), 0);
  EXPECT_EQ(stats.members(), kStock);
  std::int64_t sku_issued = 0;
  for (const auto& s : stats.skus()) {
    EXPECT_EQ(s.issued(), s.stock()) << s.sku_id();
    sku_issued += s.issued();
  }
  EXPECT_EQ(sku_issued, kStock);

  // Every 500th voucher reads back with its member; a holder pressing again
  // gets the same code; a newcomer is told SOLD_OUT.
  int checked = 0;
  for (const auto& [code, member] : member_by_code) {
    if (checked++ % 500 != 0) continue;
    v1::Voucher v;
    ASSERT_TRUE(client_->get_voucher(code, &v).ok()) << code;
    EXPECT_EQ(v.member_id(), member);
    EXPECT_EQ(v.campaign_id(), kCampaign);
    EXPECT_EQ(v.state(), v1::VOUCHER_STATE_ISSUED);
    v1::ClaimResponse again;
    ASSERT_TRUE(client_->claim(kCampaign, member, "", "", &again).ok());
    EXPECT_TRUE(again.already_claimed());
    EXPECT_EQ(again.voucher().code(), code);
  }
  v1::ClaimResponse late;
  const grpc::Status s = client_->claim(kCampaign, "member-late-comer", "", "", &late);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reason_of(s), "SOLD_OUT");
}

struct BadClaim {
  const char* name;
  std::string campaign, member, sku, request_id;
  grpc::StatusCode code;
  std::string reason;
  std::string message_mentions;
};

TEST_F(ClaimEndToEnd, BadInputGetsPreciseStatusAndChangesNothing) {
  // Campaigns for the window and mode cases.
  v1::Campaign created;
  const auto now = std::chrono::system_clock::now();
  v1::Campaign later = small_campaign("opens-later", 5);
  *later.mutable_starts_at() = timestamp_of(now + std::chrono::hours(1));
  *later.mutable_ends_at() = timestamp_of(now + std::chrono::hours(2));
  ASSERT_TRUE(client_->create(later, &created).ok());
  v1::Campaign over = small_campaign("already-over", 5);
  *over.mutable_starts_at() = timestamp_of(now - std::chrono::hours(2));
  *over.mutable_ends_at() = timestamp_of(now - std::chrono::hours(1));
  ASSERT_TRUE(client_->create(over, &created).ok());
  v1::Campaign lottery = small_campaign("a-lottery", 5);
  lottery.set_mode(v1::CAMPAIGN_MODE_LOTTERY);
  lottery.mutable_lottery()->set_win_probability(0.5);
  ASSERT_TRUE(client_->create(lottery, &created).ok());
  v1::Campaign one = small_campaign("one-pack", 1);
  ASSERT_TRUE(client_->create(one, &created).ok());
  v1::Campaign multi = small_campaign("two-per-member", 10);
  multi.set_per_member_limit(2);
  ASSERT_TRUE(client_->create(multi, &created).ok());
  v1::ClaimResponse got;
  ASSERT_TRUE(client_->claim("one-pack", "first-member", "", "", &got).ok());
  ASSERT_FALSE(got.already_claimed());

  v1::CampaignStats before;
  ASSERT_TRUE(client_->stats(kCampaign, &before).ok());

  const std::string long_id(129, 'x');
  const std::vector<BadClaim> cases = {
      {"empty campaign", "", "m1", "", "", grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
       "campaign_id"},
      {"long campaign", long_id, "m1", "", "", grpc::StatusCode::INVALID_ARGUMENT,
       "INVALID_ARGUMENT", "campaign_id"},
      {"empty member", kCampaign, "", "", "", grpc::StatusCode::INVALID_ARGUMENT,
       "INVALID_ARGUMENT", "member_id"},
      {"long member", kCampaign, long_id, "", "", grpc::StatusCode::INVALID_ARGUMENT,
       "INVALID_ARGUMENT", "member_id"},
      {"long sku", kCampaign, "m1", long_id, "", grpc::StatusCode::INVALID_ARGUMENT,
       "INVALID_ARGUMENT", "sku_id"},
      {"long request", kCampaign, "m1", "", long_id, grpc::StatusCode::INVALID_ARGUMENT,
       "INVALID_ARGUMENT", "request_id"},
      {"unknown campaign", "no-such-campaign", "m1", "", "", grpc::StatusCode::NOT_FOUND,
       "CAMPAIGN_NOT_FOUND", "no-such-campaign"},
      {"unknown sku", kCampaign, "m1", "no-such-sku", "", grpc::StatusCode::NOT_FOUND,
       "SKU_NOT_FOUND", "no-such-sku"},
      {"not open", "opens-later", "m1", "", "", grpc::StatusCode::FAILED_PRECONDITION, "NOT_OPEN",
       "not open"},
      {"closed", "already-over", "m1", "", "", grpc::StatusCode::FAILED_PRECONDITION, "CLOSED",
       "closed"},
      {"wrong mode", "a-lottery", "m1", "", "", grpc::StatusCode::FAILED_PRECONDITION, "WRONG_MODE",
       "mode"},
      {"sold out", "one-pack", "second-member", "", "", grpc::StatusCode::FAILED_PRECONDITION,
       "SOLD_OUT", "sold out"},
      {"sku sold out", "one-pack", "second-member", "sku-a", "",
       grpc::StatusCode::FAILED_PRECONDITION, "SOLD_OUT", "sku-a"},
      {"no request id", "two-per-member", "m1", "", "", grpc::StatusCode::INVALID_ARGUMENT,
       "REQUEST_ID_REQUIRED", "request_id"},
  };
  for (const BadClaim& c : cases) {
    v1::ClaimResponse out;
    const grpc::Status s = client_->claim(c.campaign, c.member, c.sku, c.request_id, &out);
    EXPECT_EQ(s.error_code(), c.code) << c.name << ": " << s.error_message();
    EXPECT_EQ(reason_of(s), c.reason) << c.name;
    EXPECT_NE(s.error_message().find(c.message_mentions), std::string::npos)
        << c.name << ": " << s.error_message();
  }

  // Campaign definitions that do not add up: INVALID_ARGUMENT naming the field.
  struct BadCampaign {
    const char* name;
    v1::Campaign campaign;
    std::string field;
  };
  std::vector<BadCampaign> bad_campaigns;
  {
    v1::Campaign c = small_campaign("bad-1", 5);
    *c.add_sites() = c.sites(0);
    bad_campaigns.push_back({"duplicate site", c, "campaign.sites[1].id"});
  }
  {
    v1::Campaign c = small_campaign("bad-2", 5);
    *c.add_skus() = c.skus(0);
    bad_campaigns.push_back({"duplicate sku", c, "campaign.skus[1].id"});
  }
  {
    v1::Campaign c = small_campaign("bad-3", 5);
    c.mutable_skus(0)->set_site_id("nowhere");
    bad_campaigns.push_back({"sku of unknown site", c, "campaign.skus[0].site_id"});
  }
  {
    v1::Campaign c = small_campaign("bad-4", -1);
    bad_campaigns.push_back({"negative stock", c, "campaign.skus[0].stock"});
  }
  {
    v1::Campaign c = small_campaign("bad-5", 5);
    *c.mutable_ends_at() = c.starts_at();
    c.mutable_ends_at()->set_seconds(c.starts_at().seconds() - 1);
    bad_campaigns.push_back({"ends before it starts", c, "campaign.ends_at"});
  }
  {
    v1::Campaign c = small_campaign("", 5);
    bad_campaigns.push_back({"empty id", c, "campaign.id"});
  }
  {
    v1::Campaign c = small_campaign(long_id, 5);
    bad_campaigns.push_back({"long id", c, "campaign.id"});
  }
  for (const BadCampaign& b : bad_campaigns) {
    v1::Campaign out;
    const grpc::Status s = client_->create(b.campaign, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.name;
    EXPECT_NE(s.error_message().find(b.field), std::string::npos)
        << b.name << ": " << s.error_message();
    v1::Campaign none;
    if (!b.campaign.id().empty() && b.campaign.id().size() <= 128) {
      EXPECT_EQ(client_->get_campaign(b.campaign.id(), &none).error_code(),
                grpc::StatusCode::NOT_FOUND)
          << b.name << ": a rejected campaign must not be stored";
    }
  }
  // Same definition again: OK (idempotent); a different one: ALREADY_EXISTS (AIP-133).
  EXPECT_TRUE(client_->create(one, &created).ok());
  v1::Campaign changed = one;
  changed.mutable_skus(0)->set_stock(100);
  const grpc::Status exists = client_->create(changed, &created);
  EXPECT_EQ(exists.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(reason_of(exists), "CAMPAIGN_EXISTS");

  // Codes: empty, mistyped, forged.
  v1::Voucher v;
  EXPECT_EQ(client_->get_voucher("", &v).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::string typo = got.voucher().code();
  typo[0] = typo[0] == 'A' ? 'B' : 'A';
  const grpc::Status mistyped = client_->get_voucher(typo, &v);
  EXPECT_EQ(mistyped.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(reason_of(mistyped), "MISTYPED_CODE");
  EXPECT_EQ(client_->get_voucher("not a code at all", &v).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(client_->get_voucher(std::string(10'000, 'A'), &v).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(client_->get_voucher(got.voucher().code(), &v).ok());
  EXPECT_EQ(v.member_id(), "first-member");

  v1::Campaign none;
  EXPECT_EQ(client_->get_campaign("no-such-campaign", &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(client_->get_campaign("", &none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CampaignStats no_stats;
  EXPECT_EQ(client_->stats("no-such-campaign", &no_stats).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // per_member_limit 2: new request ids take packs up to the limit, a
  // repeated one returns its first voucher.
  v1::ClaimResponse r1, r2, r1_again, r3;
  ASSERT_TRUE(client_->claim("two-per-member", "m-multi", "", "req-1", &r1).ok());
  ASSERT_TRUE(client_->claim("two-per-member", "m-multi", "", "req-2", &r2).ok());
  ASSERT_TRUE(client_->claim("two-per-member", "m-multi", "", "req-1", &r1_again).ok());
  ASSERT_TRUE(client_->claim("two-per-member", "m-multi", "", "req-3", &r3).ok());
  EXPECT_FALSE(r1.already_claimed());
  EXPECT_FALSE(r2.already_claimed());
  EXPECT_NE(r1.voucher().code(), r2.voucher().code());
  EXPECT_TRUE(r1_again.already_claimed());
  EXPECT_EQ(r1_again.voucher().code(), r1.voucher().code());
  EXPECT_TRUE(r3.already_claimed());
  v1::CampaignStats multi_stats;
  ASSERT_TRUE(client_->stats("two-per-member", &multi_stats).ok());
  EXPECT_EQ(multi_stats.issued(), 2);

  // Nothing above touched the sample campaign.
  v1::CampaignStats after;
  ASSERT_TRUE(client_->stats(kCampaign, &after).ok());
  EXPECT_EQ(after.issued(), before.issued());
  EXPECT_EQ(after.issued(), 0);
  EXPECT_EQ(after.remaining(), kStock);

  // Still healthy: a claim works.
  v1::ClaimResponse fresh;
  ASSERT_TRUE(client_->claim(kCampaign, "healthy-check", "", "", &fresh).ok());
  EXPECT_FALSE(fresh.already_claimed());
  EXPECT_EQ(fresh.voucher().face_value_cents() > 0, true);
}

TEST(ClaimPressLimit, AScriptPressingOneMemberIsToldWhenToPressAgain) {
  TempDir dir;
  const std::string campaign = spring_and_hotel("press", 50, 50).write(dir, "press.json");
  VoucherdProcess server(
      dir, {"--campaigns", campaign, "--member-press-rate", "1", "--member-press-burst", "3"});
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  // A member presses once: the voucher.
  const auto first = c.claim("press", "member-1");
  ASSERT_TRUE(first.ok()) << first.status.error_message();
  // A script presses again at once: the burst of 3 holds two more, then
  // RESOURCE_EXHAUSTED with when to press again.
  EXPECT_TRUE(c.claim("press", "member-1").response.already_claimed());
  EXPECT_TRUE(c.claim("press", "member-1").response.already_claimed());
  const auto limited = c.claim("press", "member-1");
  EXPECT_EQ(limited.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << limited.status.error_message();
  EXPECT_EQ(limited.reason(), "PRESS_RATE_LIMITED");
  EXPECT_NE(limited.status.error_message().find("presses too often in campaign \"press\""),
            std::string::npos)
      << limited.status.error_message();
  const auto delay = retry_delay_of(limited.status);
  ASSERT_TRUE(delay.has_value());
  EXPECT_GT(*delay, std::chrono::milliseconds(0));
  EXPECT_LE(*delay, std::chrono::milliseconds(1000));
  // Other members are not affected.
  EXPECT_TRUE(c.claim("press", "member-2").ok());
  // Pressing again after the delay gets the same voucher.
  std::this_thread::sleep_for(*delay + std::chrono::milliseconds(20));
  const auto again = c.claim("press", "member-1");
  ASSERT_TRUE(again.ok()) << again.status.error_message();
  EXPECT_TRUE(again.response.already_claimed());
  EXPECT_EQ(again.response.voucher().code(), first.response.voucher().code());
  // Refused presses issued nothing.
  const auto stats = c.stats("press");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats.response.issued(), 2);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(VoucherdStartup, FlagsComeFromTheEnvironmentTooAndTheCommandLineWins) {
  TempDir dir;
  std::string err;
  // A bad value from the environment is refused like a bad flag.
  ::setenv("VOUCHERD_GRPC_THREADS", "99", 1);
  EXPECT_EQ(run_voucherd(dir, {"--version"}, &err), 0);  // --version exits before checks
  EXPECT_EQ(run_voucherd(dir, {"--store", "memory", "--redis", "redis://x"}, &err), 2);
  EXPECT_NE(err.find("--grpc-threads"), std::string::npos) << err;
  ::unsetenv("VOUCHERD_GRPC_THREADS");
  // VOUCHERD_STORE is read: redis without --redis is refused ...
  ::setenv("VOUCHERD_STORE", "redis", 1);
  EXPECT_EQ(run_voucherd(dir, {}, &err), 2);
  EXPECT_NE(err.find("--store=redis needs --redis"), std::string::npos) << err;
  // ... unless the command line says otherwise (it wins): memory with --redis
  // is refused for a different reason.
  EXPECT_EQ(run_voucherd(dir, {"--store", "memory", "--redis", "redis://x"}, &err), 2);
  EXPECT_NE(err.find("--redis is only used with"), std::string::npos) << err;
  ::unsetenv("VOUCHERD_STORE");
}

TEST(VoucherdStartup, BadFlagsAndFilesExitNonZeroWithAMessage) {
  TempDir dir;
  std::string err;
  EXPECT_EQ(run_voucherd(dir, {"--store", "nosuch"}, &err), 2);
  EXPECT_NE(err.find("--store"), std::string::npos) << err;
  const auto bad_secret = dir.write("short.hex", "abcd\n");
  EXPECT_EQ(run_voucherd(dir, {"--secret-file", bad_secret.string()}, &err), 2);
  EXPECT_NE(err.find("secret"), std::string::npos) << err;
  const auto bad_json = dir.write("bad.json", "{\"campaigns\": [{\"id\": \"x\", \"nope\": 1}]}");
  EXPECT_EQ(run_voucherd(dir, {"--campaigns", bad_json.string()}, &err), 2);
  EXPECT_NE(err.find("bad.json"), std::string::npos) << err;
  const auto invalid =
      dir.write("invalid.json",
                "{\"id\": \"c\", \"mode\": \"CAMPAIGN_MODE_FIRST_COME\", \"startsAt\": "
                "\"2024-01-01T00:00:00Z\", \"endsAt\": \"2023-01-01T00:00:00Z\"}");
  EXPECT_EQ(run_voucherd(dir, {"--campaigns", invalid.string()}, &err), 2);
  EXPECT_NE(err.find("ends_at"), std::string::npos) << err;
}

}  // namespace
}  // namespace voucherd::testing
