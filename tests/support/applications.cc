#include "tests/support/applications.h"

#include <gtest/gtest.h>

#include "engine/apply.h"
#include "tests/support/wait.h"

namespace voucherd::testing {

namespace v1 = voucher::v1;

bool read_outcomes(const std::string& campaign_id, const Applications& applied,
                   const std::function<const Client&(int)>& client_for, Outcomes& outcomes,
                   std::chrono::seconds limit) {
  int k = 0;
  return wait_until(
      [&] {
        for (const auto& [member, skus] : applied) {
          if (outcomes.contains(member)) continue;
          const auto r = client_for(k++).get_application(campaign_id, member);
          if (!r.ok() || r.response.state() == v1::APPLICATION_STATE_PENDING) return false;
          outcomes[member] = r.response;
        }
        return true;
      },
      limit);
}

OutcomeTally tally(const Outcomes& outcomes) {
  OutcomeTally t;
  for (const auto& [member, application] : outcomes) {
    EXPECT_EQ(application.proof().rfind("rank HMAC-SHA256 ", 0), 0U) << application.proof();
    if (application.state() == v1::APPLICATION_STATE_SELECTED) {
      EXPECT_TRUE(application.has_voucher()) << member;
      EXPECT_EQ(application.voucher().member_id(), member);
      ++t.won_per_sku[application.voucher().sku_id()];
      t.codes.insert(application.voucher().code());
    } else {
      EXPECT_EQ(application.state(), v1::APPLICATION_STATE_NOT_SELECTED) << member;
      EXPECT_FALSE(application.has_voucher()) << member;
    }
  }
  return t;
}

void expect_replayed(const CampaignSpec& spec, const LotterySeed& seed, const Applications& applied,
                     const Outcomes& outcomes) {
  std::vector<ApplicationEntry> entries;
  for (const auto& [member, skus] : applied) {
    ApplicationEntry e;
    e.member_id = member;
    for (const std::string& sku : skus) {
      for (std::uint32_t i = 0; i < spec.skus.size(); ++i) {
        if (spec.skus[i].id == sku) e.preferred.push_back(i);
      }
    }
    entries.push_back(std::move(e));
  }
  const Allocation expected = allocate(spec, seed, entries);
  const SkuMacKey key = hmac_key(seed);
  std::string scratch;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string& member = entries[i].member_id;
    const auto got = outcomes.find(member);
    if (got == outcomes.end()) {
      ADD_FAILURE() << member << " has no outcome";
      continue;
    }
    const std::uint32_t sku = expected.sku_of[i];
    if (sku == kNoSku) {
      EXPECT_EQ(got->second.state(), v1::APPLICATION_STATE_NOT_SELECTED) << member;
    } else {
      EXPECT_EQ(got->second.state(), v1::APPLICATION_STATE_SELECTED) << member;
      EXPECT_EQ(got->second.voucher().sku_id(), spec.skus[sku].id) << member;
    }
    EXPECT_EQ(got->second.proof(),
              "rank HMAC-SHA256 " + to_hex(apply_rank(key, spec.id, member, scratch)))
        << member;
  }
}

}  // namespace voucherd::testing
