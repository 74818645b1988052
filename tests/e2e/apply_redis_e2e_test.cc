// apply_redis_e2e_test — APPLY_THEN_DRAW campaigns on two voucherd replicas
// sharing one real Redis, over real gRPC, each member pressing once: the
// campaign created on one replica is served by both with one commitment;
// applications made on either are seen (and retried, and replaced) on the
// other; Redis's clock closes the window; exactly one replica's allocating
// thread writes the allocation (nobody calls anything to start it), and
// every member's outcome, read on either replica, is what allocate() gives
// from the revealed seed; the winners' vouchers are listed and redeemed on
// the replica that did not write them; Redis holds exactly the stock issued.
// And a failover: the allocating replica paused midway loses its turn when
// its lease lapses; the other continues from where it stood, with nobody
// calling anything; the paused one, resumed, is fenced; every pack is
// written once. Determinism: the same applications in another order, on
// other replicas of another cluster with the same seed, give the same
// allocation; fewer applicants than packs are all selected. The export of
// either run, audited by voucher-audit, verifies;
// a swapped outcome, a dropped application and a changed seed byte are
// each reported.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/lottery.h"
#include "server/grpc/proto_convert.h"
#include "tests/support/applications.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/exposition_check.h"
#include "tests/support/http_get.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using std::chrono::seconds;
using SystemClock = std::chrono::system_clock;

std::vector<std::string> ids_of(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  return {ids.begin(), ids.end()};
}

// How many times `text` holds `what`.
int occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// `voucherctl export-applications` of `campaign` from `target` into the
// folder `out`: its exit status, with what it said on stderr in `err`.
int export_applications(const TempDir& dir, const std::string& target, const std::string& campaign,
                        const std::filesystem::path& out, std::string* err) {
  std::string said;
  return run_program(dir,
                     {VOUCHERCTL_BINARY, "export-applications", "--campaign", campaign, "--target",
                      target, "--out", out.string()},
                     &said, err);
}

// voucher-audit of the campaign exported into `exported`, with `args`
// (--applications, --stats, the seed): its exit status, with its output in
// `out` and `err`.
int audit_export(const TempDir& dir, const std::filesystem::path& exported,
                 std::vector<std::string> args, std::string* out, std::string* err) {
  args.insert(args.begin(),
              {VOUCHER_AUDIT_BINARY, "--campaign", (exported / "campaign.json").string()});
  return run_program(dir, args, out, err);
}

