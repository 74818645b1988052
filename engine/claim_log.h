// claim_log.h — the port to the durable record of issued vouchers.
//
// The engine decides claims locally (stock counters, allowance index) and
// then asks the claim log to record them; the log's answer completes the
// claim. A log shared by several replicas (Redis) is the authority on member
// allowances: it records a voucher only if the member has not used their
// allowance (or this request_id) already, atomically with the write, and
// otherwise answers kDuplicate with the voucher the member holds. A log that
// serves one process only (memory) may leave that to the engine's own exact
// member index and never answer kDuplicate.
//
// The port is asynchronous so that an implementation can group-commit: many
// appends in flight share one durable write (the Redis log pipelines them).
// A caller owns each ClaimLogWrite / VoucherLookup until its completion runs.
//
// The asynchronous calls complete with a one-byte status each (LogStatus,
// RedeemStatus, ...); the blocking ones (admin reads, open_campaign) return
// a StoreResult: the value, or a StoreError whose kind says what went wrong
// and whose message says it for a person.
//
// Implementations: MemoryClaimLog (engine/memory_claim_log.h; tests and
// --store=memory), RedisClaimLog (server/redis/), PerClaimRedisLog
// (bench/baseline/, the benchmark baseline).
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/apply.h"
#include "engine/lottery.h"
#include "engine/model.h"
#include "engine/outcome.h"

namespace voucherd {

// What a store reports when it could not do what was asked.
enum class StoreErrorKind : std::uint8_t {
  kUnavailable,  // the store did not answer (connection lost, timed out)
  kConflict,     // open_campaign: a different definition is stored and may not be replaced
  kUnsupported,  // this store does not serve what was asked (the baseline's lotteries)
  kBadReply,     // the store answered something voucherd cannot use (a bug, or damage)
};

struct StoreError {
  StoreErrorKind kind = StoreErrorKind::kUnavailable;
  std::string message;  // for a person: names the store and what failed
};

template <class T>
using StoreResult = std::expected<T, StoreError>;

// Shorthands for an implementation's returns: `return store_unavailable(why);`.
[[nodiscard]] inline std::unexpected<StoreError> store_unavailable(std::string message) {
  return std::unexpected(StoreError{StoreErrorKind::kUnavailable, std::move(message)});
}
[[nodiscard]] inline std::unexpected<StoreError> store_conflict(std::string message) {
  return std::unexpected(StoreError{StoreErrorKind::kConflict, std::move(message)});
}
[[nodiscard]] inline std::unexpected<StoreError> store_unsupported(std::string message) {
  return std::unexpected(StoreError{StoreErrorKind::kUnsupported, std::move(message)});
}
[[nodiscard]] inline std::unexpected<StoreError> store_bad_reply(std::string message) {
  return std::unexpected(StoreError{StoreErrorKind::kBadReply, std::move(message)});
}

// The engine's outcome for a store error, which the front turns into a
// status: UNAVAILABLE, ALREADY_EXISTS, FAILED_PRECONDITION or INTERNAL.
[[nodiscard]] constexpr Outcome outcome_of(StoreErrorKind kind) {
  switch (kind) {
    case StoreErrorKind::kUnavailable:
      return Outcome::kLogUnavailable;
    case StoreErrorKind::kConflict:
      return Outcome::kCampaignExists;
    case StoreErrorKind::kUnsupported:
      return Outcome::kWrongMode;
    case StoreErrorKind::kBadReply:
      return Outcome::kInternal;
  }
  return Outcome::kInternal;
}

enum class LogStatus : std::uint8_t {
  kWritten,      // the voucher is durably recorded
  kDuplicate,    // the member already holds their allowance / this request: see `held`
  kOverloaded,   // the write queue is full; nothing was written
  kUnavailable,  // the store could not confirm the write; it may or may not be applied.
                 // The unit it carried is the log's to account for (it may have been
                 // issued): the engine does not put it back in its local stock.
  kFenced,       // nothing was written: the unit was not this replica's to hand out
                 // (its lease was taken back while it was paused or cut off). The
                 // log has dropped its local units of that SKU and leases again;
                 // the engine waits for stock as if the shelf had been empty.
};

enum class LookupStatus : std::uint8_t { kFound, kNotFound, kUnavailable };

// What the claim log found when asked to redeem a voucher; the checks run in
// this order, atomically with the state change (engine/redemption.h).
enum class RedeemStatus : std::uint8_t {
  kRedeemed,        // it was ISSUED and valid: now REDEEMED, redemption recorded
  kNotFound,        // no such voucher
  kWrongSite,       // it belongs to another site
  kRedeemedBefore,  // already REDEEMED (the record says where, when, by which request)
  kCancelled,       // CANCELLED
  kExpired,         // ISSUED, but expires_at has passed
  kUnavailable,     // the store did not answer; it may or may not be redeemed
};

class MemberVouchersLookup {
 public:
  // Called exactly once, from any thread: kFound with the member's vouchers
  // in the campaign (current records; possibly none), or kUnavailable.
  virtual void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) = 0;

