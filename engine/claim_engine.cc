#include "engine/claim_engine.h"

#include <algorithm>
#include <bit>

#include "engine/check.h"

namespace voucherd {
namespace {

std::size_t slot_hash(std::string_view id) { return ShardedMap<int>::hash(id); }

}  // namespace

// ---------------------------------------------------------------- CampaignRuntime

CampaignRuntime::CampaignRuntime(CampaignSpec spec, const CodeSigner& signer,
                                 const LotterySeed& proposed_seed)
    : spec_(std::move(spec)),
      tag_(campaign_tag(spec_.id)),
      inventory_(std::vector<std::int64_t>(spec_.skus.size(), 0)),  // filled by the claim log
      sku_counters_(std::make_unique<SkuCounters[]>(spec_.skus.size())),
      proposed_seed_(proposed_seed) {
  mac_keys_.reserve(spec_.skus.size());
  for (std::size_t i = 0; i < spec_.skus.size(); ++i) {
    const SkuSpec& sku = spec_.skus[i];
    sku_by_id_.emplace(sku.id, static_cast<std::uint32_t>(i));
    mac_keys_.push_back(signer.derive_sku_key(spec_.id, sku.site_id, sku.id));
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
  const bool empty = sku == Inventory::kNone ? inventory_.sold_out() : inventory_.sku_empty(sku);
  const bool final = sku == Inventory::kNone ? inventory_.all_final() : inventory_.is_final(sku);
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
  members_index_.with_shard(hash, [&](auto& map) {
    auto it = map.find(to_absl(member_id), hash);
    if (it == map.end()) return;
    auto& held = it->second.held;
    const auto before = held.size();
    held.erase(std::remove_if(held.begin(), held.end(),
                              [&](const VoucherPtr& v) { return v->code == code; }),
               held.end());
    if (held.size() < before && held.empty()) {
      emptied = true;
      if (it->second.pending.empty()) map.erase(it);
    }
  });
  // Relaxed: a statistic.
  if (emptied) members_.fetch_sub(1, std::memory_order_relaxed);
}

void CampaignRuntime::note_missed(std::uint32_t sku) {
  // Load before store: a storm of presses on an empty shelf keeps the line
  // shared instead of bouncing it between cores.
  if (sku == Inventory::kNone) {
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
  return it == sku_by_id_.end() ? Inventory::kNone : it->second;
}

// ---------------------------------------------------------------- ClaimEngine

ClaimEngine::ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
                         std::span<const std::uint8_t> secret)
    : log_(log),
      clock_(clock),
      random_(random),
      signer_(secret),
      slots_(std::make_unique<std::atomic<CampaignRuntime*>[]>(limits::kCampaignSlots)) {}

ClaimEngine::~ClaimEngine() = default;

std::expected<const CampaignRuntime*, CreateError> ClaimEngine::create_campaign(
    CampaignSpec spec, StoredDefinition stored) {
  if (auto valid = validate_and_normalize(spec); !valid) {
    return std::unexpected(CreateError{Outcome::kInvalidArgument, std::move(valid.error())});
  }
  std::lock_guard lock(create_mu_);
  if (const CampaignRuntime* existing = find_campaign(spec.id)) {
    if (existing->spec() == spec) return existing;
    return std::unexpected(CreateError{
        Outcome::kCampaignExists,
        {"campaign.id", "campaign \"" + spec.id + "\" exists with a different definition"}});
  }
  if (owned_.size() >= limits::kCampaignsMax) {
    return std::unexpected(
        CreateError{Outcome::kOverloaded,
                    {"campaign", "this voucherd holds " + std::to_string(limits::kCampaignsMax) +
                                     " campaigns, its limit"}});
  }
  LotterySeed proposed{};
  if (spec.mode == CampaignMode::kLottery) random_.fill(proposed);
  auto runtime = std::make_unique<CampaignRuntime>(std::move(spec), signer_, proposed);
  CampaignRuntime* c = runtime.get();
  if (auto opened = log_.open_campaign(c->spec(), *c, stored); !opened) {
    return std::unexpected(CreateError{Outcome::kCampaignExists, {"campaign", opened.error()}});
  }
  owned_.push_back(std::move(runtime));

  // Link into the tag list first, then publish in the id table. Release
  // stores pair with the readers' acquire loads, so a reader that sees the
  // pointer sees the fully built campaign.
  c->next_same_tag_.store(by_tag_[c->tag()].load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
  by_tag_[c->tag()].store(c, std::memory_order_release);
  std::size_t i = slot_hash(c->spec().id) & (limits::kCampaignSlots - 1);
  while (slots_[i].load(std::memory_order_relaxed) != nullptr) {
    i = (i + 1) & (limits::kCampaignSlots - 1);
  }
  slots_[i].store(c, std::memory_order_release);
  return c;
}

CampaignRuntime* ClaimEngine::find_mutable(std::string_view id) const {
  std::size_t i = slot_hash(id) & (limits::kCampaignSlots - 1);
  // The table is at most half full, so a probe ends at an empty slot.
  for (std::size_t probes = 0; probes < limits::kCampaignSlots; ++probes) {
    CampaignRuntime* c = slots_[i].load(std::memory_order_acquire);
    if (c == nullptr) return nullptr;
    if (c->spec().id == id) return c;
    i = (i + 1) & (limits::kCampaignSlots - 1);
  }
  return nullptr;
}

const CampaignRuntime* ClaimEngine::find_campaign(std::string_view id) const {
  return find_mutable(id);
}

std::vector<const CampaignRuntime*> ClaimEngine::campaigns() const {
  std::lock_guard lock(create_mu_);
  std::vector<const CampaignRuntime*> out;
  for (const auto& c : owned_) out.push_back(c.get());
  return out;
}

void ClaimEngine::claim(ClaimOp& op) {
  op.fenced_ = 0;
  op.looked_up_ = false;
  op.wait_until_us_ = 0;
  run_claim(op);
}

void ClaimEngine::run_claim(ClaimOp& op) {
  op.engine_ = this;
  op.next_waiter_ = nullptr;
  auto fail = [&op](Outcome o, const char* field = nullptr) {
    op.on_claim_done(ClaimResult{o, field, nullptr});
  };
  if (op.campaign_id.empty() || op.campaign_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "campaign_id");
  }
  if (op.member_id.empty() || op.member_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "member_id");
  }
  if (op.sku_id.size() > limits::kIdBytesMax) return fail(Outcome::kInvalidArgument, "sku_id");
  if (op.request_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "request_id");
  }
  CampaignRuntime* c = find_mutable(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  const CampaignSpec& spec = c->spec();
  if (spec.mode != CampaignMode::kFirstCome) return fail(Outcome::kWrongMode);
  const UnixMicros now = clock_.now_us();
  if (now < spec.starts_at_us) return fail(Outcome::kNotOpen);
  if (now >= spec.ends_at_us) return fail(Outcome::kClosed);
  std::uint32_t sku = Inventory::kNone;
  if (!op.sku_id.empty()) {
    sku = c->sku_index(op.sku_id);
    if (sku == Inventory::kNone) return fail(Outcome::kSkuNotFound);
  }
  const std::int32_t limit = spec.per_member_limit;
  if (limit > 1 && op.request_id.empty()) return fail(Outcome::kRequestIdRequired, "request_id");

  op.campaign_ = c;
  op.member_hash_ = ShardedMap<int>::hash(op.member_id);

  enum class Step { kAnswer, kWait, kLookUp, kProceed };
  ClaimResult answer;
  const Step step = c->members_index_.with_shard(op.member_hash_, [&](auto& map) {
    // Refuse a newcomer only when nothing is here and nothing more will come.
    const bool nothing_left = sku == Inventory::kNone
                                  ? c->inventory_.sold_out() && c->inventory_.all_final()
                                  : c->inventory_.sku_empty(sku) && c->inventory_.is_final(sku);
    // The shard hash is the map's own hash of the key, so it is passed along.
    auto it = map.find(to_absl(op.member_id), op.member_hash_);
    if (it == map.end()) {
      // A member the store's feed says holds a voucher from another replica
      // is looked up, not given stock: with an allowance of one, always;
      // with more, once nothing is left. (Lock order: member shard, then
      // holder shard; never the other way round.)
      if (!op.looked_up_ && (limit == 1 || nothing_left) &&
          c->store_holders_.contains(op.member_hash_)) {
        return Step::kLookUp;
      }
      if (nothing_left) {
        // A newcomer to an empty shelf is refused with no allocation (and
        // counted: units handed back by other replicas may yet come).
        c->note_missed(sku);
        answer = {sku == Inventory::kNone ? Outcome::kSoldOut : Outcome::kSkuSoldOut, nullptr,
                  nullptr};
        return Step::kAnswer;
      }
      it = map.try_emplace(std::string(op.member_id)).first;
    }
    CampaignRuntime::MemberEntry* e = &it->second;
    // A retry of a request that already got its voucher, or a member at the limit.
    for (const VoucherPtr& v : e->held) {
      if (limit == 1 || v->request_id == op.request_id) {
        answer = {Outcome::kAlreadyClaimed, nullptr, v};
        return Step::kAnswer;
      }
    }
    if (static_cast<std::int32_t>(e->held.size()) >= limit) {
      answer = {Outcome::kAlreadyClaimed, nullptr, e->held.back()};
      return Step::kAnswer;
    }
    // A claim of this member is in flight and this press depends on its
    // outcome: wait for it, then run again.
    if (!e->pending.empty()) {
      bool depends =
          limit == 1 || static_cast<std::int32_t>(e->held.size() + e->pending.size()) >= limit;
      for (const ClaimOp* p : e->pending) depends = depends || p->request_id == op.request_id;
      if (depends) {
        if (e->waiter_count >= limits::kWaitersPerMemberMax) {
          answer = {Outcome::kTooManyWaiters, nullptr, nullptr};
          return Step::kAnswer;
        }
        op.next_waiter_ = e->waiters;
        e->waiters = &op;
        ++e->waiter_count;
        return Step::kWait;
      }
    }
    e->pending.push_back(&op);
    return Step::kProceed;
  });
  if (step == Step::kAnswer) return op.on_claim_done(answer);
  if (step == Step::kWait) return;
  if (step == Step::kLookUp) {
    op.looked_up_ = true;
    // Completes through ClaimOp::on_member_vouchers, which runs the claim again.
    return log_.find_member_vouchers(spec.id, op.member_id, {}, op);
  }
  op.wanted_sku_ = sku;
  op.per_member_limit = limit;
  take_stock(op);
}

void ClaimEngine::take_stock(ClaimOp& op) {
  CampaignRuntime* c = op.campaign_;
  const std::uint32_t sku = op.wanted_sku_;
  // A unit seen under the waiters' lock may be taken by another claim before
  // this one gets to it; a few more looks, then the claim is shed.
  constexpr int kLooksMax = 4;
  for (int look = 0;; ++look) {
    const std::uint32_t taken =
        sku == Inventory::kNone
            ? c->inventory_.take_any(static_cast<std::uint32_t>(op.member_hash_))
            : (c->inventory_.take(sku) ? sku : Inventory::kNone);
    if (taken != Inventory::kNone) {
      op.sku_ = taken;
      op.voucher = mint_voucher(*c, taken, op.member_id, op.request_id, clock_.now_us());
      return log_.append_claim(op);  // completes through ClaimOp::on_logged
    }
    // Empty here: sold out if no more units will come; else a refill of
    // this replica's stock is on its way, and the claim waits for it.
    const bool final =
        sku == Inventory::kNone ? c->inventory_.all_final() : c->inventory_.is_final(sku);
    c->note_missed(sku);
    if (final) {
      // Nothing is left. A member the holders feed names (their voucher came
      // from another replica, perhaps while this claim waited) is looked up
      // rather than told SOLD_OUT: the claim lets go of its pending mark and
      // runs again once the store has answered.
      if (!op.looked_up_ && c->store_holders_.contains(op.member_hash_)) {
        ClaimOp* waiters = release_pending(op, nullptr);
        op.looked_up_ = true;
        log_.find_member_vouchers(c->spec().id, op.member_id, {}, op);
        return run_waiters(waiters);
      }
      const Outcome why = sku == Inventory::kNone ? Outcome::kSoldOut : Outcome::kSkuSoldOut;
      return finish(op, ClaimResult{why, nullptr, nullptr}, /*drop_pending=*/true, nullptr);
    }
    const CampaignRuntime::StockWait wait = c->wait_for_stock(op, clock_.now_us());
    if (wait == CampaignRuntime::StockWait::kWaiting) return;  // woken or settled later
    if (wait == CampaignRuntime::StockWait::kLookAgain && look + 1 < kLooksMax) continue;
    // Too many claims wait already, or no time is left: shed (retry shortly).
    return finish(op, ClaimResult{Outcome::kStockRefilling, nullptr, nullptr}, true, nullptr);
  }
}

void ClaimEngine::end_waits(ClaimOp* ended, Outcome why) {
  while (ended != nullptr) {
    ClaimOp* next = ended->next_stock_waiter_;
    finish(*ended, ClaimResult{why, nullptr, nullptr}, /*drop_pending=*/true, nullptr);
    ended = next;
  }
}

void ClaimOp::on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) {
  if (status != LookupStatus::kFound) {
    return on_claim_done(ClaimResult{Outcome::kLogUnavailable, nullptr, nullptr});
  }
  // What the member holds goes into this replica's index, so the claim run
  // again (and every later press here) answers from memory.
  for (const VoucherPtr& v : vouchers) engine_->remember_held(*campaign_, v);
  engine_->run_claim(*this);  // `this` may be gone after this line
}

