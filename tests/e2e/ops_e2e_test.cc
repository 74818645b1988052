// ops_e2e_test — the operators' HTTP port of a real voucherd: /healthz,
// /readyz (and its flip when Redis goes away and comes back, which /metrics
// shows too), /status matching what was claimed, and a precise 404; with
// --ops-auth-file, only the probes answer without a token; and a voucherd
// asked to open the port beyond loopback without tokens does not start.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "server/base/token_hash.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

std::string campaign_file(const TempDir& dir) {
  return CampaignJson("ops", "Ops")
      .spring_site()
      .sku("spa", "Spa", 19'800, 40)
      .sku("pool", "Pool", 9'800, 10)
      .write(dir, "ops-campaign.json");
}

// Claims, retrying while a lease is on its way or Redis is not there yet.
grpc::Status claim(const std::string& target, const std::string& member) {
  return Client(target).claim_until_final("ops", member).status;
}

TEST(OpsEndToEnd, HealthReadinessAndStatusOfAMemoryStore) {
  TempDir dir;
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir)});
  ASSERT_GT(server.ops_port(), 0);
  const HttpAnswer health = http_get(server.ops_port(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(http_get(server.ops_port(), "/readyz").status, 200);
  for (int m = 0; m < 7; ++m) ASSERT_TRUE(claim(server.target(), "m-" + std::to_string(m)).ok());

  const HttpAnswer status = http_get(server.ops_port(), "/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(status.content_type, "application/json");
  const auto j = nlohmann::json::parse(status.body);
  EXPECT_EQ(j["store"], "memory");
  EXPECT_EQ(j["ready"], true);
  EXPECT_NE(j["auth"].get<std::string>().find("OPEN"), std::string::npos);
  ASSERT_EQ(j["campaigns"].size(), 1u);
  const auto& c = j["campaigns"][0];
  EXPECT_EQ(c["id"], "ops");
  EXPECT_EQ(c["stock"], 50);
  EXPECT_EQ(c["issued"], 7);
  EXPECT_EQ(c["remaining"], 43);
  EXPECT_EQ(c["starts_at"], "2020-01-01T00:00:00Z");
  std::int64_t sku_issued = 0;
  for (const auto& s : c["skus"]) sku_issued += s["issued"].get<std::int64_t>();
  EXPECT_EQ(sku_issued, 7);

  const HttpAnswer missing = http_get(server.ops_port(), "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("/nope"), std::string::npos);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));

  // Every log line is one JSON record with a time, a level and a message.
  std::istringstream log(server.stderr_text());
  int lines = 0;
  for (std::string line; std::getline(log, line);) {
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(record.is_object()) << line;
    EXPECT_TRUE(record.contains("ts") && record.contains("level") && record.contains("msg"))
        << line;
    // Nothing per claim at the default level (info).
    EXPECT_NE(record.value("msg", ""), "rpc answered") << line;
    ++lines;
  }
  EXPECT_GE(lines, 3);  // at least: open warning, listening, stopped
}

TEST(OpsEndToEnd, ReadinessFollowsTheClaimLog) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string url = redis.url();
  redis.stop();
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir), "--store", "redis", "--redis",
                               url, "--secret-file", secret});
  ASSERT_GT(server.ops_port(), 0);
  const HttpAnswer down = http_get(server.ops_port(), "/readyz");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("Redis"), std::string::npos) << down.body;
  EXPECT_EQ(http_get(server.ops_port(), "/healthz").status, 200);  // alive all the same

  redis.start();
  ASSERT_TRUE(claim(server.target(), "m-1").ok());
  EXPECT_TRUE(wait_until([&] { return http_get(server.ops_port(), "/readyz").status == 200; },
                         std::chrono::seconds(10)))
      << "/readyz never answered 200 once Redis was back";
  const auto j = nlohmann::json::parse(http_get(server.ops_port(), "/status").body);
  EXPECT_EQ(j["store"], "redis");
  EXPECT_EQ(j["campaigns"][0]["issued"], 1);

  redis.stop();
  int gone = 0;
  for (int attempt = 0; attempt < 300 && gone != 503; ++attempt) {
    // The store is found gone when it is next used: keep claiming.
    (void)claim(server.target(), "m-" + std::to_string(attempt + 2));
    gone = http_get(server.ops_port(), "/readyz").status;
  }
  EXPECT_EQ(gone, 503);
  // /metrics says so too.
  const std::string metrics = http_get(server.ops_port(), "/metrics").body;
  EXPECT_NE(metrics.find("voucherd_store_connected{store=\"redis\"} 0\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("voucherd_ready 0\n"), std::string::npos) << metrics;
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(OpsEndToEnd, WithOpsTokensOnlyTheProbesAnswerWithoutOne) {
  TempDir dir;
  const std::string tokens =
      dir.write("ops-tokens", "sha256:" + token_hash("scrape-token") + " prometheus\n").string();
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir), "--ops-auth-file", tokens});
  ASSERT_GT(server.ops_port(), 0);
  ASSERT_TRUE(claim(server.target(), "m-1").ok());
  const int port = server.ops_port();
  // Load balancers and orchestrators probe without credentials.
  EXPECT_EQ(http_get(port, "/healthz").status, 200);
  EXPECT_EQ(http_get(port, "/readyz").status, 200);
  const HttpHeaders bearer{{"Authorization", "Bearer scrape-token"}};
  const HttpHeaders basic{
      {"Authorization", "Basic " + std::string("b25jYWxsOnNjcmFwZS10b2tlbg==")}};
  const HttpHeaders wrong{{"Authorization", "Bearer scrape-tokeN"}};
  for (const std::string path : {"/status", "/metrics", "/series", "/", "/nosuch"}) {
    for (const HttpHeaders& headers : {HttpHeaders{}, wrong}) {
      const HttpAnswer refused = http_get(port, path, headers);
      EXPECT_EQ(refused.status, 401) << path;
      EXPECT_EQ(refused.body.find("\"ops\""), std::string::npos) << refused.body;  // no campaign
      EXPECT_EQ(refused.www_authenticate,
                (std::vector<std::string>{R"(Bearer realm="voucherd ops")",
                                          R"(Basic realm="voucherd ops", charset="UTF-8")"}))
          << path;
    }
    EXPECT_EQ(http_get(port, path, bearer).status, path == "/nosuch" ? 404 : 200) << path;
    EXPECT_EQ(http_get(port, path, basic).status, path == "/nosuch" ? 404 : 200) << path;
  }
  // Only GET (and HEAD) is served, whoever asks.
  for (const HttpHeaders& headers : {HttpHeaders{}, bearer}) {
    const HttpAnswer post = http_request(port, "POST", "/status", headers);
    EXPECT_EQ(post.status, 405);
    EXPECT_EQ(post.body, "only GET is served here\n");
  }
  const auto j = nlohmann::json::parse(http_get(port, "/status", bearer).body);
  EXPECT_EQ(j["ops_auth"], "tokens");
  EXPECT_EQ(j["campaigns"][0]["issued"], 1);
  EXPECT_NE(http_get(port, "/metrics", basic).body.find("voucherd_claims_total"),
            std::string::npos);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

TEST(OpsEndToEnd, AnOpenOpsPortBeyondLoopbackIsRefusedBeforeListening) {
  TempDir dir;
  const auto port_file = dir.path() / "port";
  std::string err;
  EXPECT_EQ(run_voucherd(dir,
                         {"--campaigns", campaign_file(dir), "--listen", "127.0.0.1:0",
                          "--port-file", port_file.string(), "--ops-listen", "0.0.0.0:0"},
                         &err),
            2);
  EXPECT_NE(err.find("--ops-listen 0.0.0.0:0 reaches beyond this machine"), std::string::npos)
      << err;
  EXPECT_FALSE(std::filesystem::exists(port_file));
  // A tokens file that is not one is refused too, naming it.
  const std::string bad = dir.write("ops-tokens", "plain-token prometheus\n").string();
  EXPECT_EQ(
      run_voucherd(dir,
                   {"--campaigns", campaign_file(dir), "--listen", "127.0.0.1:0", "--port-file",
                    port_file.string(), "--ops-listen", "127.0.0.1:0", "--ops-auth-file", bad},
                   &err),
      2);
  EXPECT_NE(err.find("--ops-auth-file " + bad + " line 1"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(port_file));
}

}  // namespace
}  // namespace voucherd::testing
