#include "tests/support/replicas.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "server/redis/connection.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"

namespace voucherd::testing {

std::vector<std::string> replica_args(const RedisServer& redis, const std::string& secret_file,
                                      const std::string& campaigns_file) {
  std::vector<std::string> args{"--store",       "redis",     "--redis",        redis.url(),
                                "--secret-file", secret_file, "--grpc-threads", "1"};
  if (!campaigns_file.empty()) {
    args.push_back("--campaigns");
    args.push_back(campaigns_file);
  }
  return args;
}

Press press_once(const std::string& target, const std::string& campaign_id,
                 const std::string& member_id) {
  return Client(target).claim(campaign_id, member_id);
}

void Acknowledged::add(const std::string& member, const std::string& code) {
  auto [it, fresh] = code_by_member.try_emplace(member, code);
  if (!fresh && it->second != code) ++members_with_two;
  auto [cit, cfresh] = member_by_code.try_emplace(code, member);
  if (!cfresh && cit->second != member) ++codes_with_two;
}

void Acknowledged::add(const load::StormReport& r) {
  for (const auto& [member, code] : r.code_by_member) add(member, code);
}

int missing_in_redis(const RedisServer& redis, const std::string& campaign,
                     const Acknowledged& acknowledged) {
  auto conn = redis.connect(std::chrono::milliseconds(5000));
  if (!conn) return -1;
  const redis::CampaignKeys keys(campaign);
  std::vector<redis::Command> cmds;
  std::vector<std::pair<const std::string*, const std::string*>> expected;  // code, member
  for (const auto& [code, member] : acknowledged.member_by_code) {
    cmds.push_back({"GET", keys.voucher(code)});
    expected.emplace_back(&code, &member);
  }
  auto replies = (*conn)->pipeline(cmds);
  if (!replies) return -1;
  int missing = 0;
  for (std::size_t i = 0; i < replies->size(); ++i) {
    const VoucherPtr v = redis::decode_voucher(campaign, *expected[i].first, (*replies)[i].str);
    if (!v || v->member_id() != *expected[i].second) ++missing;
  }
  return missing;
}

std::int64_t redis_sum(const RedisServer& redis, const std::string& hash_key,
                       const std::string& skip_field) {
  auto conn = redis.connect(std::chrono::milliseconds(5000));
  if (!conn) return -1;
  auto r = (*conn)->command({"HGETALL", hash_key});
  if (!r) return -1;
  std::int64_t sum = 0;
  for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
    if (r->elements[i].str != skip_field) sum += std::stoll(r->elements[i + 1].str);
  }
  return sum;
}

std::string redis_commands_during(const RedisServer& redis, const TempDir& dir,
                                  const std::function<void()>& action) {
  const std::filesystem::path file = dir.path() / "monitor.txt";
  std::filesystem::remove(file);
  // Bounded: the monitor ends by itself after 120 s if nothing stops it.
  const std::string command = "timeout 120 redis-cli -p " + std::to_string(redis.port()) +
                              " MONITOR > " + file.string() + " 2>&1 & echo $!";
  FILE* shell = ::popen(command.c_str(), "r");
  if (shell == nullptr) return "";
  int pid = 0;
  if (std::fscanf(shell, "%d", &pid) != 1) pid = 0;
  ::pclose(shell);
  auto text = [&] {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  EXPECT_TRUE(
      wait_until([&] { return text().find("OK") != std::string::npos; }, std::chrono::seconds(10)));
  action();
  // A marker, so everything sent before it is in the file when it shows.
  (void)redis.cli({"ECHO", "voucherd-monitor-end"});
  EXPECT_TRUE(wait_until([&] { return text().find("voucherd-monitor-end") != std::string::npos; },
                         std::chrono::seconds(10)));
  if (pid > 0) ::kill(pid, SIGTERM);
  return text();
}

}  // namespace voucherd::testing
