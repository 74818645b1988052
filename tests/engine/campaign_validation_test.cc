// campaign_validation_test.cc — proves validate_and_normalize(): a valid spec
// passes and gets its defaults (per_member_limit 0 -> 1, voucher_valid_days
// 0 -> 30); every broken spec is rejected naming the offending `field`
// exactly (ids with control characters too); a rejected spec is left
// byte-for-byte unchanged; and id_problem() tells empty, over-long and
// control-character ids apart.
#include "engine/campaign_validation.h"

#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <string>

#include "engine/limits.h"
#include "engine/model.h"
#include "tests/support/engine/campaign_spec.h"

namespace voucherd {
namespace {

constexpr UnixMicros kStart = 1'700'000'000LL * kMicrosPerSecond;

CampaignSpec valid_spec() {
  return testing::SpecBuilder("gd-2024", "Guangdong winter giveaway")
      .window(kStart, kStart + 7 * kMicrosPerDay)
      .per_member_limit(0)
      .voucher_valid_days(0)
      .guangdong_sites_and_skus(100, 50, 0, 0);
}

TEST(CampaignValidationTest, ValidSpecPassesAndIsNormalized) {
  CampaignSpec spec = valid_spec();
  auto r = validate_and_normalize(spec);
  ASSERT_TRUE(r.has_value()) << r.error().field << ": " << r.error().message;
  EXPECT_EQ(spec.per_member_limit, 1);
  EXPECT_EQ(spec.voucher_valid_days, limits::kVoucherValidDaysDefault);
  EXPECT_EQ(spec.voucher_valid_days, 30);

  // Only the defaults changed.
  CampaignSpec expected = valid_spec();
  expected.per_member_limit = 1;
  expected.voucher_valid_days = 30;
  EXPECT_EQ(spec, expected);

  // Normalizing again is a no-op.
  auto again = validate_and_normalize(spec);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(spec, expected);
}

TEST(CampaignValidationTest, ExplicitValuesAreKept) {
  CampaignSpec spec = valid_spec();
  spec.per_member_limit = limits::kPerMemberLimitMax;
  spec.voucher_valid_days = limits::kVoucherValidDaysMax;
  ASSERT_TRUE(validate_and_normalize(spec).has_value());
  EXPECT_EQ(spec.per_member_limit, 100);
  EXPECT_EQ(spec.voucher_valid_days, 3650);
}

TEST(CampaignValidationTest, LimitsAreInclusive) {
  CampaignSpec spec = valid_spec();
  spec.id = std::string(limits::kIdBytesMax, 'c');
  spec.skus[0].stock = limits::kSkuStockMax;
  spec.skus[0].face_value_cents = limits::kFaceValueCentsMax;
  spec.skus.resize(limits::kSkusPerCampaignMax, spec.skus[1]);
  for (std::size_t i = 3; i < spec.skus.size(); ++i) spec.skus[i].id = "sku-x" + std::to_string(i);
  auto r = validate_and_normalize(spec);
  EXPECT_TRUE(r.has_value()) << r.error().field << ": " << r.error().message;
}

TEST(CampaignValidationTest, IdValidity) {
  EXPECT_FALSE(id_is_valid(""));
  EXPECT_TRUE(id_is_valid("a"));
  EXPECT_TRUE(id_is_valid(std::string(128, 'a')));
  EXPECT_FALSE(id_is_valid(std::string(129, 'a')));
  EXPECT_TRUE(id_is_valid("=HYPERLINK(\"http://x\",\"y\")"));  // printable text
  EXPECT_TRUE(id_is_valid("\u5e7f\u4e1c"));                    // UTF-8 text
}

TEST(CampaignValidationTest, IdsWithControlCharactersAreRefused) {
  for (const std::string& id : {std::string("a\nb"), std::string("a\0b", 3), std::string("\t"),
                                std::string("a\r"), std::string("a\x1f"), std::string("a\x7f")}) {
    EXPECT_EQ(id_problem(id), IdProblem::kControlCharacter) << id.size();
    EXPECT_FALSE(id_is_valid(id));
  }
  EXPECT_EQ(id_problem(""), IdProblem::kEmpty);
  // Length is checked first, so an over-long id is not read further.
  EXPECT_EQ(id_problem(std::string(129, '\n')), IdProblem::kTooLong);
  EXPECT_EQ(id_problem_text("member_id", "ab\ncd", IdProblem::kControlCharacter),
            "member_id contains a control character (byte 0x0a at offset 2); ids are printable "
            "text");
  EXPECT_EQ(id_problem_text("sku_id", std::string(300, 's'), IdProblem::kTooLong),
            "sku_id is 300 bytes; the limit is 128");
}

struct BrokenCase {
  const char* name;
  std::function<void(CampaignSpec&)> breaker;
  std::string field;
};

void PrintTo(const BrokenCase& c, std::ostream* os) { *os << c.name; }

class CampaignValidationRejectTest : public ::testing::TestWithParam<BrokenCase> {};

TEST_P(CampaignValidationRejectTest, RejectedWithFieldAndLeftUnchanged) {
  const BrokenCase& c = GetParam();
  CampaignSpec spec = valid_spec();  // per_member_limit and valid_days still 0
  c.breaker(spec);
  const CampaignSpec before = spec;
  auto r = validate_and_normalize(spec);
  ASSERT_FALSE(r.has_value()) << c.name << " was accepted";
  EXPECT_EQ(r.error().field, c.field) << r.error().message;
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_EQ(spec, before) << "a rejected spec must not be normalized";
}

std::vector<BrokenCase> broken_cases() {
  return {
      {"EmptyId", [](CampaignSpec& s) { s.id.clear(); }, "campaign.id"},
      {"IdOf129Bytes", [](CampaignSpec& s) { s.id = std::string(129, 'x'); }, "campaign.id"},
      {"IdWithNewline", [](CampaignSpec& s) { s.id = "gd\n2024"; }, "campaign.id"},
      {"SiteIdWithTab",
       [](CampaignSpec& s) {
         s.sites[0].id = "site\t1";
         for (SkuSpec& sku : s.skus) sku.site_id = s.sites[0].id;
       },
       "campaign.sites[0].id"},
      {"SkuIdWithNul", [](CampaignSpec& s) { s.skus[0].id = std::string("sku\0", 4); },
       "campaign.skus[0].id"},
      {"LongName", [](CampaignSpec& s) { s.name = std::string(257, 'n'); }, "campaign.name"},
      {"UnspecifiedMode", [](CampaignSpec& s) { s.mode = CampaignMode::kUnspecified; },
       "campaign.mode"},
      {"StartsAtUnset", [](CampaignSpec& s) { s.starts_at_us = 0; }, "campaign.starts_at"},
      {"EndsAtEqualsStartsAt", [](CampaignSpec& s) { s.ends_at_us = s.starts_at_us; },
       "campaign.ends_at"},
      {"EndsAtBeforeStartsAt", [](CampaignSpec& s) { s.ends_at_us = s.starts_at_us - 1; },
       "campaign.ends_at"},
      {"PerMemberLimit101", [](CampaignSpec& s) { s.per_member_limit = 101; },
       "campaign.per_member_limit"},
      {"PerMemberLimitNegative", [](CampaignSpec& s) { s.per_member_limit = -1; },
       "campaign.per_member_limit"},
      {"ValidDaysTooMany", [](CampaignSpec& s) { s.voucher_valid_days = 3651; },
       "campaign.voucher_valid_days"},
      {"ValidSecondsNegative", [](CampaignSpec& s) { s.voucher_valid_seconds = -5; },
       "campaign.voucher_valid_seconds"},
      {"NoSites",
       [](CampaignSpec& s) {
         s.sites.clear();
         s.skus.clear();
       },
       "campaign.sites"},
      {"NoSkus", [](CampaignSpec& s) { s.skus.clear(); }, "campaign.skus"},
      {"DuplicateSiteId", [](CampaignSpec& s) { s.sites[1].id = s.sites[0].id; },
       "campaign.sites[1].id"},
      {"EmptySiteId", [](CampaignSpec& s) { s.sites[1].id.clear(); }, "campaign.sites[1].id"},
      {"DuplicateSkuId", [](CampaignSpec& s) { s.skus[2].id = s.skus[0].id; },
       "campaign.skus[2].id"},
      {"SkuOfUnknownSite", [](CampaignSpec& s) { s.skus[1].site_id = "site-999"; },
       "campaign.skus[1].site_id"},
      {"SkuKindUnspecified", [](CampaignSpec& s) { s.skus[0].kind = SkuKind::kUnspecified; },
       "campaign.skus[0].kind"},
      {"NegativeStock", [](CampaignSpec& s) { s.skus[1].stock = -1; }, "campaign.skus[1].stock"},
      {"StockAboveMax", [](CampaignSpec& s) { s.skus[0].stock = limits::kSkuStockMax + 1; },
       "campaign.skus[0].stock"},
      {"NegativeFaceValue", [](CampaignSpec& s) { s.skus[2].face_value_cents = -1; },
       "campaign.skus[2].face_value_cents"},
      {"AllocationAtOnAFirstComeCampaign",
       [](CampaignSpec& s) { s.allocation_at_us = s.ends_at_us; }, "campaign.allocation_at"},
      {"ApplyThenDrawWithoutAllocationAt",
       [](CampaignSpec& s) { s.mode = CampaignMode::kApplyThenDraw; }, "campaign.allocation_at"},
      {"AllocationBeforeTheWindowEnds",
       [](CampaignSpec& s) {
         s.mode = CampaignMode::kApplyThenDraw;
         s.allocation_at_us = s.ends_at_us - 1;
       },
       "campaign.allocation_at"},
      {"ApplyThenDrawWithTwoPacksAMember",
       [](CampaignSpec& s) {
         s.mode = CampaignMode::kApplyThenDraw;
         s.allocation_at_us = s.ends_at_us;
         s.per_member_limit = 2;
       },
       "campaign.per_member_limit"},
      {"ApplyThenDrawWithLotteryRules",
       [](CampaignSpec& s) {
         s.mode = CampaignMode::kApplyThenDraw;
         s.allocation_at_us = s.ends_at_us;
         s.lottery.win_probability = 0.5;
       },
       "campaign.lottery"},
      {"TooManySkus",
       [](CampaignSpec& s) {
         s.skus.resize(limits::kSkusPerCampaignMax + 1, s.skus[0]);
         for (std::size_t i = 0; i < s.skus.size(); ++i) s.skus[i].id = "sku-" + std::to_string(i);
       },
       "campaign.skus"},
  };
}

INSTANTIATE_TEST_SUITE_P(BrokenSpecs, CampaignValidationRejectTest,
                         ::testing::ValuesIn(broken_cases()),
                         [](const ::testing::TestParamInfo<BrokenCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(CampaignValidationTest, AnApplyThenDrawCampaignIsAllocatedAtOrAfterItsEnd) {
  CampaignSpec spec = valid_spec();
  spec.mode = CampaignMode::kApplyThenDraw;
  spec.allocation_at_us = spec.ends_at_us;  // at the end itself
  ASSERT_TRUE(validate_and_normalize(spec).has_value());
  EXPECT_EQ(spec.per_member_limit, 1);
  EXPECT_EQ(spec.allocation_at_us, spec.ends_at_us);
  spec.allocation_at_us = spec.ends_at_us + 2 * 3600 * kMicrosPerSecond;
  EXPECT_TRUE(validate_and_normalize(spec).has_value());
}

TEST(CampaignValidationTest, MessagesNameTheCampaignsMode) {
  CampaignSpec spec = valid_spec();
  spec.mode = CampaignMode::kApplyThenDraw;
  spec.allocation_at_us = spec.ends_at_us;
  spec.lottery.win_probability = 0.5;
  auto r = validate_and_normalize(spec);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "campaign.lottery is for CAMPAIGN_MODE_LOTTERY campaigns; this one is "
            "CAMPAIGN_MODE_APPLY_THEN_DRAW");
  CampaignSpec lottery = valid_spec();
  lottery.lottery.win_probability = 0.5;
  lottery.mode = CampaignMode::kLottery;
  lottery.allocation_at_us = lottery.ends_at_us;
  r = validate_and_normalize(lottery);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().field, "campaign.allocation_at");
  EXPECT_EQ(r.error().message,
            "campaign.allocation_at is for CAMPAIGN_MODE_APPLY_THEN_DRAW campaigns; this one is "
            "CAMPAIGN_MODE_LOTTERY");
}

TEST(CampaignValidationTest, TooManySkusIs1025) {
  CampaignSpec spec = valid_spec();
  spec.skus.resize(1025, spec.skus[0]);
  for (std::size_t i = 0; i < spec.skus.size(); ++i) spec.skus[i].id = "sku-" + std::to_string(i);
  const CampaignSpec before = spec;
  auto r = validate_and_normalize(spec);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().field, "campaign.skus");
  EXPECT_EQ(spec, before);

  spec.skus.resize(1024);
  EXPECT_TRUE(validate_and_normalize(spec).has_value());
}

}  // namespace
}  // namespace voucherd