 protected:
  virtual ~MemberVouchersLookup() = default;
};

// What the claim log did when asked to cancel a voucher.
enum class CancelStatus : std::uint8_t {
  kCancelled,         // it was ISSUED: now CANCELLED, its unit back in stock
  kAlreadyCancelled,  // it was CANCELLED before (nothing changed)
  kNotFound,
  kRedeemed,     // REDEEMED vouchers are not cancelled
  kUnavailable,  // the store did not answer; it may or may not be cancelled
};

struct CancelRequestView {
  std::uint32_t sku_index = 0;  // the voucher's SKU, from its code
  UnixMicros now_us = 0;
  bool keep_allowance = false;  // the campaign's cancel_keeps_allowance
  std::int32_t per_member_limit = 1;
  // Whether the unit goes back to the SKU's stock. A LOTTERY prize does not:
  // it was won by a draw the log records, and the pool the draws replay
  // (audit) must not grow afterwards; the cancelled prize is forfeited.
  bool return_unit = true;
};

class VoucherCancellation {
 public:
  // Called exactly once, from any thread. `voucher` is the record after the
  // step (nullptr for kNotFound and kUnavailable).
  virtual void on_cancel_logged(CancelStatus status, VoucherPtr voucher) = 0;

 protected:
  virtual ~VoucherCancellation() = default;
};

// A redemption asked of the claim log. The strings are owned by the caller
// and stay valid until the completion runs.
struct RedeemRequestView {
  std::string_view site_id;
  std::string_view request_id;
  UnixMicros now_us = 0;
};

class VoucherRedemption {
 public:
  // Called exactly once, from any thread, possibly before redeem() returns.
  // `voucher` is the record after the step (nullptr for kNotFound and
  // kUnavailable).
  virtual void on_redeem_logged(RedeemStatus status, VoucherPtr voucher) = 0;

 protected:
  virtual ~VoucherRedemption() = default;
};

// One claim to record. The engine fills the inputs, calls append_claim(), and
// must keep the object alive until on_logged() has been called.
class ClaimLogWrite {
 public:
  VoucherPtr voucher;                 // what to record (immutable)
  std::int32_t per_member_limit = 1;  // the member's allowance in this campaign

  // Called exactly once, from any thread, possibly before append_claim()
  // returns. For kDuplicate, `held` is the voucher the member already got for
  // this request_id, or their latest voucher when they are at their limit.
  virtual void on_logged(LogStatus status, VoucherPtr held) = 0;

 protected:
  virtual ~ClaimLogWrite() = default;
};

class VoucherLookup {
 public:
  // Called exactly once, from any thread, possibly before find_voucher() returns.
  virtual void on_found(LookupStatus status, VoucherPtr voucher) = 0;

 protected:
  virtual ~VoucherLookup() = default;
};

// The engine's local stock of one campaign, as the claim log sees it. The
// log decides how units arrive: the memory log hands over the whole stock at
// once; a shared store leases blocks of it to each replica.
// Thread-safety: all methods may be called from any thread at any time.
class CampaignStock {
 public:
  virtual ~CampaignStock() = default;
  // Adds units this process may hand out.
  virtual void add_units(std::uint32_t sku, std::int64_t units) = 0;
  // Takes back up to `max` units nobody has claimed; returns how many.
  virtual std::int64_t take_units(std::uint32_t sku, std::int64_t max) = 0;
  // Units here now (a moment's view).
  [[nodiscard]] virtual std::int64_t available(std::uint32_t sku) const = 0;
  // Campaigns with a seed (has_seed()): a fresh random seed this process proposes, and the
  // campaign's seed once the log knows it (the first seed a store recorded
  // for the campaign wins, so every replica draws with the same one).
  [[nodiscard]] virtual const LotterySeed& proposed_seed() const = 0;
  virtual void set_seed(const LotterySeed& seed) = 0;
  // Whether units beyond those here may still arrive for `sku`.
  virtual void set_final(std::uint32_t sku, bool final) = 0;
  // The demand signal a leasing log refills on, since the last call (which
  // it clears): returns whether a claim for any SKU found no unit here
  // (it waits for a refill, or was answered SOLD_OUT), and appends to
  // `named_skus` the SKUs that claims naming one found empty.
  [[nodiscard]] virtual bool take_missed(std::vector<std::uint32_t>& named_skus) = 0;
  // Claims waiting for units (a refill is on its way) are answered once
  // their wait is over: STOCK_REFILLING at the end of their wait, or at once
  // with UNAVAILABLE when `store_reachable` is false (no unit can come). A
  // leasing log calls this every pass of its keeper; units arriving
  // (add_units) and SKUs turning final (set_final) wake waiting claims
  // themselves.
  virtual void settle_waits(bool store_reachable) = 0;
  // Claims waiting for units now (a moment's view; demand for the keeper).
  [[nodiscard]] virtual std::size_t waiting_claims() const = 0;
  // A shared store's holders feed: `member_id` holds a voucher of this
  // campaign, issued by any replica (`holds_any`), or holds none any more.
  // A non-empty `cancelled_code` was cancelled on some replica and its
  // allowance freed: this process forgets it too.
  virtual void note_store_holder(std::string_view member_id, std::string_view cancelled_code,
                                 bool holds_any) = 0;
};

