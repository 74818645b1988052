// cluster_e2e_test — proves voucherd on a real Redis Cluster (three
// primaries made with `redis-cli --cluster create`, AOF appendfsync always)
// with two voucherd replicas given --redis-cluster, called by members who
// press once and take the first answer:
//   1. six campaigns created on one replica are served by both; their keys
//      spread over at least two primaries (each campaign on the primary of
//      its slot); crowds on both replicas, then newcomers until SOLD_OUT:
//      every campaign sells out to exactly its stock, and every voucher a
//      member was told of is in the cluster under that member.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_cluster.h"
#include "tests/support/replicas.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

using std::chrono::seconds;

bool ready(const VoucherdProcess& p) { return http_get(p.ops_port(), "/readyz").status == 200; }

std::string seed_list(const RedisCluster& cluster) {
  std::string out;
  for (const auto& n : cluster.seeds()) out += (out.empty() ? "" : ",") + n.text();
  return out;
}

// The node holding the campaign (its definition; size() when none does).
std::size_t node_of(RedisCluster& cluster, const std::string& campaign) {
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (cluster.node(i).cli({"EXISTS", "vd:{" + campaign + "}:def"}) == "1") return i;
  }
  return cluster.size();
}

TEST(Cluster, SixCampaignsSpreadOverThePrimariesAndEachSellsOutExactly) {
  constexpr std::int64_t kStock = 600;
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  for (int i = 0; i < 2; ++i) {
    replicas.push_back(std::make_unique<VoucherdProcess>(
        dir, std::vector<std::string>{"--store", "redis", "--redis-cluster", seed_list(cluster),
                                      "--secret-file", secret, "--grpc-threads", "1",
                                      "--replica-id", "replica-" + std::to_string(i)}));
    ASSERT_GT(replicas.back()->port(), 0) << replicas.back()->stderr_text();
  }
  // Ready with no traffic.
  for (auto& r : replicas) {
    ASSERT_TRUE(wait_until([&] { return ready(*r); }, seconds(10))) << r->stderr_text();
  }
  std::vector<std::string> campaigns;
  for (int c = 0; c < 6; ++c) campaigns.push_back("city-" + std::to_string(c));
  for (const auto& id : campaigns) {
    const auto created =
        Client(replicas[0]->target()).create_campaign(first_come_campaign(id, kStock, 3).message());
    ASSERT_TRUE(created.ok()) << created.status.error_message();
  }
  // The other replica serves them within a second or so (the registry).
  for (const auto& id : campaigns) {
    EXPECT_TRUE(
        wait_until([&] { return Client(replicas[1]->target()).get_campaign(id).ok(); }, seconds(5)))
        << id;
  }
  // Every campaign on the primary of its slot, over at least two primaries.
  std::set<std::size_t> nodes;
  for (const auto& id : campaigns) {
    const std::size_t n = node_of(cluster, id);
    EXPECT_LT(n, cluster.size()) << id << " is on no node";
    nodes.insert(n);
  }
  EXPECT_GE(nodes.size(), 2u) << "six campaigns on one primary";

  // Crowds on both replicas and every campaign at once, no retries.
  std::vector<load::StormReport> reports(12);
  std::vector<std::thread> crowds;
  for (std::size_t k = 0; k < 12; ++k) {
    crowds.emplace_back([&, k] {
      load::StormOptions o;
      o.target = replicas[k % 2]->target();
      o.campaign_id = campaigns[k / 2];
      o.member_first = static_cast<std::int64_t>(k % 2) * 1'000'000;
      o.members = 250;
      o.repeat_share = 0.2;
      o.concurrency = 4;
      o.max_seconds = 60;
      o.seed = 300 + k;
      reports[k] = load::run_storm(o);
    });
  }
  for (auto& t : crowds) t.join();
  std::map<std::string, Acknowledged> ack;
  for (std::size_t k = 0; k < 12; ++k) ack[campaigns[k / 2]].add(reports[k]);
  // Newcomers, each pressing once, until every campaign answers SOLD_OUT.
  for (const auto& id : campaigns) {
    bool sold_out = false;
    std::map<std::string, int> others;
    const auto until = std::chrono::steady_clock::now() + seconds(60);
    for (int m = 0; !sold_out && std::chrono::steady_clock::now() < until; ++m) {
      const std::string member = "late-" + std::to_string(m);
      const Press p = press_once(replicas[static_cast<std::size_t>(m % 2)]->target(), id, member);
      if (p.ok()) {
        ack[id].add(member, p.response.voucher().code());
      } else if (p.reason() == "SOLD_OUT") {
        sold_out = true;
      } else {
        ++others[std::to_string(p.status.error_code()) + " " + p.reason()];
      }
    }
    EXPECT_TRUE(sold_out) << id;
    for (const auto& [answer, n] : others) std::cout << id << ": " << n << " x " << answer << "\n";
  }
  // Exactly the stock of each, on its own primary; nothing leased, nothing
  // left; every acknowledged voucher there under its member.
  for (const auto& id : campaigns) {
    const std::size_t n = node_of(cluster, id);
    ASSERT_LT(n, cluster.size());
    RedisServer& node = cluster.node(n);
    EXPECT_EQ(redis_sum(node, "vd:{" + id + "}:issued"), kStock) << id;
    EXPECT_EQ(node.cli({"HGET", "vd:{" + id + "}:issued", "_members"}), std::to_string(kStock))
        << id;
    EXPECT_EQ(redis_sum(node, "vd:{" + id + "}:stock"), 0) << id;
    EXPECT_EQ(redis_sum(node, "vd:{" + id + "}:leased"), 0) << id;
    EXPECT_EQ(ack[id].code_by_member.size(), static_cast<std::size_t>(kStock)) << id;
    EXPECT_EQ(ack[id].members_with_two, 0) << id;
    EXPECT_EQ(ack[id].codes_with_two, 0) << id;
    EXPECT_EQ(missing_in_redis(node, id, ack[id]), 0) << id;
  }
  std::cout << "six campaigns over " << nodes.size() << " of " << cluster.size()
            << " primaries, each sold out to exactly " << kStock << "\n";
  for (auto& r : replicas) EXPECT_EQ(r->stop(SIGTERM), std::optional<int>(0)) << r->stderr_text();
}

}  // namespace
}  // namespace voucherd::testing
