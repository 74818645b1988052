// auth_e2e_test — with --auth-file, every role/token combination gets the
// answer the README promises (table-driven, against a real voucherd); a site
// redeems and reads only its own vouchers; and a desk that keeps sending
// codes that are not vouchers is cooled down, while real vouchers still
// redeem; replaying a real redemption does not buy new guesses, and lookups
// of forged codes share the budget.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "engine/voucher_code.h"
#include "server/grpc/auth.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;

std::string campaign_file(const TempDir& dir) {
  return spring_and_hotel("auth", 50, 50).write(dir, "auth-campaign.json");
}

std::string tokens_file(const TempDir& dir) {
  std::string text = "# test tokens\n";
  for (auto [token, role] : {std::pair{"app-secret", "app"}, std::pair{"desk-1", "site:site-1"},
                             std::pair{"desk-2", "site:site-2"}, std::pair{"ops", "admin"}}) {
    text += "sha256:" + token_hash(token) + " " + role + "\n";
  }
  return dir.write("tokens", text).string();
}

grpc::Status claim(const Client& c, const std::optional<std::string>& token,
                   const std::string& campaign, const std::string& member, v1::ClaimResponse* out) {
  auto reply = c.bearer(token).claim(campaign, member, "spring");
  *out = reply.response;
  return reply.status;
}

grpc::Status get_voucher(const Client& c, const std::optional<std::string>& token,
                         const std::string& code) {
  return c.bearer(token).get_voucher(code).status;
}

grpc::Status redeem(const Client& c, const std::optional<std::string>& token,
                    const std::string& code, const std::string& site,
                    v1::RedeemResponse* out = nullptr) {
  auto reply = c.bearer(token).redeem(code, site);
  if (out != nullptr) *out = reply.response;
  return reply.status;
}

grpc::Status apply(const Client& c, const std::optional<std::string>& token,
                   const std::string& campaign) {
  return c.bearer(token).apply(campaign, "m", "r-1", {}).status;
}

grpc::Status get_campaign(const Client& c, const std::optional<std::string>& token,
                          const std::string& id) {
  return c.bearer(token).get_campaign(id).status;
}

