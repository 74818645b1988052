// chaos.cc — voucherd-chaos: N cycles of faults against three voucherd
// replicas and one redis-server while a crowd claims, redeems and draws,
// then a Jepsen-style check of every answer against what Redis holds
// (issue 17, "Chaos with a report"). scripts/chaos.sh runs it.
//
// What it proves, when it exits 0: across kill -9 of a replica, SIGSTOP of a
// replica past its lease timeout, a restart of Redis (AOF, appendfsync
// always) and faults on one replica's link to Redis (a blackhole, a reset,
// a reset in the middle of a batch, a half-open link either way, 50 ms of
// latency), no acknowledged voucher or redemption was lost, nothing was
// issued that nobody asked for, no member holds two packs, no SKU sold more
// than its stock, no unit stayed leased after every replica stopped, no
// voucher was redeemed by two requests, and the draw log numbers every
// member's draws 1, 2, ... with every acknowledged draw in it.
//
// The shape: redis-server on a free loopback port; one link proxy
// (tests/support/link_proxy.h) per replica in front of it; three voucherd
// processes (--store=redis, one secret, --lease-timeout-ms 1000) each behind
// its own proxy; a FIRST_COME campaign and a LOTTERY campaign loaded from
// one file by every replica. A crowd of client threads presses the whole
// time, like app backends behind a balancer: each call goes to a live
// replica picked at random; a press answered UNAVAILABLE or
// RESOURCE_EXHAUSTED is sent again (to any replica) with the same
// request_id, at most kTriesMax times; every attempt and its answer is kept
// (the history). Each cycle lets the crowd press, injects one fault (picked
// by a seeded RNG), heals it, and waits until every replica is ready. At the
// end the crowd stops, the replicas get a lease timeout to take back the
// leases of killed predecessors, every replica is stopped with SIGTERM, and
// the checker reads Redis directly.
//
// Bounds: every loop is bounded in count and time (cycles, tries per press,
// waits for readiness, the crowd's run); all traffic is on 127.0.0.1.
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proto/grpc_code_names.h"
#include "server/redis/connection.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/http_get.h"
#include "tests/support/link_proxy.h"
#include "tests/support/redis_server.h"
#include "tests/support/voucherd_process.h"

