// bug_test — the server's third tier of checks: VOUCHERD_BUG logs and counts
// a "should not happen" and lets the caller go on in Release; with
// VOUCHERD_DCHECK_ON (Debug and sanitizer builds) it also aborts, so that a
// test reaching it fails.
#include "server/base/bug.h"

#include <gtest/gtest.h>

namespace voucherd::testing {
namespace {

TEST(BugDeathTest, CountsAndGoesOnInReleaseAbortsUnderDchecks) {
  const std::uint64_t before = bug::count();
#ifdef VOUCHERD_DCHECK_ON
  EXPECT_DEATH(VOUCHERD_BUG("replies do not match requests"), "replies do not match requests");
  EXPECT_EQ(bug::count(), before);  // the death happened in a child process
#else
  VOUCHERD_BUG("replies do not match requests");
  VOUCHERD_BUG("replies do not match requests");
  EXPECT_EQ(bug::count(), before + 2);
#endif
}

}  // namespace
}  // namespace voucherd::testing
