// apply.h — the rules of APPLY_THEN_DRAW campaigns (docs/apply-then-draw.md),
// as pure functions, so that the stores allocate with them and voucher-audit
// re-derives an allocation with exactly the same code.
//
// Members apply during the window, each naming the SKUs they would take,
// most wanted first, or none (any). At the allocation:
//   1. each applicant's rank is HMAC-SHA256(seed, "voucherd/apply/v1" ||
//      lp(campaign) || lp(member)) (seed_hmac.h: lp is a 4-byte big-endian
//      length, then the bytes);
//   2. applicants are taken in ascending rank (the 32 bytes compared as
//      unsigned, then the member id, should two ranks ever be equal);
//   3. each gets the first SKU they named that has stock left. One who
//      named none gets a SKU picked as a lottery win picks it (choose_sku,
//      lottery.h: by the stock left, or the campaign's SKU weights), with
//      bytes 8..15 of their rank as the 53-bit pick. When none of theirs
//      has stock left, they are not selected.
// This is random serial dictatorship: the order is random but fixed by the
// seed, and no applicant gains by naming other preferences than their own.
// The outcome depends on the seed, the campaign's definition and the set of
// applications only: not on their order, nor on when or where they came.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/lottery.h"
#include "engine/model.h"
#include "engine/voucher_code.h"

namespace voucherd {

inline constexpr std::string_view kApplyDomain = "voucherd/apply/v1";

struct ApplicationEntry {
  std::string member_id;
  std::vector<std::uint32_t> preferred;  // SKU indexes, most wanted first; empty: any
  UnixMicros applied_at_us = 0;          // published; the allocation never reads it
  bool operator==(const ApplicationEntry&) const = default;
};

using ApplyRank = std::array<std::uint8_t, 32>;

// The applicant's rank. `scratch` is reused between calls, so ranking a
// million applicants allocates once.
[[nodiscard]] ApplyRank apply_rank(const SkuMacKey& seed_key, std::string_view campaign_id,
                                   std::string_view member_id, std::string& scratch);

struct Allocation {
  std::vector<std::uint32_t> order;   // application indexes, by ascending rank
  std::vector<std::uint32_t> sku_of;  // per application: the SKU it got, or kNoSku
  std::int64_t selected = 0;
};

// The allocation of the campaign's stock (each SKU's `stock`) among
// `applications`.
// REQUIRES: member ids are unique, and every preferred index names a SKU.
[[nodiscard]] Allocation allocate(const CampaignSpec& spec, const LotterySeed& seed,
                                  std::span<const ApplicationEntry> applications);

// One line of a published allocation: an application and what it got.
struct ApplicationOutcome {
  ApplicationEntry application;
  std::uint32_t sku = kNoSku;  // the SKU it got; kNoSku: not selected
  bool operator==(const ApplicationOutcome&) const = default;
};

struct AllocationAudit {
  bool commitment_matches = false;
  std::int64_t applications = 0;
  std::int64_t selected = 0;  // in the published outcomes
  // Empty: the outcomes are exactly the allocation of these applications.
  // `index` is the line's 0-based position in `outcomes`, and
  // outcomes.size() for a count that differs from the published one.
  std::vector<AuditProblem> problems;
};

// Re-derives the allocation of the published applications from the revealed
// seed and reports each line whose outcome differs, each line that is not a
// valid application (a member twice, a SKU index out of range), and a count
// of applications other than the published one (`published_applications`,
// when given): a dropped application changes it.
[[nodiscard]] AllocationAudit audit_allocation(const CampaignSpec& spec, const LotterySeed& seed,
                                               std::string_view commitment,
                                               std::span<const ApplicationOutcome> outcomes,
                                               std::optional<std::int64_t> published_applications);

}  // namespace voucherd
