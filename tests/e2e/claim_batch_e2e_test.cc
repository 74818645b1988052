// claim_batch_e2e_test — proves, against a real voucherd process (memory
// store) over real gRPC on loopback, that VoucherService.ClaimBatch answers
// each claim as Claim would: exactly the stock is issued, a batch that sells
// out midway answers the rest SOLD_OUT, a member repeated in a batch or in a
// later batch gets the voucher they hold, bad claims are refused one by one
// with their own status, empty and oversized batches are INVALID_ARGUMENT
// without claiming anything, and the app role is required like Claim's.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <optional>
#include <set>

#include "server/grpc/auth.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;

// Two SKUs, 60 + 40 packs, open now.
std::string batch_campaign(const TempDir& dir) {
  return spring_and_hotel("batch", 60, 40).write(dir, "batch-campaign.json");
}

// The batch calls (20 s each) and the issued count of campaign "batch".
class BatchClient {
 public:
  explicit BatchClient(const std::string& target) : client_(target) {}

  grpc::Status batch(const v1::ClaimBatchRequest& req, v1::ClaimBatchResponse* out,
                     const std::string& token = "") {
    auto reply = as(token).with_deadline(std::chrono::seconds(20)).claim_batch(req);
    *out = std::move(reply.response);
    return reply.status;
  }
  std::int64_t issued(const std::string& token = "") {
    const auto reply = as(token).stats("batch");
    EXPECT_TRUE(reply.ok()) << reply.status.error_message();
    return reply.response.issued();
  }

 private:
  Client as(const std::string& token) const {
    return client_.bearer(token.empty() ? std::nullopt : std::optional<std::string>(token));
  }
  Client client_;
};

v1::ClaimBatchRequest members(int first, int n, const std::string& sku = "") {
  v1::ClaimBatchRequest req;
  for (int i = first; i < first + n; ++i) {
    v1::ClaimRequest* c = req.add_claims();
    c->set_campaign_id("batch");
    c->set_member_id("m-" + std::to_string(i));
    c->set_sku_id(sku);
  }
  return req;
}

class ClaimBatchEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto secret = dir_.write("secret.hex", test_secret_hex());
    server_ = std::make_unique<VoucherdProcess>(
        dir_, std::vector<std::string>{"--campaigns", batch_campaign(dir_), "--secret-file",
                                       secret.string()});
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<BatchClient>(server_->target());
  }
  void TearDown() override {
    client_.reset();
    if (server_) {
      EXPECT_EQ(server_->stop(SIGTERM), std::optional<int>(0)) << server_->stderr_text();
    }
  }

  TempDir dir_;
  std::unique_ptr<VoucherdProcess> server_;
  std::unique_ptr<BatchClient> client_;
};