namespace voucherd::chaos {
namespace {

using namespace std::chrono_literals;
using testing::Client;
using testing::LinkDirection;
using testing::LinkProxy;
using testing::RedisServer;
using testing::TempDir;
using testing::VoucherdProcess;
using Clock = std::chrono::steady_clock;

// ---- limits ---------------------------------------------------------------

constexpr int kReplicas = 3;
constexpr int kTriesMax = 4;                          // attempts per press, the first included
constexpr auto kCallDeadline = 2000ms;                // per attempt
constexpr auto kLeaseTimeout = 1000ms;                // --lease-timeout-ms of every replica
constexpr auto kPauseLength = kLeaseTimeout + 700ms;  // SIGSTOP longer than the lease timeout
constexpr auto kLinkFault = 1300ms;  // a blackhole or half-open link lasts this long
constexpr auto kReadyWait = 15s;     // after a heal, every replica ready within this
constexpr auto kNoReplicaWait = 5s;  // a press waits this long for a live replica
constexpr int kCrowdThreads = 6;
constexpr std::int64_t kOpsPerThreadMax = 2'000'000;  // the crowd's loop bound
constexpr int kCyclesMax = 100'000;                   // about two days of cycles: a typo, not a run
constexpr const char* kFirstCome = "chaos-fc";
constexpr const char* kLottery = "chaos-lot";
constexpr int kDrawsPerDay = 4;
// A pause and a cut link must outlast the lease timeout, so that the other
// replicas take the leases back while the replica cannot speak (the fence is
// exercised); a press must be answered before readiness is given up on.
static_assert(kPauseLength > kLeaseTimeout);
static_assert(kLinkFault > kLeaseTimeout);
static_assert(kCallDeadline * kTriesMax < kReadyWait);

// ---- the campaigns ----------------------------------------------------------

struct Sku {
  std::string id;
  std::string site;
  std::int64_t stock = 0;
};
struct Campaigns {
  std::vector<Sku> first_come;
  std::vector<Sku> lottery;
  std::string file;  // the --campaigns file every replica loads
};

Campaigns write_campaigns(const TempDir& dir, int cycles) {
  Campaigns c;
  // Enough stock that the crowd sells out near the end of a run, so both the
  // selling and the sold-out answers are exercised.
  const std::int64_t per_sku = std::max<std::int64_t>(200, cycles * 200);
  c.first_come = {{"spa-a", "site-a", per_sku},
                  {"room-b", "site-b", per_sku},
                  {"spa-c", "site-a", per_sku},
                  {"room-d", "site-b", per_sku}};
  testing::CampaignJson fc(kFirstCome, "Chaos first come");
  fc.site("site-a", "Spring A", "Qingyuan", "SKU_KIND_HOT_SPRING")
      .sku("spa-a", "Spa A", 19'800, per_sku)
      .sku("spa-c", "Spa C", 9'800, per_sku)
      .site("site-b", "Hotel B", "Shaoguan", "SKU_KIND_HOTEL")
      .sku("room-b", "Room B", 39'800, per_sku)
      .sku("room-d", "Room D", 29'800, per_sku);
  // The lottery releases its prizes linearly over its window; a window that
  // opened an hour ago and closes in an hour has released half of them.
  const auto now = std::chrono::system_clock::now();
  const auto starts = std::chrono::time_point_cast<std::chrono::seconds>(now - 1h);
  c.lottery = {{"lot-spa", "site-l", 20'000}, {"lot-room", "site-m", 20'000}};
  testing::CampaignJson lot(kLottery, "Chaos lottery");
  lot.window(starts, starts + 2h)
      .lottery(0.3, kDrawsPerDay)
      .site("site-l", "Spring L", "Huzhou", "SKU_KIND_HOT_SPRING")
      .sku("lot-spa", "Spa L", 19'800, 20'000)
      .site("site-m", "Hotel M", "Hangzhou", "SKU_KIND_HOTEL")
      .sku("lot-room", "Room M", 58'800, 20'000);
  auto set = nlohmann::ordered_json::parse(fc.text());
  set["campaigns"].push_back(nlohmann::ordered_json::parse(lot.text())["campaigns"][0]);
  c.file = dir.write("chaos-campaigns.json", set.dump(2)).string();
  return c;
}

// ---- the history --------------------------------------------------------------

enum class OpKind : std::uint8_t { kClaim, kDraw, kRedeem };
const char* kind_name(OpKind k) {
  switch (k) {
    case OpKind::kClaim:
      return "claim";
    case OpKind::kDraw:
      return "draw";
    case OpKind::kRedeem:
      return "redeem";
  }
  return "?";
}

// One call and its answer.
struct Attempt {
  OpKind kind = OpKind::kClaim;
  int cycle = 0;
  int attempt = 0;  // 1 .. kTriesMax
  int replica = -1;
  std::string member;      // claim, draw
  std::string request_id;  // every kind
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string reason;
  std::string voucher;  // claim OK, draw won: the code; redeem: the code redeemed
  std::string site;     // redeem: the site asked; claim/draw OK: the voucher's site
  bool repeat = false;  // already_claimed / already_redeemed
  bool won = false;
  std::int64_t draw_number = 0;  // draw OK: from the proof
};

Attempt attempt_of(OpKind kind, std::string member, std::string request_id) {
  Attempt a;
  a.kind = kind;
  a.member = std::move(member);
  a.request_id = std::move(request_id);
  return a;
}

// What an app backend sends again: UNAVAILABLE, and RESOURCE_EXHAUSTED unless
// it says the member's draws of the day are spent (tomorrow is no retry).
bool retryable(const Attempt& a) {
  return a.code == grpc::StatusCode::UNAVAILABLE ||
         (a.code == grpc::StatusCode::RESOURCE_EXHAUSTED && a.reason != "DAILY_DRAW_LIMIT");
}

// "draw <n>, HMAC-SHA256 <hex>" -> n (0 when it does not read so).
std::int64_t draw_number_of(const std::string& proof) {
  if (proof.rfind("draw ", 0) != 0) return 0;
  return std::atoll(proof.c_str() + 5);
}

// ---- the replicas -------------------------------------------------------------

// The clients of the live replicas; a replica being restarted has none.
class Targets {
 public:
  void set(int i, std::shared_ptr<const Client> c) {
    std::lock_guard lock(mu_);
    clients_[static_cast<std::size_t>(i)] = std::move(c);
  }
  // A live replica's client picked at random (nullptr, -1 when none).
  std::pair<std::shared_ptr<const Client>, int> pick(std::mt19937_64& rng) const {
    std::lock_guard lock(mu_);
    const int start = static_cast<int>(rng() % kReplicas);
    for (int k = 0; k < kReplicas; ++k) {
      const int i = (start + k) % kReplicas;
      if (clients_[static_cast<std::size_t>(i)]) return {clients_[static_cast<std::size_t>(i)], i};
    }
    return {nullptr, -1};
  }

 private:
  mutable std::mutex mu_;
  std::array<std::shared_ptr<const Client>, kReplicas> clients_{};
};

struct Replica {
  std::unique_ptr<LinkProxy> proxy;
  std::unique_ptr<VoucherdProcess> process;
};

// ---- the crowd ------------------------------------------------------------------

class Crowd {
 public:
  Crowd(const Targets& targets, std::uint64_t seed, const std::atomic<int>& cycle)
      : targets_(targets), cycle_(cycle) {
    histories_.resize(kCrowdThreads);
    for (int t = 0; t < kCrowdThreads; ++t) {
      threads_.emplace_back([this, t, seed] { run(t, seed * 1000 + static_cast<unsigned>(t)); });
    }
  }
  ~Crowd() { stop(); }
  void stop() {
    stop_.store(true, std::memory_order_relaxed);
    for (auto& th : threads_) {
      if (th.joinable()) th.join();
    }
  }
  // REQUIRES: stop() returned.
  std::vector<Attempt> history() const {
    std::vector<Attempt> all;
    for (const auto& h : histories_) all.insert(all.end(), h.begin(), h.end());
    return all;
  }

 private:
  struct Held {
    std::string code;
    std::string site;
    std::string redeem_request;  // "" until a redemption was sent
  };

  // Sends one press (retrying as an app does); the last answer.
  template <typename Call>
  Attempt press(std::vector<Attempt>& out, std::mt19937_64& rng, Attempt base, const Call& call) {
    Attempt last = base;
    for (int attempt = 1; attempt <= kTriesMax; ++attempt) {
      auto [client, index] = targets_.pick(rng);
      const auto waited_from = Clock::now();
      while (!client && Clock::now() - waited_from < kNoReplicaWait &&
             !stop_.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(20ms);
        std::tie(client, index) = targets_.pick(rng);
      }
      if (!client) break;  // nobody to ask: the press was not sent again
      Attempt a = base;
      a.attempt = attempt;
      a.replica = index;
      a.cycle = cycle_.load(std::memory_order_relaxed);
      call(*client, a);
      out.push_back(a);
      last = a;
      if (!retryable(a) || attempt == kTriesMax || stop_.load(std::memory_order_relaxed)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(30 * attempt + rng() % 30));
    }
    return last;
  }

  void run(int t, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto& out = histories_[static_cast<std::size_t>(t)];
    std::vector<std::string> claimed_members;
    std::vector<std::string> draw_members;
    std::vector<Held> held;
    std::int64_t seq = 0;
    const std::string tag = std::to_string(t);
    for (std::int64_t n = 0; n < kOpsPerThreadMax && !stop_.load(std::memory_order_relaxed); ++n) {
      const auto roll = rng() % 100;
      const std::string rid = "q" + tag + "-" + std::to_string(++seq);
      if (roll < 40 || (roll < 50 && claimed_members.empty())) {
        // A new member presses Claim.
        const Attempt base = attempt_of(OpKind::kClaim, "c" + tag + "-" + std::to_string(seq), rid);
        const Attempt a = claim(out, rng, base);
        claimed_members.push_back(base.member);
        if (a.code == grpc::StatusCode::OK && !a.repeat) held.push_back({a.voucher, a.site, ""});
      } else if (roll < 50) {
        // A member who pressed before presses again (a new request).
        const Attempt base =
            attempt_of(OpKind::kClaim, claimed_members[rng() % claimed_members.size()], rid);
        (void)claim(out, rng, base);
      } else if (roll < 78) {
        // A draw: a new member, or one who drew before, draws (a new request).
        std::string member;
        if (draw_members.empty() || rng() % 2 == 0) {
          member = "d" + tag + "-" + std::to_string(seq);
          draw_members.push_back(member);
        } else {
          member = draw_members[rng() % draw_members.size()];
        }
        const Attempt base = attempt_of(OpKind::kDraw, member, rid);
        const Attempt a = press(out, rng, base, [](const Client& c, Attempt& at) {
          const auto r = c.with_deadline(kCallDeadline).draw(kLottery, at.member, at.request_id);
          at.code = r.code();
          at.reason = r.reason();
          if (r.ok()) {
            at.won = r.response.won();
            at.draw_number = draw_number_of(r.response.proof());
            if (at.won) {
              at.voucher = r.response.voucher().code();
              at.site = r.response.voucher().site_id();
            }
          }
        });
        if (a.code == grpc::StatusCode::OK && a.won) held.push_back({a.voucher, a.site, ""});
      } else if (!held.empty()) {
        // A site's desk redeems a voucher: a first redemption, the same
        // request again, or a second desk with a request of its own.
        Held& h = held[rng() % held.size()];
        std::string request;
        const auto how = rng() % 10;
        if (h.redeem_request.empty()) {
          h.redeem_request = "r" + tag + "-" + std::to_string(seq);
          request = h.redeem_request;
        } else if (how < 5) {
          request = h.redeem_request;
        } else {
          request = "r" + tag + "-" + std::to_string(seq);
        }
        Attempt base = attempt_of(OpKind::kRedeem, "", request);
        base.voucher = h.code;
        base.site = h.site;
        (void)press(out, rng, base, [](const Client& c, Attempt& at) {
          const auto r = c.with_deadline(kCallDeadline).redeem(at.voucher, at.site, at.request_id);
          at.code = r.code();
          at.reason = r.reason();
          if (r.ok()) at.repeat = r.response.already_redeemed();
        });
      }
    }
  }

  Attempt claim(std::vector<Attempt>& out, std::mt19937_64& rng, const Attempt& base) {
    return press(out, rng, base, [](const Client& c, Attempt& at) {
      const auto r = c.with_deadline(kCallDeadline).claim(kFirstCome, at.member, "", at.request_id);
      at.code = r.code();
      at.reason = r.reason();
      if (r.ok()) {
        at.voucher = r.response.voucher().code();
        at.site = r.response.voucher().site_id();
        at.repeat = r.response.already_claimed();
      }
    });
  }

  const Targets& targets_;
  const std::atomic<int>& cycle_;
  std::atomic<bool> stop_{false};                // relaxed: only ends the loops
  std::vector<std::vector<Attempt>> histories_;  // one per thread, its own
  std::vector<std::thread> threads_;
};

// ---- faults -----------------------------------------------------------------------

enum class Fault : std::uint8_t {
  kKill,
  kPause,
  kRedisRestart,
  kBlackhole,
  kReset,
  kResetMidBatch,
  kHalfOpenToServer,
  kHalfOpenToClient,
  kLatency,
};
constexpr std::array kFaults{
    Fault::kKill,   Fault::kPause,         Fault::kRedisRestart,     Fault::kBlackhole,
    Fault::kReset,  Fault::kResetMidBatch, Fault::kHalfOpenToServer, Fault::kHalfOpenToClient,
    Fault::kLatency};
const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kKill:
      return "kill -9 replica";
    case Fault::kPause:
      return "SIGSTOP replica";
    case Fault::kRedisRestart:
      return "restart redis";
    case Fault::kBlackhole:
      return "link blackhole";
    case Fault::kReset:
      return "link reset";
    case Fault::kResetMidBatch:
      return "link reset mid-batch";
    case Fault::kHalfOpenToServer:
      return "link half-open (to redis)";
    case Fault::kHalfOpenToClient:
      return "link half-open (to voucherd)";
    case Fault::kLatency:
      return "link latency 50ms";
  }
  return "?";
}

class Cluster {
 public:
  Cluster(const TempDir& dir, RedisServer& redis, const Campaigns& campaigns,
          const std::string& secret_file, Targets& targets)
      : dir_(dir),
        redis_(redis),
        campaigns_(campaigns),
        secret_file_(secret_file),
        targets_(targets) {
    for (int i = 0; i < kReplicas; ++i) {
      replicas_[static_cast<std::size_t>(i)].proxy = std::make_unique<LinkProxy>(redis.port());
      start(i);
    }
  }

  // Starts replica `i` behind its proxy; false when it did not listen.
  bool start(int i) {
    auto& r = replicas_[static_cast<std::size_t>(i)];
    const std::vector<std::string> args{"--store",
                                        "redis",
                                        "--redis",
                                        r.proxy->url(),
                                        "--secret-file",
                                        secret_file_,
                                        "--campaigns",
                                        campaigns_.file,
                                        "--grpc-threads",
                                        "1",
                                        "--lease-timeout-ms",
                                        std::to_string(kLeaseTimeout.count()),
                                        "--log-level",
                                        "warn"};
    r.process = std::make_unique<VoucherdProcess>(dir_, args);
    if (r.process->port() == 0) {
      ++start_failures_;
      return false;
    }
    targets_.set(i, std::make_shared<const Client>(r.process->target()));
    return true;
  }

  // Every replica answers /readyz 200 (bounded by kReadyWait).
  bool wait_ready() {
    const auto until = Clock::now() + kReadyWait;
    while (Clock::now() < until) {
      bool all = true;
      for (auto& r : replicas_) {
        if (!r.process || r.process->port() == 0 ||
            testing::http_get(r.process->ops_port(), "/readyz").status != 200) {
          all = false;
          break;
        }
      }
      if (all) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // Injects `fault` on replica `i` (or Redis), waits it out, heals.
  void inject(Fault fault, int i, std::mt19937_64& rng) {
    auto& r = replicas_[static_cast<std::size_t>(i)];
    switch (fault) {
      case Fault::kKill:
        targets_.set(i, nullptr);
        (void)r.process->stop(SIGKILL, 10s);
        std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 400));
        if (!start(i)) {
          // One more try: a port race or a slow start on a loaded box.
          (void)start(i);
        }
        break;
      case Fault::kPause:
        r.process->send_signal(SIGSTOP);
        std::this_thread::sleep_for(kPauseLength);
        r.process->send_signal(SIGCONT);
        break;
      case Fault::kRedisRestart:
        redis_.kill_hard();
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        redis_.start();
        break;
      case Fault::kBlackhole:
        r.proxy->blackhole();
        std::this_thread::sleep_for(kLinkFault);
        r.proxy->heal();
        break;
      case Fault::kReset:
        r.proxy->reset();
        std::this_thread::sleep_for(300ms);
        break;
      case Fault::kResetMidBatch:
        // Cut a claim or draw script call in its middle: counted from the
        // first EVALSHA the replica sends after this.
        r.proxy->reset_after_client_bytes(40 + rng() % 200, "EVALSHA");
        std::this_thread::sleep_for(800ms);
        r.proxy->heal();
        break;
      case Fault::kHalfOpenToServer:
        r.proxy->half_open(LinkDirection::kToServer);
        std::this_thread::sleep_for(kLinkFault);
        r.proxy->heal();
        break;
      case Fault::kHalfOpenToClient:
        r.proxy->half_open(LinkDirection::kToClient);
        std::this_thread::sleep_for(kLinkFault);
        r.proxy->heal();
        break;
      case Fault::kLatency:
        r.proxy->add_latency(50ms);
        std::this_thread::sleep_for(kLinkFault);
        r.proxy->heal();
        break;
    }
  }

  // Stops every replica with SIGTERM; how many did not exit 0.
  int stop_all() {
    int unclean = 0;
    for (int i = 0; i < kReplicas; ++i) {
      auto& r = replicas_[static_cast<std::size_t>(i)];
      targets_.set(i, nullptr);
      if (!r.process || r.process->port() == 0) {
        ++unclean;
        continue;
      }
      const auto status = r.process->stop(SIGTERM, 30s);
      if (!status || *status != 0) {
        ++unclean;
        std::cerr << "replica " << i << " stopped with "
                  << (status ? std::to_string(*status) : "a timeout") << "\n";
      }
    }
    return unclean;
  }

  // voucherd_internal_errors_total summed over the live replicas.
  std::int64_t internal_errors() const {
    std::int64_t sum = 0;
    for (const auto& r : replicas_) {
      if (!r.process || r.process->port() == 0) continue;
      const auto body = testing::http_get(r.process->ops_port(), "/metrics").body;
      const std::string name = "\nvoucherd_internal_errors_total ";
      const auto at = body.find(name);
      if (at != std::string::npos) sum += std::atoll(body.c_str() + at + name.size());
    }
    return sum;
  }

  [[nodiscard]] int start_failures() const { return start_failures_; }
  // A live replica's gRPC address ("" when none listens).
  [[nodiscard]] std::string any_target() const {
    for (const auto& r : replicas_) {
      if (r.process && r.process->port() != 0) return r.process->target();
    }
    return "";
  }

 private:
  const TempDir& dir_;
  RedisServer& redis_;
  const Campaigns& campaigns_;
  std::string secret_file_;
  Targets& targets_;
  std::array<Replica, kReplicas> replicas_;
  int start_failures_ = 0;
};

// ---- reading Redis ----------------------------------------------------------------

class RedisReader {
 public:
  explicit RedisReader(std::unique_ptr<redis::Connection> conn) : conn_(std::move(conn)) {}
  std::optional<std::string> get(const std::string& key) {
    auto r = conn_->command({"GET", key});
    if (!r || r->type != redis::Reply::Type::kString) return std::nullopt;
    return r->str;
  }
  std::map<std::string, std::int64_t> hash_ints(const std::string& key) {
    std::map<std::string, std::int64_t> out;
    auto r = conn_->command({"HGETALL", key});
    if (!r || r->type != redis::Reply::Type::kArray) return out;
    for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      out[r->elements[i].str] = std::atoll(r->elements[i + 1].str.c_str());
    }
    return out;
  }
  std::int64_t set_size(const std::string& key) {
    auto r = conn_->command({"SCARD", key});
    return r && r->type == redis::Reply::Type::kInteger ? r->integer : -1;
  }
  // Every key matching `pattern` (SCAN, bounded by the key count).
  std::vector<std::string> keys(const std::string& pattern) {
    std::vector<std::string> out;
    std::string cursor = "0";
    for (int rounds = 0; rounds < 1'000'000; ++rounds) {
      auto r = conn_->command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
      if (!r || r->type != redis::Reply::Type::kArray || r->elements.size() != 2) break;
      cursor = r->elements[0].str;
      for (const auto& e : r->elements[1].elements) out.push_back(e.str);
      if (cursor == "0") break;
    }
    return out;
  }

 private:
  std::unique_ptr<redis::Connection> conn_;
};

// ---- the checker --------------------------------------------------------------------

struct Row {
  std::string check;
  std::int64_t count = 0;
  bool violation = true;  // false: informational (counted, never a failure)
};

struct CheckInput {
  const std::vector<Attempt>& history;
  const Campaigns& campaigns;
  int unclean_stops = 0;
  int not_ready_cycles = 0;
  int start_failures = 0;
  std::int64_t internal_errors = 0;
  std::int64_t audit_failures = 0;
  std::int64_t bugs_logged = 0;  // "internal error (a bug)" lines in every replica's log
  std::int64_t error_lines = 0;  // lines logged at error, those included
};

// Counts, over every replica's stderr (killed ones included), the lines
// logged at error and among them the internal errors (VOUCHERD_BUG).
std::pair<std::int64_t, std::int64_t> scan_logs(const TempDir& dir, std::ostream& notes) {
  std::int64_t bugs = 0, errors = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir.path(), ec)) {
    if (e.path().extension() != ".stderr") continue;
    std::ifstream in(e.path());
    std::string line;
    for (int n = 0; n < 10'000'000 && std::getline(in, line); ++n) {
      if (line.find("\"level\":\"error\"") == std::string::npos) continue;
      ++errors;
      if (line.find("internal error (a bug)") != std::string::npos) {
        ++bugs;
        notes << e.path().filename().string() << ": " << line.substr(0, 500) << "\n";
      }
    }
  }
  return {bugs, errors};
}

std::vector<Row> check(RedisReader& rd, const CheckInput& in, std::ostream& notes) {
  std::vector<Row> rows;
  // What the crowd was told, per campaign: code -> members, member -> codes.
  struct Told {
    std::map<std::string, std::set<std::string>> members_of_code;
    std::map<std::string, std::set<std::string>> codes_of_member;
  };
  std::map<std::string, Told> told;
  // Per request id (claims and draws): whether any attempt was answered OK.
  std::unordered_map<std::string, bool> request_ok;
  // Redemptions: code -> request ids answered OK.
  std::map<std::string, std::set<std::string>> redeemed_ok;
  // Draws answered OK: campaign member -> (draw number, won).
  std::vector<std::tuple<std::string, std::int64_t, bool>> draws_ok;
  for (const Attempt& a : in.history) {
    const bool ok = a.code == grpc::StatusCode::OK;
    if (a.kind == OpKind::kRedeem) {
      if (ok) redeemed_ok[a.voucher].insert(a.request_id);
      continue;
    }
    auto& r = request_ok[a.request_id];
    r = r || ok;
    if (!ok) continue;
    const std::string campaign = a.kind == OpKind::kClaim ? kFirstCome : kLottery;
    if (a.kind == OpKind::kDraw) draws_ok.emplace_back(a.member, a.draw_number, a.won);
    if (a.kind == OpKind::kClaim || a.won) {
      told[campaign].members_of_code[a.voucher].insert(a.member);
      told[campaign].codes_of_member[a.member].insert(a.voucher);
    }
  }

  std::int64_t lost = 0, unexpected = 0, in_doubt = 0, duplicated = 0, oversold = 0, books = 0,
               stranded = 0, double_redeemed = 0, lost_redemptions = 0, draw_gaps = 0;
  for (const std::string campaign : {kFirstCome, kLottery}) {
    const redis::CampaignKeys keys(campaign);
    const auto& skus = campaign == kFirstCome ? in.campaigns.first_come : in.campaigns.lottery;
    // Every voucher record.
    std::map<std::string, VoucherPtr> records;
    const std::string prefix = keys.voucher_prefix();
    for (const auto& key : rd.keys(prefix + "*")) {
      const std::string code = key.substr(prefix.size());
      const auto value = rd.get(key);
      auto v = value ? redis::decode_voucher(campaign, code, *value) : nullptr;
      if (!v) {
        ++books;
        notes << campaign << ": unreadable record " << key << "\n";
        continue;
      }
      records[code] = v;
    }
    const Told& t = told[campaign];
    // Lost: told OK, not in Redis as that member's (or a different code).
    for (const auto& [member, codes] : t.codes_of_member) {
      for (const auto& code : codes) {
        const auto it = records.find(code);
        const auto held = rd.get(keys.member(member));
        if (it == records.end() || it->second->member_id() != member ||
            it->second->state() == VoucherState::kCancelled || !held || *held != code) {
          ++lost;
          notes << campaign << ": lost " << code << " of " << member << "\n";
        }
      }
      if (codes.size() > 1) {
        ++duplicated;
        notes << campaign << ": " << member << " told " << codes.size() << " codes\n";
      }
    }
    for (const auto& [code, members] : t.members_of_code) {
      if (members.size() > 1) {
        ++duplicated;
        notes << campaign << ": " << code << " told to " << members.size() << " members\n";
      }
    }
    // Unexpected: in Redis, told to nobody.
    std::map<std::string, int> per_member;
    std::map<std::string, std::int64_t> per_sku, redeemed_per_sku;
    for (const auto& [code, v] : records) {
      ++per_member[std::string(v->member_id())];
      ++per_sku[v->sku_id()];
      if (v->state() == VoucherState::kRedeemed) ++redeemed_per_sku[v->sku_id()];
      if (t.members_of_code.contains(code)) continue;
      const auto req = request_ok.find(std::string(v->request_id()));
      if (req != request_ok.end() && !req->second) {
        ++in_doubt;
      } else {
        ++unexpected;
        notes << campaign << ": unexpected " << code << " of " << v->member_id() << " (request "
              << v->request_id() << (req == request_ok.end() ? ", never sent" : ", answered OK")
              << ")\n";
      }
    }
    for (const auto& [member, n] : per_member) {
      if (n > 1) {
        ++duplicated;
        notes << campaign << ": " << member << " holds " << n << " vouchers\n";
      }
    }
    // Oversold, and the books: stock + leased + issued = the stock defined,
    // issued = records, redeemed = REDEEMED records.
    const auto pool = rd.hash_ints(keys.stock());
    const auto leased = rd.hash_ints(keys.leased());
    const auto leases = rd.hash_ints(keys.leases());
    const auto issued = rd.hash_ints(keys.issued());
    const auto redeemed = rd.hash_ints(keys.redeemed());
    auto at = [](const std::map<std::string, std::int64_t>& m, const std::string& k) {
      const auto it = m.find(k);
      return it == m.end() ? std::int64_t{0} : it->second;
    };
    std::int64_t redeemed_records = 0;
    for (const auto& sku : skus) {
      const auto issued_n = at(issued, sku.id);
      if (issued_n > sku.stock || at(per_sku, sku.id) > sku.stock) {
        ++oversold;
        notes << campaign << ": " << sku.id << " issued " << issued_n << ", records "
              << at(per_sku, sku.id) << ", stock " << sku.stock << "\n";
      }
      if (at(pool, sku.id) + at(leased, sku.id) + issued_n != sku.stock ||
          issued_n != at(per_sku, sku.id) || at(redeemed, sku.id) != at(redeemed_per_sku, sku.id)) {
        ++books;
        notes << campaign << ": " << sku.id << " pool " << at(pool, sku.id) << " + leased "
              << at(leased, sku.id) << " + issued " << issued_n << " vs stock " << sku.stock
              << "; records " << at(per_sku, sku.id) << "; redeemed " << at(redeemed, sku.id)
              << " vs records " << at(redeemed_per_sku, sku.id) << "\n";
      }
      stranded += at(leased, sku.id);
      redeemed_records += at(redeemed_per_sku, sku.id);
    }
    for (const auto& [field, units] : leases) {
      stranded += units;
      if (units != 0) notes << campaign << ": lease " << field << " still holds " << units << "\n";
    }
    if (rd.set_size(keys.redeemed_codes()) != redeemed_records) {
      ++books;
      notes << campaign << ": redeemed_codes " << rd.set_size(keys.redeemed_codes())
            << " vs REDEEMED records " << redeemed_records << "\n";
    }
    // Redemptions: one request per code answered OK, and it is the one in
    // Redis.
    for (const auto& [code, requests] : redeemed_ok) {
      const auto it = records.find(code);
      if (it == records.end()) continue;  // the other campaign's
      if (requests.size() > 1) {
        ++double_redeemed;
        notes << campaign << ": " << code << " redeemed OK by " << requests.size() << " requests\n";
      }
      if (it->second->state() != VoucherState::kRedeemed ||
          !requests.contains(it->second->redeem_request_id())) {
        ++lost_redemptions;
        notes << campaign << ": redemption of " << code << " not in Redis\n";
      }
    }
  }
  // Draw log: every member's draws numbered 1..k once each; the count says
  // how many lines; every draw answered OK is there with its outcome.
  {
    const redis::CampaignKeys keys(kLottery);
    const auto drawn_text = rd.get(keys.drawn());
    const std::int64_t drawn = drawn_text ? std::atoll(drawn_text->c_str()) : 0;
    std::int64_t lines = 0;
    std::map<std::string, std::map<std::int64_t, int>> numbers;  // member -> n -> times
    std::map<std::pair<std::string, std::int64_t>, char> outcome;
    for (std::int64_t k = 0; k <= drawn / 65'536; ++k) {
      const auto text = rd.get(keys.drawn_chunk(k)).value_or("");
      std::size_t pos = 0;
      while (pos < text.size()) {
        const auto colon = text.find(':', pos);
        if (colon == std::string::npos) break;
        const auto len = static_cast<std::size_t>(std::atoll(text.c_str() + pos));
        const std::string member = text.substr(colon + 1, len);
        std::size_t p = colon + 1 + len;
        const auto end = text.find('\n', p);
        if (end == std::string::npos || p >= text.size() || text[p] != '\t') {
          ++draw_gaps;
          notes << "draw log: unreadable line at byte " << pos << " of chunk " << k << "\n";
          break;
        }
        const std::int64_t n = std::atoll(text.c_str() + p + 1);
        // outcome letter: the fourth field
        std::size_t f = p;
        for (int tabs = 0; tabs < 2 && f != std::string::npos; ++tabs) f = text.find('\t', f + 1);
        const char letter = f != std::string::npos && f + 1 < end ? text[f + 1] : '?';
        ++numbers[member][n];
        outcome[{member, n}] = letter;
        ++lines;
        pos = end + 1;
      }
    }
    if (lines != drawn) {
      ++draw_gaps;
      notes << "draw log: " << lines << " lines, drawn says " << drawn << "\n";
    }
    for (const auto& [member, ns] : numbers) {
      std::int64_t expect = 1;
      for (const auto& [n, times] : ns) {
        if (n != expect || times != 1) {
          ++draw_gaps;
          notes << "draw log: " << member << " draw " << n << " (expected " << expect << ", "
                << times << " times)\n";
          break;
        }
        ++expect;
      }
    }
    for (const auto& [member, n, won] : draws_ok) {
      const auto it = outcome.find({member, n});
      if (it == outcome.end() || (it->second == 'W') != won) {
        ++draw_gaps;
        notes << "draw log: " << member << " draw " << n << " answered "
              << (won ? "won" : "no prize") << ", logged "
              << (it == outcome.end() ? std::string("nothing") : std::string(1, it->second))
              << "\n";
      }
    }
  }
  rows.push_back({"lost acknowledged vouchers", lost});
  rows.push_back({"lost redemptions", lost_redemptions});
  rows.push_back({"unexpected vouchers", unexpected});
  rows.push_back({"in doubt, resolved (not OK, written)", in_doubt, false});
  rows.push_back({"duplicated", duplicated});
  rows.push_back({"oversold SKUs", oversold});
  rows.push_back({"stock books off", books});
  rows.push_back({"stranded units", stranded});
  rows.push_back({"double redemptions", double_redeemed});
  rows.push_back({"draw log gaps", draw_gaps});
  rows.push_back({"draw audit (voucher-audit replay)", in.audit_failures});
  rows.push_back({"internal errors (metric)", in.internal_errors});
  rows.push_back({"internal errors (logs)", in.bugs_logged});
  rows.push_back({"lines logged at error", in.error_lines, false});
  rows.push_back({"cycles not ready after heal", in.not_ready_cycles});
  rows.push_back({"replica start failures", in.start_failures});
  rows.push_back({"unclean stops", in.unclean_stops});
  return rows;
}

// ---- the draw audit ---------------------------------------------------------------

// Exports the lottery's draws from a live replica (voucherctl export-draws);
// REQUIRES: a replica listens at `target`.
bool export_draws(const TempDir& dir, const std::string& target, std::ostream& notes) {
  std::string out, err;
  const int rc = testing::run_program(
      dir,
      {VOUCHERCTL_BINARY, "export-draws", "--target", target, "--campaign", kLottery, "--out",
       (dir.path() / "audit").string(), "--deadline-s", "120"},
      &out, &err, 180s);
  if (rc != 0) notes << "voucherctl export-draws exited " << rc << ": " << err << "\n";
  return rc == 0;
}

// Replays the exported draws with the seed read from Redis (voucher-audit);
// how many draws it finds wrong (1 when it cannot tell), and 1 more when it
// verified another number of draws than the log holds.
std::int64_t audit_draws(const TempDir& dir, RedisReader& rd, std::ostream& notes) {
  const redis::CampaignKeys keys(kLottery);
  const auto seed = rd.get(keys.seed());
  const auto drawn = rd.get(keys.drawn());
  if (!seed) {
    notes << "draw audit: no seed in Redis\n";
    return 1;
  }
  const auto audit_dir = dir.path() / "audit";
  std::ofstream(audit_dir / "seed.txt") << *seed << "\n";
  std::string out, err;
  const int rc = testing::run_program(
      dir,
      {VOUCHER_AUDIT_BINARY, "--campaign", (audit_dir / "campaign.json").string(), "--seed-file",
       (audit_dir / "seed.txt").string(), "--draws", (audit_dir / "draws.jsonl").string()},
      &out, &err, 300s);
  const std::string verified = "all " + drawn.value_or("0") + " draws verified";
  if (rc == 0 && out.find(verified) != std::string::npos) return 0;
  notes << "draw audit: voucher-audit exited " << rc << " (expected \"" << verified
        << "\"): " << out.substr(0, 4'000) << err.substr(0, 1'000) << "\n";
  const auto of = out.rfind(" of ");
  const auto line_start = out.rfind('\n', of == std::string::npos ? 0 : of);
  const std::int64_t wrong =
      rc == 1 && of != std::string::npos
          ? std::atoll(out.c_str() + (line_start == std::string::npos ? 0 : line_start + 1))
          : 0;
  return std::max<std::int64_t>(1, wrong);
}

// ---- the run ----------------------------------------------------------------------------

struct Options {
  int cycles = 25;
  std::uint64_t seed = 1;
  int crowd_ms = 700;   // the crowd presses this long before each fault
  std::string out;      // a directory for the history and the logs
  bool tamper = false;  // delete one acknowledged voucher before checking (checks the checker)
};

// Set by SIGTERM or SIGINT (timeout(1) ending a run): the cycles stop, and
// the run stops its processes on the way out instead of leaving them behind.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_interrupt(int) { g_interrupted = 1; }

int usage() {
  std::cerr << "usage: voucherd-chaos --cycles N [--seed S] [--crowd-ms MS] [--out DIR] "
               "[--tamper-lose-one]\n";
  return 2;
}

int run(const Options& o) {
  const auto began = Clock::now();
  TempDir dir;
  RedisServer redis(dir);  // AOF, appendfsync always
  const auto secret = dir.write("secret.hex", testing::test_secret_hex()).string();
  const Campaigns campaigns = write_campaigns(dir, o.cycles);
  Targets targets;
  Cluster cluster(dir, redis, campaigns, secret, targets);
  int not_ready = 0;
  if (!cluster.wait_ready()) {
    std::cerr << "the replicas were not ready at start\n";
    ++not_ready;
  }
  std::atomic<int> cycle{0};
  std::mt19937_64 rng(o.seed);
  struct FaultStats {
    int count = 0;
    long long ready_ms_max = 0;  // from the fault's start to every replica ready
    long long ready_ms_sum = 0;
  };
  std::map<std::string, FaultStats> fault_counts;
  std::optional<Crowd> crowd;
  crowd.emplace(targets, o.seed, cycle);
  std::signal(SIGTERM, on_interrupt);
  std::signal(SIGINT, on_interrupt);
  int cycles_run = 0;
  for (int c = 1; c <= o.cycles && g_interrupted == 0; ++c) {
    cycles_run = c;
    cycle.store(c, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(o.crowd_ms));
    const Fault fault = kFaults[rng() % kFaults.size()];
    const int replica = static_cast<int>(rng() % kReplicas);
    const auto t0 = Clock::now();
    cluster.inject(fault, replica, rng);
    const bool ready = cluster.wait_ready();
    if (!ready) ++not_ready;
    const long long ready_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    FaultStats& stats = fault_counts[fault_name(fault)];
    ++stats.count;
    stats.ready_ms_max = std::max(stats.ready_ms_max, ready_ms);
    stats.ready_ms_sum += ready_ms;
    std::cerr << "cycle " << c << "/" << o.cycles << ": " << fault_name(fault) << " on replica "
              << replica << ", ready " << ready_ms << " ms after the fault began"
              << (ready ? "" : " (NOT READY)") << "\n";
  }
  if (g_interrupted != 0) {
    // Leave at once: the destructors kill the replicas and Redis.
    crowd->stop();
    std::cout << "Chaos: INTERRUPTED after " << cycles_run << " of " << o.cycles
              << " cycles; nothing checked\nRESULT: FAIL\n";
    return 1;
  }
  // Let the crowd press once more on a healed cluster, then stop it.
  std::this_thread::sleep_for(std::chrono::milliseconds(o.crowd_ms));
  crowd->stop();
  const std::vector<Attempt> history = crowd->history();
  crowd.reset();
  // Leases of killed replicas lapse and are taken back by the live ones.
  std::this_thread::sleep_for(kLeaseTimeout * 2 + 500ms);
  const std::int64_t internal_errors = cluster.internal_errors();
  std::ostringstream notes;
  const bool exported = export_draws(dir, cluster.any_target(), notes);
  const int unclean = cluster.stop_all();

  auto conn = redis.connect();
  if (!conn) {
    std::cerr << "cannot read Redis: " << conn.error() << "\n";
    return 1;
  }
  RedisReader reader(std::move(*conn));
  if (o.tamper) {
    // A voucher no desk tried to redeem, so that exactly two rows count it.
    std::unordered_set<std::string> redeem_tried;
    for (const Attempt& a : history) {
      if (a.kind == OpKind::kRedeem) redeem_tried.insert(a.voucher);
    }
    for (const Attempt& a : history) {
      if (a.kind == OpKind::kClaim && a.code == grpc::StatusCode::OK &&
          !redeem_tried.contains(a.voucher)) {
        redis::CampaignKeys keys(kFirstCome);
        (void)redis.cli({"DEL", keys.voucher(a.voucher)});
        std::cerr << "tampered: deleted the record of " << a.voucher << "\n";
        break;
      }
    }
  }
  const std::int64_t audit_failures = exported ? audit_draws(dir, reader, notes) : 1;
  const auto [bugs_logged, error_lines] = scan_logs(dir, notes);
  const std::vector<Row> rows = check(reader,
                                      {.history = history,
                                       .campaigns = campaigns,
                                       .unclean_stops = unclean,
                                       .not_ready_cycles = not_ready,
                                       .start_failures = cluster.start_failures(),
                                       .internal_errors = internal_errors,
                                       .audit_failures = audit_failures,
                                       .bugs_logged = bugs_logged,
                                       .error_lines = error_lines},
                                      notes);

  // The report.
  std::map<std::string, std::map<std::string, std::int64_t>> answers;  // kind -> code -> n
  std::map<std::string, std::int64_t> presses;
  for (const Attempt& a : history) {
    const std::string code =
        a.code == grpc::StatusCode::OK
            ? (a.repeat ? "OK(repeat)"
                        : (a.kind == OpKind::kDraw && !a.won ? "OK(no prize)" : "OK"))
            : std::string(grpc_code_name(static_cast<std::size_t>(a.code))) +
                  (a.reason.empty() ? "" : " " + a.reason);
    ++answers[kind_name(a.kind)][code];
    if (a.attempt == 1) ++presses[kind_name(a.kind)];
  }
  std::ostringstream report;
  report
      << "Chaos: " << cycles_run << " cycles"
      << (cycles_run < o.cycles ? " (INTERRUPTED: " + std::to_string(o.cycles) + " asked)" : "")
      << ", seed " << o.seed << ", " << kReplicas << " replicas, crowd of " << kCrowdThreads
      << " threads, "
      << std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - began).count()
      << " s\n\n  fault                           count  ready from its start: mean ms  max ms\n";
  for (const auto& [name, f] : fault_counts) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-30s %6d  %28lld  %6lld\n", name.c_str(), f.count,
                  f.count == 0 ? 0LL : f.ready_ms_sum / f.count, f.ready_ms_max);
    report << line;
  }
  report << "\nHistory (" << history.size() << " attempts):\n";
  for (const auto& [kind, codes] : answers) {
    report << "  " << kind << ": " << presses[kind] << " presses;";
    for (const auto& [code, n] : codes) report << " [" << code << "] " << n << ";";
    report << "\n";
  }
  report << "\n  check                                   count  result\n";
  bool failed = false;
  for (const Row& r : rows) {
    const bool bad = r.violation && r.count != 0;
    failed = failed || bad;
    report << "  " << r.check << std::string(40 - std::min<std::size_t>(39, r.check.size()), ' ')
           << std::string(5 - std::min<std::size_t>(4, std::to_string(r.count).size()), ' ')
           << r.count << "  " << (r.violation ? (bad ? "FAIL" : "OK") : "info") << "\n";
  }
  failed = failed || cycles_run < o.cycles;
  report << "\nRESULT: " << (failed ? "FAIL" : "OK") << "\n";
  std::cout << report.str();
  if (!notes.str().empty()) std::cout << "\nFindings:\n" << notes.str().substr(0, 20'000);
  if (!o.out.empty()) {
    std::filesystem::create_directories(o.out);
    std::ofstream(std::filesystem::path(o.out) / "report.txt") << report.str() << notes.str();
    std::ofstream h(std::filesystem::path(o.out) / "history.tsv");
    h << "kind\tcycle\tattempt\treplica\tmember\trequest_id\tcode\treason\tvoucher\tsite\trepeat\t"
         "won\tdraw\n";
    for (const Attempt& a : history) {
      h << kind_name(a.kind) << '\t' << a.cycle << '\t' << a.attempt << '\t' << a.replica << '\t'
        << a.member << '\t' << a.request_id << '\t' << static_cast<int>(a.code) << '\t' << a.reason
        << '\t' << a.voucher << '\t' << a.site << '\t' << a.repeat << '\t' << a.won << '\t'
        << a.draw_number << '\n';
    }
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir.path(), ec)) {
      if (e.path().extension() == ".stderr") {
        std::filesystem::copy_file(e.path(), std::filesystem::path(o.out) / e.path().filename(),
                                   std::filesystem::copy_options::overwrite_existing, ec);
      }
    }
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace voucherd::chaos

int main(int argc, char** argv) {
  voucherd::chaos::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (a == "--cycles") {
      const auto v = value();
      if (!v) return voucherd::chaos::usage();
      o.cycles = std::atoi(v->c_str());
    } else if (a == "--seed") {
      const auto v = value();
      if (!v) return voucherd::chaos::usage();
      o.seed = std::strtoull(v->c_str(), nullptr, 10);
    } else if (a == "--crowd-ms") {
      const auto v = value();
      if (!v) return voucherd::chaos::usage();
      o.crowd_ms = std::atoi(v->c_str());
    } else if (a == "--out") {
      const auto v = value();
      if (!v) return voucherd::chaos::usage();
      o.out = *v;
    } else if (a == "--tamper-lose-one") {
      o.tamper = true;
    } else {
      return voucherd::chaos::usage();
    }
  }
  if (o.cycles < 1 || o.cycles > voucherd::chaos::kCyclesMax || o.crowd_ms < 0 ||
      o.crowd_ms > 60'000) {
    return voucherd::chaos::usage();
  }
  return voucherd::chaos::run(o);
}
