// voucher-audit — re-derives, offline, every draw of a LOTTERY campaign or
// the allocation of an APPLY_THEN_DRAW campaign from its revealed seed, and
// says whether each outcome follows from the rules.
//
//   voucher-audit --campaign campaign.json --draws draws.jsonl
//                 (--seed HEX | --seed-file seed.txt)
//   voucher-audit --campaign campaign.json --applications applications.jsonl
//                 [--stats stats.json] (--seed HEX | --seed-file seed.txt)
//
// The files are what `voucherctl export-draws` and `export-applications`
// write: the campaign as GetCampaign shows it, with its seed commitment; one
// DrawRecord or ApplicationRecord per line in protobuf JSON; GetCampaignStats
// (the published count of applications); the seed from RevealSeed. It checks
// that SHA-256 of the seed is the commitment published with the campaign,
// then:
//   draws: replays the log in order (engine/lottery.h): each member's draw
//     numbers and daily counts, the release schedule, the prize stock, and
//     each draw's outcome and SKU from HMAC-SHA256(seed, campaign, member,
//     draw number);
//   applications: replays the allocation (engine/apply.h) from the
//     applications alone, ranked by HMAC-SHA256(seed, campaign, member), and
//     compares each member's outcome, the count of applications with the
//     published one, and the count selected.
// Prints "all N draws verified" (or "the allocation of N applications
// verified") and exits 0, or prints each outcome that does not follow (the
// first 1,000, then how many in all) and exits 1; 2 for unreadable input.
// See docs/lottery.md for what this proves.
#include <google/protobuf/util/json_util.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "engine/apply.h"
#include "engine/campaign_validation.h"
#include "engine/lottery.h"
#include "server/grpc/proto_convert.h"
#include "voucher/v1/voucher.pb.h"

namespace {

namespace v1 = voucher::v1;

// Problems printed one per line; the rest are only counted.
constexpr std::size_t kProblemsShown = 1'000;

int unreadable(const std::string& what) {
  std::cerr << "voucher-audit: " << what << "\n";
  return 2;
}

// A JSON file holding one message.
template <class Message>
std::optional<std::string> read_json(const std::string& path, const char* flag, Message& out) {
  auto read = voucherd::read_file(path, flag);
  if (!read) return read.error();
  if (auto st = google::protobuf::util::JsonStringToMessage(*read, &out); !st.ok()) {
    return path + ": " + std::string(st.message());
  }
  return std::nullopt;
}

// Each line of a JSON-lines file as `Record`, converted by `convert`
// (which names what does not fit), with its line number in `line_of`
// (blank lines are skipped); an error names the line.
template <class Record, class Entry, class Convert>
std::optional<std::string> read_lines(const std::string& path, std::vector<Entry>& out,
                                      std::vector<std::size_t>& line_of, Convert convert) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (std::all_of(line.begin(), line.end(),
                    [](unsigned char c) { return std::isspace(c) != 0; })) {
      continue;
    }
    Record r;
    if (auto st = google::protobuf::util::JsonStringToMessage(line, &r); !st.ok()) {
      return path + " line " + std::to_string(n) + ": " + std::string(st.message());
    }
    auto entry = convert(r);
    if (!entry) return path + " line " + std::to_string(n) + ": " + entry.error();
    out.push_back(std::move(*entry));
    line_of.push_back(n);
  }
  return std::nullopt;
}

void print_commitment(const voucherd::LotterySeed& seed, const std::string& published) {
  std::cout << "the seed does not match the campaign's commitment "
            << (published.empty() ? "(none published)" : published) << ": SHA-256 of the seed is "
            << voucherd::seed_commitment(seed) << "\n";
}

// Each problem as "<path> line N: what" (the first kProblemsShown), N
// the line of the entry it is about (`line_of`); a problem indexed past the
// last entry is about the file as a whole.
void print_problems(const std::string& path, const std::vector<std::size_t>& line_of,
                    const std::vector<voucherd::AuditProblem>& problems) {
  std::size_t shown = 0;
  for (const voucherd::AuditProblem& p : problems) {
    if (shown++ == kProblemsShown) {
      std::cout << "... and " << problems.size() - kProblemsShown << " more\n";
      break;
    }
    if (p.index < line_of.size()) {
      std::cout << path << " line " << line_of[p.index] << ": " << p.what << "\n";
    } else {
      std::cout << path << ": " << p.what << "\n";
    }
  }
}

int audit_draws(const voucherd::CampaignSpec& spec, const voucherd::LotterySeed& seed,
                const v1::Campaign& proto, const std::string& draws_path) {
  std::vector<voucherd::DrawEntry> entries;
  std::vector<std::size_t> line_of;
  if (auto bad = read_lines<v1::DrawRecord>(
          draws_path, entries, line_of,
          [&](const v1::DrawRecord& r) { return voucherd::draw_entry_from_proto(spec, r); })) {
    return unreadable(*bad);
  }
  const voucherd::AuditReport report =
      voucherd::audit_draws(spec, seed, proto.seed_commitment(), entries);
  if (!report.commitment_matches) print_commitment(seed, proto.seed_commitment());
  print_problems(draws_path, line_of, report.problems);
  if (report.commitment_matches && report.problems.empty()) {
    std::cout << "all " << report.draws << " draws verified\n";
    return 0;
  }
  std::cout << report.problems.size() << " of " << report.draws
            << " draws do not follow from the rules\n";
  return 1;
}