// What the claim log did with a draw of a LOTTERY campaign.
enum class DrawLogStatus : std::uint8_t {
  kDrawn,        // decided and recorded: see the entry (and the voucher of a win)
  kRepeat,       // this request_id drew before: its entry and voucher again
  kDailyLimit,   // the member has used every draw of the day; nothing recorded
  kOverloaded,   // the write queue is full; nothing recorded
  kUnavailable,  // the store did not answer; the draw may or may not be recorded
                 // (a retry with the same request_id tells)
};

// A draw asked of the claim log. The views stay valid until the completion runs.
struct DrawRequestView {
  const CampaignSpec* spec = nullptr;  // a LOTTERY campaign
  std::string_view member_id;
  std::string_view request_id;
  UnixMicros now_us = 0;
  std::int64_t day = 0;       // the local day of now_us (LotteryCalendar::day_of)
  std::int64_t released = 0;  // released_units(*spec, now_us)
};

// One draw to decide and record, in one atomic step per draw: the
// request_id seen before -> kRepeat; the member's draws of `day` used up ->
// kDailyLimit; else the member's next draw number n, its randomness, and
// decide_draw() (engine/lottery.h) against the store's prize stock and the
// member's prizes; a win records its voucher (minted for the chosen SKU)
// like a claim, and counts against the member's allowance. Every decided draw
// is appended to the campaign's draw log (draw_entries()).
class DrawLogWrite {
 public:
  DrawRequestView draw;

  // The randomness of the member's draw number `n` (the engine holds the seed).
  [[nodiscard]] virtual DrawRandomness randomness(std::int64_t n) = 0;
  // A new voucher of SKU `sku` for this draw, issued at draw.now_us.
  [[nodiscard]] virtual VoucherPtr mint(std::uint32_t sku) = 0;
  // Called exactly once, from any thread, possibly before append_draw()
  // returns. kDrawn, kRepeat: `entry` (and `voucher` for a win);
  // `draws_today` counts the member's draws of draw.day (this one included).
  virtual void on_draw_logged(DrawLogStatus status, const DrawEntry& entry, VoucherPtr voucher,
                              std::int32_t draws_today) = 0;

 protected:
  virtual ~DrawLogWrite() = default;
};

// What the claim log did with an application to an APPLY_THEN_DRAW campaign.
enum class ApplyLogStatus : std::uint8_t {
  kRecorded,     // the member's first application: recorded
  kReplaced,     // another request_id of the member applied before: this one replaces it
  kRepeat,       // the application as it stands was made by this request_id: unchanged
  kNotOpen,      // the window has not opened by the store's clock (a shared store's
                 // clock decides for every replica): nothing recorded
  kClosed,       // the window is over (by the store's clock) or the allocation has
                 // begun: nothing recorded
  kFull,         // a new member, and the campaign holds kApplicationsPerCampaignMax
                 // applications: nothing recorded
  kOverloaded,   // the write queue is full; nothing recorded
  kUnavailable,  // the store did not answer; the application may or may not be
                 // recorded (a retry with the same request_id tells)
};

// An application asked of the claim log. The views stay valid until the
// completion runs.
struct ApplicationRequestView {
  const CampaignSpec* spec = nullptr;  // an APPLY_THEN_DRAW campaign
  std::string_view member_id;
  std::string_view request_id;
  std::span<const std::uint32_t> preferred;  // SKU indexes, most wanted first; empty: any
  UnixMicros now_us = 0;                     // to the millisecond
};

