// apply_engine_test — APPLY_THEN_DRAW campaigns through the engine and the
// memory claim log: the seed is committed at creation; Apply is taken only
// in the window and only for this mode (Claim and Draw are WRONG_MODE on
// it); one application per member, which a retry of the same request finds
// and another request replaces; preferences are checked (unknown, repeated,
// too many) before anything is stored; the campaign's bound; and
// GetApplication answers PENDING with the application as it stands, or
// APPLICATION_NOT_FOUND.
#include <gtest/gtest.h>

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

constexpr UnixMicros kStart = 1'800'000'000LL * kMicrosPerSecond;
constexpr UnixMicros kEnd = kStart + 7 * kMicrosPerDay;
constexpr UnixMicros kAllocation = kEnd + 2 * 3600 * kMicrosPerSecond;

std::vector<std::uint8_t> test_secret() { return std::vector<std::uint8_t>(32, 0x42); }

CampaignSpec apply_spec(std::string id = "gd-apply") {
  return testing::SpecBuilder(std::move(id), "Guangdong rural holidays, by application")
      .apply_then_draw(kAllocation)
      .window(kStart, kEnd)
      .guangdong_sites_and_skus(3, 2, 1, 5'000);
}

class RecordingApply final : public ApplyOp {
 public:
  void on_apply_done(const ApplicationResult& r) override {
    result = r;
    ++calls;
  }
  ApplicationResult result;
  int calls = 0;
};

class RecordingLookup final : public ApplicationLookupOp {
 public:
  void on_application_done(const ApplicationResult& r) override {
    result = r;
    ++calls;
  }
  ApplicationResult result;
  int calls = 0;
};

class RecordingClaim final : public ClaimOp {
 public:
  void on_claim_done(const ClaimResult& r) override { result = r; }
  ClaimResult result;
};

class RecordingDraw final : public DrawOp {
 public:
  void on_draw_done(const DrawOpResult& r) override { result = r; }
  DrawOpResult result;
};

class ApplyEngineTest : public ::testing::Test {
 protected:
  explicit ApplyEngineTest(std::int64_t applications_max = limits::kApplicationsPerCampaignMax)
      : log_(applications_max), engine_(log_, clock_, random_, test_secret()) {}

  const CampaignRuntime* create(CampaignSpec spec) {
    auto created = engine_.create_campaign(std::move(spec));
    EXPECT_TRUE(created.has_value()) << (created ? "" : created.error().field.message);
    return created ? *created : nullptr;
  }

  ApplicationResult apply(const std::string& member, const std::string& request,
                          std::vector<std::string_view> preferred = {},
                          const std::string& campaign = "gd-apply") {
    RecordingApply op;
    op.campaign_id = campaign;
    op.member_id = member;
    op.request_id = request;
    op.preferred_sku_ids = preferred;
    engine_.apply(op);
    EXPECT_EQ(op.calls, 1);
    return op.result;
  }

  ApplicationResult get(const std::string& member, const std::string& campaign = "gd-apply") {
    RecordingLookup op;
    op.campaign_id = campaign;
    op.member_id = member;
    engine_.get_application(op);
    EXPECT_EQ(op.calls, 1);
    return op.result;
  }

  MemoryClaimLog log_;
  FakeClock clock_{kStart + kMicrosPerSecond + 123};  // 1 s and 123 µs into the window
  DeterministicRandom random_{11};
  ClaimEngine engine_;
};

TEST_F(ApplyEngineTest, TheSeedIsCommittedWhenTheCampaignIsCreated) {
  const CampaignRuntime* c = create(apply_spec());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->spec().mode, CampaignMode::kApplyThenDraw);
  EXPECT_EQ(c->spec().allocation_at_us, kAllocation);
  EXPECT_EQ(c->spec().per_member_limit, 1);
  ASSERT_TRUE(c->seed().has_value());
  EXPECT_EQ(c->seed_commitment(), seed_commitment(*c->seed()));
  EXPECT_EQ(c->seed_commitment().size(), 64u);
}

