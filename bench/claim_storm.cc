// claim-storm — the crowd of the README's main command: N members (plus
// repeat presses) claim from a running voucherd; prints the report, checks
// the answers on the client side and against GetCampaignStats, and exits
// non-zero if anything does not add up.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "bench/storm.h"
#include "voucher/v1/voucher.grpc.pb.h"

int main(int argc, char** argv) {
  voucherd::load::StormOptions o;
  bool expect_sold_out = false;
  bool skip_stats = false;
  CLI::App app{"claim-storm: a crowd of members claiming packs from voucherd"};
  app.add_option("--target", o.target, "voucherd host:port")->required();
  app.add_option("--campaign", o.campaign_id, "campaign id")->required();
  app.add_option("--members", o.members, "distinct members")->capture_default_str();
  app.add_option("--repeat-share", o.repeat_share, "extra presses as a share of members")
      ->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "calls in flight")->capture_default_str();
  app.add_option("--max-seconds", o.max_seconds, "stop sending after this long")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "crowd shuffle seed")->capture_default_str();
  app.add_flag("--expect-sold-out", expect_sold_out,
               "fail unless every pack of the campaign was issued");
  app.add_flag("--progress", o.progress, "a progress line per second");
  app.add_flag("--skip-stats-check", skip_stats,
               "do not cross-check against GetCampaignStats (benchmarks that count store work "
               "for the claims alone)");
  app.add_option("--max-retries", o.max_retries,
                 "send a press again after RESOURCE_EXHAUSTED/UNAVAILABLE, up to this many times")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const auto report = voucherd::load::run_storm(o);
  std::cout << voucherd::load::format_report(report);
  if (skip_stats) {
    std::cout << (report.consistent() ? "RESULT: OK" : "RESULT: FAILED") << "\n";
    return report.consistent() ? 0 : 1;
  }

  auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto admin = voucher::v1::AdminService::NewStub(channel);
  grpc::ClientContext ctx;
  voucher::v1::GetCampaignStatsRequest req;
  req.set_campaign_id(o.campaign_id);
  voucher::v1::CampaignStats stats;
  const grpc::Status s = admin->GetCampaignStats(&ctx, req, &stats);
  if (!s.ok()) {
    std::cerr << "GetCampaignStats failed: " << s.error_message() << "\n";
    return 1;
  }
  std::cout << "server stats       stock " << stats.stock_total() << ", issued " << stats.issued()
            << ", remaining " << stats.remaining() << ", members " << stats.members() << "\n";
  bool ok = report.consistent() && stats.issued() == report.issued &&
            stats.issued() <= stats.stock_total();
  if (expect_sold_out) ok = ok && stats.issued() == stats.stock_total() && stats.remaining() == 0;
  std::cout << (ok ? "RESULT: OK" : "RESULT: FAILED") << "\n";
  return ok ? 0 : 1;
}
