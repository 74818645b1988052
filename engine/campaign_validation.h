// campaign_validation.h — checks that a campaign definition adds up.
//
// Usage:
//   CampaignSpec spec = ...;
//   if (auto r = validate_and_normalize(spec); !r) reject(r.error().field, r.error().message);
//
// On success the spec is normalized (defaults filled in: per_member_limit 1,
// voucher_valid_days 30). On failure the spec is unchanged.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"

namespace voucherd {

struct InvalidField {
  std::string field;    // e.g. "campaign.skus[3].site_id"
  std::string message;  // human-readable, names the value where useful
};

[[nodiscard]] std::expected<void, InvalidField> validate_and_normalize(CampaignSpec& spec);

// Every problem of a definition, in the order validate_and_normalize checks
// them (it refuses with the first); empty when the campaign adds up. For
// tools that name each wrong field at once (voucherctl campaigns validate).
[[nodiscard]] std::vector<InvalidField> campaign_problems(const CampaignSpec& spec);

// An id is 1..kIdBytesMax bytes. Returns false for empty or over-long ids.
[[nodiscard]] bool id_is_valid(std::string_view id);

}  // namespace voucherd
