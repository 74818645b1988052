#include "tests/support/client.h"

#include <thread>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace voucherd::testing {

namespace v1 = voucher::v1;

std::string reason_of(const grpc::Status& status) {
  if (status.ok()) return "";
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

std::string error_metadata_of(const grpc::Status& status, const std::string& key) {
  google::rpc::Status details;
  if (status.ok() || !details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (!any.UnpackTo(&info)) continue;
    const auto it = info.metadata().find(key);
    return it != info.metadata().end() ? it->second : "";
  }
  return "";
}

std::optional<std::chrono::milliseconds> retry_delay_of(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.ok() || !details.ParseFromString(status.error_details())) return std::nullopt;
  for (const auto& any : details.details()) {
    google::rpc::RetryInfo retry;
    if (any.UnpackTo(&retry)) {
      return std::chrono::milliseconds(retry.retry_delay().seconds() * 1000 +
                                       retry.retry_delay().nanos() / 1'000'000);
    }
  }
  return std::nullopt;
}

Client::Client(const std::string& target,
               const std::shared_ptr<grpc::ChannelCredentials>& credentials)
    : channel_(grpc::CreateChannel(target, credentials)),
      vouchers_(v1::VoucherService::NewStub(channel_)),
      admin_(v1::AdminService::NewStub(channel_)) {}

Client Client::with_deadline(std::chrono::milliseconds deadline) const {
  Client copy = *this;
  copy.deadline_ = deadline;
  return copy;
}

Client Client::bearer(std::optional<std::string> token) const {
  Client copy = *this;
  copy.token_ = std::move(token);
  return copy;
}

void Client::prepare(grpc::ClientContext& ctx) const {
  ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
  if (token_) ctx.AddMetadata("authorization", "Bearer " + *token_);
}

namespace {

// One unary call of `method` on `stub` with a prepared context.
template <typename Response, typename Stub, typename Request, typename Method>
Reply<Response> call(const Client& client, Stub& stub, Method method, const Request& request) {
  grpc::ClientContext ctx;
  client.prepare(ctx);
  Reply<Response> reply;
  reply.status = (stub.*method)(&ctx, request, &reply.response);
  return reply;
}

}  // namespace

Reply<v1::ClaimResponse> Client::claim(const v1::ClaimRequest& request) const {
  return call<v1::ClaimResponse>(*this, *vouchers_, &v1::VoucherService::Stub::Claim, request);
}

Reply<v1::ClaimResponse> Client::claim(const std::string& campaign_id, const std::string& member_id,
                                       const std::string& sku_id,
                                       const std::string& request_id) const {
  v1::ClaimRequest req;
  req.set_campaign_id(campaign_id);
  req.set_member_id(member_id);
  req.set_sku_id(sku_id);
  req.set_request_id(request_id);
  return claim(req);
}

Reply<v1::ClaimResponse> Client::claim_until_final(const std::string& campaign_id,
                                                   const std::string& member_id,
                                                   int attempts) const {
  Reply<v1::ClaimResponse> reply;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    reply = claim(campaign_id, member_id);
    if (reply.code() != grpc::StatusCode::RESOURCE_EXHAUSTED &&
        reply.code() != grpc::StatusCode::UNAVAILABLE) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return reply;
}

Reply<v1::ClaimBatchResponse> Client::claim_batch(const v1::ClaimBatchRequest& request) const {
  return call<v1::ClaimBatchResponse>(*this, *vouchers_, &v1::VoucherService::Stub::ClaimBatch,
                                      request);
}

Reply<v1::DrawResponse> Client::draw(const std::string& campaign_id, const std::string& member_id,
                                     const std::string& request_id) const {
  v1::DrawRequest req;
  req.set_campaign_id(campaign_id);
  req.set_member_id(member_id);
  req.set_request_id(request_id);
  return call<v1::DrawResponse>(*this, *vouchers_, &v1::VoucherService::Stub::Draw, req);
}

Reply<v1::ApplyResponse> Client::apply(const std::string& campaign_id, const std::string& member_id,
                                       const std::string& request_id,
                                       const std::vector<std::string>& preferred_sku_ids) const {
  v1::ApplyRequest req;
  req.set_campaign_id(campaign_id);
  req.set_member_id(member_id);
  req.set_request_id(request_id);
  for (const std::string& sku : preferred_sku_ids) req.add_preferred_sku_ids(sku);
  return call<v1::ApplyResponse>(*this, *vouchers_, &v1::VoucherService::Stub::Apply, req);
}

