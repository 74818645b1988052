#include "tests/support/redis_cluster.h"

#include <gtest/gtest.h>

#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

// Short, so that a node killed by a test is marked failed, and a restarted
// one cleared, within seconds; long enough that a loaded machine (a
// sanitizer build, two cores shared) does not see false failures.
constexpr const char* kNodeTimeoutMs = "1000";

bool info_says(const std::string& info, const std::string& line) {
  return info.find(line + "\r\n") != std::string::npos;
}

}  // namespace

RedisCluster::RedisCluster(const TempDir& dir, std::size_t nodes) {
  for (std::size_t i = 0; i < nodes; ++i) {
    // Redis 7 takes the bus port on its own (cluster-port); the default,
    // port + 10000, may be taken or beyond 65535 for a free port of ours.
    int bus_port = free_loopback_port();
    std::vector<std::string> extra = {"--cluster-enabled",
                                      "yes",
                                      "--cluster-port",
                                      std::to_string(bus_port),
                                      "--cluster-node-timeout",
                                      kNodeTimeoutMs,
                                      "--cluster-require-full-coverage",
                                      "no",
                                      "--cluster-config-file",
                                      "nodes.conf"};
    nodes_.push_back(std::make_unique<RedisServer>(dir.path() / ("node" + std::to_string(i)),
                                                   std::move(extra), /*aof=*/true, "always"));
    if (!nodes_.back()->running()) return;  // RedisServer said why
  }
  std::vector<std::string> create = {"/usr/bin/redis-cli", "--cluster", "create"};
  for (std::size_t i = 0; i < nodes_.size(); ++i) create.push_back(address(i).text());
  for (const char* a : {"--cluster-replicas", "0", "--cluster-yes"}) create.emplace_back(a);
  std::string out;
  std::string err;
  const int status = run_program(dir, create, &out, &err, std::chrono::seconds(60));
  if (status != 0) {
    ADD_FAILURE() << "redis-cli --cluster create exited " << status << "\n" << out << err;
    return;
  }
  ready_ = wait_ok();
  if (!ready_) ADD_FAILURE() << "the cluster did not reach cluster_state:ok";
}

RedisCluster::~RedisCluster() {
  for (auto& node : nodes_) node->kill_hard();
}

redis::NodeAddress RedisCluster::address(std::size_t i) const {
  return redis::NodeAddress{"127.0.0.1", nodes_.at(i)->port()};
}

std::size_t RedisCluster::index_of(const redis::NodeAddress& address) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (this->address(i) == address) return i;
  }
  return nodes_.size();
}

std::vector<redis::NodeAddress> RedisCluster::seeds() const {
  std::vector<redis::NodeAddress> out;
  for (std::size_t i = 0; i < nodes_.size(); ++i) out.push_back(address(i));
  return out;
}

std::string RedisCluster::node_id(std::size_t i) const {
  return command(i, {"CLUSTER", "MYID"}).str;
}

bool RedisCluster::wait_ok(std::chrono::milliseconds limit) const {
  return wait_until(
      [&] {
        for (const auto& node : nodes_) {
          if (!node->running()) continue;
          auto connection = node->connect(std::chrono::milliseconds(1000));
          if (!connection) return false;
          auto info = (*connection)->command({"CLUSTER", "INFO"});
          if (!info || info->type != redis::Reply::Type::kString) return false;
          if (!info_says(info->str, "cluster_state:ok") ||
              !info_says(info->str, "cluster_slots_ok:16384") ||
              !info_says(info->str, "cluster_known_nodes:" + std::to_string(nodes_.size()))) {
            return false;
          }
        }
        return true;
      },
      limit);
}

void RedisCluster::kill_hard(std::size_t i) { nodes_.at(i)->kill_hard(); }

bool RedisCluster::restart(std::size_t i) {
  nodes_.at(i)->start();
  return nodes_.at(i)->running() && wait_ok();
}

redis::Reply RedisCluster::command(std::size_t i, const redis::Command& args) const {
  auto connection = nodes_.at(i)->connect();
  if (!connection) {
    ADD_FAILURE() << "node " << i << ": " << connection.error();
    return {};
  }
  auto reply = (*connection)->command(args);
  if (!reply) {
    ADD_FAILURE() << "node " << i << ": " << reply.error();
    return {};
  }
  if (reply->is_error())
    ADD_FAILURE() << "node " << i << " refused " << args[0] << ": " << reply->str;
  return std::move(*reply);
}

}  // namespace voucherd::testing
