#include "server/base/bug.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "server/base/log.h"

namespace voucherd::bug {
namespace {

// Relaxed: a count read by /metrics; nothing is published through it.
std::atomic<std::uint64_t> reports{0};

}  // namespace

void report(std::string_view message, std::source_location where) {
  reports.fetch_add(1, std::memory_order_relaxed);
  const std::string at = std::string(where.file_name()) + ":" + std::to_string(where.line());
  log::error("internal error (a bug): " + std::string(message),
             {{"at", at}, {"kind", "internal_error"}});
#ifdef VOUCHERD_DCHECK_ON
  std::abort();
#endif
}

std::uint64_t count() { return reports.load(std::memory_order_relaxed); }

}  // namespace voucherd::bug