VoucherPtr ClaimEngine::mint_voucher(const CampaignRuntime& c, std::uint32_t sku,
                                     std::string_view member_id, std::string_view request_id,
                                     UnixMicros now_us) {
  const SkuSpec& s = c.spec().skus[sku];
  CodeFields f;
  f.campaign_tag = c.tag();
  f.sku_index = static_cast<std::uint16_t>(sku);
  random_.fill(f.random);
  for (std::uint8_t& r : f.random) r &= 31u;  // 5 uniform bits per symbol
  f.mac = compute_mac(c.mac_keys_[sku], f);

  auto v = std::make_shared<VoucherRecord>();
  v->code = format_code(f);
  v->campaign_id = c.spec().id;
  v->sku_id = s.id;
  v->site_id = s.site_id;
  v->member_id = member_id;
  v->request_id = request_id;
  v->sku_kind = s.kind;
  v->face_value_cents = s.face_value_cents;
  v->issued_at_us = now_us;
  const CampaignSpec& spec = c.spec();
  v->expires_at_us =
      now_us + (spec.voucher_valid_seconds > 0
                    ? static_cast<UnixMicros>(spec.voucher_valid_seconds) * kMicrosPerSecond
                    : static_cast<UnixMicros>(spec.voucher_valid_days) * kMicrosPerDay);
  v->state = VoucherState::kIssued;
  return v;
}