Reply<v1::Application> Client::get_application(const std::string& campaign_id,
                                               const std::string& member_id) const {
  v1::GetApplicationRequest req;
  req.set_campaign_id(campaign_id);
  req.set_member_id(member_id);
  return call<v1::Application>(*this, *vouchers_, &v1::VoucherService::Stub::GetApplication, req);
}

Reply<v1::Voucher> Client::get_voucher(const std::string& code) const {
  v1::GetVoucherRequest req;
  req.set_code(code);
  return call<v1::Voucher>(*this, *vouchers_, &v1::VoucherService::Stub::GetVoucher, req);
}

Reply<v1::RedeemResponse> Client::redeem(const std::string& code, const std::string& site_id,
                                         const std::string& request_id) const {
  v1::RedeemRequest req;
  req.set_code(code);
  req.set_site_id(site_id);
  req.set_request_id(request_id);
  return call<v1::RedeemResponse>(*this, *vouchers_, &v1::VoucherService::Stub::Redeem, req);
}

Reply<v1::ListMemberVouchersResponse> Client::list_member_vouchers(
    const std::string& member_id) const {
  v1::ListMemberVouchersRequest req;
  req.set_member_id(member_id);
  return call<v1::ListMemberVouchersResponse>(*this, *vouchers_,
                                              &v1::VoucherService::Stub::ListMemberVouchers, req);
}

Reply<v1::Campaign> Client::create_campaign(const v1::Campaign& campaign) const {
  v1::CreateCampaignRequest req;
  *req.mutable_campaign() = campaign;
  return call<v1::Campaign>(*this, *admin_, &v1::AdminService::Stub::CreateCampaign, req);
}

Reply<v1::Campaign> Client::get_campaign(const std::string& campaign_id) const {
  v1::GetCampaignRequest req;
  req.set_campaign_id(campaign_id);
  return call<v1::Campaign>(*this, *admin_, &v1::AdminService::Stub::GetCampaign, req);
}

Reply<v1::ListCampaignsResponse> Client::list_campaigns(int page_size,
                                                        const std::string& page_token) const {
  v1::ListCampaignsRequest req;
  req.set_page_size(page_size);
  req.set_page_token(page_token);
  return call<v1::ListCampaignsResponse>(*this, *admin_, &v1::AdminService::Stub::ListCampaigns,
                                         req);
}

Reply<v1::CampaignStats> Client::stats(const std::string& campaign_id) const {
  v1::GetCampaignStatsRequest req;
  req.set_campaign_id(campaign_id);
  return call<v1::CampaignStats>(*this, *admin_, &v1::AdminService::Stub::GetCampaignStats, req);
}

Reply<v1::Voucher> Client::cancel_voucher(const std::string& code) const {
  v1::CancelVoucherRequest req;
  req.set_code(code);
  return call<v1::Voucher>(*this, *admin_, &v1::AdminService::Stub::CancelVoucher, req);
}

Reply<v1::RevealSeedResponse> Client::reveal_seed(const std::string& campaign_id) const {
  v1::RevealSeedRequest req;
  req.set_campaign_id(campaign_id);
  return call<v1::RevealSeedResponse>(*this, *admin_, &v1::AdminService::Stub::RevealSeed, req);
}

Reply<std::vector<v1::ApplicationRecord>> Client::export_applications(
    const std::string& campaign_id) const {
  v1::ExportApplicationsRequest req;
  req.set_campaign_id(campaign_id);
  grpc::ClientContext ctx;
  prepare(ctx);
  Reply<std::vector<v1::ApplicationRecord>> reply;
  auto reader = admin_->ExportApplications(&ctx, req);
  v1::ApplicationRecord r;
  while (reader->Read(&r)) reply.response.push_back(r);
  reply.status = reader->Finish();
  return reply;
}

Reply<v1::ReconcileCampaignResponse> Client::reconcile(const std::string& campaign_id) const {
  v1::ReconcileCampaignRequest req;
  req.set_campaign_id(campaign_id);
  return call<v1::ReconcileCampaignResponse>(*this, *admin_,
                                             &v1::AdminService::Stub::ReconcileCampaign, req);
}

}  // namespace voucherd::testing
