// redis_claim_log.h — the claim log in Redis, shared by many voucherd
// replicas: group-committed claims, authoritative member allowances, and
// stock leased to each replica in blocks.
//
// Threads:
//   - the writer owns one connection; it takes every queued claim and
//     look-up at once (up to limits::kClaimLogBatchMax claims), sends them as
//     one pipeline (one script call per campaign), and completes each claim
//     only after Redis answered. A lone claim goes out at once; under a storm
//     batches grow by themselves while the previous round trip is in flight.
//   - the lease keeper owns another connection; it keeps each campaign's
//     local counters topped up from the shared stock, refreshes this
//     replica's heartbeat, and hands unused units back on stop().
//
// Key layout (every key of a campaign carries the hash tag {<campaign id>}
// so a campaign lives in one Redis Cluster slot and no script crosses
// slots): see docs/redis.md.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/claim_log.h"
#include "server/metrics_primitives.h"
#include "server/redis/lottery_log.h"
#include "server/redis/redis_connection.h"

namespace voucherd::redis {

// Claims per writer batch: 1 .. limits::kClaimLogBatchMax (512).
inline constexpr std::array<std::uint64_t, 10> kBatchClaimsBounds = {1,  2,  4,   8,   16,
                                                                     32, 64, 128, 256, 512};

struct ClaimLogOptions {
  Endpoint endpoint;
  std::string replica_id;  // unique per process start
  std::chrono::milliseconds io_timeout{2000};
  std::size_t queue_max = 0;  // 0: limits::kClaimLogQueueMax
};

// Store-wide counts of one campaign, read for GetCampaignStats.
struct CampaignCounts {
  std::vector<std::int64_t> issued;    // per SKU, all replicas
  std::vector<std::int64_t> redeemed;  // per SKU, all replicas
  std::int64_t members = 0;            // members holding at least one voucher
};

// Replaces this replica's issued, redeemed, remaining and member counts in
// `stats` with the store-wide ones (every replica's vouchers).
void apply_counts(const CampaignCounts& counts, CampaignStatsView& stats);

class RedisClaimLog final : public ClaimLog {
 public:
  // `encode_campaign` turns a spec into the bytes stored as its definition
  // (deterministic); the log compares them to tell "same campaign" apart.
  RedisClaimLog(ClaimLogOptions options,
                std::function<std::string(const CampaignSpec&)> encode_campaign);
  ~RedisClaimLog() override;

  // Starts the writer and lease keeper. Connecting happens in the background:
  // a Redis that is down at start only makes claims UNAVAILABLE until it is up.
  void start();
  // Lets queued writes finish, hands unused leased units back, stops threads.
  void stop();

  [[nodiscard]] bool connected() const { return connected_.load(std::memory_order_acquire); }

  // The writer's figures, for /metrics: claims per batch that carried
  // claims, the round trip of each pipeline (ns), and claims waiting.
  [[nodiscard]] const metrics::Histogram& batch_claims() const { return batch_claims_; }
  [[nodiscard]] const metrics::Histogram& write_latency_ns() const { return write_latency_ns_; }
  // Relaxed: a gauge read at scrape time, ordering nothing.
  [[nodiscard]] std::size_t queue_depth() const {
    return queue_depth_.load(std::memory_order_relaxed);
  }

