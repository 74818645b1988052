#include "server/ops/dashboard.h"

// The page is server/ops/dashboard.html, embedded at build time
// (voucherd_embed_text in server/ops/CMakeLists.txt).
#include "ops/dashboard.html.h"

namespace voucherd {

std::string_view dashboard_html() { return ops::kDashboardHtml; }

}  // namespace voucherd
