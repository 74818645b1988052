// redis_connection_test — proves, against a real redis-server started by the
// test, that voucherd's Redis connection parses URLs strictly, pipelines
// commands in order, survives Redis losing its script cache (NOSCRIPT ->
// reload), and reports a dead or unreachable Redis as an error instead of
// hanging or crashing; that the primary locator refuses a replica (ROLE)
// and a connection that answers READONLY is broken; that sentinel lists
// parse strictly; and that the timeout bounds a whole pipeline, also
// against a server that reads a little at a time (through the link proxy
// of tests/support/link_proxy.h).
#include <gtest/gtest.h>

#include "server/redis/connection.h"
#include "server/redis/primary.h"
#include "tests/support/link_proxy.h"
#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {
namespace {

using redis::Connection;
using redis::Reply;

TEST(RedisUrl, ParsesHostPortDbAndPassword) {
  auto ep = redis::parse_url("redis://127.0.0.1:7000/3", nullptr);
  ASSERT_TRUE(ep.has_value()) << ep.error();
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 7000);
  EXPECT_EQ(ep->db, 3);
  EXPECT_EQ(ep->password, "");

  auto with_env = redis::parse_url("redis://localhost", "from-env");
  ASSERT_TRUE(with_env.has_value());
  EXPECT_EQ(with_env->port, 6379);
  EXPECT_EQ(with_env->password, "from-env");

  auto with_url = redis::parse_url("redis://:in-url@h:1/0", "from-env");
  ASSERT_TRUE(with_url.has_value());
  EXPECT_EQ(with_url->password, "in-url");
  EXPECT_EQ(with_url->host, "h");

  for (const char* bad : {"http://h:1", "redis://", "redis://h:0", "redis://h:70000", "redis://h:x",
                          "redis://h:1/16", "redis://h:1/a"}) {
    EXPECT_FALSE(redis::parse_url(bad, nullptr).has_value()) << bad;
  }
}

TEST(RedisSentinels, ParsesHostPortListsStrictly) {
  auto list = redis::parse_sentinels("127.0.0.1:26379,sentinel-b:26380", "pw");
  ASSERT_TRUE(list.has_value()) << list.error();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].host, "127.0.0.1");
  EXPECT_EQ((*list)[0].port, 26379);
  EXPECT_EQ((*list)[1].host, "sentinel-b");
  EXPECT_EQ((*list)[1].port, 26380);
  EXPECT_EQ((*list)[1].password, "pw");
  for (const char* bad : {"", "h", ":1", "h:0", "h:65536", "h:x", "h:1,", "h:1,,h:2"}) {
    const auto r = redis::parse_sentinels(bad, nullptr);
    EXPECT_FALSE(r.has_value()) << bad;
  }
  EXPECT_NE(redis::parse_sentinels("h:x", nullptr).error().find("\"h:x\""), std::string::npos);
}

TEST(RedisPrimary, AReplicaIsRefusedAndReadOnlyBreaksTheConnection) {
  TempDir dir;
  RedisServerOptions p;
  p.name = "primary";
  RedisServer primary(dir, p);
  RedisServerOptions r;
  r.name = "replica";
  r.config = {"replicaof 127.0.0.1 " + std::to_string(primary.port())};
  RedisServer replica(dir, r);

  redis::PrimaryLocator to_primary(*redis::parse_url(primary.url(), nullptr));
  auto ok = to_primary.connect(std::chrono::milliseconds(2000));
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_TRUE(to_primary.current(ok->generation));

  redis::PrimaryLocator to_replica(*redis::parse_url(replica.url(), nullptr));
  auto refused = to_replica.connect(std::chrono::milliseconds(2000));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().find("not a primary"), std::string::npos) << refused.error();

  // A connection made before its server became a replica: READONLY marks
  // it broken (its owner then reconnects through the locator).
  auto plain = replica.connect();
  ASSERT_TRUE(plain.has_value()) << plain.error();
  auto written = (*plain)->command({"SET", "k", "v"});
  ASSERT_TRUE(written.has_value()) << written.error();
  EXPECT_TRUE(redis::is_readonly(*written)) << written->str;
  EXPECT_TRUE((*plain)->broken());
}