TEST(AuthEndToEnd, EveryRoleAndTokenGetsTheAnswerItShould) {
  TempDir dir;
  // At debug level every answered call is logged: the tokens must still
  // stay out of the log.
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir), "--auth-file", tokens_file(dir),
                               "--log-level", "debug"});
  ASSERT_GT(server.port(), 0);
  Client c(server.target());

  using Code = grpc::StatusCode;
  const std::optional<std::string> none, unknown("guess"), app("app-secret"), desk1("desk-1"),
      desk2("desk-2"), ops("ops");
  // Each admitted call is made to fail in its handler in a known way (an
  // unknown campaign, a mistyped code), so the table reads the admission.
  struct Row {
    const char* who;
    std::optional<std::string> token;
    Code claim, get_voucher, redeem, admin, apply;
  };
  const Row rows[] = {
      {"no token", none, Code::UNAUTHENTICATED, Code::UNAUTHENTICATED, Code::UNAUTHENTICATED,
       Code::UNAUTHENTICATED, Code::UNAUTHENTICATED},
      {"unknown token", unknown, Code::UNAUTHENTICATED, Code::UNAUTHENTICATED,
       Code::UNAUTHENTICATED, Code::UNAUTHENTICATED, Code::UNAUTHENTICATED},
      {"app", app, Code::NOT_FOUND, Code::INVALID_ARGUMENT, Code::PERMISSION_DENIED,
       Code::PERMISSION_DENIED, Code::NOT_FOUND},
      {"site-1 desk", desk1, Code::PERMISSION_DENIED, Code::INVALID_ARGUMENT,
       Code::INVALID_ARGUMENT, Code::PERMISSION_DENIED, Code::PERMISSION_DENIED},
      {"admin", ops, Code::PERMISSION_DENIED, Code::INVALID_ARGUMENT, Code::PERMISSION_DENIED,
       Code::NOT_FOUND, Code::PERMISSION_DENIED},
  };
  for (const Row& r : rows) {
    v1::ClaimResponse claimed;
    EXPECT_EQ(claim(c, r.token, "no-such-campaign", "m", &claimed).error_code(), r.claim) << r.who;
    EXPECT_EQ(get_voucher(c, r.token, "mistyped").error_code(), r.get_voucher) << r.who;
    EXPECT_EQ(redeem(c, r.token, "mistyped", "site-1").error_code(), r.redeem) << r.who;
    EXPECT_EQ(get_campaign(c, r.token, "no-such-campaign").error_code(), r.admin) << r.who;
    EXPECT_EQ(apply(c, r.token, "no-such-campaign").error_code(), r.apply) << r.who;
  }

  // A real voucher of site-1: the app, site-1 and an operator may read it,
  // site-2 may not.
  v1::ClaimResponse claimed;
  ASSERT_TRUE(claim(c, app, "auth", "member-1", &claimed).ok());
  const std::string code = claimed.voucher().code();
  EXPECT_TRUE(get_voucher(c, app, code).ok());
  EXPECT_TRUE(get_voucher(c, desk1, code).ok());
  EXPECT_TRUE(get_voucher(c, ops, code).ok());
  const grpc::Status other_site = get_voucher(c, desk2, code);
  EXPECT_EQ(other_site.error_code(), Code::PERMISSION_DENIED);
  // site-2's desk may not redeem in site-1's name, nor as itself.
  const grpc::Status in_its_name = redeem(c, desk2, code, "site-1");
  EXPECT_EQ(in_its_name.error_code(), Code::PERMISSION_DENIED);
  EXPECT_NE(in_its_name.error_message().find("site-2"), std::string::npos)
      << in_its_name.error_message();
  EXPECT_EQ(redeem(c, desk2, code, "site-2").error_code(), Code::PERMISSION_DENIED);
  // site-1's desk redeems it.
  v1::RedeemResponse redeemed;
  ASSERT_TRUE(redeem(c, desk1, code, "site-1", &redeemed).ok());
  EXPECT_EQ(redeemed.voucher().state(), v1::VOUCHER_STATE_REDEEMED);

  // The token is never written to the log.
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
  const std::string log = server.stderr_text();
  EXPECT_NE(log.find("4 tokens"), std::string::npos) << log;
  for (const char* secret : {"app-secret", "desk-1", "desk-2", "Bearer"}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " in " << log;
  }
  // Each call's debug line names the call and carries a request id.
  std::istringstream lines(log);
  int answered = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(record.is_object()) << line;
    if (record.value("msg", "") != "rpc answered") continue;
    ++answered;
    EXPECT_FALSE(record.value("request_id", "").empty()) << line;
    EXPECT_FALSE(record.value("rpc", "").empty()) << line;
    EXPECT_EQ(record["level"], "debug") << line;
  }
  EXPECT_EQ(answered, 25 + 8);  // the table's calls, then the voucher's
}

TEST(AuthEndToEnd, WithoutATokensFileVoucherdWarnsThatItIsOpen) {
  TempDir dir;
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir)});
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  v1::ClaimResponse claimed;
  EXPECT_TRUE(claim(c, std::nullopt, "auth", "member-1", &claimed).ok());
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
  EXPECT_NE(server.stderr_text().find("voucherd is OPEN"), std::string::npos);
}

// voucherd with the tokens file and a guessing guard of 5 codes, then 600 s.
std::vector<std::string> guarded_args(const TempDir& dir) {
  return {"--campaigns",
          campaign_file(dir),
          "--auth-file",
          tokens_file(dir),
          "--redeem-failure-budget",
          "5",
          "--redeem-cooldown-seconds",
          "600"};
}

// Well-formed codes (right check character) whose MAC is wrong, made from
// a real one.
std::string forged(const std::string& real, int i) {
  auto fields = parse_code(real);
  EXPECT_TRUE(fields.has_value());
  CodeFields f = *fields;
  f.random[static_cast<std::size_t>(i % 16)] ^= static_cast<std::uint8_t>(1 + i / 16);
  return format_code(f);
}

