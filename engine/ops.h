// ops.h — the operations a caller hands to ClaimEngine: one object per
// claim, look-up, redemption, cancellation, draw or member list in flight.
// The caller derives from one, fills its inputs (views into memory it keeps
// alive until the completion runs) and gets exactly one completion call,
// possibly on another thread, possibly inside the engine call itself.
//
// The private parts are the engine's: where the operation is in its steps,
// and the claim log's completion interfaces it implements.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/apply.h"
#include "engine/claim_log.h"
#include "engine/limits.h"
#include "engine/lottery.h"
#include "engine/model.h"
#include "engine/outcome.h"
#include "engine/voucher_code.h"

namespace voucherd {

class CampaignRuntime;
class ClaimEngine;
class ClaimOp;
struct MemberRecord;

struct ClaimResult {
  Outcome outcome = Outcome::kInternal;
  const char* field = nullptr;       // for kInvalidArgument: which input
  VoucherPtr voucher;                // for kOk and kAlreadyClaimed
  std::uint32_t retry_after_ms = 0;  // for kPressRateLimited: when the member may press again
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
  friend class MemberShard;
  void on_logged(LogStatus status, VoucherPtr held) override;
  void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) override;

  ClaimEngine* engine_ = nullptr;
  class CampaignRuntime* campaign_ = nullptr;
  std::size_t member_hash_ = 0;
  std::uint32_t sku_ = 0;
  std::uint32_t wanted_sku_ = 0;        // the SKU asked for, or kNoSku
  MemberRecord* member_ref_ = nullptr;  // while in flight: the member's record
  ClaimOp* next_waiter_ = nullptr;
  ClaimOp* next_pending_ = nullptr;  // the member's next claim in flight
  // Waiting for units: when the wait ends, and the next claim waiting.
  UnixMicros wait_until_us_ = 0;
  ClaimOp* next_stock_waiter_ = nullptr;
  std::uint8_t fenced_ = 0;      // times the store refused this claim's unit
  bool looked_up_ = false;       // the store was asked what the member holds
  bool press_admitted_ = false;  // the member press limit let this press in
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

// What an Apply or a GetApplication came to.
struct ApplicationResult {
  // Apply: kOk, or kInvalidArgument (`field`), kCampaignNotFound,
  // kWrongMode, kNotOpen, kClosed, kSkuNotFound (`sku_id`),
  // kApplicationsFull, kOverloaded, kLogUnavailable.
  // GetApplication: kOk, or kInvalidArgument (`field`), kCampaignNotFound,
  // kWrongMode, kApplicationNotFound, kLogUnavailable.
  Outcome outcome = Outcome::kInternal;
  const char* field = nullptr;
  std::string_view sku_id;       // kSkuNotFound: the preference that names no SKU
  ApplicationEntry application;  // kOk: the member's application as it stands
  ApplicationState state = ApplicationState::kPending;
  VoucherPtr voucher;     // kSelected: the voucher won (its current record)
  bool replaced = false;  // Apply: it replaced the member's earlier application
  bool repeat = false;    // Apply: the application as it stands was made by this request_id
  // Once not kPending: "rank HMAC-SHA256 <hex>", the applicant's rank, which
  // anyone can recompute once the seed is revealed (engine/apply.h).
  std::string proof;
};

// An Apply in flight (APPLY_THEN_DRAW campaigns); same ownership rules as
// ClaimOp: the views, and the strings `preferred_sku_ids` views, stay valid
// until on_apply_done() runs.
class ApplyOp : private ApplicationLogWrite {
 public:
  std::string_view campaign_id;
  std::string_view member_id;
  // Required. A retry with the same one, while the application it made
  // stands, changes nothing and gets it back (a stale one, after another
  // request replaced it, replaces it again: the last write wins).
  std::string_view request_id;
  // Most wanted first, at most limits::kApplicationPreferencesMax; empty: any.
  std::span<const std::string_view> preferred_sku_ids;

  // Called exactly once per apply(), from any thread, possibly inside apply().
  virtual void on_apply_done(const ApplicationResult& result) = 0;

 protected:
  virtual ~ApplyOp() = default;

 private:
  friend class ClaimEngine;
  void on_application_logged(ApplyLogStatus status, const ApplicationEntry& stored) override;

  // The preferences as SKU indexes (no allocation per call).
  std::array<std::uint32_t, limits::kApplicationPreferencesMax> preferred_{};
};

// A GetApplication in flight; same ownership rules as ClaimOp.
class ApplicationLookupOp : private ApplicationLookup {
 public:
  std::string_view campaign_id;
  std::string_view member_id;

  // Called exactly once per get_application(), from any thread.
  virtual void on_application_done(const ApplicationResult& result) = 0;

 protected:
  virtual ~ApplicationLookupOp() = default;

 private:
  friend class ClaimEngine;
  void on_application_found(LookupStatus status, const ApplicationEntry& application,
                            ApplicationState state, VoucherPtr voucher) override;

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

}  // namespace voucherd
