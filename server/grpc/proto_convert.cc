#include "server/grpc/proto_convert.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <optional>

namespace voucherd {
namespace {

using google::protobuf::Timestamp;
using google::protobuf::util::TimeUtil;

// Timestamps voucherd accepts: 1970..9999, as protobuf itself allows.
std::expected<UnixMicros, InvalidField> micros_from(const Timestamp& ts, const char* field) {
  if (ts.seconds() < 0 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
      ts.nanos() > 999'999'999) {
    return std::unexpected(InvalidField{field, std::string(field) + " is out of range"});
  }
  return TimeUtil::TimestampToMicroseconds(ts);
}

std::expected<LotterySpec, InvalidField> lottery_from_proto(const voucher::v1::LotteryRules& in,
                                                            const std::vector<SkuSpec>& skus) {
  LotterySpec out;
  out.win_probability = in.win_probability();
  out.draws_per_day = in.draws_per_day();
  out.time_zone = in.time_zone();
  out.prizes_per_member = in.prizes_per_member();
  switch (in.sku_choice()) {
    case voucher::v1::SKU_CHOICE_UNSPECIFIED:
    case voucher::v1::SKU_CHOICE_PROPORTIONAL_TO_REMAINING:
      out.sku_choice = SkuChoice::kProportionalToRemaining;
      break;
    case voucher::v1::SKU_CHOICE_WEIGHTED:
      out.sku_choice = SkuChoice::kWeighted;
      break;
    default:
      return std::unexpected(InvalidField{
          "campaign.lottery.sku_choice",
          "campaign.lottery.sku_choice must be SKU_CHOICE_PROPORTIONAL_TO_REMAINING or "
          "SKU_CHOICE_WEIGHTED"});
  }
  switch (in.release()) {
    case voucher::v1::RELEASE_SCHEDULE_UNSPECIFIED:
    case voucher::v1::RELEASE_SCHEDULE_LINEAR:
      out.release = ReleaseSchedule::kLinear;
      break;
    case voucher::v1::RELEASE_SCHEDULE_EQUAL_PER_DAY:
      out.release = ReleaseSchedule::kEqualPerDay;
      break;
    default:
      return std::unexpected(
          InvalidField{"campaign.lottery.release",
                       "campaign.lottery.release must be RELEASE_SCHEDULE_LINEAR or "
                       "RELEASE_SCHEDULE_EQUAL_PER_DAY"});
  }
  if (in.sku_weights().empty()) return out;
  // Weights in the campaign's SKU order; every SKU named exactly once.
  constexpr std::int64_t kUnset = -1;
  out.sku_weights.assign(skus.size(), kUnset);
  for (const auto& w : in.sku_weights()) {
    auto it = std::find_if(skus.begin(), skus.end(),
                           [&](const SkuSpec& s) { return s.id == w.sku_id(); });
    if (it == skus.end() || out.sku_weights[it - skus.begin()] != kUnset) {
      return std::unexpected(InvalidField{
          "campaign.lottery.sku_weights",
          "campaign.lottery.sku_weights: \"" + w.sku_id() +
              (it == skus.end() ? "\" is not a SKU of the campaign" : "\" is weighted twice")});
    }
    out.sku_weights[it - skus.begin()] = w.weight();
  }
  for (std::size_t i = 0; i < skus.size(); ++i) {
    if (out.sku_weights[i] == kUnset) {
      return std::unexpected(
          InvalidField{"campaign.lottery.sku_weights",
                       "campaign.lottery.sku_weights gives SKU \"" + skus[i].id + "\" no weight"});
    }
  }
  return out;
}

void lottery_to_proto(const CampaignSpec& in, voucher::v1::LotteryRules* out) {
  const LotterySpec& l = in.lottery;
  out->set_win_probability(l.win_probability);
  out->set_draws_per_day(l.draws_per_day);
  out->set_time_zone(l.time_zone);
  out->set_prizes_per_member(l.prizes_per_member);
  out->set_sku_choice(l.sku_choice == SkuChoice::kWeighted
                          ? voucher::v1::SKU_CHOICE_WEIGHTED
                          : voucher::v1::SKU_CHOICE_PROPORTIONAL_TO_REMAINING);
  for (std::size_t i = 0; i < l.sku_weights.size() && i < in.skus.size(); ++i) {
    auto* w = out->add_sku_weights();
    w->set_sku_id(in.skus[i].id);
    w->set_weight(l.sku_weights[i]);
  }
  out->set_release(l.release == ReleaseSchedule::kEqualPerDay
                       ? voucher::v1::RELEASE_SCHEDULE_EQUAL_PER_DAY
                       : voucher::v1::RELEASE_SCHEDULE_LINEAR);
}

}  // namespace

void timestamp_to_proto(UnixMicros us, Timestamp* out) {
  *out = TimeUtil::MicrosecondsToTimestamp(us);
}

std::string timestamp_text(UnixMicros us) {
  return TimeUtil::ToString(TimeUtil::MicrosecondsToTimestamp(us));
}

std::expected<CampaignSpec, InvalidField> campaign_from_proto(const voucher::v1::Campaign& in) {
  CampaignSpec out;
  out.id = in.id();
  out.name = in.name();
  switch (in.mode()) {
    case voucher::v1::CAMPAIGN_MODE_FIRST_COME:
      out.mode = CampaignMode::kFirstCome;
      break;
    case voucher::v1::CAMPAIGN_MODE_LOTTERY:
      out.mode = CampaignMode::kLottery;
      break;
    case voucher::v1::CAMPAIGN_MODE_APPLY_THEN_DRAW:
      out.mode = CampaignMode::kApplyThenDraw;
      break;
    default:  // validation names it
      out.mode = CampaignMode::kUnspecified;
      break;
  }
  if (in.has_starts_at()) {
    auto t = micros_from(in.starts_at(), "campaign.starts_at");
    if (!t) return std::unexpected(t.error());
    out.starts_at_us = *t;
  }
  if (in.has_ends_at()) {
    auto t = micros_from(in.ends_at(), "campaign.ends_at");
    if (!t) return std::unexpected(t.error());
    out.ends_at_us = *t;
  }
  if (in.has_allocation_at()) {
    auto t = micros_from(in.allocation_at(), "campaign.allocation_at");
    if (!t) return std::unexpected(t.error());
    out.allocation_at_us = *t;
  }
  out.per_member_limit = in.per_member_limit();
  out.voucher_valid_days = in.voucher_valid_days();
  out.cancel_keeps_allowance = in.cancel_keeps_allowance();
  out.voucher_valid_seconds = in.voucher_valid_seconds();
  for (const auto& s : in.sites()) {
    const int k = s.kind();
    out.sites.push_back(
        SiteSpec{s.id(), s.name(), s.city(), static_cast<SkuKind>(k >= 0 && k <= 4 ? k : 0)});
  }
  for (const auto& s : in.skus()) {
    const int k = s.kind();
    out.skus.push_back(SkuSpec{s.id(), s.site_id(), static_cast<SkuKind>(k >= 1 && k <= 4 ? k : 0),
                               s.name(), s.face_value_cents(), s.stock()});
  }
  if (in.has_lottery()) {
    auto rules = lottery_from_proto(in.lottery(), out.skus);
    if (!rules) return std::unexpected(rules.error());
    out.lottery = std::move(*rules);
  }
  return out;
}

void campaign_to_proto(const CampaignSpec& in, voucher::v1::Campaign* out) {
  out->set_id(in.id);
  out->set_name(in.name);
  out->set_mode(static_cast<voucher::v1::CampaignMode>(in.mode));
  timestamp_to_proto(in.starts_at_us, out->mutable_starts_at());
  timestamp_to_proto(in.ends_at_us, out->mutable_ends_at());
  out->set_per_member_limit(in.per_member_limit);
  out->set_voucher_valid_days(in.voucher_valid_days);
  out->set_cancel_keeps_allowance(in.cancel_keeps_allowance);
  out->set_voucher_valid_seconds(in.voucher_valid_seconds);
  for (const SiteSpec& s : in.sites) {
    auto* p = out->add_sites();
    p->set_id(s.id);
    p->set_name(s.name);
    p->set_city(s.city);
    p->set_kind(static_cast<voucher::v1::SkuKind>(s.kind));
  }
  for (const SkuSpec& s : in.skus) {
    auto* p = out->add_skus();
    p->set_id(s.id);
    p->set_site_id(s.site_id);
    p->set_kind(static_cast<voucher::v1::SkuKind>(s.kind));
    p->set_name(s.name);
    p->set_face_value_cents(s.face_value_cents);
    p->set_stock(s.stock);
  }
  if (in.mode == CampaignMode::kLottery) lottery_to_proto(in, out->mutable_lottery());
  // Unset for the other modes, so their stored definitions keep their bytes.
  if (in.mode == CampaignMode::kApplyThenDraw) {
    timestamp_to_proto(in.allocation_at_us, out->mutable_allocation_at());
  }
}

void draw_entry_to_proto(const CampaignSpec& spec, const DrawEntry& in,
                         voucher::v1::DrawRecord* out) {
  out->set_member_id(in.member_id);
  out->set_draw_number(in.draw_number);
  timestamp_to_proto(in.at_us, out->mutable_drawn_at());
  out->set_won(in.outcome == DrawOutcome::kWon);
  if (in.outcome != DrawOutcome::kWon) {
    out->set_reason(static_cast<voucher::v1::NoPrizeReason>(in.outcome));
  } else if (in.sku < spec.skus.size()) {
    out->set_sku_id(spec.skus[in.sku].id);
  }
  out->set_released(in.released);
  out->set_remaining(in.remaining);
}

namespace {

// The index of the SKU `id` in `spec` (exports name SKUs by id).
std::optional<std::uint32_t> sku_index_of(const CampaignSpec& spec, const std::string& id) {
  auto it = std::find_if(spec.skus.begin(), spec.skus.end(),
                         [&](const SkuSpec& s) { return s.id == id; });
  if (it == spec.skus.end()) return std::nullopt;
  return static_cast<std::uint32_t>(it - spec.skus.begin());
}

}  // namespace

std::expected<DrawEntry, std::string> draw_entry_from_proto(const CampaignSpec& spec,
                                                            const voucher::v1::DrawRecord& in) {
  DrawEntry out;
  out.member_id = in.member_id();
  out.draw_number = in.draw_number();
  out.at_us = TimeUtil::TimestampToMicroseconds(in.drawn_at());
  out.released = in.released();
  out.remaining = in.remaining();
  if (in.won()) {
    out.outcome = DrawOutcome::kWon;
    const auto sku = sku_index_of(spec, in.sku_id());
    if (!sku) {
      return std::unexpected("won SKU \"" + in.sku_id() + "\", which the campaign does not have");
    }
    out.sku = *sku;
    return out;
  }
  const int reason = in.reason();
  if (reason < static_cast<int>(DrawOutcome::kUnlucky) ||
      reason > static_cast<int>(DrawOutcome::kAlreadyWon)) {
    return std::unexpected("neither won nor a reason for no prize");
  }
  out.outcome = static_cast<DrawOutcome>(reason);
  return out;
}

std::string encode_campaign_definition(const CampaignSpec& spec) {
  voucher::v1::Campaign proto;
  campaign_to_proto(spec, &proto);
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    proto.SerializeToCodedStream(&coded);
  }
  return out;
}

