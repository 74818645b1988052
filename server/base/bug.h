// bug.h — the server's third tier of checks (after engine/check.h's
// VOUCHERD_CHECK and VOUCHERD_DCHECK): a "should not happen" that the
// server survives.
//
//   if (reply.elements.size() != batch.size()) {
//     VOUCHERD_BUG("a batch's replies do not match its requests");
//     return fail_all(batch);   // the caller still answers
//   }
//
// In Release it logs one error line (with file:line) and counts it in
// voucherd_internal_errors_total, and the caller goes on (it answers
// INTERNAL, or skips the item). With VOUCHERD_DCHECK_ON (Debug and sanitizer
// builds) it also aborts, so that the tests that reach it fail. Like the
// other checks it is for our own state, never for client or Redis input.
//
// Thread-safety: report() and count() may be called from any thread.
#pragma once

#include <cstdint>
#include <source_location>
#include <string_view>

namespace voucherd::bug {

void report(std::string_view message, std::source_location where = std::source_location::current());

// How many reports this process has made.
[[nodiscard]] std::uint64_t count();

}  // namespace voucherd::bug

#define VOUCHERD_BUG(message) ::voucherd::bug::report(message)
