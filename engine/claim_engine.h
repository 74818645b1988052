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

#include <absl/container/inlined_vector.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/claim_log.h"
#include "engine/clock.h"
#include "engine/holder_set.h"
#include "engine/inventory.h"
#include "engine/limits.h"
#include "engine/lottery.h"
#include "engine/model.h"
#include "engine/outcome.h"
#include "engine/random.h"
#include "engine/sharded_map.h"
#include "engine/voucher_code.h"

namespace voucherd {

class ClaimEngine;
class ClaimOp;

struct ClaimResult {
  Outcome outcome = Outcome::kInternal;
  const char* field = nullptr;  // for kInvalidArgument: which input
  VoucherPtr voucher;           // for kOk and kAlreadyClaimed
};

// One claim in flight. The caller fills the inputs (views into memory the
// caller keeps alive until on_claim_done) and hands it to ClaimEngine::claim.
class ClaimOp : private ClaimLogWrite, private MemberVouchersLookup {
 public:
  std::string_view campaign_id;
  std::string_view member_id;
  std::string_view sku_id;      // empty: any SKU with stock
  std::string_view request_id;  // may be empty when per_member_limit == 1
  // The caller's deadline (Unix µs; 0: none). A claim that finds this
  // replica's shelf empty while a refill is on its way waits for it, at
  // most until this deadline and at most limits::kStockWaitUsMax.
  UnixMicros deadline_us = 0;

  // Called exactly once per claim(), from any thread, possibly inside claim().
  virtual void on_claim_done(const ClaimResult& result) = 0;

 protected:
  virtual ~ClaimOp() = default;

 private:
  friend class ClaimEngine;
  friend class CampaignRuntime;
  void on_logged(LogStatus status, VoucherPtr held) override;
  void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) override;

  ClaimEngine* engine_ = nullptr;
  class CampaignRuntime* campaign_ = nullptr;
  std::size_t member_hash_ = 0;
  std::uint32_t sku_ = 0;
  std::uint32_t wanted_sku_ = 0;  // the SKU asked for, or Inventory::kNone
  ClaimOp* next_waiter_ = nullptr;
  // Waiting for units: when the wait ends, and the next claim waiting.
  UnixMicros wait_until_us_ = 0;
  ClaimOp* next_stock_waiter_ = nullptr;
  std::uint8_t fenced_ = 0;  // times the store refused this claim's unit
  bool looked_up_ = false;   // the store was asked what the member holds
};

// A GetVoucher in flight; same ownership rules as ClaimOp.
class VoucherLookupOp : private VoucherLookup {
 public:
  std::string_view code;
  // kOk with the voucher and its visible state, or kMistypedCode,
  // kVoucherNotFound, kLogUnavailable.
  virtual void on_lookup_done(Outcome outcome, VoucherPtr voucher, VoucherState visible) = 0;

 protected:
  virtual ~VoucherLookupOp() = default;

 private:
  friend class ClaimEngine;
  void on_found(LookupStatus status, VoucherPtr voucher) override;

  ClaimEngine* engine_ = nullptr;
  std::string canonical_;
  const CampaignRuntime* campaign_ = nullptr;
  std::uint32_t sku_ = 0;
};

// A Redeem in flight; same ownership rules as ClaimOp. The strings must
// stay valid until on_redeem_done() runs.
class RedeemOp : private VoucherRedemption {
 public:
  std::string_view code;
  std::string_view site_id;
  std::string_view request_id;  // a retry with the same one gets the same answer
  // kOk with the redeemed voucher (`already_redeemed` when this request_id
  // redeemed it before), or kInvalidArgument (`field`), kMistypedCode,
  // kVoucherNotFound, kWrongSite, kVoucherExpired, kVoucherCancelled,
  // kAlreadyRedeemed (`voucher` says where and when), kLogUnavailable.
  virtual void on_redeem_done(Outcome outcome, VoucherPtr voucher, bool already_redeemed,
                              const char* field) = 0;

 protected:
  virtual ~RedeemOp() = default;