TEST_F(ApplyEngineTest, AFirstApplicationIsRecordedAndPendingWithNoPositionOrProof) {
  ASSERT_NE(create(apply_spec()), nullptr);
  const ApplicationResult r = apply("member-1", "req-1", {"sku-002", "sku-001"});
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_FALSE(r.replaced);
  EXPECT_FALSE(r.repeat);
  EXPECT_EQ(r.state, ApplicationState::kPending);
  EXPECT_EQ(r.application.member_id, "member-1");
  EXPECT_EQ(r.application.preferred, (std::vector<std::uint32_t>{1, 0}));
  EXPECT_EQ(r.application.applied_at_us, kStart + kMicrosPerSecond);  // to the millisecond
  EXPECT_TRUE(r.proof.empty());
  EXPECT_FALSE(r.voucher);

  const ApplicationResult found = get("member-1");
  ASSERT_EQ(found.outcome, Outcome::kOk);
  EXPECT_EQ(found.state, ApplicationState::kPending);
  EXPECT_EQ(found.application, r.application);
  EXPECT_TRUE(found.proof.empty());
  EXPECT_FALSE(found.voucher);
}

TEST_F(ApplyEngineTest, AnApplicationNamingNoSkuTakesAny) {
  ASSERT_NE(create(apply_spec()), nullptr);
  const ApplicationResult r = apply("member-1", "req-1");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_TRUE(r.application.preferred.empty());
  EXPECT_EQ(get("member-1").application.preferred, std::vector<std::uint32_t>{});
}

TEST_F(ApplyEngineTest, ARetryOfTheSameRequestFindsTheStoredApplicationUnchanged) {
  ASSERT_NE(create(apply_spec()), nullptr);
  const ApplicationResult first = apply("member-1", "req-1", {"sku-003"});
  ASSERT_EQ(first.outcome, Outcome::kOk);
  clock_.advance_us(5 * kMicrosPerSecond);
  // The same request again, even with other preferences (a client that
  // rebuilt its request), is the same application: nothing changes.
  const ApplicationResult again = apply("member-1", "req-1", {"sku-001"});
  ASSERT_EQ(again.outcome, Outcome::kOk);
  EXPECT_TRUE(again.repeat);
  EXPECT_FALSE(again.replaced);
  EXPECT_EQ(again.application, first.application);
  EXPECT_EQ(get("member-1").application, first.application);
}

TEST_F(ApplyEngineTest, AnotherRequestReplacesTheApplicationUntilTheWindowCloses) {
  ASSERT_NE(create(apply_spec()), nullptr);
  ASSERT_EQ(apply("member-1", "req-1", {"sku-003"}).outcome, Outcome::kOk);
  clock_.advance_us(60 * kMicrosPerSecond);
  const ApplicationResult changed = apply("member-1", "req-2", {"sku-002", "sku-003"});
  ASSERT_EQ(changed.outcome, Outcome::kOk);
  EXPECT_TRUE(changed.replaced);
  EXPECT_FALSE(changed.repeat);
  EXPECT_EQ(changed.application.preferred, (std::vector<std::uint32_t>{1, 2}));
  EXPECT_EQ(changed.application.applied_at_us, kStart + 61 * kMicrosPerSecond);
  EXPECT_EQ(get("member-1").application, changed.application);
  // The first request, retried late, is no longer the one that stands: it
  // replaces the application again (the last write wins).
  const ApplicationResult stale = apply("member-1", "req-1", {"sku-003"});
  ASSERT_EQ(stale.outcome, Outcome::kOk);
  EXPECT_TRUE(stale.replaced);
  EXPECT_EQ(get("member-1").application.preferred, std::vector<std::uint32_t>{2});

  clock_.set_us(kEnd);
  EXPECT_EQ(apply("member-1", "req-3", {"sku-001"}).outcome, Outcome::kClosed);
  EXPECT_EQ(get("member-1").application.preferred, std::vector<std::uint32_t>{2});
}

