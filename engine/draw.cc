// draw.cc — LOTTERY draws: the decision with the claim log, the proof, the
// seed's reveal.
#include <algorithm>

#include "engine/check.h"
#include "engine/claim_engine.h"
#include "engine/limits.h"

namespace voucherd {

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
        c.count_issued(entry.sku, 1);
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
  // A record read back from the store with an id no press could carry is
  // not worth a member record: nobody can ask for it.
  if (v->member_id().empty() || v->member_id().size() > limits::kIdBytesMax) return;
  const std::size_t hash = ShardedMap<int>::hash(v->member_id());
  bool first = false;
  c.members_index_.with_shard(hash, [&](MemberShard& members) {
    MemberRecord* m = members.find(v->member_id(), hash);
    if (m == nullptr) m = &members.emplace(v->member_id(), hash);
    first = members.add_held(*m, v) == MemberShard::Added::kFirst;
  });
  if (first) c.members_.fetch_add(1, std::memory_order_relaxed);  // a statistic
}

std::expected<LotterySeed, Outcome> ClaimEngine::reveal_seed(std::string_view campaign_id) const {
  const CampaignRuntime* c = find_campaign(campaign_id);
  if (c == nullptr) return std::unexpected(Outcome::kCampaignNotFound);
  if (!has_seed(c->spec().mode)) return std::unexpected(Outcome::kWrongMode);
  if (clock_.now_us() < c->spec().ends_at_us) return std::unexpected(Outcome::kCampaignNotOver);
  // The ranks follow from the seed: revealed before the allocation is
  // written, it would let anyone see who is about to win.
  if (c->spec().mode == CampaignMode::kApplyThenDraw &&
      !c->allocation_done_.load(std::memory_order_acquire)) {
    return std::unexpected(Outcome::kCampaignNotOver);
  }
  auto seed = c->seed();
  if (!seed) return std::unexpected(Outcome::kLogUnavailable);
  return *seed;
}

}  // namespace voucherd
