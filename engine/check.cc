#include "engine/check.h"

#include <cstdio>
#include <cstdlib>

namespace voucherd::check {

void fail(const char* condition, const char* message, std::source_location where) {
  // stdio, not iostream or the server's logger: this may run with any lock
  // held and any state broken, so it allocates nothing and takes no lock of
  // ours.
  std::fprintf(stderr, "voucherd: CHECK failed at %s:%u: %s: %s\n", where.file_name(),
               static_cast<unsigned>(where.line()), condition, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace voucherd::check
