// LOTTERY campaigns through the engine and the memory claim log: the odds,
// the SKU choice, the release schedule, the daily limit in the campaign's
// time zone, idempotent retries, the prize limit, and the audit.
#include "engine/lottery.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/limits.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"
#include "tests/support/engine/campaign_spec.h"

namespace voucherd {
namespace {

// 2026-11-28T00:00:00+08:00 (Asia/Shanghai) = 2026-11-27T16:00:00Z.
constexpr UnixMicros kShanghaiMidnight = 1'795'795'200LL * kMicrosPerSecond;
constexpr UnixMicros kMinute = 60 * kMicrosPerSecond;

std::vector<std::uint8_t> test_secret() { return std::vector<std::uint8_t>(32, 0x42); }

CampaignSpec lottery_spec(std::vector<std::int64_t> stocks, double p,
                          UnixMicros starts = kShanghaiMidnight,
                          UnixMicros ends = kShanghaiMidnight + 10 * kMicrosPerDay) {
  testing::SpecBuilder s("city-lottery", "City travel lottery");
  s.lottery(p).window(starts, ends).site("site-1", "Hangzhou", SkuKind::kHotel, "Lakeside Inn");
  for (std::size_t i = 0; i < stocks.size(); ++i) {
    s.sku("sku-" + std::to_string(i), stocks[i], 10'000, "Room " + std::to_string(i));
  }
  return s;
}

class RecordingDraw final : public DrawOp {
 public:
  void on_draw_done(const DrawOpResult& r) override {
    result = r;
    ++calls;
  }
  DrawOpResult result;
  int calls = 0;
};

class LotteryTest : public ::testing::Test {
 protected:
  LotteryTest() : engine_(log_, clock_, random_, test_secret()) {}

  const CampaignRuntime* create(CampaignSpec spec) {
    auto created = engine_.create_campaign(std::move(spec));
    EXPECT_TRUE(created.has_value()) << (created ? "" : created.error().field.message);
    return created ? *created : nullptr;
  }

  DrawOpResult draw(const std::string& member, const std::string& request,
                    const std::string& campaign = "city-lottery") {
    RecordingDraw op;
    op.campaign_id = campaign;
    op.member_id = member;
    op.request_id = request;
    engine_.draw(op);
    EXPECT_EQ(op.calls, 1);
    return op.result;
  }

  MemoryClaimLog log_;
  FakeClock clock_{kShanghaiMidnight + kMicrosPerSecond};
  DeterministicRandom random_{7};
  ClaimEngine engine_;
};

TEST_F(LotteryTest, WinsFollowTheStatedProbability) {
  // Ample stock, and late in the window so nearly all of it is released.
  ASSERT_NE(create(lottery_spec({1'000'000}, 0.1)), nullptr);
  clock_.set_us(kShanghaiMidnight + 9 * kMicrosPerDay);
  constexpr int kDraws = 200'000;
  int wins = 0;
  for (int i = 0; i < kDraws; ++i) {
    const DrawOpResult r = draw("m" + std::to_string(i), "r" + std::to_string(i));
    ASSERT_EQ(r.outcome, Outcome::kOk);
    ASSERT_TRUE(r.entry.outcome == DrawOutcome::kWon || r.entry.outcome == DrawOutcome::kUnlucky);
    if (r.entry.outcome == DrawOutcome::kWon) ++wins;
  }
  const double sigma = std::sqrt(kDraws * 0.1 * 0.9);  // 134
  EXPECT_LT(std::abs(wins - 20'000), 4 * sigma) << wins << " wins";
}

// Pearson's chi-square of observed counts against expected shares.
double chi_square(const std::vector<std::int64_t>& observed, const std::vector<double>& shares) {
  std::int64_t n = 0;
  for (std::int64_t o : observed) n += o;
  double chi = 0;
  for (std::size_t i = 0; i < observed.size(); ++i) {
    const double expected = shares[i] * static_cast<double>(n);
    chi += (static_cast<double>(observed[i]) - expected) *
           (static_cast<double>(observed[i]) - expected) / expected;
  }
  return chi;
}

TEST_F(LotteryTest, WeightedSkuChoicePassesChiSquare) {
  CampaignSpec spec = lottery_spec({1'000'000, 1'000'000, 1'000'000, 1'000'000}, 0.5);
  spec.lottery.sku_choice = SkuChoice::kWeighted;
  spec.lottery.sku_weights = {1, 2, 3, 4};
  ASSERT_NE(create(spec), nullptr);
  clock_.set_us(kShanghaiMidnight + 9 * kMicrosPerDay);
  std::vector<std::int64_t> per_sku(4, 0);
  for (int i = 0; i < 200'000; ++i) {
    const DrawOpResult r = draw("m" + std::to_string(i), "r" + std::to_string(i));
    ASSERT_EQ(r.outcome, Outcome::kOk);
    if (r.entry.outcome == DrawOutcome::kWon) ++per_sku[r.entry.sku];
  }
  // 3 degrees of freedom: 16.27 is the 0.001 critical value.
  EXPECT_LT(chi_square(per_sku, {0.1, 0.2, 0.3, 0.4}), 16.27)
      << per_sku[0] << " " << per_sku[1] << " " << per_sku[2] << " " << per_sku[3];
}

TEST(LotteryRules, ProportionalSkuChoicePassesChiSquare) {
  const CampaignSpec spec = lottery_spec({5'000, 15'000, 30'000}, 0.5);
  const std::vector<std::int64_t> remaining = {5'000, 15'000, 30'000};
  LotterySeed seed{};
  seed[0] = 9;
  std::vector<std::int64_t> per_sku(3, 0);
  for (int i = 0; i < 100'000; ++i) {
    const DrawRandomness r = draw_randomness(seed, spec.id, "m" + std::to_string(i), 1);
    const std::uint32_t sku = choose_sku(spec, remaining, r.pick());
    ASSERT_LT(sku, 3u);
    ++per_sku[sku];
  }
  // 2 degrees of freedom: 13.82 is the 0.001 critical value.
  EXPECT_LT(chi_square(per_sku, {0.1, 0.3, 0.6}), 13.82);
}

TEST(LotteryRules, SkusWithoutStockAreNeverChosen) {
  CampaignSpec spec = lottery_spec({0, 10, 0}, 1);
  spec.lottery.sku_choice = SkuChoice::kWeighted;
  spec.lottery.sku_weights = {5, 1, 5};
  const std::vector<std::int64_t> remaining = {0, 3, 0};
  for (std::uint64_t pick : {0ull, 1ull << 52, (1ull << 53) - 1}) {
    EXPECT_EQ(choose_sku(spec, remaining, pick), 1u);
  }
  EXPECT_EQ(choose_sku(spec, std::vector<std::int64_t>{0, 0, 0}, 0), kNoSku);
}

TEST(LotteryRules, ReleaseScheduleReachesTheWholeStockInTheLastSecondAndDay) {
  CampaignSpec spec = lottery_spec({60, 40}, 1, kShanghaiMidnight,
                                   kShanghaiMidnight + 4 * 86'400 * kMicrosPerSecond);
  EXPECT_EQ(released_units(spec, kShanghaiMidnight - 1), 0);
  EXPECT_EQ(released_units(spec, kShanghaiMidnight), 100 * 1 / 345'600);
  EXPECT_EQ(released_units(spec, kShanghaiMidnight + kMicrosPerDay),
            25);  // second 86,400 of 345,600
  EXPECT_EQ(released_units(spec, spec.ends_at_us - 1), 100);
  spec.lottery.release = ReleaseSchedule::kEqualPerDay;
  EXPECT_EQ(released_units(spec, kShanghaiMidnight), 25);
  EXPECT_EQ(released_units(spec, kShanghaiMidnight + kMicrosPerDay - 1), 25);
  EXPECT_EQ(released_units(spec, kShanghaiMidnight + kMicrosPerDay), 50);
  EXPECT_EQ(released_units(spec, spec.ends_at_us - 1), 100);
}

TEST_F(LotteryTest, NeverMoreWinsThanReleasedAndThePoolCanEmptyByTheEnd) {
  // 100 prizes over 100 seconds, p = 1: every draw is lucky, so every draw
  // that does not win must say why (paused or all gone), never UNLUCKY.
  const CampaignSpec spec =
      lottery_spec({30, 70}, 1.0, kShanghaiMidnight, kShanghaiMidnight + 100 * kMicrosPerSecond);
  CampaignSpec with_draws = spec;
  with_draws.lottery.draws_per_day = 1000;
  ASSERT_NE(create(with_draws), nullptr);
  std::int64_t won = 0;
  int paused = 0;
  int member = 0;
  for (int second = 0; second < 100; ++second) {
    for (int quarter = 0; quarter < 4; ++quarter) {
      const UnixMicros now =
          kShanghaiMidnight + second * kMicrosPerSecond + quarter * kMicrosPerSecond / 4;
      clock_.set_us(now);
      for (int k = 0; k < 3; ++k, ++member) {
        const DrawOpResult r = draw("m" + std::to_string(member), "r");
        ASSERT_EQ(r.outcome, Outcome::kOk);
        if (r.entry.outcome == DrawOutcome::kWon) ++won;
        if (r.entry.outcome == DrawOutcome::kPaused) ++paused;
        ASSERT_NE(r.entry.outcome, DrawOutcome::kUnlucky);
        ASSERT_LE(won, released_units(spec, now)) << "at second " << second;
        ASSERT_EQ(r.entry.released, released_units(spec, now));
      }
    }
  }
  EXPECT_EQ(won, 100);  // the whole pool, by the last second
  EXPECT_GT(paused, 0);
  const DrawOpResult after = draw("late", "r");
  EXPECT_EQ(after.entry.outcome, DrawOutcome::kAllGone);
  auto stats = engine_.campaign_stats("city-lottery");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 100);
  EXPECT_EQ(stats->remaining, 0);
}

TEST_F(LotteryTest, DailyLimitFollowsTheShanghaiCalendar) {
  CampaignSpec spec = lottery_spec({1'000}, 0.000001);
  spec.lottery.draws_per_day = 2;
  ASSERT_NE(create(spec), nullptr);
  // 23:59 on 2026-11-28 in Shanghai (15:59 UTC): the day ends in a minute.
  clock_.set_us(kShanghaiMidnight + kMicrosPerDay - kMinute);
  EXPECT_EQ(draw("alice", "a1").draws_left_today, 1);
  EXPECT_EQ(draw("alice", "a2").draws_left_today, 0);
  const DrawOpResult third = draw("alice", "a3");
  EXPECT_EQ(third.outcome, Outcome::kDrawLimitReached);
  EXPECT_EQ(third.resets_at, "2026-11-29T00:00:00+08:00");
  EXPECT_EQ(third.resets_at_us, kShanghaiMidnight + kMicrosPerDay);
  // A retry of a draw that happened is answered, even at the limit.
  const DrawOpResult again = draw("alice", "a2");
  EXPECT_EQ(again.outcome, Outcome::kOk);
  EXPECT_TRUE(again.repeat);
  EXPECT_EQ(again.entry.draw_number, 2);
  // Two minutes later it is the 29th in Shanghai (still the 28th in UTC).
  clock_.set_us(kShanghaiMidnight + kMicrosPerDay + kMinute);
  const DrawOpResult next_day = draw("alice", "a3");
  EXPECT_EQ(next_day.outcome, Outcome::kOk);
  EXPECT_EQ(next_day.entry.draw_number, 3);
  EXPECT_EQ(next_day.draws_left_today, 1);
}

TEST_F(LotteryTest, RetriesReturnTheSameDrawAndSpendNothing) {
  ASSERT_NE(create(lottery_spec({1'000}, 1.0)), nullptr);
  clock_.set_us(kShanghaiMidnight + 9 * kMicrosPerDay);
  const DrawOpResult first = draw("bob", "req-1");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  ASSERT_EQ(first.entry.outcome, DrawOutcome::kWon);
  ASSERT_NE(first.voucher, nullptr);
  const DrawOpResult retry = draw("bob", "req-1");
  EXPECT_TRUE(retry.repeat);
  EXPECT_EQ(retry.entry, first.entry);
  EXPECT_EQ(retry.voucher->code(), first.voucher->code());
  EXPECT_EQ(retry.draws_left_today, first.draws_left_today);
  EXPECT_EQ(retry.proof, first.proof);
  // At most one prize: the next draw is ALREADY_WON, lucky or not.
  const DrawOpResult second = draw("bob", "req-2");
  EXPECT_EQ(second.entry.outcome, DrawOutcome::kAlreadyWon);
  EXPECT_EQ(second.voucher, nullptr);
  EXPECT_EQ(second.entry.draw_number, 2);
  auto stats = engine_.campaign_stats("city-lottery");
  EXPECT_EQ(stats->issued, 1);
}

TEST_F(LotteryTest, ModesAndWindowAreChecked) {
  ASSERT_NE(create(lottery_spec({10}, 0.5)), nullptr);
  EXPECT_EQ(draw("m", "").outcome, Outcome::kInvalidArgument);
  EXPECT_EQ(draw("", "r").outcome, Outcome::kInvalidArgument);
  EXPECT_EQ(draw("m", "r", "nope").outcome, Outcome::kCampaignNotFound);
  clock_.set_us(kShanghaiMidnight - 1);
  EXPECT_EQ(draw("m", "r").outcome, Outcome::kNotOpen);
  clock_.set_us(kShanghaiMidnight + 10 * kMicrosPerDay);
  EXPECT_EQ(draw("m", "r").outcome, Outcome::kClosed);
  // The seed is revealed only once the campaign has ended.
  EXPECT_TRUE(engine_.reveal_seed("city-lottery").has_value());
  clock_.set_us(kShanghaiMidnight + kMicrosPerDay);
  EXPECT_EQ(engine_.reveal_seed("city-lottery").error(), Outcome::kCampaignNotOver);
}

TEST(LotteryValidation, RulesAreChecked) {
  CampaignSpec bad = lottery_spec({10}, 0);
  EXPECT_EQ(validate_and_normalize(bad).error().field, "campaign.lottery.win_probability");
  // Not a number, or past 1 (the request fuzzer sent a NaN): refused, and
  // the spec is left as it was.
  for (const double p :
       {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::quiet_NaN(),
        std::numeric_limits<double>::infinity(), 1.0000001}) {
    bad = lottery_spec({10}, p);
    const auto refused = validate_and_normalize(bad);
    ASSERT_FALSE(refused.has_value()) << p;
    EXPECT_EQ(refused.error().field, "campaign.lottery.win_probability") << p;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(bad.lottery.win_probability),
              std::bit_cast<std::uint64_t>(p));
    CampaignSpec rest = bad;
    rest.lottery.win_probability = 0;
    EXPECT_TRUE(rest == lottery_spec({10}, 0)) << "not normalized";
  }
  bad = lottery_spec({10}, 0.5);
  bad.lottery.time_zone = "Mars/Olympus_Mons";
  EXPECT_EQ(validate_and_normalize(bad).error().field, "campaign.lottery.time_zone");
  bad = lottery_spec({10}, 0.5);
  bad.lottery.sku_choice = SkuChoice::kWeighted;
  EXPECT_EQ(validate_and_normalize(bad).error().field, "campaign.lottery.sku_weights");
  bad = lottery_spec({10}, 0.5);
  bad.per_member_limit = 2;
  EXPECT_EQ(validate_and_normalize(bad).error().field, "campaign.per_member_limit");
  CampaignSpec first_come = lottery_spec({10}, 0.5);
  first_come.mode = CampaignMode::kFirstCome;
  EXPECT_EQ(validate_and_normalize(first_come).error().field, "campaign.lottery");
  CampaignSpec good = lottery_spec({10}, 0.5);
  ASSERT_TRUE(validate_and_normalize(good).has_value());
  EXPECT_EQ(good.lottery.time_zone, "Asia/Shanghai");
  EXPECT_EQ(good.lottery.draws_per_day, kDefaultDrawsPerDay);
  EXPECT_EQ(good.lottery.prizes_per_member, 1);
  EXPECT_EQ(good.per_member_limit, 1);
}

TEST_F(LotteryTest, AuditVerifiesARealLogAndReportsTampering) {
  CampaignSpec spec =
      lottery_spec({5, 5}, 0.3, kShanghaiMidnight, kShanghaiMidnight + 600 * kMicrosPerSecond);
  spec.lottery.draws_per_day = 20;
  const CampaignRuntime* c = create(spec);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 400; ++i) {
    clock_.set_us(kShanghaiMidnight + i * kMicrosPerSecond);
    ASSERT_EQ(draw("m" + std::to_string(i % 40), "r" + std::to_string(i)).outcome, Outcome::kOk);
  }
  clock_.set_us(spec.ends_at_us);
  auto seed = engine_.reveal_seed(spec.id);
  ASSERT_TRUE(seed.has_value());
  auto entries = engine_.draw_entries(c->spec());
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 400u);

  const AuditReport ok = audit_draws(c->spec(), *seed, c->seed_commitment(), *entries);
  EXPECT_TRUE(ok.commitment_matches);
  EXPECT_EQ(ok.draws, 400);
  EXPECT_TRUE(ok.problems.empty()) << ok.problems.front().what;

  // One outcome flipped.
  auto flipped = *entries;
  auto unlucky = std::find_if(flipped.begin(), flipped.end(), [](const DrawEntry& e) {
    return e.outcome == DrawOutcome::kUnlucky;
  });
  ASSERT_NE(unlucky, flipped.end());
  unlucky->outcome = DrawOutcome::kPaused;
  const AuditReport a = audit_draws(c->spec(), *seed, c->seed_commitment(), flipped);
  ASSERT_EQ(a.problems.size(), 1u);
  EXPECT_EQ(a.problems[0].index, static_cast<std::size_t>(unlucky - flipped.begin()));

  // One member id changed: its draw numbers no longer follow, nor its luck.
  auto renamed = *entries;
  renamed[123].member_id = "someone-else";
  EXPECT_FALSE(audit_draws(c->spec(), *seed, c->seed_commitment(), renamed).problems.empty());

  // One byte of the seed changed: the commitment fails, and so do draws.
  LotterySeed wrong = *seed;
  wrong[5] ^= 1;
  const AuditReport w = audit_draws(c->spec(), wrong, c->seed_commitment(), *entries);
  EXPECT_FALSE(w.commitment_matches);
  EXPECT_FALSE(w.problems.empty());
}

}  // namespace
}  // namespace voucherd
