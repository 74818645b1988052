// apply_engine_test — APPLY_THEN_DRAW campaigns through the engine and the
// memory claim log: the seed is committed at creation; Apply is taken only
// in the window and only for this mode (Claim and Draw are WRONG_MODE on
// it); one application per member, which a retry of the same request finds
// and another request replaces; preferences are checked (unknown, repeated,
// too many) before anything is stored; the campaign's bound; GetApplication
// answers PENDING with the application as it stands, or
// APPLICATION_NOT_FOUND. Then the allocation: it issues exactly what
// allocate() gives, in steps, once, not before allocation_at; GetApplication
// then says SELECTED with the voucher and a proof, or NOT_SELECTED; the
// member lists the voucher; the seed is revealed only after it; a cancelled
// pack is forfeited; a step whose answer was lost is not written twice.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/limits.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/engine/forwarding_claim_log.h"

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

class RecordingList final : public MemberVouchersOp {
 public:
  void on_member_vouchers_done(Outcome o, std::vector<VoucherPtr> v, UnixMicros) override {
    outcome = o;
    vouchers = std::move(v);
  }
  Outcome outcome = Outcome::kInternal;
  std::vector<VoucherPtr> vouchers;
};

class RecordingCancel final : public CancelOp {
 public:
  void on_cancel_done(Outcome o, VoucherPtr v) override {
    outcome = o;
    voucher = std::move(v);
  }
  Outcome outcome = Outcome::kInternal;
  VoucherPtr voucher;
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

// The allocation, on a memory log the test can also make lose answers.
class AllocationTest : public ::testing::Test {
 protected:
  AllocationTest() : engine_(log_, clock_, random_, test_secret()) {
    auto created = engine_.create_campaign(apply_spec());
    EXPECT_TRUE(created.has_value());
    campaign_ = created ? *created : nullptr;
  }

  // `n` members: member-k names, by k mod 4, sku-001; sku-002 then
  // sku-001; nothing (any); sku-003.
  void apply_crowd(int n) {
    for (int k = 0; k < n; ++k) {
      RecordingApply op;
      op.campaign_id = "gd-apply";
      const std::string member = "member-" + std::to_string(k);
      op.member_id = member;
      op.request_id = "req-1";
      std::vector<std::string_view> preferred;
      std::vector<std::uint32_t> indexes;
      switch (k % 4) {
        case 0:
          preferred = {"sku-001"};
          indexes = {0};
          break;
        case 1:
          preferred = {"sku-002", "sku-001"};
          indexes = {1, 0};
          break;
        case 2:
          break;
        default:
          preferred = {"sku-003"};
          indexes = {2};
      }
      op.preferred_sku_ids = preferred;
      engine_.apply(op);
      ASSERT_EQ(op.result.outcome, Outcome::kOk) << member;
      sent_.push_back({member, indexes, 0});
    }
  }

  StoreResult<AllocationRun> allocate(std::size_t batch_max = limits::kAllocationBatchMax,
                                      std::function<bool(int)> retry_wait = {},
                                      std::function<bool()> keep_going = {}) {
    AllocationOptions options;
    options.batch_max = batch_max;
    options.retry_wait = std::move(retry_wait);
    options.keep_going = std::move(keep_going);
    return engine_.allocate("gd-apply", "replica-a", options);
  }

  // Each selected member lists exactly the voucher GetApplication names.
  void expect_winners_list_their_voucher() {
    for (const auto& [member, sku] : expected()) {
      RecordingList list;
      list.member_id = member;
      list.campaign_id = "gd-apply";
      engine_.list_member_vouchers(list);
      ASSERT_EQ(list.outcome, Outcome::kOk) << member;
      ASSERT_EQ(list.vouchers.size(), sku == kNoSku ? 0u : 1u) << member;
      if (sku != kNoSku) {
        EXPECT_EQ(list.vouchers[0]->code(), get(member).voucher->code());
      }
    }
  }

  ApplicationResult get(const std::string& member) {
    RecordingLookup op;
    op.campaign_id = "gd-apply";
    op.member_id = member;
    engine_.get_application(op);
    return op.result;
  }

  // member -> the SKU allocate() gives them from the campaign's seed.
  std::map<std::string, std::uint32_t> expected() const {
    const Allocation a = voucherd::allocate(campaign_->spec(), *campaign_->seed(), sent_);
    std::map<std::string, std::uint32_t> out;
    for (std::size_t i = 0; i < sent_.size(); ++i) out[sent_[i].member_id] = a.sku_of[i];
    return out;
  }

