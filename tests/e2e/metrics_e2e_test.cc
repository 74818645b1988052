// metrics_e2e_test — with a real voucherd on a real redis-server and a real
// gRPC crowd, proves that: /metrics scraped during a claim storm is a strict
// Prometheus exposition (our parser, and Debian's promtool when installed)
// whose claim counters add up exactly to what the crowd saw (issued,
// already claimed, sold out); /series carries the storm; and SIGTERM in the
// middle of a storm exits 0 without losing any acknowledged claim (every
// voucher the crowd was given is found afterwards by a fresh voucherd).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/exposition_check.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_server.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

// One campaign, "m", of `stock` packs over four SKUs of one site.
std::string campaign_file(const TempDir& dir, std::int64_t stock) {
  return CampaignJson("m", "Metrics")
      .spring_site()
      .shared_stock(stock, 4, 9'800, "Spa")
      .write(dir, "m.json");
}

// Unlike replica_args(), voucherd's default gRPC threads.
std::vector<std::string> redis_args(const RedisServer& redis, const std::string& secret,
                                    const std::string& campaigns) {
  return {"--store",       "redis", "--redis",     redis.url(),
          "--secret-file", secret,  "--campaigns", campaigns};
}

load::StormOptions crowd(const std::string& target, std::int64_t members, int max_retries) {
  load::StormOptions o;
  o.target = target;
  o.campaign_id = "m";
  o.members = members;
  o.repeat_share = 0.3;
  o.concurrency = 32;
  o.max_seconds = 15;
  o.max_retries = max_retries;
  o.retry_delay = std::chrono::milliseconds(10);
  return o;
}

Exposition scrape(int ops_port) {
  const HttpAnswer answer = http_get(ops_port, "/metrics");
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.content_type, "text/plain; version=0.0.4; charset=utf-8");
  auto parsed = parse_exposition(answer.body);
  EXPECT_TRUE(parsed.has_value()) << parsed.error() << "\n" << answer.body;
  return parsed.value_or(Exposition{});
}

double claims(const Exposition& e, const std::string& outcome) {
  return series_value(e, "voucherd_claims_total{campaign=\"m\",outcome=\"" + outcome + "\"}");
}

// promtool (Debian's prometheus package) checks the exposition too, when
// it is installed; scripts/setup.sh installs it.
void promtool_check(const TempDir& dir, const std::string& body) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    std::cerr << "note: promtool is not installed (scripts/setup.sh installs Debian's "
                 "prometheus); only the strict parser checked the exposition\n";
    return;
  }
  const auto file = dir.write("scrape.txt", body);
  const std::string out = (dir.path() / "promtool.out").string();
  const int rc =
      std::system(("promtool check metrics < " + file.string() + " > " + out + " 2>&1").c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(rc, 0) << "promtool check metrics:\n" << text.str();
}