 private:
  friend class ClaimEngine;
  void on_redeem_logged(RedeemStatus status, VoucherPtr voucher) override;

  ClaimEngine* engine_ = nullptr;
  const CampaignRuntime* campaign_ = nullptr;
  std::uint32_t sku_ = 0;
  std::string canonical_;
};

// A CancelVoucher in flight; same ownership rules as ClaimOp.
class CancelOp : private VoucherCancellation {
 public:
  std::string_view code;
  // kOk with the cancelled voucher (also when it was cancelled before), or
  // kMistypedCode, kVoucherNotFound, kAlreadyRedeemed, kLogUnavailable.
  virtual void on_cancel_done(Outcome outcome, VoucherPtr voucher) = 0;

 protected:
  virtual ~CancelOp() = default;

 private:
  friend class ClaimEngine;
  void on_cancel_logged(CancelStatus status, VoucherPtr voucher) override;

  ClaimEngine* engine_ = nullptr;
  const CampaignRuntime* campaign_ = nullptr;
  std::uint32_t sku_ = 0;
  std::string canonical_;
};

// What a Draw came to.
struct DrawOpResult {
  // kOk, or kInvalidArgument (`field`), kCampaignNotFound, kWrongMode,
  // kNotOpen, kClosed, kDrawLimitReached, kOverloaded, kLogUnavailable.
  Outcome outcome = Outcome::kInternal;
  const char* field = nullptr;
  bool repeat = false;  // this request_id drew before: the same draw again
  DrawEntry entry;      // kOk
  VoucherPtr voucher;   // kOk, for a win
  std::int32_t draws_left_today = 0;
  // kOk: "draw <n>, HMAC-SHA256 <hex>": the draw's randomness, which anyone
  // can recompute once the seed is revealed.
  std::string proof;
  UnixMicros resets_at_us = 0;  // kDrawLimitReached: when the member's next day begins
  std::string resets_at;        // the same in RFC 3339, in the campaign's time zone
};

// A Draw in flight (LOTTERY campaigns); same ownership rules as ClaimOp.
class DrawOp : private DrawLogWrite {
 public:
  std::string_view campaign_id;
  std::string_view member_id;
  std::string_view request_id;  // required: a retry with the same one gets the same draw

  // Called exactly once per draw(), from any thread, possibly inside draw().
  virtual void on_draw_done(const DrawOpResult& result) = 0;

 protected:
  virtual ~DrawOp() = default;

 private:
  friend class ClaimEngine;
  DrawRandomness randomness(std::int64_t n) override;
  VoucherPtr mint(std::uint32_t sku) override;
  void on_draw_logged(DrawLogStatus status, const DrawEntry& entry, VoucherPtr voucher,
                      std::int32_t draws_today) override;

  ClaimEngine* engine_ = nullptr;
  CampaignRuntime* campaign_ = nullptr;
  const SkuMacKey* seed_key_ = nullptr;  // the campaign's, immutable once set
};

// A ListMemberVouchers in flight: the caller owns it until
// on_member_vouchers_done() runs, and the views must stay valid until then.
class MemberVouchersOp {
 public:
  std::string_view member_id;
  std::string_view campaign_id;  // empty: every campaign
  // kOk with the member's vouchers, campaign by campaign, oldest first
  // (visible states need `now_us`); or kInvalidArgument (member_id),
  // kCampaignNotFound, kLogUnavailable.
  virtual void on_member_vouchers_done(Outcome outcome, std::vector<VoucherPtr> vouchers,
                                       UnixMicros now_us) = 0;

 protected:
  virtual ~MemberVouchersOp() = default;
};

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
};

struct CreateError {
  Outcome outcome;     // kInvalidArgument, kCampaignExists or kOverloaded (registry full)
  InvalidField field;  // for kInvalidArgument; message for the others
};

// Per-campaign state. Immutable spec + concurrent counters and index.
// Thread-safety: spec and keys are immutable after construction; the rest is
// atomics and the sharded allowance index.
class CampaignRuntime final : public CampaignStock {
 public:
  // `proposed_seed`: fresh random bytes (LOTTERY campaigns; see set_seed).
  CampaignRuntime(CampaignSpec spec, const CodeSigner& signer, const LotterySeed& proposed_seed);