TEST_F(ApplyEngineTest, ApplyOutsideTheWindowIsNotOpenOrClosedAndStoresNothing) {
  ASSERT_NE(create(apply_spec()), nullptr);
  clock_.set_us(kStart - 1);
  EXPECT_EQ(apply("member-1", "req-1").outcome, Outcome::kNotOpen);
  clock_.set_us(kEnd);
  EXPECT_EQ(apply("member-2", "req-1").outcome, Outcome::kClosed);
  clock_.set_us(kAllocation + 1);
  EXPECT_EQ(apply("member-3", "req-1").outcome, Outcome::kClosed);
  for (const char* member : {"member-1", "member-2", "member-3"}) {
    EXPECT_EQ(get(member).outcome, Outcome::kApplicationNotFound) << member;
  }
  clock_.set_us(kStart);  // the first microsecond of the window
  EXPECT_EQ(apply("member-1", "req-1").outcome, Outcome::kOk);
}

TEST_F(ApplyEngineTest, ClaimAndDrawAreTheWrongModeAndApplyOnOtherModesToo) {
  ASSERT_NE(create(apply_spec()), nullptr);
  RecordingClaim claim;
  claim.campaign_id = "gd-apply";
  claim.member_id = "member-1";
  engine_.claim(claim);
  EXPECT_EQ(claim.result.outcome, Outcome::kWrongMode);
  RecordingDraw draw;
  draw.campaign_id = "gd-apply";
  draw.member_id = "member-1";
  draw.request_id = "req-1";
  engine_.draw(draw);
  EXPECT_EQ(draw.result.outcome, Outcome::kWrongMode);
  EXPECT_EQ(get("member-1").outcome, Outcome::kApplicationNotFound);
  EXPECT_EQ(log_.voucher_count(), 0);

  ASSERT_NE(create(testing::SpecBuilder("gd-first")
                       .window(kStart, kEnd)
                       .guangdong_sites_and_skus(3, 2, 1, 5'000)),
            nullptr);
  CampaignSpec lottery = testing::SpecBuilder("city-lottery")
                             .lottery(0.5)
                             .window(kStart, kEnd)
                             .guangdong_sites_and_skus(3, 2, 1, 5'000);
  ASSERT_NE(create(lottery), nullptr);
  for (const char* campaign : {"gd-first", "city-lottery"}) {
    EXPECT_EQ(apply("member-1", "req-1", {}, campaign).outcome, Outcome::kWrongMode) << campaign;
    EXPECT_EQ(get("member-1", campaign).outcome, Outcome::kWrongMode) << campaign;
  }
}

TEST_F(ApplyEngineTest, BadInputIsRefusedNamingTheFieldAndStoresNothing) {
  ASSERT_NE(create(apply_spec()), nullptr);
  const std::string long_id(limits::kIdBytesMax + 1, 'x');
  struct Case {
    std::string member, request;
    std::vector<std::string_view> preferred;
    Outcome outcome;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"", "req-1", {}, Outcome::kInvalidArgument, "member_id"},
      {long_id, "req-1", {}, Outcome::kInvalidArgument, "member_id"},
      {"member-1", "", {}, Outcome::kInvalidArgument, "request_id"},
      {"member-1", "req\n1", {}, Outcome::kInvalidArgument, "request_id"},
      {"member-1", "req-1", {"sku-001", ""}, Outcome::kInvalidArgument, "preferred_sku_ids"},
      {"member-1",
       "req-1",
       {"sku-001", "sku-002", "sku-001"},
       Outcome::kInvalidArgument,
       "preferred_sku_ids"},
      {"member-1", "req-1", {"sku-001", "sku-404"}, Outcome::kSkuNotFound, nullptr},
  };
  for (const Case& c : cases) {
    const ApplicationResult r = apply(c.member, c.request, c.preferred);
    EXPECT_EQ(r.outcome, c.outcome) << c.member << "/" << c.request;
    if (c.field != nullptr) {
      ASSERT_NE(r.field, nullptr);
      EXPECT_STREQ(r.field, c.field);
    }
  }
  EXPECT_EQ(apply("member-1", "req-1", {"sku-404"}).sku_id, "sku-404");
  EXPECT_EQ(apply("member-1", "req-1", {}, "no-such-campaign").outcome, Outcome::kCampaignNotFound);
  EXPECT_EQ(apply("member-1", "req-1", {}, "").outcome, Outcome::kInvalidArgument);
  EXPECT_EQ(get("member-1").outcome, Outcome::kApplicationNotFound);
  EXPECT_EQ(get("").outcome, Outcome::kInvalidArgument);
  EXPECT_EQ(get("member-1", "no-such-campaign").outcome, Outcome::kCampaignNotFound);
}

TEST_F(ApplyEngineTest, SixteenPreferencesAreTakenASeventeenthIsRefused) {
  testing::SpecBuilder many("gd-apply");
  many.apply_then_draw(kAllocation)
      .window(kStart, kEnd)
      .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Spa");
  std::vector<std::string> ids;
  for (std::size_t i = 0; i <= limits::kApplicationPreferencesMax; ++i) {
    ids.push_back("sku-" + std::to_string(i));
    many.sku(ids.back(), 1, 100, "Pass " + std::to_string(i));
  }
  ASSERT_NE(create(many), nullptr);
  std::vector<std::string_view> all(ids.begin(), ids.end());
  const ApplicationResult refused = apply("member-1", "req-1", all);
  EXPECT_EQ(refused.outcome, Outcome::kInvalidArgument);
  ASSERT_NE(refused.field, nullptr);
  EXPECT_STREQ(refused.field, "preferred_sku_ids");
  EXPECT_EQ(get("member-1").outcome, Outcome::kApplicationNotFound);

  all.pop_back();  // 16
  const ApplicationResult taken = apply("member-1", "req-1", all);
  ASSERT_EQ(taken.outcome, Outcome::kOk);
  EXPECT_EQ(taken.application.preferred.size(), limits::kApplicationPreferencesMax);
  EXPECT_EQ(taken.application.preferred.back(), limits::kApplicationPreferencesMax - 1);
}

class ApplyBoundTest : public ApplyEngineTest {
 protected:
  ApplyBoundTest() : ApplyEngineTest(2) {}
};

TEST_F(ApplyBoundTest, ACampaignAtItsBoundRefusesNewMembersButLetsOthersChangeTheirs) {
  ASSERT_NE(create(apply_spec()), nullptr);
  ASSERT_EQ(apply("member-1", "req-1").outcome, Outcome::kOk);
  ASSERT_EQ(apply("member-2", "req-1").outcome, Outcome::kOk);
  EXPECT_EQ(apply("member-3", "req-1").outcome, Outcome::kApplicationsFull);
  EXPECT_EQ(get("member-3").outcome, Outcome::kApplicationNotFound);
  const ApplicationResult changed = apply("member-2", "req-2", {"sku-001"});
  ASSERT_EQ(changed.outcome, Outcome::kOk);
  EXPECT_TRUE(changed.replaced);
  EXPECT_TRUE(apply("member-1", "req-1").repeat);
}

TEST_F(ApplyEngineTest, CampaignsKeepTheirApplicationsApart) {
  ASSERT_NE(create(apply_spec("gd-apply")), nullptr);
  ASSERT_NE(create(apply_spec("gd-apply-2")), nullptr);
  ASSERT_EQ(apply("member-1", "req-1", {"sku-001"}, "gd-apply").outcome, Outcome::kOk);
  EXPECT_EQ(get("member-1", "gd-apply-2").outcome, Outcome::kApplicationNotFound);
  const ApplicationResult other = apply("member-1", "req-1", {"sku-002"}, "gd-apply-2");
  ASSERT_EQ(other.outcome, Outcome::kOk);
  EXPECT_FALSE(other.repeat);  // the same request id, in another campaign
  EXPECT_EQ(get("member-1", "gd-apply").application.preferred, std::vector<std::uint32_t>{0});
  EXPECT_EQ(get("member-1", "gd-apply-2").application.preferred, std::vector<std::uint32_t>{1});
}

}  // namespace
}  // namespace voucherd
