// cluster_test — proves, against a real three-primary Redis Cluster started
// by the test (tests/support/redis_cluster.h), that:
//   - key_slot agrees with the server's CLUSTER KEYSLOT, key by key;
//   - the router spreads campaigns over every primary and each key lands
//     on the node that owns its slot;
//   - a batch mixing slots of all three primaries answers in the caller's
//     order, one connection per primary;
//   - a slot moved to another primary is followed through MOVED, and no
//     command runs twice (INCR counts are exact);
//   - during a migration ASK is followed without changing the map, and a
//     split multi-key command meets TRYAGAIN until the bound, then fails;
//   - CLUSTERDOWN is answered as such;
//   - a killed primary fails only its own commands, and after its restart
//     they work again;
//   - EVALSHA after a primary's restart reloads the script on that node.
#include "server/redis/cluster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "server/redis/keys.h"
#include "tests/support/redis_cluster.h"

namespace voucherd::testing {
namespace {

using redis::ClusterRouter;
using redis::key_slot;
using redis::NodeAddress;
using redis::Reply;
using redis::RoutedCommand;
using redis::RoutedReply;
using redis::RouteStatus;
using redis::Slot;

constexpr std::chrono::milliseconds kTimeout{2000};

std::string describe(const RoutedReply& r) {
  return std::string(redis::route_status_name(r.status)) + " " + r.reply.str + " " + r.error;
}

// The router of a test: every node as a seed.
ClusterRouter make_router(const RedisCluster& cluster) {
  return ClusterRouter(redis::ClusterOptions{cluster.seeds(), "", kTimeout});
}

// Which node serves `slot`, by the router's map.
std::size_t owner(const RedisCluster& cluster, const ClusterRouter& router, Slot slot) {
  const NodeAddress* node = router.slot_map().primary(slot);
  return node == nullptr ? cluster.size() : cluster.index_of(*node);
}

// A campaign id whose slot `node` serves.
std::string campaign_on(const RedisCluster& cluster, const ClusterRouter& router,
                        std::size_t node) {
  for (int i = 0; i < 10'000; ++i) {
    std::string id = "campaign-" + std::to_string(i);
    if (owner(cluster, router, key_slot(id)) == node) return id;
  }
  ADD_FAILURE() << "no campaign id found on node " << node;
  return "";
}

// Moving a slot by hand, as redis-cli --cluster reshard does it.
void begin_migration(RedisCluster& cluster, Slot slot, std::size_t from, std::size_t to) {
  const std::string s = std::to_string(slot);
  cluster.command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", cluster.node_id(from)});
  cluster.command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", cluster.node_id(to)});
}

void migrate_keys(RedisCluster& cluster, std::size_t from, std::size_t to,
                  const std::vector<std::string>& keys) {
  redis::Command migrate = {
      "MIGRATE", "127.0.0.1", std::to_string(cluster.node(to).port()), "", "0", "5000", "KEYS"};
  migrate.insert(migrate.end(), keys.begin(), keys.end());
  EXPECT_EQ(cluster.command(from, migrate).str, "OK");
}

void finish_migration(RedisCluster& cluster, Slot slot, std::size_t to) {
  // The importing node first, then the others, as the specification orders it.
  const std::string id = cluster.node_id(to);
  cluster.command(to, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", id});
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (i != to) cluster.command(i, {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", id});
  }
}

TEST(ClusterKeySlot, AgreesWithClusterKeyslot) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());

  std::vector<std::string> keys = {"",
                                   "{",
                                   "}",
                                   "{}",
                                   "{}{x}",
                                   "a{}b",
                                   "a{b",
                                   "a}b{c",
                                   "{a}{b}",
                                   "x{a}y{b}z",
                                   "{{a}}",
                                   "foo{{bar}}zap",
                                   "{user1000}.following",
                                   "\xff\xfe{\x01}",
                                   std::string(1, '\0'),
                                   "vd:{}:stock"};
  for (int i = 0; i < 400; ++i) {
    const redis::CampaignKeys campaign("campaign-" + std::to_string(i));
    keys.push_back(campaign.stock());
    keys.push_back(campaign.member("member-" + std::to_string(i)));
    keys.push_back(campaign.voucher("CODE" + std::to_string(i * 7919)));
    keys.push_back("plain-key-" + std::to_string(i));
    std::string bytes;
    for (int b = 0; b < 1 + i % 23; ++b)
      bytes.push_back(static_cast<char>((i * 31 + b * 17) % 256));
    keys.push_back(bytes);
  }
  keys.push_back(std::string(redis::kRegistryKey));

  auto connection = cluster.node(0).connect();
  ASSERT_TRUE(connection.has_value()) << connection.error();
  std::vector<redis::Command> asks;
  for (const std::string& key : keys) asks.push_back({"CLUSTER", "KEYSLOT", key});
  auto answers = (*connection)->pipeline(asks);
  ASSERT_TRUE(answers.has_value()) << answers.error();
  ASSERT_EQ(answers->size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ((*answers)[i].type, Reply::Type::kInteger) << (*answers)[i].str;
    EXPECT_EQ(key_slot(keys[i]), (*answers)[i].integer) << "key #" << i;
  }
}

TEST(ClusterRouter, SpreadsCampaignsOverEveryPrimary) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  // A dead seed first: the router asks the next one.
  std::vector<NodeAddress> seeds = {{"127.0.0.1", free_loopback_port()}};
  for (const NodeAddress& node : cluster.seeds()) seeds.push_back(node);
  ClusterRouter router(redis::ClusterOptions{seeds, "", kTimeout});

