// apply_e2e_test — APPLY_THEN_DRAW campaigns on a real voucherd (memory
// store) over real gRPC: a campaign created with CreateCampaign, members
// applying once each as the app would, retries and replacements, the
// applications PENDING until allocation_at, then the allocation made by the
// replica's own allocating thread (nobody calls anything to start it),
// checked member by member against allocate() replayed from the revealed
// seed; the winners' vouchers listed and redeemable; the export of every
// application with its outcome, by member (refused for the other modes);
// refusals that name what was wrong and store nothing; WRONG_MODE naming the
// RPC to use.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/lottery.h"
#include "server/grpc/proto_convert.h"
#include "tests/support/applications.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/exposition_check.h"
#include "tests/support/http_get.h"
#include "tests/support/voucherd_process.h"
#include "tests/support/wait.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using std::chrono::seconds;
using SystemClock = std::chrono::system_clock;

// An APPLY_THEN_DRAW campaign `id` at two sites: "spring" (2 packs) and "room"
// (1 pack), open from a minute ago to `ends`, allocated at `ends`.
v1::Campaign apply_campaign(const std::string& id, SystemTime starts, SystemTime ends,
                            std::int64_t spring = 2, std::int64_t room = 1) {
  return spring_and_hotel(id, spring, room).window(starts, ends).apply_then_draw(ends).message();
}

class ApplyEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto secret = dir_.write("secret.hex", test_secret_hex());
    server_ = std::make_unique<VoucherdProcess>(
        dir_, std::vector<std::string>{"--secret-file", secret.string()});
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<Client>(server_->target());
  }
  void TearDown() override {
    client_.reset();
    if (server_) {
      const auto status = server_->stop(SIGTERM);
      EXPECT_EQ(status, std::optional<int>(0)) << server_->stderr_text();
    }
  }

  // Creates a campaign that stays open for an hour; fails the test if it
  // is refused.
  void create_open(const std::string& id) {
    const auto now = SystemClock::now();
    const auto created =
        client_->create_campaign(apply_campaign(id, now - seconds(60), now + seconds(3600)));
    ASSERT_TRUE(created.ok()) << created.status.error_message();
  }

  TempDir dir_;
  std::unique_ptr<VoucherdProcess> server_;
  std::unique_ptr<Client> client_;
};

std::vector<std::string> ids_of(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  return {ids.begin(), ids.end()};
}

