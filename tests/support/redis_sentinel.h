// redis_sentinel.h — test support: a Redis primary, its replicas, and Redis
// Sentinels watching them, all real processes of Debian's packages on free
// 127.0.0.1 ports in a temp dir.
//
// The master's name is "voucherd". The sentinels agree with a quorum of 2
// that the primary is down after down_after (default 1 s), and fail over to
// a replica. Everything is stopped at destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {

class SentinelGroup {
 public:
  // Starts a primary (AOF, appendfsync always), `replicas` replicas of it
  // and `sentinels` sentinels, and waits until every sentinel knows the
  // others and the replicas (so that a failover can happen at once).
  SentinelGroup(const TempDir& dir, int replicas = 1, int sentinels = 3,
                std::chrono::milliseconds down_after = std::chrono::milliseconds(1000));
  ~SentinelGroup();
  SentinelGroup(const SentinelGroup&) = delete;
  SentinelGroup& operator=(const SentinelGroup&) = delete;

  [[nodiscard]] static std::string master_name() { return "voucherd"; }
  // "127.0.0.1:P1,127.0.0.1:P2,...": the --redis-sentinel value.
  [[nodiscard]] std::string sentinel_list() const;
  // Server 0 is the first primary, then the replicas.
  [[nodiscard]] RedisServer& server(std::size_t i) { return *servers_[i]; }
  [[nodiscard]] std::size_t servers() const { return servers_.size(); }
  // The port the first sentinel that answers names as the primary (0: none).
  [[nodiscard]] int primary_port() const;
  // The server whose port that is (nullptr: none).
  [[nodiscard]] RedisServer* primary();
  // Waits until a sentinel names a primary other than `old_port`, and that
  // server says it is a master; false after `timeout`.
  bool wait_for_failover(int old_port, std::chrono::milliseconds timeout);
  // Every sentinel's log, each line led by "sentinel-N: ", to print when a
  // test fails waiting on them.
  [[nodiscard]] std::string logs() const;

 private:
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<int> sentinel_ports_;
  std::vector<pid_t> sentinel_pids_;
  std::vector<std::filesystem::path> sentinel_logs_;
};

}  // namespace voucherd::testing