// One application to record, in one atomic step: before the window opens
// -> kNotOpen (a log that serves one process may leave that to the
// engine's check); the window is over or the allocation has begun ->
// kClosed; the member's stored application was made by this request_id ->
// kRepeat; another request_id -> kReplaced (the
// latest application stands, with its time); no application yet -> kFull
// at the bound, else kRecorded.
class ApplicationLogWrite {
 public:
  ApplicationRequestView application;

  // Called exactly once, from any thread, possibly before
  // append_application() returns. kRecorded, kReplaced, kRepeat: `stored`
  // is the member's application as it now stands.
  virtual void on_application_logged(ApplyLogStatus status, const ApplicationEntry& stored) = 0;

 protected:
  virtual ~ApplicationLogWrite() = default;
};

// Where an application stands.
enum class ApplicationState : std::uint8_t {
  kPending,      // the allocation has not reached it yet
  kSelected,     // it won a voucher
  kNotSelected,  // the allocation is done and it won nothing
};

class ApplicationLookup {
 public:
  // Called exactly once, from any thread, possibly before find_application()
  // returns: kFound with the member's application, its state and, when
  // kSelected, the voucher's current record; kNotFound when the member did
  // not apply; kUnavailable.
  virtual void on_application_found(LookupStatus status, const ApplicationEntry& application,
                                    ApplicationState state, VoucherPtr voucher) = 0;

 protected:
  virtual ~ApplicationLookup() = default;
};

// Where the allocation of an APPLY_THEN_DRAW campaign stands in the store.
// One replica at a time has the turn: a lease whose epoch fences an owner
// that lost it, and a cursor, `next`, below which every rank position is
// written (its winner's voucher recorded) and above which none is.
struct AllocationTurn {
  enum class Kind : std::uint8_t {
    kTooEarly,  // before allocation_at, by the store's clock: nothing changed
    kBusy,      // another replica has the turn (`owner`)
    kTaken,     // this replica has it: write rank positions from `next`
    kDone,      // every position is written
  };
  Kind kind = Kind::kTooEarly;
  std::string owner;
  std::int64_t epoch = 0;
  std::int64_t next = 0;                 // rank positions below it are written
  std::int64_t total = 0;                // the applications, frozen when the allocation began
  std::vector<std::int64_t> stock_left;  // per SKU, after the positions below `next`
};

// Where an APPLY_THEN_DRAW campaign's applications and allocation stand in
// the store, for its statistics.
struct ApplicationCounts {
  enum class Allocation : std::uint8_t { kNotStarted, kRunning, kDone };
  std::int64_t applications = 0;  // as they stand; frozen once the allocation began
  std::int64_t selected = 0;      // winners written so far
  Allocation allocation = Allocation::kNotStarted;
  UnixMicros allocated_at_us = 0;  // kDone: when, by the store's clock (0: it does not say)
};

// Every application of an APPLY_THEN_DRAW campaign and what it got, for the
// export: ordered by member id, each member once. An outcome without a SKU
// is NOT_SELECTED once `allocation_done`, PENDING before.
struct ApplicationOutcomes {
  std::vector<ApplicationOutcome> outcomes;
  bool allocation_done = false;
};

// One winner of an allocation batch: their voucher, minted for `sku`.
struct AllocatedVoucher {
  std::uint32_t sku = 0;
  VoucherPtr voucher;
};

// What open_campaign does when the store already holds a different
// definition of the campaign.
enum class StoredDefinition : std::uint8_t {
  kMustMatch,          // refuse the campaign
  kReplaceBeforeOpen,  // replace it, if it has not opened and nothing was issued
};

class ClaimLog {
 public:
  virtual ~ClaimLog() = default;

  // Called once when the engine adds a campaign, before any claim of it.
  // `spec` is validated and normalized; `stock` stays valid for the life of
  // the engine. Returns a message when the store already holds a different
  // definition of this campaign that `stored` does not allow to replace
  // (kConflict), or when the store cannot serve it (kUnavailable,
  // kUnsupported); the engine then refuses the campaign.
  [[nodiscard]] virtual StoreResult<void> open_campaign(const CampaignSpec& spec,
                                                        CampaignStock& stock,
                                                        StoredDefinition stored) = 0;