  // Every member's answer is the allocation's, with a voucher of that SKU
  // for the selected and the rank's proof for all.
  void expect_outcomes_match_the_allocation() {
    std::string scratch;
    const SkuMacKey key = hmac_key(*campaign_->seed());
    for (const auto& [member, sku] : expected()) {
      const ApplicationResult r = get(member);
      ASSERT_EQ(r.outcome, Outcome::kOk) << member;
      EXPECT_EQ(r.proof,
                "rank HMAC-SHA256 " + to_hex(apply_rank(key, "gd-apply", member, scratch)));
      if (sku == kNoSku) {
        EXPECT_EQ(r.state, ApplicationState::kNotSelected) << member;
        EXPECT_FALSE(r.voucher) << member;
        continue;
      }
      ASSERT_EQ(r.state, ApplicationState::kSelected) << member;
      ASSERT_TRUE(r.voucher) << member;
      EXPECT_EQ(r.voucher->sku_id(), campaign_->spec().skus[sku].id) << member;
      EXPECT_EQ(r.voucher->member_id(), member);
      EXPECT_EQ(r.voucher->request_id(), "");
      EXPECT_EQ(r.voucher->state(), VoucherState::kIssued);
    }
  }

  void at_allocation_time() { clock_.set_us(kAllocation); }

  testing::ForwardingClaimLog log_;
  FakeClock clock_{kStart + kMicrosPerSecond};
  DeterministicRandom random_{23};
  ClaimEngine engine_;
  const CampaignRuntime* campaign_ = nullptr;
  std::vector<ApplicationEntry> sent_;
};

TEST_F(AllocationTest, NothingIsAllocatedBeforeAllocationAt) {
  apply_crowd(20);
  clock_.set_us(kAllocation - 1);  // after the window, before the allocation
  auto run = allocate();
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->result, AllocationRun::Result::kTooEarly);
  EXPECT_EQ(log_.allocation_writes(), 0);
  EXPECT_EQ(get("member-0").state, ApplicationState::kPending);
  EXPECT_TRUE(get("member-0").proof.empty());
  EXPECT_EQ(engine_.reveal_seed("gd-apply").error(), Outcome::kCampaignNotOver);
}

TEST_F(AllocationTest, TheAllocationIssuesExactlyWhatAllocateGivesInStepsAndOnce) {
  apply_crowd(20);  // 20 applicants for 6 packs (3 spa, 2 nights, 1 tour)
  at_allocation_time();
  auto run = allocate(/*batch_max=*/2);
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->result, AllocationRun::Result::kDone);
  EXPECT_EQ(run->applications, 20);
  EXPECT_EQ(run->written, 20);
  EXPECT_EQ(run->selected, 6);
  EXPECT_EQ(log_.voucher_count(), 6);
  EXPECT_EQ(log_.allocation_writes(), 3);  // 2 + 2 + 2 winners; the last runs to the end
  expect_outcomes_match_the_allocation();

  auto stats = engine_.campaign_stats("gd-apply");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 6);
  EXPECT_EQ(stats->remaining, 0);
  for (const SkuStatsView& s : stats->skus) EXPECT_EQ(s.issued, s.stock) << s.sku_id;

  // Again, on this replica or another: done, nothing written.
  auto again = allocate();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->result, AllocationRun::Result::kDone);
  EXPECT_EQ(again->written, 0);
  auto other = engine_.allocate("gd-apply", "replica-b");
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->result, AllocationRun::Result::kDone);
  EXPECT_EQ(log_.voucher_count(), 6);
  EXPECT_EQ(log_.allocation_writes(), 3);
}

TEST_F(AllocationTest, FewerApplicantsThanStockAreAllSelectedWithTheirFirstChoice) {
  apply_crowd(3);  // sku-001; sku-002 then sku-001; any
  at_allocation_time();
  auto run = allocate();
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->selected, 3);
  EXPECT_EQ(get("member-0").voucher->sku_id(), "sku-001");
  EXPECT_EQ(get("member-1").voucher->sku_id(), "sku-002");
  EXPECT_EQ(get("member-2").state, ApplicationState::kSelected);
  expect_outcomes_match_the_allocation();
}

TEST_F(AllocationTest, NoApplicantsIsAnAllocationDoneAtOnce) {
  at_allocation_time();
  auto run = allocate();
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->result, AllocationRun::Result::kDone);
  EXPECT_EQ(run->written, 0);
  EXPECT_EQ(log_.allocation_writes(), 1);
  EXPECT_TRUE(engine_.reveal_seed("gd-apply").has_value());
  EXPECT_EQ(get("member-0").outcome, Outcome::kApplicationNotFound);
}

