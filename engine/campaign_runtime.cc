// campaign_runtime.cc — one campaign as the engine serves it: stock, waiting claims,
// the members index, the seed.
#include <algorithm>
#include <memory>

#include "engine/check.h"
#include "engine/claim_engine.h"

namespace voucherd {

CampaignRuntime::CampaignRuntime(CampaignSpec spec, const CodeSigner& signer,
                                 const LotterySeed& proposed_seed)
    : spec_(std::move(spec)),
      tag_(campaign_tag(spec_.id)),
      secret_count_(signer.secret_count()),
      inventory_(std::vector<std::int64_t>(spec_.skus.size(), 0)),  // filled by the claim log
      sku_counters_(std::make_unique<SkuCounters[]>(spec_.skus.size())),
      proposed_seed_(proposed_seed) {
  mac_keys_.reserve(spec_.skus.size() * signer.secret_count());
  voucher_skus_.reserve(spec_.skus.size());
  const UnixMicros valid_for_us =
      spec_.voucher_valid_seconds > 0
          ? static_cast<UnixMicros>(spec_.voucher_valid_seconds) * kMicrosPerSecond
          : static_cast<UnixMicros>(spec_.voucher_valid_days) * kMicrosPerDay;
  for (std::size_t i = 0; i < spec_.skus.size(); ++i) {
    const SkuSpec& sku = spec_.skus[i];
    sku_by_id_.emplace(sku.id, static_cast<std::uint32_t>(i));
    voucher_skus_.push_back(std::make_unique<const VoucherSku>(
        VoucherSku{spec_.id, sku.id, sku.site_id, sku.kind, sku.face_value_cents, valid_for_us}));
    for (std::size_t k = 0; k < signer.secret_count(); ++k) {
      mac_keys_.push_back(signer.derive_sku_key(spec_.id, sku.site_id, sku.id, k));
    }
  }
  if (spec_.mode == CampaignMode::kLottery) {
    // Validation loaded the zone already; it cannot fail here.
    if (auto calendar = LotteryCalendar::load(spec_.lottery.time_zone)) calendar_ = *calendar;
  }
}

void CampaignRuntime::set_seed(const LotterySeed& seed) {
  std::lock_guard lock(seed_mu_);
  if (seed_set_.load(std::memory_order_relaxed)) return;
  seed_ = seed;
  seed_key_ = hmac_key(seed);
  seed_set_.store(true, std::memory_order_release);
}

std::optional<LotterySeed> CampaignRuntime::seed() const {
  if (!seed_set_.load(std::memory_order_acquire)) return std::nullopt;
  return seed_;  // written once, before the release store
}

std::string CampaignRuntime::seed_commitment() const {
  auto s = seed();
  return s ? voucherd::seed_commitment(*s) : std::string();
}

void CampaignRuntime::add_units(std::uint32_t sku, std::int64_t units) {
  if (units <= 0) return;
  inventory_.give_back(sku, units);
  wake_stock_waiters();
}

std::int64_t CampaignRuntime::take_units(std::uint32_t sku, std::int64_t max) {
  return inventory_.take_up_to(sku, max);
}

std::int64_t CampaignRuntime::available(std::uint32_t sku) const {
  return inventory_.available(sku);
}

void CampaignRuntime::set_final(std::uint32_t sku, bool final) {
  const bool was_final = inventory_.is_final(sku);
  inventory_.set_final(sku, final);
  // Claims waiting on an empty SKU that turned final hear SOLD_OUT now
  // (only on the change: a keeper confirming finality wakes nobody).
  if (final && !was_final) wake_stock_waiters();
}

CampaignRuntime::StockWait CampaignRuntime::wait_for_stock(ClaimOp& op, UnixMicros now_us) {
  std::lock_guard lock(stock_waiters_mu_);
  // Looked at again under the lock: whoever brings units or finality takes
  // this lock after publishing them, so either they are seen here, or the
  // claim is on the list when they wake it. Nothing is lost in between.
  const std::uint32_t sku = op.wanted_sku_;
  const bool empty = sku == kNoSku ? inventory_.sold_out() : inventory_.sku_empty(sku);
  const bool final = sku == kNoSku ? inventory_.all_final() : inventory_.is_final(sku);
  if (!empty || final) return StockWait::kLookAgain;
  if (stock_waiters_count_.load(std::memory_order_relaxed) >= limits::kStockWaitersMax) {
    return StockWait::kFull;
  }
  // The wait's end is fixed when the claim first waits: woken and waiting
  // again, it keeps it, so no claim waits longer than the bound in all.
  if (op.wait_until_us_ == 0) {
    op.wait_until_us_ = now_us + limits::kStockWaitUsMax;
    if (op.deadline_us > 0) op.wait_until_us_ = std::min(op.wait_until_us_, op.deadline_us);
  }
  if (op.wait_until_us_ <= now_us) return StockWait::kFull;  // no time left to wait
  op.next_stock_waiter_ = stock_waiters_;
  stock_waiters_ = &op;
  // Relaxed: written under the lock; read bare only as a hint.
  stock_waiters_count_.fetch_add(1, std::memory_order_relaxed);
  return StockWait::kWaiting;
}

void CampaignRuntime::wake_stock_waiters() {
  ClaimOp* woken = nullptr;
  {
    std::lock_guard lock(stock_waiters_mu_);
    woken = stock_waiters_;
    stock_waiters_ = nullptr;
    stock_waiters_count_.store(0, std::memory_order_relaxed);
  }
  while (woken != nullptr) {
    ClaimOp* next = woken->next_stock_waiter_;
    woken->engine_->take_stock(*woken);  // may wait again; `woken` may be gone after
    woken = next;
  }
}

void CampaignRuntime::settle_waits(bool store_reachable) {
  // Relaxed hint: a claim that parks just after this read is looked at on
  // the keeper's next pass, milliseconds later.
  if (stock_waiters_count_.load(std::memory_order_relaxed) == 0) return;
  ClaimOp* ended = nullptr;
  ClaimEngine* engine = nullptr;
  {
    std::lock_guard lock(stock_waiters_mu_);
    if (stock_waiters_ == nullptr) return;
    engine = stock_waiters_->engine_;
    const UnixMicros now = engine->clock().now_us();
    ClaimOp** link = &stock_waiters_;
    while (*link != nullptr) {
      ClaimOp* op = *link;
      if (store_reachable && op->wait_until_us_ > now) {
        link = &op->next_stock_waiter_;
        continue;
      }
      *link = op->next_stock_waiter_;
      op->next_stock_waiter_ = ended;
      ended = op;
      stock_waiters_count_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  // No unit can come while the store is unreachable: say so (UNAVAILABLE);
  // a wait that ran out while it was reachable is a refill still on its way.
  engine->end_waits(ended, store_reachable ? Outcome::kStockRefilling : Outcome::kLogUnavailable);
}

void CampaignRuntime::note_store_holder(std::string_view member_id, std::string_view cancelled_code,
                                        bool holds_any) {
  // A cancellation on any replica frees the allowance here too.
  if (!cancelled_code.empty()) forget_held(member_id, cancelled_code);
  const std::size_t h = ShardedMap<int>::hash(member_id);
  if (holds_any) {
    store_holders_.add(h);
  } else {
    store_holders_.remove(h);
  }
}

void CampaignRuntime::forget_held(std::string_view member_id, std::string_view code) {
  const std::size_t hash = ShardedMap<int>::hash(member_id);
  bool emptied = false;
  members_index_.with_shard(hash, [&](MemberShard& members) {
    MemberRecord* m = members.find(member_id, hash);
    if (m == nullptr) return;
    emptied = members.drop_held(*m, code);
    if (emptied) members.release_if_inactive(*m, hash);
  });
  // Relaxed: a statistic.
  if (emptied) members_.fetch_sub(1, std::memory_order_relaxed);
}

void CampaignRuntime::note_missed(std::uint32_t sku) {
  // Load before store: a storm of presses on an empty shelf keeps the line
  // shared instead of bouncing it between cores.
  if (sku == kNoSku) {
    if (!missed_.load(std::memory_order_relaxed)) missed_.store(true, std::memory_order_relaxed);
    return;
  }
  std::atomic<std::uint64_t>& word = missed_skus_[sku / 64];
  const std::uint64_t bit = std::uint64_t{1} << (sku % 64);
  if ((word.load(std::memory_order_relaxed) & bit) == 0) {
    word.fetch_or(bit, std::memory_order_relaxed);
  }
}

bool CampaignRuntime::take_missed(std::vector<std::uint32_t>& named_skus) {
  const std::size_t words = (spec_.skus.size() + 63) / 64;
  for (std::size_t w = 0; w < words; ++w) {
    if (missed_skus_[w].load(std::memory_order_relaxed) == 0) continue;
    std::uint64_t bits = missed_skus_[w].exchange(0, std::memory_order_relaxed);
    while (bits != 0) {
      named_skus.push_back(static_cast<std::uint32_t>(w * 64 + std::countr_zero(bits)));
      bits &= bits - 1;
    }
  }
  return missed_.exchange(false, std::memory_order_relaxed);
}

std::uint32_t CampaignRuntime::sku_index(std::string_view sku_id) const {
  auto it = sku_by_id_.find(to_absl(sku_id));
  return it == sku_by_id_.end() ? kNoSku : it->second;
}

}  // namespace voucherd