void ClaimOp::on_logged(LogStatus status, VoucherPtr held) {
  engine_->complete_logged(*this, status, std::move(held));
}

void ClaimEngine::complete_logged(ClaimOp& op, LogStatus status, VoucherPtr held) {
  CampaignRuntime& c = *op.campaign_;
  switch (status) {
    case LogStatus::kWritten:
      // Relaxed: a statistic, read for stats only.
      c.sku_counters_[op.sku_].issued.fetch_add(1, std::memory_order_relaxed);
      return finish(op, ClaimResult{Outcome::kOk, nullptr, op.voucher}, true, op.voucher);
    case LogStatus::kDuplicate:
      VOUCHERD_CHECK(held != nullptr, "a log that answers kDuplicate hands over the voucher held");
      c.add_units(op.sku_, 1);  // wakes a claim waiting for a unit, if any
      return finish(op, ClaimResult{Outcome::kAlreadyClaimed, nullptr, held}, true, held);
    case LogStatus::kOverloaded:
      c.add_units(op.sku_, 1);
      return finish(op, ClaimResult{Outcome::kOverloaded, nullptr, nullptr}, true, nullptr);
    case LogStatus::kFenced:
      // The unit was not ours to hand out and the log has dropped the rest
      // of that SKU's local units: wait for the new lease like any claim
      // that finds the shelf empty. Bounded, in case the store keeps refusing.
      if (++op.fenced_ > limits::kFencedClaimRetriesMax) {
        return finish(op, ClaimResult{Outcome::kStockRefilling, nullptr, nullptr}, true, nullptr);
      }
      return take_stock(op);
    case LogStatus::kUnavailable:
      // Not given back: the write may have landed, and a unit handed out
      // twice would oversell. The log settles it with the store later.
      return finish(op, ClaimResult{Outcome::kLogUnavailable, nullptr, nullptr}, true, nullptr);
  }
  check::fail("status", "every LogStatus is handled above");
}

