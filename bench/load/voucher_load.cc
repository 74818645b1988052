// voucher-load — the load generator app teams and ops run against a staging
// voucherd before a campaign opens. See bench/README.md and load.h.
//
// Exit status: 0 when the run completed and every check passed; 1 when a
// check failed (a member with two codes, a code with two members, a code
// redeemed twice, more vouchers than stock, or --expect-sold-out unmet; in
// apply mode also an allocation not done in time, an application refused,
// an applicant not found or still pending, a SKU won beyond its stock);
// 2 for bad flags or a run that could not start.
#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>

#include "bench/load/load.h"
#include "common/lock_checks.h"

int main(int argc, char** argv) {
  // The client shares the machine with the server it measures: its gRPC
  // locks skip the lock-order bookkeeping too (common/lock_checks.h).
  voucherd::skip_lock_order_checks();
  using voucherd::load::Mode;
  voucherd::load::LoadOptions o;
  std::string mode = "claim";
  std::string json_file, plot_file;
  bool expect_sold_out = false;
  int retry_delay_ms = 5;
  int timeout_ms = 30'000;
  CLI::App app{
      "voucher-load: a crowd of members pressing claim (and redeeming) against voucherd over "
      "gRPC; prints a report and checks every answer"};
  app.add_option("--mode", mode,
                 "claim, redeem, mixed, draw (a LOTTERY campaign; the crowd's repeats draw "
                 "again), or apply (an APPLY_THEN_DRAW campaign: apply, wait for the "
                 "allocation, read every outcome, redeem what was won)")
      ->check(CLI::IsMember({"claim", "redeem", "mixed", "draw", "apply"}))
      ->capture_default_str();
  app.add_option("--target", o.target, "voucherd host:port")->required();
  app.add_option("--campaign", o.campaign_id, "campaign id")->required();
  app.add_option("--token", o.app_token, "bearer token of the app role (claims)")
      ->envname("VOUCHER_LOAD_TOKEN");
  app.add_option("--site-token", o.site_token, "bearer token of a site (redemptions)")
      ->envname("VOUCHER_LOAD_SITE_TOKEN");
  app.add_option("--admin-token", o.admin_token,
                 "bearer token of the admin role (GetCampaignStats after the run; apply: "
                 "GetCampaign first)")
      ->envname("VOUCHER_LOAD_ADMIN_TOKEN");
  app.add_option("--tls-ca", o.tls.ca_file, "PEM CA that signed voucherd's certificate: use TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", o.tls.cert_file, "PEM client certificate, for mutual TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", o.tls.key_file, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--members", o.members, "distinct members in the crowd")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}))
      ->capture_default_str();
  app.add_option("--member-first", o.member_first, "number of the first member")
      ->capture_default_str();
  app.add_option("--member-prefix", o.member_prefix, "member ids are PREFIX<number>")
      ->capture_default_str();
  app.add_option("--repeat-share", o.repeat_share,
                 "extra presses (redemptions) of random members (codes), as a share of them")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "crowd shuffle seed")->capture_default_str();
  app.add_option("--count", o.count,
                 "calls' worth of work to send (default: the whole crowd once; more goes round "
                 "it again)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000'000}));
  app.add_option("--duration", o.duration_s, "stop sending after this many seconds")
      ->check(CLI::Range(0.001, 86'400.0))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "client threads, each with its own connection")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("-c,--concurrency", o.concurrency, "closed loop: calls in flight")
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  app.add_option("--rate", o.rate,
                 "open loop: calls per second at fixed intended start times (latency counts "
                 "from them)")
      ->check(CLI::Range(0.0, 10'000'000.0));
  app.add_option("--max-in-flight", o.max_in_flight, "open loop: most calls in flight")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "claim through ClaimBatch, this many claims per call")
      ->check(CLI::Range(0, 1000));
  app.add_option("--max-retries", o.max_retries,
                 "send work refused RESOURCE_EXHAUSTED/UNAVAILABLE again, up to this many times")
      ->check(CLI::Range(0, 100'000))
      ->capture_default_str();
  app.add_option("--retry-delay-ms", retry_delay_ms, "pause before a retry")
      ->check(CLI::Range(0, 60'000))
      ->capture_default_str();
  app.add_option("--timeout-ms", timeout_ms, "deadline of each call")
      ->check(CLI::Range(1, 600'000))
      ->capture_default_str();
  app.add_option("--preferences", o.preferences,
                 "apply: SKUs each application names, drawn at random from the campaign's "
                 "(0: none, any SKU)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_option("--allocation-wait-s", o.allocation_wait_s,
                 "apply: how long to wait after allocation_at for the allocation to be done (the "
                 "campaign must be allocated within an hour of the run's start)")
      ->check(CLI::Range(0.0, 86'400.0))
      ->capture_default_str();
  app.add_option("--codes", o.codes_file,
                 "redeem: codes to redeem, \"<code> <site_id>\" per line (default: claim first)")
      ->check(CLI::ExistingFile);
  app.add_option("--redeem-share", o.mixed_redeem_share,
                 "mixed: share of calls that redeem a voucher the run was issued")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--expect-stock", o.expect_stock,
                 "the campaign's stock, for the check issued <= stock (default: ask "
                 "GetCampaignStats)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 50));
  app.add_flag("--expect-sold-out", expect_sold_out,
               "fail unless every unit of the stock was issued, as the client saw it and as "
               "GetCampaignStats says");
  app.add_flag("--skip-stats", o.skip_stats,
               "do not call GetCampaignStats (benchmarks that count store work for the claims "
               "alone); the stock is then checked only against --expect-stock");
  app.add_flag("--progress", o.progress, "a progress line per second on stderr");
  app.add_option("--json", json_file, "write the report as JSON to FILE");
  app.add_option("--plot", plot_file, "write throughput and latency over time as SVG to FILE");
  CLI11_PARSE(app, argc, argv);

  if (o.tls.cert_file.empty() != o.tls.key_file.empty() ||
      (!o.tls.cert_file.empty() && o.tls.ca_file.empty())) {
    std::cerr << "voucher-load: --tls-cert and --tls-key go together, with --tls-ca\n";
    return 2;
  }
  if (o.batch > 0 && mode != "claim") {
    std::cerr << "voucher-load: --batch works with --mode claim only\n";
    return 2;
  }
  if (expect_sold_out && o.skip_stats) {
    std::cerr << "voucher-load: --expect-sold-out needs GetCampaignStats; drop --skip-stats\n";
    return 2;
  }
  o.mode = mode == "redeem"  ? Mode::kRedeem
           : mode == "mixed" ? Mode::kMixed
           : mode == "draw"  ? Mode::kDraw
           : mode == "apply" ? Mode::kApply
                             : Mode::kClaim;
  o.retry_delay = std::chrono::milliseconds(retry_delay_ms);
  o.call_timeout = std::chrono::milliseconds(timeout_ms);

  const voucherd::load::LoadReport report = voucherd::load::run_load(o);
  if (!report.error.empty()) {
    std::cerr << "voucher-load: " << report.error << "\n";
    return 2;
  }
  bool ok = report.check.ok();
  std::cout << voucherd::load::format_text(report);
  if (expect_sold_out) {
    std::int64_t issued = 0;
    for (const auto& p : report.phases) issued += p.issued;
    const bool sold_out = report.check.stock >= 0 && issued == report.check.stock &&
                          report.check.server_issued == report.check.stock;
    std::cout << "Sold out:     " << (sold_out ? "yes" : "NO") << ", client saw " << issued
              << " issued, server says " << report.check.server_issued << ", stock "
              << report.check.stock << "\n";
    ok = ok && sold_out;
  }
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) std::cerr << "voucher-load: cannot write " << path << "\n";
    return static_cast<bool>(out);
  };
  if (!json_file.empty() && !write(json_file, voucherd::load::format_json(report))) return 2;
  if (!plot_file.empty() && !write(plot_file, voucherd::load::format_svg(report))) return 2;
  std::cout << "RESULT: " << (ok ? "OK" : "FAILED") << "\n";
  return ok ? 0 : 1;
}
