// voucher-audit — re-derives every draw of a LOTTERY campaign from its
// revealed seed, offline, and says whether each follows from the rules.
//
//   voucher-audit --campaign campaign.json --draws draws.jsonl
//                 (--seed HEX | --seed-file seed.txt)
//
// The three files are what `voucherctl export-draws` writes (the campaign as
// GetCampaign shows it, with its seed commitment; one DrawRecord per line in
// protobuf JSON; the seed from RevealSeed). It checks that SHA-256 of the
// seed is the commitment published with the campaign, then replays the log
// in order (engine/lottery.h): each member's draw numbers and daily counts,
// the release schedule, the prize stock, and each draw's outcome and SKU from
// HMAC-SHA256(seed, campaign, member, draw number). Prints "all N draws
// verified" and exits 0, or prints each draw that does not follow and exits
// 1 (2 for unreadable input). See docs/lottery.md for what this proves.
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "engine/campaign_validation.h"
#include "engine/lottery.h"
#include "server/grpc/proto_convert.h"
#include "voucher/v1/voucher.pb.h"

namespace {

namespace v1 = voucher::v1;

int unreadable(const std::string& what) {
  std::cerr << "voucher-audit: " << what << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"voucher-audit — verify every draw of a LOTTERY campaign from its revealed seed",
               "voucher-audit"};
  std::string campaign_path, draws_path, seed_hex, seed_path;
  app.add_option("--campaign", campaign_path, "the campaign as JSON (voucherctl export-draws)")
      ->required();
  app.add_option("--draws", draws_path, "the draws, one JSON DrawRecord per line")->required();
  auto* seed_opt = app.add_option("--seed", seed_hex, "the revealed seed, 64 hex digits");
  app.add_option("--seed-file", seed_path, "a file holding the seed")->excludes(seed_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (!seed_path.empty()) {
    auto read = voucherd::read_file(seed_path, "--seed-file");
    if (!read) return unreadable(read.error());
    seed_hex = std::move(*read);
    while (!seed_hex.empty() && std::isspace(static_cast<unsigned char>(seed_hex.back()))) {
      seed_hex.pop_back();
    }
  }
  const auto seed = voucherd::seed_from_hex(seed_hex);
  if (!seed) return unreadable("the seed must be 64 hex digits (--seed or --seed-file)");

  auto read = voucherd::read_file(campaign_path, "--campaign");
  if (!read) return unreadable(read.error());
  const std::string& text = *read;
  v1::Campaign proto;
  if (auto st = google::protobuf::util::JsonStringToMessage(text, &proto); !st.ok()) {
    return unreadable(campaign_path + ": " + std::string(st.message()));
  }
  auto spec = voucherd::campaign_from_proto(proto);
  if (!spec) return unreadable(campaign_path + ": " + spec.error().message);
  if (auto valid = voucherd::validate_and_normalize(*spec); !valid) {
    return unreadable(campaign_path + ": " + valid.error().message);
  }
  if (spec->mode != voucherd::CampaignMode::kLottery) {
    return unreadable(campaign_path + ": campaign \"" + spec->id + "\" is not a LOTTERY");
  }

  std::ifstream draws(draws_path, std::ios::binary);
  if (!draws) return unreadable("cannot read " + draws_path);
  std::vector<voucherd::DrawEntry> entries;
  std::string line;
  for (std::size_t n = 1; std::getline(draws, line); ++n) {
    if (line.empty()) continue;
    v1::DrawRecord r;
    if (auto st = google::protobuf::util::JsonStringToMessage(line, &r); !st.ok()) {
      return unreadable(draws_path + " line " + std::to_string(n) + ": " +
                        std::string(st.message()));
    }
    auto entry = voucherd::draw_entry_from_proto(*spec, r);
    if (!entry) return unreadable(draws_path + " line " + std::to_string(n) + ": " + entry.error());
    entries.push_back(std::move(*entry));
  }

  const voucherd::AuditReport report =
      voucherd::audit_draws(*spec, *seed, proto.seed_commitment(), entries);
  if (!report.commitment_matches) {
    std::cout << "the seed does not match the campaign's commitment "
              << (proto.seed_commitment().empty() ? "(none published)" : proto.seed_commitment())
              << ": SHA-256 of the seed is " << voucherd::seed_commitment(*seed) << "\n";
  }
  for (const voucherd::AuditProblem& p : report.problems) {
    std::cout << draws_path << " line " << p.index + 1 << ": " << p.what << "\n";
  }
  if (report.commitment_matches && report.problems.empty()) {
    std::cout << "all " << report.draws << " draws verified\n";
    return 0;
  }
  std::cout << report.problems.size() << " of " << report.draws
            << " draws do not follow from the rules\n";
  return 1;
}
