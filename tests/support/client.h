// client.h — test support: one gRPC client of voucherd for the end-to-end
// tests.
//
// A Client holds one channel and the VoucherService and AdminService stubs
// on it. Every call gets a deadline (10 s unless with_deadline() says
// otherwise) and, when bearer() gave one, an "authorization: Bearer" header.
// Each call returns the status and the response together (Reply). Copies
// made by with_deadline() and bearer() share the channel.
//
// Usage:
//   Client c(server.target());
//   const auto r = c.claim("guangdong-2024", "member-1");
//   if (!r.ok()) ... r.status.error_code(), r.reason() ...
//   c.bearer("app-secret").with_deadline(std::chrono::seconds(20)).claim_batch(req);
//
// Thread-safety: calls may be made from any number of threads at once (gRPC
// stubs are thread-safe); with_deadline() and bearer() return new clients.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {

// The google.rpc.ErrorInfo reason of a status ("" when OK or none).
std::string reason_of(const grpc::Status& status);
// One value of its ErrorInfo metadata ("field"), "" when it has none.
std::string error_metadata_of(const grpc::Status& status, const std::string& key);

// The google.rpc.RetryInfo delay of a status, if it carries one.
std::optional<std::chrono::milliseconds> retry_delay_of(const grpc::Status& status);

// A call's outcome: its status and, when OK, its response.
template <typename Response>
struct Reply {
  grpc::Status status;
  Response response;
  [[nodiscard]] bool ok() const { return status.ok(); }
  [[nodiscard]] grpc::StatusCode code() const { return status.error_code(); }
  [[nodiscard]] std::string reason() const { return reason_of(status); }
};

class Client {
 public:
  static constexpr std::chrono::milliseconds kDefaultDeadline{10'000};

  explicit Client(const std::string& target,
                  const std::shared_ptr<grpc::ChannelCredentials>& credentials =
                      grpc::InsecureChannelCredentials());

  // A client on the same channel whose calls have `deadline` each.
  [[nodiscard]] Client with_deadline(std::chrono::milliseconds deadline) const;
  // A client on the same channel sending `token` as a bearer token (none
  // when nullopt).
  [[nodiscard]] Client bearer(std::optional<std::string> token) const;

  // VoucherService.
  Reply<voucher::v1::ClaimResponse> claim(const voucher::v1::ClaimRequest& request) const;
  Reply<voucher::v1::ClaimResponse> claim(const std::string& campaign_id,
                                          const std::string& member_id,
                                          const std::string& sku_id = "",
                                          const std::string& request_id = "") const;
  // Claims, pressing again (10 ms apart, at most `attempts` times) while the
  // answer says "retry" (RESOURCE_EXHAUSTED: a lease is on its way;
  // UNAVAILABLE: the store is not there yet); the last answer.
  Reply<voucher::v1::ClaimResponse> claim_until_final(const std::string& campaign_id,
                                                      const std::string& member_id,
                                                      int attempts = 500) const;
  Reply<voucher::v1::ClaimBatchResponse> claim_batch(
      const voucher::v1::ClaimBatchRequest& request) const;
  Reply<voucher::v1::DrawResponse> draw(const std::string& campaign_id,
                                        const std::string& member_id,
                                        const std::string& request_id) const;
  Reply<voucher::v1::ApplyResponse> apply(const std::string& campaign_id,
                                          const std::string& member_id,
                                          const std::string& request_id,
                                          const std::vector<std::string>& preferred_sku_ids) const;
  Reply<voucher::v1::Application> get_application(const std::string& campaign_id,
                                                  const std::string& member_id) const;
  Reply<voucher::v1::Voucher> get_voucher(const std::string& code) const;
  Reply<voucher::v1::RedeemResponse> redeem(const std::string& code, const std::string& site_id,
                                            const std::string& request_id = "") const;
  Reply<voucher::v1::ListMemberVouchersResponse> list_member_vouchers(
      const std::string& member_id) const;

  // AdminService.
  Reply<voucher::v1::Campaign> create_campaign(const voucher::v1::Campaign& campaign) const;
  Reply<voucher::v1::Campaign> get_campaign(const std::string& campaign_id) const;
  Reply<voucher::v1::ListCampaignsResponse> list_campaigns(int page_size,
                                                           const std::string& page_token) const;
  Reply<voucher::v1::CampaignStats> stats(const std::string& campaign_id) const;
  Reply<voucher::v1::Voucher> cancel_voucher(const std::string& code) const;
  Reply<voucher::v1::RevealSeedResponse> reveal_seed(const std::string& campaign_id) const;
  Reply<voucher::v1::ReconcileCampaignResponse> reconcile(const std::string& campaign_id) const;
  // The whole stream, once it ended (the records read before a failure too).
  Reply<std::vector<voucher::v1::ApplicationRecord>> export_applications(
      const std::string& campaign_id) const;

  [[nodiscard]] const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  [[nodiscard]] voucher::v1::VoucherService::Stub& vouchers() const { return *vouchers_; }
  [[nodiscard]] voucher::v1::AdminService::Stub& admin() const { return *admin_; }
  // Sets the deadline and the bearer token of this client on `ctx`.
  void prepare(grpc::ClientContext& ctx) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<voucher::v1::VoucherService::Stub> vouchers_;
  std::shared_ptr<voucher::v1::AdminService::Stub> admin_;
  std::chrono::milliseconds deadline_ = kDefaultDeadline;
  std::optional<std::string> token_;
};

}  // namespace voucherd::testing
