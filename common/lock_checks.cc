#include "common/lock_checks.h"

#include <absl/synchronization/mutex.h>

namespace voucherd {

void skip_lock_order_checks() {
#ifndef VOUCHERD_KEEP_LOCK_CHECKS
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace voucherd