  std::vector<NodeAddress> primaries = router.primaries();
  std::sort(primaries.begin(), primaries.end(),
            [](const NodeAddress& a, const NodeAddress& b) { return a.port < b.port; });
  std::vector<NodeAddress> expected = cluster.seeds();
  std::sort(expected.begin(), expected.end(),
            [](const NodeAddress& a, const NodeAddress& b) { return a.port < b.port; });
  EXPECT_EQ(primaries, expected);
  EXPECT_EQ(router.slot_map().slots_served(), redis::kSlotCount);

  constexpr int kCampaigns = 300;
  std::vector<RoutedCommand> commands;
  std::vector<int> per_node(cluster.size(), 0);
  for (int i = 0; i < kCampaigns; ++i) {
    const redis::CampaignKeys keys("campaign-" + std::to_string(i));
    commands.push_back(RoutedCommand::for_key(keys.stock(), {"HSET", keys.stock(), "sku", "5"}));
    const std::size_t node = owner(cluster, router, key_slot(keys.stock()));
    ASSERT_LT(node, cluster.size());
    ++per_node[node];
  }
  const auto replies = router.execute(commands);
  ASSERT_EQ(replies.size(), commands.size());
  for (const RoutedReply& r : replies) {
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.reply.integer, 1);
  }
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    EXPECT_GT(per_node[i], 0) << "node " << i;
    // Every key is where its slot's owner is, and nowhere else.
    EXPECT_EQ(cluster.command(i, {"DBSIZE"}).integer, per_node[i]) << "node " << i;
  }
  EXPECT_EQ(router.counters().moved, 0u);
  EXPECT_EQ(router.counters().asked, 0u);
}

TEST(ClusterRouter, BatchOverAllPrimariesAnswersInOrder) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  // Thirty campaigns, spread over the three nodes by their slots; each gets
  // INCRBY i+1, a GET and a second INCRBY, so within a node the order of
  // the commands decides the answers.
  std::vector<std::string> ids;
  for (int i = 0; i < 30; ++i) ids.push_back("batch-" + std::to_string(i));
  std::set<std::size_t> nodes_seen;
  std::vector<RoutedCommand> commands;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string key = redis::CampaignKeys(ids[i]).returns();
    nodes_seen.insert(owner(cluster, router, key_slot(key)));
    const std::string by = std::to_string(i + 1);
    commands.push_back(RoutedCommand::for_key(key, {"INCRBY", key, by}));
    commands.push_back(RoutedCommand::for_key(key, {"GET", key}));
    commands.push_back(RoutedCommand::for_key(key, {"INCRBY", key, by}));
  }
  EXPECT_EQ(nodes_seen.size(), cluster.size());

  const auto replies = router.execute(commands);
  ASSERT_EQ(replies.size(), commands.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto n = static_cast<long long>(i + 1);
    ASSERT_TRUE(replies[3 * i].ok()) << describe(replies[3 * i]);
    EXPECT_EQ(replies[3 * i].reply.integer, n);
    EXPECT_EQ(replies[3 * i + 1].reply.str, std::to_string(n));
    EXPECT_EQ(replies[3 * i + 2].reply.integer, 2 * n);
  }
  // One connection per primary (and one for the first map read, reused).
  EXPECT_EQ(router.counters().connects, cluster.size());
  EXPECT_EQ(router.counters().moved, 0u);
}

