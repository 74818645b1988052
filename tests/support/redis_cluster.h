// redis_cluster.h — test support: a real Redis Cluster of our own.
//
// Starts `nodes` redis-server primaries (RedisServer, each with its own data
// dir under the temp dir) with cluster mode on, AOF with appendfsync always,
// a short cluster-node-timeout, and a client port and a bus port both free
// on 127.0.0.1; joins them with `redis-cli --cluster create ...
// --cluster-replicas 0 --cluster-yes`; and waits until every node reports
// cluster_state:ok with all 16,384 slots served. The nodes run with
// cluster-require-full-coverage off, so that while one is down the others
// keep serving their own slots (what the router's tests need to see).
// Every node is killed at destruction, also when a test fails.
//
// Usage:
//   TempDir dir;
//   RedisCluster cluster(dir);
//   ASSERT_TRUE(cluster.ready());
//   redis::ClusterRouter router({cluster.seeds(), "", std::chrono::milliseconds(2000)});
//
// Thread-safety: none; one test thread uses it.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "server/redis/connection.h"
#include "server/redis/slots.h"
#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::testing {

class RedisCluster {
 public:
  explicit RedisCluster(const TempDir& dir, std::size_t nodes = 3);
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Whether the cluster was created and reached cluster_state:ok.
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] std::size_t size() const { return nodes_.size(); }
  [[nodiscard]] RedisServer& node(std::size_t i) { return *nodes_.at(i); }
  [[nodiscard]] redis::NodeAddress address(std::size_t i) const;
  // Which node listens at `address`; size() if none.
  [[nodiscard]] std::size_t index_of(const redis::NodeAddress& address) const;
  // Every node's address, as a seed list would name them.
  [[nodiscard]] std::vector<redis::NodeAddress> seeds() const;
  // The node's cluster id (CLUSTER MYID).
  [[nodiscard]] std::string node_id(std::size_t i) const;

  // Waits until every running node reports cluster_state:ok and sees all
  // 16,384 slots served by healthy primaries; returns whether it came.
  [[nodiscard]] bool wait_ok(std::chrono::milliseconds limit = std::chrono::seconds(30)) const;
  // SIGKILL node i (no goodbye), and start it again on the same port and
  // data dir (its AOF and nodes.conf), waiting for the cluster to be whole.
  void kill_hard(std::size_t i);
  [[nodiscard]] bool restart(std::size_t i);

  // A command to node i on a fresh connection, with no redirection
  // followed; an error reply or a failed connection fails the test.
  redis::Reply command(std::size_t i, const redis::Command& args) const;

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  bool ready_ = false;
};

}  // namespace voucherd::testing
