// model.h — the engine's own vocabulary: campaigns, sites, SKUs, vouchers.
//
// Plain value types, independent of the wire format (server/ converts from and
// to voucher.v1 protobuf). Times are microseconds since the Unix epoch (UTC).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/check.h"
#include "engine/limits.h"
#include "engine/slot_pool.h"
#include "engine/voucher_code.h"

namespace voucherd {

using UnixMicros = std::int64_t;
inline constexpr UnixMicros kMicrosPerSecond = 1'000'000;
inline constexpr UnixMicros kMicrosPerDay = 86'400 * kMicrosPerSecond;

// "No SKU": a claim that names none, a press that found no unit of any SKU,
// a draw that won nothing. SKU indexes are below kSkusPerCampaignMax.
inline constexpr std::uint32_t kNoSku = UINT32_MAX;

enum class CampaignMode : std::uint8_t {
  kUnspecified = 0,
  kFirstCome = 1,
  kLottery = 2,
  kApplyThenDraw = 3,  // members apply in the window; a draw allocates the stock (engine/apply.h)
};
// Whether a campaign of this mode has a seed: one random secret, committed
// to at creation and revealed after the end, from which its draws (LOTTERY)
// or its applicants' ranks (APPLY_THEN_DRAW) are derived.
[[nodiscard]] constexpr bool has_seed(CampaignMode mode) {
  return mode == CampaignMode::kLottery || mode == CampaignMode::kApplyThenDraw;
}
// The mode's name on the wire, for messages: "CAMPAIGN_MODE_LOTTERY".
[[nodiscard]] const char* mode_name(CampaignMode mode);
// The same without its prefix ("LOTTERY"), for people.
[[nodiscard]] std::string_view mode_label(CampaignMode mode);
enum class SkuKind : std::uint8_t {
  kUnspecified = 0,
  kHotel = 1,
  kHomestay = 2,
  kHotSpring = 3,
  kScenic = 4,
};
// Stored states. EXPIRED is never stored: it is derived at read time from
// expires_at (no sweeper needed).
enum class VoucherState : std::uint8_t {
  kUnspecified = 0,
  kIssued = 1,
  kRedeemed = 2,
  kExpired = 3,
  kCancelled = 4,
};

struct SiteSpec {
  std::string id;
  std::string name;
  std::string city;
  SkuKind kind = SkuKind::kUnspecified;
  bool operator==(const SiteSpec&) const = default;
};

struct SkuSpec {
  std::string id;
  std::string site_id;
  SkuKind kind = SkuKind::kUnspecified;
  std::string name;
  std::int64_t face_value_cents = 0;
  std::int64_t stock = 0;
  bool operator==(const SkuSpec&) const = default;
};

// LOTTERY campaigns: how a winning draw picks its SKU.
enum class SkuChoice : std::uint8_t {
  kProportionalToRemaining = 0,  // weight = the SKU's remaining stock
  kWeighted = 1,                 // weight = LotterySpec::sku_weights[i] while the SKU has stock
};
// How the prize stock is released over the campaign window.
enum class ReleaseSchedule : std::uint8_t {
  kLinear = 0,       // pro rata of the window elapsed, second by second
  kEqualPerDay = 1,  // an equal share at the start of each 24 h period from starts_at
};

// The rules of a LOTTERY campaign (engine/lottery.h applies them).
struct LotterySpec {
  double win_probability = 0;          // per draw, in (0, 1]
  std::int32_t draws_per_day = 0;      // per member per local day; 0: default, normalized
  std::string time_zone;               // IANA name of the zone "day" is in; "": Asia/Shanghai
  std::int32_t prizes_per_member = 0;  // per campaign; 0: default (1), normalized
  SkuChoice sku_choice = SkuChoice::kProportionalToRemaining;
  std::vector<std::int64_t> sku_weights;  // per SKU index (kWeighted only)
  ReleaseSchedule release = ReleaseSchedule::kLinear;
  bool operator==(const LotterySpec&) const = default;
};

struct CampaignSpec {
  std::string id;
  std::string name;
  CampaignMode mode = CampaignMode::kUnspecified;
  UnixMicros starts_at_us = 0;
  UnixMicros ends_at_us = 0;
  std::int32_t per_member_limit = 0;  // 0: default (1); normalized by validation
  std::vector<SiteSpec> sites;
  std::vector<SkuSpec> skus;
  std::int32_t voucher_valid_days = 0;  // 0: default; normalized by validation
  // When positive, vouchers are valid this many seconds instead (short
  // promotions, rehearsals); 0: voucher_valid_days applies.
  std::int64_t voucher_valid_seconds = 0;
  // Whether a cancelled voucher still counts against its member's allowance
  // (false: cancelling frees it, and the member may claim again).
  bool cancel_keeps_allowance = false;
  LotterySpec lottery;  // LOTTERY campaigns only
  // APPLY_THEN_DRAW campaigns only (0 for the others): when the stock is
  // allocated among the applicants, at or after ends_at_us.
  UnixMicros allocation_at_us = 0;
  bool operator==(const CampaignSpec&) const = default;

