// dashboard_e2e_test — proves that the live dashboard voucherd serves at /
// works in a real browser (Debian's headless Chromium) while a crowd claims
// over gRPC: the page, with nothing fetched from outside, draws its four
// charts (data-drawn="1" on each canvas) from /series, and shows the
// campaign's remaining stock exactly as /status reports it. A screenshot
// taken during the storm is left in the build folder (dashboard.png).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/campaigns.h"
#include "tests/support/http_get.h"
#include "tests/support/storm.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"

namespace voucherd::testing {
namespace {

// Campaign "dash": 20,000 packs over eight SKUs of two sites.
std::string campaign_file(const TempDir& dir) {
  CampaignJson c("dash", "Dashboard");
  c.spring_site().site("site-2", "Hill", "Shaoguan", "SKU_KIND_SCENIC");
  for (int i = 0; i < 8; ++i) {
    c.sku_at("site-" + std::to_string(1 + i % 2), i % 2 ? "SKU_KIND_SCENIC" : "SKU_KIND_HOT_SPRING",
             "sku-" + std::to_string(i), "Pack", 9'800, 2'500);
  }
  return c.write(dir, "dash.json");
}

std::string chromium_binary() {
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(candidate)) return candidate;
  }
  return {};
}

// Runs headless Chromium on `url` with `mode` (--dump-dom or --screenshot=...)
// and returns its stdout. Bounded by timeout(1); every flag that would make
// it reach the internet is off.
std::string run_chromium(const TempDir& dir, const std::string& mode, const std::string& url) {
  static int run = 0;
  const auto profile = dir.path() / ("chromium-profile-" + std::to_string(++run));
  std::filesystem::create_directories(profile);
  const auto out = dir.path() / ("chromium-" + std::to_string(run) + ".out");
  const std::string command =
      "timeout 60 " + chromium_binary() +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
      " --disable-background-networking --disable-component-update --disable-sync"
      " --user-data-dir=" +
      profile.string() + " --virtual-time-budget=3000 --window-size=1280,900 " + mode + " " + url +
      " > " + out.string() + " 2> " + (dir.path() / "chromium.err").string();
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The data-value of the element with id `id` in a dumped DOM, or -1.
long long data_value(const std::string& dom, const std::string& id) {
  const auto at = dom.find("id=\"" + id + "\"");
  if (at == std::string::npos) return -1;
  const auto tag_end = dom.find('>', at);
  const auto value = dom.find("data-value=\"", at);
  if (value == std::string::npos || value > tag_end) return -1;
  return std::atoll(dom.c_str() + value + 12);
}

TEST(DashboardEndToEnd, ChromiumDrawsTheChartsAndShowsTheRemainingStock) {
  ASSERT_FALSE(chromium_binary().empty())
      << "Debian's chromium is not installed (scripts/setup.sh installs it)";
  TempDir dir;
  VoucherdProcess server(dir, {"--campaigns", campaign_file(dir)});
  ASSERT_GT(server.ops_port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.ops_port()) + "/";

  load::StormOptions crowd;
  crowd.target = server.target();
  crowd.campaign_id = "dash";
  crowd.members = 30'000;
  crowd.repeat_share = 0.2;
  crowd.concurrency = 16;
  crowd.max_seconds = 15;
  load::StormReport report;
  std::thread storm([&] { report = load::run_storm(crowd); });
  auto status = [&] { return nlohmann::json::parse(http_get(server.ops_port(), "/status").body); };
  // The storm has begun (bounded: the checks below tell if it never did).
  (void)wait_until([&] { return status()["campaigns"][0]["issued"] != 0; });
  // During the storm: the page as an operator sees it.
  const std::string screenshot = std::string(VOUCHERD_BUILD_DIR) + "/dashboard.png";
  std::filesystem::remove(screenshot);
  run_chromium(dir, "--screenshot=" + screenshot, url);
  storm.join();
  EXPECT_TRUE(std::filesystem::exists(screenshot));
  EXPECT_GT(report.issued, 0);

  // The series has a point (one a second), so every chart has one to draw.
  (void)wait_until([&] {
    return !nlohmann::json::parse(http_get(server.ops_port(), "/series").body)["t"].empty();
  });
  const std::string dom = run_chromium(dir, "--dump-dom", url);
  for (const char* chart : {"chart-remaining", "chart-claims", "chart-p99", "chart-errors"}) {
    const auto at = dom.find(std::string("id=\"") + chart + "\"");
    ASSERT_NE(at, std::string::npos) << chart << "\n" << dom;
    const std::string tag = dom.substr(at, dom.find('>', at) - at);
    EXPECT_NE(tag.find("data-drawn=\"1\""), std::string::npos) << chart << ": " << tag;
  }
  // The storm is over: the figure on the page is the one /status reports.
  const long long shown = data_value(dom, "remaining-dash");
  const auto now = status();
  EXPECT_EQ(shown, now["campaigns"][0]["remaining"].get<long long>()) << dom;
  EXPECT_EQ(shown, 20'000 - report.issued);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0));
}

}  // namespace
}  // namespace voucherd::testing
