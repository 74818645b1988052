// How a voucher's record keeps its fields: ids inline or in a block of
// their own, the expiry worked out from the issue time, and the count of
// references kept in the record.
#include "engine/model.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace voucherd {
namespace {

TEST(ShortString, KeepsTextsOfEverySizeUpToTheLongestId) {
  for (std::size_t n : {0, 1, 14, 15, 16, 17, 64, 128, 1000}) {
    std::string text(n, 'x');
    for (std::size_t i = 0; i < n; ++i) text[i] = static_cast<char>('a' + i % 26);
    const ShortString kept(text);
    EXPECT_EQ(kept.view(), text) << n << " bytes";
  }
}

TEST(ShortString, CopiesAndMovesKeepTheTextAndOwnNoBlockTwice) {
  const std::string long_id(40, 'L');
  ShortString a(long_id);
  ShortString b(a);  // a copy has a block of its own
  EXPECT_EQ(b.view(), long_id);
  EXPECT_NE(a.view().data(), b.view().data());

  ShortString c(std::move(a));  // a move takes the block
  EXPECT_EQ(c.view(), long_id);
  EXPECT_EQ(a.view(), "");  // NOLINT(bugprone-use-after-move): moved-from is empty

  ShortString d("short");
  d = std::move(c);  // over an inline text
  EXPECT_EQ(d.view(), long_id);
  d = ShortString(std::string(20, 'n'));  // over a block: the old one is freed
  EXPECT_EQ(d.view(), std::string(20, 'n'));
  d = b;
  EXPECT_EQ(d.view(), long_id);
  const ShortString& same = d;
  d = same;  // to itself
  EXPECT_EQ(d.view(), long_id);
  d = ShortString("m-1");
  EXPECT_EQ(d.view(), "m-1");
}

TEST(VoucherExtras, KeepsARequestIdARedemptionBothOrNeither) {
  const RedemptionRecord desk{"site-001", 1'700'000'100'000'000, "desk-7"};
  const VoucherExtras none;
  EXPECT_EQ(none.request_id(), "");
  EXPECT_EQ(none.redemption(), nullptr);
  const VoucherExtras empty("", nullptr);
  EXPECT_EQ(empty.request_id(), "");
  EXPECT_EQ(empty.redemption(), nullptr);
  for (const std::string& id : {std::string("r"), std::string(128, 'q')}) {
    const VoucherExtras only_id(id, nullptr);
    EXPECT_EQ(only_id.request_id(), id);
    EXPECT_EQ(only_id.redemption(), nullptr);
    const VoucherExtras both(id, &desk);
    EXPECT_EQ(both.request_id(), id);
    ASSERT_NE(both.redemption(), nullptr);
    EXPECT_NE(both.redemption(), &desk) << "the redemption is copied";
    EXPECT_EQ(both.redemption()->request_id, "desk-7");
    // A copy has a block and a redemption of its own; a move takes them.
    VoucherExtras copy(both);
    EXPECT_EQ(copy.request_id(), id);
    ASSERT_NE(copy.redemption(), nullptr);
    EXPECT_NE(copy.redemption(), both.redemption());
    EXPECT_EQ(copy.redemption()->at_us, desk.at_us);
    const RedemptionRecord* taken = copy.redemption();
    VoucherExtras moved(std::move(copy));
    EXPECT_EQ(moved.redemption(), taken);
    EXPECT_EQ(copy.redemption(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
    moved = only_id;
    EXPECT_EQ(moved.redemption(), nullptr);
    EXPECT_EQ(moved.request_id(), id);
  }
  const VoucherExtras only_redemption("", &desk);
  EXPECT_EQ(only_redemption.request_id(), "");
  ASSERT_NE(only_redemption.redemption(), nullptr);
  EXPECT_EQ(only_redemption.redemption()->site_id, "site-001");
}

VoucherFields fields() {
  VoucherFields f;
  f.code = "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB";
  f.campaign_id = "gd-2024";
  f.sku_id = "sku-001";
  f.site_id = "site-001";
  f.member_id = "a-member-id-longer-than-fifteen-bytes";
  f.request_id = "req-1";
  f.sku_kind = SkuKind::kHotel;
  f.face_value_cents = 39'800;
  f.issued_at_us = 1'700'000'000'000'000;
  f.expires_at_us = f.issued_at_us + 30 * kMicrosPerDay;
  return f;
}

TEST(VoucherRecord, ARecordOfFieldsGivesBackEachField) {
  const VoucherPtr v = VoucherRecord::make(fields());
  EXPECT_EQ(v->code(), "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  EXPECT_EQ(v->campaign_id(), "gd-2024");
  EXPECT_EQ(v->sku_id(), "sku-001");
  EXPECT_EQ(v->site_id(), "site-001");
  EXPECT_EQ(v->member_id(), "a-member-id-longer-than-fifteen-bytes");
  EXPECT_EQ(v->request_id(), "req-1");
  EXPECT_EQ(v->sku_kind(), SkuKind::kHotel);
  EXPECT_EQ(v->face_value_cents(), 39'800);
  EXPECT_EQ(v->issued_at_us(), 1'700'000'000'000'000);
  EXPECT_EQ(v->expires_at_us(), 1'700'000'000'000'000 + 30 * kMicrosPerDay);
  EXPECT_EQ(v->state(), VoucherState::kIssued);
  EXPECT_EQ(v->redeemed_at_us(), 0);
  EXPECT_EQ(v->redeemed_site_id(), "");
}

TEST(VoucherRecord, TheCodeIsKeptPackedAndReadBackAsText) {
  const VoucherPtr v = VoucherRecord::make(fields());
  EXPECT_EQ(v->packed_code(), PackedCode::pack("X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB"));
  const CodeString code = v->code();
  const std::string_view text = code;
  EXPECT_EQ(text, "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  EXPECT_EQ(code.str(), "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  EXPECT_EQ(code, v->code());
}

TEST(VoucherRecord, AnyIssueAndExpiryTimesRoundTrip) {
  // A record read back may hold any pair of times; the expiry is kept as
  // its distance from the issue, modulo 2^64, so each comes back exactly.
  constexpr auto kMin = std::numeric_limits<UnixMicros>::min();
  constexpr auto kMax = std::numeric_limits<UnixMicros>::max();
  const std::pair<UnixMicros, UnixMicros> times[] = {{kMin, kMax}, {kMax, kMin}, {0, kMin},
                                                     {kMax, kMax}, {5, -5},      {-1, 0}};
  for (const auto& [issued, expires] : times) {
    VoucherFields f = fields();
    f.issued_at_us = issued;
    f.expires_at_us = expires;
    const VoucherPtr v = VoucherRecord::make(f);
    EXPECT_EQ(v->issued_at_us(), issued);
    EXPECT_EQ(v->expires_at_us(), expires);
  }
}

TEST(VoucherRecord, AnotherStateIsANewRecordAndTheOldOneStaysAsItWas) {
  const VoucherPtr issued = VoucherRecord::make(fields());
  const VoucherPtr cancelled = issued->with_state(VoucherState::kCancelled);
  EXPECT_NE(cancelled, issued);
  EXPECT_EQ(issued->state(), VoucherState::kIssued);
  EXPECT_EQ(cancelled->state(), VoucherState::kCancelled);
  EXPECT_EQ(cancelled->code(), issued->code());
  EXPECT_EQ(cancelled->member_id(), issued->member_id());
  EXPECT_EQ(cancelled->campaign_id(), issued->campaign_id());
  EXPECT_EQ(cancelled->expires_at_us(), issued->expires_at_us());

  const VoucherPtr redeemed = issued->redeemed("site-001", 1'700'000'100'000'000, "desk-7");
  EXPECT_EQ(redeemed->state(), VoucherState::kRedeemed);
  EXPECT_EQ(redeemed->redeemed_site_id(), "site-001");
  EXPECT_EQ(redeemed->redeemed_at_us(), 1'700'000'100'000'000);
  EXPECT_EQ(redeemed->redeem_request_id(), "desk-7");
  EXPECT_EQ(issued->redeemed_at_us(), 0);
  // A copy of a redeemed record keeps its redemption.
  const VoucherPtr again = redeemed->with_state(VoucherState::kRedeemed);
  EXPECT_EQ(again->redeem_request_id(), "desk-7");
  EXPECT_EQ(again->sku_id(), "sku-001");
  // The claim's request id stays beside the redemption.
  EXPECT_EQ(redeemed->request_id(), "req-1");
  EXPECT_EQ(again->request_id(), "req-1");
  EXPECT_EQ(cancelled->request_id(), "req-1");
}

TEST(VoucherRecord, ARecordOfACampaignsSkuPointsAtTheSharedSku) {
  const VoucherSku sku{"gd-2024", "sku-9", "site-9", SkuKind::kScenic, 5'000, kMicrosPerDay};
  const auto code = PackedCode::pack("X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  ASSERT_TRUE(code.has_value());
  const VoucherPtr v = VoucherRecord::make(&sku, *code, "m-1", "", 1'000);
  EXPECT_EQ(v->code(), "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");
  EXPECT_EQ(&v->sku_id(), &sku.sku_id);
  EXPECT_EQ(v->expires_at_us(), 1'000 + kMicrosPerDay);
  EXPECT_EQ(v->request_id(), "");
  const VoucherPtr cancelled = v->with_state(VoucherState::kCancelled);
  EXPECT_EQ(&cancelled->sku_id(), &sku.sku_id);
}

TEST(VoucherPtr, CopiesShareOneRecordUntilTheLastIsDropped) {
  VoucherPtr a = VoucherRecord::make(fields());
  const VoucherRecord* record = a.get();
  VoucherPtr b = a;
  EXPECT_EQ(b.get(), record);
  VoucherPtr c = std::move(a);
  EXPECT_EQ(a, nullptr);  // NOLINT(bugprone-use-after-move): moved-from is null
  EXPECT_EQ(c.get(), record);
  a = c;
  c.reset();
  EXPECT_FALSE(c);
  b = nullptr;
  EXPECT_TRUE(a);
  EXPECT_EQ(a->code(), "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");  // still alive: `a` holds it
  a = a;  // NOLINT(clang-diagnostic-self-assign-overloaded): to itself keeps it
  EXPECT_EQ(a.get(), record);
}

TEST(CompactVoucherPtr, HoldsItsRecordByNumberUntilTheLastReferenceGoes) {
  // The pool hands a thread back the slot it freed last, so a record's
  // slot reused by the next record made shows that it was freed then.
  std::thread([] {
    VoucherPtr v = VoucherRecord::make(fields());
    const VoucherRecord* record = v.get();
    CompactVoucherPtr kept(v);
    EXPECT_EQ(kept.get(), record);
    v.reset();
    EXPECT_EQ(kept.get()->code(), "X800B-M8QDH-FBE8T-8F5R0-VHVQ0-NXHGB");  // `kept` holds it
    VoucherPtr other = VoucherRecord::make(fields());
    EXPECT_NE(other.get(), record) << "a held record's slot was given again";
    other.reset();

    CompactVoucherPtr moved(std::move(kept));
    EXPECT_EQ(kept.get(), nullptr);  // NOLINT(bugprone-use-after-move): moved-from is null
    VoucherPtr shared = moved.share();
    EXPECT_EQ(shared.get(), record);
    moved = CompactVoucherPtr();  // drops its reference; `shared` still holds one
    EXPECT_EQ(shared->member_id(), fields().member_id);
    shared.reset();  // the last one: the record is freed
    EXPECT_EQ(VoucherRecord::make(fields()).get(), record) << "the freed slot is reused";
  }).join();
}

TEST(VoucherPtr, ThreadsCopyAndDropOneRecordSafely) {
  // Run under TSan and ASan (scripts/test.sh): a count that is not atomic, or
  // a free before the last reference, shows there.
  const VoucherPtr shared = VoucherRecord::make(fields());
  std::vector<std::thread> threads;
  std::vector<std::size_t> seen(4, 0);
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&shared, &seen, t] {
      for (int i = 0; i < 20'000; ++i) {
        VoucherPtr copy = shared;
        VoucherPtr moved = std::move(copy);
        seen[t] += moved->code().size();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (std::size_t n : seen) EXPECT_EQ(n, 20'000u * 35);
}

}  // namespace
}  // namespace voucherd
