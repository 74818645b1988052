// ops_auth_test — the ops port's tokens file: tokens given as their hashes
// with a name; a bearer token, or the token as the Basic auth password, is
// admitted when it is one of them, and nothing else is (another token, no
// header, another scheme, bad base64, an empty password); a bad file is
// refused naming its line; binds_loopback_only() (server/base) knows
// loopback from the rest.
#include "server/ops/ops_auth.h"

#include <gtest/gtest.h>

#include "server/base/loopback.h"
#include "server/base/token_hash.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

TEST(OpsTokens, AdmitsItsTokensAsBearerOrBasicPasswordAndNothingElse) {
  TempDir dir;
  const auto path = dir.write("ops-tokens",
                              "# scrapers and people\n"
                              "sha256:" +
                                  token_hash("scrape-me") +
                                  " prometheus\n"
                                  "SHA256:" +
                                  token_hash("on-call") + " oncall  # a person\n\n");
  // "sha256:" in upper case is not the format: refused, naming the line.
  auto refused = OpsTokens::load(path.string());
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().find("line 3"), std::string::npos) << refused.error();

  const auto good = dir.write("ops-tokens-2", "sha256:" + token_hash("scrape-me") +
                                                  " prometheus\n"
                                                  "sha256:" +
                                                  token_hash("on-call") + " oncall # a person\n");
  auto tokens = OpsTokens::load(good.string());
  ASSERT_TRUE(tokens.has_value()) << tokens.error();
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_EQ(tokens->admit("Bearer scrape-me"), std::optional<std::string>("prometheus"));
  EXPECT_EQ(tokens->admit("bearer  on-call "), std::optional<std::string>("oncall"));
  // "anyone:on-call" and ":scrape-me" in base64.
  EXPECT_EQ(tokens->admit("Basic YW55b25lOm9uLWNhbGw="), std::optional<std::string>("oncall"));
  EXPECT_EQ(tokens->admit("basic OnNjcmFwZS1tZQ=="), std::optional<std::string>("prometheus"));
  for (const char* refused_header :
       {"", "Bearer", "Bearer ", "Bearer other", "Token scrape-me", "scrape-me",
        "Basic c2NyYXBlLW1l" /* "scrape-me": no colon */, "Basic YW55b25lOg==" /* "anyone:" */,
        "Basic YW55b25lOm9uLWNhbGw" /* unpadded */, "Basic YW55b25l=m9uLWNhbGw=", "Basic !!!!"}) {
    EXPECT_FALSE(tokens->admit(refused_header).has_value()) << refused_header;
  }
}

TEST(OpsTokens, ABadFileIsRefusedNamingWhatIsWrong) {
  TempDir dir;
  const std::string hash = "sha256:" + token_hash("t");
  struct Case {
    std::string content, says;
  };
  for (const Case& c : std::vector<Case>{
           {"", "holds no token"},
           {"# only a comment\n", "holds no token"},
           {hash + "\n", "line 1: expected \"sha256:<64 hex digits> <name>\""},
           {hash + " a b\n", "line 1: expected"},
           {"plain-token prometheus\n", "line 1: the token must be given as sha256:"},
           {"sha256:abc prometheus\n", "line 1: the token must be given as sha256:"},
           {hash + " a\n" + hash + " b\n", "line 2: the same token appears twice"},
       }) {
    const auto path = dir.write("ops-tokens", c.content);
    auto loaded = OpsTokens::load(path.string());
    ASSERT_FALSE(loaded.has_value()) << c.content;
    EXPECT_NE(loaded.error().find(c.says), std::string::npos) << loaded.error();
    EXPECT_NE(loaded.error().find("--ops-auth-file"), std::string::npos) << loaded.error();
  }
  EXPECT_FALSE(OpsTokens::load((dir.path() / "missing").string()).has_value());
}

TEST(Loopback, LoopbackAddressesAreTheOnlyOnesThatBindLoopbackOnly) {
  for (const char* loopback : {"127.0.0.1:9464", "127.9.8.7:0", "::1:9464", "[::1]:9464"}) {
    EXPECT_TRUE(binds_loopback_only(loopback)) << loopback;
  }
  for (const char* beyond : {"0.0.0.0:9464", ":::9464", "10.0.0.5:9464", "192.168.1.1:1", "[::]:0",
                             "localhost:9464", "9464", ""}) {
    EXPECT_FALSE(binds_loopback_only(beyond)) << beyond;
  }
}

}  // namespace
}  // namespace voucherd::testing