TEST(RedisConnection, PipelinesAndReloadsScriptsAfterFlush) {
  TempDir dir;
  RedisServer server(dir, /*aof=*/false);
  auto conn = server.connect();
  ASSERT_TRUE(conn.has_value()) << conn.error();

  auto replies = (*conn)->pipeline({{"SET", "k", "v"},
                                    {"INCR", "n"},
                                    {"INCR", "n"},
                                    {"GET", "k"},
                                    {"GET", "missing"},
                                    {"HSET", "k", "f", "v"}});
  ASSERT_TRUE(replies.has_value()) << replies.error();
  ASSERT_EQ(replies->size(), 6u);
  EXPECT_EQ((*replies)[0].type, Reply::Type::kStatus);
  EXPECT_EQ((*replies)[2].integer, 2);
  EXPECT_EQ((*replies)[3].str, "v");
  EXPECT_EQ((*replies)[4].type, Reply::Type::kNil);
  EXPECT_TRUE((*replies)[5].is_error());  // WRONGTYPE: an error reply, not a failure
  EXPECT_FALSE((*conn)->broken());

  const redis::Script script("return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}");
  auto first = (*conn)->eval(script, {"counter"}, {"hello"});
  ASSERT_TRUE(first.has_value()) << first.error();
  ASSERT_EQ(first->elements.size(), 3u);
  EXPECT_EQ(first->elements[1].str, "hello");
  EXPECT_EQ(first->elements[2].integer, 1);

  // Redis forgets scripts (restart, SCRIPT FLUSH): eval loads it again.
  ASSERT_TRUE((*conn)->command({"SCRIPT", "FLUSH"}).has_value());
  auto second = (*conn)->eval(script, {"counter"}, {"again"});
  ASSERT_TRUE(second.has_value()) << second.error();
  EXPECT_EQ(second->elements[2].integer, 2);
}

TEST(RedisConnection, DeadOrUnreachableRedisIsAnError) {
  TempDir dir;
  RedisServer server(dir, /*aof=*/false);
  auto ep = redis::parse_url(server.url(), nullptr);
  ASSERT_TRUE(ep.has_value());
  auto conn = Connection::connect(*ep, std::chrono::milliseconds(500));
  ASSERT_TRUE(conn.has_value());
  server.kill_hard();
  auto r = (*conn)->command({"PING"});
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE((*conn)->broken());
  EXPECT_FALSE((*conn)->command({"PING"}).has_value());

  auto refused = Connection::connect(*ep, std::chrono::milliseconds(500));
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().find("cannot connect"), std::string::npos) << refused.error();
}

TEST(RedisConnection, TheTimeoutBoundsAWholePipelineNotEachRead) {
  TempDir dir;
  RedisServer redis(dir, /*aof=*/false);
  LinkProxy proxy(redis.port());
  redis::Endpoint ep;
  ep.host = "127.0.0.1";
  ep.port = proxy.port();
  constexpr auto kTimeout = std::chrono::milliseconds(1000);
  auto conn = Connection::connect(ep, kTimeout);
  ASSERT_TRUE(conn.has_value()) << conn.error();
  // 40 SETs of 4 KiB, read by the server at 8 KiB every 250 ms: each SET
  // is answered within a read's timeout, the whole takes about 5 s.
  std::vector<redis::Command> pipeline;
  for (int i = 0; i < 40; ++i) {
    pipeline.push_back({"SET", "slow:" + std::to_string(i), std::string(4096, 's')});
  }
  proxy.slow_reader(8192, std::chrono::milliseconds(250));
  const auto sent = std::chrono::steady_clock::now();
  auto r = (*conn)->pipeline(pipeline);
  const auto took = std::chrono::steady_clock::now() - sent;
  ASSERT_FALSE(r.has_value()) << "a 5 s exchange passed a 1 s timeout";
  EXPECT_NE(r.error().find("timeout"), std::string::npos) << r.error();
  EXPECT_TRUE((*conn)->broken());
  EXPECT_GE(took, kTimeout);
  EXPECT_LT(took, kTimeout + kTimeout / 2) << "bounded by the timeout and a tenth of it";

  // The same through the cluster router's split calls: receive() is
  // bounded by the timeout too.
  proxy.heal();
  auto split = Connection::connect(ep, kTimeout);
  ASSERT_TRUE(split.has_value()) << split.error();
  proxy.slow_reader(8192, std::chrono::milliseconds(250));
  for (const auto& c : pipeline) ASSERT_TRUE((*split)->append(c).has_value());
  const auto started = std::chrono::steady_clock::now();
  std::vector<Reply> replies;
  const bool round =
      (*split)->flush().has_value() && (*split)->receive(pipeline.size(), &replies).has_value();
  EXPECT_FALSE(round);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2 * (kTimeout + kTimeout / 10));
  EXPECT_LT(replies.size(), pipeline.size());

  // A healthy link: the same pipeline passes.
  proxy.heal();
  auto healthy = Connection::connect(ep, kTimeout);
  ASSERT_TRUE(healthy.has_value()) << healthy.error();
  auto ok = (*healthy)->pipeline(pipeline);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(ok->size(), pipeline.size());
}

}  // namespace
}  // namespace voucherd::testing
