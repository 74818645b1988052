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
//     Idle, it pings its connection every 250 ms.
//   - the lease keeper owns another connection; it keeps each campaign's
//     local counters topped up from the shared stock, beats for this replica
//     (taking back the leases of replicas whose beat lapsed), reads the
//     holders feed and the campaign registry, ends the waits of claims
//     waiting for units, and hands unused units back on stop().
//
// Key layout (every key of a campaign carries the hash tag {<campaign id>}
// so a campaign lives in one Redis Cluster slot and no script crosses
// slots): server/redis/keys.h. The scripts: server/redis/scripts/*.lua
// (scripts.h), their answers script_replies.h. The class's code is split by
// job: redis_claim_log.cc (start, stop, the link), writer.cc, leases.cc,
// campaigns.cc, admin_reads.cc (claim_log_internal.h holds what they share).
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
#include "server/base/metrics_primitives.h"
#include "server/redis/connection.h"
#include "server/redis/link.h"
#include "server/redis/lottery_log.h"
#include "server/redis/primary.h"
#include "server/store/store.h"

namespace voucherd::redis {

struct ClaimLogOptions {
  // The primary: `endpoint` (--redis), or, when `sentinel` is set, the
  // primary the sentinels name (`endpoint` then gives only its password
  // and database).
  Endpoint endpoint;
  std::optional<SentinelOptions> sentinel;
  // A Redis Cluster instead (--redis-cluster): `endpoint` is then unused.
  std::optional<ClusterOptions> cluster;
  std::string replica_id;  // unique per process start
  std::chrono::milliseconds io_timeout{2000};
  std::size_t queue_max = 0;  // 0: limits::kClaimLogQueueMax
  // A replica that has not beaten this long is taken for dead: any live
  // replica gives its leased units back to the pool. It beats every sixth
  // of this. Every replica of a store should use the same value.
  std::chrono::milliseconds lease_timeout{3000};
  // Acknowledged means replicated: after each batch that wrote, WAIT until
  // this many replicas have it, at most `replica_wait`; when fewer confirm,
  // the batch's writes are answered UNAVAILABLE (retry-safe). 0: no WAIT.
  int min_replicas = 0;
  std::chrono::milliseconds replica_wait{500};
  // APPLY_THEN_DRAW campaigns: the allocation's turn passes to another
  // replica when its owner has not renewed it (by a step written, or by
  // asking again) this long. It must cover reading and ranking every
  // application (a million in a few seconds), and every replica of a store
  // should use the same value.
  std::chrono::milliseconds allocation_lease{10'000};
};

class RedisClaimLog final : public ClaimLog, public Store {
 public:
  // `encode_campaign` turns a spec into the bytes stored as its definition
  // (deterministic); the log compares them to tell "same campaign" apart.
  RedisClaimLog(ClaimLogOptions options,
                std::function<std::string(const CampaignSpec&)> encode_campaign);
  ~RedisClaimLog() override;

  // Store:
  [[nodiscard]] std::string_view kind() const override { return "redis"; }
  [[nodiscard]] ClaimLog& claim_log() override { return *this; }
  // Starts the writer and the lease keeper, which connect at once and keep
  // their connections alive on their own (reconnecting with capped backoff
  // and jitter, pinging when idle). A Redis that is down only makes the
  // replica not ready, and claims UNAVAILABLE, until it is up.
  void start() override;
  // Lets queued writes finish, hands unused leased units back, stops threads.
  void stop() override;
  // Both connections (the writer's and the lease keeper's) are up, and the
  // keeper has read the campaign registry since it connected.
  [[nodiscard]] bool connected() const override {
    return writer_up_.load(std::memory_order_acquire) && keeper_up_.load(std::memory_order_acquire);
  }
  void watch_campaigns(CampaignListener listener) override { listener_ = std::move(listener); }
  [[nodiscard]] LeaseHealth lease_health(std::string_view campaign_id) const override;

