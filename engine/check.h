// check.h — checks of voucherd's own invariants, in two tiers here and a
// third in the server (server/base/bug.h):
//
//   VOUCHERD_CHECK(cond, message)   always on, every build. Aborts with
//                                   file:line, the condition and the message
//                                   on stderr. For state that, once wrong,
//                                   would hand out stock that is not there or
//                                   lose what was acknowledged: stop rather
//                                   than go on.
//   VOUCHERD_DCHECK(cond, message)  on in Debug and sanitizer builds (where
//                                   VOUCHERD_DCHECK_ON is defined, see the top
//                                   CMakeLists.txt), compiled out of Release.
//                                   For checks too costly for the claim path,
//                                   or that restate what a CHECK already
//                                   guards.
//
// Only internal state is checked: client input and what Redis answers are
// validated and refused with a status, never asserted (a bad request or a
// store's odd reply must not crash the server). Where a value crosses a
// boundary, check it on both sides (where it is written and where it is read
// back), as TigerBeetle pairs its assertions.
//
//   VOUCHERD_CHECK(units >= 0, "a SKU's stock never goes below zero");
#pragma once

#include <source_location>

namespace voucherd::check {

// Writes "voucherd: CHECK failed at file:line: cond: message" to stderr and
// aborts. Never returns.
[[noreturn]] void fail(const char* condition, const char* message,
                       std::source_location where = std::source_location::current());

}  // namespace voucherd::check

#define VOUCHERD_CHECK(cond, message)          \
  do {                                         \
    if (!(cond)) [[unlikely]]                  \
      ::voucherd::check::fail(#cond, message); \
  } while (0)

#ifdef VOUCHERD_DCHECK_ON
#define VOUCHERD_DCHECK(cond, message) VOUCHERD_CHECK(cond, message)
#else
// Compiled out, but the condition still has to compile (and names in it
// count as used).
#define VOUCHERD_DCHECK(cond, message) \
  do {                                 \
    if (false) (void)(cond);           \
  } while (0)
#endif
