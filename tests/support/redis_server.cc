#include "tests/support/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <thread>

extern char** environ;

namespace voucherd::testing {
namespace {

bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

RedisServer::RedisServer(const TempDir& dir, bool aof, std::string appendfsync)
    : RedisServer(dir, RedisServerOptions{aof, std::move(appendfsync), "redis", {}, {}}) {}

RedisServer::RedisServer(std::filesystem::path data_dir, std::vector<std::string> extra_args,
                         bool aof, std::string appendfsync)
    : dir_(std::move(data_dir)) {
  options_.aof = aof;
  options_.appendfsync = std::move(appendfsync);
  options_.args = std::move(extra_args);
  std::filesystem::create_directories(dir_);
  start_on_free_port();
}

RedisServer::RedisServer(const TempDir& dir, RedisServerOptions options)
    : dir_(dir.path() / options.name), options_(std::move(options)) {
  std::filesystem::create_directories(dir_);
  start_on_free_port();
}

// A port that was free a moment ago may be taken by the time redis-server
// binds it (another test's connection took it as its own port): then the
// server exits at once, and it is started again on other ports, with a
// fresh configuration file. So is a Redis Cluster node's bus port.
void RedisServer::start_on_free_port() {
  constexpr int kAttempts = 4;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    port_ = free_loopback_port();
    if (attempt > 1) {
      std::filesystem::remove(dir_ / "redis.conf");
      for (std::size_t i = 0; i + 1 < options_.args.size(); ++i) {
        if (options_.args[i] == "--cluster-port") {
          options_.args[i + 1] = std::to_string(free_loopback_port());
        }
      }
    }
    if (spawn() != Started::kExited) return;
    if (attempt == kAttempts) {
      ADD_FAILURE() << "redis-server exited at start " << kAttempts << " times (ports taken?); see "
                    << (dir_ / "redis.log").string();
    }
  }
}

void RedisServer::start() {
  if (spawn() == Started::kExited) {
    ADD_FAILURE() << "redis-server exited at start on port " << port_ << "; see "
                  << (dir_ / "redis.log").string();
  }
}

RedisServer::~RedisServer() {
  if (pid_ > 0) kill_hard();
}

RedisServer::Started RedisServer::spawn() {
  // A configuration file (not flags), so that CONFIG REWRITE works: Sentinel
  // rewrites a replica's file when a failover reconfigures it.
  std::vector<std::string> lines = {
      "bind 127.0.0.1", "port " + std::to_string(port_), "dir " + dir_.string(), "save \"\"",
      "daemonize no", "protected-mode yes", "loglevel warning",
      "logfile " + (dir_ / "redis.log").string(), "maxmemory-policy noeviction",
      // A replica's first sync starts at once (default: 5 s).
      "repl-diskless-sync-delay 0"};
  if (options_.aof) {
    lines.emplace_back("appendonly yes");
    lines.push_back("appendfsync " + options_.appendfsync);
  } else {
    lines.emplace_back("appendonly no");
  }
  const std::filesystem::path conf = dir_ / "redis.conf";
  // A restart keeps what Sentinel wrote (its replicaof, say).
  if (!std::filesystem::exists(conf)) {
    std::ofstream out(conf);
    for (const auto& l : lines) out << l << "\n";
    for (const auto& l : options_.config) out << l << "\n";
  }
  std::vector<std::string> args = {"/usr/bin/redis-server", conf.string()};
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Neither output is the test's: a server the test left behind when it
  // crashed would hold ctest's pipe open, and ctest would wait for it.
  const std::string stderr_file = (dir_ / "redis.stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&actions);
  if (pid_ <= 0) {
    ADD_FAILURE() << "cannot start redis-server";
    return Started::kSilent;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cli({"PING"}) == "PONG") return Started::kAnswering;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Started::kExited;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "redis-server on port " << port_ << " did not answer PING";
  return Started::kSilent;
}

void RedisServer::send_signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!wait_gone(pid_, std::chrono::seconds(30))) {
    ::kill(pid_, SIGKILL);
    wait_gone(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

void RedisServer::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_gone(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

std::expected<std::unique_ptr<redis::Connection>, std::string> RedisServer::connect(
    std::chrono::milliseconds timeout) const {
  auto endpoint = redis::parse_url(url(), nullptr);
  if (!endpoint) return std::unexpected(endpoint.error());
  return redis::Connection::connect(*endpoint, timeout);
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  return redis_cli(port_, args);
}

std::string redis_cli(int port, const std::vector<std::string>& args) {
  std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port);
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " 2>/dev/null";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    std::array<char, 4096> buf{};
    while (std::fgets(buf.data(), buf.size(), p)) out += buf.data();
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

}  // namespace voucherd::testing
