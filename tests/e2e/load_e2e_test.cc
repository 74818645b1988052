// load_e2e_test — proves that voucher-load's own report can be trusted: run
// as a subprocess against a real voucherd with known stock (through Claim,
// and through ClaimBatch), its --json report gives the exact issued count,
// agrees with GetCampaignStats and passes its check with exit 0; and against
// deliberately broken fake servers (one code handed to two members; a member
// handed two codes; more vouchers than the stock) its correctness check
// fails with a non-zero exit and says why. In apply mode it applies a crowd
// to an apply campaign, waits for the allocation, finds every applicant's
// outcome (exactly the stock won) and redeems each voucher won once.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using nlohmann::json;

constexpr std::int64_t kStock = 3'000;

std::string campaign_file(const TempDir& dir) {
  return dir.write("known.json", first_come_campaign_json("known", kStock, 7)).string();
}

struct LoadRun {
  int exit_status = -1;
  std::string out, err;
  json report;
};

LoadRun run_load_binary(const TempDir& dir, std::vector<std::string> args) {
  const auto json_path = dir.path() / "report.json";
  std::filesystem::remove(json_path);
  std::vector<std::string> argv{VOUCHER_LOAD_BINARY, "--json", json_path.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  LoadRun run;
  run.exit_status = run_program(dir, argv, &run.out, &run.err);
  std::ifstream in(json_path);
  if (in) run.report = json::parse(in, nullptr, /*allow_exceptions=*/false);
  return run;
}

// The time `from_now` from now, in whole seconds, as RFC 3339 UTC text.
std::string utc_text(std::chrono::system_clock::duration from_now) {
  const std::time_t t =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + from_now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf);
}

class LoadHarnessEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto secret = dir_.write("secret.hex", test_secret_hex());
    server_ = std::make_unique<VoucherdProcess>(
        dir_, std::vector<std::string>{"--campaigns", campaign_file(dir_), "--secret-file",
                                       secret.string()});
    ASSERT_GT(server_->port(), 0);
  }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->stop(SIGTERM), std::optional<int>(0)) << server_->stderr_text();
    }
  }
  void expect_exact_sell_out(const LoadRun& run) {
    ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
    ASSERT_TRUE(run.report.is_object()) << run.out;
    const json& phase = run.report["phases"][0];
    EXPECT_EQ(phase["issued"].get<std::int64_t>(), kStock);
    EXPECT_EQ(phase["issued"].get<std::int64_t>() + phase["already_claimed"].get<std::int64_t>() +
                  phase["sold_out"].get<std::int64_t>(),
              phase["answers"].get<std::int64_t>());
    EXPECT_EQ(phase["status_codes"]["OK"].get<std::int64_t>(),
              phase["issued"].get<std::int64_t>() + phase["already_claimed"].get<std::int64_t>());
    EXPECT_EQ(phase["reasons"]["SOLD_OUT"].get<std::int64_t>(),
              phase["sold_out"].get<std::int64_t>());
    EXPECT_GE(phase["sellout_s"].get<double>(), 0);
    const json& check = run.report["check"];
    EXPECT_TRUE(check["ok"].get<bool>());
    EXPECT_EQ(check["issued"].get<std::int64_t>(), kStock);
    EXPECT_EQ(check["server_issued"].get<std::int64_t>(), kStock);
    EXPECT_EQ(check["stock"].get<std::int64_t>(), kStock);
    EXPECT_EQ(check["distinct_codes"].get<std::int64_t>(), kStock);
    EXPECT_EQ(check["members_with_two_codes"].get<std::int64_t>(), 0);
    EXPECT_EQ(check["codes_with_two_members"].get<std::int64_t>(), 0);
    EXPECT_NE(run.out.find("RESULT: OK"), std::string::npos) << run.out;
  }

  TempDir dir_;
  std::unique_ptr<VoucherdProcess> server_;
};

