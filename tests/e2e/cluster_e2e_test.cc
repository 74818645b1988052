// cluster_e2e_test — proves voucherd on a real Redis Cluster (three
// primaries made with `redis-cli --cluster create`, AOF appendfsync always)
// with two voucherd replicas given --redis-cluster, called by members who
// press once and take the first answer:
//   1. six campaigns created on one replica are served by both; their keys
//      spread over at least two primaries (each campaign on the primary of
//      its slot); crowds on both replicas, then newcomers until SOLD_OUT:
//      every campaign sells out to exactly its stock, and every voucher a
//      member was told of is in the cluster under that member;
//   2. the same with one primary killed (SIGKILL) mid-storm and restarted
//      from its AOF (appendfsync always) a second later: no acknowledged
//      voucher lost, exact sell-outs, both replicas ready again unaided, and
//      a member whose claim was written but never answered (UNAVAILABLE)
//      gets that voucher by pressing again;
//   3. a campaign's slot migrated to another primary mid-storm with
//      `redis-cli --cluster reshard`: exact sell-out, no duplicate, every
//      acknowledged voucher on the new primary.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "server/redis/slots.h"
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

// A cluster, two voucherd replicas on it, and campaigns created on one.
struct ClusterShop {
  static constexpr std::int64_t kStock = 600;
  TempDir dir;
  RedisCluster cluster{dir};
  std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  std::vector<std::string> campaigns;
  std::map<std::string, Acknowledged> ack;

  void start(const std::vector<std::string>& ids) {
    ASSERT_TRUE(cluster.ready());
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
    campaigns = ids;
    for (const auto& id : campaigns) {
      const auto created = Client(replicas[0]->target())
                               .create_campaign(first_come_campaign(id, kStock, 3).message());
      ASSERT_TRUE(created.ok()) << created.status.error_message();
    }
    // The other replica serves them within a second or so (the registry).
    for (const auto& id : campaigns) {
      EXPECT_TRUE(wait_until([&] { return Client(replicas[1]->target()).get_campaign(id).ok(); },
                             seconds(5)))
          << id;
    }
  }

  // Crowds on both replicas and every campaign at once, no retries; `during`
  // runs meanwhile.
  void storm(const std::function<void()>& during = {}) {
    const std::size_t n = 2 * campaigns.size();
    std::vector<load::StormReport> reports(n);
    std::vector<std::thread> crowds;
    for (std::size_t k = 0; k < n; ++k) {
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
    const auto started = std::chrono::steady_clock::now();
    if (during) during();
    const double during_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    for (auto& t : crowds) t.join();
    std::int64_t issued = 0;
    std::map<int, std::int64_t> errors;
    double longest_s = 0;
    for (std::size_t k = 0; k < n; ++k) {
      ack[campaigns[k / 2]].add(reports[k]);
      issued += reports[k].issued;
      for (const auto& [code, count] : reports[k].errors_by_code) errors[code] += count;
      longest_s = std::max(longest_s, reports[k].elapsed_s);
    }
    // What the crowds met, and whether the event fell inside the storm.
    std::cout << "storm: " << issued << " issued, longest crowd " << longest_s
              << " s, the event took " << during_s << " s from the start";
    for (const auto& [code, count] : errors) std::cout << "; " << count << " x status " << code;
    std::cout << "\n";
  }

  // Newcomers, each pressing once, until every campaign answers SOLD_OUT.
  void drain() {
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
      for (const auto& [answer, count] : others) {
        std::cout << id << ", newcomers: " << count << " x " << answer << "\n";
      }
    }
  }

  // Exactly the stock of each campaign, on its own primary; nothing leased,
  // nothing left; every acknowledged voucher there under its member. When
  // `unanswered` is set, writes whose answer was lost (a primary killed
  // with claims on the wire) may hold vouchers nobody was told of: each
  // such member, pressing again, gets the voucher the store holds.
  void expect_sold_out_exactly(bool unanswered = false) {
    if (unanswered) answer_the_unanswered();
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
  }

  void answer_the_unanswered() {
    for (const auto& id : campaigns) {
      const std::size_t n = node_of(cluster, id);
      ASSERT_LT(n, cluster.size());
      const std::string prefix = "vd:{" + id + "}:m:";
      std::istringstream keys(cluster.node(n).cli({"--scan", "--pattern", prefix + "*"}));
      int retried = 0;
      for (std::string key; std::getline(keys, key);) {
        const std::string member = key.substr(prefix.size());
        if (ack[id].code_by_member.contains(member)) continue;
        const Press p = press_once(replicas[0]->target(), id, member);
        EXPECT_TRUE(p.ok()) << member << ": " << p.status.error_message();
        if (!p.ok()) continue;
        EXPECT_EQ(p.response.voucher().code(), cluster.node(n).cli({"GET", key})) << member;
        ack[id].add(member, p.response.voucher().code());
        ++retried;
      }
      std::cout
          << id << ": " << retried << " members held a voucher they were not told of"
          << " (their claim's answer was lost with the primary); pressing again, each got it\n";
    }
  }