  std::expected<void, std::string> open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                                 StoredDefinition stored) override;
  void append_claim(ClaimLogWrite& write) override;
  void find_voucher(std::string_view campaign_id, std::string_view code,
                    VoucherLookup& lookup) override;
  void redeem(std::string_view campaign_id, std::string_view code, const RedeemRequestView& request,
              VoucherRedemption& done) override;
  void cancel(std::string_view campaign_id, std::string_view code, const CancelRequestView& request,
              VoucherCancellation& done) override;
  void find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                            std::span<const std::string> known_codes,
                            MemberVouchersLookup& done) override;
  // Reads vd:{C}:redeemed_codes and the records, on its own connection.
  std::expected<std::vector<VoucherPtr>, std::string> redeemed_vouchers(
      std::string_view campaign_id) override;
  // Sums the expiry buckets (vd:{C}:expiring) whose minute has passed.
  std::expected<std::vector<std::int64_t>, std::string> expired_counts(const CampaignSpec& spec,
                                                                       UnixMicros now_us) override;

  // Draws are group-committed with claims: one script call per campaign and
  // batch decides them in order (server/redis/lottery_log.h).
  void append_draw(DrawLogWrite& write) override;
  // Reads the draw log on its own connection.
  std::expected<std::vector<DrawEntry>, std::string> draw_entries(
      const CampaignSpec& spec) override;

  // Reads the store-wide counts of a campaign (blocking; admin path, runs on
  // the caller's thread with its own short-lived connection).
  [[nodiscard]] std::expected<CampaignCounts, std::string> read_counts(const CampaignSpec& spec);
  // Returns to the shared pool the units leased by replicas that are gone
  // (no heartbeat). Safe while claims continue: live replicas' leases are
  // untouched. Returns the units returned per SKU.
  [[nodiscard]] std::expected<std::vector<std::int64_t>, std::string> reconcile(
      const CampaignSpec& spec);

 private:
  struct Lookup {
    std::string campaign_id;
    std::string code;
    VoucherLookup* lookup;
  };
  struct Redemption {
    std::string campaign_id;
    std::string code;
    std::string site_id;
    std::string request_id;
    UnixMicros now_us;
    VoucherRedemption* done;
  };
  struct Cancellation {
    std::string campaign_id;
    std::string code;
    CancelRequestView request;
    VoucherCancellation* done;
  };
  struct MemberLookup {
    std::string campaign_id;
    std::string member_id;
    MemberVouchersLookup* done;
  };
  // What the writer sends in one pipeline.
  struct Batch {
    std::vector<ClaimLogWrite*> claims;
    std::vector<Lookup> lookups;
    std::vector<Redemption> redemptions;
    std::vector<Cancellation> cancellations;
    std::vector<MemberLookup> member_lookups;
    std::vector<DrawAttempt> draws;
  };
  // The writer's view of a LOTTERY campaign, for its guesses: each SKU's
  // prize units left (as of the latest batch), and members' draw numbers.
  struct LotteryView {
    std::vector<std::int64_t> remaining;
    absl::flat_hash_map<std::string, std::int64_t> draws_by_member;
  };
  struct Campaign {
    const CampaignSpec* spec;
    CampaignStock* stock;
    // Per SKU, from the latest lease answer: units left in the shared pool,
    // and units leased to other replicas.
    std::vector<std::int64_t> known_left;
    std::vector<std::int64_t> elsewhere;
    std::vector<bool> final;            // as last told to the engine
    std::int64_t returns_seen = 0;      // vd:{C}:returns as of the latest lease answer
    std::vector<std::int64_t> dropped;  // units forgotten on a disconnect
    std::vector<std::chrono::steady_clock::time_point> next_final_check;
    // Idle leases go back to the shared pool, so units do not sit in a
    // replica nobody is claiming through while others are sold out.
    std::vector<std::int64_t> last_available;
    std::vector<std::chrono::steady_clock::time_point> last_change;
    std::chrono::steady_clock::time_point last_busy{};  // latest local change of any SKU
    std::chrono::steady_clock::time_point next_recheck{};
    std::size_t cursor = 0;            // where the next lease starts looking
    std::vector<std::uint32_t> named;  // scratch: SKUs presses named and found empty
    StoredDefinition stored = StoredDefinition::kMustMatch;
    bool registered = false;
  };

  void writer_loop();
  bool queues_empty() const;  // REQUIRES: mu_ held
  void lease_loop();
  void write_batch(Batch& batch);
  // A draw's randomness and guesses for its (next) attempt. Writer thread.
  void prepare_draw(DrawAttempt& d);
  // Answers the draws of one script call; wrong guesses go to draw_retries_.
  void complete_draws(const CampaignSpec& spec, std::vector<DrawAttempt>& draws,
                      const Reply& reply);
  bool ensure_writer_connection();
  bool register_campaign(Connection& conn, Campaign& c, std::string* conflict);
  void top_up(Connection& conn, Campaign& c);
  void return_units(Connection& conn, Campaign& c);
  void return_idle_units(Connection& conn, Campaign& c);
  void drop_local_units();
  void unit_returned(std::string_view campaign_id, std::uint32_t sku);
  // Units of claims whose write was not confirmed: maybe issued, maybe not.
  // Kept as dropped; on reconnection the lease record decides.
  void drop_unconfirmed(const std::vector<ClaimLogWrite*>& writes);

  ClaimLogOptions options_;
  std::function<std::string(const CampaignSpec&)> encode_campaign_;
  std::size_t queue_max_;

  std::mutex mu_;  // guards the queues and stopping_
  std::condition_variable wake_;
  std::deque<ClaimLogWrite*> claims_;
  std::deque<Lookup> lookups_;
  std::deque<Redemption> redemptions_;
  std::deque<Cancellation> cancellations_;
  std::deque<MemberLookup> member_lookups_;
  std::deque<DrawLogWrite*> draws_;
  bool stopping_ = false;

  std::mutex campaigns_mu_;  // guards campaigns_ (lease keeper and open_campaign)
  std::vector<std::unique_ptr<Campaign>> campaigns_;

  std::unique_ptr<Connection> writer_conn_;  // writer thread only
  std::vector<DrawAttempt> draw_retries_;    // writer thread only: go out in the next batch
  absl::flat_hash_map<std::string, LotteryView> lottery_views_;  // writer thread only
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_{50};

  std::atomic<bool> connected_{false};
  std::atomic<bool> lease_stop_{false};
  std::atomic<std::size_t> queue_depth_{0};  // claims_.size(), stored under mu_
  metrics::Histogram batch_claims_{kBatchClaimsBounds};
  metrics::Histogram write_latency_ns_{metrics::kLatencyBoundsNs};
  std::thread writer_;
  std::thread lease_keeper_;
};

}  // namespace voucherd::redis