void voucher_to_proto(const VoucherRecord& in, VoucherState visible, voucher::v1::Voucher* out) {
  const CodeString code = in.code();
  out->set_code(code.data(), code.size());
  out->set_campaign_id(in.campaign_id());
  out->set_sku_id(in.sku_id());
  out->set_site_id(in.site_id());
  out->set_member_id(in.member_id().data(), in.member_id().size());
  out->set_state(static_cast<voucher::v1::VoucherState>(visible));
  out->set_face_value_cents(in.face_value_cents());
  timestamp_to_proto(in.issued_at_us(), out->mutable_issued_at());
  timestamp_to_proto(in.expires_at_us(), out->mutable_expires_at());
  out->set_request_id(in.request_id().data(), in.request_id().size());
  out->set_sku_kind(static_cast<voucher::v1::SkuKind>(in.sku_kind()));
  if (in.state() == VoucherState::kRedeemed) {
    timestamp_to_proto(in.redeemed_at_us(), out->mutable_redeemed_at());
    out->set_redeemed_site_id(in.redeemed_site_id());
    out->set_redeem_request_id(in.redeem_request_id());
  }
}

void application_to_proto(const CampaignSpec& spec, const ApplicationResult& in, UnixMicros now_us,
                          voucher::v1::Application* out) {
  out->set_campaign_id(spec.id);
  out->set_member_id(in.application.member_id);
  for (std::uint32_t sku : in.application.preferred) {
    // The engine checked every preference against the campaign's SKUs.
    if (sku < spec.skus.size()) out->add_preferred_sku_ids(spec.skus[sku].id);
  }
  timestamp_to_proto(in.application.applied_at_us, out->mutable_applied_at());
  switch (in.state) {
    case ApplicationState::kPending:
      out->set_state(voucher::v1::APPLICATION_STATE_PENDING);
      break;
    case ApplicationState::kSelected:
      out->set_state(voucher::v1::APPLICATION_STATE_SELECTED);
      break;
    case ApplicationState::kNotSelected:
      out->set_state(voucher::v1::APPLICATION_STATE_NOT_SELECTED);
      break;
  }
  if (in.voucher) {
    voucher_to_proto(*in.voucher, visible_state(*in.voucher, now_us), out->mutable_voucher());
  }
  out->set_proof(in.proof);
}

