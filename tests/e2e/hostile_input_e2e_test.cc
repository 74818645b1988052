// hostile_input_e2e_test — proves, against a real voucherd process over real
// gRPC, that ids a client should never send are refused at once and cheaply:
// an oversized id (70 KB campaign_id or member_id, 300 KB sku_id, a 70 KB
// code to GetVoucher and Redeem) is answered promptly INVALID_ARGUMENT with
// a short message and small details (an echo of it once made the trailers
// too big for the client, and the call and its connection hung), and a
// normal Claim on the same channel right after succeeds; ids with control
// characters are refused naming the field, in every call that takes ids, in
// each claim of a ClaimBatch, and in a campaign definition.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;
using namespace std::chrono_literals;

constexpr const char* kCampaign = "hostile";

class HostileInputEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto secret = dir_.write("secret.hex", test_secret_hex());
    const std::string campaigns = CampaignJson(kCampaign)
                                      .spring_site()
                                      .sku("spa", "Spa", 19'800, 100)
                                      .write(dir_, "hostile.json");
    server_ = std::make_unique<VoucherdProcess>(
        dir_, std::vector<std::string>{"--campaigns", campaigns, "--secret-file", secret.string()});
    ASSERT_GT(server_->port(), 0);
    // Prompt answers only: far below the 5 s the hung calls waited.
    client_ = std::make_unique<Client>(Client(server_->target()).with_deadline(3s));
  }
  void TearDown() override {
    client_.reset();
    if (server_) {
      const auto status = server_->stop(SIGTERM);
      EXPECT_EQ(status, std::optional<int>(0)) << server_->stderr_text();
    }
  }

  // A refusal of a hostile id: INVALID_ARGUMENT naming `field`, short.
  static void expect_small_refusal(const grpc::Status& s, const std::string& field,
                                   const char* what) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << s.error_message();
    EXPECT_EQ(reason_of(s), "INVALID_ARGUMENT") << what;
    EXPECT_NE(s.error_message().find(field), std::string::npos)
        << what << ": " << s.error_message();
    EXPECT_LT(s.error_message().size(), 512u) << what;
    EXPECT_LT(s.error_details().size(), 1024u) << what;
  }

  TempDir dir_;
  std::unique_ptr<VoucherdProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(HostileInputEndToEnd, OversizedIdsAreRefusedPromptlyAndTheChannelStaysUsable) {
  const std::string id_70k(70'000, 'x');
  const std::string id_300k(300'000, 's');
  expect_small_refusal(client_->claim(kCampaign, id_70k).status, "member_id", "70 KB member_id");
  expect_small_refusal(client_->claim(id_70k, "member-1").status, "campaign_id",
                       "70 KB campaign_id");
  expect_small_refusal(client_->claim(kCampaign, "member-1", id_300k).status, "sku_id",
                       "300 KB sku_id");
  expect_small_refusal(client_->claim(kCampaign, "member-1", "", id_70k).status, "request_id",
                       "70 KB request_id");
  const grpc::Status long_member = client_->claim(kCampaign, id_70k).status;
  EXPECT_NE(long_member.error_message().find("70000 bytes"), std::string::npos)
      << long_member.error_message();
  expect_small_refusal(client_->get_voucher(id_70k).status, "code", "GetVoucher of a 70 KB code");
  expect_small_refusal(client_->redeem(id_70k, "site-1").status, "code", "Redeem of a 70 KB code");
  expect_small_refusal(client_->redeem("4KZ1Q", id_70k).status, "site_id", "70 KB site_id");
  expect_small_refusal(client_->get_campaign(id_70k).status, "campaign_id", "70 KB GetCampaign");
  expect_small_refusal(client_->stats(id_300k).status, "campaign_id", "300 KB GetCampaignStats");
  expect_small_refusal(client_->list_member_vouchers(id_70k).status, "member_id",
                       "70 KB ListMemberVouchers");
  expect_small_refusal(client_->draw(kCampaign, id_70k, "r1").status, "member_id", "70 KB Draw");

  // One claim of a batch: its own small refusal; the others are claimed.
  v1::ClaimBatchRequest batch;
  auto* bad = batch.add_claims();
  bad->set_campaign_id(kCampaign);
  bad->set_member_id(id_70k);
  auto* good = batch.add_claims();
  good->set_campaign_id(kCampaign);
  good->set_member_id("batch-member");
  const auto answered = client_->claim_batch(batch);
  ASSERT_TRUE(answered.ok()) << answered.status.error_message();
  ASSERT_EQ(answered.response.results_size(), 2);
  EXPECT_EQ(answered.response.results(0).code(),
            static_cast<std::int32_t>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(answered.response.results(0).reason(), "INVALID_ARGUMENT");
  EXPECT_LT(answered.response.results(0).message().size(), 512u);
  EXPECT_EQ(answered.response.results(1).code(), 0) << answered.response.results(1).message();

  // The same channel still serves a normal claim at once.
  const auto normal = client_->claim(kCampaign, "member-1");
  ASSERT_TRUE(normal.ok()) << normal.status.error_message();
  EXPECT_FALSE(normal.response.voucher().code().empty());
}

TEST_F(HostileInputEndToEnd, IdsWithControlCharactersAreRefusedNamingTheField) {
  const std::string nul("m\0x", 3);
  expect_small_refusal(client_->claim(kCampaign, "m\n1").status, "member_id", "newline member");
  expect_small_refusal(client_->claim(kCampaign, nul).status, "member_id", "NUL member");
  expect_small_refusal(client_->claim("hostile\r", "m1").status, "campaign_id", "CR campaign");
  expect_small_refusal(client_->claim(kCampaign, "m1", "spa\t").status, "sku_id", "tab sku");
  expect_small_refusal(client_->claim(kCampaign, "m1", "", "r\x7f").status, "request_id",
                       "DEL request");
  expect_small_refusal(client_->redeem("4KZ1Q", "site-1\n").status, "site_id", "newline site");
  expect_small_refusal(client_->redeem("4KZ1Q", "site-1", "r\x1b").status, "request_id",
                       "ESC request");
  expect_small_refusal(client_->draw(kCampaign, "m\n", "r1").status, "member_id", "Draw");
  expect_small_refusal(client_->list_member_vouchers("m\n").status, "member_id", "List");
  const grpc::Status named = client_->claim(kCampaign, "m\n1").status;
  EXPECT_NE(named.error_message().find("control character (byte 0x0a at offset 1)"),
            std::string::npos)
      << named.error_message();

  // A campaign definition's ids: INVALID_ARGUMENT naming the field.
  struct Case {
    const char* name;
    v1::Campaign campaign;
    const char* field;
  };
  v1::Campaign bad_id = CampaignJson("new\ncampaign").spring_site().sku("s", "S", 100, 1).message();
  v1::Campaign bad_site = CampaignJson("c2").spring_site().sku("s", "S", 100, 1).message();
  bad_site.mutable_sites(0)->set_id("site\t1");
  bad_site.mutable_skus(0)->set_site_id("site\t1");
  v1::Campaign bad_sku = CampaignJson("c3").spring_site().sku("s\x01", "S", 100, 1).message();
  for (const Case& c : {Case{"campaign id", bad_id, "campaign.id"},
                        Case{"site id", bad_site, "campaign.sites[0].id"},
                        Case{"sku id", bad_sku, "campaign.skus[0].id"}}) {
    const grpc::Status s = client_->create_campaign(c.campaign).status;
    expect_small_refusal(s, c.field, c.name);
    EXPECT_NE(s.error_message().find("control character"), std::string::npos)
        << c.name << ": " << s.error_message();
  }

  // Ids of printable text, such as a spreadsheet formula, are ids like others.
  const auto formula = client_->claim(kCampaign, "=HYPERLINK(\"http://x\",\"y\")", "", "=1+1");
  EXPECT_TRUE(formula.ok()) << formula.status.error_message();
}

}  // namespace
}  // namespace voucherd::testing