int audit_applications(const voucherd::CampaignSpec& spec, const voucherd::LotterySeed& seed,
                       const v1::Campaign& proto, const std::string& applications_path,
                       const std::optional<v1::CampaignStats>& stats) {
  std::vector<voucherd::ApplicationOutcome> outcomes;
  std::vector<std::size_t> line_of;
  if (auto bad = read_lines<v1::ApplicationRecord>(
          applications_path, outcomes, line_of, [&](const v1::ApplicationRecord& r) {
            return voucherd::application_outcome_from_proto(spec, r);
          })) {
    return unreadable(*bad);
  }
  std::optional<std::int64_t> published;
  if (stats) published = stats->applications();
  voucherd::AllocationAudit report =
      voucherd::audit_allocation(spec, seed, proto.seed_commitment(), outcomes, published);
  // The selected are published once the allocation is done; counts taken
  // earlier (the applications, published before allocation_at) say nothing
  // of them.
  if (stats && stats->allocation() == v1::ALLOCATION_STATE_DONE &&
      stats->selected() != report.selected) {
    report.problems.push_back({outcomes.size(), std::to_string(stats->selected()) +
                                                    " applicants were published as selected, "
                                                    "and the export selects " +
                                                    std::to_string(report.selected)});
  }
  if (!report.commitment_matches) print_commitment(seed, proto.seed_commitment());
  print_problems(applications_path, line_of, report.problems);
  if (!stats) {
    std::cout << "no --stats: the count of applications was not compared with the published "
                 "one\n";
  }
  if (report.commitment_matches && report.problems.empty()) {
    std::cout << "the allocation of " << report.applications << " applications verified ("
              << report.selected << " selected)\n";
    return 0;
  }
  // A seed that is not the committed one counts as one.
  const std::size_t problems = report.problems.size() + (report.commitment_matches ? 0 : 1);
  std::cout << problems << (problems == 1 ? " problem" : " problems") << " in the allocation of "
            << report.applications << " applications\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "voucher-audit — verify every draw of a LOTTERY campaign, or the allocation of an "
      "APPLY_THEN_DRAW campaign, from its revealed seed",
      "voucher-audit"};
  std::string campaign_path, draws_path, applications_path, stats_path, seed_hex, seed_path;
  app.add_option("--campaign", campaign_path,
                 "the campaign as JSON (voucherctl export-draws or export-applications)")
      ->required();
  auto* draws_opt =
      app.add_option("--draws", draws_path, "a LOTTERY's draws, one JSON DrawRecord per line");
  auto* applications_opt = app.add_option(
      "--applications", applications_path,
      "an APPLY_THEN_DRAW campaign's applications, one JSON ApplicationRecord per line");
  applications_opt->excludes(draws_opt);
  app.add_option("--stats", stats_path,
                 "the published counts (GetCampaignStats as JSON), with --applications")
      ->needs(applications_opt);
  auto* seed_opt = app.add_option("--seed", seed_hex, "the revealed seed, 64 hex digits");
  app.add_option("--seed-file", seed_path, "a file holding the seed")->excludes(seed_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (draws_path.empty() && applications_path.empty()) {
    return unreadable("give --draws (a LOTTERY) or --applications (an APPLY_THEN_DRAW campaign)");
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

  v1::Campaign proto;
  if (auto bad = read_json(campaign_path, "--campaign", proto)) return unreadable(*bad);
  auto spec = voucherd::campaign_from_proto(proto);
  if (!spec) return unreadable(campaign_path + ": " + spec.error().message);
  if (auto valid = voucherd::validate_and_normalize(*spec); !valid) {
    return unreadable(campaign_path + ": " + valid.error().message);
  }
  if (!draws_path.empty()) {
    if (spec->mode != voucherd::CampaignMode::kLottery) {
      return unreadable(campaign_path + ": campaign \"" + spec->id +
                        "\" is not a LOTTERY, and --draws audits one");
    }
    return audit_draws(*spec, *seed, proto, draws_path);
  }
  if (spec->mode != voucherd::CampaignMode::kApplyThenDraw) {
    return unreadable(campaign_path + ": campaign \"" + spec->id +
                      "\" is not APPLY_THEN_DRAW, and --applications audits one");
  }
  std::optional<v1::CampaignStats> stats;
  if (!stats_path.empty()) {
    stats.emplace();
    if (auto bad = read_json(stats_path, "--stats", *stats)) return unreadable(*bad);
    if (!stats->campaign_id().empty() && stats->campaign_id() != spec->id) {
      return unreadable(stats_path + ": the counts of campaign \"" + stats->campaign_id() +
                        "\", not \"" + spec->id + "\"");
    }
  }
  return audit_applications(*spec, *seed, proto, applications_path, stats);
}