TEST(MetricsEndToEnd, CountersAddUpToWhatTheCrowdSaw) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  VoucherdProcess server(dir, redis_args(redis, secret, campaign_file(dir, 3'000)));
  ASSERT_GT(server.port(), 0);

  load::StormReport report;
  std::atomic<bool> done{false};
  std::thread storm([&] {
    report = load::run_storm(crowd(server.target(), 4'000, 400));
    done.store(true, std::memory_order_release);
  });
  // Scrape while the crowd presses: every scrape parses strictly, and the
  // counters never go back.
  double issued_before = 0;
  int scrapes = 0;
  std::string mid_storm_body;
  for (; scrapes < 500 && !done.load(std::memory_order_acquire); ++scrapes) {
    const Exposition e = scrape(server.ops_port());
    EXPECT_GE(claims(e, "issued"), issued_before);
    issued_before = claims(e, "issued");
    if (mid_storm_body.empty() && issued_before > 0) {
      mid_storm_body = http_get(server.ops_port(), "/metrics").body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  storm.join();
  EXPECT_GT(scrapes, 0);
  ASSERT_FALSE(report.timed_out) << load::format_report(report);
  EXPECT_EQ(report.issued, 3'000);

  const Exposition e = scrape(server.ops_port());
  EXPECT_EQ(claims(e, "issued"), static_cast<double>(report.issued));
  EXPECT_EQ(claims(e, "already_claimed"), static_cast<double>(report.already_claimed));
  EXPECT_EQ(claims(e, "sold_out"), static_cast<double>(report.sold_out));
  EXPECT_EQ(series_value(e, "voucherd_rpc_responses_total{code=\"OK\",rpc=\"Claim\"}"),
            static_cast<double>(report.issued + report.already_claimed));
  EXPECT_EQ(series_value(e, "voucherd_store_connected{store=\"redis\"}"), 1);
  EXPECT_EQ(series_value(e, "voucherd_build_info{store=\"redis\",version=\"0.1.0\"}"), 1);
  EXPECT_GT(series_value(e, "voucherd_claim_log_batch_claims_count{}"), 0);
  EXPECT_GE(series_value(e, "voucherd_claim_log_batch_claims_sum{}"), 3'000);
  EXPECT_GT(series_value(e, "voucherd_claim_log_write_seconds_count{}"), 0);
  EXPECT_GE(series_value(e, "voucherd_rpc_duration_seconds_count{rpc=\"Claim\"}"),
            static_cast<double>(report.presses));
  double remaining = 0;
  for (int i = 0; i < 4; ++i) {
    remaining += series_value(
        e, "voucherd_sku_remaining{campaign=\"m\",sku=\"sku-" + std::to_string(i) + "\"}");
  }
  EXPECT_EQ(remaining, 0);

  // The dashboard's series (a point a second) shows the campaign sold out.
  nlohmann::json series;
  (void)wait_until([&] {
    series = nlohmann::json::parse(http_get(server.ops_port(), "/series").body);
    return !series["t"].empty() && series["remaining"].contains("m") &&
           series["remaining"]["m"].back() == 0;
  });
  ASSERT_TRUE(series["remaining"].contains("m")) << series.dump();
  EXPECT_EQ(series["t"].size(), series["claims_per_s"].size());
  EXPECT_EQ(series["t"].size(), series["remaining"]["m"].size());
  EXPECT_EQ(series["remaining"]["m"].back(), 0);

  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
  ASSERT_FALSE(mid_storm_body.empty()) << "no scrape happened while claims were issued";
  promtool_check(dir, mid_storm_body);
}

TEST(MetricsEndToEnd, SigtermDuringAStormLosesNoAcknowledgedClaim) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = campaign_file(dir, 50'000);
  auto server = std::make_unique<VoucherdProcess>(dir, redis_args(redis, secret, campaigns));
  ASSERT_GT(server->port(), 0);

  load::StormReport report;
  std::thread storm([&] { report = load::run_storm(crowd(server->target(), 40'000, 0)); });
  // SIGTERM once the crowd has been given vouchers (whatever the speed).
  (void)wait_until([&] { return claims(scrape(server->ops_port()), "issued") >= 500; });
  const std::optional<int> exit_code = server->stop(SIGTERM);
  storm.join();
  EXPECT_EQ(exit_code, std::optional<int>(0)) << server->stderr_text();
  EXPECT_GE(report.issued, 500);
  EXPECT_LT(report.issued, 40'000) << "the storm ended before SIGTERM: nothing was tested";

  // Every voucher the crowd was given is in the claim log: a fresh voucherd
  // on the same Redis finds each one, bound to its member.
  VoucherdProcess fresh(dir, redis_args(redis, secret, campaigns));
  ASSERT_GT(fresh.port(), 0);
  const Client client(fresh.target());
  std::int64_t found = 0;
  for (const auto& [member, code] : report.code_by_member) {
    const auto v = client.get_voucher(code);
    ASSERT_TRUE(v.ok()) << "acknowledged voucher " << code << " of " << member
                        << " is lost: " << v.status.error_message();
    EXPECT_EQ(v.response.member_id(), member);
    ++found;
  }
  EXPECT_EQ(found, static_cast<std::int64_t>(report.code_by_member.size()));
  EXPECT_GE(found, 500);
  // Both drains handed their leased units back.
  EXPECT_EQ(fresh.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(redis.cli({"HLEN", "vd:{m}:leases"}), "0");
}

}  // namespace
}  // namespace voucherd::testing
