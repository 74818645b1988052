// check_test — the engine's two tiers of checks: VOUCHERD_CHECK stops the
// process in every build, naming the file, line, condition and message;
// VOUCHERD_DCHECK does so only where VOUCHERD_DCHECK_ON is defined (Debug
// and sanitizer builds) and is compiled out of Release.
#include "engine/check.h"

#include <gtest/gtest.h>

namespace voucherd::testing {
namespace {

int checked_value(int v) {
  VOUCHERD_CHECK(v >= 0, "a value never goes below zero");
  return v;
}

TEST(CheckDeathTest, CheckAbortsWithWhereWhatAndWhy) {
  EXPECT_EQ(checked_value(3), 3);
  EXPECT_DEATH((void)checked_value(-1),
               "voucherd: CHECK failed at .*check_test.cc:[0-9]+: v >= 0: a value never goes "
               "below zero");
}

TEST(CheckDeathTest, DcheckFollowsTheBuild) {
  int evaluated = 0;
  auto count = [&] {
    ++evaluated;
    return false;
  };
#ifdef VOUCHERD_DCHECK_ON
  EXPECT_DEATH(VOUCHERD_DCHECK(count(), "debug only"), "CHECK failed at .*: debug only");
#else
  VOUCHERD_DCHECK(count(), "debug only");  // compiled out: not even evaluated
  EXPECT_EQ(evaluated, 0);
#endif
}

}  // namespace
}  // namespace voucherd::testing