  // The writer's figures, for /metrics: claims per batch that carried
  // claims, the round trip of each pipeline (ns), and claims waiting.
  [[nodiscard]] const metrics::Histogram* batch_claims() const override { return &batch_claims_; }
  [[nodiscard]] const metrics::Histogram* write_latency_ns() const override {
    return &write_latency_ns_;
  }
  // Relaxed: a gauge read at scrape time, ordering nothing.
  [[nodiscard]] std::size_t queue_depth() const override {
    return queue_depth_.load(std::memory_order_relaxed);
  }

  StoreResult<void> open_campaign(const CampaignSpec& spec, CampaignStock& stock,
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
  StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(std::string_view campaign_id) override;
  // Sums the expiry buckets (vd:{C}:expiring) whose minute has passed.
  StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec& spec,
                                                        UnixMicros now_us) override;

  // Draws and applications are group-committed with claims: one script call
  // per campaign and batch decides them in order (server/redis/lottery_log.h,
  // server/redis/apply_log.h).
  void append_draw(DrawLogWrite& write) override;
  // Reads the draw log on its own connection.
  StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec& spec) override;
  void append_application(ApplicationLogWrite& write) override;
  // One script call per look-up; a SELECTED member's costs a second, which
  // declares their voucher's record key.
  void find_application(const CampaignSpec& spec, std::string_view member_id,
                        ApplicationLookup& lookup) override;
  // The allocation (the allocating thread, blocking), on a link of its own:
  // alloc_take.lua, HSCAN of the applications (renewing the turn every third
  // of the lease), alloc_batch.lua (waiting for min_replicas, like the
  // writer's batches). A turn this replica holds is handed on by stop().
  StoreResult<AllocationTurn> take_allocation(const CampaignSpec& spec,
                                              std::string_view replica) override;
  StoreResult<std::vector<ApplicationEntry>> read_applications(const CampaignSpec& spec,
                                                               const AllocationTurn& turn) override;
  StoreResult<AllocationTurn> write_allocation(const CampaignSpec& spec, const AllocationTurn& turn,
                                               std::int64_t from, std::int64_t to,
                                               std::span<const AllocatedVoucher> winners) override;
  StoreResult<ApplicationCounts> application_counts(const CampaignSpec& spec) override;
  StoreResult<ApplicationOutcomes> application_outcomes(const CampaignSpec& spec) override;

  // Reads the store-wide counts of a campaign (blocking; admin path, runs on
  // the caller's thread with its own short-lived connection).
  [[nodiscard]] StoreResult<std::optional<CampaignCounts>> read_counts(
      const CampaignSpec& spec) override;
  // Returns to the shared pool the units leased by replicas whose beat
  // lapsed (the lease keepers do this on their own at every beat; this is
  // the manual tool). Safe while claims continue: live replicas' leases are
  // untouched. Returns the units returned per SKU.
  [[nodiscard]] StoreResult<std::vector<std::int64_t>> reconcile(const CampaignSpec& spec) override;
  [[nodiscard]] std::string_view replica_id() const override { return options_.replica_id; }
  // The replicas' beats and leases of a campaign, in one read-only script
  // (ages by Redis's clock). Blocking; admin path, like read_counts.
  [[nodiscard]] StoreResult<std::vector<ReplicaLeases>> read_replicas(
      const CampaignSpec& spec) override;

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
  struct ApplicationLookupRequest {
    const CampaignSpec* spec;
    std::string member_id;
    ApplicationLookup* done;
    std::string code;  // a follow-up: the record key of this code is declared
    int follow_ups = 0;
  };
  // What the writer sends in one pipeline.
  struct Batch {
    std::vector<ClaimLogWrite*> claims;
    std::vector<Lookup> lookups;
    std::vector<Redemption> redemptions;
    std::vector<Cancellation> cancellations;
    std::vector<MemberLookup> member_lookups;
    std::vector<DrawAttempt> draws;
    std::vector<ApplicationLogWrite*> applications;
    std::vector<ApplicationLookupRequest> application_lookups;
  };
  // The writer's view of a LOTTERY campaign, for its guesses: each SKU's
  // prize units left (as of the latest batch), and members' draw numbers.
  struct LotteryView {
    std::vector<std::int64_t> remaining;
    std::int64_t drawn_chunk = 0;  // the draw log's chunk as of the latest batch
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
    // The first lease is taken before the window opens (or at once), so
    // the opening wave is served from local stock.
    bool preleased = false;
    // Units in the shared pool (all SKUs) as of the latest beat.
    std::int64_t pool_units = 0;
    std::chrono::steady_clock::time_point next_beat{};
    // Entries of vd:{C}:holders handed to the engine so far.
    std::int64_t holders_read = 0;
    std::chrono::steady_clock::time_point next_holders_read{};
    bool leased_before = false;  // a lease granted units here at least once
    // The keeper's link was lost: the next return hands back all that the
    // lease record holds (a failover may have kept writes we never heard
    // confirmed, or lost some we did).
    bool return_all_held = false;
    bool return_failure_logged = false;  // handing units back failed; logged once
    bool conflict_logged = false;        // its refusal by the store was logged
  };

