// metrics.h — voucherd's Prometheus metrics: counted on the hot path with
// striped lock-free counters (metrics_primitives.h), exposed on GET /metrics
// through prometheus-cpp's text serializer.
//
//   voucherd_claims_total{campaign,outcome}          engine outcomes of Claim
//   voucherd_redemptions_total{campaign,outcome}     engine outcomes of Redeem
//   voucherd_draws_total{campaign,outcome}           lottery draws (count_draw)
//   voucherd_applications_total{campaign,outcome}    Apply calls (count_apply)
//   voucherd_rpc_responses_total{rpc,code}           every answer, by gRPC status
//   voucherd_rpc_duration_seconds{rpc}               histogram per RPC
//   voucherd_sku_remaining{campaign,sku}             gauges computed at scrape
//   voucherd_sku_leased{campaign,sku}                  (never on the claim path)
//   voucherd_claim_log_batch_claims                  histogram (Redis store)
//   voucherd_claim_log_write_seconds                 histogram (Redis store)
//   voucherd_claim_log_queue_depth                   gauge
//   voucherd_store_connected, voucherd_ready, voucherd_draining, voucherd_build_info
//
// A campaign id that names no loaded campaign is counted under the label
// campaign="(unknown)", so that callers cannot grow the label set at will.
// Campaigns get their counters the first time they are counted (one mutex,
// once per campaign); after that a count is a lock-free probe of an
// insert-only table plus one relaxed fetch_add on this thread's stripe.
//
// Thread-safety: count_*() and observe_rpc() from any thread; exposition()
// and snapshot() from any thread (the ops thread).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/limits.h"
#include "engine/outcome.h"
#include "proto/grpc_code_names.h"
#include "server/base/metrics_primitives.h"
#include "server/store/store.h"

namespace voucherd {

enum class Rpc : std::uint8_t {
  kClaim,
  kGetVoucher,
  kRedeem,
  kListMemberVouchers,
  kCancelVoucher,
  kExportRedemptions,
  kCreateCampaign,
  kGetCampaign,
  kGetCampaignStats,
  kReconcileCampaign,
  kDraw,
  kClaimBatch,
  kRevealSeed,
  kExportDraws,
  kListCampaigns,
  kListReplicas,
  kApply,
  kGetApplication,
  kExportApplications,
  kCount,
};
[[nodiscard]] const char* rpc_name(Rpc rpc);

// Outcome label slots: one per engine Outcome, then the draw-only "no_prize".
// Outcomes the engine may add later (a lottery's) fall into the kInternal
// slot until this table grows: kOutcomeSlotsMax leaves room.
inline constexpr std::size_t kEngineOutcomes = static_cast<std::size_t>(Outcome::kInternal) + 1;
inline constexpr std::size_t kNoPrizeSlot = kEngineOutcomes;
inline constexpr std::size_t kOutcomeSlotsMax = 40;
static_assert(kNoPrizeSlot < kOutcomeSlotsMax, "outcome slots must hold every Outcome");

struct MetricsOptions {
  std::string version;
  Store* store = nullptr;  // connection state, store-wide counts, leases, writer figures
  // With TLS: when --tls-cert expires (notAfter, Unix seconds).
  std::optional<std::int64_t> tls_not_after_seconds;
};

// What the ops thread samples once a second for the dashboard's series.
struct MetricsSnapshot {
  std::uint64_t claim_calls = 0;                      // Claim answers of any status
  metrics::HistogramSnapshot claim_latency;           // nanoseconds
  std::array<std::uint64_t, kGrpcCodes> codes_all{};  // every RPC's answers by code
};

class Metrics final {
 public:
  Metrics(const ClaimEngine& engine, MetricsOptions options);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Hot path: a probe and one relaxed increment each.
  void count_claim(std::string_view campaign_id, Outcome outcome);
  void count_redemption(std::string_view campaign_id, Outcome outcome);
  // A lottery draw: `won` tells a winning draw (outcome kOk) from one that
  // drew nothing (also kOk on the wire); refusals carry their Outcome.
  void count_draw(std::string_view campaign_id, Outcome outcome, bool won);
  // An Apply to an APPLY_THEN_DRAW campaign: kOk for an application taken
  // (new, replacing or repeated), else the refusal.
  void count_apply(std::string_view campaign_id, Outcome outcome);
  // Every answered RPC: its status code and how long it took.
  void observe_rpc(Rpc rpc, int grpc_code, std::uint64_t elapsed_ns);

  // The Prometheus text exposition (format 0.0.4). Reads the engine's
  // counters and, with Redis, the store-wide counts (blocking: ops thread).
  [[nodiscard]] std::string exposition(bool ready, bool draining) const;
  [[nodiscard]] MetricsSnapshot snapshot() const;

 private:
  struct CampaignCounters {
    std::string id;
    metrics::CounterArray<kOutcomeSlotsMax> claims;
    metrics::CounterArray<kOutcomeSlotsMax> redemptions;
    metrics::CounterArray<kOutcomeSlotsMax> draws;
    metrics::CounterArray<kOutcomeSlotsMax> applications;
  };
  struct RpcCounters {
    metrics::CounterArray<kGrpcCodes> codes;
    metrics::Histogram latency{metrics::kLatencyBoundsNs};
  };

  // The counters of a loaded campaign, or of "(unknown)".
  CampaignCounters& campaign(std::string_view id);
  static std::size_t slot_of(Outcome outcome);

  const ClaimEngine& engine_;
  MetricsOptions options_;
  // Insert-only open addressing: readers probe with acquire loads, writers
  // serialize on mu_ and publish with release stores (as the engine's
  // campaign registry does).
  std::unique_ptr<std::atomic<CampaignCounters*>[]> slots_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<CampaignCounters>> owned_;  // guarded by mu_
  CampaignCounters unknown_;
  std::array<RpcCounters, static_cast<std::size_t>(Rpc::kCount)> rpcs_;
};

}  // namespace voucherd