  virtual void append_claim(ClaimLogWrite& write) = 0;
  // `code` is the canonical display form (format_code()) of a code whose MAC
  // verified for `campaign_id`.
  virtual void find_voucher(std::string_view campaign_id, std::string_view code,
                            VoucherLookup& lookup) = 0;
  // Redeems the voucher `code` (canonical form, MAC verified) in one atomic
  // step: the checks of RedeemStatus in order, then ISSUED -> REDEEMED with
  // the redemption (site, time, request id) written in the same step.
  virtual void redeem(std::string_view campaign_id, std::string_view code,
                      const RedeemRequestView& request, VoucherRedemption& done) = 0;
  // Cancels the voucher `code` (canonical, MAC verified) in one atomic step:
  // ISSUED -> CANCELLED, its unit back to the SKU's stock (the local stock
  // of open_campaign(), or a shared pool), and the member's allowance freed
  // unless `request.keep_allowance`.
  virtual void cancel(std::string_view campaign_id, std::string_view code,
                      const CancelRequestView& request, VoucherCancellation& done) = 0;
  // The vouchers `member_id` holds in a campaign. `known_codes` are the codes
  // this process's allowance index holds for the member: exact for a log
  // that serves one process (memory), a partial view for a shared one, which
  // reads its own record of the member instead. The views must stay valid
  // until the completion runs.
  virtual void find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                                    std::span<const std::string> known_codes,
                                    MemberVouchersLookup& done) = 0;
  // Every REDEEMED voucher of a campaign, for the settlement export. Blocks:
  // call it on an admin thread, never on the claim path.
  [[nodiscard]] virtual StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(
      std::string_view campaign_id) = 0;
  // Per SKU of `spec`, the vouchers still ISSUED whose expires_at is at or
  // before `now_us` (state derived at read time: nothing sweeps them).
  // Blocking: admin threads only. A log may count a voucher only once the
  // minute it expires in has passed (the Redis log counts by minute).
  [[nodiscard]] virtual StoreResult<std::vector<std::int64_t>> expired_counts(
      const CampaignSpec& spec, UnixMicros now_us) = 0;

  // LOTTERY campaigns: decides and records one draw (see DrawLogWrite).
  virtual void append_draw(DrawLogWrite& write) = 0;
  // Every draw of a LOTTERY campaign, in the order they were decided.
  // Blocking: admin threads only.
  [[nodiscard]] virtual StoreResult<std::vector<DrawEntry>> draw_entries(
      const CampaignSpec& spec) = 0;

  // APPLY_THEN_DRAW campaigns: records one application (see
  // ApplicationLogWrite), and finds a member's.
  virtual void append_application(ApplicationLogWrite& write) = 0;
  virtual void find_application(const CampaignSpec& spec, std::string_view member_id,
                                ApplicationLookup& lookup) = 0;

  // The allocation, blocking (the allocating thread only). take_allocation
  // begins it (freezing the applications: later ones are kClosed), renews
  // the caller's turn, or hands it to `replica` when its owner's lease
  // lapsed (with the next epoch).
  [[nodiscard]] virtual StoreResult<AllocationTurn> take_allocation(const CampaignSpec& spec,
                                                                    std::string_view replica) = 0;
  // Every application of the frozen set, in no particular order.
  [[nodiscard]] virtual StoreResult<std::vector<ApplicationEntry>> read_applications(
      const CampaignSpec& spec, const AllocationTurn& turn) = 0;
  // Writes rank positions [from, to) in one atomic step: the winners'
  // vouchers (as claims record them, so they are found, listed and
  // redeemed), their SKUs' stock, and `next` = to; the last step marks the
  // allocation done. Only when `turn` still holds (owner, epoch, and
  // next == from); otherwise nothing is written. Answers the turn as it
  // then stands: next == to with the caller's epoch when written (or
  // written before: a retry of a step whose answer was lost).
  [[nodiscard]] virtual StoreResult<AllocationTurn> write_allocation(
      const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from, std::int64_t to,
      std::span<const AllocatedVoucher> winners) = 0;
  // The campaign's applications and allocation, store-wide. Blocking: admin
  // threads only.
  [[nodiscard]] virtual StoreResult<ApplicationCounts> application_counts(
      const CampaignSpec& spec) = 0;
  // Every application as it stands and what it got, store-wide (see
  // ApplicationOutcomes). The allocation's state is read before the
  // applications and their winners, so an allocation finishing meanwhile
  // never shows an unread winner as NOT_SELECTED. Blocking: admin threads
  // only.
  [[nodiscard]] virtual StoreResult<ApplicationOutcomes> application_outcomes(
      const CampaignSpec& spec) = 0;
};

}  // namespace voucherd