  void writer_loop();
  // Writer thread: connects (with backoff) when it has no connection, and
  // pings an idle one, so the link is watched with no traffic.
  void keep_writer_alive();
  bool queues_empty() const;  // REQUIRES: mu_ held
  void lease_loop();
  // Sends a batch as one pipeline and answers every request in it, one part
  // per kind of request (writer.cc).
  void write_batch(Batch& batch);
  struct ClaimsPart;
  struct LookupsPart;
  struct RedemptionsPart;
  struct CancellationsPart;
  struct MemberLookupsPart;
  struct DrawsPart;
  struct ApplicationsPart;
  struct ApplicationLookupsPart;
  // A draw's randomness and guesses for its (next) attempt. Writer thread.
  void prepare_draw(DrawAttempt& d);
  // Answers the draws of one script call; wrong guesses go to draw_retries_.
  void complete_draws(const CampaignSpec& spec, std::vector<DrawAttempt>& draws,
                      const Reply& reply);
  bool ensure_writer_connection();
  // The allocation's link (REQUIRES: allocation_mu_ held), and one script
  // call on it, loaded again on NOSCRIPT; `writes` waits for min_replicas.
  // A Redis error is kUnavailable (READONLY during a failover, say).
  StoreResult<Reply> allocation_call(const Command& command, const Script& script, bool writes);
  StoreResult<AllocationTurn> take_turn(const CampaignSpec& spec, std::string_view replica);
  // stop(): hands on the turns this replica holds (alloc_release.lua).
  void release_turns();
  // A link to the store for an admin read or a one-off write.
  std::expected<std::unique_ptr<Link>, std::string> open_link();
  bool register_campaign(Link& conn, Campaign& c, std::string* conflict);
  void top_up(Link& conn, Campaign& c);
  void return_units(Link& conn, Campaign& c);
  void return_idle_units(Link& conn, Campaign& c);
  void drop_local_units();
  // Beats for this replica in the campaign, and takes back the leases of
  // replicas whose beat lapsed (beat.lua). Keeper thread.
  void beat(Link& conn, Campaign& c);
  // Reads the holders feed (vd:{C}:holders) up to at least `until` entries
  // (-1: whatever is there) and hands it to the engine. Keeper thread.
  bool read_holders(Link& conn, Campaign& c, std::int64_t until);
  // A new keeper connection: whether its server is the one seen before
  // (INFO's run_id); if not, every holders feed is read again from its
  // start. False when the connection failed. Keeper thread.
  bool check_server(Link& conn);
  // The registry: campaigns other replicas created. Keeper thread, without
  // campaigns_mu_ (the listener creates campaigns, which takes it).
  bool poll_registry(Link& conn);
  // A claim the store fenced: its SKU's local units are not ours any more.
  // Writer thread; never waits for the keeper (see unit_notes_).
  void drop_fenced(const ClaimLogWrite& write);
  // This replica's beat lapsed: drop its local units, hand back what its
  // lease records still hold, lease again. Keeper thread.
  void on_lapsed(Link& conn, Campaign& c);
  // A connection's state changed (its flag is already set): log once when
  // the store is lost (warn, with `error`) and once when it is back (info,
  // with the outage's length). An empty `error` only reports "up".
  void note_link(const std::string& error);
  void unit_returned(std::string_view campaign_id, std::uint32_t sku);
  // Units of claims whose write was not confirmed: maybe issued, maybe not.
  // Kept as dropped; on reconnection the lease record decides. Writer
  // thread; never waits for the keeper (see unit_notes_).
  void drop_unconfirmed(const std::vector<ClaimLogWrite*>& writes);
  // The campaign and SKU index of a claim, for the writer. REQUIRES:
  // notes_mu_ held. Null when the campaign is not served here.
  Campaign* writer_campaign(std::string_view campaign_id, std::string_view sku_id,
                            std::uint32_t* sku);
  // Hands the writer's notes to the campaigns' keeper-side counts. Keeper
  // thread; REQUIRES: campaigns_mu_ held.
  void apply_unit_notes();

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
  std::deque<ApplicationLogWrite*> applications_;
  std::deque<ApplicationLookupRequest> application_lookups_;
  bool stopping_ = false;

