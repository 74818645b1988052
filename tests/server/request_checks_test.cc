// request_checks_test — proves server/grpc/request_checks.h, what each RPC
// checks of its request before the engine or the store see it: ids are
// refused naming the first field that breaks the id rules (optional ones may
// be empty), an application's preferences by their count, ids and repeats,
// codes by their length, batches by their size, page tokens
// unless voucherd made them; a CreateCampaign is refused only when its
// campaign is missing or does not convert. Every refusal is
// INVALID_ARGUMENT with a printable message, also when the words come from
// the proto conversion (the case the request-validation fuzzer found).
#include "server/grpc/request_checks.h"

#include <gtest/gtest.h>

#include <string>

#include "engine/campaign_validation.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd {
namespace {

namespace v1 = voucher::v1;

TEST(RequestChecks, ClaimIdsAreCheckedInOrderAndOptionalOnesMayBeEmpty) {
  v1::ClaimRequest claim;
  claim.set_campaign_id("gd-2024");
  claim.set_member_id("m-1");
  EXPECT_FALSE(check_request(claim).has_value());
  claim.set_sku_id(std::string(129, 's'));
  claim.set_member_id("m\n1");
  const auto refused = check_request(claim);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused->error_message(),
            "member_id contains a control character (byte 0x0a at offset 1); ids are printable "
            "text");
}

TEST(RequestChecks, AnApplicationNamesAtMostSixteenSkusEachOnce) {
  v1::ApplyRequest apply;
  apply.set_campaign_id("gd-2026");
  apply.set_member_id("m-1");
  EXPECT_EQ(check_request(apply)->error_message(), "request_id must not be empty");
  apply.set_request_id("r-1");
  EXPECT_FALSE(check_request(apply).has_value());  // no preference: any SKU
  for (int i = 0; i < 16; ++i) apply.add_preferred_sku_ids("sku-" + std::to_string(i));
  EXPECT_FALSE(check_request(apply).has_value());
  apply.add_preferred_sku_ids("sku-16");
  EXPECT_EQ(check_request(apply)->error_message(),
            "preferred_sku_ids holds 17 SKUs; at most 16 may be named");
  apply.clear_preferred_sku_ids();
  apply.add_preferred_sku_ids("spa");
  apply.add_preferred_sku_ids("room");
  apply.add_preferred_sku_ids("spa");
  EXPECT_EQ(check_request(apply)->error_message(),
            "preferred_sku_ids[2] names SKU \"spa\" again (preferred_sku_ids[0]): name each SKU "
            "once");
  apply.set_preferred_sku_ids(2, std::string(129, 's'));
  EXPECT_EQ(check_request(apply)->error_message(),
            "preferred_sku_ids[2] is 129 bytes; the limit is 128");

  v1::GetApplicationRequest lookup;
  lookup.set_campaign_id("gd-2026");
  EXPECT_EQ(check_request(lookup)->error_message(), "member_id must not be empty");
  lookup.set_member_id("m-1");
  EXPECT_FALSE(check_request(lookup).has_value());

  v1::ExportApplicationsRequest exported;
  EXPECT_EQ(check_request(exported)->error_message(), "campaign_id must not be empty");
  exported.set_campaign_id(std::string(129, 'g'));
  EXPECT_EQ(check_request(exported)->error_message(), "campaign_id is 129 bytes; the limit is 128");
  exported.set_campaign_id("gd-2026");
  EXPECT_FALSE(check_request(exported).has_value());
}

TEST(RequestChecks, CodesBatchesAndPagesHaveTheirBounds) {
  v1::GetVoucherRequest lookup;
  EXPECT_TRUE(check_request(lookup).has_value());
  lookup.set_code(std::string(65, 'A'));
  EXPECT_TRUE(check_request(lookup).has_value());
  lookup.set_code("AK00H-D8M2Z-M4CVM-2QCDM-R8TME-5K5QJ");
  EXPECT_FALSE(check_request(lookup).has_value());

  v1::ClaimBatchRequest batch;
  EXPECT_TRUE(check_request(batch).has_value());
  batch.add_claims();  // the batch is counted; each claim is checked on its own
  EXPECT_FALSE(check_request(batch).has_value());

  v1::ListCampaignsRequest list;
  list.set_page_size(5000);
  auto page = check_request(list);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->size, kListPageSizeMax);
  EXPECT_FALSE(page->after.has_value());
  list.set_page_token(page_token_of("gd-2024"));
  page = check_request(list);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->after, "gd-2024");
  list.set_page_token("c1.ZZ");
  EXPECT_FALSE(check_request(list).has_value());
  list.set_page_size(-1);
  EXPECT_EQ(check_request(list).error().error_message(), "page_size must not be negative");
}

TEST(RequestChecks, AListOfReplicasMayNameNoCampaign) {
  v1::ListReplicasRequest all;
  EXPECT_FALSE(check_request(all).has_value());
  v1::GetCampaignRequest one;
  EXPECT_TRUE(check_request(one).has_value());  // GetCampaign must name one
}

TEST(RequestChecks, ASettlementExportsSiteFilterFollowsTheIdRules) {
  v1::ExportRedemptionsRequest exp;
  exp.set_campaign_id("gd-2024");
  EXPECT_FALSE(check_request(exp).has_value());  // no filter: every site
  exp.set_site_id("site-017");
  EXPECT_FALSE(check_request(exp).has_value());
  exp.set_site_id(std::string("s\0x", 3));
  auto refused = check_request(exp);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused->error_message(),
            "site_id contains a control character (byte 0x00 at offset 1); ids are printable "
            "text");
  exp.set_site_id(std::string(129, 's'));
  refused = check_request(exp);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error_message().substr(0, 8), "site_id ");
}

// Found by fuzz/request_checks_fuzzer: the weights of a LOTTERY campaign
// name a SKU id holding control characters; the refusal quoted it raw.
TEST(RequestChecks, ACampaignRefusedByItsConversionHasAPrintableMessage) {
  v1::CreateCampaignRequest create;
  v1::Campaign& c = *create.mutable_campaign();
  c.set_id("lot-1");
  c.set_mode(v1::CAMPAIGN_MODE_LOTTERY);
  c.mutable_lottery()->set_win_probability(0.5);
  c.mutable_lottery()->add_sku_weights()->set_sku_id("\x0c\x0c");
  const auto refused = check_request(create);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error().error_message(),
            "campaign.lottery.sku_weights: \"\\x0c\\x0c\" is not a SKU of the campaign");
  EXPECT_EQ(control_character_at(refused.error().error_message()), std::string::npos);
}

}  // namespace
}  // namespace voucherd