ClaimOp* ClaimEngine::release_pending(ClaimOp& op, const VoucherPtr& held) {
  CampaignRuntime& c = *op.campaign_;
  ClaimOp* waiters = nullptr;
  bool first_voucher = false;
  c.members_index_.with_shard(op.member_hash_, [&](auto& map) {
    auto it = map.find(to_absl(op.member_id), op.member_hash_);
    VOUCHERD_CHECK(it != map.end(), "a pending claim keeps its member's entry");
    CampaignRuntime::MemberEntry& e = it->second;
    auto p = std::find(e.pending.begin(), e.pending.end(), &op);
    VOUCHERD_CHECK(p != e.pending.end(), "a pending claim is on its member's pending list");
    e.pending.erase(p);
    if (held) {
      const bool known = std::any_of(e.held.begin(), e.held.end(),
                                     [&](const VoucherPtr& v) { return v->code == held->code; });
      if (!known) {
        first_voucher = e.held.empty();
        e.held.push_back(held);
      }
    }
    if (e.pending.empty()) {
      waiters = e.waiters;
      e.waiters = nullptr;
      e.waiter_count = 0;
      if (e.held.empty()) map.erase(it);
    }
  });
  if (first_voucher) c.members_.fetch_add(1, std::memory_order_relaxed);  // a statistic
  return waiters;
}

