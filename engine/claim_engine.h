// claim_engine.h — campaigns, claims and voucher look-ups: the core of voucherd.
//
// A claim, step by step (FIRST_COME campaigns):
//   1. check ids, find the campaign (lock-free registry), check mode and window;
//   2. under the member's shard lock in the campaign's allowance index: a
//      member who already holds their allowance (or this request_id) is
//      answered at once with that voucher; a member with a claim in flight
//      waits for it; otherwise the claim is marked pending;
//   3. take one unit from the lock-free inventory (the chosen SKU, or any);
//   4. mint the voucher code (CSPRNG bits + HMAC) and build the record;
//   5. append it to the claim log; its answer completes the claim: written
//      -> OK; the log says the member already holds one -> the unit goes
//      back and the caller gets that voucher; log trouble -> the unit goes
//      back and the caller gets UNAVAILABLE / RESOURCE_EXHAUSTED.
// Presses that waited on the member's pending claim are then run again and
// find the held voucher.
//
// Usage:
//   ClaimEngine engine(log, clock, random, secret);
//   engine.create_campaign(spec);
//   struct MyClaim final : ClaimOp { void on_claim_done(const ClaimResult& r) override {...} };
//   MyClaim op; op.campaign_id = ...; op.member_id = ...;
//   engine.claim(op);   // on_claim_done runs exactly once, maybe on another thread
//
// Thread-safety: every public method may be called concurrently. Ops are
// owned by the caller and must stay alive until their completion has run.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/campaign_runtime.h"
#include "engine/campaign_validation.h"
#include "engine/claim_log.h"
#include "engine/clock.h"
#include "engine/limits.h"
#include "engine/lottery.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/outcome.h"
#include "engine/random.h"
#include "engine/voucher_code.h"

namespace voucherd {

struct SkuStatsView {
  std::string sku_id;
  std::int64_t stock = 0;
  std::int64_t issued = 0;
  std::int64_t redeemed = 0;
  std::int64_t remaining = 0;
  std::int64_t expired = 0;
};

struct CampaignStatsView {
  std::string campaign_id;
  std::int64_t stock_total = 0;
  std::int64_t issued = 0;
  std::int64_t redeemed = 0;
  std::int64_t remaining = 0;
  std::int64_t expired = 0;
  std::int64_t members = 0;
  std::vector<SkuStatsView> skus;
  // APPLY_THEN_DRAW campaigns, filled by the admin path from the store.
  std::optional<ApplicationCounts> applications;
};

struct AllocationOptions {
  std::size_t batch_max = limits::kAllocationBatchMax;  // winners per step, 1 to the limit
  // Called when a step went unanswered, before the same step is sent again
  // (`attempt` 1 for its first resend, 2 for the next...); false gives up:
  // the turn stays this replica's until its lease lapses, and a later call
  // resumes. Empty: give up at once.
  std::function<bool(int attempt)> retry_wait;
  // Asked between steps: false ends the call there (kStopped), with every
  // step sent so far written. Empty: go on to the end.
  std::function<bool()> keep_going;
};

// What one allocate() call came to.
struct AllocationRun {
  enum class Result : std::uint8_t {
    kTooEarly,  // before allocation_at (by this replica's clock or the store's)
    kBusy,      // another replica has the turn
    kDone,      // the allocation is done (by this call or before)
    kLost,      // the turn passed to another replica while this one wrote
    kStopped,   // keep_going said stop between steps; the rest is resumed later
  };
  Result result = Result::kTooEarly;
  std::int64_t applications = 0;  // the frozen set, when this call read it
  std::int64_t written = 0;       // rank positions this call wrote
  std::int64_t selected = 0;      // vouchers this call issued
};

struct CreateError {
  Outcome outcome;     // kInvalidArgument, kCampaignExists or kOverloaded (registry full)
  InvalidField field;  // for kInvalidArgument; message for the others
};

class ClaimEngine final {
 public:
  // How often one member may press Claim in one campaign: `per_second`
  // presses a second once a burst of `burst` is spent (a GCRA token bucket
  // kept in the member's entry of the campaign's index, so it costs no
  // memory and no lock of its own). Zero `per_second`: no limit. It applies
  // to members the index holds: those with a voucher or a claim in flight;
  // a member it does not hold is either claiming (and so enters it) or
  // refused SOLD_OUT without state, the cheapest answer there is.
  struct MemberPressLimit {
    std::uint32_t per_second = 0;  // <= limits::kPressRatePerSecondMax
    std::uint32_t burst = 1;       // >= 1
  };