  [[nodiscard]] std::int64_t stock_total() const {
    std::int64_t total = 0;
    for (const SkuSpec& s : skus) total += s.stock;
    return total;
  }
};

// Every field of one voucher, as a plain value: what a VoucherRecord of any
// fields (a store's record read back, a test's) is built from.
struct VoucherFields {
  std::string code;  // canonical display form, e.g. "ABCDE-FGHJK-..."
  std::string campaign_id;
  std::string sku_id;
  std::string site_id;
  std::string member_id;
  std::string request_id;
  SkuKind sku_kind = SkuKind::kUnspecified;
  std::int64_t face_value_cents = 0;
  UnixMicros issued_at_us = 0;
  UnixMicros expires_at_us = 0;
  VoucherState state = VoucherState::kIssued;  // stored state
  // Set when the voucher was redeemed (state kRedeemed): where, when, and
  // the request that did it.
  std::string redeemed_site_id;
  UnixMicros redeemed_at_us = 0;
  std::string redeem_request_id;
};

// What every voucher of one SKU shares, kept once per SKU (CampaignRuntime
// holds one for each of its SKUs) and pointed to by each voucher.
struct VoucherSku {
  std::string campaign_id;
  std::string sku_id;
  std::string site_id;
  SkuKind sku_kind = SkuKind::kUnspecified;
  std::int64_t face_value_cents = 0;
  // How long after its issue a voucher is valid: the campaign's validity,
  // or, for a record read back (a VoucherSku of its own), its expiry less
  // its issue time.
  UnixMicros valid_for_us = 0;
};

// Where, when and by which request a voucher was redeemed: kept apart, since
// most vouchers never carry one.
struct RedemptionRecord {
  std::string site_id;
  UnixMicros at_us = 0;
  std::string request_id;
};

// The fields few vouchers carry, in 8 bytes where they are kept and a heap
// block only when there is either: the claim's request id (most claims,
// with an allowance of one, send none) and the redemption. The block holds
// the id's size (4 bytes; its top bit set when a redemption follows), its
// bytes, then the address of the voucher's own RedemptionRecord.
class VoucherExtras {
 public:
  VoucherExtras() = default;
  // Copies `request_id` and, when not null, `*redemption`.
  VoucherExtras(std::string_view request_id, const RedemptionRecord* redemption);
  VoucherExtras(const VoucherExtras& other)
      : VoucherExtras(other.request_id(), other.redemption()) {}
  VoucherExtras& operator=(const VoucherExtras& other) {
    VoucherExtras(other).swap(*this);
    return *this;
  }
  VoucherExtras(VoucherExtras&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  VoucherExtras& operator=(VoucherExtras&& other) noexcept {
    VoucherExtras(std::move(other)).swap(*this);
    return *this;
  }
  ~VoucherExtras();
  void swap(VoucherExtras& other) noexcept { std::swap(block_, other.block_); }

  [[nodiscard]] std::string_view request_id() const {
    if (block_ == nullptr) return {};
    return {block_ + sizeof(std::uint32_t), header() & ~kRedeemed};
  }
  // The redemption; null unless the voucher was redeemed.
  [[nodiscard]] const RedemptionRecord* redemption() const {
    if (block_ == nullptr || (header() & kRedeemed) == 0) return nullptr;
    const RedemptionRecord* r = nullptr;
    std::memcpy(&r, block_ + sizeof(std::uint32_t) + (header() & ~kRedeemed), sizeof r);
    return r;
  }

 private:
  static constexpr std::uint32_t kRedeemed = 0x8000'0000;
  [[nodiscard]] std::uint32_t header() const {
    std::uint32_t h = 0;
    std::memcpy(&h, block_, sizeof h);
    return h;
  }

  char* block_ = nullptr;  // null: neither; else the block above (new char[])
};
static_assert(limits::kIdBytesMax < 0x8000'0000, "a request id's size leaves the top bit free");

// A string that costs 16 bytes where it is kept, with no heap block up to
// 15 bytes: for ids, which are short (a member id such as "member-123456").
// A longer text is kept in a heap block of its own: its size (4 bytes),
// then the text.
class ShortString {
 public:
  static constexpr std::size_t kInlineBytes = 15;

  ShortString() = default;
  explicit ShortString(std::string_view text);
  ShortString(const ShortString& other) : ShortString(other.view()) {}
  ShortString& operator=(const ShortString& other) {
    if (this != &other) *this = ShortString(other.view());
    return *this;
  }
  ShortString(ShortString&& other) noexcept;
  ShortString& operator=(ShortString&& other) noexcept;
  ~ShortString();

  [[nodiscard]] std::string_view view() const;

 private:
  static constexpr std::uint8_t kSpilled = 0xFF;  // bytes_ holds a pointer to the block
  void release();
  char bytes_[kInlineBytes] = {};
  std::uint8_t size_ = 0;  // the inline text's size, or kSpilled
};
static_assert(sizeof(ShortString) == 16, "an id kept inline costs 16 bytes");

class VoucherRecord;
class CompactVoucherPtr;

// A counted reference to an immutable VoucherRecord. The count is kept in
// the record, so a reference costs 8 bytes and a record no control block
// (a std::shared_ptr costs 16 and 16). Copies may be made and dropped on any
// thread; the last one dropped frees the record.
class VoucherPtr {
 public:
  VoucherPtr() = default;
  VoucherPtr(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): as a pointer
  VoucherPtr(const VoucherPtr& other) : record_(other.record_) { acquire(); }
  VoucherPtr(VoucherPtr&& other) noexcept : record_(std::exchange(other.record_, nullptr)) {}
  VoucherPtr& operator=(const VoucherPtr& other) {
    VoucherPtr(other).swap(*this);
    return *this;
  }
  VoucherPtr& operator=(VoucherPtr&& other) noexcept {
    VoucherPtr(std::move(other)).swap(*this);
    return *this;
  }
  ~VoucherPtr() { release(); }

  // The first reference to a record just built with new, not yet shared.
  static VoucherPtr adopt(VoucherRecord* fresh);
  // Another reference to `held`, a record a VoucherPtr or CompactVoucherPtr
  // keeps alive while this is called.
  static VoucherPtr share(const VoucherRecord& held);

  [[nodiscard]] const VoucherRecord* get() const { return record_; }
  const VoucherRecord& operator*() const { return *record_; }
  const VoucherRecord* operator->() const { return record_; }
  explicit operator bool() const { return record_ != nullptr; }
  void reset() { VoucherPtr().swap(*this); }
  void swap(VoucherPtr& other) noexcept { std::swap(record_, other.record_); }

  friend bool operator==(const VoucherPtr& a, const VoucherPtr& b) {
    return a.record_ == b.record_;
  }
  friend bool operator==(const VoucherPtr& a, std::nullptr_t) { return a.record_ == nullptr; }

 private:
  friend class CompactVoucherPtr;
  inline void acquire() const;
  inline void release();

  VoucherRecord* record_ = nullptr;
};

// One issued voucher, immutable once built. Shared between the allowance
// index, the claim log and responses, so it is handed around by VoucherPtr.
// Read through its accessors; what the vouchers of one SKU share is kept
// once (VoucherSku), the code is kept packed (PackedCode), and a redemption only when
// there is one (docs/member-memory.md).
class VoucherRecord {
 public:
  // A new ISSUED voucher of `sku`, which expires sku->valid_for_us after
  // its issue. `sku` is a campaign's, kept by its CampaignRuntime for the
  // life of the engine; a store's records may outlive the engine, so
  // nothing reads a record's SKU once the engine is gone (the destructor
  // reads only a SKU the record owns).
  // REQUIRES: sku != nullptr.
  [[nodiscard]] static VoucherPtr make(const VoucherSku* sku, const PackedCode& code,
                                       std::string_view member_id, std::string_view request_id,
                                       UnixMicros issued_at_us);
  // A record of any fields (a store's record read back, a test's): its
  // VoucherSku is its own. A redemption is kept when the state is REDEEMED.
  // REQUIRES: fields.code is in display form (PackedCode::pack takes it).
  [[nodiscard]] static VoucherPtr make(const VoucherFields& fields);

  VoucherRecord(const VoucherRecord&) = delete;
  VoucherRecord& operator=(const VoucherRecord&) = delete;
  ~VoucherRecord();

  // Records live in a pool of 64-byte slots (VoucherRecordPool): no malloc
  // chunk around each (it would take 80 bytes), and a number for each (4
  // bytes, where a pointer takes 8).
  static void* operator new(std::size_t size);
  static void operator delete(void* at);

  // This voucher in another state, sharing what it can.
  [[nodiscard]] VoucherPtr with_state(VoucherState state) const;
  // This voucher REDEEMED by `request_id` at `site_id`, at `at_us`.
  [[nodiscard]] VoucherPtr redeemed(std::string_view site_id, UnixMicros at_us,
                                    std::string_view request_id) const;

  // The code's text, formatted from the packed code (about 20 ns).
  [[nodiscard]] CodeString code() const { return CodeString(code_.text()); }
  [[nodiscard]] const PackedCode& packed_code() const { return code_; }
  [[nodiscard]] const std::string& campaign_id() const { return sku_->campaign_id; }
  [[nodiscard]] const std::string& sku_id() const { return sku_->sku_id; }
  [[nodiscard]] const std::string& site_id() const { return sku_->site_id; }
  [[nodiscard]] std::string_view member_id() const { return member_id_.view(); }
  [[nodiscard]] std::string_view request_id() const { return extras_.request_id(); }
  [[nodiscard]] SkuKind sku_kind() const { return sku_->sku_kind; }
  [[nodiscard]] std::int64_t face_value_cents() const { return sku_->face_value_cents; }
  [[nodiscard]] UnixMicros issued_at_us() const { return issued_at_us_; }
  [[nodiscard]] UnixMicros expires_at_us() const {
    // Modulo 2^64, as the VoucherSku of a record read back was worked out:
    // any pair of times read back round-trips, without overflow.
    return static_cast<UnixMicros>(static_cast<std::uint64_t>(issued_at_us_) +
                                   static_cast<std::uint64_t>(sku_->valid_for_us));
  }
  // The stored state.
  [[nodiscard]] VoucherState state() const { return static_cast<VoucherState>(bits_ & kStateMask); }
  // The redemption's fields: empty and 0 unless the voucher was redeemed.
  [[nodiscard]] const std::string& redeemed_site_id() const;
  [[nodiscard]] UnixMicros redeemed_at_us() const {
    const RedemptionRecord* r = extras_.redemption();
    return r != nullptr ? r->at_us : 0;
  }
  [[nodiscard]] const std::string& redeem_request_id() const;

 private:
  friend class VoucherPtr;
  static constexpr std::uint8_t kStateMask = 0x7F;
  static constexpr std::uint8_t kOwnsSku = 0x80;  // sku_ is this record's own
  static_assert(static_cast<std::uint8_t>(VoucherState::kCancelled) <= kStateMask);

  VoucherRecord(const VoucherSku* sku, bool owns_sku, const PackedCode& code,
                std::string_view member_id, std::string_view request_id, UnixMicros issued_at_us);
  // A copy of `other` in `state`, with a count of its own.
  VoucherRecord(const VoucherRecord& other, VoucherState state);
  void set_state(VoucherState state) {
    bits_ = static_cast<std::uint8_t>((bits_ & kOwnsSku) | static_cast<std::uint8_t>(state));
  }

  const VoucherSku* sku_;
  VoucherExtras extras_;  // the claim's request id and the redemption, when there is either
  ShortString member_id_;
  UnixMicros issued_at_us_ = 0;  // the expiry follows from it (VoucherSku::valid_for_us)
  mutable std::atomic<std::uint32_t> refs_{0};  // VoucherPtrs to this record
  std::uint8_t bits_ = static_cast<std::uint8_t>(VoucherState::kIssued);  // state | kOwnsSku
  PackedCode code_;  // 19 bytes: fills the record up to its size without padding
};
static_assert(sizeof(VoucherRecord) == 64,
              "a voucher's record stays small (docs/member-memory.md)");

// Where every VoucherRecord lives: one 64-byte slot each, numbered.
using VoucherRecordPool =
    SlotPool<VoucherRecord, sizeof(VoucherRecord), limits::kVoucherRecordsMax>;
static_assert(alignof(VoucherRecord) <= 8, "a pool slot is 8-byte aligned");

inline void* VoucherRecord::operator new(std::size_t size) {
  VOUCHERD_DCHECK(size == sizeof(VoucherRecord), "a record is made whole, never as a base");
  return VoucherRecordPool::allocate();
}
inline void VoucherRecord::operator delete(void* at) {
  if (at != nullptr) VoucherRecordPool::free(at);
}

// A counted reference to a VoucherRecord, as a VoucherPtr is, kept in 4
// bytes: the record's number in VoucherRecordPool. For tables that keep one
// per voucher or member (the memory log's codes, MemberEntry::first);
// reading the record costs a look-up in the pool's directory (a shift and a
// mask). Moved, never copied: share() gives a VoucherPtr.
class CompactVoucherPtr {
 public:
  CompactVoucherPtr() = default;
  // Takes over `v`'s reference.
  explicit CompactVoucherPtr(VoucherPtr v)
      : number_(v ? VoucherRecordPool::number_of(std::exchange(v.record_, nullptr))
                  : VoucherRecordPool::kNone) {}
  CompactVoucherPtr(CompactVoucherPtr&& other) noexcept
      : number_(std::exchange(other.number_, VoucherRecordPool::kNone)) {}
  CompactVoucherPtr& operator=(CompactVoucherPtr&& other) noexcept {
    CompactVoucherPtr(std::move(other)).swap(*this);
    return *this;
  }
  CompactVoucherPtr(const CompactVoucherPtr&) = delete;
  CompactVoucherPtr& operator=(const CompactVoucherPtr&) = delete;
  ~CompactVoucherPtr() {
    if (number_ == VoucherRecordPool::kNone) return;
    VoucherPtr owned;  // drops the reference as it goes
    owned.record_ = static_cast<VoucherRecord*>(VoucherRecordPool::slot(number_));
  }

  [[nodiscard]] const VoucherRecord* get() const {
    return number_ == VoucherRecordPool::kNone
               ? nullptr
               : static_cast<const VoucherRecord*>(VoucherRecordPool::slot(number_));
  }
  const VoucherRecord& operator*() const { return *get(); }
  const VoucherRecord* operator->() const { return get(); }
  explicit operator bool() const { return number_ != VoucherRecordPool::kNone; }
  // Another reference to the record, as a VoucherPtr.
  [[nodiscard]] VoucherPtr share() const {
    const VoucherRecord* held = get();
    return held == nullptr ? VoucherPtr() : VoucherPtr::share(*held);
  }
  void swap(CompactVoucherPtr& other) noexcept { std::swap(number_, other.number_); }

 private:
  std::uint32_t number_ = VoucherRecordPool::kNone;
};
static_assert(sizeof(CompactVoucherPtr) == 4, "a reference by number costs 4 bytes");

inline VoucherPtr VoucherPtr::adopt(VoucherRecord* fresh) {
  VoucherPtr p;
  p.record_ = fresh;
  p.acquire();
  return p;
}
inline VoucherPtr VoucherPtr::share(const VoucherRecord& held) {
  [[maybe_unused]] const std::uint32_t before = held.refs_.fetch_add(1, std::memory_order_relaxed);
  VOUCHERD_DCHECK(before > 0, "a record someone holds, not one already freed");
  VoucherPtr p;
  p.record_ = const_cast<VoucherRecord*>(&held);  // VoucherPtr reads it only as const
  return p;
}
inline void VoucherPtr::acquire() const {
  if (record_ != nullptr) record_->refs_.fetch_add(1, std::memory_order_relaxed);
}
inline void VoucherPtr::release() {
  // The last release must see every write made through the other
  // references, and the record's other fields were written before it was
  // shared: acq_rel orders both.
  if (record_ != nullptr && record_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete record_;
  }
  record_ = nullptr;
}

// The state a reader sees at `now`: ISSUED turns EXPIRED once expires_at passed.
inline VoucherState visible_state(const VoucherRecord& v, UnixMicros now_us) {
  if (v.state() == VoucherState::kIssued && now_us >= v.expires_at_us()) {
    return VoucherState::kExpired;
  }
  return v.state();
}

}  // namespace voucherd
