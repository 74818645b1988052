// auth_test — the tokens file is read strictly (every bad line is named),
// tokens map to exactly the roles they were given, and the redeem guard
// refuses a caller past its failure budget for the cool-down only.
#include "server/grpc/auth.h"

#include <gtest/gtest.h>

#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

std::string line(std::string_view token, std::string_view role) {
  return "sha256:" + token_hash(token) + " " + std::string(role) + "\n";
}

TEST(Authenticator, AdmitsEachTokenForItsRoleOnly) {
  TempDir dir;
  const auto path = dir.write("tokens", "# voucherd tokens\n\n" + line("app-token", "app") +
                                            line("spring-desk", "site:site-1") +
                                            line("ops", "admin") + "   # trailing comment\n");
  auto auth = Authenticator::load(path.string());
  ASSERT_TRUE(auth.has_value()) << auth.error();
  EXPECT_EQ(auth->size(), 3u);

  using R = Authenticator::Refusal;
  struct Case {
    std::string header;
    Access access;
    std::optional<R> refusal;
  };
  const Case cases[] = {
      {"Bearer app-token", Access::kApp, std::nullopt},
      {"bearer app-token", Access::kApp, std::nullopt},  // the scheme is case-insensitive
      {"Bearer app-token", Access::kLookup, std::nullopt},
      {"Bearer app-token", Access::kSite, R::kPermissionDenied},
      {"Bearer app-token", Access::kAdmin, R::kPermissionDenied},
      {"Bearer spring-desk", Access::kSite, std::nullopt},
      {"Bearer spring-desk", Access::kLookup, std::nullopt},
      {"Bearer spring-desk", Access::kApp, R::kPermissionDenied},
      {"Bearer spring-desk", Access::kAdmin, R::kPermissionDenied},
      {"Bearer ops", Access::kAdmin, std::nullopt},
      {"Bearer ops", Access::kApp, R::kPermissionDenied},
      {"Bearer ops", Access::kLookup, std::nullopt},  // operators look vouchers up too
      {"", Access::kApp, R::kUnauthenticated},
      {"Bearer ", Access::kApp, R::kUnauthenticated},
      {"Basic app-token", Access::kApp, R::kUnauthenticated},
      {"Bearer app-token2", Access::kApp, R::kUnauthenticated},
      {"app-token", Access::kApp, R::kUnauthenticated},
  };
  for (const Case& c : cases) {
    auto admitted = auth->admit(c.header, c.access);
    if (c.refusal) {
      ASSERT_FALSE(admitted.has_value()) << c.header;
      EXPECT_EQ(admitted.error(), *c.refusal) << c.header;
    } else {
      ASSERT_TRUE(admitted.has_value()) << c.header;
    }
  }
  auto site = auth->admit("Bearer spring-desk", Access::kSite);
  ASSERT_TRUE(site.has_value());
  EXPECT_EQ(site->role, Role::kSite);
  EXPECT_EQ(site->site_id, "site-1");
  EXPECT_EQ(site->token_hash, token_hash("spring-desk"));
}

TEST(Authenticator, RefusesABadFileNamingTheLine) {
  TempDir dir;
  struct Case {
    std::string content;
    std::string says;
  };
  const Case cases[] = {
      {"plain-token app\n", "line 1"},
      {line("a", "app") + "sha256:1234 app\n", "line 2"},
      {line("a", "operator"), "role must be app, admin or site:<site id>"},
      {line("a", "site:"), "role must be"},
      {line("a", "app") + line("a", "admin"), "twice"},
      {line("a", "app").substr(0, 71) + "\n", "expected"},
      {"# nothing but comments\n", "holds no token"},
      {"sha256:" + token_hash("a") + " app extra\n", "expected"},
  };
  for (const Case& c : cases) {
    const auto path = dir.write("bad", c.content);
    auto auth = Authenticator::load(path.string());
    ASSERT_FALSE(auth.has_value()) << c.content;
    EXPECT_NE(auth.error().find(c.says), std::string::npos) << auth.error();
    EXPECT_NE(auth.error().find("--auth-file"), std::string::npos) << auth.error();
  }
  EXPECT_FALSE(Authenticator::load((dir.path() / "missing").string()).has_value());
}

TEST(RedeemGuard, RefusesPastTheBudgetForTheCooldownOnly) {
  RedeemGuard guard(3, std::chrono::seconds(60));
  const auto t0 = RedeemGuard::Clock::now();
  EXPECT_TRUE(guard.check("desk-a", t0).has_value());
  guard.failed("desk-a", t0);
  guard.failed("desk-a", t0);
  EXPECT_TRUE(guard.check("desk-a", t0).has_value());  // 2 of 3
  guard.succeeded("desk-a", t0);                       // a success starts the count again
  guard.failed("desk-a", t0);
  guard.failed("desk-a", t0);
  EXPECT_TRUE(guard.check("desk-a", t0).has_value());
  guard.failed("desk-a", t0);  // the third in a row
  auto refused = guard.check("desk-a", t0 + std::chrono::seconds(1));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), std::chrono::seconds(59));
  EXPECT_TRUE(guard.check("desk-b", t0).has_value());  // others are not affected
  EXPECT_TRUE(guard.check("desk-a", t0 + std::chrono::seconds(60)).has_value());
}

TEST(RedeemGuard, ASuccessDoesNotEndACoolDownUnderWay) {
  RedeemGuard guard(2, std::chrono::seconds(60));
  const auto t0 = RedeemGuard::Clock::now();
  guard.failed("desk-a", t0);
  guard.failed("desk-a", t0);
  guard.succeeded("desk-a", t0 + std::chrono::seconds(10));
  auto refused = guard.check("desk-a", t0 + std::chrono::seconds(10));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), std::chrono::seconds(50));
  // Once it is over, a success clears the count.
  guard.failed("desk-a", t0 + std::chrono::seconds(61));
  guard.succeeded("desk-a", t0 + std::chrono::seconds(61));
  guard.failed("desk-a", t0 + std::chrono::seconds(62));
  EXPECT_TRUE(guard.check("desk-a", t0 + std::chrono::seconds(62)).has_value());
}

}  // namespace
}  // namespace voucherd::testing