TEST_F(LoadHarnessEndToEnd, ReportsTheExactIssuedCountOfAKnownStock) {
  const LoadRun run =
      run_load_binary(dir_, {"--target", server_->target(), "--campaign", "known", "--members",
                             "5000", "--repeat-share", "0.3", "--concurrency", "32", "--threads",
                             "2", "--expect-sold-out", "--duration", "60"});
  expect_exact_sell_out(run);
  EXPECT_EQ(run.report["phases"][0]["answers"].get<std::int64_t>(), 6'500);
}

TEST_F(LoadHarnessEndToEnd, ReportsTheExactIssuedCountThroughClaimBatch) {
  const LoadRun run =
      run_load_binary(dir_, {"--target", server_->target(), "--campaign", "known", "--members",
                             "5000", "--repeat-share", "0.3", "--batch", "50", "--concurrency", "4",
                             "--expect-sold-out", "--duration", "60"});
  expect_exact_sell_out(run);
  EXPECT_EQ(run.report["phases"][0]["calls"].get<std::int64_t>(), 130);  // 6,500 / 50
}

TEST_F(LoadHarnessEndToEnd, OpenLoopRedeemsEveryIssuedVoucherOnce) {
  // Claims at a fixed rate, then each code redeemed, 50% of them twice (the
  // second is the same request again: already_redeemed).
  const LoadRun run = run_load_binary(
      dir_, {"--target", server_->target(), "--campaign", "known", "--mode", "redeem", "--members",
             "400", "--repeat-share", "0.5", "--rate", "2000", "--duration", "60"});
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  ASSERT_EQ(run.report["phases"].size(), 2u) << run.out;
  const json& redeem = run.report["phases"][1];
  EXPECT_EQ(redeem["name"], "redeem");
  EXPECT_EQ(redeem["redeemed"].get<std::int64_t>(), 400);
  EXPECT_EQ(redeem["already_redeemed"].get<std::int64_t>(), 200);
  EXPECT_EQ(run.report["check"]["codes_redeemed_twice"].get<std::int64_t>(), 0);
}

// A broken VoucherService: Claim answers from `code_for(member, call)`.
class FakeVoucherService final : public v1::VoucherService::Service {
 public:
  explicit FakeVoucherService(std::function<std::string(const std::string&, int)> code_for)
      : code_for_(std::move(code_for)) {}
  grpc::Status Claim(grpc::ServerContext*, const v1::ClaimRequest* req,
                     v1::ClaimResponse* out) override {
    const int call = calls_.fetch_add(1, std::memory_order_relaxed);
    v1::Voucher* v = out->mutable_voucher();
    v->set_code(code_for_(req->member_id(), call));
    v->set_campaign_id(req->campaign_id());
    v->set_member_id(req->member_id());
    v->set_site_id("site-1");
    return grpc::Status::OK;
  }

 private:
  std::function<std::string(const std::string&, int)> code_for_;
  std::atomic<int> calls_{0};
};

class FakeServer {
 public:
  explicit FakeServer(std::function<std::string(const std::string&, int)> code_for)
      : service_(std::move(code_for)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  [[nodiscard]] std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  FakeVoucherService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

LoadRun run_against_fake(const TempDir& dir, const FakeServer& fake, const std::string& stock,
                         const std::string& repeat_share = "0") {
  return run_load_binary(dir, {"--target", fake.target(), "--campaign", "fake", "--members", "50",
                               "--repeat-share", repeat_share, "--expect-stock", stock,
                               "--skip-stats", "--concurrency", "4", "--duration", "30"});
}

TEST(LoadHarnessDraws, DrawModeCountsEveryDrawAndAgreesWithTheServer) {
  TempDir dir;
  const auto secret = dir.write("secret.hex", test_secret_hex());
  // A lottery open for an hour either side of now (half its prizes
  // released), at p = 0.5, twenty draws a day.
  const std::string campaign =
      R"({"campaigns":[{"id":"draws","name":"Draws","mode":"CAMPAIGN_MODE_LOTTERY","startsAt":")" +
      utc_text(std::chrono::hours(-1)) + R"(","endsAt":")" + utc_text(std::chrono::hours(1)) +
      R"(","sites":[{"id":"s","name":"Spring","city":"Qingyuan","kind":"SKU_KIND_HOT_SPRING"}],)"
      R"("skus":[{"id":"k","siteId":"s","kind":"SKU_KIND_HOT_SPRING","name":"Pass","faceValueCents":"100",)"
      R"("stock":"1000"}],"lottery":{"winProbability":0.5,"drawsPerDay":20}}]})";
  VoucherdProcess server(dir, {"--campaigns", dir.write("draws.json", campaign).string(),
                               "--secret-file", secret.string()});
  ASSERT_GT(server.port(), 0);
  const LoadRun run = run_load_binary(
      dir, {"--mode", "draw", "--target", server.target(), "--campaign", "draws", "--members",
            "400", "--repeat-share", "2", "--concurrency", "16", "--duration", "60"});
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  const json& phase = run.report["phases"][0];
  EXPECT_EQ(phase["name"].get<std::string>(), "draw");
  EXPECT_EQ(phase["answers"].get<std::int64_t>(), 1'200);  // 400 members x (1 + 2)
  EXPECT_EQ(phase["status_codes"]["OK"].get<std::int64_t>(), 1'200);
  const std::int64_t won = phase["issued"].get<std::int64_t>();
  EXPECT_GT(won, 0);
  EXPECT_LE(won, 400);  // one prize per member
  std::int64_t no_prize = 0;
  for (const auto& [reason, n] : phase["reasons"].items()) no_prize += n.get<std::int64_t>();
  EXPECT_EQ(won + no_prize, 1'200);
  EXPECT_EQ(run.report["check"]["server_issued"].get<std::int64_t>(), won);
  EXPECT_TRUE(run.report["check"]["ok"].get<bool>());
  EXPECT_NE(run.out.find("Prizes won"), std::string::npos) << run.out;
}

TEST(LoadHarnessApply, ApplyModeWaitsForTheAllocationReadsEveryOutcomeAndRedeemsTheWins) {
  TempDir dir;
  const auto secret = dir.write("secret.hex", test_secret_hex());
  VoucherdProcess server(dir, {"--secret-file", secret.string()});
  ASSERT_GT(server.port(), 0);
  // An apply campaign, created once voucherd is up, whose window closes 6
  // to 7 s from now, allocated then: 150 packs (100 spring, 50 room) for
  // 400 applicants naming no SKU.
  const auto now = std::chrono::system_clock::now();
  const auto ends = now + std::chrono::seconds(7);
  const auto created = Client(server.target())
                           .create_campaign(spring_and_hotel("apply", 100, 50)
                                                .window(now - std::chrono::hours(1), ends)
                                                .apply_then_draw(ends)
                                                .message());
  ASSERT_TRUE(created.ok()) << created.status.error_message();
  const LoadRun run = run_load_binary(
      dir, {"--mode", "apply", "--target", server.target(), "--campaign", "apply", "--members",
            "400", "--repeat-share", "0.5", "--preferences", "0", "--concurrency", "16",
            "--duration", "60", "--allocation-wait-s", "60"});
  ASSERT_EQ(run.exit_status, 0) << run.out << run.err;
  ASSERT_EQ(run.report["phases"].size(), 3u) << run.out;
  // Every press answered: 400 first applications, the 200 repeats a retry
  // or a replacement.
  const json& apply = run.report["phases"][0];
  EXPECT_EQ(apply["name"].get<std::string>(), "apply");
  EXPECT_EQ(apply["status_codes"]["OK"].get<std::int64_t>(), 600);
  EXPECT_EQ(apply["reasons"]["APPLIED"].get<std::int64_t>(), 400);
  EXPECT_EQ(apply["reasons"]["REPLACED"].get<std::int64_t>() +
                apply["reasons"]["ALREADY_APPLIED"].get<std::int64_t>(),
            200);
  // Every applicant's outcome, once: exactly the stock won, the rest not.
  const json& results = run.report["phases"][1];
  EXPECT_EQ(results["name"].get<std::string>(), "results");
  EXPECT_EQ(results["status_codes"]["OK"].get<std::int64_t>(), 400);
  EXPECT_EQ(results["issued"].get<std::int64_t>(), 150);
  // Each voucher won redeemed once (and the repeats already redeemed).
  const json& redeem = run.report["phases"][2];
  EXPECT_EQ(redeem["name"].get<std::string>(), "redeem");
  EXPECT_EQ(redeem["redeemed"].get<std::int64_t>(), 150);
  const json& check = run.report["check"];
  EXPECT_TRUE(check["ok"].get<bool>());
  EXPECT_EQ(check["server_issued"].get<std::int64_t>(), 150);
  EXPECT_EQ(check["codes_redeemed_twice"].get<std::int64_t>(), 0);
  const json& allocation = check["apply"];
  EXPECT_EQ(allocation["applicants"].get<std::int64_t>(), 400);
  EXPECT_EQ(allocation["server_applications"].get<std::int64_t>(), 400);
  EXPECT_TRUE(allocation["allocation_done"].get<bool>());
  EXPECT_GE(allocation["allocated_after_s"].get<double>(), 0);
  EXPECT_EQ(allocation["selected"].get<std::int64_t>(), 150);
  EXPECT_EQ(allocation["not_selected"].get<std::int64_t>(), 250);
  EXPECT_EQ(allocation["missing"].get<std::int64_t>(), 0);
  EXPECT_EQ(allocation["pending"].get<std::int64_t>(), 0);
  EXPECT_EQ(allocation["won_per_sku"],
            json::parse(R"({"room": 50, "spring": 100})", nullptr, false));
  EXPECT_TRUE(allocation["all_stock_allocated"].get<bool>());
  EXPECT_NE(run.out.find("Allocation:   done"), std::string::npos) << run.out;

  // A campaign it cannot read: the run does not start, and says why.
  const LoadRun wrong = run_load_binary(
      dir, {"--mode", "apply", "--target", server.target(), "--campaign", "nowhere"});
  EXPECT_EQ(wrong.exit_status, 2);
  EXPECT_NE(wrong.err.find("GetCampaign: NOT_FOUND"), std::string::npos) << wrong.err;
  // A crowd applying after the window: every application refused (CLOSED),
  // and the check fails though the allocation is done.
  const LoadRun late =
      run_load_binary(dir, {"--mode", "apply", "--target", server.target(), "--campaign", "apply",
                            "--members", "10", "--repeat-share", "0", "--allocation-wait-s", "5"});
  EXPECT_EQ(late.exit_status, 1) << late.out << late.err;
  ASSERT_TRUE(late.report.is_object()) << late.out;
  EXPECT_EQ(late.report["phases"][0]["reasons"]["CLOSED"].get<std::int64_t>(), 10);
  EXPECT_EQ(late.report["check"]["apply"]["applicants"].get<std::int64_t>(), 0);
  EXPECT_EQ(late.report["check"]["apply"]["refused"].get<std::int64_t>(), 10);
  EXPECT_FALSE(late.report["check"]["ok"].get<bool>());
  // A campaign allocated more than an hour ahead is not one to wait for.
  const auto later =
      Client(server.target())
          .create_campaign(spring_and_hotel("later", 1, 1)
                               .window(now - std::chrono::hours(1), now + std::chrono::hours(2))
                               .apply_then_draw(now + std::chrono::hours(2))
                               .message());
  ASSERT_TRUE(later.ok()) << later.status.error_message();
  const LoadRun far =
      run_load_binary(dir, {"--mode", "apply", "--target", server.target(), "--campaign", "later"});
  EXPECT_EQ(far.exit_status, 2);
  EXPECT_NE(far.err.find("waits for the allocation at most 3600 s ahead"), std::string::npos)
      << far.err;
}

TEST(LoadHarnessCheck, FailsWhenOneCodeGoesToTwoMembers) {
  TempDir dir;
  // Members 7 and 8 get the same code; everyone else their own.
  FakeServer fake([](const std::string& member, int) {
    return member == "member-8" ? std::string("CODE-member-7") : "CODE-" + member;
  });
  const LoadRun run = run_against_fake(dir, fake, "1000");
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  ASSERT_TRUE(run.report.is_object()) << run.out;
  EXPECT_FALSE(run.report["check"]["ok"].get<bool>());
  EXPECT_EQ(run.report["check"]["codes_with_two_members"].get<std::int64_t>(), 1);
  EXPECT_EQ(run.report["check"]["members_with_two_codes"].get<std::int64_t>(), 0);
  EXPECT_NE(run.out.find("codes with two members 1"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("RESULT: FAILED"), std::string::npos) << run.out;
}

TEST(LoadHarnessCheck, FailsWhenAMemberGetsTwoCodes) {
  TempDir dir;
  // A fresh code at every call: a repeat press comes back with another code.
  FakeServer fake(
      [](const std::string& member, int call) { return member + "-" + std::to_string(call); });
  const LoadRun run = run_against_fake(dir, fake, "1000", "0.5");
  EXPECT_EQ(run.exit_status, 1) << run.out << run.err;
  ASSERT_TRUE(run.report.is_object()) << run.out;
  EXPECT_GT(run.report["check"]["members_with_two_codes"].get<std::int64_t>(), 0);
  EXPECT_FALSE(run.report["check"]["ok"].get<bool>());
}

TEST(LoadHarnessCheck, FailsWhenMoreVouchersThanStockAreIssued) {
  TempDir dir;
  FakeServer fake([](const std::string& member, int) { return "CODE-" + member; });
  const LoadRun over = run_against_fake(dir, fake, "49");  // 50 members, 50 codes
  EXPECT_EQ(over.exit_status, 1) << over.out << over.err;
  ASSERT_TRUE(over.report.is_object()) << over.out;
  EXPECT_FALSE(over.report["check"]["issued_within_stock"].get<bool>());
  EXPECT_EQ(over.report["check"]["issued"].get<std::int64_t>(), 50);

  // The same honest-looking answers within the stock pass.
  const LoadRun within = run_against_fake(dir, fake, "50");
  EXPECT_EQ(within.exit_status, 0) << within.out << within.err;
}

}  // namespace
}  // namespace voucherd::testing