void ClaimEngine::run_waiters(ClaimOp* waiters) {
  while (waiters != nullptr) {
    ClaimOp* next = waiters->next_waiter_;
    claim(*waiters);
    waiters = next;
  }
}

void ClaimEngine::finish(ClaimOp& op, const ClaimResult& result, bool drop_pending,
                         const VoucherPtr& held) {
  ClaimOp* waiters = drop_pending ? release_pending(op, held) : nullptr;
  op.on_claim_done(result);  // `op` may be gone after this line
  run_waiters(waiters);
}

// ---------------------------------------------------------------- draws

void ClaimEngine::draw(DrawOp& op) {
  op.engine_ = this;
  auto fail = [&op](Outcome o, const char* field = nullptr) {
    DrawOpResult r;
    r.outcome = o;
    r.field = field;
    op.on_draw_done(r);
  };
  if (!id_is_valid(op.campaign_id)) return fail(Outcome::kInvalidArgument, "campaign_id");
  if (!id_is_valid(op.member_id)) return fail(Outcome::kInvalidArgument, "member_id");
  if (!id_is_valid(op.request_id)) return fail(Outcome::kInvalidArgument, "request_id");
  CampaignRuntime* c = find_mutable(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  const CampaignSpec& spec = c->spec();
  if (spec.mode != CampaignMode::kLottery) return fail(Outcome::kWrongMode);
  const UnixMicros now = clock_.now_us();
  if (now < spec.starts_at_us) return fail(Outcome::kNotOpen);
  if (now >= spec.ends_at_us) return fail(Outcome::kClosed);
  // The seed is settled when the claim log first reaches its store.
  if (!c->seed_set_.load(std::memory_order_acquire) || c->calendar() == nullptr) {
    return fail(Outcome::kLogUnavailable);
  }
  op.campaign_ = c;
  op.seed_key_ = &c->seed_key_;  // written once, before the release store
  // Draw times are kept to the millisecond (the Redis draw log stores them
  // so), and the day and the release are reckoned from that same time.
  const UnixMicros at = now - now % 1000;
  op.draw = DrawRequestView{
      &spec, op.member_id, op.request_id, at, c->calendar()->day_of(at), released_units(spec, at)};
  log_.append_draw(op);  // completes through DrawOp::on_draw_logged
}

DrawRandomness DrawOp::randomness(std::int64_t n) {
  return draw_randomness(*seed_key_, campaign_->spec().id, member_id, n);
}

VoucherPtr DrawOp::mint(std::uint32_t sku) {
  return engine_->mint_voucher(*campaign_, sku, member_id, request_id, draw.now_us);
}

void DrawOp::on_draw_logged(DrawLogStatus status, const DrawEntry& entry, VoucherPtr voucher,
                            std::int32_t draws_today) {
  CampaignRuntime& c = *campaign_;
  const LotterySpec& rules = c.spec().lottery;
  DrawOpResult r;
  switch (status) {
    case DrawLogStatus::kDrawn:
    case DrawLogStatus::kRepeat: {
      r.outcome = Outcome::kOk;
      r.repeat = status == DrawLogStatus::kRepeat;
      r.entry = entry;
      r.voucher = std::move(voucher);
      r.draws_left_today = std::max(0, rules.draws_per_day - draws_today);
      const DrawRandomness random = randomness(entry.draw_number);
      r.proof = "draw " + std::to_string(entry.draw_number) + ", HMAC-SHA256 " + to_hex(random.mac);
      if (status == DrawLogStatus::kDrawn && r.voucher) {
        // Relaxed: a statistic, read for stats only.
        c.sku_counters_[entry.sku].issued.fetch_add(1, std::memory_order_relaxed);
        engine_->remember_held(c, r.voucher);
      }
      break;
    }
    case DrawLogStatus::kDailyLimit:
      r.outcome = Outcome::kDrawLimitReached;
      r.resets_at_us = c.calendar()->day_start(draw.day + 1);
      r.resets_at = c.calendar()->format(r.resets_at_us);
      break;
    case DrawLogStatus::kOverloaded:
      r.outcome = Outcome::kOverloaded;
      break;
    case DrawLogStatus::kUnavailable:
      r.outcome = Outcome::kLogUnavailable;
      break;
  }
  on_draw_done(r);  // `this` may be gone after this line
}

void ClaimEngine::remember_held(CampaignRuntime& c, const VoucherPtr& v) {
  const std::size_t hash = ShardedMap<int>::hash(v->member_id);
  bool first = false;
  c.members_index_.with_shard(hash, [&](auto& map) {
    auto it = map.find(to_absl(v->member_id), hash);
    if (it == map.end()) it = map.try_emplace(v->member_id).first;
    CampaignRuntime::MemberEntry& e = it->second;
    for (const VoucherPtr& h : e.held) {
      if (h->code == v->code) return;  // known already
    }
    first = e.held.empty();
    e.held.push_back(v);
  });
  if (first) c.members_.fetch_add(1, std::memory_order_relaxed);  // a statistic
}

std::expected<LotterySeed, Outcome> ClaimEngine::reveal_seed(std::string_view campaign_id) const {
  const CampaignRuntime* c = find_campaign(campaign_id);
  if (c == nullptr) return std::unexpected(Outcome::kCampaignNotFound);
  if (c->spec().mode != CampaignMode::kLottery) return std::unexpected(Outcome::kWrongMode);
  if (clock_.now_us() < c->spec().ends_at_us) return std::unexpected(Outcome::kCampaignNotOver);
  auto seed = c->seed();
  if (!seed) return std::unexpected(Outcome::kLogUnavailable);
  return *seed;
}

// ---------------------------------------------------------------- look-ups

std::expected<ClaimEngine::CodeMatch, Outcome> ClaimEngine::match_code(
    std::string_view code) const {
  auto parsed = parse_code(code);
  if (!parsed) return std::unexpected(Outcome::kMistypedCode);
  const CodeFields& f = *parsed;
  // Try the MAC against each campaign carrying this tag; forged codes stop
  // here without touching the claim log.
  for (const CampaignRuntime* c = by_tag_[f.campaign_tag].load(std::memory_order_acquire);
       c != nullptr; c = c->next_same_tag_.load(std::memory_order_relaxed)) {
    if (f.sku_index >= c->spec().skus.size()) continue;
    if (compute_mac(c->mac_keys_[f.sku_index], f) == f.mac) {
      return CodeMatch{c, f.sku_index, format_code(f)};
    }
  }
  return std::unexpected(Outcome::kVoucherNotFound);
}

void ClaimEngine::get_voucher(VoucherLookupOp& op) {
  op.engine_ = this;
  auto match = match_code(op.code);
  if (!match) return op.on_lookup_done(match.error(), nullptr, VoucherState::kUnspecified);
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  log_.find_voucher(op.campaign_->spec().id, op.canonical_, op);
}

void ClaimEngine::redeem(RedeemOp& op) {
  op.engine_ = this;
  auto fail = [&](Outcome o, const char* field = nullptr) {
    op.on_redeem_done(o, nullptr, false, field);
  };
  if (op.site_id.empty() || op.site_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "site_id");
  }
  if (op.request_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "request_id");
  }
  // Mistyped codes and forged MACs stop here, before the claim log.
  auto match = match_code(op.code);
  if (!match) return fail(match.error());
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  log_.redeem(op.campaign_->spec().id, op.canonical_,
              RedeemRequestView{op.site_id, op.request_id, clock_.now_us()}, op);
}

