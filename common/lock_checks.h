// lock_checks.h — turning off abseil's lock-order checks in a release
// program.
//
// Debian builds abseil without NDEBUG, so absl::Mutex (every lock inside
// gRPC 1.51) keeps a graph of which locks were held while another was
// taken and looks for cycles in it on every Lock: in a profile of voucherd's
// gRPC front that bookkeeping (GraphCycles) showed up on every call. A
// program that wants release speed calls this first thing in main(). The
// sanitizer builds keep the checks: they are how a lock-order bug would be
// found.
#pragma once

namespace voucherd {

// Sets absl::SetMutexDeadlockDetectionMode(kIgnore), unless this is a
// sanitizer or Debug build (VOUCHERD_KEEP_LOCK_CHECKS).
void skip_lock_order_checks();

}  // namespace voucherd