TEST_F(AllocationTest, TheWinnerListsTheVoucherAndTheSeedIsRevealedAfterwards) {
  apply_crowd(20);
  at_allocation_time();
  EXPECT_EQ(engine_.reveal_seed("gd-apply").error(), Outcome::kCampaignNotOver);
  ASSERT_TRUE(allocate().has_value());
  auto seed = engine_.reveal_seed("gd-apply");
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(*seed, *campaign_->seed());
  expect_winners_list_their_voucher();
  auto stats = engine_.campaign_stats("gd-apply");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->members, 6);
}

TEST_F(AllocationTest, ACancelledPackIsForfeitedAndStaysSelected) {
  apply_crowd(20);
  at_allocation_time();
  ASSERT_TRUE(allocate().has_value());
  std::string winner;
  std::uint32_t won = kNoSku;
  for (const auto& [member, sku] : expected()) {
    if (sku != kNoSku) {
      winner = member;
      won = sku;
    }
  }
  ASSERT_FALSE(winner.empty());
  const std::int64_t available_before = campaign_->available(won);
  const CodeString code = get(winner).voucher->code();
  RecordingCancel cancel;
  cancel.code = code.view();
  engine_.cancel(cancel);
  ASSERT_EQ(cancel.outcome, Outcome::kOk);
  const ApplicationResult after = get(winner);
  EXPECT_EQ(after.state, ApplicationState::kSelected);
  ASSERT_TRUE(after.voucher);
  EXPECT_EQ(after.voucher->state(), VoucherState::kCancelled);
  auto stats = engine_.campaign_stats("gd-apply");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 6);  // forfeited, not back in stock
  EXPECT_EQ(stats->remaining, 0);
  EXPECT_EQ(campaign_->available(won), available_before);
  auto again = allocate();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(log_.voucher_count(), 6);
}

TEST_F(AllocationTest, ApplicationsAreClosedOnceTheAllocationBegins) {
  apply_crowd(2);
  // The store began the allocation (another replica, whose clock is ahead)
  // while this one still sees the window open.
  auto turn = log_.take_allocation(campaign_->spec(), "replica-b");
  ASSERT_TRUE(turn.has_value());
  ASSERT_EQ(turn->kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(turn->total, 2);
  RecordingApply late;
  late.campaign_id = "gd-apply";
  late.member_id = "member-9";
  late.request_id = "req-1";
  engine_.apply(late);
  EXPECT_EQ(late.result.outcome, Outcome::kClosed);
  RecordingApply change;
  change.campaign_id = "gd-apply";
  change.member_id = "member-0";
  change.request_id = "req-2";
  engine_.apply(change);
  EXPECT_EQ(change.result.outcome, Outcome::kClosed);
  EXPECT_EQ(get("member-0").application.preferred, std::vector<std::uint32_t>{0});
  EXPECT_EQ(get("member-9").outcome, Outcome::kApplicationNotFound);

  // And this replica waits for the one that has the turn.
  at_allocation_time();
  auto run = allocate();
  ASSERT_TRUE(run.has_value());
  EXPECT_EQ(run->result, AllocationRun::Result::kBusy);
  EXPECT_EQ(log_.allocation_writes(), 0);
}

TEST_F(AllocationTest, AStepWhoseAnswerWasLostIsRecognisedNotWrittenTwice) {
  apply_crowd(20);
  at_allocation_time();
  log_.lose_allocation_answers(1);
  int waits = 0;
  auto run = allocate(2, [&waits](int attempt) {
    EXPECT_EQ(attempt, waits + 1);
    return ++waits <= 3;
  });
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->result, AllocationRun::Result::kDone);
  EXPECT_EQ(waits, 1);
  EXPECT_EQ(run->selected, 6);
  EXPECT_EQ(log_.voucher_count(), 6);
  EXPECT_EQ(log_.allocation_writes(), 4);  // the lost step was sent twice
  expect_outcomes_match_the_allocation();
  // The resend carried the same vouchers: the ones this replica counted and
  // lists are the ones the store holds.
  EXPECT_EQ(engine_.campaign_stats("gd-apply")->issued, 6);
  expect_winners_list_their_voucher();
}