void ClaimEngine::cancel(CancelOp& op) {
  op.engine_ = this;
  auto match = match_code(op.code);
  if (!match) return op.on_cancel_done(match.error(), nullptr);
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  const CampaignSpec& spec = op.campaign_->spec();
  // A LOTTERY prize is forfeited: its unit stays out of the prize pool and
  // the win still counts against the member's prizes.
  const bool lottery = spec.mode == CampaignMode::kLottery;
  log_.cancel(spec.id, op.canonical_,
              CancelRequestView{op.sku_, clock_.now_us(), spec.cancel_keeps_allowance || lottery,
                                spec.per_member_limit, !lottery},
              op);
}

void CancelOp::on_cancel_logged(CancelStatus status, VoucherPtr voucher) {
  switch (status) {
    case CancelStatus::kCancelled:
      // A forfeited LOTTERY prize stays counted: its unit does not come back.
      if (campaign_->spec().mode == CampaignMode::kFirstCome) {
        // Relaxed: a statistic, read for stats only.
        campaign_->sku_counters_[sku_].issued.fetch_sub(1, std::memory_order_relaxed);
        if (!campaign_->spec().cancel_keeps_allowance) engine_->forget_held(*voucher);
      }
      return on_cancel_done(Outcome::kOk, std::move(voucher));
    case CancelStatus::kAlreadyCancelled:
      return on_cancel_done(Outcome::kOk, std::move(voucher));
    case CancelStatus::kNotFound:
      return on_cancel_done(Outcome::kVoucherNotFound, nullptr);
    case CancelStatus::kRedeemed:
      return on_cancel_done(Outcome::kAlreadyRedeemed, std::move(voucher));
    case CancelStatus::kUnavailable:
      return on_cancel_done(Outcome::kLogUnavailable, nullptr);
  }
  check::fail("status", "every CancelStatus is handled above");
}

