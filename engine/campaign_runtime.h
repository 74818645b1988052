// campaign_runtime.h — one campaign as an engine serves it: its validated
// spec, the lock-free inventory the claim log fills (the CampaignStock it
// sees), the members index, claims waiting for stock, the lottery seed, and
// the statistics of this process.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/claim_log.h"
#include "engine/holder_set.h"
#include "engine/inventory.h"
#include "engine/limits.h"
#include "engine/lottery.h"
#include "engine/member_index.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/sharded_map.h"
#include "engine/voucher_code.h"

namespace voucherd {

struct CampaignStatsView;

// Per-campaign state. Immutable spec + concurrent counters and index.
// Thread-safety: spec and keys are immutable after construction; the rest is
// atomics and the sharded allowance index.
class CampaignRuntime final : public CampaignStock {
 public:
  // `proposed_seed`: fresh random bytes (campaigns with a seed, has_seed();
  // see set_seed).
  CampaignRuntime(CampaignSpec spec, const CodeSigner& signer, const LotterySeed& proposed_seed);

  // CampaignStock: how the claim log fills this campaign's local counters.
  void add_units(std::uint32_t sku, std::int64_t units) override;
  std::int64_t take_units(std::uint32_t sku, std::int64_t max) override;
  [[nodiscard]] std::int64_t available(std::uint32_t sku) const override;
  void set_final(std::uint32_t sku, bool final) override;
  // A press found no unit of `sku` (kNoSku: of any SKU). Relaxed:
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

  // LOTTERY and APPLY_THEN_DRAW campaigns: the seed, once the claim log has
  // settled it.
  [[nodiscard]] std::optional<LotterySeed> seed() const;
  // Lower-case hex SHA-256 of the seed; empty until it is settled.
  [[nodiscard]] std::string seed_commitment() const;
  // APPLY_THEN_DRAW campaigns: this replica has seen the allocation done
  // (it wrote the last step, or its allocating thread found it done).
  [[nodiscard]] bool allocation_done() const {
    return allocation_done_.load(std::memory_order_acquire);
  }
  [[nodiscard]] const LotteryCalendar* calendar() const {
    return calendar_ ? &*calendar_ : nullptr;
  }

  [[nodiscard]] const CampaignSpec& spec() const { return spec_; }
  [[nodiscard]] std::uint16_t tag() const { return tag_; }
  // Index of an SKU id, or kNoSku.
  [[nodiscard]] std::uint32_t sku_index(std::string_view sku_id) const;

  // This process's statistics of a SKU: vouchers issued (a cancel counts -1)
  // and redeemed (const: statistics, not the campaign's state). Relaxed:
  // read for stats only, they order nothing.
  void count_issued(std::uint32_t sku, std::int64_t delta) const {
    sku_counters_[sku].issued.fetch_add(delta, std::memory_order_relaxed);
  }
  void count_redeemed(std::uint32_t sku) const {
    sku_counters_[sku].redeemed.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  // The engine owns the campaign's claim path (waiting lists, the members
  // index); nothing else reaches past the public interface above.
  friend class ClaimEngine;

  enum class StockWait : std::uint8_t { kWaiting, kLookAgain, kFull };
  // Parks `op` until units or finality arrive, unless they arrived already
  // (kLookAgain) or too many claims wait (kFull).
  StockWait wait_for_stock(ClaimOp& op, UnixMicros now_us);
  // Hands every waiting claim back to the engine to try again.
  void wake_stock_waiters();
  // The member no longer holds `code` in this process's index.
  void forget_held(std::string_view member_id, std::string_view code);

  struct alignas(64) SkuCounters {
    std::atomic<std::int64_t> issued{0};
    std::atomic<std::int64_t> redeemed{0};  // by this process (stats of one replica)
  };

  const CampaignSpec spec_;
  const std::uint16_t tag_;
  absl::flat_hash_map<std::string, std::uint32_t> sku_by_id_;
  // Per SKU, its MAC key under each secret: [sku * secret_count_ + k], the
  // minting secret's first.
  std::vector<SkuMacKey> mac_keys_;
  // Per SKU, what its vouchers share.
  std::vector<std::unique_ptr<const VoucherSku>> voucher_skus_;
  const std::size_t secret_count_;
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
  Sharded<MemberShard> members_index_;
  // LOTTERY campaigns.
  std::optional<LotteryCalendar> calendar_;
  // LOTTERY and APPLY_THEN_DRAW campaigns.
  const LotterySeed proposed_seed_;
  mutable std::mutex seed_mu_;  // guards seed_ while it is set
  LotterySeed seed_{};
  SkuMacKey seed_key_{};               // hmac_key(seed_), for draws and ranks
  std::atomic<bool> seed_set_{false};  // release: seed_ and seed_key_ are written
  // APPLY_THEN_DRAW campaigns: this replica saw the allocation done (its
  // seed may be revealed).
  std::atomic<bool> allocation_done_{false};
  // When this replica wrote the allocation's last step (0: it did not).
  std::atomic<UnixMicros> allocated_here_at_us_{0};
  std::atomic<bool> allocating_{false};  // an allocate() call is running on this replica
  // Next campaign with the same tag (insert-only list, see ClaimEngine).
  std::atomic<const CampaignRuntime*> next_same_tag_{nullptr};
};

}  // namespace voucherd
