// applications.h — test support for APPLY_THEN_DRAW campaigns seen from a
// client: the members' outcomes read over gRPC until final, tallied, and
// checked against allocate() replayed from the revealed seed.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/lottery.h"
#include "engine/model.h"
#include "tests/support/client.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {

// Member -> the SKU ids of their application as it stands, most wanted first.
using Applications = std::map<std::string, std::vector<std::string>>;
using Outcomes = std::map<std::string, voucher::v1::Application>;

// Reads each member's application (with `client_for(k)` for the k-th read,
// so a test can alternate replicas) until none is PENDING, for at most
// `limit`. False when some still were.
bool read_outcomes(const std::string& campaign_id, const Applications& applied,
                   const std::function<const Client&(int)>& client_for, Outcomes& outcomes,
                   std::chrono::seconds limit);

// What the outcomes hold: vouchers won per SKU id and their codes. Checks,
// with gtest, that each SELECTED one carries its member's voucher and each
// NOT_SELECTED one none, and that each carries a rank proof.
struct OutcomeTally {
  std::map<std::string, int> won_per_sku;
  std::set<std::string> codes;
};
OutcomeTally tally(const Outcomes& outcomes);

// Checks, with gtest, that every member's outcome is what allocate() gives
// from `seed` (the SKU won, or NOT_SELECTED) and that its proof is their
// rank. `spec` is the campaign as served (validated and normalized).
void expect_replayed(const CampaignSpec& spec, const LotterySeed& seed, const Applications& applied,
                     const Outcomes& outcomes);

}  // namespace voucherd::testing
