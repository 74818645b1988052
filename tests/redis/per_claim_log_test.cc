// per_claim_log_test — the benchmark baseline (one Lua call per claim) on a
// real redis-server records vouchers, decides repeats in Redis, finds codes,
// and never issues beyond the stock; a campaign it cannot open is refused
// for what went wrong (Redis down: UNAVAILABLE; a LOTTERY: not served), not
// as "exists".
#include "bench/baseline/per_claim_log.h"

#include <gtest/gtest.h>

#include <future>
#include <unordered_set>

#include "engine/claim_engine.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/redis_server.h"

namespace voucherd::testing {
namespace {

struct WaitedClaim final : ClaimOp {
  std::promise<ClaimResult> done;
  void on_claim_done(const ClaimResult& r) override { done.set_value(r); }
};

struct WaitedLookup final : VoucherLookupOp {
  std::promise<Outcome> done;
  void on_lookup_done(Outcome o, VoucherPtr, VoucherState) override { done.set_value(o); }
};

CampaignSpec campaign(std::int64_t stock) {
  return SpecBuilder("baseline", "Baseline test")
      .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Hot spring")
      .sku("sku-a", stock, 19800, "Two tickets");
}

ClaimResult claim(ClaimEngine& engine, const std::string& member) {
  WaitedClaim op;
  op.campaign_id = "baseline";
  op.member_id = member;
  auto f = op.done.get_future();
  engine.claim(op);
  return f.get();
}

TEST(PerClaimRedisLog, OneScriptCallPerClaimRecordsExactlyTheStock) {
  TempDir dir;
  RedisServer redis_server(dir);
  redis::PerClaimLogOptions options;
  options.endpoint = *redis::parse_url(redis_server.url(), nullptr);
  options.connections = 4;
  redis::PerClaimRedisLog log(options);
  log.start();
  SystemClock clock;
  SecureRandom random;
  ClaimEngine engine(log, clock, random, std::vector<std::uint8_t>(32, 7));
  ASSERT_TRUE(engine.create_campaign(campaign(30)).has_value());

  std::unordered_set<std::string> codes;
  int sold_out = 0;
  for (int m = 0; m < 40; ++m) {
    const ClaimResult r = claim(engine, "m-" + std::to_string(m));
    if (r.outcome == Outcome::kOk) codes.insert(std::string(r.voucher->code()));
    if (r.outcome == Outcome::kSoldOut) ++sold_out;
  }
  EXPECT_EQ(codes.size(), 30u);
  EXPECT_EQ(sold_out, 10);
  EXPECT_EQ(redis_server.cli({"HGET", "vdb:{baseline}:issued", "sku-a"}), "30");
  EXPECT_EQ(redis_server.cli({"HGET", "vdb:{baseline}:stock", "sku-a"}), "0");
  EXPECT_EQ(redis_server.cli({"HLEN", "vdb:{baseline}:members"}), "30");

  const std::string code = *codes.begin();
  EXPECT_EQ(redis_server.cli({"GETRANGE", "vdb:{baseline}:v:" + code, "0", "0"}), "1");  // ISSUED
  WaitedLookup lookup;
  lookup.code = code;
  auto found = lookup.done.get_future();
  engine.get_voucher(lookup);
  EXPECT_EQ(found.get(), Outcome::kOk);
  log.stop();
}

TEST(PerClaimRedisLog, ACampaignItCannotOpenIsRefusedForWhatWentWrong) {
  TempDir dir;
  redis::PerClaimLogOptions options;
  // Nothing listens here: the server was started and stopped.
  {
    RedisServer gone(dir);
    options.endpoint = *redis::parse_url(gone.url(), nullptr);
  }
  options.connections = 1;
  options.io_timeout = std::chrono::milliseconds(500);
  redis::PerClaimRedisLog log(options);
  SystemClock clock;
  SecureRandom random;
  ClaimEngine engine(log, clock, random, std::vector<std::uint8_t>(32, 7));

  auto down = engine.create_campaign(campaign(30));
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().outcome, Outcome::kLogUnavailable) << down.error().field.message;
  EXPECT_NE(down.error().field.message.find("redis"), std::string::npos)
      << down.error().field.message;

  auto lottery = engine.create_campaign(SpecBuilder("baseline-lottery", "Lottery")
                                            .lottery(0.5)
                                            .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Spa")
                                            .sku("sku-a", 5, 19800, "Two tickets"));
  ASSERT_FALSE(lottery.has_value());
  EXPECT_EQ(lottery.error().outcome, Outcome::kWrongMode);
  EXPECT_NE(lottery.error().field.message.find("LOTTERY"), std::string::npos)
      << lottery.error().field.message;
  auto apply = engine.create_campaign(SpecBuilder("baseline-apply", "Apply")
                                          .apply_then_draw(kAlwaysOpenEndUs)
                                          .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Spa")
                                          .sku("sku-a", 5, 19800, "Two tickets"));
  ASSERT_FALSE(apply.has_value());
  EXPECT_EQ(apply.error().outcome, Outcome::kWrongMode);
  EXPECT_NE(apply.error().field.message.find("CAMPAIGN_MODE_APPLY_THEN_DRAW"), std::string::npos)
      << apply.error().field.message;
  EXPECT_EQ(engine.find_campaign("baseline"), nullptr);
  EXPECT_EQ(engine.find_campaign("baseline-lottery"), nullptr);
  EXPECT_EQ(engine.find_campaign("baseline-apply"), nullptr);
}

}  // namespace
}  // namespace voucherd::testing
