// wait.h — test support: waiting on a condition instead of sleeping.
//
// Tests wait for what they mean (a lease held, a voucher expired, a replica
// ready), polled every 10 ms and bounded, so a slow (sanitizer) build waits
// longer and a fast one does not wait at all.
#pragma once

#include <chrono>
#include <functional>

namespace voucherd::testing {

// Waits until `condition` holds, polling every 10 ms, at most `limit`;
// returns whether it held.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = std::chrono::seconds(10));

}  // namespace voucherd::testing
