// memory_claim_log.h — the claim log kept in process memory.
//
// Used by tests, benchmarks and --store=memory (a single replica whose
// vouchers die with it: fine for rehearsals, not for a real campaign).
// Completes every call inline.
//
// With one process there is no other replica to race: the engine's own
// allowance index already decides every member exactly, so this log keeps
// vouchers by code only and never answers kDuplicate. (The Redis log, shared
// by replicas, decides allowances itself.)
//
// Thread-safety: safe from any thread; vouchers are sharded by code, each
// shard under its own mutex.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/check.h"
#include "engine/claim_log.h"
#include "engine/limits.h"
#include "engine/sharded_map.h"
#include "engine/voucher_code.h"

namespace voucherd {

class MemoryClaimLog final : public ClaimLog {
 public:
  MemoryClaimLog() = default;
  // `applications_max`: the applications one APPLY_THEN_DRAW campaign takes
  // (limits::kApplicationsPerCampaignMax unless a test asks for fewer).
  explicit MemoryClaimLog(std::int64_t applications_max) : applications_max_(applications_max) {}

  // Hands over the whole stock at once: every SKU is final from the start.
  StoreResult<void> open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                  StoredDefinition stored) override;
  void append_claim(ClaimLogWrite& write) override;
  void find_voucher(std::string_view campaign_id, std::string_view code,
                    VoucherLookup& lookup) override;
  void redeem(std::string_view campaign_id, std::string_view code, const RedeemRequestView& request,
              VoucherRedemption& done) override;
  // The unit goes back to the campaign's local stock (there is no other).
  void cancel(std::string_view campaign_id, std::string_view code, const CancelRequestView& request,
              VoucherCancellation& done) override;
  // The engine's allowance index is exact with one process: `known_codes`
  // are all the member's codes; this resolves them to current records.
  void find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                            std::span<const std::string> known_codes,
                            MemberVouchersLookup& done) override;
  StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(std::string_view campaign_id) override;
  StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec& spec,
                                                        UnixMicros now_us) override;

  // Decides draws under one lock per campaign: the prize stock, every
  // member's draws and the draw log are all here.
  void append_draw(DrawLogWrite& write) override;
  StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec& spec) override;

  // Decides applications, and writes their allocation, under one lock per
  // campaign. One process has no takeover: the replica that begins the
  // allocation keeps its turn (another is kBusy).
  void append_application(ApplicationLogWrite& write) override;
  void find_application(const CampaignSpec& spec, std::string_view member_id,
                        ApplicationLookup& lookup) override;
  StoreResult<AllocationTurn> take_allocation(const CampaignSpec& spec,
                                              std::string_view replica) override;
  StoreResult<std::vector<ApplicationEntry>> read_applications(const CampaignSpec& spec,
                                                               const AllocationTurn& turn) override;
  StoreResult<AllocationTurn> write_allocation(const CampaignSpec& spec, const AllocationTurn& turn,
                                               std::int64_t from, std::int64_t to,
                                               std::span<const AllocatedVoucher> winners) override;
  StoreResult<ApplicationCounts> application_counts(const CampaignSpec& spec) override;
  StoreResult<ApplicationOutcomes> application_outcomes(const CampaignSpec& spec) override;

  // Vouchers recorded so far (all campaigns).
  [[nodiscard]] std::int64_t voucher_count() const {
    return voucher_count_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kShards = 64;
  // A code's slot is its current record alone, by its number in the
  // record pool (4 bytes; the slot holds its reference): the table hashes
  // the record's packed code by its key bits, and a look-up by text packs
  // the text and compares the record's packed code with it, so no key is
  // kept beside the record.
  struct CodeSlot {
    // Replaced by a new record of the same code when the voucher's state
    // changes (records are immutable once shared); the code, which the
    // slot's hash depends on, never changes.
    mutable CompactVoucherPtr current;
  };
  static_assert(sizeof(CodeSlot) == 4, "a code costs its table 4 bytes a slot");
  struct CodeProbe {
    CodeKeyBits key;
    PackedCode code;
  };
  struct CodeSlotHash {
    using is_transparent = void;
    std::size_t operator()(const CodeSlot& s) const {
      return absl::HashOf(s.current.get()->packed_code().key_bits());
    }
    std::size_t operator()(const CodeProbe& p) const { return absl::HashOf(p.key); }
  };
  struct CodeSlotEq {
    using is_transparent = void;
    bool operator()(const CodeSlot& a, const CodeSlot& b) const {
      return a.current.get()->packed_code() == b.current.get()->packed_code();
    }
    bool operator()(const CodeSlot& s, const CodeProbe& p) const {
      return s.current.get()->packed_code() == p.code;
    }
    bool operator()(const CodeProbe& p, const CodeSlot& s) const { return (*this)(s, p); }
  };
  // Runs f(VoucherPtr& current) on the record of `code` under its shard's
  // lock, if there is one; returns whether there was. f may replace the
  // record by one of the same code.
  template <class F>
  bool with_record(std::string_view code, F&& f) {
    const std::optional<PackedCode> packed = PackedCode::pack(code);
    if (!packed) return false;  // not in display form: no record has it
    const CodeProbe probe{packed->key_bits(), *packed};
    CodeShard& shard = codes_[shard_index(probe.key)];
    std::lock_guard lock(shard.mu);
    auto it = shard.by_code.find(probe);
    if (it == shard.by_code.end()) return false;
    VoucherPtr current = it->current.share();
    const VoucherRecord* was = current.get();
    f(current);
    if (current.get() != was) {
      VOUCHERD_CHECK(current != nullptr && current->packed_code() == *packed,
                     "a record is replaced by one of the same code");
      it->current = CompactVoucherPtr(std::move(current));
    }
    return true;
  }
  static std::size_t shard_index(const CodeKeyBits& key);
  struct alignas(64) CodeShard {
    SpinLock mu;  // held for one hash-map operation
    absl::flat_hash_set<CodeSlot, CodeSlotHash, CodeSlotEq> by_code;
    // Codes the opened campaigns may still issue into this shard, as far as
    // its room is kept for them (open_campaign).
    std::size_t unissued = 0;
  };

  // A LOTTERY campaign's draws.
  struct LotteryBook {
    struct Member {
      std::int64_t draws = 0;  // draw numbers used
      std::int64_t day = -1;   // the latest local day drawn on
      std::int32_t today = 0;  // draws of `day`
      std::int32_t prizes = 0;
      absl::flat_hash_map<std::string, std::size_t> by_request;  // -> entries index
    };
    std::mutex mu;
    std::vector<std::int64_t> remaining;  // per SKU
    std::int64_t left = 0;                // sum of remaining
    absl::flat_hash_map<std::string, Member> members;
    std::vector<DrawEntry> entries;
    absl::flat_hash_map<std::size_t, VoucherPtr> wins;  // entries index -> voucher
  };
  // An APPLY_THEN_DRAW campaign's applications, by member.
  struct ApplicationBook {
    struct Stored {
      std::vector<std::uint32_t> preferred;
      UnixMicros applied_at_us = 0;
      std::string request_id;  // of the application as it stands
    };
    std::mutex mu;
    absl::flat_hash_map<std::string, Stored> by_member;
    // The allocation: begun (applications frozen), then done.
    bool began = false;
    bool done = false;
    std::string owner;
    std::int64_t next = 0;
    std::int64_t total = 0;
    std::vector<std::int64_t> stock_left;              // per SKU
    absl::flat_hash_map<std::string, VoucherPtr> won;  // member -> voucher as written
    [[nodiscard]] AllocationTurn turn(std::string_view replica) const;
  };
  void record(const VoucherPtr& voucher);
  LotteryBook* book_of(std::string_view campaign_id);
  ApplicationBook* applications_of(std::string_view campaign_id);

  std::array<CodeShard, kShards> codes_;
  std::mutex stocks_mu_;  // guards stocks_ (written once per campaign)
  absl::flat_hash_map<std::string, CampaignStock*> stocks_;
  absl::flat_hash_map<std::string, std::unique_ptr<LotteryBook>> lotteries_;  // by stocks_mu_
  absl::flat_hash_map<std::string, std::unique_ptr<ApplicationBook>> applications_;  // the same
  const std::int64_t applications_max_ = limits::kApplicationsPerCampaignMax;
  std::atomic<std::int64_t> voucher_count_{0};
};

}  // namespace voucherd