void application_outcome_to_proto(const CampaignSpec& spec, const ApplicationOutcome& in,
                                  bool allocation_done, voucher::v1::ApplicationRecord* out) {
  out->Clear();
  out->set_member_id(in.application.member_id);
  for (std::uint32_t sku : in.application.preferred) {
    // The store read only preferences naming the campaign's SKUs.
    if (sku < spec.skus.size()) out->add_preferred_sku_ids(spec.skus[sku].id);
  }
  timestamp_to_proto(in.application.applied_at_us, out->mutable_applied_at());
  if (in.sku < spec.skus.size()) {
    out->set_state(voucher::v1::APPLICATION_STATE_SELECTED);
    out->set_sku_id(spec.skus[in.sku].id);
  } else {
    out->set_state(allocation_done ? voucher::v1::APPLICATION_STATE_NOT_SELECTED
                                   : voucher::v1::APPLICATION_STATE_PENDING);
  }
}

std::expected<ApplicationOutcome, std::string> application_outcome_from_proto(
    const CampaignSpec& spec, const voucher::v1::ApplicationRecord& in) {
  auto index_of = [&](const std::string& id) { return sku_index_of(spec, id); };
  ApplicationOutcome out;
  if (in.member_id().empty()) return std::unexpected("no member_id");
  out.application.member_id = in.member_id();
  for (const std::string& id : in.preferred_sku_ids()) {
    auto sku = index_of(id);
    if (!sku) {
      return std::unexpected("prefers SKU \"" + id + "\", which the campaign does not have");
    }
    out.application.preferred.push_back(*sku);
  }
  out.application.applied_at_us = TimeUtil::TimestampToMicroseconds(in.applied_at());
  switch (in.state()) {
    case voucher::v1::APPLICATION_STATE_SELECTED: {
      auto sku = index_of(in.sku_id());
      if (!sku) {
        return std::unexpected("SELECTED for SKU \"" + in.sku_id() +
                               "\", which the campaign does not have");
      }
      out.sku = *sku;
      return out;
    }
    case voucher::v1::APPLICATION_STATE_NOT_SELECTED:
      if (!in.sku_id().empty()) {
        return std::unexpected("NOT_SELECTED, and names SKU \"" + in.sku_id() + "\"");
      }
      return out;
    case voucher::v1::APPLICATION_STATE_PENDING:
      return std::unexpected(
          "PENDING: the export was taken before the allocation was done; export again once "
          "GetCampaignStats says DONE");
    default:
      return std::unexpected("no state (SELECTED or NOT_SELECTED)");
  }
}