  std::mutex campaigns_mu_;  // guards campaigns_ (lease keeper and open_campaign)
  std::vector<std::unique_ptr<Campaign>> campaigns_;
  // What the writer learns of a campaign's local units (a claim fenced, a
  // write not confirmed) goes to the keeper as a note, under a lock of its
  // own that no one holds across Redis I/O: the keeper holds campaigns_mu_
  // for its whole pass, Redis calls included, and a writer waiting for it
  // answered a failed batch only once the keeper's calls on a bad link had
  // timed out too (one per campaign: seconds).
  struct UnitNote {
    Campaign* campaign;
    std::uint32_t sku;
    std::int64_t dropped_units;
    bool fenced;  // the SKU's local units were all dropped: not final here
  };
  std::mutex notes_mu_;                  // guards unit_notes_ and writer_index_
  std::vector<UnitNote> unit_notes_;     // applied by the keeper (apply_unit_notes())
  std::vector<Campaign*> writer_index_;  // campaigns_, for the writer (never removed)

  std::unique_ptr<PrimaryLocator> primary_;  // null with a Redis Cluster
  std::unique_ptr<LinkFactory> links_;
  std::unique_ptr<Link> writer_link_;  // writer thread only
  std::mutex allocation_mu_;           // guards allocation_link_ and turns_held_
  std::unique_ptr<Link> allocation_link_;
  // Campaigns whose allocation turn this replica took and has not seen done.
  std::vector<const CampaignSpec*> turns_held_;
  std::vector<DrawAttempt> draw_retries_;  // writer thread only: go out in the next batch
  absl::flat_hash_map<std::string, LotteryView> lottery_views_;  // writer thread only
  std::chrono::steady_clock::time_point next_connect_{};
  std::chrono::milliseconds backoff_{50};

  CampaignListener listener_;     // set before start(); called by the keeper
  std::string registry_version_;  // keeper thread: vd:{registry}:version as last read
  std::string server_run_id_;     // keeper thread: Link::server_identity() as last seen

  std::atomic<bool> writer_up_{false};
  std::atomic<bool> keeper_up_{false};
  std::chrono::steady_clock::time_point writer_last_used_{};  // writer thread
  std::atomic<bool> link_tried_{false};  // a connection attempt failed at least once
  std::mutex link_mu_;                   // guards the link's reported state below
  bool link_reported_up_ = false;
  bool link_ever_up_ = false;
  bool link_ever_reported_ = false;
  std::chrono::steady_clock::time_point link_down_since_{};
  mutable std::mutex health_mu_;  // guards health_
  absl::flat_hash_map<std::string, LeaseHealth> health_;
  std::atomic<bool> lease_stop_{false};
  std::atomic<std::size_t> queue_depth_{0};  // claims_.size(), stored under mu_
  metrics::Histogram batch_claims_{kBatchClaimsBounds};
  metrics::Histogram write_latency_ns_{metrics::kLatencyBoundsNs};
  std::thread writer_;
  std::thread lease_keeper_;
};

}  // namespace voucherd::redis
