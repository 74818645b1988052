// primary.h — where the Redis primary is, and connections to it.
//
// voucherd writes to one Redis primary. It is named either by --redis (a
// fixed endpoint) or by Redis Sentinel (--redis-sentinel, --redis-master):
// the locator asks the sentinels which server is the named master's primary,
// and follows failovers:
//   - every connection made checks with ROLE that its server is a primary;
//     when it is not (or cannot be reached), the sentinels are asked again;
//   - a watcher thread subscribes to +switch-master on one sentinel; when
//     the primary changes it bumps the generation, and the owners of
//     connections made under an older generation replace them before their
//     next use (current());
//   - a connection that answers READONLY (its server was turned into a
//     replica) is marked broken by Connection itself, so its owner
//     reconnects through the locator.
// A fixed endpoint is checked with ROLE too: --redis naming a replica makes
// voucherd not ready, with the reason logged, instead of failing each write.
//
// Usage:
//   PrimaryLocator primary(sentinel_options, credentials);
//   primary.start_watching();
//   auto located = primary.connect(std::chrono::milliseconds(500));
//   ... if (!primary.current(located->generation)) reconnect ...
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "server/redis/connection.h"

namespace voucherd::redis {

struct SentinelOptions {
  // The sentinels, tried in order (the first that answers moves to the
  // front); each carries the sentinels' password, if they have one.
  std::vector<Endpoint> sentinels;
  std::string master_name;  // as in the sentinels' `sentinel monitor NAME ...`
};

// HOST:PORT[,HOST:PORT...] (--redis-sentinel); `env_password` is the
// sentinels' password (REDIS_SENTINEL_PASSWORD), if any.
[[nodiscard]] std::expected<std::vector<Endpoint>, std::string> parse_sentinels(
    std::string_view list, const char* env_password);

// A connection to the primary, and the generation of the locator's
// knowledge it was made under.
struct Located {
  std::unique_ptr<Connection> conn;
  std::uint64_t generation = 0;
};

class PrimaryLocator {
 public:
  // A fixed primary (--redis).
  explicit PrimaryLocator(Endpoint fixed);
  // A primary found through Sentinel. `credentials` gives the password and
  // database used on the primary (its host and port are not used).
  PrimaryLocator(SentinelOptions sentinel, Endpoint credentials);
  ~PrimaryLocator();
  PrimaryLocator(const PrimaryLocator&) = delete;
  PrimaryLocator& operator=(const PrimaryLocator&) = delete;

  // With Sentinel: starts the watcher thread. Nothing for a fixed primary.
  void start_watching();
  void stop_watching();

  // Connects to the primary as now known (asking the sentinels when it is
  // not known, cannot be reached or is not a primary) and checks ROLE.
  // `timeout` bounds each connect and command.
  [[nodiscard]] std::expected<Located, std::string> connect(std::chrono::milliseconds timeout);

  // Whether a connection made under `generation` still goes to the primary
  // as last known.
  [[nodiscard]] bool current(std::uint64_t generation) const {
    // Acquire: pairs with the release in set_primary(), so a caller that
    // sees the new generation also sees the new address when it connects.
    return generation == generation_.load(std::memory_order_acquire);
  }

  // For logs: "Redis at 127.0.0.1:6379", or "Redis primary \"mymaster\"
  // (Sentinel; now 127.0.0.1:6380)".
  [[nodiscard]] std::string describe() const;

 private:
  // Asks the sentinels in order for the master's address.
  std::expected<Endpoint, std::string> ask_sentinels(std::chrono::milliseconds timeout);
  // Records `primary` as the one to use; bumps the generation if it moved.
  void set_primary(const std::string& host, int port, const char* how);
  std::optional<Endpoint> known() const;
  void watch();

  std::optional<SentinelOptions> sentinel_;  // fixed after construction, except the order
  Endpoint credentials_;                     // the primary's password and db
  mutable std::mutex mu_;                    // guards known_ and the sentinels' order
  std::optional<Endpoint> known_;
  std::atomic<std::uint64_t> generation_{1};
  std::atomic<bool> stop_{false};
  std::thread watcher_;
};

}  // namespace voucherd::redis
