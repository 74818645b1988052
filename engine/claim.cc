// claim.cc — the claim path: admission, the member's index, a unit of stock (or
// a wait for one), minting, the claim log's write and its completion.
#include <algorithm>
#include <limits>

#include "engine/check.h"
#include "engine/claim_engine.h"

namespace voucherd {

void ClaimEngine::claim(ClaimOp& op) {
  op.press_admitted_ = false;
  rerun_claim(op);
}

void ClaimEngine::rerun_claim(ClaimOp& op) {
  op.fenced_ = 0;
  op.looked_up_ = false;
  op.wait_until_us_ = 0;
  run_claim(op);
}

void ClaimEngine::set_member_press_limit(MemberPressLimit limit) {
  VOUCHERD_CHECK(limit.per_second <= limits::kPressRatePerSecondMax && limit.burst >= 1,
                 "the member press limit is within its bounds");
  if (limit.per_second == 0) {
    press_interval_ticks_ = press_tolerance_ticks_ = 0;
    return;
  }
  constexpr std::int64_t kTicksPerSecond = 1'000'000 / limits::kPressTickUs;
  press_interval_ticks_ = static_cast<std::uint32_t>(kTicksPerSecond / limit.per_second);
  press_tolerance_ticks_ = press_interval_ticks_ * (limit.burst - 1);
}

std::uint32_t ClaimEngine::press_refused_ms(MemberEntry& e, UnixMicros now) const {
  if (press_interval_ticks_ == 0) return 0;
  // GCRA: a press at `tick` is admitted unless the member's theoretical
  // arrival time is more than the burst's tolerance ahead of it; an
  // admitted press moves it one interval on. Refused presses move nothing.
  // Past the 32-bit horizon the clock stops and every press is admitted.
  constexpr std::uint64_t kTickMax = std::numeric_limits<std::uint32_t>::max();
  const std::uint64_t tick = std::min<std::uint64_t>(
      static_cast<std::uint64_t>(std::max<UnixMicros>(now - press_epoch_us_, 0)) /
          static_cast<std::uint64_t>(limits::kPressTickUs),
      kTickMax);
  const std::uint64_t tat = std::max<std::uint64_t>(e.press_tat, tick);
  if (tat - tick > press_tolerance_ticks_) {
    const std::uint64_t wait_ticks = tat - tick - press_tolerance_ticks_;
    return static_cast<std::uint32_t>(wait_ticks * limits::kPressTickUs / 1000);
  }
  e.press_tat = static_cast<std::uint32_t>(std::min(tat + press_interval_ticks_, kTickMax));
  return 0;
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
  std::uint32_t sku = kNoSku;
  if (!op.sku_id.empty()) {
    sku = c->sku_index(op.sku_id);
    if (sku == kNoSku) return fail(Outcome::kSkuNotFound);
  }
  const std::int32_t limit = spec.per_member_limit;
  if (limit > 1 && op.request_id.empty()) return fail(Outcome::kRequestIdRequired, "request_id");

  op.campaign_ = c;
  op.member_hash_ = ShardedMap<int>::hash(op.member_id);

  enum class Step { kAnswer, kWait, kLookUp, kProceed };
  ClaimResult answer;
  const Step step = c->members_index_.with_shard(op.member_hash_, [&](MemberShard& members) {
    // Refuse a newcomer only when nothing is here and nothing more will come.
    const bool nothing_left = sku == kNoSku
                                  ? c->inventory_.sold_out() && c->inventory_.all_final()
                                  : c->inventory_.sku_empty(sku) && c->inventory_.is_final(sku);
    // The shard hash is the map's own hash of the key, so it is passed along.
    MemberRecord* m = members.find(op.member_id, op.member_hash_);
    // A record that is not active (its member's press was refused before
    // they claimed) is a newcomer's.
    if (m == nullptr || !members.active(*m)) {
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
        answer = {sku == kNoSku ? Outcome::kSoldOut : Outcome::kSkuSoldOut, nullptr, nullptr};
        return Step::kAnswer;
      }
      if (m == nullptr) m = &members.emplace(op.member_id, op.member_hash_);
    }
    // A press of a member pressing too fast is refused first: it is what a
    // script does, and each press costs a call (a new entry is admitted).
    // A press that waited on its member's claim in flight was admitted
    // when it came, and is not counted again when it runs again.
    if (!op.press_admitted_) {
      if (const std::uint32_t wait_ms = press_refused_ms(m->entry, now); wait_ms > 0) {
        answer = {Outcome::kPressRateLimited, nullptr, nullptr, wait_ms};
        return Step::kAnswer;
      }
      op.press_admitted_ = true;
    }
    // A retry of a request that already got its voucher, or a member at the limit.
    VoucherPtr same = members.find_held(
        *m, [&](const VoucherRecord& v) { return limit == 1 || v.request_id() == op.request_id; });
    if (same != nullptr) {
      answer = {Outcome::kAlreadyClaimed, nullptr, std::move(same)};
      return Step::kAnswer;
    }
    const std::size_t held = MemberShard::held_count(*m);
    if (static_cast<std::int32_t>(held) >= limit) {
      answer = {Outcome::kAlreadyClaimed, nullptr, members.last_held(*m)};
      return Step::kAnswer;
    }
    // A claim of this member is in flight and this press depends on its
    // outcome: wait for it, then run again.
    if (const ClaimOp* p = members.pending(*m); p != nullptr) {
      const std::uint32_t in_flight = members.pending_count(*m);
      bool depends = limit == 1 || static_cast<std::int32_t>(held + in_flight) >= limit;
      for (; p != nullptr; p = p->next_pending_)
        depends = depends || p->request_id == op.request_id;
      if (depends) {
        if (!members.add_waiter(*m, op)) {
          answer = {Outcome::kTooManyWaiters, nullptr, nullptr};
          return Step::kAnswer;
        }
        return Step::kWait;
      }
    }
    members.add_pending(*m, op);
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
        sku == kNoSku ? c->inventory_.take_any(static_cast<std::uint32_t>(op.member_hash_))
                      : (c->inventory_.take(sku) ? sku : kNoSku);
    if (taken != kNoSku) {
      op.sku_ = taken;
      op.voucher = mint_voucher(*c, taken, op.member_id, op.request_id, clock_.now_us());
      return log_.append_claim(op);  // completes through ClaimOp::on_logged
    }
    // Empty here: sold out if no more units will come; else a refill of
    // this replica's stock is on its way, and the claim waits for it.
    const bool final = sku == kNoSku ? c->inventory_.all_final() : c->inventory_.is_final(sku);
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
      const Outcome why = sku == kNoSku ? Outcome::kSoldOut : Outcome::kSkuSoldOut;
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
  CodeFields f;
  f.campaign_tag = c.tag();
  f.sku_index = static_cast<std::uint16_t>(sku);
  random_.fill(f.random);
  for (std::uint8_t& r : f.random) r &= 31u;  // 5 uniform bits per symbol
  f.mac = compute_mac(c.mac_keys_[sku * c.secret_count_], f);

  return VoucherRecord::make(c.voucher_skus_[sku].get(), PackedCode::pack(f), member_id, request_id,
                             now_us);
}

void ClaimOp::on_logged(LogStatus status, VoucherPtr held) {
  engine_->complete_logged(*this, status, std::move(held));
}

void ClaimEngine::complete_logged(ClaimOp& op, LogStatus status, VoucherPtr held) {
  CampaignRuntime& c = *op.campaign_;
  switch (status) {
    case LogStatus::kWritten:
      c.count_issued(op.sku_, 1);
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
  c.members_index_.with_shard(op.member_hash_, [&](MemberShard& members) {
    waiters = members.remove_pending(op);
    MemberRecord& m = *op.member_ref_;  // the shard's records never move
    if (held) {
      first_voucher = members.add_held(m, held) == MemberShard::Added::kFirst;
    } else {
      // Holding, or with claims in flight, the member stays.
      members.release_if_inactive(m, op.member_hash_);
    }
  });
  if (first_voucher) c.members_.fetch_add(1, std::memory_order_relaxed);  // a statistic
  return waiters;
}

void ClaimEngine::run_waiters(ClaimOp* waiters) {
  while (waiters != nullptr) {
    ClaimOp* next = waiters->next_waiter_;
    rerun_claim(*waiters);
    waiters = next;
  }
}

void ClaimEngine::finish(ClaimOp& op, const ClaimResult& result, bool drop_pending,
                         const VoucherPtr& held) {
  ClaimOp* waiters = drop_pending ? release_pending(op, held) : nullptr;
  op.on_claim_done(result);  // `op` may be gone after this line
  run_waiters(waiters);
}

}  // namespace voucherd
