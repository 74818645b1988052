// campaign_validation.h — checks that a campaign definition adds up.
//
// Usage:
//   CampaignSpec spec = ...;
//   if (auto r = validate_and_normalize(spec); !r) reject(r.error().field, r.error().message);
//
// On success the spec is normalized (defaults filled in: per_member_limit 1,
// voucher_valid_days 30). On failure the spec is unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
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

// An id is 1..kIdBytesMax bytes of text without control characters (bytes
// below 0x20, and 0x7F): ids end up in logs, Redis keys and settlement files,
// where a newline or a NUL would forge or break a line.
enum class IdProblem : std::uint8_t { kNone, kEmpty, kTooLong, kControlCharacter };
[[nodiscard]] IdProblem id_problem(std::string_view id);
// Offset of the first control character in `id`, or npos.
[[nodiscard]] std::size_t control_character_at(std::string_view id);
// id_problem(id) == IdProblem::kNone.
[[nodiscard]] bool id_is_valid(std::string_view id);
// What is wrong with `id`, in words that start with `field`, e.g.
// "member_id is 70000 bytes; the limit is 128". REQUIRES: a problem.
[[nodiscard]] std::string id_problem_text(std::string_view field, std::string_view id,
                                          IdProblem problem);

}  // namespace voucherd