TEST(ClusterRouter, FollowsAMovedSlotWithoutRunningAnythingTwice) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  const std::string id = campaign_on(cluster, router, 0);
  const redis::CampaignKeys keys(id);
  const Slot slot = key_slot(id);
  const std::vector<std::string> counters = {keys.returns(), keys.seed(), keys.drawn()};
  // A key of another node in the same batch, untouched by the move.
  const std::string other = redis::CampaignKeys(campaign_on(cluster, router, 2)).returns();

  std::vector<RoutedCommand> batch;
  for (const std::string& key : counters)
    batch.push_back(RoutedCommand::for_key(key, {"INCR", key}));
  batch.push_back(RoutedCommand::for_key(other, {"INCR", other}));
  for (const RoutedReply& r : router.execute(batch)) ASSERT_TRUE(r.ok()) << describe(r);

  // Move the slot from node 0 to node 1, keys and all, behind the router's back.
  begin_migration(cluster, slot, 0, 1);
  const Reply in_slot =
      cluster.command(0, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"});
  ASSERT_EQ(in_slot.elements.size(), counters.size());
  std::vector<std::string> to_move;
  for (const Reply& k : in_slot.elements) to_move.push_back(k.str);
  migrate_keys(cluster, 0, 1, to_move);
  finish_migration(cluster, slot, 1);

  // The router still sends the slot to node 0, which answers MOVED for each
  // of the three: they run on node 1 once, the other node's once too.
  const auto replies = router.execute(batch);
  ASSERT_EQ(replies.size(), batch.size());
  for (const RoutedReply& r : replies) {
    ASSERT_TRUE(r.ok()) << describe(r);
    EXPECT_EQ(r.reply.integer, 2);
  }
  EXPECT_EQ(router.counters().moved, counters.size());
  EXPECT_EQ(owner(cluster, router, slot), 1u);
  for (const std::string& key : counters) {
    EXPECT_EQ(cluster.command(1, {"GET", key}).str, "2") << key;
  }
  EXPECT_EQ(cluster.command(0, {"DBSIZE"}).integer, 0);

  // The map learnt it: no MOVED the next time.
  for (const RoutedReply& r : router.execute(batch)) EXPECT_EQ(r.reply.integer, 3);
  EXPECT_EQ(router.counters().moved, counters.size());
  // And a full re-read agrees.
  ASSERT_TRUE(router.refresh().has_value());
  EXPECT_EQ(owner(cluster, router, slot), 1u);
}

TEST(ClusterRouter, FollowsAskDuringAMigrationAndBoundsTryAgain) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  const std::string id = campaign_on(cluster, router, 1);
  const redis::CampaignKeys keys(id);
  const Slot slot = key_slot(id);
  const std::string gone = keys.member("moved-already");
  const std::string stays = keys.member("not-moved-yet");
  const std::string fresh = keys.member("created-during-migration");
  for (const std::string& key : {gone, stays}) {
    const RoutedReply r = router.command(key, {"SET", key, "1"});
    ASSERT_TRUE(r.ok()) << describe(r);
  }

  begin_migration(cluster, slot, 1, 2);
  migrate_keys(cluster, 1, 2, {gone});

  // gone: node 1 answers ASK -> node 2 after ASKING; stays: runs on node 1;
  // fresh: a key node 1 does not hold -> ASK too, created on node 2.
  const auto replies = router.execute({RoutedCommand::for_key(gone, {"INCR", gone}),
                                       RoutedCommand::for_key(stays, {"INCR", stays}),
                                       RoutedCommand::for_key(fresh, {"INCR", fresh})});
  ASSERT_EQ(replies.size(), 3u);
  for (const RoutedReply& r : replies) ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(replies[0].reply.integer, 2);
  EXPECT_EQ(replies[1].reply.integer, 2);
  EXPECT_EQ(replies[2].reply.integer, 1);
  EXPECT_EQ(router.counters().asked, 2u);
  EXPECT_EQ(router.counters().moved, 0u);
  // ASK leaves the map alone.
  EXPECT_EQ(owner(cluster, router, slot), 1u);

  // Where each key is now: node 2 holds the moved and the new key (read
  // with ASKING, as node 2 does not own the slot yet), node 1 the other.
  auto importing = cluster.node(2).connect();
  ASSERT_TRUE(importing.has_value()) << importing.error();
  auto read = (*importing)->pipeline({{"ASKING"}, {"GET", gone}, {"ASKING"}, {"GET", fresh}});
  ASSERT_TRUE(read.has_value()) << read.error();
  EXPECT_EQ((*read)[1].str, "2");
  EXPECT_EQ((*read)[3].str, "1");
  EXPECT_EQ(cluster.command(1, {"GET", stays}).str, "2");

  // A command on keys split by the migration gets TRYAGAIN every round,
  // until the bound: it never ran.
  const auto started = std::chrono::steady_clock::now();
  const RoutedReply split = router.command(gone, {"MGET", gone, stays});
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(split.status, RouteStatus::kRetriesExhausted) << describe(split);
  EXPECT_FALSE(redis::may_have_run(split.status));
  EXPECT_EQ(router.counters().try_again,
            static_cast<std::uint64_t>(redis::ClusterLimits::kRoundsMax));
  EXPECT_LT(took, redis::ClusterLimits::kRetryWindow + kTimeout);

  // Finish the migration: MOVED, then both keys from node 2.
  migrate_keys(cluster, 1, 2, {stays});
  finish_migration(cluster, slot, 2);
  const RoutedReply both = router.command(gone, {"MGET", gone, stays});
  ASSERT_TRUE(both.ok()) << describe(both);
  ASSERT_EQ(both.reply.elements.size(), 2u);
  EXPECT_EQ(both.reply.elements[0].str, "2");
  EXPECT_EQ(both.reply.elements[1].str, "2");
  EXPECT_EQ(router.counters().moved, 1u);
  EXPECT_EQ(owner(cluster, router, slot), 2u);
}