namespace {

// One ListMemberVouchers: a look-up per campaign, answered when all are in.
// Deleted by the last look-up to complete.
struct MemberFanout {
  struct Part final : MemberVouchersLookup {
    MemberFanout* fanout = nullptr;
    std::size_t index = 0;
    std::string campaign_id;
    std::vector<std::string> known_codes;
    std::vector<VoucherPtr> found;
    void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) override {
      if (status == LookupStatus::kUnavailable) {
        fanout->unavailable.store(true, std::memory_order_relaxed);
      }
      found = std::move(vouchers);
      // acq_rel: the last part sees every other part's `found`.
      if (fanout->left.fetch_sub(1, std::memory_order_acq_rel) == 1) fanout->finish();
    }
  };

  void finish() {
    std::vector<VoucherPtr> all;
    for (Part& p : parts) {
      std::sort(p.found.begin(), p.found.end(), [](const VoucherPtr& a, const VoucherPtr& b) {
        return a->issued_at_us < b->issued_at_us;
      });
      all.insert(all.end(), p.found.begin(), p.found.end());
    }
    MemberVouchersOp* done = op;
    const bool failed = unavailable.load(std::memory_order_relaxed);
    const UnixMicros at = now_us;
    delete this;
    done->on_member_vouchers_done(failed ? Outcome::kLogUnavailable : Outcome::kOk,
                                  failed ? std::vector<VoucherPtr>{} : std::move(all), at);
  }

  MemberVouchersOp* op = nullptr;
  UnixMicros now_us = 0;
  std::vector<Part> parts;
  std::atomic<std::size_t> left{0};
  std::atomic<bool> unavailable{false};
};

}  // namespace

void ClaimEngine::list_member_vouchers(MemberVouchersOp& op) {
  const UnixMicros now = clock_.now_us();
  if (op.member_id.empty() || op.member_id.size() > limits::kIdBytesMax) {
    return op.on_member_vouchers_done(Outcome::kInvalidArgument, {}, now);
  }
  std::vector<const CampaignRuntime*> targets;
  if (!op.campaign_id.empty()) {
    const CampaignRuntime* c = find_campaign(op.campaign_id);
    if (c == nullptr) return op.on_member_vouchers_done(Outcome::kCampaignNotFound, {}, now);
    targets.push_back(c);
  } else {
    targets = campaigns();
  }
  if (targets.empty()) return op.on_member_vouchers_done(Outcome::kOk, {}, now);

  auto* fanout = new MemberFanout;
  fanout->op = &op;
  fanout->now_us = now;
  fanout->parts.resize(targets.size());
  const std::size_t hash = ShardedMap<int>::hash(op.member_id);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    MemberFanout::Part& part = fanout->parts[i];
    part.fanout = fanout;
    part.index = i;
    part.campaign_id = targets[i]->spec().id;
    CampaignRuntime* c = find_mutable(part.campaign_id);
    c->members_index_.with_shard(hash, [&](auto& map) {
      auto it = map.find(to_absl(op.member_id), hash);
      if (it == map.end()) return;
      for (const VoucherPtr& v : it->second.held) part.known_codes.push_back(v->code);
    });
  }
  const std::size_t n = targets.size();
  fanout->left.store(n, std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    // The last completion deletes `fanout`: take what the call needs first.
    MemberFanout::Part* part = &fanout->parts[i];
    log_.find_member_vouchers(part->campaign_id, op.member_id, part->known_codes, *part);
  }
}

void ClaimEngine::forget_held(const VoucherRecord& v) {
  CampaignRuntime* c = find_mutable(v.campaign_id);
  if (c != nullptr) c->forget_held(v.member_id, v.code);
}

