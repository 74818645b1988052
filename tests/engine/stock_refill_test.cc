// stock_refill_test — proves the engine's contract with a claim log that
// hands out stock in blocks (as the Redis log's leases do): an empty SKU that
// is not final answers STOCK_REFILLING (retry), never SOLD_OUT; units added
// later are claimable; once every SKU is final and empty the campaign is
// SOLD_OUT; presses that find no unit raise the demand signal (any SKU,
// and each SKU named); and take_units() hands unclaimed units back without going below
// zero.
#include <gtest/gtest.h>

#include "engine/claim_engine.h"
#include "engine/memory_claim_log.h"

namespace voucherd {
namespace {

// The memory log's storage, but stock arrives only when the test says so.
class ManualStockLog final : public ClaimLog {
 public:
  std::expected<void, std::string> open_campaign(const CampaignSpec&, CampaignStock& stock,
                                                 StoredDefinition /*stored*/) override {
    stock_ = &stock;
    return {};
  }
  void append_claim(ClaimLogWrite& write) override { memory_.append_claim(write); }
  void find_voucher(std::string_view campaign_id, std::string_view code,
                    VoucherLookup& lookup) override {
    memory_.find_voucher(campaign_id, code, lookup);
  }
  void redeem(std::string_view campaign_id, std::string_view code, const RedeemRequestView& request,
              VoucherRedemption& done) override {
    memory_.redeem(campaign_id, code, request, done);
  }
  void cancel(std::string_view campaign_id, std::string_view code, const CancelRequestView& request,
              VoucherCancellation& done) override {
    memory_.cancel(campaign_id, code, request, done);
  }
  void find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                            std::span<const std::string> known_codes,
                            MemberVouchersLookup& done) override {
    memory_.find_member_vouchers(campaign_id, member_id, known_codes, done);
  }
  std::expected<std::vector<VoucherPtr>, std::string> redeemed_vouchers(
      std::string_view campaign_id) override {
    return memory_.redeemed_vouchers(campaign_id);
  }
  std::expected<std::vector<std::int64_t>, std::string> expired_counts(const CampaignSpec& spec,
                                                                       UnixMicros now_us) override {
    return memory_.expired_counts(spec, now_us);
  }
  void append_draw(DrawLogWrite& write) override { memory_.append_draw(write); }
  std::expected<std::vector<DrawEntry>, std::string> draw_entries(
      const CampaignSpec& spec) override {
    return memory_.draw_entries(spec);
  }
  CampaignStock* stock_ = nullptr;

 private:
  MemoryClaimLog memory_;
};

struct Press final : ClaimOp {
  Outcome outcome = Outcome::kInternal;
  void on_claim_done(const ClaimResult& r) override { outcome = r.outcome; }
};

CampaignSpec two_skus() {
  CampaignSpec c;
  c.id = "leased-campaign";
  c.name = "Leased";
  c.mode = CampaignMode::kFirstCome;
  c.starts_at_us = 1;
  c.ends_at_us = INT64_C(4'000'000'000'000'000);
  c.sites.push_back(SiteSpec{"site-1", "Site", "Shaoguan", SkuKind::kScenic});
  c.skus.push_back(SkuSpec{"sku-a", "site-1", SkuKind::kScenic, "Day ticket", 6000, 3});
  c.skus.push_back(SkuSpec{"sku-b", "site-1", SkuKind::kScenic, "Night ticket", 8000, 2});
  return c;
}

Outcome press(ClaimEngine& engine, const std::string& member, std::string_view sku = {}) {
  Press p;
  p.campaign_id = "leased-campaign";
  p.member_id = member;
  p.sku_id = sku;
  engine.claim(p);
  return p.outcome;
}

TEST(StockRefill, EmptyButNotFinalIsRefillingThenSoldOutWhenFinal) {
  ManualStockLog log;
  FakeClock clock(1000);
  DeterministicRandom random(7);
  const std::vector<std::uint8_t> secret(32, 1);
  ClaimEngine engine(log, clock, random, secret);
  ASSERT_TRUE(engine.create_campaign(two_skus()).has_value());
  ASSERT_NE(log.stock_, nullptr);

  std::vector<std::uint32_t> named;
  EXPECT_FALSE(log.stock_->take_missed(named));  // no demand yet
  EXPECT_TRUE(named.empty());
  EXPECT_EQ(press(engine, "m-0"), Outcome::kStockRefilling);
  EXPECT_EQ(press(engine, "m-0", "sku-b"), Outcome::kStockRefilling);
  EXPECT_EQ(press(engine, "m-9", "sku-b"), Outcome::kStockRefilling);
  // The demand signal: a press for any SKU, and sku-b named (once).
  EXPECT_TRUE(log.stock_->take_missed(named));
  EXPECT_EQ(named, std::vector<std::uint32_t>{1});
  named.clear();
  EXPECT_FALSE(log.stock_->take_missed(named));  // cleared by the look
  EXPECT_TRUE(named.empty());

  log.stock_->add_units(0, 2);  // a lease of two units of sku-a
  EXPECT_EQ(press(engine, "m-1"), Outcome::kOk);
  EXPECT_EQ(press(engine, "m-2"), Outcome::kOk);
  EXPECT_EQ(press(engine, "m-3"), Outcome::kStockRefilling);
  EXPECT_EQ(press(engine, "m-1"), Outcome::kAlreadyClaimed);

  log.stock_->add_units(1, 1);
  log.stock_->set_final(0, true);
  EXPECT_EQ(press(engine, "m-3", "sku-a"), Outcome::kSkuSoldOut);
  EXPECT_EQ(press(engine, "m-3"), Outcome::kOk);              // takes the sku-b unit
  EXPECT_EQ(press(engine, "m-4"), Outcome::kStockRefilling);  // sku-b may still refill
  log.stock_->set_final(1, true);
  EXPECT_EQ(press(engine, "m-4"), Outcome::kSoldOut);

  auto stats = engine.campaign_stats("leased-campaign");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 3);
}

TEST(StockRefill, TakeUnitsHandsBackOnlyWhatIsThere) {
  ManualStockLog log;
  FakeClock clock(1000);
  DeterministicRandom random(7);
  const std::vector<std::uint8_t> secret(32, 1);
  ClaimEngine engine(log, clock, random, secret);
  ASSERT_TRUE(engine.create_campaign(two_skus()).has_value());
  log.stock_->add_units(0, 5);
  EXPECT_EQ(press(engine, "m-1", "sku-a"), Outcome::kOk);
  EXPECT_EQ(log.stock_->available(0), 4);
  EXPECT_EQ(log.stock_->take_units(0, 3), 3);
  EXPECT_EQ(log.stock_->take_units(0, 3), 1);
  EXPECT_EQ(log.stock_->take_units(0, 3), 0);
  EXPECT_EQ(log.stock_->available(0), 0);
  EXPECT_EQ(press(engine, "m-2", "sku-a"), Outcome::kStockRefilling);
}

}  // namespace
}  // namespace voucherd
