// link_proxy_test — proves that the link proxy of the fault tests
// (tests/support/link_proxy.h) does to a real redis-server's connections
// what those tests say it does, seen through a connection of the store's own
// kind (server/redis/connection.h): it passes, delays each way, swallows
// both ways (blackhole) while still accepting, resets now or after exactly
// N bytes (so a pipeline lands in part), shuts one direction (half-open),
// holds a client's bytes and delivers them when healed (slow reader), and
// trickles them.
#include "tests/support/link_proxy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "server/redis/connection.h"
#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// What the tests' connections wait for any one read or write.
constexpr milliseconds kShortTimeout{400};

struct Rig {
  TempDir dir;
  RedisServer redis{dir, /*aof=*/false};
  LinkProxy proxy;
  explicit Rig(LinkProxyOptions options = {}) : proxy(redis.port(), options) {}

  [[nodiscard]] std::unique_ptr<redis::Connection> connect(milliseconds timeout = kShortTimeout) {
    redis::Endpoint ep;
    ep.host = "127.0.0.1";
    ep.port = proxy.port();
    auto conn = redis::Connection::connect(ep, timeout);
    EXPECT_TRUE(conn.has_value()) << conn.error();
    return conn ? std::move(*conn) : nullptr;
  }
  // A value straight from Redis, not through the proxy.
  [[nodiscard]] std::string get(const std::string& key) const { return redis.cli({"GET", key}); }
};

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// The bytes of `command` as the client sends it (RESP).
std::size_t resp_size(const redis::Command& command) {
  std::size_t n = 1 + std::to_string(command.size()).size() + 2;
  for (const std::string& a : command) {
    n += 1 + std::to_string(a.size()).size() + 2 + a.size() + 2;
  }
  return n;
}

TEST(LinkProxy, PassesAndAddsLatencyEachWay) {
  Rig rig;
  auto conn = rig.connect(milliseconds(2000));
  ASSERT_TRUE(conn);
  auto pong = conn->command({"PING"});
  ASSERT_TRUE(pong.has_value()) << pong.error();
  EXPECT_EQ(pong->str, "PONG");

  rig.proxy.add_latency(milliseconds(50));
  const auto sent = Clock::now();
  pong = conn->command({"PING"});
  const long long took_ms = ms_since(sent);
  ASSERT_TRUE(pong.has_value()) << pong.error();
  EXPECT_GE(took_ms, 100) << "50 ms each way";
  EXPECT_LT(took_ms, 1500);

  rig.proxy.heal();
  pong = conn->command({"SET", "after-heal", "1"});
  ASSERT_TRUE(pong.has_value()) << pong.error();
  EXPECT_EQ(rig.get("after-heal"), "1");
  EXPECT_EQ(rig.proxy.counters().accepted, 1u);
}

TEST(LinkProxy, BlackholeSwallowsBothWaysAcceptsAndHealsForNewConnections) {
  Rig rig;
  auto conn = rig.connect();
  ASSERT_TRUE(conn);
  rig.proxy.blackhole();
  const auto sent = Clock::now();
  auto r = conn->command({"SET", "swallowed", "1"});
  EXPECT_FALSE(r.has_value());
  EXPECT_GE(ms_since(sent), kShortTimeout.count() - 50) << "found out by the timeout only";
  EXPECT_EQ(rig.get("swallowed"), "") << "the write never reached Redis";
  // A new connection is accepted, and answered nothing.
  auto fresh = rig.connect();
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(fresh->command({"PING"}).has_value());
  EXPECT_GT(rig.proxy.counters().bytes_discarded, 0u);

  rig.proxy.heal();
  auto healed = rig.connect();
  ASSERT_TRUE(healed);
  auto pong = healed->command({"PING"});
  ASSERT_TRUE(pong.has_value()) << pong.error();
  EXPECT_EQ(pong->str, "PONG");
}