void RedeemOp::on_redeem_logged(RedeemStatus status, VoucherPtr voucher) {
  switch (status) {
    case RedeemStatus::kRedeemed:
      // Relaxed: a statistic, read for stats only.
      campaign_->sku_counters_[sku_].redeemed.fetch_add(1, std::memory_order_relaxed);
      return on_redeem_done(Outcome::kOk, std::move(voucher), false, nullptr);
    case RedeemStatus::kRedeemedBefore:
      // The same request again (a retry after a lost answer): the same answer.
      if (!request_id.empty() && voucher->redeem_request_id == request_id) {
        return on_redeem_done(Outcome::kOk, std::move(voucher), true, nullptr);
      }
      return on_redeem_done(Outcome::kAlreadyRedeemed, std::move(voucher), false, nullptr);
    case RedeemStatus::kNotFound:
      return on_redeem_done(Outcome::kVoucherNotFound, nullptr, false, nullptr);
    case RedeemStatus::kWrongSite:
      return on_redeem_done(Outcome::kWrongSite, nullptr, false, nullptr);
    case RedeemStatus::kCancelled:
      return on_redeem_done(Outcome::kVoucherCancelled, std::move(voucher), false, nullptr);
    case RedeemStatus::kExpired:
      return on_redeem_done(Outcome::kVoucherExpired, std::move(voucher), false, nullptr);
    case RedeemStatus::kUnavailable:
      return on_redeem_done(Outcome::kLogUnavailable, nullptr, false, nullptr);
  }
  check::fail("status", "every RedeemStatus is handled above");
}

void VoucherLookupOp::on_found(LookupStatus status, VoucherPtr voucher) {
  switch (status) {
    case LookupStatus::kFound:
      if (voucher->campaign_id != campaign_->spec().id) break;  // not the record the MAC named
      return on_lookup_done(Outcome::kOk, voucher,
                            visible_state(*voucher, engine_->clock().now_us()));
    case LookupStatus::kNotFound:
      break;
    case LookupStatus::kUnavailable:
      return on_lookup_done(Outcome::kLogUnavailable, nullptr, VoucherState::kUnspecified);
  }
  on_lookup_done(Outcome::kVoucherNotFound, nullptr, VoucherState::kUnspecified);
}

std::expected<CampaignStatsView, Outcome> ClaimEngine::campaign_stats(
    std::string_view campaign_id) const {
  const CampaignRuntime* c = find_campaign(campaign_id);
  if (c == nullptr) return std::unexpected(Outcome::kCampaignNotFound);
  CampaignStatsView out;
  out.campaign_id = c->spec().id;
  out.members = c->members_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < c->spec().skus.size(); ++i) {
    const SkuSpec& s = c->spec().skus[i];
    SkuStatsView v;
    v.sku_id = s.id;
    v.stock = s.stock;
    v.issued = c->sku_counters_[i].issued.load(std::memory_order_relaxed);
    v.redeemed = c->sku_counters_[i].redeemed.load(std::memory_order_relaxed);
    v.remaining = v.stock - v.issued;
    out.stock_total += v.stock;
    out.issued += v.issued;
    out.redeemed += v.redeemed;
    out.remaining += v.remaining;
    out.skus.push_back(std::move(v));
  }
  return out;
}

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "OK";
    case Outcome::kAlreadyClaimed:
      return "ALREADY_CLAIMED";
    case Outcome::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Outcome::kMistypedCode:
      return "MISTYPED_CODE";
    case Outcome::kCampaignNotFound:
      return "CAMPAIGN_NOT_FOUND";
    case Outcome::kSkuNotFound:
      return "SKU_NOT_FOUND";
    case Outcome::kVoucherNotFound:
      return "VOUCHER_NOT_FOUND";
    case Outcome::kNotOpen:
      return "NOT_OPEN";
    case Outcome::kClosed:
      return "CLOSED";
    case Outcome::kWrongMode:
      return "WRONG_MODE";
    case Outcome::kSoldOut:
      return "SOLD_OUT";
    case Outcome::kSkuSoldOut:
      return "SKU_SOLD_OUT";
    case Outcome::kRequestIdRequired:
      return "REQUEST_ID_REQUIRED";
    case Outcome::kTooManyWaiters:
      return "TOO_MANY_PRESSES";
    case Outcome::kOverloaded:
      return "OVERLOADED";
    case Outcome::kStockRefilling:
      return "STOCK_REFILLING";
    case Outcome::kLogUnavailable:
      return "STORE_UNAVAILABLE";
    case Outcome::kCampaignExists:
      return "CAMPAIGN_EXISTS";
    case Outcome::kWrongSite:
      return "WRONG_SITE";
    case Outcome::kVoucherExpired:
      return "EXPIRED";
    case Outcome::kVoucherCancelled:
      return "CANCELLED";
    case Outcome::kAlreadyRedeemed:
      return "ALREADY_REDEEMED";
    case Outcome::kRedeemThrottled:
      return "REDEEM_THROTTLED";
    case Outcome::kDrawLimitReached:
      return "DAILY_DRAW_LIMIT";
    case Outcome::kCampaignNotOver:
      return "CAMPAIGN_NOT_OVER";
    case Outcome::kInternal:
      return "INTERNAL";
  }
  return "UNKNOWN";
}

}  // namespace voucherd
