// replicas.h — test support for voucherd replicas sharing one real Redis:
// their flags, one-press clients (a member pressing once, no retry), the
// acknowledged vouchers of a crowd, and checks against Redis itself.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/redis_server.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {

// --store redis on `redis`, with the secret file, one gRPC thread, and the
// campaigns file when one is given.
std::vector<std::string> replica_args(const RedisServer& redis, const std::string& secret_file,
                                      const std::string& campaigns_file = "");

// One Claim, pressed once like a member would (on a channel of its own,
// deadline 10 s, no retry).
using Press = Reply<voucher::v1::ClaimResponse>;
Press press_once(const std::string& target, const std::string& campaign_id,
                 const std::string& member_id);

// Every (member, code) the clients saw acknowledged, merged; counts members
// seen with two codes and codes seen with two members.
struct Acknowledged {
  std::unordered_map<std::string, std::string> code_by_member;
  std::unordered_map<std::string, std::string> member_by_code;
  int members_with_two = 0;
  int codes_with_two = 0;
  void add(const std::string& member, const std::string& code);
  void add(const load::StormReport& r);
};

// How many acknowledged vouchers are not in Redis under their member
// (-1: Redis could not be read).
int missing_in_redis(const RedisServer& redis, const std::string& campaign,
                     const Acknowledged& acknowledged);

// Sum of a Redis hash's values, skipping `skip_field`.
std::int64_t redis_sum(const RedisServer& redis, const std::string& hash_key,
                       const std::string& skip_field = "_members");

// Every command Redis received while `action` ran, as redis-cli MONITOR
// prints them (one line each), so a test can say which keys were touched.
std::string redis_commands_during(const RedisServer& redis, const TempDir& dir,
                                  const std::function<void()>& action);

}  // namespace voucherd::testing
