#include "server/proto_convert.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/time_util.h>

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

void set_micros(UnixMicros us, Timestamp* out) { *out = TimeUtil::MicrosecondsToTimestamp(us); }

}  // namespace

std::expected<CampaignSpec, InvalidField> campaign_from_proto(const voucher::v1::Campaign& in) {
  CampaignSpec out;
  out.id = in.id();
  out.name = in.name();
  out.mode = static_cast<CampaignMode>(
      in.mode() == voucher::v1::FIRST_COME || in.mode() == voucher::v1::LOTTERY ? in.mode() : 0);
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
  return out;
}

void campaign_to_proto(const CampaignSpec& in, voucher::v1::Campaign* out) {
  out->set_id(in.id);
  out->set_name(in.name);
  out->set_mode(static_cast<voucher::v1::CampaignMode>(in.mode));
  set_micros(in.starts_at_us, out->mutable_starts_at());
  set_micros(in.ends_at_us, out->mutable_ends_at());
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
  out->set_code(in.code);
  out->set_campaign_id(in.campaign_id);
  out->set_sku_id(in.sku_id);
  out->set_site_id(in.site_id);
  out->set_member_id(in.member_id);
  out->set_state(static_cast<voucher::v1::VoucherState>(visible));
  out->set_face_value_cents(in.face_value_cents);
  set_micros(in.issued_at_us, out->mutable_issued_at());
  set_micros(in.expires_at_us, out->mutable_expires_at());
  out->set_request_id(in.request_id);
  out->set_sku_kind(static_cast<voucher::v1::SkuKind>(in.sku_kind));
  if (in.state == VoucherState::kRedeemed) {
    set_micros(in.redeemed_at_us, out->mutable_redeemed_at());
    out->set_redeemed_site_id(in.redeemed_site_id);
    out->set_redeem_request_id(in.redeem_request_id);
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
}

}  // namespace voucherd
