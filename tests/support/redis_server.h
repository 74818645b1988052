// redis_server.h — test support: a real redis-server of our own.
//
// Starts Debian's redis-server on a free 127.0.0.1 port with its data in a
// temp dir (AOF on, appendfsync as asked), waits until it answers PING, and
// stops it at destruction. restart() keeps the data dir, so tests can check
// what survives.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "server/redis/connection.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {

struct RedisServerOptions {
  bool aof = true;                     // false: no persistence
  std::string appendfsync = "always";  // "always", "everysec" or "no"
  std::string name = "redis";          // its subdirectory of the temp dir
  // More configuration lines ("replicaof 127.0.0.1 6379", ...).
  std::vector<std::string> config;
  // More command-line arguments, after the configuration file's path
  // ({"--cluster-enabled", "yes"}, ...).
  std::vector<std::string> args;
};

class RedisServer {
 public:
  // `appendfsync`: "always", "everysec" or "no"; `aof` false runs without
  // persistence.
  explicit RedisServer(const TempDir& dir, bool aof = true, std::string appendfsync = "always");
  RedisServer(const TempDir& dir, RedisServerOptions options);
  // With its data in `data_dir` (made if missing) and `extra_args` added to
  // the command line (e.g. {"--cluster-enabled", "yes"}).
  RedisServer(std::filesystem::path data_dir, std::vector<std::string> extra_args, bool aof,
              std::string appendfsync);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // SIGTERM (Redis then writes and fsyncs what it must) and wait.
  void stop();
  // SIGKILL: no goodbye.
  void kill_hard();
  // Start again on the same port with the same data dir.
  void start();
  // SIGSTOP / SIGCONT: a server that hangs, and comes back.
  void send_signal(int signal) const;

  // A connection of the Redis store's own kind to this server.
  [[nodiscard]] std::expected<std::unique_ptr<redis::Connection>, std::string> connect(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const;

  // Runs redis-cli against this server; returns its stdout (trimmed).
  [[nodiscard]] std::string cli(const std::vector<std::string>& args) const;

 private:
  enum class Started { kAnswering, kExited, kSilent };
  // Starts redis-server on port_ and waits until it answers PING, or exits.
  Started spawn();
  void start_on_free_port();

  std::filesystem::path dir_;
  RedisServerOptions options_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_loopback_port();

// Runs redis-cli against 127.0.0.1:`port`; returns its stdout (trimmed).
[[nodiscard]] std::string redis_cli(int port, const std::vector<std::string>& args);

}  // namespace voucherd::testing
