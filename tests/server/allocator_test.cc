// allocator_test — the allocating thread: it leaves a campaign alone before
// its allocation time, then allocates it on its own (nobody calls anything),
// exactly the stock, once; a store it cannot use is not asked again at
// every poll, and the campaign is allocated once the store is readable; and
// it stops promptly.
#include "server/allocation/allocator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/random.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/engine/forwarding_claim_log.h"
#include "tests/support/wait.h"

namespace voucherd {
namespace {

constexpr UnixMicros kStart = 1'800'000'000LL * kMicrosPerSecond;
constexpr UnixMicros kEnd = kStart + kMicrosPerDay;
constexpr UnixMicros kAllocation = kEnd + 3600 * kMicrosPerSecond;

class WaitedApply final : public ApplyOp {
 public:
  void on_apply_done(const ApplicationResult& r) override { outcome = r.outcome; }
  Outcome outcome = Outcome::kInternal;
};

class WaitedLookup final : public ApplicationLookupOp {
 public:
  void on_application_done(const ApplicationResult& r) override { result = r; }
  ApplicationResult result;
};

class AllocatorTest : public ::testing::Test {
 protected:
  AllocatorTest() : engine_(log_, clock_, random_, std::vector<std::uint8_t>(32, 9)) {
    auto created = engine_.create_campaign(testing::SpecBuilder("gd-apply")
                                               .apply_then_draw(kAllocation)
                                               .window(kStart, kEnd)
                                               .guangdong_sites_and_skus(3, 2, 1, 5'000));
    EXPECT_TRUE(created.has_value());
    for (int k = 0; k < 20; ++k) {
      WaitedApply op;
      const std::string member = "member-" + std::to_string(k);
      op.campaign_id = "gd-apply";
      op.member_id = member;
      op.request_id = "req-1";
      engine_.apply(op);  // the memory log answers inline
      EXPECT_EQ(op.outcome, Outcome::kOk);
    }
    clock_.set_us(kEnd);  // the window is over; the allocation is an hour away
  }

  ApplicationState state_of(const std::string& member) {
    WaitedLookup op;
    op.campaign_id = "gd-apply";
    op.member_id = member;
    engine_.get_application(op);
    EXPECT_EQ(op.result.outcome, Outcome::kOk);
    return op.result.state;
  }

  std::int64_t issued() { return engine_.campaign_stats("gd-apply")->issued; }

  testing::ForwardingClaimLog log_;
  FakeClock clock_{kStart};
  DeterministicRandom random_{5};
  ClaimEngine engine_;
};

TEST_F(AllocatorTest, AllocatesOnItsOwnOnceTheTimeComesExactlyOnce) {
  AllocatorOptions options;
  options.poll = std::chrono::milliseconds(5);
  Allocator allocator(engine_, "replica-a", options);
  allocator.start();
  // Many passes before the time: nothing is written.
  ASSERT_TRUE(testing::wait_until([&] { return allocator.passes() >= 10; }));
  EXPECT_EQ(state_of("member-0"), ApplicationState::kPending);
  EXPECT_EQ(log_.voucher_count(), 0);
  EXPECT_EQ(engine_.reveal_seed("gd-apply").error(), Outcome::kCampaignNotOver);

  clock_.set_us(kAllocation);
  ASSERT_TRUE(testing::wait_until([&] { return engine_.reveal_seed("gd-apply").has_value(); }))
      << "the allocator did not allocate";
  int selected = 0;
  for (int k = 0; k < 20; ++k) {
    const ApplicationState s = state_of("member-" + std::to_string(k));
    ASSERT_NE(s, ApplicationState::kPending);
    if (s == ApplicationState::kSelected) ++selected;
  }
  EXPECT_EQ(selected, 6);
  EXPECT_EQ(issued(), 6);
  // More passes: the allocation is known done and never written again.
  const std::int64_t seen = allocator.passes();
  ASSERT_TRUE(testing::wait_until([&] { return allocator.passes() >= seen + 10; }));
  EXPECT_EQ(log_.voucher_count(), 6);
  allocator.stop();
}

TEST_F(AllocatorTest, AStoreItCannotUseIsNotAskedAgainAtEveryPoll) {
  log_.unreadable_applications(true);
  AllocatorOptions options;
  options.poll = std::chrono::milliseconds(5);
  options.hold_max = std::chrono::milliseconds(2'000);
  Allocator allocator(engine_, "replica-a", options);
  clock_.set_us(kAllocation);
  allocator.start();
  // One read, then the campaign is held back for a second: a hundred
  // passes go by without another (each would re-read every application).
  ASSERT_TRUE(testing::wait_until([&] { return log_.application_reads() >= 1; }));
  const std::int64_t seen = allocator.passes();
  ASSERT_TRUE(testing::wait_until([&] { return allocator.passes() >= seen + 100; }));
  EXPECT_LE(log_.application_reads(), 2);  // at most one more, if a second went by
  EXPECT_EQ(log_.voucher_count(), 0);
  // Readable again: the next try allocates it, with nobody calling anything.
  log_.unreadable_applications(false);
  ASSERT_TRUE(testing::wait_until([&] { return engine_.reveal_seed("gd-apply").has_value(); },
                                  std::chrono::seconds(10)))
      << "the allocation was not tried again";
  EXPECT_EQ(issued(), 6);
  allocator.stop();
}

TEST_F(AllocatorTest, StopsPromptlyWithAPollFarAway) {
  AllocatorOptions options;
  options.poll = std::chrono::hours(1);
  Allocator allocator(engine_, "replica-a", options);
  allocator.start();
  // The stop wakes the thread's wait rather than sitting out the hour's
  // poll: one that did not would hold this test until ctest's timeout.
  allocator.stop();
  EXPECT_EQ(log_.voucher_count(), 0);
}

}  // namespace
}  // namespace voucherd