TEST(AuthEndToEnd, ADeskGuessingCodesIsCooledDownButRealVouchersStillRedeem) {
  TempDir dir;
  VoucherdProcess server(dir, guarded_args(dir));
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  const std::optional<std::string> app("app-secret"), desk1("desk-1"), desk2("desk-2");
  v1::ClaimResponse claimed;
  ASSERT_TRUE(claim(c, app, "auth", "member-1", &claimed).ok());
  const std::string code = claimed.voucher().code();

  auto guess = [&](int i) { return forged(code, i); };
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(redeem(c, desk1, guess(i), "site-1").error_code(), grpc::StatusCode::NOT_FOUND);
  }
  for (int i = 4; i < 8; ++i) {  // the 5th failure starts the cool-down
    const grpc::Status s = redeem(c, desk1, guess(i), "site-1");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_NE(s.error_message().find("retry in"), std::string::npos) << s.error_message();
  }
  // Another desk is not affected, and a real voucher is never throttled.
  EXPECT_EQ(redeem(c, desk2, guess(9), "site-2").error_code(), grpc::StatusCode::NOT_FOUND);
  v1::RedeemResponse redeemed;
  const grpc::Status real = redeem(c, desk1, code, "site-1", &redeemed);
  EXPECT_TRUE(real.ok()) << real.error_message();
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(AuthEndToEnd, ReplayingARealRedemptionBuysAGuesserNothing) {
  TempDir dir;
  VoucherdProcess server(dir, guarded_args(dir));
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  const std::optional<std::string> app("app-secret"), desk1("desk-1");
  v1::ClaimResponse first, second;
  ASSERT_TRUE(claim(c, app, "auth", "member-1", &first).ok());
  ASSERT_TRUE(claim(c, app, "auth", "member-2", &second).ok());
  const std::string code = first.voucher().code();
  const auto desk = c.bearer(desk1);
  auto real = desk.redeem(code, "site-1", "redeem-1");
  ASSERT_TRUE(real.ok()) << real.status.error_message();
  EXPECT_FALSE(real.response.already_redeemed());

  // 4 guesses, the real redemption again (an idempotent OK), the 5th guess:
  // the replay did not start the count again.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(desk.redeem(forged(code, i), "site-1").code(), grpc::StatusCode::NOT_FOUND) << i;
  }
  auto replay = desk.redeem(code, "site-1", "redeem-1");
  ASSERT_TRUE(replay.ok()) << replay.status.error_message();
  EXPECT_TRUE(replay.response.already_redeemed());
  auto fifth = desk.redeem(forged(code, 4), "site-1");
  EXPECT_EQ(fifth.code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << fifth.status.error_message();
  EXPECT_EQ(fifth.reason(), "REDEEM_THROTTLED");
  const auto delay = retry_delay_of(fifth.status);
  ASSERT_TRUE(delay.has_value());
  EXPECT_GE(*delay, std::chrono::seconds(590));  // the cool-down's rest, not a shed-load hint
  EXPECT_LE(*delay, std::chrono::seconds(600));

  // Neither a replay nor a fresh redemption ends the cool-down, and neither
  // is refused.
  EXPECT_TRUE(desk.redeem(code, "site-1", "redeem-1").ok());
  auto fresh = desk.redeem(second.voucher().code(), "site-1", "redeem-2");
  ASSERT_TRUE(fresh.ok()) << fresh.status.error_message();
  EXPECT_FALSE(fresh.response.already_redeemed());
  EXPECT_EQ(desk.redeem(forged(code, 5), "site-1").code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(AuthEndToEnd, LookupsOfCodesThatAreNotVouchersShareTheRedemptionBudget) {
  TempDir dir;
  VoucherdProcess server(dir, guarded_args(dir));
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  const std::optional<std::string> app("app-secret"), desk1("desk-1"), desk2("desk-2");
  v1::ClaimResponse claimed;
  ASSERT_TRUE(claim(c, app, "auth", "member-1", &claimed).ok());
  const std::string code = claimed.voucher().code();

  // The app token: 4 lookups of forged codes are NOT_FOUND, the 5th starts
  // the cool-down; a real voucher is still looked up.
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(get_voucher(c, app, forged(code, i)).error_code(), grpc::StatusCode::NOT_FOUND) << i;
  }
  const grpc::Status fifth = get_voucher(c, app, forged(code, 4));
  EXPECT_EQ(fifth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << fifth.error_message();
  EXPECT_EQ(reason_of(fifth), "REDEEM_THROTTLED");
  EXPECT_TRUE(get_voucher(c, app, code).ok());
  EXPECT_EQ(get_voucher(c, app, forged(code, 5)).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A desk's failed redemptions and lookups count together.
  for (int i = 10; i < 13; ++i) {
    EXPECT_EQ(redeem(c, desk1, forged(code, i), "site-1").error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  EXPECT_EQ(get_voucher(c, desk1, forged(code, 13)).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(get_voucher(c, desk1, forged(code, 14)).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(redeem(c, desk1, forged(code, 15), "site-1").error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Others are not affected.
  EXPECT_EQ(get_voucher(c, desk2, forged(code, 16)).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedeemEndToEnd, WithoutATokensFileLookupsOfForgedCodesAreThrottledPerAddress) {
  TempDir dir;
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir), "--redeem-failure-budget", "3",
                               "--redeem-cooldown-seconds", "600"});
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  v1::ClaimResponse claimed;
  ASSERT_TRUE(claim(c, std::nullopt, "auth", "member-1", &claimed).ok());
  const std::string code = claimed.voucher().code();
  EXPECT_EQ(c.get_voucher(forged(code, 0)).code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(c.get_voucher(forged(code, 1)).code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(c.get_voucher(forged(code, 2)).code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(c.get_voucher(code).ok());
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(RedeemEndToEnd, VouchersExpireAfterTheirSecondsAndStatsCountThem) {
  TempDir dir;
  const std::string campaign = CampaignJson("short")
                                   .voucher_valid_seconds(2)
                                   .spring_site()
                                   .sku("spring", "Spa", 19'800, 10)
                                   .write(dir, "short.json");
  VoucherdProcess server(dir, {"--campaigns", campaign});
  ASSERT_GT(server.port(), 0);
  Client c(server.target());
  v1::ClaimResponse kept, used;
  ASSERT_TRUE(claim(c, std::nullopt, "short", "member-1", &kept).ok());
  ASSERT_TRUE(claim(c, std::nullopt, "short", "member-2", &used).ok());
  ASSERT_TRUE(redeem(c, std::nullopt, used.voucher().code(), "site-1").ok());  // in time

  // Valid 2 s: wait (bounded) until the kept voucher reads EXPIRED, then
  // press once to redeem it.
  const std::string kept_code = kept.voucher().code();
  EXPECT_TRUE(wait_until(
      [&] {
        const auto v = c.get_voucher(kept_code);
        return v.ok() && v.response.state() == v1::VOUCHER_STATE_EXPIRED;
      },
      std::chrono::seconds(20)))
      << "the voucher valid for 2 s never read EXPIRED";
  const grpc::Status late = redeem(c, std::nullopt, kept_code, "site-1");
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(late.error_message().find("expired"), std::string::npos) << late.error_message();
  {
    const auto v = c.get_voucher(kept_code);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.response.state(), v1::VOUCHER_STATE_EXPIRED);
  }
  {
    const auto reply = c.stats("short");
    ASSERT_TRUE(reply.ok());
    const v1::CampaignStats& stats = reply.response;
    EXPECT_EQ(stats.issued(), 2);
    EXPECT_EQ(stats.redeemed(), 1);
    EXPECT_EQ(stats.expired(), 1);
    ASSERT_EQ(stats.skus_size(), 1);
    EXPECT_EQ(stats.skus(0).expired(), 1);
  }
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

}  // namespace
}  // namespace voucherd::testing
