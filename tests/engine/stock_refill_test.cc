// stock_refill_test — proves the engine's contract with a claim log that
// hands out stock in blocks (as the Redis log's leases do): a press that
// finds an empty SKU that is not final waits for units (it is neither told
// to retry nor SOLD_OUT); units added later wake it and it is served; a SKU
// turning final answers the presses waiting on it SOLD_OUT; once every SKU
// is final and empty the campaign is SOLD_OUT at once; a wait ends at the
// caller's deadline (STOCK_REFILLING) or at once when the store is lost
// (UNAVAILABLE); presses that find no unit raise the demand signal (any SKU,
// and each SKU named); and take_units() hands unclaimed units back without
// going below zero.
#include <gtest/gtest.h>

#include <deque>
#include <memory>

#include "engine/claim_engine.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/engine/forwarding_claim_log.h"

namespace voucherd {
namespace {

using testing::ForwardingClaimLog;
using testing::SpecBuilder;

struct Press final : ClaimOp {
  Outcome outcome = Outcome::kInternal;  // kInternal: not answered yet
  void on_claim_done(const ClaimResult& r) override { outcome = r.outcome; }
};

CampaignSpec two_skus() {
  return SpecBuilder("leased-campaign", "Leased")
      .site("site-1", "Shaoguan", SkuKind::kScenic, "Site")
      .sku("sku-a", 3, 6000, "Day ticket")
      .sku("sku-b", 2, 8000, "Night ticket");
}

// Presses that may wait: each lives as long as the test.
struct Crowd {
  std::vector<std::unique_ptr<Press>> presses;
  Press& press(ClaimEngine& engine, const std::string& member, std::string_view sku = {},
               UnixMicros deadline_us = 0) {
    presses.push_back(std::make_unique<Press>());
    Press& p = *presses.back();
    members.push_back(member);
    p.campaign_id = "leased-campaign";
    p.member_id = members.back();
    p.sku_id = sku;
    p.deadline_us = deadline_us;
    engine.claim(p);
    return p;
  }
  std::deque<std::string> members;  // stable addresses for the views
};

struct Fixture {
  // The memory log's storage, but stock arrives only when the test says so.
  ForwardingClaimLog log{ForwardingClaimLog::Appends::kForward, ForwardingClaimLog::Stock::kManual};
  FakeClock clock{1000};
  DeterministicRandom random{7};
  ClaimEngine engine{log, clock, random, std::vector<std::uint8_t>(32, 1)};
  Crowd crowd;
  Fixture() { EXPECT_TRUE(engine.create_campaign(two_skus()).has_value()); }
  Outcome press(const std::string& member, std::string_view sku = {}) {
    return crowd.press(engine, member, sku).outcome;
  }
};

TEST(StockRefill, EmptyButNotFinalWaitsForUnitsThenSoldOutWhenFinal) {
  Fixture f;
  CampaignStock& stock = *f.log.stock();
  std::vector<std::uint32_t> named;
  EXPECT_FALSE(stock.take_missed(named));  // no demand yet
  EXPECT_TRUE(named.empty());
  Press& early = f.crowd.press(f.engine, "m-0");
  Press& named_b = f.crowd.press(f.engine, "m-9", "sku-b");
  EXPECT_EQ(early.outcome, Outcome::kInternal);  // waiting, not bounced
  EXPECT_EQ(named_b.outcome, Outcome::kInternal);
  EXPECT_EQ(stock.waiting_claims(), 2u);
  // The demand signal: a press for any SKU, and sku-b named (once).
  EXPECT_TRUE(stock.take_missed(named));
  EXPECT_EQ(named, std::vector<std::uint32_t>{1});
  named.clear();
  EXPECT_FALSE(stock.take_missed(named));  // cleared by the look
  EXPECT_TRUE(named.empty());

  stock.add_units(0, 2);  // a lease of two units of sku-a wakes the waiters
  EXPECT_EQ(early.outcome, Outcome::kOk);
  EXPECT_EQ(named_b.outcome, Outcome::kInternal);  // sku-b: still waiting
  EXPECT_EQ(stock.waiting_claims(), 1u);
  EXPECT_EQ(f.press("m-1"), Outcome::kOk);  // the second unit
  Press& late = f.crowd.press(f.engine, "m-2");
  EXPECT_EQ(late.outcome, Outcome::kInternal);
  EXPECT_EQ(f.press("m-1"), Outcome::kAlreadyClaimed);

  stock.set_final(0, true);  // sku-a is gone for good; sku-b may still come
  EXPECT_EQ(late.outcome, Outcome::kInternal);
  EXPECT_EQ(f.press("m-3", "sku-a"), Outcome::kSkuSoldOut);
  stock.add_units(1, 1);  // one unit of sku-b: one of the two waiters gets it
  const int served = (late.outcome == Outcome::kOk) + (named_b.outcome == Outcome::kOk);
  EXPECT_EQ(served, 1);
  EXPECT_EQ(stock.waiting_claims(), 1u);
  stock.set_final(1, true);  // the other hears SOLD_OUT (or SKU_SOLD_OUT) now
  EXPECT_EQ(stock.waiting_claims(), 0u);
  EXPECT_TRUE(late.outcome == Outcome::kOk || late.outcome == Outcome::kSoldOut)
      << outcome_name(late.outcome);
  EXPECT_TRUE(named_b.outcome == Outcome::kOk || named_b.outcome == Outcome::kSkuSoldOut)
      << outcome_name(named_b.outcome);
  EXPECT_EQ(f.press("m-4"), Outcome::kSoldOut);  // everything final and empty: at once

  auto stats = f.engine.campaign_stats("leased-campaign");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 3);
}

TEST(StockRefill, AWaitEndsAtItsDeadlineOrAtOnceWhenTheStoreIsLost) {
  Fixture f;
  CampaignStock& stock = *f.log.stock();
  Press& patient = f.crowd.press(f.engine, "m-1");                              // no deadline
  Press& hurried = f.crowd.press(f.engine, "m-2", {}, f.clock.now_us() + 500);  // 0.5 ms
  EXPECT_EQ(stock.waiting_claims(), 2u);
  stock.settle_waits(true);  // nothing has ended yet
  EXPECT_EQ(hurried.outcome, Outcome::kInternal);
  f.clock.advance_us(600);
  stock.settle_waits(true);
  EXPECT_EQ(hurried.outcome, Outcome::kStockRefilling);  // its deadline came first
  EXPECT_EQ(patient.outcome, Outcome::kInternal);
  f.clock.advance_us(limits::kStockWaitUsMax);
  stock.settle_waits(true);
  EXPECT_EQ(patient.outcome, Outcome::kStockRefilling);  // the engine's bound on a wait

  Press& cut_off = f.crowd.press(f.engine, "m-3");
  EXPECT_EQ(cut_off.outcome, Outcome::kInternal);
  stock.settle_waits(false);  // the store is lost: no unit can come
  EXPECT_EQ(cut_off.outcome, Outcome::kLogUnavailable);
  EXPECT_EQ(stock.waiting_claims(), 0u);
  // A past deadline does not wait at all.
  EXPECT_EQ(f.crowd.press(f.engine, "m-4", {}, f.clock.now_us()).outcome, Outcome::kStockRefilling);
  // The member of an ended wait may press again and be served once units come.
  Press& again = f.crowd.press(f.engine, "m-3");
  stock.add_units(0, 1);
  EXPECT_EQ(again.outcome, Outcome::kOk);
}

TEST(StockRefill, TakeUnitsHandsBackOnlyWhatIsThere) {
  Fixture f;
  CampaignStock& stock = *f.log.stock();
  stock.add_units(0, 5);
  EXPECT_EQ(f.press("m-1", "sku-a"), Outcome::kOk);
  EXPECT_EQ(stock.available(0), 4);
  EXPECT_EQ(stock.take_units(0, 3), 3);
  EXPECT_EQ(stock.take_units(0, 3), 1);
  EXPECT_EQ(stock.take_units(0, 3), 0);
  EXPECT_EQ(stock.available(0), 0);
  Press& waiting = f.crowd.press(f.engine, "m-2", "sku-a");
  EXPECT_EQ(waiting.outcome, Outcome::kInternal);
  stock.settle_waits(false);
  EXPECT_EQ(waiting.outcome, Outcome::kLogUnavailable);
}

}  // namespace
}  // namespace voucherd
