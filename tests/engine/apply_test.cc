// apply_test — the rules of APPLY_THEN_DRAW campaigns (engine/apply.h): the
// rank is the HMAC the docs say, the allocation depends on the set of
// applications only, gives out exactly the stock, honours preferences in
// rank order, and the audit passes a true allocation and reports a swapped
// outcome, a dropped application and a changed seed byte.
#include "engine/apply.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace voucherd {
namespace {

LotterySeed test_seed(std::uint8_t first = 7) {
  LotterySeed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(first + 13 * i);
  return seed;
}

CampaignSpec spec_with(std::vector<std::int64_t> stock) {
  CampaignSpec spec;
  spec.id = "gd-apply";
  for (std::size_t i = 0; i < stock.size(); ++i) {
    spec.skus.push_back({"sku-" + std::string(1, static_cast<char>('a' + i)), "site-1",
                         SkuKind::kHotel, "Room", 10'000, stock[i]});
  }
  return spec;
}

std::vector<ApplicationEntry> applicants(int n, const std::string& prefix = "member-") {
  std::vector<ApplicationEntry> out;
  for (int i = 0; i < n; ++i) out.push_back({prefix + std::to_string(i), {}, 1'000 + i});
  return out;
}

// member -> SKU index (kNoSku: not selected)
std::map<std::string, std::uint32_t> outcome_by_member(std::span<const ApplicationEntry> apps,
                                                       const Allocation& a) {
  std::map<std::string, std::uint32_t> out;
  for (std::size_t i = 0; i < apps.size(); ++i) out[apps[i].member_id] = a.sku_of[i];
  return out;
}

std::vector<ApplicationOutcome> published(std::span<const ApplicationEntry> apps,
                                          const Allocation& a) {
  std::vector<ApplicationOutcome> out;
  for (std::size_t i = 0; i < apps.size(); ++i) out.push_back({apps[i], a.sku_of[i]});
  return out;
}

TEST(ApplyRankTest, IsTheHmacOfTheDomainCampaignAndMemberEachLengthPrefixed) {
  const LotterySeed seed = test_seed();
  // Framed by hand: "voucherd/apply/v1", then 4-byte big-endian lengths.
  std::string msg = "voucherd/apply/v1";
  msg += std::string("\0\0\0\x08", 4) + "gd-apply";
  msg += std::string("\0\0\0\x0b", 4) + "member-0042";
  std::array<std::uint8_t, 32> expected{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), seed.data(), static_cast<int>(seed.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), expected.data(), &length);
  ASSERT_EQ(length, 32u);
  std::string scratch;
  EXPECT_EQ(apply_rank(hmac_key(seed), "gd-apply", "member-0042", scratch), expected);
  // Field boundaries count: ("gd-applym", "ember-0042") is another message.
  EXPECT_NE(apply_rank(hmac_key(seed), "gd-applym", "ember-0042", scratch), expected);
}

TEST(AllocateTest, DependsOnTheSetOfApplicationsNotTheirOrder) {
  const CampaignSpec spec = spec_with({40, 25, 10});
  std::vector<ApplicationEntry> apps = applicants(300);
  std::mt19937 rng(5);
  for (auto& a : apps) {
    // Up to three preferences, some none.
    const int k = static_cast<int>(rng() % 4);
    for (int j = 0; j < k; ++j) a.preferred.push_back(static_cast<std::uint32_t>(rng() % 3));
  }
  const Allocation first = allocate(spec, test_seed(), apps);
  std::vector<ApplicationEntry> reversed(apps.rbegin(), apps.rend());
  std::vector<ApplicationEntry> shuffled = apps;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (auto& a : shuffled) a.applied_at_us += 777;  // when they came does not matter either
  const auto expected = outcome_by_member(apps, first);
  EXPECT_EQ(outcome_by_member(reversed, allocate(spec, test_seed(), reversed)), expected);
  EXPECT_EQ(outcome_by_member(shuffled, allocate(spec, test_seed(), shuffled)), expected);
  // Another seed gives another allocation.
  EXPECT_NE(outcome_by_member(apps, allocate(spec, test_seed(8), apps)), expected);
}

TEST(AllocateTest, MoreApplicantsThanStockGetExactlyTheStock) {
  const CampaignSpec spec = spec_with({300, 150, 50});
  std::vector<ApplicationEntry> apps = applicants(3'000);
  for (std::size_t i = 0; i < apps.size(); i += 3) apps[i].preferred = {2, 0};
  const Allocation a = allocate(spec, test_seed(), apps);
  EXPECT_EQ(a.selected, 500);
  std::vector<std::int64_t> per_sku(3, 0);
  for (std::uint32_t sku : a.sku_of) {
    if (sku != kNoSku) ++per_sku[sku];
  }
  EXPECT_EQ(per_sku, (std::vector<std::int64_t>{300, 150, 50}));
  // Passed over while stock was left: only applicants who named SKUs (all
  // of theirs gone by their turn); one who named none takes any.
  std::size_t last = 0;
  for (std::size_t p = 0; p < a.order.size(); ++p) {
    if (a.sku_of[a.order[p]] != kNoSku) last = p;
  }
  int passed_over = 0;
  for (std::size_t p = 0; p < last; ++p) {
    const std::uint32_t i = a.order[p];
    if (a.sku_of[i] != kNoSku) continue;
    ++passed_over;
    EXPECT_EQ(apps[i].preferred, (std::vector<std::uint32_t>{2, 0})) << apps[i].member_id;
  }
  EXPECT_GT(passed_over, 0) << "sku-a and sku-c ran out before sku-b";
}

TEST(AllocateTest, FewerApplicantsThanStockAreAllSelected) {
  const CampaignSpec spec = spec_with({300, 150, 50});
  std::vector<ApplicationEntry> apps = applicants(300);
  for (std::size_t i = 0; i < apps.size(); i += 2) apps[i].preferred = {2, 1};
  const Allocation a = allocate(spec, test_seed(), apps);
  EXPECT_EQ(a.selected, 300);
  for (std::size_t i = 0; i < apps.size(); ++i) {
    ASSERT_NE(a.sku_of[i], kNoSku) << apps[i].member_id;
    if (!apps[i].preferred.empty()) {
      EXPECT_NE(a.sku_of[i], 0u) << "only SKUs they named";
    }
  }
}

TEST(AllocateTest, PreferencesAreHonouredInRankOrderACaseByHand) {
  // sku-a has 1 unit, sku-b 2, sku-c 1. Five applicants:
  //   p0, p1, p2 name (a, b); p3 names (c); p4 names (a).
  // In rank order, whoever of p0..p2 and p4 comes first among those naming
  // a takes it; b goes to the next two of p0..p2; c to p3; p4 gets a only
  // when it ranks before p0, p1 and p2.
  const CampaignSpec spec = spec_with({1, 2, 1});
  std::vector<ApplicationEntry> apps = {
      {"p0", {0, 1}, 1}, {"p1", {0, 1}, 2}, {"p2", {0, 1}, 3}, {"p3", {2}, 4}, {"p4", {0}, 5}};
  const Allocation a = allocate(spec, test_seed(), apps);
  std::vector<std::string> order;
  for (std::uint32_t i : a.order) order.push_back(apps[i].member_id);
  // Walk the rules by hand over the order the seed gives.
  std::map<std::string, std::uint32_t> expected;
  std::vector<std::int64_t> left = {1, 2, 1};
  for (const std::string& m : order) {
    std::vector<std::uint32_t> wants = m == "p3"   ? std::vector<std::uint32_t>{2}
                                       : m == "p4" ? std::vector<std::uint32_t>{0}
                                                   : std::vector<std::uint32_t>{0, 1};
    expected[m] = kNoSku;
    for (std::uint32_t s : wants) {
      if (left[s] > 0) {
        --left[s];
        expected[m] = s;
        break;
      }
    }
  }
  EXPECT_EQ(outcome_by_member(apps, a), expected);
  EXPECT_EQ(a.sku_of[3], 2u) << "p3 alone names c";
  EXPECT_EQ(a.selected, 4) << "all four units go: a, b, b, c";
  // p4 is selected exactly when it ranks before p0, p1 and p2.
  const auto p4_at = std::find(order.begin(), order.end(), "p4") - order.begin();
  bool p4_first_of_a = true;
  for (const char* m : {"p0", "p1", "p2"}) {
    if (std::find(order.begin(), order.end(), m) - order.begin() < p4_at) p4_first_of_a = false;
  }
  EXPECT_EQ(a.sku_of[4] == 0u, p4_first_of_a);
  EXPECT_EQ(a.sku_of[4] == kNoSku, !p4_first_of_a);
}

TEST(AllocateTest, AnApplicantWhoNamedNoneGetsASkuWithStockLeft) {
  const CampaignSpec spec = spec_with({0, 5, 0, 3});
  const std::vector<ApplicationEntry> apps = applicants(20);
  const Allocation a = allocate(spec, test_seed(), apps);
  EXPECT_EQ(a.selected, 8);
  for (std::uint32_t sku : a.sku_of) EXPECT_TRUE(sku == kNoSku || sku == 1 || sku == 3) << sku;
}

TEST(AllocateTest, ApplicantsWhoNamedNoneAreSpreadByTheStockLeftChiSquare) {
  // Stock far above the applicants: the shares left stay 0.1, 0.3 and 0.6
  // to within 1%, so the picks must follow them.
  const CampaignSpec spec = spec_with({1'000'000, 3'000'000, 6'000'000});
  const std::vector<ApplicationEntry> apps = applicants(60'000);
  const Allocation a = allocate(spec, test_seed(3), apps);
  ASSERT_EQ(a.selected, 60'000);
  std::vector<double> observed(3, 0);
  for (std::uint32_t sku : a.sku_of) {
    ASSERT_LT(sku, 3u);
    ++observed[sku];
  }
  const double shares[] = {0.1, 0.3, 0.6};
  double chi = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const double expected = shares[i] * 60'000;
    chi += (observed[i] - expected) * (observed[i] - expected) / expected;
  }
  // 2 degrees of freedom: 13.82 is the 0.001 critical value.
  EXPECT_LT(chi, 13.82) << observed[0] << " " << observed[1] << " " << observed[2];
}

class AuditAllocationTest : public ::testing::Test {
 protected:
  AuditAllocationTest() : spec_(spec_with({3, 2})), apps_(applicants(12)) {
    for (std::size_t i = 0; i < apps_.size(); i += 2) apps_[i].preferred = {1};
    outcomes_ = published(apps_, allocate(spec_, seed_, apps_));
  }
  AllocationAudit audit(std::span<const ApplicationOutcome> outcomes, const LotterySeed& seed,
                        std::optional<std::int64_t> count = 12) {
    return audit_allocation(spec_, seed, seed_commitment(seed_), outcomes, count);
  }

  LotterySeed seed_ = test_seed();
  CampaignSpec spec_;
  std::vector<ApplicationEntry> apps_;
  std::vector<ApplicationOutcome> outcomes_;
};

TEST_F(AuditAllocationTest, ATrueAllocationVerifies) {
  const AllocationAudit r = audit(outcomes_, seed_);
  EXPECT_TRUE(r.commitment_matches);
  EXPECT_EQ(r.applications, 12);
  EXPECT_EQ(r.selected, 5);
  EXPECT_TRUE(r.problems.empty()) << r.problems.front().what;
}

TEST_F(AuditAllocationTest, ASwappedOutcomeIsReportedOnBothLines) {
  std::size_t won = 0;
  while (outcomes_[won].sku == kNoSku) ++won;
  std::size_t lost = 0;
  while (outcomes_[lost].sku != kNoSku) ++lost;
  std::swap(outcomes_[won].sku, outcomes_[lost].sku);
  const AllocationAudit r = audit(outcomes_, seed_);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].index, std::min(won, lost));
  EXPECT_EQ(r.problems[1].index, std::max(won, lost));
  EXPECT_NE(r.problems[0].what.find("the allocation gives"), std::string::npos)
      << r.problems[0].what;
}

TEST_F(AuditAllocationTest, ADroppedApplicationIsReported) {
  // A selected applicant's line is dropped: someone else gets the unit in
  // the replay, and the count differs from the published one.
  std::size_t won = 0;
  while (outcomes_[won].sku == kNoSku) ++won;
  outcomes_.erase(outcomes_.begin() + static_cast<std::ptrdiff_t>(won));
  const AllocationAudit r = audit(outcomes_, seed_);
  ASSERT_GE(r.problems.size(), 2u);
  EXPECT_EQ(r.problems.back().index, outcomes_.size());
  EXPECT_EQ(r.problems.back().what, "12 applications were published, and the export has 11");
  // A not-selected applicant's line dropped: the count alone tells.
  std::vector<ApplicationOutcome> others = published(apps_, allocate(spec_, seed_, apps_));
  std::size_t lost = 0;
  while (others[lost].sku != kNoSku) ++lost;
  others.erase(others.begin() + static_cast<std::ptrdiff_t>(lost));
  const AllocationAudit by_count = audit(others, seed_);
  ASSERT_EQ(by_count.problems.size(), 1u);
  EXPECT_EQ(by_count.problems[0].index, others.size());
}

TEST_F(AuditAllocationTest, AChangedSeedByteFailsTheCommitmentAndTheOutcomes) {
  LotterySeed changed = seed_;
  changed[17] ^= 0x01;
  const AllocationAudit r = audit(outcomes_, changed);
  EXPECT_FALSE(r.commitment_matches);
  EXPECT_FALSE(r.problems.empty()) << "another seed ranks the applicants otherwise";
}

TEST_F(AuditAllocationTest, LinesThatAreNotApplicationsAreReportedNotReplayed) {
  outcomes_.push_back(outcomes_[3]);                    // a member twice
  outcomes_.push_back({{"stranger", {9}, 1}, kNoSku});  // a SKU the campaign lacks
  const AllocationAudit r = audit(outcomes_, seed_, 14);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].index, 12u);
  EXPECT_EQ(r.problems[0].what, "member \"member-3\" applies a second time");
  EXPECT_EQ(r.problems[1].index, 13u);
  EXPECT_EQ(r.problems[1].what,
            "member \"stranger\" names SKU index 9, and the campaign has 2 SKUs");
}

TEST_F(AuditAllocationTest, AnOutcomeNamingNoSkuOfTheCampaignIsReportedAlone) {
  // The application is valid and took its unit: the replay keeps it, so
  // nobody else's outcome is reported.
  std::size_t won = 0;
  while (outcomes_[won].sku == kNoSku) ++won;
  outcomes_[won].sku = 9;
  const AllocationAudit r = audit(outcomes_, seed_);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0].index, won);
  EXPECT_EQ(r.problems[0].what, "member \"" + outcomes_[won].application.member_id +
                                    "\" got SKU index 9, and the campaign has 2 SKUs");
}

}  // namespace
}  // namespace voucherd
