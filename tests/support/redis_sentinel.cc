#include "tests/support/redis_sentinel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace voucherd::testing {
namespace {}  // namespace

SentinelGroup::SentinelGroup(const TempDir& dir, int replicas, int sentinels,
                             std::chrono::milliseconds down_after) {
  RedisServerOptions first;
  first.name = "redis-0";
  servers_.push_back(std::make_unique<RedisServer>(dir, first));
  const int primary = servers_[0]->port();
  for (int i = 1; i <= replicas; ++i) {
    RedisServerOptions o;
    o.name = "redis-" + std::to_string(i);
    o.config = {"replicaof 127.0.0.1 " + std::to_string(primary)};
    servers_.push_back(std::make_unique<RedisServer>(dir, o));
  }
  for (int i = 0; i < sentinels; ++i) {
    const int port = free_loopback_port();
    const auto sdir = dir.path() / ("sentinel-" + std::to_string(i));
    std::filesystem::create_directories(sdir);
    const auto conf = sdir / "sentinel.conf";
    {
      std::ofstream out(conf);
      out << "bind 127.0.0.1\nport " << port << "\ndaemonize no\ndir " << sdir.string()
          << "\nlogfile " << (sdir / "sentinel.log").string() << "\n"
          << "sentinel monitor " << master_name() << " 127.0.0.1 " << primary << " 2\n"
          << "sentinel down-after-milliseconds " << master_name() << " " << down_after.count()
          << "\nsentinel failover-timeout " << master_name() << " 10000\n"
          << "sentinel parallel-syncs " << master_name() << " 1\n";
    }
    std::vector<std::string> args = {"/usr/bin/redis-sentinel", conf.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Neither output is the test's (see RedisServer::start).
    const std::string stderr_file = (sdir / "sentinel.stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (pid <= 0) {
      ADD_FAILURE() << "cannot start redis-sentinel";
      return;
    }
    sentinel_ports_.push_back(port);
    sentinel_pids_.push_back(pid);
    sentinel_logs_.push_back(sdir / "sentinel.log");
  }
  // Every replica has had its first sync and is streaming: the primary
  // sends it writes only after its first acknowledgement.
  const auto synced = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto online = [&] {
    const std::string info = servers_[0]->cli({"INFO", "replication"});
    std::size_t n = 0;
    for (auto at = info.find("state=online"); at != std::string::npos;
         at = info.find("state=online", at + 1)) {
      ++n;
    }
    return n == static_cast<std::size_t>(replicas);
  };
  while (!online() && std::chrono::steady_clock::now() < synced) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Sentinels find each other and the replicas through hello messages
  // (every 2 s) and INFO (every 10 s, or 1 s during failover): wait.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const std::string others = std::to_string(sentinels);
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (int port : sentinel_ports_) {
      const std::string quorum = redis_cli(port, {"SENTINEL", "ckquorum", master_name()});
      const std::string known = redis_cli(port, {"SENTINEL", "master", master_name()});
      if (quorum.find("OK " + others + " usable") == std::string::npos ||
          known.find("num-slaves\n" + std::to_string(replicas)) == std::string::npos) {
        all = false;
      }
    }
    if (all) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "the sentinels did not find each other and the replicas within 60 s";
}

SentinelGroup::~SentinelGroup() {
  for (pid_t pid : sentinel_pids_) ::kill(pid, SIGKILL);
  for (pid_t pid : sentinel_pids_) waitpid(pid, nullptr, 0);
}

std::string SentinelGroup::sentinel_list() const {
  std::string out;
  for (int port : sentinel_ports_) {
    if (!out.empty()) out += ",";
    out += "127.0.0.1:" + std::to_string(port);
  }
  return out;
}

int SentinelGroup::primary_port() const {
  for (int port : sentinel_ports_) {
    const std::string answer =
        redis_cli(port, {"SENTINEL", "get-master-addr-by-name", master_name()});
    const auto newline = answer.find('\n');
    if (newline == std::string::npos) continue;
    try {
      return std::stoi(answer.substr(newline + 1));
    } catch (...) {
      continue;
    }
  }
  return 0;
}

RedisServer* SentinelGroup::primary() {
  const int port = primary_port();
  for (auto& s : servers_) {
    if (s->port() == port) return s.get();
  }
  return nullptr;
}

std::string SentinelGroup::logs() const {
  std::string out;
  for (std::size_t i = 0; i < sentinel_logs_.size(); ++i) {
    std::ifstream in(sentinel_logs_[i]);
    for (std::string line; std::getline(in, line);) {
      out += "sentinel-" + std::to_string(i) + ": " + line + "\n";
    }
  }
  return out;
}

bool SentinelGroup::wait_for_failover(int old_port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const int port = primary_port();
    if (port != 0 && port != old_port && redis_cli(port, {"ROLE"}).rfind("master", 0) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace voucherd::testing