void stats_to_proto(const CampaignStatsView& in, voucher::v1::CampaignStats* out) {
  out->set_campaign_id(in.campaign_id);
  out->set_stock_total(in.stock_total);
  out->set_issued(in.issued);
  out->set_redeemed(in.redeemed);
  out->set_remaining(in.remaining);
  out->set_members(in.members);
  out->set_expired(in.expired);
  for (const SkuStatsView& s : in.skus) {
    auto* p = out->add_skus();
    p->set_sku_id(s.sku_id);
    p->set_stock(s.stock);
    p->set_issued(s.issued);
    p->set_redeemed(s.redeemed);
    p->set_remaining(s.remaining);
    p->set_expired(s.expired);
  }
  if (const auto& a = in.applications) {
    out->set_applications(a->applications);
    out->set_selected(a->selected);
    switch (a->allocation) {
      case ApplicationCounts::Allocation::kNotStarted:
        out->set_allocation(voucher::v1::ALLOCATION_STATE_NOT_STARTED);
        break;
      case ApplicationCounts::Allocation::kRunning:
        out->set_allocation(voucher::v1::ALLOCATION_STATE_RUNNING);
        break;
      case ApplicationCounts::Allocation::kDone:
        out->set_allocation(voucher::v1::ALLOCATION_STATE_DONE);
        out->set_not_selected(a->applications - a->selected);
        if (a->allocated_at_us > 0)
          timestamp_to_proto(a->allocated_at_us, out->mutable_allocated_at());
        break;
    }
  }
}

}  // namespace voucherd