TEST(ClusterRouter, AnswersClusterDownAsSuch) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  const std::string id = campaign_on(cluster, router, 0);
  const std::string key = redis::CampaignKeys(id).stock();
  // Node 0 stops serving the slot; the router's map still names it.
  cluster.command(0, {"CLUSTER", "DELSLOTS", std::to_string(key_slot(id))});
  const RoutedReply r = router.command(key, {"HSET", key, "sku", "1"});
  EXPECT_EQ(r.status, RouteStatus::kClusterDown) << describe(r);
  EXPECT_TRUE(r.reply.str.starts_with("CLUSTERDOWN")) << r.reply.str;
  EXPECT_FALSE(redis::may_have_run(r.status));
}

TEST(ClusterRouter, KilledPrimaryFailsOnlyItsOwnCommandsUntilItIsBack) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  std::vector<RoutedCommand> batch;
  std::vector<std::size_t> node_of;
  for (int i = 0; i < 30; ++i) {
    const std::string key = redis::CampaignKeys("campaign-" + std::to_string(i)).returns();
    batch.push_back(RoutedCommand::for_key(key, {"INCR", key}));
    node_of.push_back(owner(cluster, router, key_slot(key)));
  }
  ASSERT_EQ(std::set<std::size_t>(node_of.begin(), node_of.end()).size(), cluster.size());
  for (const RoutedReply& r : router.execute(batch)) ASSERT_TRUE(r.ok()) << describe(r);

  constexpr std::size_t kKilled = 2;
  cluster.kill_hard(kKilled);
  auto replies = router.execute(batch);
  ASSERT_EQ(replies.size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (node_of[i] == kKilled) {
      // Its connection was found closed before writing, and no new one
      // could be opened: not sent, so it did not run.
      EXPECT_EQ(replies[i].status, RouteStatus::kNotSent) << i << " " << describe(replies[i]);
      EXPECT_FALSE(replies[i].error.empty());
    } else {
      ASSERT_TRUE(replies[i].ok()) << i << " " << describe(replies[i]);
      EXPECT_EQ(replies[i].reply.integer, 2) << i;
    }
  }

  ASSERT_TRUE(cluster.restart(kKilled));
  replies = router.execute(batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    ASSERT_TRUE(replies[i].ok()) << i << " " << describe(replies[i]);
    // The killed node's keys came back from its AOF at 1.
    EXPECT_EQ(replies[i].reply.integer, node_of[i] == kKilled ? 2 : 3) << i;
  }
}

TEST(ClusterRouter, EvalshaReloadsTheScriptOnARestartedPrimary) {
  TempDir dir;
  RedisCluster cluster(dir);
  ASSERT_TRUE(cluster.ready());
  ClusterRouter router = make_router(cluster);
  ASSERT_TRUE(router.refresh().has_value());

  const redis::Script script("return redis.call('INCR', KEYS[1])");
  const std::string key = redis::CampaignKeys(campaign_on(cluster, router, 1)).returns();
  const std::string elsewhere = redis::CampaignKeys(campaign_on(cluster, router, 0)).returns();

  // First use: NOSCRIPT on both nodes, loaded on each, run once.
  auto replies = router.execute(
      {RoutedCommand::eval(script, {key}, {}), RoutedCommand::eval(script, {elsewhere}, {})});
  ASSERT_TRUE(replies[0].ok()) << describe(replies[0]);
  ASSERT_TRUE(replies[1].ok()) << describe(replies[1]);
  EXPECT_EQ(replies[0].reply.integer, 1);
  EXPECT_EQ(replies[1].reply.integer, 1);
  EXPECT_EQ(router.counters().script_loads, 2u);

  RoutedReply r = router.eval(script, {key}, {});
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r.reply.integer, 2);
  EXPECT_EQ(router.counters().script_loads, 2u);

  // A restart empties node 1's script cache; the AOF keeps the count.
  cluster.kill_hard(1);
  ASSERT_TRUE(cluster.restart(1));
  r = router.eval(script, {key}, {});
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r.reply.integer, 3);
  EXPECT_EQ(router.counters().script_loads, 3u);
  r = router.eval(script, {elsewhere}, {});
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(r.reply.integer, 2);
  EXPECT_EQ(router.counters().script_loads, 3u);
}

}  // namespace
}  // namespace voucherd::testing