TEST(LinkProxy, ResetNowAndResetAfterExactlyNBytesOfAPipeline) {
  Rig rig;
  auto conn = rig.connect();
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->command({"PING"}).has_value());
  rig.proxy.reset();
  const auto sent = Clock::now();
  EXPECT_FALSE(conn->command({"PING"}).has_value());
  EXPECT_LT(ms_since(sent), kShortTimeout.count()) << "a reset is seen at once, not by timeout";
  EXPECT_GE(rig.proxy.counters().resets, 1u);

  // A pipeline of 100 SETs, cut in the middle of the 51st.
  std::vector<redis::Command> pipeline;
  std::size_t before_cut = 0;
  for (int i = 0; i < 100; ++i) {
    pipeline.push_back({"SET", "cut:" + std::to_string(i), std::string(100, 'v')});
    if (i < 50) before_cut += resp_size(pipeline.back());
  }
  const std::size_t cut = before_cut + resp_size(pipeline[50]) / 2;
  auto second = rig.connect();
  ASSERT_TRUE(second);
  rig.proxy.reset_after_client_bytes(cut);
  EXPECT_FALSE(second->pipeline(pipeline).has_value());
  const auto failed_at = Clock::now();
  EXPECT_TRUE(rig.proxy.reset_fired());
  EXPECT_LE(rig.proxy.reset_fired_at(), failed_at);
  EXPECT_GE(rig.proxy.reset_fired_at(), failed_at - milliseconds(100));
  EXPECT_EQ(rig.redis.cli({"DBSIZE"}), "50") << "the first 50 SETs landed, the cut one did not";
  // The link passes again.
  auto third = rig.connect();
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->command({"PING"}).has_value());

  // Counted from a marker, on the connection that sends it: another
  // connection's traffic does not move the cut.
  ASSERT_TRUE(third->command({"FLUSHALL"}).has_value());
  pipeline[50][1] = "cut-here";
  rig.proxy.reset_after_client_bytes(4, "cut-here");
  ASSERT_TRUE(third->command({"SET", "other", std::string(5000, 'o')}).has_value());
  auto fourth = rig.connect();
  ASSERT_TRUE(fourth);
  EXPECT_FALSE(fourth->pipeline(pipeline).has_value());
  EXPECT_TRUE(rig.proxy.reset_fired());
  EXPECT_EQ(rig.redis.cli({"DBSIZE"}), "51") << "\"other\" and the 50 SETs before the marker";
}

TEST(LinkProxy, HalfOpenShutsOneDirectionAndKeepsTheOther) {
  Rig rig;
  // Replies shut: the client reads end-of-file at once, its write landed.
  auto conn = rig.connect();
  ASSERT_TRUE(conn);
  rig.proxy.half_open(LinkDirection::kToClient);
  auto sent = Clock::now();
  EXPECT_FALSE(conn->command({"SET", "landed", "1"}).has_value());
  EXPECT_LT(ms_since(sent), kShortTimeout.count()) << "end-of-file is seen at once";
  EXPECT_TRUE(wait_until([&] { return rig.get("landed") == "1"; }, milliseconds(2000)));
  // New connections are shut the same way.
  auto fresh = rig.connect();
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(fresh->command({"PING"}).has_value());

  // Requests shut: the server hears goodbye, the client hears nothing.
  rig.proxy.heal();
  auto other = rig.connect();
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->command({"PING"}).has_value());
  rig.proxy.half_open(LinkDirection::kToServer);
  sent = Clock::now();
  EXPECT_FALSE(other->command({"SET", "never", "1"}).has_value());
  EXPECT_GE(ms_since(sent), kShortTimeout.count() - 50) << "found out by the timeout only";
  EXPECT_EQ(rig.get("never"), "");
}

TEST(LinkProxy, SlowReaderHoldsBytesUntilHealedThenTrickles) {
  Rig rig(LinkProxyOptions{.client_receive_buffer_bytes = 4096});
  auto conn = rig.connect();
  ASSERT_TRUE(conn);
  rig.proxy.slow_reader(0, milliseconds(0));
  EXPECT_FALSE(conn->command({"SET", "late", "1"}).has_value());
  EXPECT_EQ(rig.get("late"), "") << "held in the sockets, not read";
  rig.proxy.heal();
  // The held bytes are delivered once the proxy reads again: a write whose
  // client gave up on it lands late.
  EXPECT_TRUE(wait_until([&] { return rig.get("late") == "1"; }, milliseconds(2000)));

  // 1 KiB every 100 ms: an 8 KiB write takes most of a second.
  auto slow = rig.connect(milliseconds(5000));
  ASSERT_TRUE(slow);
  rig.proxy.slow_reader(1024, milliseconds(100));
  const auto sent = Clock::now();
  auto r = slow->command({"SET", "trickled", std::string(8 * 1024, 't')});
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_GE(ms_since(sent), 600);
  EXPECT_EQ(rig.redis.cli({"STRLEN", "trickled"}), "8192");
}

}  // namespace
}  // namespace voucherd::testing
