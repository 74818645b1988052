// apply_ops.cc — APPLY_THEN_DRAW campaigns on the engine: an application
// checked and handed to the claim log, and a member's application found.
#include <algorithm>

#include "engine/claim_engine.h"
#include "engine/limits.h"

namespace voucherd {

void ClaimEngine::apply(ApplyOp& op) {
  auto fail = [&op](Outcome o, const char* field = nullptr, std::string_view sku_id = {}) {
    ApplicationResult r;
    r.outcome = o;
    r.field = field;
    r.sku_id = sku_id;
    op.on_apply_done(r);
  };
  if (!id_is_valid(op.campaign_id)) return fail(Outcome::kInvalidArgument, "campaign_id");
  if (!id_is_valid(op.member_id)) return fail(Outcome::kInvalidArgument, "member_id");
  if (!id_is_valid(op.request_id)) return fail(Outcome::kInvalidArgument, "request_id");
  if (op.preferred_sku_ids.size() > limits::kApplicationPreferencesMax) {
    return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
  }
  for (std::string_view id : op.preferred_sku_ids) {
    if (!id_is_valid(id)) return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
  }
  CampaignRuntime* c = find_mutable(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  const CampaignSpec& spec = c->spec();
  if (spec.mode != CampaignMode::kApplyThenDraw) return fail(Outcome::kWrongMode);
  const UnixMicros now = clock_.now_us();
  if (now < spec.starts_at_us) return fail(Outcome::kNotOpen);
  if (now >= spec.ends_at_us) return fail(Outcome::kClosed);
  const std::size_t count = op.preferred_sku_ids.size();
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t sku = c->sku_index(op.preferred_sku_ids[i]);
    if (sku == kNoSku) return fail(Outcome::kSkuNotFound, nullptr, op.preferred_sku_ids[i]);
    // A SKU named twice would say nothing more about what the member wants.
    if (std::find(op.preferred_.begin(), op.preferred_.begin() + i, sku) !=
        op.preferred_.begin() + i) {
      return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
    }
    op.preferred_[i] = sku;
  }
  // The seed (and so the published commitment) is settled when the claim
  // log first reaches its store: no application is taken before it.
  if (!c->seed_set_.load(std::memory_order_acquire)) return fail(Outcome::kLogUnavailable);
  // Kept to the millisecond, as the Redis store keeps it.
  op.application = ApplicationRequestView{&spec, op.member_id, op.request_id,
                                          std::span(op.preferred_.data(), count), now - now % 1000};
  log_.append_application(op);  // completes through ApplyOp::on_application_logged
}

void ApplyOp::on_application_logged(ApplyLogStatus status, const ApplicationEntry& stored) {
  ApplicationResult r;
  switch (status) {
    case ApplyLogStatus::kRecorded:
    case ApplyLogStatus::kReplaced:
    case ApplyLogStatus::kRepeat:
      r.outcome = Outcome::kOk;
      r.application = stored;
      r.replaced = status == ApplyLogStatus::kReplaced;
      r.repeat = status == ApplyLogStatus::kRepeat;
      break;
    case ApplyLogStatus::kClosed:
      r.outcome = Outcome::kClosed;
      break;
    case ApplyLogStatus::kFull:
      r.outcome = Outcome::kApplicationsFull;
      break;
    case ApplyLogStatus::kOverloaded:
      r.outcome = Outcome::kOverloaded;
      break;
    case ApplyLogStatus::kUnavailable:
      r.outcome = Outcome::kLogUnavailable;
      break;
  }
  on_apply_done(r);  // `this` may be gone after this line
}

void ClaimEngine::get_application(ApplicationLookupOp& op) {
  auto fail = [&op](Outcome o, const char* field = nullptr) {
    ApplicationResult r;
    r.outcome = o;
    r.field = field;
    op.on_application_done(r);
  };
  if (!id_is_valid(op.campaign_id)) return fail(Outcome::kInvalidArgument, "campaign_id");
  if (!id_is_valid(op.member_id)) return fail(Outcome::kInvalidArgument, "member_id");
  const CampaignRuntime* c = find_campaign(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  if (c->spec().mode != CampaignMode::kApplyThenDraw) return fail(Outcome::kWrongMode);
  if (!c->seed_set_.load(std::memory_order_acquire)) return fail(Outcome::kLogUnavailable);
  op.seed_key_ = &c->seed_key_;  // written once, before the release store
  log_.find_application(c->spec(), op.member_id, op);
}

void ApplicationLookupOp::on_application_found(LookupStatus status,
                                               const ApplicationEntry& application,
                                               ApplicationState state, VoucherPtr voucher) {
  ApplicationResult r;
  switch (status) {
    case LookupStatus::kFound:
      r.outcome = Outcome::kOk;
      r.application = application;
      r.state = state;
      r.voucher = std::move(voucher);
      if (state != ApplicationState::kPending) {
        std::string scratch;
        r.proof = "rank HMAC-SHA256 " +
                  to_hex(apply_rank(*seed_key_, campaign_id, application.member_id, scratch));
      }
      break;
    case LookupStatus::kNotFound:
      r.outcome = Outcome::kApplicationNotFound;
      break;
    case LookupStatus::kUnavailable:
      r.outcome = Outcome::kLogUnavailable;
      break;
  }
  on_application_done(r);  // `this` may be gone after this line
}

}  // namespace voucherd