TEST(ApplyRedisEndToEnd, TwoReplicasTakeApplicationsAndOneAllocatesThemForBoth) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  VoucherdProcess a(dir, replica_args(redis, secret));
  VoucherdProcess b(dir, replica_args(redis, secret));
  ASSERT_NE(a.port(), 0);
  ASSERT_NE(b.port(), 0);
  Client ca(a.target()), cb(b.target());

  // Created on a; b serves it from the registry. Whole seconds on the wire:
  // the window ends 11 to 12 s from now, allocated at its end.
  const auto now = SystemClock::now();
  const auto ends = now + seconds(12);
  const auto created = ca.create_campaign(spring_and_hotel("apply", 2, 1)
                                              .window(now - seconds(60), ends)
                                              .apply_then_draw(ends)
                                              .message());
  ASSERT_TRUE(created.ok()) << created.status.error_message();
  ASSERT_TRUE(wait_until([&] { return cb.get_campaign("apply").ok(); }, seconds(10)));
  EXPECT_EQ(cb.get_campaign("apply").response.seed_commitment(),
            created.response.seed_commitment());
  EXPECT_EQ(created.response.seed_commitment().size(), 64U);

  // Ten members press Apply once each, half on each replica.
  Applications stands;
  const std::vector<std::vector<std::string>> choices = {{"spring"}, {"room", "spring"}, {}};
  for (int i = 0; i < 10; ++i) {
    const std::string member = "m-" + std::to_string(i);
    const Client& c = i % 2 == 0 ? ca : cb;
    const auto& skus = choices[static_cast<std::size_t>(i) % choices.size()];
    const auto r = c.apply("apply", member, "first-" + member, skus);
    ASSERT_TRUE(r.ok()) << member << ": " << r.status.error_message();
    EXPECT_EQ(r.response.application().state(), v1::APPLICATION_STATE_PENDING);
    EXPECT_EQ(ids_of(r.response.application().preferred_sku_ids()), skus);
    EXPECT_FALSE(r.response.replaced());
    EXPECT_FALSE(r.response.already_applied());
    stands[member] = skus;
  }
  // m-0's press retried on the other replica changes nothing; m-3 changes
  // their mind on the other replica.
  const auto retry = cb.apply("apply", "m-0", "first-m-0", {"room"});
  ASSERT_TRUE(retry.ok()) << retry.status.error_message();
  EXPECT_TRUE(retry.response.already_applied());
  EXPECT_EQ(ids_of(retry.response.application().preferred_sku_ids()),
            std::vector<std::string>{"spring"});
  const auto change = ca.apply("apply", "m-3", "second-m-3", {"room"});
  ASSERT_TRUE(change.ok()) << change.status.error_message();
  EXPECT_TRUE(change.response.replaced());
  stands["m-3"] = {"room"};
  // Read on the replica that did not take it: the application as it stands.
  const auto pending = cb.get_application("apply", "m-3");
  ASSERT_TRUE(pending.ok()) << pending.status.error_message();
  EXPECT_EQ(pending.response.state(), v1::APPLICATION_STATE_PENDING);
  EXPECT_EQ(ids_of(pending.response.preferred_sku_ids()), std::vector<std::string>{"room"});
  const auto stranger = ca.get_application("apply", "m-99");
  EXPECT_EQ(stranger.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stranger.reason(), "APPLICATION_NOT_FOUND");
  EXPECT_EQ(redis.cli({"HLEN", "vd:{apply}:apps"}), "10");
  const auto before = ca.stats("apply");
  ASSERT_TRUE(before.ok()) << before.status.error_message();
  EXPECT_EQ(before.response.applications(), 10);  // both replicas' applications
  EXPECT_EQ(before.response.allocation(), v1::ALLOCATION_STATE_NOT_STARTED);
  EXPECT_EQ(before.response.selected(), 0);
  // The export, before the allocation: every application, by member, from
  // either replica, PENDING, with its preferences as they stand.
  const auto early = cb.export_applications("apply");
  ASSERT_TRUE(early.ok()) << early.status.error_message();
  ASSERT_EQ(early.response.size(), 10U);
  auto expected_member = stands.begin();
  for (const v1::ApplicationRecord& r : early.response) {
    EXPECT_EQ(r.member_id(), expected_member->first);
    EXPECT_EQ(ids_of(r.preferred_sku_ids()), expected_member->second) << r.member_id();
    EXPECT_EQ(r.state(), v1::APPLICATION_STATE_PENDING) << r.member_id();
    EXPECT_EQ(r.sku_id(), "") << r.member_id();
    EXPECT_GT(r.applied_at().seconds(), 0) << r.member_id();
    ++expected_member;
  }
  // What a union publishes before the allocation: the count of
  // applications (voucherctl's export says it is not the final one, and
  // writes no seed).
  const std::filesystem::path published_early = dir.path() / "published";
  std::string out, err;
  ASSERT_EQ(export_applications(dir, b.target(), "apply", published_early, &err), 0) << err;
  EXPECT_EQ(err,
            "voucherctl: 10 applications, 0 selected\n"
            "voucherctl: the allocation is not done (ALLOCATION_STATE_NOT_STARTED): applications "
            "without a pack are PENDING; export again once it is\n");
  EXPECT_FALSE(std::filesystem::exists(published_early / "seed.txt"));
  EXPECT_EQ(occurrences(read_text(published_early / "applications.jsonl"),
                        "\"state\":\"APPLICATION_STATE_PENDING\""),
            10);

  // The allocation follows on its own: each member reads their outcome,
  // alternating replicas, until it is no longer PENDING.
  Outcomes outcome;
  ASSERT_TRUE(read_outcomes(
      "apply", stands, [&](int k) -> const Client& { return k % 2 == 0 ? ca : cb; }, outcome,
      seconds(40)))
      << "the allocation did not happen within 40 s of the window's end";
  const OutcomeTally won = tally(outcome);
  EXPECT_EQ(won.won_per_sku, (std::map<std::string, int>{{"room", 1}, {"spring", 2}}));
  EXPECT_EQ(won.codes.size(), 3U);

  // Both replicas reveal the one seed once they see the allocation done;
  // replaying it gives every member what they got.
  Reply<v1::RevealSeedResponse> from_a, from_b;
  ASSERT_TRUE(wait_until(
      [&] {
        from_a = ca.reveal_seed("apply");
        from_b = cb.reveal_seed("apply");
        return from_a.ok() && from_b.ok();
      },
      seconds(10)))
      << from_a.status.error_message() << " / " << from_b.status.error_message();
  EXPECT_EQ(from_a.response.seed(), from_b.response.seed());
  // Each replica, the one that wrote it and the other, says it is done.
  for (const VoucherdProcess* p : {&a, &b}) {
    const auto metrics = parse_exposition(http_get(p->ops_port(), "/metrics").body);
    ASSERT_TRUE(metrics.has_value()) << metrics.error();
    EXPECT_EQ(series_value(*metrics, "voucherd_allocation_done{campaign=\"apply\"}"), 1);
  }
  const auto seed = seed_from_hex(from_a.response.seed());
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(seed_commitment(*seed), created.response.seed_commitment());
  auto spec = campaign_from_proto(cb.get_campaign("apply").response);
  ASSERT_TRUE(spec.has_value());
  ASSERT_TRUE(validate_and_normalize(*spec).has_value());
  expect_replayed(*spec, *seed, stands, outcome);

  // Redis holds exactly what was allocated.
  EXPECT_EQ(redis.cli({"HGET", "vd:{apply}:alloc", "state"}), "done");
  EXPECT_EQ(redis.cli({"HGET", "vd:{apply}:alloc", "total"}), "10");
  EXPECT_EQ(redis.cli({"HGET", "vd:{apply}:alloc", "selected"}), "3");
  EXPECT_EQ(redis.cli({"HLEN", "vd:{apply}:won"}), "3");
  EXPECT_EQ(redis_sum(redis, "vd:{apply}:issued"), 3);
  EXPECT_EQ(redis.cli({"HGET", "vd:{apply}:issued", "_members"}), "3");
  EXPECT_EQ(redis_sum(redis, "vd:{apply}:stock"), 0);

  // Applications are closed, on either replica.
  for (const Client* c : {&ca, &cb}) {
    const auto late = c->apply("apply", "m-10", "late", {});
    EXPECT_EQ(late.code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(late.reason(), "CLOSED");
  }

  // Each winner finds the voucher on both replicas and redeems it at its site.
  for (const auto& [member, application] : outcome) {
    if (application.state() != v1::APPLICATION_STATE_SELECTED) continue;
    for (const Client* c : {&ca, &cb}) {
      const auto listed = c->list_member_vouchers(member);
      ASSERT_TRUE(listed.ok()) << listed.status.error_message();
      ASSERT_EQ(listed.response.vouchers_size(), 1) << member;
      EXPECT_EQ(listed.response.vouchers(0).code(), application.voucher().code());
    }
  }
  const auto winner = std::find_if(outcome.begin(), outcome.end(), [](const auto& o) {
    return o.second.state() == v1::APPLICATION_STATE_SELECTED;
  });
  ASSERT_NE(winner, outcome.end());
  const auto redeemed =
      ca.redeem(winner->second.voucher().code(), winner->second.voucher().site_id(), "r-1");
  ASSERT_TRUE(redeemed.ok()) << redeemed.status.error_message();
  const auto after = cb.get_application("apply", winner->first);
  ASSERT_TRUE(after.ok()) << after.status.error_message();
  EXPECT_EQ(after.response.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(after.response.voucher().state(), v1::VOUCHER_STATE_REDEEMED);
  // Another winner's pack cancelled on b is forfeited: the member stays
  // SELECTED, with the voucher CANCELLED, and its unit is not allocated
  // again (issued and remaining do not move).
  const auto other = std::find_if(outcome.begin(), outcome.end(), [&](const auto& o) {
    return o.second.state() == v1::APPLICATION_STATE_SELECTED && o.first != winner->first;
  });
  ASSERT_NE(other, outcome.end());
  const auto cancelled = cb.cancel_voucher(other->second.voucher().code());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status.error_message();
  EXPECT_EQ(cancelled.response.state(), v1::VOUCHER_STATE_CANCELLED);
  const auto forfeited = ca.get_application("apply", other->first);
  ASSERT_TRUE(forfeited.ok()) << forfeited.status.error_message();
  EXPECT_EQ(forfeited.response.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(forfeited.response.voucher().state(), v1::VOUCHER_STATE_CANCELLED);
  EXPECT_EQ(redis_sum(redis, "vd:{apply}:stock"), 0);
  const auto stats = cb.stats("apply");
  ASSERT_TRUE(stats.ok()) << stats.status.error_message();
  EXPECT_EQ(stats.response.issued(), 3);
  EXPECT_EQ(stats.response.remaining(), 0);
  EXPECT_EQ(stats.response.redeemed(), 1);
  EXPECT_EQ(stats.response.applications(), 10);
  EXPECT_EQ(stats.response.allocation(), v1::ALLOCATION_STATE_DONE);
  EXPECT_EQ(stats.response.selected(), 3);
  EXPECT_EQ(stats.response.not_selected(), 7);
  ASSERT_TRUE(stats.response.has_allocated_at());
  // Redis's done_ms: at or after allocation_at, and not in the future.
  EXPECT_GE(stats.response.allocated_at().seconds(), created.response.allocation_at().seconds());
  EXPECT_LE(stats.response.allocated_at().seconds(),
            std::chrono::duration_cast<seconds>(SystemClock::now().time_since_epoch()).count());
  // So do the ops port's /status, and voucherctl, in a line.
  const HttpAnswer status = http_get(b.ops_port(), "/status");
  const auto page = nlohmann::json::parse(status.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(page.is_object()) << status.body;
  const auto& allocation = page["campaigns"][0]["allocation"];
  EXPECT_EQ(allocation["state"], "DONE") << status.body;
  EXPECT_EQ(allocation["applications"], 10);
  EXPECT_EQ(allocation["selected"], 3);
  EXPECT_EQ(allocation["not_selected"], 7);
  ASSERT_EQ(
      run_program(dir, {VOUCHERCTL_BINARY, "stats", "apply", "--target", b.target()}, &out, &err),
      0)
      << err;
  EXPECT_NE(out.find("10 applications; allocated at "), std::string::npos) << out;
  EXPECT_NE(out.find(": 3 selected, 7 not selected"), std::string::npos) << out;

  // The audit export, taken after a pack was forfeited: each member's
  // outcome as the allocation wrote it, and voucher-audit replays it.
  const std::filesystem::path exported = dir.path() / "audit";
  ASSERT_EQ(export_applications(dir, a.target(), "apply", exported, &err), 0) << err;
  EXPECT_EQ(err, "voucherctl: 10 applications, 3 selected\n");
  const std::string lines = read_text(exported / "applications.jsonl");
  EXPECT_EQ(occurrences(lines, "\n"), 10) << lines;
  EXPECT_EQ(occurrences(lines, "\"state\":\"APPLICATION_STATE_SELECTED\""), 3) << lines;
  EXPECT_EQ(occurrences(lines, "\"state\":\"APPLICATION_STATE_NOT_SELECTED\""), 7) << lines;
  // The forfeited pack is still its member's outcome.
  const std::size_t at = lines.find("{\"member_id\":\"" + other->first + "\"");
  ASSERT_NE(at, std::string::npos) << lines;
  const std::string forfeited_line = lines.substr(at, lines.find('\n', at) - at);
  EXPECT_NE(forfeited_line.find("\"state\":\"APPLICATION_STATE_SELECTED\",\"sku_id\":\"" +
                                other->second.voucher().sku_id() + "\""),
            std::string::npos)
      << forfeited_line;
  EXPECT_EQ(read_text(exported / "seed.txt"), from_a.response.seed() + "\n");
  const auto published = nlohmann::json::parse(read_text(exported / "stats.json"), nullptr,
                                               /*allow_exceptions=*/false);
  ASSERT_TRUE(published.is_object());
  EXPECT_EQ(published["applications"], "10");  // int64 is a string in protobuf JSON
  EXPECT_EQ(published["allocation"], "ALLOCATION_STATE_DONE");
  const std::vector<std::string> seed_file = {"--seed-file", (exported / "seed.txt").string()};
  const std::string applications = (exported / "applications.jsonl").string();
  ASSERT_EQ(audit_export(dir, exported,
                         {"--applications", applications, "--stats",
                          (exported / "stats.json").string(), seed_file[0], seed_file[1]},
                         &out, &err),
            0)
      << out << err;
  EXPECT_EQ(out, "the allocation of 10 applications verified (3 selected)\n");
  // Against the count published before the allocation, too.
  ASSERT_EQ(audit_export(dir, exported,
                         {"--applications", applications, "--stats",
                          (published_early / "stats.json").string(), seed_file[0], seed_file[1]},
                         &out, &err),
            0)
      << out << err;
  // An export taken before the allocation cannot be audited, and says why.
  EXPECT_EQ(audit_export(dir, exported,
                         {"--applications", (published_early / "applications.jsonl").string(),
                          seed_file[0], seed_file[1]},
                         &out, &err),
            2);
  EXPECT_NE(err.find("applications.jsonl line 1: PENDING: the export was taken before the "
                     "allocation was done"),
            std::string::npos)
      << err;

  // Tampering is reported: a swapped outcome, a dropped application (a
  // winner, then someone not selected), a changed seed byte.
  std::vector<nlohmann::json> records;
  for (std::size_t from = 0, to; (to = lines.find('\n', from)) != std::string::npos;
       from = to + 1) {
    records.push_back(nlohmann::json::parse(lines.substr(from, to - from)));
  }
  ASSERT_EQ(records.size(), 10U);
  auto audit = [&](const std::vector<nlohmann::json>& tampered, const std::string& seed_text) {
    std::string text;
    for (const nlohmann::json& r : tampered) text += r.dump() + "\n";
    const std::filesystem::path path = dir.write("tampered.jsonl", text);
    std::string said, complained;
    const int exit_status = audit_export(dir, exported,
                                         {"--applications", path.string(), "--stats",
                                          (exported / "stats.json").string(), "--seed", seed_text},
                                         &said, &complained);
    return std::pair{exit_status, said + complained};
  };
  const std::string seed_hex = from_a.response.seed();
  auto selected = [](const nlohmann::json& r) {
    return r["state"] == "APPLICATION_STATE_SELECTED";
  };
  const auto winner_line = std::find_if(records.begin(), records.end(), selected);
  const auto loser_line = std::find_if_not(records.begin(), records.end(), selected);
  ASSERT_NE(winner_line, records.end());
  ASSERT_NE(loser_line, records.end());
  std::vector<nlohmann::json> swapped = records;
  std::swap(swapped[winner_line - records.begin()]["state"],
            swapped[loser_line - records.begin()]["state"]);
  swapped[loser_line - records.begin()]["sku_id"] = (*winner_line)["sku_id"];
  swapped[winner_line - records.begin()].erase("sku_id");
  const auto [swap_status, swap_text] = audit(swapped, seed_hex);
  EXPECT_EQ(swap_status, 1) << swap_text;
  EXPECT_EQ(occurrences(swap_text, ": the export says "), 2) << swap_text;
  EXPECT_NE(swap_text.find("member \"" + (*winner_line)["member_id"].get<std::string>() +
                           "\": the export says NOT_SELECTED, the allocation gives SELECTED " +
                           (*winner_line)["sku_id"].get<std::string>()),
            std::string::npos)
      << swap_text;
  EXPECT_NE(swap_text.find("2 problems in the allocation of 10 applications"), std::string::npos)
      << swap_text;
  std::vector<nlohmann::json> without_winner = records;
  without_winner.erase(without_winner.begin() + (winner_line - records.begin()));
  const auto [winner_status, winner_text] = audit(without_winner, seed_hex);
  EXPECT_EQ(winner_status, 1) << winner_text;
  EXPECT_NE(winner_text.find("10 applications were published, and the export has 9"),
            std::string::npos)
      << winner_text;
  EXPECT_NE(winner_text.find("3 applicants were published as selected, and the export selects 2"),
            std::string::npos)
      << winner_text;
  std::vector<nlohmann::json> without_loser = records;
  without_loser.erase(without_loser.begin() + (loser_line - records.begin()));
  const auto [loser_status, loser_text] = audit(without_loser, seed_hex);
  EXPECT_EQ(loser_status, 1) << loser_text;
  EXPECT_NE(loser_text.find("10 applications were published, and the export has 9\n"
                            "1 problem in the allocation of 9 applications\n"),
            std::string::npos)
      << loser_text;
  std::string other_seed = seed_hex;
  other_seed[10] = other_seed[10] == '0' ? '1' : '0';
  const auto [seed_status, seed_text] = audit(records, other_seed);
  EXPECT_EQ(seed_status, 1) << seed_text;
  EXPECT_NE(seed_text.find("does not match the campaign's commitment"), std::string::npos)
      << seed_text;
  // Problems are named by their line in the file, blank lines counted.
  std::string spaced;
  for (const nlohmann::json& r : swapped) spaced += "\n" + r.dump() + "\n";
  const std::filesystem::path spaced_path = dir.write("spaced.jsonl", spaced);
  EXPECT_EQ(audit_export(dir, exported,
                         {"--applications", spaced_path.string(), "--seed", seed_hex}, &out, &err),
            1);
  const std::string winner_member = (*winner_line)["member_id"].get<std::string>();
  EXPECT_NE(out.find(spaced_path.string() + " line " +
                     std::to_string(2 * (winner_line - records.begin()) + 2) + ": member \"" +
                     winner_member + "\""),
            std::string::npos)
      << out;
  // A line naming a SKU the campaign does not have is unreadable input.
  std::vector<nlohmann::json> unknown_sku = records;
  unknown_sku[winner_line - records.begin()]["sku_id"] = "no-such-sku";
  const auto [unknown_status, unknown_text] = audit(unknown_sku, seed_hex);
  EXPECT_EQ(unknown_status, 2) << unknown_text;
  EXPECT_NE(unknown_text.find("line " + std::to_string(winner_line - records.begin() + 1) +
                              ": SELECTED for SKU \"no-such-sku\", which the campaign does not "
                              "have"),
            std::string::npos)
      << unknown_text;
  // Flags that do not go together are refused (exit 2).
  for (const std::vector<std::string>& wrong :
       {std::vector<std::string>{"--seed", seed_hex},
        std::vector<std::string>{"--seed", seed_hex, "--draws", spaced_path.string(),
                                 "--applications", spaced_path.string()},
        std::vector<std::string>{"--seed", seed_hex, "--draws", spaced_path.string(), "--stats",
                                 (exported / "stats.json").string()}}) {
    EXPECT_EQ(audit_export(dir, exported, wrong, &out, &err), 2)
        << wrong.size() << ": " << out << err;
  }

  // One replica wrote the allocation; the other saw it done.
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(b.stop(SIGTERM), std::optional<int>(0));
  const std::string logs = a.stderr_text() + b.stderr_text();
  EXPECT_EQ(occurrences(logs, "campaign \\\"apply\\\": allocated"), 1) << logs;
  EXPECT_EQ(occurrences(logs, "\"written_here\":10"), 1) << logs;
  // And neither met a problem on the way (a refused step, a lost turn).
  EXPECT_EQ(logs.find("apply\\\": allocation: "), std::string::npos) << logs;
}

TEST(ApplyRedisEndToEnd, AnAllocatingReplicaPausedMidwayIsFencedAndAnotherFinishes) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  // One winner a step, so the allocation of 1,000 packs takes 1,000 steps:
  // long enough to pause it after the first; a lease of a second.
  auto args = [&](const std::string& id) {
    auto a = replica_args(redis, secret);
    a.insert(a.end(),
             {"--replica-id", id, "--allocation-batch-max", "1", "--allocation-lease-ms", "1000"});
    return a;
  };
  VoucherdProcess a(dir, args("replica-a"));
  ASSERT_NE(a.port(), 0);
  Client ca(a.target());
  const auto now = SystemClock::now();
  const auto ends = now + seconds(10);
  const auto created = ca.create_campaign(spring_and_hotel("failover", 800, 200)
                                              .window(now - seconds(60), ends)
                                              .apply_then_draw(ends)
                                              .message());
  ASSERT_TRUE(created.ok()) << created.status.error_message();
  // 1,200 members apply once each, naming nothing, spring, or room first.
  Applications applied;
  const std::vector<std::vector<std::string>> choices = {{}, {"spring"}, {"room", "spring"}};
  for (int i = 0; i < 1'200; ++i) {
    const std::string member = "m-" + std::to_string(i);
    const auto& skus = choices[static_cast<std::size_t>(i) % choices.size()];
    const auto r = ca.apply("failover", member, "r-" + member, skus);
    ASSERT_TRUE(r.ok()) << member << ": " << r.status.error_message();
    applied[member] = skus;
  }
  ASSERT_LT(SystemClock::now(), ends) << "the applications took longer than the window";

  // replica-a, alone, takes the turn at allocation_at; pause it once it
  // has written its first step.
  auto conn = redis.connect();
  ASSERT_TRUE(conn.has_value()) << conn.error();
  std::int64_t paused_at = -1;
  for (const auto give_up = std::chrono::steady_clock::now() + seconds(60);
       std::chrono::steady_clock::now() < give_up;) {
    auto r = (*conn)->command({"HGET", "vd:{failover}:alloc", "next"});
    ASSERT_TRUE(r.has_value()) << r.error();
    if (r->type == redis::Reply::Type::kString && r->str != "0") {
      a.send_signal(SIGSTOP);
      paused_at = std::stoll(r->str);
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_GE(paused_at, 1) << "the allocation did not begin";
  ASSERT_LT(paused_at, 1'000) << "the allocation was done before it could be paused";
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "owner"}), "replica-a");
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "state"}), "running");

  // replica-b comes up; once replica-a's lease lapses it takes the turn
  // (epoch 2) and finishes, from where replica-a stood.
  VoucherdProcess b(dir, args("replica-b"));
  ASSERT_NE(b.port(), 0);
  Client cb(b.target());
  Outcomes outcomes;
  ASSERT_TRUE(read_outcomes(
      "failover", applied, [&](int) -> const Client& { return cb; }, outcomes, seconds(60)))
      << "the allocation was not finished by replica-b";
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "state"}), "done");
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "owner"}), "replica-b");
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "epoch"}), "2");

  // replica-a resumes: its next step is refused (its epoch is 1), and it
  // writes nothing more.
  a.send_signal(SIGCONT);
  ASSERT_TRUE(wait_until(
      [&] { return a.stderr_text().find("another replica took the turn") != std::string::npos; },
      seconds(20)))
      << a.stderr_text();

  // Every pack written once: 1,000 selected, 200 not, each winner holding
  // one voucher, and the outcome the seed gives.
  const OutcomeTally won = tally(outcomes);
  EXPECT_EQ(won.won_per_sku, (std::map<std::string, int>{{"room", 200}, {"spring", 800}}));
  EXPECT_EQ(won.codes.size(), 1'000U);
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:alloc", "selected"}), "1000");
  EXPECT_EQ(redis.cli({"HLEN", "vd:{failover}:won"}), "1000");
  EXPECT_EQ(redis_sum(redis, "vd:{failover}:issued"), 1'000);
  EXPECT_EQ(redis.cli({"HGET", "vd:{failover}:issued", "_members"}), "1000");
  EXPECT_EQ(redis_sum(redis, "vd:{failover}:stock"), 0);
  const auto records = (*conn)->command({"KEYS", "vd:{failover}:v:*"});
  ASSERT_TRUE(records.has_value()) << records.error();
  EXPECT_EQ(records->elements.size(), 1'000U);  // one voucher record a winner
  Reply<v1::RevealSeedResponse> seed_reply;
  ASSERT_TRUE(wait_until(
      [&] {
        seed_reply = ca.reveal_seed("failover");
        return seed_reply.ok();
      },
      seconds(10)))
      << seed_reply.status.error_message();
  const auto seed = seed_from_hex(seed_reply.response.seed());
  ASSERT_TRUE(seed.has_value());
  auto spec = campaign_from_proto(cb.get_campaign("failover").response);
  ASSERT_TRUE(spec.has_value());
  ASSERT_TRUE(validate_and_normalize(*spec).has_value());
  expect_replayed(*spec, *seed, applied, outcomes);
  const auto stats = ca.stats("failover");
  ASSERT_TRUE(stats.ok()) << stats.status.error_message();
  EXPECT_EQ(stats.response.selected(), 1'000);
  EXPECT_EQ(stats.response.not_selected(), 200);
  EXPECT_EQ(stats.response.allocation(), v1::ALLOCATION_STATE_DONE);
  // And the audit of the export, from the replica that was fenced, passes.
  const std::filesystem::path exported = dir.path() / "audit";
  std::string out, err;
  ASSERT_EQ(export_applications(dir, a.target(), "failover", exported, &err), 0) << err;
  ASSERT_EQ(audit_export(dir, exported,
                         {"--applications", (exported / "applications.jsonl").string(), "--stats",
                          (exported / "stats.json").string(), "--seed-file",
                          (exported / "seed.txt").string()},
                         &out, &err),
            0)
      << out << err;
  EXPECT_EQ(out, "the allocation of 1200 applications verified (1000 selected)\n");
  EXPECT_EQ(a.stop(SIGTERM), std::optional<int>(0));
  EXPECT_EQ(b.stop(SIGTERM), std::optional<int>(0));
}

// Two clusters of two replicas, each on its own Redis holding the same seed
// (set before the campaign is created: the first seed stays), take the same
// 300 applications to the same campaign: in one, in member order, even
// members on replica a; in the other, in reverse order, even members on
// replica b. The allocations they make on their own are the same, member by
// member. And where fewer apply than there is stock, every applicant is
// selected with their first choice.
TEST(ApplyRedisEndToEnd, TheSameApplicationsInAnotherOrderOnOtherReplicasGiveTheSameAllocation) {
  const std::string seed_hex(64, 'c');
  struct Cluster {
    TempDir dir;
    RedisServer redis{dir};
    std::string secret = dir.write("secret.hex", test_secret_hex()).string();
    std::unique_ptr<VoucherdProcess> a, b;
  };
  std::array<Cluster, 2> clusters;
  for (Cluster& c : clusters) {
    ASSERT_EQ(c.redis.cli({"SET", "vd:{det}:seed", seed_hex}), "OK");
    ASSERT_EQ(c.redis.cli({"SET", "vd:{few}:seed", seed_hex}), "OK");
    c.a = std::make_unique<VoucherdProcess>(c.dir, replica_args(c.redis, c.secret));
    c.b = std::make_unique<VoucherdProcess>(c.dir, replica_args(c.redis, c.secret));
    ASSERT_NE(c.a->port(), 0);
    ASSERT_NE(c.b->port(), 0);
  }
  // One definition for both clusters: 60 packs (40 spring, 20 room), the
  // window closing 15 to 16 s from now, allocated then.
  const auto now = SystemClock::now();
  const auto ends = now + seconds(16);
  const v1::Campaign det = spring_and_hotel("det", 40, 20)
                               .window(now - seconds(60), ends)
                               .apply_then_draw(ends)
                               .message();
  const v1::Campaign few = spring_and_hotel("few", 40, 20)
                               .window(now - seconds(60), ends)
                               .apply_then_draw(ends)
                               .message();
  std::string commitment;
  for (Cluster& c : clusters) {
    for (const v1::Campaign* campaign : {&det, &few}) {
      const auto created = Client(c.a->target()).create_campaign(*campaign);
      ASSERT_TRUE(created.ok()) << created.status.error_message();
      if (commitment.empty()) commitment = created.response.seed_commitment();
      EXPECT_EQ(created.response.seed_commitment(), commitment);  // the one seed
      // Replica b serves it from the registry within a second.
      ASSERT_TRUE(wait_until(
          [&] { return Client(c.b->target()).get_campaign(campaign->id()).ok(); }, seconds(10)));
    }
  }
  const std::vector<std::vector<std::string>> choices = {
      {}, {"spring"}, {"room", "spring"}, {"room"}};
  auto preferences = [&](int m) { return choices[static_cast<std::size_t>(m) % choices.size()]; };
  for (int k = 0; k < 2; ++k) {
    Client ca(clusters[k].a->target()), cb(clusters[k].b->target());
    for (int i = 0; i < 300; ++i) {
      const int m = k == 0 ? i : 299 - i;
      const std::string member = "m-" + std::to_string(m);
      const Client& c = (m % 2 == 0) == (k == 0) ? ca : cb;
      const auto r = c.apply("det", member, "r-" + member, preferences(m));
      ASSERT_TRUE(r.ok()) << member << ": " << r.status.error_message();
    }
  }
  // 25 members apply to "few" on the first cluster, naming spring or nothing.
  Client first(clusters[0].a->target());
  for (int m = 0; m < 25; ++m) {
    const std::string member = "f-" + std::to_string(m);
    const std::vector<std::string> wants =
        m % 2 == 0 ? std::vector<std::string>{"spring"} : std::vector<std::string>{};
    ASSERT_TRUE(first.apply("few", member, "r-" + member, wants).ok()) << member;
  }
  ASSERT_LT(SystemClock::now(), ends) << "the applications took longer than the window";

  // Nobody calls anything: each cluster allocates on its own.
  std::array<std::vector<v1::ApplicationRecord>, 2> exports;
  for (int k = 0; k < 2; ++k) {
    Client c(clusters[k].b->target());
    ASSERT_TRUE(wait_until(
        [&] {
          const auto stats = c.stats("det");
          return stats.ok() && stats.response.allocation() == v1::ALLOCATION_STATE_DONE;
        },
        seconds(40)))
        << "cluster " << k << " did not allocate";
    const auto exported = c.export_applications("det");
    ASSERT_TRUE(exported.ok()) << exported.status.error_message();
    exports[k] = exported.response;
  }
  ASSERT_EQ(exports[0].size(), 300U);
  ASSERT_EQ(exports[1].size(), 300U);
  int selected = 0;
  for (std::size_t i = 0; i < 300; ++i) {
    const v1::ApplicationRecord& x = exports[0][i];
    const v1::ApplicationRecord& y = exports[1][i];
    ASSERT_EQ(x.member_id(), y.member_id());
    EXPECT_EQ(ids_of(x.preferred_sku_ids()), ids_of(y.preferred_sku_ids())) << x.member_id();
    EXPECT_EQ(x.state(), y.state()) << x.member_id();
    EXPECT_EQ(x.sku_id(), y.sku_id()) << x.member_id();
    if (x.state() == v1::APPLICATION_STATE_SELECTED) ++selected;
  }
  EXPECT_EQ(selected, 60);  // more applicants than packs: exactly the stock

  Client last(clusters[0].b->target());
  ASSERT_TRUE(wait_until(
      [&] {
        const auto stats = last.stats("few");
        return stats.ok() && stats.response.allocation() == v1::ALLOCATION_STATE_DONE;
      },
      seconds(40)));
  const auto few_out = last.export_applications("few");
  ASSERT_TRUE(few_out.ok()) << few_out.status.error_message();
  ASSERT_EQ(few_out.response.size(), 25U);
  for (const v1::ApplicationRecord& r : few_out.response) {
    EXPECT_EQ(r.state(), v1::APPLICATION_STATE_SELECTED) << r.member_id();
    if (r.preferred_sku_ids_size() > 0) {
      EXPECT_EQ(r.sku_id(), "spring") << r.member_id();
    }
  }
  for (Cluster& c : clusters) {
    EXPECT_EQ(c.a->stop(SIGTERM), std::optional<int>(0));
    EXPECT_EQ(c.b->stop(SIGTERM), std::optional<int>(0));
  }
}

}  // namespace
}  // namespace voucherd::testing