  // CampaignStock: how the claim log fills this campaign's local counters.
  void add_units(std::uint32_t sku, std::int64_t units) override;
  std::int64_t take_units(std::uint32_t sku, std::int64_t max) override;
  [[nodiscard]] std::int64_t available(std::uint32_t sku) const override;
  void set_final(std::uint32_t sku, bool final) override;
  // A press found no unit of `sku` (Inventory::kNone: of any SKU). Relaxed:
  // the flags carry no data, only "there was demand".
  void note_missed(std::uint32_t sku);
  [[nodiscard]] bool take_missed(std::vector<std::uint32_t>& named_skus) override;
  void settle_waits(bool store_reachable) override;
  [[nodiscard]] std::size_t waiting_claims() const override {
    // Relaxed: a moment's view for the keeper's demand check.
    return stock_waiters_count_.load(std::memory_order_relaxed);
  }
  void note_store_holder(std::string_view member_id, std::string_view cancelled_code,
                         bool holds_any) override;
  // Members the store's holders feed says hold a voucher (a moment's view).
  [[nodiscard]] std::int64_t store_holders() const { return store_holders_.size(); }
  [[nodiscard]] const LotterySeed& proposed_seed() const override { return proposed_seed_; }
  // The first seed set stays (every replica's log hands over the same one).
  void set_seed(const LotterySeed& seed) override;

  // LOTTERY campaigns: the seed, once the claim log has settled it.
  [[nodiscard]] std::optional<LotterySeed> seed() const;
  // Lower-case hex SHA-256 of the seed; empty until it is settled.
  [[nodiscard]] std::string seed_commitment() const;
  [[nodiscard]] const LotteryCalendar* calendar() const {
    return calendar_ ? &*calendar_ : nullptr;
  }

  [[nodiscard]] const CampaignSpec& spec() const { return spec_; }
  [[nodiscard]] std::uint16_t tag() const { return tag_; }
  // Index of an SKU id, or Inventory::kNone.
  [[nodiscard]] std::uint32_t sku_index(std::string_view sku_id) const;

 private:
  friend class ClaimEngine;
  friend class ClaimOp;
  friend class VoucherLookupOp;
  friend class RedeemOp;
  friend class CancelOp;
  friend class DrawOp;

  enum class StockWait : std::uint8_t { kWaiting, kLookAgain, kFull };
  // Parks `op` until units or finality arrive, unless they arrived already
  // (kLookAgain) or too many claims wait (kFull).
  StockWait wait_for_stock(ClaimOp& op, UnixMicros now_us);
  // Hands every waiting claim back to the engine to try again.
  void wake_stock_waiters();
  // The member no longer holds `code` in this process's index.
  void forget_held(std::string_view member_id, std::string_view code);

  // Inline room for one of each: with the usual limit of one pack a member
  // entry costs no allocation beyond its map slot.
  struct MemberEntry {
    absl::InlinedVector<VoucherPtr, 1> held;   // oldest first
    absl::InlinedVector<ClaimOp*, 1> pending;  // claims of this member in flight
    ClaimOp* waiters = nullptr;                // presses waiting for a pending claim
    std::uint32_t waiter_count = 0;
  };
  struct alignas(64) SkuCounters {
    std::atomic<std::int64_t> issued{0};
    std::atomic<std::int64_t> redeemed{0};  // by this process (stats of one replica)
  };