  void stop() {
    for (auto& r : replicas) EXPECT_EQ(r->stop(SIGTERM), std::optional<int>(0)) << r->stderr_text();
  }
};

std::vector<std::string> six_campaigns() {
  std::vector<std::string> out;
  for (int c = 0; c < 6; ++c) out.push_back("city-" + std::to_string(c));
  return out;
}

TEST(Cluster, SixCampaignsSpreadOverThePrimariesAndEachSellsOutExactly) {
  ClusterShop shop;
  shop.start(six_campaigns());
  // Every campaign on the primary of its slot, over at least two primaries.
  std::set<std::size_t> nodes;
  for (const auto& id : shop.campaigns) {
    const std::size_t n = node_of(shop.cluster, id);
    EXPECT_LT(n, shop.cluster.size()) << id << " is on no node";
    nodes.insert(n);
  }
  EXPECT_GE(nodes.size(), 2u) << "six campaigns on one primary";
  shop.storm();
  shop.drain();
  shop.expect_sold_out_exactly();
  std::cout << "six campaigns over " << nodes.size() << " of " << shop.cluster.size()
            << " primaries, each sold out to exactly " << ClusterShop::kStock << "\n";
  shop.stop();
}

TEST(Cluster, APrimaryKilledAndRestartedMidStormLosesNothing) {
  ClusterShop shop;
  shop.start(six_campaigns());
  std::size_t victim = shop.cluster.size();
  shop.storm([&] {
    // Mid-storm: once some vouchers are out, the primary of the first
    // campaign dies (SIGKILL) and comes back a second later from its AOF.
    victim = node_of(shop.cluster, shop.campaigns[0]);
    ASSERT_LT(victim, shop.cluster.size());
    EXPECT_TRUE(wait_until(
        [&] {
          return redis_sum(shop.cluster.node(victim), "vd:{" + shop.campaigns[0] + "}:issued") >=
                 100;
        },
        seconds(30)));
    shop.cluster.kill_hard(victim);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    EXPECT_TRUE(shop.cluster.restart(victim)) << "the cluster did not come back whole";
  });
  // Nobody calls a repair: both replicas are ready again on their own.
  for (auto& r : shop.replicas) {
    EXPECT_TRUE(wait_until([&] { return ready(*r); }, seconds(30))) << r->stderr_text();
  }
  shop.drain();
  shop.expect_sold_out_exactly(/*unanswered=*/true);
  shop.stop();
}

TEST(Cluster, ASlotMigratedMidStormSellsOutExactlyWithNoDuplicate) {
  TempDir probe_dir;
  ClusterShop shop;
  ASSERT_TRUE(shop.cluster.ready());
  // A campaign in slot 0, the first slot of its primary: `redis-cli
  // --cluster reshard --cluster-slots 1` moves a primary's lowest slot.
  std::string id;
  for (int n = 0; n < 1'000'000 && id.empty(); ++n) {
    const std::string candidate = "moving-" + std::to_string(n);
    if (redis::key_slot("{" + candidate + "}") == 0) id = candidate;
  }
  ASSERT_FALSE(id.empty());
  shop.start({id});
  const std::size_t from = node_of(shop.cluster, id);
  ASSERT_LT(from, shop.cluster.size());
  const std::size_t to = (from + 1) % shop.cluster.size();
  std::string reshard_out;
  int reshard_exit = -1;
  shop.storm([&] {
    EXPECT_TRUE(wait_until(
        [&] { return redis_sum(shop.cluster.node(from), "vd:{" + id + "}:issued") >= 100; },
        seconds(30)));
    std::string err;
    reshard_exit = run_program(
        probe_dir,
        {"/usr/bin/redis-cli", "--cluster", "reshard", shop.cluster.address(from).text(),
         "--cluster-from", shop.cluster.node_id(from), "--cluster-to", shop.cluster.node_id(to),
         "--cluster-slots", "1", "--cluster-yes", "--cluster-pipeline", "5"},
        &reshard_out, &err, seconds(60));
  });
  EXPECT_EQ(reshard_exit, 0) << reshard_out;
  EXPECT_EQ(node_of(shop.cluster, id), to) << "the campaign's slot did not move";
  shop.drain();
  shop.expect_sold_out_exactly();
  shop.stop();
}

}  // namespace
}  // namespace voucherd::testing
