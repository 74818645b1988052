// store.h — the store behind the claim log, as the gRPC front, the metrics
// and the ops port see it: one interface for the memory store, the Redis
// store and the per-claim-script baseline.
//
// The engine talks to the store only through the ClaimLog port
// (engine/claim_log.h). Everything else a replica asks of its store goes
// through this interface: is it reachable, what are the store-wide counts,
// give back the leases of replicas that are gone, which campaigns does it
// hold, and the writer's figures for /metrics.
//
// Usage (main):
//   std::unique_ptr<Store> store = ...;             // MemoryStore, RedisClaimLog, ...
//   ClaimEngine engine(store->claim_log(), ...);
//   store->watch_campaigns([&](auto& id, auto& def) { ... engine.create_campaign ... });
//   store->start();
//
// Thread-safety: every method may be called from any thread, except
// start()/stop()/watch_campaigns(), which main calls from one thread.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/claim_log.h"
#include "engine/memory_claim_log.h"
#include "server/base/metrics_primitives.h"

namespace voucherd {

// Claims per writer batch (the voucherd_claim_log_batch_claims histogram):
// 1 .. limits::kClaimLogBatchMax (512).
inline constexpr std::array<std::uint64_t, 10> kBatchClaimsBounds = {1,  2,  4,   8,   16,
                                                                     32, 64, 128, 256, 512};

// Store-wide counts of one campaign, read for GetCampaignStats and /status.
struct CampaignCounts {
  std::vector<std::int64_t> issued;    // per SKU, all replicas
  std::vector<std::int64_t> redeemed;  // per SKU, all replicas
  std::int64_t members = 0;            // members holding at least one voucher
};

// How the leases of one campaign stand, as this replica last saw them.
struct LeaseHealth {
  // Replicas that hold leased units and have not beaten for longer than
  // two beats, and the units they hold: stranded until they beat again or
  // their lease times out and a live replica takes the units back.
  std::int64_t overdue_replicas = 0;
  std::int64_t stranded_units = 0;
  // Since start: replicas whose leases this replica took back, and units.
  std::int64_t reclaimed_replicas_total = 0;
  std::int64_t reclaimed_units_total = 0;
};

// One replica of a shared store, as the store sees it, for one campaign.
struct ReplicaLeases {
  std::string replica_id;
  std::optional<std::int64_t> last_beat_ms;  // Unix ms by the store's clock; none: never beat
  std::int64_t beat_age_ms = 0;              // by the store's clock
  bool lapsed = false;                       // no beat for longer than the lease timeout
  std::vector<std::int64_t> leased;          // units per SKU of the campaign
};

class Store {
 public:
  virtual ~Store() = default;

  // "memory", "redis" or "redis-per-claim".
  [[nodiscard]] virtual std::string_view kind() const = 0;
  [[nodiscard]] virtual ClaimLog& claim_log() = 0;
  // Whether the store can serve now (always true for the memory store).
  [[nodiscard]] virtual bool connected() const { return true; }

  // The campaign registry. `listener` is called, from a store thread, with
  // every campaign definition (a serialized `voucher.v1.Campaign`) that the
  // store holds and this replica does not serve yet: once when the store is
  // first reached, and again within a second of any replica adding one.
  // The memory store is its own registry (the engine's campaigns) and never
  // calls it. REQUIRES: before start().
  using CampaignListener =
      std::function<void(const std::string& id, const std::string& definition)>;
  virtual void watch_campaigns(CampaignListener listener) { (void)listener; }
  virtual void start() {}
  // Lets queued writes finish and hands leased units back.
  virtual void stop() {}

  // Store-wide counts of every replica's vouchers; nullopt when the engine's
  // own counts are the store's (one process). Blocking: admin and ops threads.
  [[nodiscard]] virtual StoreResult<std::optional<CampaignCounts>> read_counts(
      const CampaignSpec& spec) {
    (void)spec;
    return std::nullopt;
  }
  // Gives back to the shared pool the units leased by replicas whose
  // beat lapsed; per SKU, the units given back. Blocking: admin threads.
  [[nodiscard]] virtual StoreResult<std::vector<std::int64_t>> reconcile(const CampaignSpec& spec) {
    return std::vector<std::int64_t>(spec.skus.size(), 0);
  }
  [[nodiscard]] virtual LeaseHealth lease_health(std::string_view campaign_id) const {
    (void)campaign_id;
    return {};
  }
  // This process's name in the store's lease records (--replica-id).
  [[nodiscard]] virtual std::string_view replica_id() const = 0;
  // Every replica that beats for `spec` or holds leased units of it, ordered
  // by id; empty for a store without leases. Blocking: admin threads.
  [[nodiscard]] virtual StoreResult<std::vector<ReplicaLeases>> read_replicas(
      const CampaignSpec& spec) {
    (void)spec;
    return std::vector<ReplicaLeases>{};
  }

  // The writer's figures for /metrics; nullptr/0 for a store without one.
  [[nodiscard]] virtual const metrics::Histogram* batch_claims() const { return nullptr; }
  [[nodiscard]] virtual const metrics::Histogram* write_latency_ns() const { return nullptr; }
  [[nodiscard]] virtual std::size_t queue_depth() const { return 0; }
};

// One process, vouchers in memory (gone when the process ends).
class MemoryStore final : public Store {
 public:
  explicit MemoryStore(std::string replica_id = "memory") : replica_id_(std::move(replica_id)) {}
  [[nodiscard]] std::string_view kind() const override { return "memory"; }
  [[nodiscard]] ClaimLog& claim_log() override { return log_; }
  [[nodiscard]] std::string_view replica_id() const override { return replica_id_; }

 private:
  MemoryClaimLog log_;
  std::string replica_id_;
};

// Replaces the issued, redeemed, remaining and member counts in `stats` with
// the store-wide ones.
void apply_counts(const CampaignCounts& counts, CampaignStatsView& stats);

// A campaign's stats as the front and the ops port show them: the engine's,
// with the store-wide counts of every replica when the store is shared and
// reachable (a blocking read: admin and ops threads only). nullopt if the
// campaign is unknown; an error when a reachable store failed the read.
[[nodiscard]] std::expected<CampaignStatsView, std::string> storewide_stats(
    const ClaimEngine& engine, Store& store, const CampaignSpec& spec);

// For the ops port and /metrics: the store-wide stats when the store
// answers, else this replica's own figures; nullopt if the campaign is unknown.
[[nodiscard]] std::optional<CampaignStatsView> best_stats(const ClaimEngine& engine, Store& store,
                                                          const CampaignSpec& spec);

}  // namespace voucherd