  const CampaignSpec spec_;
  const std::uint16_t tag_;
  absl::flat_hash_map<std::string, std::uint32_t> sku_by_id_;
  std::vector<SkuMacKey> mac_keys_;
  Inventory inventory_;
  std::unique_ptr<SkuCounters[]> sku_counters_;
  std::atomic<std::int64_t> members_{0};
  // Claims waiting for units, a list through ClaimOp::next_stock_waiter_.
  // The lock is taken only by claims that found the shelf empty while a
  // refill is on its way, and by whoever brings units or finality.
  std::mutex stock_waiters_mu_;
  ClaimOp* stock_waiters_ = nullptr;                 // guarded by stock_waiters_mu_
  std::atomic<std::size_t> stock_waiters_count_{0};  // written under the lock
  HolderSet store_holders_;
  // Set by presses that found no unit; cleared by the log when it looks.
  // Pressers load before they store, so a storm of sold-out presses keeps
  // the line shared instead of bouncing it between cores.
  std::atomic<bool> missed_{false};
  std::array<std::atomic<std::uint64_t>, limits::kSkusPerCampaignMax / 64> missed_skus_{};
  ShardedMap<MemberEntry> members_index_;
  // LOTTERY campaigns.
  std::optional<LotteryCalendar> calendar_;
  const LotterySeed proposed_seed_;
  mutable std::mutex seed_mu_;  // guards seed_ while it is set
  LotterySeed seed_{};
  SkuMacKey seed_key_{};               // hmac_key(seed_), for draws
  std::atomic<bool> seed_set_{false};  // release: seed_ and seed_key_ are written
  // Next campaign with the same tag (insert-only list, see ClaimEngine).
  std::atomic<const CampaignRuntime*> next_same_tag_{nullptr};
};

class ClaimEngine final {
 public:
  // REQUIRES: secret.size() >= limits::kSecretBytesMin. log, clock and random
  // must outlive the engine.
  ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
              std::span<const std::uint8_t> secret);
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

  void claim(ClaimOp& op);
  void get_voucher(VoucherLookupOp& op);
  void redeem(RedeemOp& op);
  void cancel(CancelOp& op);
  void list_member_vouchers(MemberVouchersOp& op);
  void draw(DrawOp& op);
  // A LOTTERY campaign's seed, once its window has ended (kCampaignNotFound,
  // kWrongMode, kCampaignNotOver, kLogUnavailable when not settled).
  [[nodiscard]] std::expected<LotterySeed, Outcome> reveal_seed(std::string_view campaign_id) const;
  // Every draw of a LOTTERY campaign in decision order (blocking: admin
  // threads only). The error is a message (kWrongMode is the caller's to check).
  [[nodiscard]] std::expected<std::vector<DrawEntry>, std::string> draw_entries(
      const CampaignSpec& spec) {
    return log_.draw_entries(spec);
  }
  // Every REDEEMED voucher of a campaign (blocking: admin threads only).
  [[nodiscard]] std::expected<std::vector<VoucherPtr>, std::string> redeemed_vouchers(
      std::string_view campaign_id) {
    return log_.redeemed_vouchers(campaign_id);
  }
  // Per SKU, vouchers past expires_at and still ISSUED (blocking: admin
  // threads only).
  [[nodiscard]] std::expected<std::vector<std::int64_t>, std::string> expired_counts(
      const CampaignSpec& spec) {
    return log_.expired_counts(spec, clock_.now_us());
  }

  [[nodiscard]] std::expected<CampaignStatsView, Outcome> campaign_stats(
      std::string_view campaign_id) const;

  [[nodiscard]] const Clock& clock() const { return clock_; }

 private:
  friend class ClaimOp;
  friend class CampaignRuntime;
  friend class VoucherLookupOp;
  friend class RedeemOp;
  friend class CancelOp;
  friend class DrawOp;

  // claim() without resetting the per-call state (re-runs of a claim that
  // waited for its member's pending claim, or for the store's answer).
  void run_claim(ClaimOp& op);
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

  ClaimLog& log_;
  const Clock& clock_;
  RandomSource& random_;
  CodeSigner signer_;

  // Insert-only open-addressing table: readers probe with acquire loads and
  // never lock; writers serialize on create_mu_ and publish with release.
  std::unique_ptr<std::atomic<CampaignRuntime*>[]> slots_;
  std::array<std::atomic<const CampaignRuntime*>, 1u << limits::kCodeCampaignTagBits> by_tag_{};
  mutable std::mutex create_mu_;
  std::vector<std::unique_ptr<CampaignRuntime>> owned_;  // guarded by create_mu_
};

}  // namespace voucherd