TEST_F(ClaimBatchEndToEnd, SellsExactlyTheStockAndSellsOutMidBatch) {
  // 70 members, then 50 more: the second batch sells out after 30.
  v1::ClaimBatchResponse first, second;
  ASSERT_TRUE(client_->batch(members(0, 70), &first).ok());
  ASSERT_EQ(first.results_size(), 70);
  std::set<std::string> codes;
  for (int i = 0; i < 70; ++i) {
    const v1::ClaimResult& r = first.results(i);
    ASSERT_EQ(r.code(), 0) << i << ": " << r.message();
    EXPECT_EQ(r.response().voucher().member_id(), "m-" + std::to_string(i));
    EXPECT_FALSE(r.response().already_claimed());
    EXPECT_TRUE(r.reason().empty());
    codes.insert(r.response().voucher().code());
  }
  ASSERT_TRUE(client_->batch(members(70, 50), &second).ok());
  ASSERT_EQ(second.results_size(), 50);
  int ok = 0, sold_out = 0;
  for (int i = 0; i < 50; ++i) {
    const v1::ClaimResult& r = second.results(i);
    if (r.code() == 0) {
      ++ok;
      EXPECT_EQ(r.response().voucher().member_id(), "m-" + std::to_string(70 + i));
      codes.insert(r.response().voucher().code());
    } else {
      ++sold_out;
      EXPECT_EQ(r.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
      EXPECT_EQ(r.reason(), "SOLD_OUT");
      EXPECT_NE(r.message().find("\"batch\" is sold out"), std::string::npos) << r.message();
      EXPECT_FALSE(r.has_response());
    }
  }
  EXPECT_EQ(ok, 30);
  EXPECT_EQ(sold_out, 20);
  EXPECT_EQ(codes.size(), 100u);
  EXPECT_EQ(client_->issued(), 100);
}

TEST_F(ClaimBatchEndToEnd, RepeatedMembersGetTheVoucherTheyHold) {
  // m-0 three times and m-1 twice in one batch, then all again in a later one.
  v1::ClaimBatchRequest req;
  for (int i : {0, 1, 0, 2, 0, 1}) {
    v1::ClaimRequest* c = req.add_claims();
    c->set_campaign_id("batch");
    c->set_member_id("m-" + std::to_string(i));
  }
  v1::ClaimBatchResponse out;
  ASSERT_TRUE(client_->batch(req, &out).ok());
  ASSERT_EQ(out.results_size(), 6);
  std::map<std::string, std::set<std::string>> codes_of;
  int fresh = 0;
  for (int i = 0; i < 6; ++i) {
    const v1::ClaimResult& r = out.results(i);
    ASSERT_EQ(r.code(), 0) << r.message();
    EXPECT_EQ(r.response().voucher().member_id(), req.claims(i).member_id());
    codes_of[req.claims(i).member_id()].insert(r.response().voucher().code());
    if (!r.response().already_claimed()) ++fresh;
  }
  EXPECT_EQ(fresh, 3);  // one new voucher per member, the repeats already_claimed
  for (const auto& [member, codes] : codes_of) EXPECT_EQ(codes.size(), 1u) << member;

  v1::ClaimBatchResponse again;
  ASSERT_TRUE(client_->batch(req, &again).ok());
  for (int i = 0; i < 6; ++i) {
    const v1::ClaimResult& r = again.results(i);
    ASSERT_EQ(r.code(), 0);
    EXPECT_TRUE(r.response().already_claimed());
    EXPECT_EQ(*codes_of[req.claims(i).member_id()].begin(), r.response().voucher().code());
  }
  EXPECT_EQ(client_->issued(), 3);
}

TEST_F(ClaimBatchEndToEnd, BadClaimsAreRefusedOneByOne) {
  v1::ClaimBatchRequest req = members(0, 2);
  req.mutable_claims(0)->set_member_id("");   // bad member
  req.add_claims()->set_campaign_id("nope");  // unknown campaign
  req.mutable_claims(2)->set_member_id("m-x");
  *req.add_claims() = members(5, 1, "no-such-sku").claims(0);  // unknown SKU
  *req.add_claims() = members(6, 1, "room").claims(0);         // fine, chosen SKU
  v1::ClaimBatchResponse out;
  ASSERT_TRUE(client_->batch(req, &out).ok());
  ASSERT_EQ(out.results_size(), 5);
  EXPECT_EQ(out.results(0).code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(out.results(0).reason(), "INVALID_ARGUMENT");
  EXPECT_NE(out.results(0).message().find("member_id"), std::string::npos)
      << out.results(0).message();
  EXPECT_EQ(out.results(1).code(), 0);
  EXPECT_EQ(out.results(2).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(out.results(2).reason(), "CAMPAIGN_NOT_FOUND");
  EXPECT_NE(out.results(2).message().find("\"nope\""), std::string::npos);
  EXPECT_EQ(out.results(3).code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(out.results(3).reason(), "SKU_NOT_FOUND");
  EXPECT_EQ(out.results(4).code(), 0);
  EXPECT_EQ(out.results(4).response().voucher().sku_id(), "room");
  EXPECT_EQ(client_->issued(), 2);
}

TEST_F(ClaimBatchEndToEnd, EmptyAndOversizedBatchesAreInvalidAndClaimNothing) {
  v1::ClaimBatchResponse out;
  grpc::Status empty = client_->batch(v1::ClaimBatchRequest{}, &out);
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(empty.error_message().find("claims"), std::string::npos) << empty.error_message();
  EXPECT_NE(empty.error_message().find("holds 0"), std::string::npos) << empty.error_message();

  grpc::Status big = client_->batch(members(0, 1001), &out);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(big.error_message().find("1 to 1000"), std::string::npos) << big.error_message();
  EXPECT_NE(big.error_message().find("holds 1001"), std::string::npos) << big.error_message();
  EXPECT_EQ(client_->issued(), 0);

  // 1,000 is allowed: the stock goes, the rest is SOLD_OUT.
  ASSERT_TRUE(client_->batch(members(0, 1000), &out).ok());
  ASSERT_EQ(out.results_size(), 1000);
  int ok = 0;
  for (const auto& r : out.results()) ok += r.code() == 0 ? 1 : 0;
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(client_->issued(), 100);
}

TEST(ClaimBatchAuthEndToEnd, NeedsAnAppTokenLikeClaim) {
  TempDir dir;
  std::string tokens = "sha256:" + token_hash("app-secret") + " app\n" +
                       "sha256:" + token_hash("desk-1") + " site:site-1\n" +
                       "sha256:" + token_hash("ops") + " admin\n";
  VoucherdProcess server(dir, {"--campaigns", batch_campaign(dir), "--auth-file",
                               dir.write("tokens", tokens).string()});
  ASSERT_GT(server.port(), 0);
  BatchClient client(server.target());
  v1::ClaimBatchResponse out;
  EXPECT_EQ(client.batch(members(0, 3), &out).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(client.batch(members(0, 3), &out, "wrong").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(client.batch(members(0, 3), &out, "desk-1").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(client.issued("ops"), 0);
  ASSERT_TRUE(client.batch(members(0, 3), &out, "app-secret").ok());
  EXPECT_EQ(out.results_size(), 3);
  EXPECT_EQ(client.issued("ops"), 3);
}

}  // namespace
}  // namespace voucherd::testing
