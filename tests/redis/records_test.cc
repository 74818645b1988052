// records_test — a voucher record survives encoding and decoding exactly,
// whatever bytes its ids hold, and a value that is not a whole record is
// refused instead of guessed at.
#include "server/redis/records.h"

#include <gtest/gtest.h>

#include <cctype>

namespace voucherd::testing {
namespace {

VoucherPtr sample() {
  VoucherFields v;
  v.code = "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB";
  v.campaign_id = "gd";
  v.sku_id = "sku:12|a";  // separators inside ids are fine: fields are length-prefixed
  v.site_id = "site-3";
  v.member_id = "13:member";
  v.request_id = "";
  v.sku_kind = SkuKind::kHomestay;
  v.face_value_cents = 29800;
  v.issued_at_us = 1'718'676'000'123'456;
  v.expires_at_us = 1'750'212'000'123'456;
  v.state = VoucherState::kIssued;
  return VoucherRecord::make(v);
}

TEST(VoucherRecordEncoding, RoundTripsEveryField) {
  const VoucherPtr sampled = sample();
  const VoucherRecord& v = *sampled;
  const std::string value = redis::encode_voucher(v);
  EXPECT_EQ(value[0], '1');  // the state digit comes first, for scripts
  const VoucherPtr back = redis::decode_voucher(v.campaign_id(), v.code().view(), value);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->code(), v.code());
  EXPECT_EQ(back->campaign_id(), v.campaign_id());
  EXPECT_EQ(back->sku_id(), v.sku_id());
  EXPECT_EQ(back->site_id(), v.site_id());
  EXPECT_EQ(back->member_id(), v.member_id());
  EXPECT_EQ(back->request_id(), v.request_id());
  EXPECT_EQ(back->sku_kind(), v.sku_kind());
  EXPECT_EQ(back->face_value_cents(), v.face_value_cents());
  EXPECT_EQ(back->issued_at_us(), v.issued_at_us());
  EXPECT_EQ(back->expires_at_us(), v.expires_at_us());
  EXPECT_EQ(back->state(), VoucherState::kIssued);

  std::string redeemed = value;
  redeemed[0] = '2';
  EXPECT_EQ(redis::decode_voucher(v.campaign_id(), v.code().view(), redeemed)->state(),
            VoucherState::kRedeemed);
}

TEST(VoucherRecordEncoding, RefusesWhatIsNotAWholeRecord) {
  const std::string value = redis::encode_voucher(*sample());
  const std::string c = "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB";
  EXPECT_EQ(redis::decode_voucher("gd", c, ""), nullptr);
  EXPECT_EQ(redis::decode_voucher("gd", c, "9" + value.substr(1)), nullptr);  // bad state
  EXPECT_EQ(redis::decode_voucher("gd", c, value.substr(0, value.size() - 1)), nullptr);
  EXPECT_EQ(redis::decode_voucher("gd", c, value + "x"), nullptr);
  EXPECT_EQ(redis::decode_voucher("gd", c, "1999:abc"), nullptr);  // length beyond the end
  // A code key that is not one of ours: not in a code's display form (a
  // record keeps its code packed, and only that form packs).
  EXPECT_NE(redis::decode_voucher("gd", c, value), nullptr);
  std::string lower = c;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string with_nul = c;
  with_nul[3] = '\0';
  for (const std::string& key : {std::string(36, 'C'), std::string(35, 'C'), std::string("c"),
                                 lower, with_nul, c.substr(0, 34), c + "0", std::string()}) {
    EXPECT_EQ(redis::decode_voucher("gd", key, value), nullptr) << key;
  }
}

}  // namespace
}  // namespace voucherd::testing