TEST_F(ApplyEndToEnd, MembersApplyOnceAndTheAllocationFollowsFromTheSeed) {
  // Whole seconds on the wire: the window ends 11 to 12 s from now, time
  // enough for the presses below even on a loaded machine under sanitizers.
  const auto now = SystemClock::now();
  const auto ends = now + seconds(12);
  const auto created = client_->create_campaign(apply_campaign("apply", now - seconds(60), ends));
  ASSERT_TRUE(created.ok()) << created.status.error_message();
  EXPECT_EQ(created.response.mode(), v1::CAMPAIGN_MODE_APPLY_THEN_DRAW);
  EXPECT_EQ(created.response.seed_commitment().size(), 64U);
  EXPECT_EQ(created.response.allocation_at().seconds(), created.response.ends_at().seconds());

  // Eight members press Apply once each; the first answer is the one that
  // counts. Three name no SKU, the others one or both.
  const std::map<std::string, std::vector<std::string>> wants = {
      {"m-0", {"spring"}}, {"m-1", {"room", "spring"}},
      {"m-2", {}},         {"m-3", {"spring", "room"}},
      {"m-4", {"room"}},   {"m-5", {}},
      {"m-6", {"spring"}}, {"m-7", {}}};
  for (const auto& [member, skus] : wants) {
    const auto r = client_->apply("apply", member, "first-" + member, skus);
    ASSERT_TRUE(r.ok()) << member << ": " << r.status.error_message();
    EXPECT_EQ(r.response.application().member_id(), member);
    EXPECT_EQ(r.response.application().campaign_id(), "apply");
    EXPECT_EQ(ids_of(r.response.application().preferred_sku_ids()), skus);
    EXPECT_EQ(r.response.application().state(), v1::APPLICATION_STATE_PENDING);
    EXPECT_TRUE(r.response.application().proof().empty());
    EXPECT_FALSE(r.response.application().has_voucher());
    EXPECT_FALSE(r.response.replaced());
    EXPECT_FALSE(r.response.already_applied());
  }
  // A retry of m-0's press (same request id, even with other SKUs) changes
  // nothing and says so.
  const auto retry = client_->apply("apply", "m-0", "first-m-0", {"room"});
  ASSERT_TRUE(retry.ok()) << retry.status.error_message();
  EXPECT_TRUE(retry.response.already_applied());
  EXPECT_FALSE(retry.response.replaced());
  EXPECT_EQ(ids_of(retry.response.application().preferred_sku_ids()),
            std::vector<std::string>{"spring"});
  // m-2 changes their mind with a new press: the application is replaced.
  const auto change = client_->apply("apply", "m-2", "second-m-2", {"room"});
  ASSERT_TRUE(change.ok()) << change.status.error_message();
  EXPECT_TRUE(change.response.replaced());
  EXPECT_FALSE(change.response.already_applied());
  std::map<std::string, std::vector<std::string>> stands = wants;
  stands["m-2"] = {"room"};

  // Before allocation_at: PENDING, no proof; nobody else has applied.
  const auto pending = client_->get_application("apply", "m-2");
  ASSERT_TRUE(pending.ok()) << pending.status.error_message();
  EXPECT_EQ(pending.response.state(), v1::APPLICATION_STATE_PENDING);
  EXPECT_EQ(ids_of(pending.response.preferred_sku_ids()), std::vector<std::string>{"room"});
  const auto stranger = client_->get_application("apply", "m-99");
  EXPECT_EQ(stranger.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(stranger.reason(), "APPLICATION_NOT_FOUND");
  // Operators see the applications counted, and nothing allocated yet.
  const auto before = client_->stats("apply");
  ASSERT_TRUE(before.ok()) << before.status.error_message();
  EXPECT_EQ(before.response.applications(), 8);
  EXPECT_EQ(before.response.allocation(), v1::ALLOCATION_STATE_NOT_STARTED);
  EXPECT_EQ(before.response.selected(), 0);
  EXPECT_EQ(before.response.not_selected(), 0);
  EXPECT_FALSE(before.response.has_allocated_at());
  EXPECT_EQ(before.response.issued(), 0);
  // The seed stays secret until the allocation is done.
  // The ops port says when it is due, and that it is not done.
  const auto before_metrics = parse_exposition(http_get(server_->ops_port(), "/metrics").body);
  ASSERT_TRUE(before_metrics.has_value()) << before_metrics.error();
  ASSERT_TRUE(
      before_metrics->contains("voucherd_allocation_due_timestamp_seconds{campaign=\"apply\"}"));
  EXPECT_DOUBLE_EQ(series_value(*before_metrics,
                                "voucherd_allocation_due_timestamp_seconds{campaign=\"apply\"}"),
                   static_cast<double>(created.response.allocation_at().seconds()) +
                       created.response.allocation_at().nanos() / 1e9);
  ASSERT_TRUE(before_metrics->contains("voucherd_allocation_done{campaign=\"apply\"}"));
  EXPECT_EQ(series_value(*before_metrics, "voucherd_allocation_done{campaign=\"apply\"}"), 0);
  const auto early_seed = client_->reveal_seed("apply");
  EXPECT_EQ(early_seed.code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(early_seed.reason(), "CAMPAIGN_NOT_OVER");
  EXPECT_NE(early_seed.status.error_message().find("allocated at"), std::string::npos)
      << early_seed.status.error_message();

  // The replica allocates on its own once allocation_at has passed: each
  // member reads their application until it is no longer PENDING.
  Outcomes outcome;
  ASSERT_TRUE(read_outcomes(
      "apply", stands, [&](int) -> const Client& { return *client_; }, outcome, seconds(30)))
      << "the allocation did not happen within 30 s of the window's end";

  // Exactly the stock: 2 spring and 1 room among 8 applicants.
  const OutcomeTally won = tally(outcome);
  EXPECT_EQ(won.won_per_sku, (std::map<std::string, int>{{"room", 1}, {"spring", 2}}));
  EXPECT_EQ(won.codes.size(), 3U);
  for (const auto& [member, application] : outcome) {
    if (application.has_voucher()) {
      EXPECT_EQ(application.voucher().state(), v1::VOUCHER_STATE_ISSUED) << member;
    }
  }

  // The seed is revealed once the replica has finished the allocation,
  // which its thread marks a moment after the store says every member's
  // outcome; it is the one committed to, and replaying the allocation from
  // it gives every member exactly what they got.
  Reply<v1::RevealSeedResponse> seed_reply;
  ASSERT_TRUE(wait_until(
      [&] {
        seed_reply = client_->reveal_seed("apply");
        return seed_reply.ok();
      },
      seconds(10)))
      << seed_reply.status.error_message();
  EXPECT_EQ(seed_reply.response.seed_commitment(), created.response.seed_commitment());
  const auto seed = seed_from_hex(seed_reply.response.seed());
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(seed_commitment(*seed), created.response.seed_commitment());
  auto spec = campaign_from_proto(client_->get_campaign("apply").response);
  ASSERT_TRUE(spec.has_value());
  ASSERT_TRUE(validate_and_normalize(*spec).has_value());
  expect_replayed(*spec, *seed, stands, outcome);

  // Applications are closed now.
  const auto late = client_->apply("apply", "m-8", "late", {});
  EXPECT_EQ(late.code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(late.reason(), "CLOSED");

  // A winner finds the voucher among theirs and redeems it at its site.
  const auto winner = std::find_if(outcome.begin(), outcome.end(), [](const auto& o) {
    return o.second.state() == v1::APPLICATION_STATE_SELECTED;
  });
  ASSERT_NE(winner, outcome.end());
  const auto listed = client_->list_member_vouchers(winner->first);
  ASSERT_TRUE(listed.ok()) << listed.status.error_message();
  ASSERT_EQ(listed.response.vouchers_size(), 1);
  EXPECT_EQ(listed.response.vouchers(0).code(), winner->second.voucher().code());
  const auto redeemed =
      client_->redeem(winner->second.voucher().code(), winner->second.voucher().site_id(), "r-1");
  ASSERT_TRUE(redeemed.ok()) << redeemed.status.error_message();
  const auto after = client_->get_application("apply", winner->first);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after.response.state(), v1::APPLICATION_STATE_SELECTED);
  EXPECT_EQ(after.response.voucher().state(), v1::VOUCHER_STATE_REDEEMED);

  // The stock is all out.
  const auto stats = client_->stats("apply");
  ASSERT_TRUE(stats.ok()) << stats.status.error_message();
  EXPECT_EQ(stats.response.issued(), 3);
  EXPECT_EQ(stats.response.remaining(), 0);
  EXPECT_EQ(stats.response.redeemed(), 1);
  EXPECT_EQ(stats.response.members(), 3);
  EXPECT_EQ(stats.response.applications(), 8);
  EXPECT_EQ(stats.response.allocation(), v1::ALLOCATION_STATE_DONE);
  EXPECT_EQ(stats.response.selected(), 3);
  EXPECT_EQ(stats.response.not_selected(), 5);
  ASSERT_TRUE(stats.response.has_allocated_at());
  EXPECT_GE(stats.response.allocated_at().seconds(), created.response.allocation_at().seconds());
  EXPECT_LE(stats.response.allocated_at().seconds(),
            std::chrono::duration_cast<seconds>(SystemClock::now().time_since_epoch()).count());

  // The export: every application, by member, with what it got.
  const auto exported = client_->export_applications("apply");
  ASSERT_TRUE(exported.ok()) << exported.status.error_message();
  ASSERT_EQ(exported.response.size(), 8U);
  auto expected = outcome.begin();
  for (const v1::ApplicationRecord& r : exported.response) {
    ASSERT_EQ(r.member_id(), expected->first);
    const v1::Application& got = expected->second;
    EXPECT_EQ(r.state(), got.state()) << r.member_id();
    EXPECT_EQ(r.sku_id(), got.has_voucher() ? got.voucher().sku_id() : "") << r.member_id();
    EXPECT_EQ(std::vector<std::string>(r.preferred_sku_ids().begin(), r.preferred_sku_ids().end()),
              stands.at(r.member_id()))
        << r.member_id();
    EXPECT_EQ(r.applied_at().seconds(), got.applied_at().seconds()) << r.member_id();
    EXPECT_EQ(r.applied_at().nanos(), got.applied_at().nanos()) << r.member_id();
    ++expected;
  }

  // Operators see the applications counted and the mode named.
  const HttpAnswer metrics = http_get(server_->ops_port(), "/metrics");
  const auto after_metrics = parse_exposition(metrics.body);
  ASSERT_TRUE(after_metrics.has_value()) << after_metrics.error();
  EXPECT_EQ(series_value(*after_metrics, "voucherd_allocation_done{campaign=\"apply\"}"), 1);
  EXPECT_NE(metrics.body.find("voucherd_applications_total{campaign=\"apply\",outcome=\"applied\"} "
                              "10"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(
      metrics.body.find("voucherd_applications_total{campaign=\"apply\",outcome=\"closed\"} 1"),
      std::string::npos);
  EXPECT_NE(metrics.body.find("voucherd_rpc_responses_total{rpc=\"GetApplication\",code=\"OK\"}"),
            std::string::npos);
  EXPECT_NE(
      metrics.body.find("voucherd_rpc_responses_total{rpc=\"ExportApplications\",code=\"OK\"} 1"),
      std::string::npos)
      << metrics.body;
  const HttpAnswer status = http_get(server_->ops_port(), "/status");
  EXPECT_NE(status.body.find("\"mode\":\"APPLY_THEN_DRAW\""), std::string::npos) << status.body;
  const auto page = nlohmann::json::parse(status.body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(page.is_object()) << status.body;
  const auto& allocation = page["campaigns"][0]["allocation"];
  EXPECT_EQ(allocation["state"], "DONE") << status.body;
  EXPECT_EQ(allocation["applications"], 8);
  EXPECT_EQ(allocation["selected"], 3);
  EXPECT_EQ(allocation["not_selected"], 5);
  EXPECT_TRUE(allocation.contains("allocated_at")) << status.body;
}

TEST_F(ApplyEndToEnd, BadApplicationsAreRefusedNamingTheFieldAndStoreNothing) {
  create_open("open");
  auto expect_refused = [&](const Reply<v1::ApplyResponse>& r, grpc::StatusCode code,
                            const std::string& reason, const std::string& in_message,
                            const char* what) {
    EXPECT_EQ(r.code(), code) << what << ": " << r.status.error_message();
    EXPECT_EQ(r.reason(), reason) << what;
    EXPECT_NE(r.status.error_message().find(in_message), std::string::npos)
        << what << ": " << r.status.error_message();
  };
  std::vector<std::string> seventeen;
  for (int i = 0; i < 17; ++i) seventeen.push_back("sku-" + std::to_string(i));
  expect_refused(client_->apply("open", "m-1", "r-1", seventeen),
                 grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                 "preferred_sku_ids holds 17 SKUs; at most 16", "17 preferences");
  expect_refused(client_->apply("open", "m-1", "r-1", {"spring", "room", "spring"}),
                 grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                 "preferred_sku_ids[2] names SKU \"spring\" again", "a SKU named twice");
  expect_refused(client_->apply("open", "m-1", "r-1", {"spring", ""}),
                 grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                 "preferred_sku_ids[1] must not be empty", "an empty preference");
  expect_refused(client_->apply("open", "m-1", "r-1", {"spring", "sauna"}),
                 grpc::StatusCode::NOT_FOUND, "SKU_NOT_FOUND", "SKU \"sauna\" not found",
                 "a SKU the campaign does not have");
  expect_refused(client_->apply("open", "m-1", "", {"spring"}), grpc::StatusCode::INVALID_ARGUMENT,
                 "INVALID_ARGUMENT", "request_id must not be empty", "no request id");
  expect_refused(client_->apply("open", "m\n1", "r-1", {"spring"}),
                 grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                 "member_id contains a control character", "a control character");
  expect_refused(client_->apply("nope", "m-1", "r-1", {"spring"}), grpc::StatusCode::NOT_FOUND,
                 "CAMPAIGN_NOT_FOUND", "\"nope\"", "no such campaign");
  // Nothing was stored for m-1: the first good press is a new application.
  const auto none = client_->get_application("open", "m-1");
  EXPECT_EQ(none.code(), grpc::StatusCode::NOT_FOUND) << none.status.error_message();
  EXPECT_EQ(none.reason(), "APPLICATION_NOT_FOUND");
  const auto good = client_->apply("open", "m-1", "r-1", {"room"});
  ASSERT_TRUE(good.ok()) << good.status.error_message();
  EXPECT_FALSE(good.response.replaced());
  EXPECT_FALSE(good.response.already_applied());
  // GetApplication checks its ids too.
  const auto bad_lookup = client_->get_application("open", "");
  EXPECT_EQ(bad_lookup.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(error_metadata_of(bad_lookup.status, "field"), "member_id");

  // A window that has not opened: NOT_OPEN, and nothing stored.
  const auto now = SystemClock::now();
  ASSERT_TRUE(
      client_->create_campaign(apply_campaign("later", now + seconds(3600), now + seconds(7200)))
          .ok());
  const auto early = client_->apply("later", "m-1", "r-1", {});
  EXPECT_EQ(early.code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(early.reason(), "NOT_OPEN");
  EXPECT_EQ(client_->get_application("later", "m-1").reason(), "APPLICATION_NOT_FOUND");
}

TEST_F(ApplyEndToEnd, EachModeAnswersWrongModeNamingTheRpcToUse) {
  create_open("open");
  ASSERT_TRUE(client_->create_campaign(first_come_campaign("first", 10, 1).message()).ok());
  const auto now = SystemClock::now();
  ASSERT_TRUE(client_
                  ->create_campaign(CampaignJson("lucky")
                                        .lottery(0.5, 3)
                                        .window(now - seconds(60), now + seconds(3600))
                                        .spring_site()
                                        .sku("pass", "Day pass", 9'800, 5)
                                        .message())
                  .ok());
  auto expect_wrong_mode = [](const grpc::Status& status, const std::string& use,
                              const char* what) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << what;
    EXPECT_EQ(reason_of(status), "WRONG_MODE") << what;
    EXPECT_NE(status.error_message().find(use), std::string::npos)
        << what << ": " << status.error_message();
  };
  expect_wrong_mode(client_->claim("open", "m-1").status, "APPLY_THEN_DRAW campaign: use Apply",
                    "Claim on an apply campaign");
  expect_wrong_mode(client_->draw("open", "m-1", "r-1").status,
                    "APPLY_THEN_DRAW campaign: use Apply", "Draw on an apply campaign");
  expect_wrong_mode(client_->apply("first", "m-1", "r-1", {}).status,
                    "FIRST_COME campaign: use Claim", "Apply on a first-come campaign");
  expect_wrong_mode(client_->apply("lucky", "m-1", "r-1", {}).status, "LOTTERY campaign: use Draw",
                    "Apply on a lottery");
  expect_wrong_mode(client_->get_application("lucky", "m-1").status, "LOTTERY campaign: use Draw",
                    "GetApplication on a lottery");
  // The export: applications only; draws only.
  expect_wrong_mode(client_->export_applications("lucky").status,
                    "only APPLY_THEN_DRAW campaigns have applications",
                    "ExportApplications of a lottery");
  expect_wrong_mode(client_->export_applications("first").status,
                    "only APPLY_THEN_DRAW campaigns have applications",
                    "ExportApplications of a first-come campaign");
  const auto unknown = client_->export_applications("nowhere");
  EXPECT_EQ(unknown.code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.reason(), "CAMPAIGN_NOT_FOUND");
  const auto unnamed = client_->export_applications("");
  EXPECT_EQ(unnamed.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(error_metadata_of(unnamed.status, "field"), "campaign_id");
  // An apply campaign nobody applied to yet: an empty stream.
  const auto empty = client_->export_applications("open");
  ASSERT_TRUE(empty.ok()) << empty.status.error_message();
  EXPECT_TRUE(empty.response.empty());
  v1::ClaimBatchRequest batch;
  auto* claim = batch.add_claims();
  claim->set_campaign_id("open");
  claim->set_member_id("m-1");
  const auto batched = client_->claim_batch(batch);
  ASSERT_TRUE(batched.ok()) << batched.status.error_message();
  ASSERT_EQ(batched.response.results_size(), 1);
  EXPECT_EQ(batched.response.results(0).reason(), "WRONG_MODE");
  EXPECT_NE(batched.response.results(0).message().find("use Apply"), std::string::npos)
      << batched.response.results(0).message();
  // No application came of any of it.
  EXPECT_EQ(client_->get_application("open", "m-1").reason(), "APPLICATION_NOT_FOUND");
}

TEST_F(ApplyEndToEnd, CreateCampaignWantsAnAllocationTimeOnlyForTheMode) {
  const auto now = SystemClock::now();
  v1::Campaign without = apply_campaign("a", now, now + seconds(60));
  without.clear_allocation_at();
  const auto r1 = client_->create_campaign(without);
  EXPECT_EQ(r1.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(error_metadata_of(r1.status, "field"), "campaign.allocation_at");

  v1::Campaign before_end = apply_campaign("a", now, now + seconds(60));
  *before_end.mutable_allocation_at() = timestamp_of(now + seconds(30));
  const auto r2 = client_->create_campaign(before_end);
  EXPECT_EQ(r2.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r2.status.error_message().find("at or after campaign.ends_at"), std::string::npos)
      << r2.status.error_message();

  v1::Campaign first = first_come_campaign("b", 10, 1).message();
  *first.mutable_allocation_at() = timestamp_of(now + seconds(30));
  const auto r3 = client_->create_campaign(first);
  EXPECT_EQ(r3.code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(error_metadata_of(r3.status, "field"), "campaign.allocation_at");

  // None of them was created.
  EXPECT_EQ(client_->get_campaign("a").code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(client_->get_campaign("b").code(), grpc::StatusCode::NOT_FOUND);

  // An operator's campaign file (proto JSON, "allocationAt") goes through
  // voucherctl, which shows the mode, the allocation time and the commitment.
  const std::string file = spring_and_hotel("file", 2, 1)
                               .window("2030-01-01T00:00:00Z", "2030-01-08T00:00:00Z")
                               .apply_then_draw(SystemClock::from_time_t(1'894'064'400))
                               .write(dir_, "file.json");
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), VOUCHERCTL_BINARY);
    args.insert(args.end(), {"--target", server_->target()});
    std::string out, err;
    const int status = run_program(dir_, args, &out, &err);
    EXPECT_EQ(status, 0) << err;
    return out;
  };
  EXPECT_NE(ctl({"campaigns", "create", file}).find("campaign \"file\" is served"),
            std::string::npos);
  const std::string shown = ctl({"campaigns", "get", "file"});
  EXPECT_NE(shown.find("APPLY_THEN_DRAW"), std::string::npos) << shown;
  EXPECT_NE(shown.find("allocation at    2030-01-08T01:00:00Z"), std::string::npos) << shown;
  const auto got = client_->get_campaign("file");
  ASSERT_TRUE(got.ok());
  EXPECT_NE(shown.find("seed commitment  " + got.response.seed_commitment()), std::string::npos)
      << shown;
}

TEST(ApplySample, TheGuangdongApplySampleRehearsesWithItsAllocationAsLongAfterItsWindow) {
  TempDir dir;
  const auto secret = dir.write("secret.hex", test_secret_hex());
  const auto before = SystemClock::now();
  VoucherdProcess server(dir, {"--campaigns", guangdong_apply_sample_path(), "--rehearse",
                               "--secret-file", secret.string()});
  ASSERT_GT(server.port(), 0);
  Client client(server.target());
  const auto got = client.get_campaign("guangdong-apply-2024");
  ASSERT_TRUE(got.ok()) << got.status.error_message();
  const v1::Campaign& c = got.response;
  EXPECT_EQ(c.mode(), v1::CAMPAIGN_MODE_APPLY_THEN_DRAW);
  EXPECT_EQ(c.sites_size(), 139);
  EXPECT_EQ(c.skus_size(), 307);
  std::int64_t packs = 0;
  for (const v1::Sku& s : c.skus()) packs += s.stock();
  EXPECT_EQ(packs, 59'000);
  // The window opens now and lasts its week; the allocation follows 2 hours
  // after it, as the file plans.
  EXPECT_GE(c.starts_at().seconds(),
            std::chrono::duration_cast<seconds>(before.time_since_epoch()).count() - 1);
  EXPECT_EQ(c.ends_at().seconds() - c.starts_at().seconds(), 7 * 86'400);
  EXPECT_EQ(c.allocation_at().seconds() - c.ends_at().seconds(), 2 * 3'600);
  EXPECT_EQ(c.seed_commitment().size(), 64U);
  // A member applies once, naming two of its SKUs: recorded, pending.
  const auto applied =
      client.apply("guangdong-apply-2024", "m-1", "r-1", {c.skus(5).id(), c.skus(0).id()});
  ASSERT_TRUE(applied.ok()) << applied.status.error_message();
  EXPECT_EQ(applied.response.application().state(), v1::APPLICATION_STATE_PENDING);
  EXPECT_EQ(client.stats("guangdong-apply-2024").response.applications(), 1);
  EXPECT_EQ(server.stop(SIGTERM), std::optional<int>(0)) << server.stderr_text();
}

}  // namespace
}  // namespace voucherd::testing