  // REQUIRES: secret.size() >= limits::kSecretBytesMin. log, clock and random
  // must outlive the engine.
  ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
              std::span<const std::uint8_t> secret);
  // With secrets being rotated: the first mints, all verify (CodeSigner).
  ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
              std::span<const std::vector<std::uint8_t>> secrets);
  ~ClaimEngine();
  ClaimEngine(const ClaimEngine&) = delete;
  ClaimEngine& operator=(const ClaimEngine&) = delete;

  // Validates and adds a campaign. Idempotent: the same definition again
  // returns the existing campaign; a different one is kCampaignExists. A
  // different definition already in a shared store is refused too, unless
  // `stored` allows replacing it (before it opens; see StoredDefinition).
  [[nodiscard]] std::expected<const CampaignRuntime*, CreateError> create_campaign(
      CampaignSpec spec, StoredDefinition stored = StoredDefinition::kMustMatch);
  // Lock-free look-up; nullptr if unknown.
  [[nodiscard]] const CampaignRuntime* find_campaign(std::string_view id) const;
  [[nodiscard]] std::vector<const CampaignRuntime*> campaigns() const;

  // REQUIRES: before the first claim (not thread-safe against claims).
  void set_member_press_limit(MemberPressLimit limit);

  void claim(ClaimOp& op);
  void get_voucher(VoucherLookupOp& op);
  void redeem(RedeemOp& op);
  void cancel(CancelOp& op);
  void list_member_vouchers(MemberVouchersOp& op);
  void draw(DrawOp& op);
  // APPLY_THEN_DRAW campaigns: a member applies (or changes their
  // application) during the window, and asks where it stands.
  void apply(ApplyOp& op);
  void get_application(ApplicationLookupOp& op);
  // Runs the allocation of an APPLY_THEN_DRAW campaign as far as this
  // replica may (docs/apply-then-draw.md, "The allocation run"): blocks,
  // for the allocating thread only. Safe to call on every replica, as often
  // as wanted: the store's turn decides who writes, and a done allocation is
  // never written again. One call at a time per campaign on one replica: a
  // second one meanwhile answers kBusy at once.
  [[nodiscard]] StoreResult<AllocationRun> allocate(std::string_view campaign_id,
                                                    std::string_view replica_id,
                                                    const AllocationOptions& options = {});
  // A campaign's seed, once it may be revealed: a LOTTERY's once its window
  // has ended, an APPLY_THEN_DRAW's once this replica saw its allocation
  // done (kCampaignNotFound, kWrongMode, kCampaignNotOver, kLogUnavailable
  // when not settled).
  [[nodiscard]] std::expected<LotterySeed, Outcome> reveal_seed(std::string_view campaign_id) const;
  // Every draw of a LOTTERY campaign in decision order (blocking: admin
  // threads only). The error is a message (kWrongMode is the caller's to check).
  [[nodiscard]] StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec& spec) {
    return log_.draw_entries(spec);
  }
  // Every application of an APPLY_THEN_DRAW campaign and what it got,
  // ordered by member (blocking: admin threads only; kWrongMode is the
  // caller's to check).
  [[nodiscard]] StoreResult<ApplicationOutcomes> application_outcomes(const CampaignSpec& spec) {
    return log_.application_outcomes(spec);
  }
  // Every REDEEMED voucher of a campaign (blocking: admin threads only).
  [[nodiscard]] StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(
      std::string_view campaign_id) {
    return log_.redeemed_vouchers(campaign_id);
  }
  // Per SKU, vouchers past expires_at and still ISSUED (blocking: admin
  // threads only).
  [[nodiscard]] StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec& spec) {
    return log_.expired_counts(spec, clock_.now_us());
  }

  [[nodiscard]] std::expected<CampaignStatsView, Outcome> campaign_stats(
      std::string_view campaign_id) const;
  // An APPLY_THEN_DRAW campaign's applications and allocation, store-wide
  // (blocking: admin threads only). When the store does not say when the
  // allocation was done (one process), the time this replica wrote it.
  [[nodiscard]] StoreResult<ApplicationCounts> application_counts(const CampaignRuntime& c);

  [[nodiscard]] const Clock& clock() const { return clock_; }

  // Codes that verified under each secret (0: the minting one) since start,
  // so that an operator sees when an old secret is no longer presented.
  [[nodiscard]] std::size_t secret_count() const { return signer_.secret_count(); }
  [[nodiscard]] std::uint64_t verified_by_secret(std::size_t k) const {
    return verified_by_secret_[k].load(std::memory_order_relaxed);
  }

 private:
  friend class ClaimOp;
  friend class CampaignRuntime;
  friend class VoucherLookupOp;
  friend class RedeemOp;
  friend class CancelOp;
  friend class DrawOp;
  friend class ApplyOp;
  friend class ApplicationLookupOp;

  // claim() without resetting the per-call state (re-runs of a claim that
  // waited for the store's answer).
  void run_claim(ClaimOp& op);
  // A press that waited for its member's pending claim, run again from the
  // start, but not counted again by the press limit.
  void rerun_claim(ClaimOp& op);
  CampaignRuntime* find_mutable(std::string_view id) const;
  // The campaign and SKU whose MAC a code carries, and its canonical form;
  // kMistypedCode or kVoucherNotFound (forged) without touching the log.
  struct CodeMatch {
    const CampaignRuntime* campaign;
    std::uint32_t sku;
    std::string canonical;
  };
  [[nodiscard]] std::expected<CodeMatch, Outcome> match_code(std::string_view code) const;
  // After a cancel that frees the allowance: the member no longer holds `v`
  // in this process's index.
  void forget_held(const VoucherRecord& v);
  void finish(ClaimOp& op, const ClaimResult& result, bool drop_pending, const VoucherPtr& held);
  // Drops the claim's pending mark (keeping `held`, if any, as the member's):
  // returns the presses of the member that waited on it, to run again.
  ClaimOp* release_pending(ClaimOp& op, const VoucherPtr& held);
  void run_waiters(ClaimOp* waiters);
  // The claim holds its member's pending mark: takes a unit (or waits for
  // one, or refuses) and hands the voucher to the claim log.
  void take_stock(ClaimOp& op);
  // Claims that waited for units and were woken: each tries again.
  void retry_waiters(ClaimOp* waiters);
  // Answers claims whose wait ended (see CampaignStock::settle_waits).
  void end_waits(ClaimOp* ended, Outcome why);
  void complete_logged(ClaimOp& op, LogStatus status, VoucherPtr held);
  VoucherPtr mint_voucher(const CampaignRuntime& c, std::uint32_t sku, std::string_view member_id,
                          std::string_view request_id, UnixMicros now_us);
  // A voucher a draw won: into the member's entry of the allowance index.
  void remember_held(CampaignRuntime& c, const VoucherPtr& v);

  // Whether the member of `e` may press at `now`; if not, how many ms until
  // it may (the entry's shard lock is held).
  [[nodiscard]] std::uint32_t press_refused_ms(MemberEntry& e, UnixMicros now) const;

  ClaimLog& log_;
  const Clock& clock_;
  RandomSource& random_;
  CodeSigner signer_;
  // The member press limit in press ticks since the engine started (its
  // 32 bits last 497 days of uptime): 0 interval is no limit.
  const UnixMicros press_epoch_us_;
  mutable std::array<std::atomic<std::uint64_t>, limits::kSecretsMax> verified_by_secret_{};
  std::uint32_t press_interval_ticks_ = 0;
  std::uint32_t press_tolerance_ticks_ = 0;

  // Insert-only open-addressing table: readers probe with acquire loads and
  // never lock; writers serialize on create_mu_ and publish with release.
  std::unique_ptr<std::atomic<CampaignRuntime*>[]> slots_;
  std::array<std::atomic<const CampaignRuntime*>, 1u << limits::kCodeCampaignTagBits> by_tag_{};
  mutable std::mutex create_mu_;
  std::vector<std::unique_ptr<CampaignRuntime>> owned_;  // guarded by create_mu_
};

}  // namespace voucherd
