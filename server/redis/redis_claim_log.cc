// The life of the Redis claim log: start, stop, and the link's reported
// state. The jobs are in files of their own: writer.cc (the queues, the
// writer and its batches), leases.cc (the lease keeper), campaigns.cc
// (registration), admin_reads.cc (the admin paths' reads).
#include "server/redis/redis_claim_log.h"

#include <cstdio>
#include <thread>

#include "engine/check.h"
#include "engine/limits.h"
#include "server/base/log.h"
#include "server/base/thread_name.h"
#include "server/redis/claim_log_internal.h"

namespace voucherd::redis {

using internal::Clock;

RedisClaimLog::RedisClaimLog(ClaimLogOptions options,
                             std::function<std::string(const CampaignSpec&)> encode_campaign)
    : options_(std::move(options)),
      encode_campaign_(std::move(encode_campaign)),
      queue_max_(options_.queue_max != 0 ? options_.queue_max : limits::kClaimLogQueueMax),
      primary_(options_.cluster ? nullptr
               : options_.sentinel
                   ? std::make_unique<PrimaryLocator>(*options_.sentinel, options_.endpoint)
                   : std::make_unique<PrimaryLocator>(options_.endpoint)),
      links_(primary_ ? std::make_unique<LinkFactory>(*primary_, options_.io_timeout)
                      : std::make_unique<LinkFactory>(*options_.cluster)) {
  // A WAIT longer than the socket timeout would read as a lost connection.
  VOUCHERD_CHECK(options_.replica_wait < options_.io_timeout,
                 "the replicas' wait is shorter than the Redis I/O timeout");
}

RedisClaimLog::~RedisClaimLog() { stop(); }

void RedisClaimLog::start() {
  if (primary_) primary_->start_watching();
  writer_ = std::thread([this] {
    name_this_thread("vd-redis-writer");
    writer_loop();
  });
  lease_keeper_ = std::thread([this] {
    name_this_thread("vd-lease-keeper");
    lease_loop();
  });
  // Give both a moment to connect and read the registry, so that a replica
  // that can reach Redis serves the store's campaigns from its first call.
  // Bounded: a Redis that is down does not hold the start up.
  const auto until = Clock::now() + options_.io_timeout;
  while (!connected() && Clock::now() < until && !link_tried_.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void RedisClaimLog::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (!lease_keeper_.joinable()) return;  // never started: no claim can be waiting
  if (writer_.joinable()) writer_.join();
  // The allocating thread stopped before the store (app.cc): its turns go
  // on to another replica at once, not when the lease lapses.
  release_turns();
  lease_stop_.store(true, std::memory_order_release);
  lease_keeper_.join();
  if (primary_) primary_->stop_watching();
  // Claims still waiting for units get their answer: no unit will come.
  // Answering one may run a press of the same member that waited on it,
  // which may wait in turn: settle until none is left (bounded).
  // (REQUIRES: the engine is still there, as for the threads above.)
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    for (int round = 0; round < 64 && c->stock->waiting_claims() > 0; ++round) {
      c->stock->settle_waits(/*store_reachable=*/false);
    }
  }
}

void RedisClaimLog::note_link(const std::string& error) {
  std::lock_guard lock(link_mu_);
  const bool up = connected();  // under the lock: the last caller logs the last state
  if (!up && !error.empty()) link_tried_.store(true, std::memory_order_release);
  if (up == link_reported_up_ && (up || link_ever_reported_)) return;
  const auto now = Clock::now();
  const std::string where = links_->describe();
  if (up) {
    if (!link_ever_up_) {
      log::info("store connected: " + where, {{"redis", where}});
    } else {
      const double outage_s = std::chrono::duration<double>(now - link_down_since_).count();
      char took[32];
      std::snprintf(took, sizeof took, "%.3f", outage_s);
      log::info("store back: " + where + " is reachable again after " + took + " s",
                {{"redis", where}, {"outage_seconds", outage_s}});
    }
    link_ever_up_ = true;
    link_reported_up_ = true;
    link_ever_reported_ = true;
    return;
  }
  if (error.empty()) return;  // down, but nothing to say yet (a connection is being made)
  link_down_since_ = now;
  link_reported_up_ = false;
  link_ever_reported_ = true;
  log::warn((link_ever_up_ ? "store lost: " : "store unreachable: ") + where + ": " + error +
                " (not ready, claims UNAVAILABLE, until it is back)",
            {{"redis", where}, {"error", error}});
}

std::expected<std::unique_ptr<Link>, std::string> RedisClaimLog::open_link() {
  auto link = links_->open();
  if (!link) return std::unexpected(link.error());
  // A cluster link connects when first used: see that the store answers.
  if (links_->cluster()) {
    if (auto pong = (*link)->ping(); !pong) return std::unexpected(pong.error());
  }
  return link;
}

LeaseHealth RedisClaimLog::lease_health(std::string_view campaign_id) const {
  std::lock_guard lock(health_mu_);
  const auto it = health_.find(absl::string_view(campaign_id.data(), campaign_id.size()));
  return it == health_.end() ? LeaseHealth{} : it->second;
}

}  // namespace voucherd::redis