TEST_F(AllocationTest, AStopBetweenStepsKeepsWhatWasWrittenAndTheNextCallFinishes) {
  apply_crowd(20);
  at_allocation_time();
  auto stopped = allocate(2, {}, [] { return false; });
  ASSERT_TRUE(stopped.has_value()) << stopped.error().message;
  EXPECT_EQ(stopped->result, AllocationRun::Result::kStopped);
  EXPECT_EQ(stopped->selected, 2);
  EXPECT_EQ(log_.voucher_count(), 2);
  EXPECT_EQ(engine_.reveal_seed("gd-apply").error(), Outcome::kCampaignNotOver);
  auto rest = allocate(2);
  ASSERT_TRUE(rest.has_value()) << rest.error().message;
  EXPECT_EQ(rest->result, AllocationRun::Result::kDone);
  EXPECT_EQ(rest->selected, 4);
  EXPECT_EQ(log_.voucher_count(), 6);
  expect_outcomes_match_the_allocation();
  expect_winners_list_their_voucher();
}

TEST_F(AllocationTest, TheExportShowsEachApplicationAsItStandsAndOnceDoneIsAudited) {
  apply_crowd(20);
  auto outcomes = [&] {
    auto read = engine_.application_outcomes(campaign_->spec());
    EXPECT_TRUE(read.has_value()) << read.error().message;
    return read.value_or(ApplicationOutcomes{});
  };
  // Before the allocation: every application as sent, by member, none decided.
  const ApplicationOutcomes before = outcomes();
  EXPECT_FALSE(before.allocation_done);
  ASSERT_EQ(before.outcomes.size(), 20u);
  std::map<std::string, std::vector<std::uint32_t>> sent;
  for (const ApplicationEntry& e : sent_) sent[e.member_id] = e.preferred;
  auto in_order = sent.begin();
  for (const ApplicationOutcome& o : before.outcomes) {
    EXPECT_EQ(o.application.member_id, in_order->first);
    EXPECT_EQ(o.application.preferred, in_order->second) << in_order->first;
    EXPECT_EQ(o.application.applied_at_us, kStart + kMicrosPerSecond) << in_order->first;
    EXPECT_EQ(o.sku, kNoSku) << in_order->first;
    ++in_order;
  }
  // One step written: its two winners have their SKUs; not done.
  at_allocation_time();
  auto stopped = allocate(2, {}, [] { return false; });
  ASSERT_TRUE(stopped.has_value()) << stopped.error().message;
  const ApplicationOutcomes midway = outcomes();
  EXPECT_FALSE(midway.allocation_done);
  EXPECT_EQ(std::count_if(midway.outcomes.begin(), midway.outcomes.end(),
                          [](const ApplicationOutcome& o) { return o.sku != kNoSku; }),
            2);
  // Done: each outcome is the allocation's, and the audit finds nothing.
  ASSERT_TRUE(allocate(2).has_value());
  const ApplicationOutcomes done = outcomes();
  EXPECT_TRUE(done.allocation_done);
  const auto want = expected();
  for (const ApplicationOutcome& o : done.outcomes) {
    EXPECT_EQ(o.sku, want.at(o.application.member_id)) << o.application.member_id;
  }
  const AllocationAudit audit = audit_allocation(campaign_->spec(), *campaign_->seed(),
                                                 campaign_->seed_commitment(), done.outcomes, 20);
  EXPECT_TRUE(audit.commitment_matches);
  EXPECT_TRUE(audit.problems.empty());
  EXPECT_EQ(audit.selected, 6);
}

TEST_F(AllocationTest, AnUnansweredStepEndsTheCallAndTheNextCallResumesAfterIt) {
  apply_crowd(20);
  at_allocation_time();
  log_.lose_allocation_answers(1);
  auto first = allocate(2);  // no retry: gives up at the first silence
  ASSERT_FALSE(first.has_value());
  EXPECT_EQ(first.error().kind, StoreErrorKind::kUnavailable);
  EXPECT_EQ(log_.voucher_count(), 2);  // the step landed all the same
  EXPECT_EQ(engine_.reveal_seed("gd-apply").error(), Outcome::kCampaignNotOver);
  auto second = allocate(2);
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_EQ(second->result, AllocationRun::Result::kDone);
  EXPECT_EQ(second->selected, 4);
  EXPECT_EQ(log_.voucher_count(), 6);
  expect_outcomes_match_the_allocation();
  // This replica counts what it saw written, as it counts claims: the lost
  // step's two vouchers are in the store (a shared store's statistics are
  // read from it), not in this count.
  auto stats = engine_.campaign_stats("gd-apply");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 4);
}

}  // namespace
}  // namespace voucherd
