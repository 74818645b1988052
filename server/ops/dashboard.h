// dashboard.h — the live page served at GET / on the ops port: plain HTML,
// CSS and JavaScript compiled into voucherd (no CDN, nothing fetched from
// the internet). It polls /status and /series once a second and draws its
// charts on <canvas> itself. The page is server/ops/dashboard.html,
// embedded at build time. Every text from the server goes into the page
// through textContent or element ids set by the DOM API, never through
// innerHTML, so a campaign or site name cannot inject markup.
//
// Stable hooks for tests and scripts:
//   id="remaining-<campaign id>"   the campaign's remaining stock (text and
//                                  data-value), from /status
//   data-drawn="1"                 set on a chart's <canvas> once it has
//                                  drawn at least one point
#pragma once

#include <string_view>

namespace voucherd {

[[nodiscard]] std::string_view dashboard_html();

}  // namespace voucherd
