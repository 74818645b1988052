// proto_convert.h — voucher.v1 messages <-> engine model.
#pragma once

#include <expected>

#include "engine/campaign_validation.h"
#include "engine/claim_engine.h"
#include "engine/model.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd {

// Fails (naming the field) only where the wire form cannot be represented,
// e.g. a timestamp out of range; the rest is validate_and_normalize()'s job.
[[nodiscard]] std::expected<CampaignSpec, InvalidField> campaign_from_proto(
    const voucher::v1::Campaign& in);
// The one conversion of voucherd's Unix µs to protobuf's Timestamp, and its
// RFC 3339 text ("2024-06-18T02:00:00Z") for messages.
void timestamp_to_proto(UnixMicros us, google::protobuf::Timestamp* out);
[[nodiscard]] std::string timestamp_text(UnixMicros us);

void campaign_to_proto(const CampaignSpec& in, voucher::v1::Campaign* out);

// The bytes a shared store keeps as a campaign's definition: the Campaign
// message, serialized deterministically, so equal specs give equal bytes.
[[nodiscard]] std::string encode_campaign_definition(const CampaignSpec& spec);

void voucher_to_proto(const VoucherRecord& in, VoucherState visible, voucher::v1::Voucher* out);
// One draw of a LOTTERY campaign, and back (voucher-audit reads exports);
// the way back names what does not fit the campaign.
void draw_entry_to_proto(const CampaignSpec& spec, const DrawEntry& in,
                         voucher::v1::DrawRecord* out);
[[nodiscard]] std::expected<DrawEntry, std::string> draw_entry_from_proto(
    const CampaignSpec& spec, const voucher::v1::DrawRecord& in);
// A member's application to an APPLY_THEN_DRAW campaign, as Apply and
// GetApplication answer it (its voucher's state as visible at `now_us`).
void application_to_proto(const CampaignSpec& spec, const ApplicationResult& in, UnixMicros now_us,
                          voucher::v1::Application* out);
// One line of ExportApplications (PENDING when the allocation is not done
// and it won nothing), and back (voucher-audit): the way back names what does
// not fit the campaign, and refuses a PENDING line, which has no outcome.
void application_outcome_to_proto(const CampaignSpec& spec, const ApplicationOutcome& in,
                                  bool allocation_done, voucher::v1::ApplicationRecord* out);
[[nodiscard]] std::expected<ApplicationOutcome, std::string> application_outcome_from_proto(
    const CampaignSpec& spec, const voucher::v1::ApplicationRecord& in);
void stats_to_proto(const CampaignStatsView& in, voucher::v1::CampaignStats* out);

}  // namespace voucherd
