// request_checks.h — what each RPC checks of its request on its own, before
// the engine, the store, metrics or logs look at it: ids (length, control
// characters), codes (length), counts, page tokens, and the campaign of a
// CreateCampaign as far as its wire form goes. Each call object runs its
// request's check_request() first and answers the refusal, if any; who may
// call (tokens) and what the engine or store says come after.
//
// Pure functions of the request: no store, no engine, no gRPC call. The
// request-validation fuzzer (fuzz/request_checks_fuzzer.cc) drives them with
// every RPC's request message.
//
// Usage:
//   if (auto refused = check_request(request_)) return fail(*refused);
#pragma once

#include <grpcpp/support/status.h>

#include <expected>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "engine/model.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd {

// One id of a request, and whether the request must carry it.
struct IdField {
  std::string_view field;
  std::string_view id;
  bool required = true;
};

// The refusal (INVALID_ARGUMENT naming the field) of the first id that breaks
// the id rules (empty when required, over-long, control characters), or
// nothing.
[[nodiscard]] std::optional<grpc::Status> refuse_bad_ids(std::initializer_list<IdField> ids);

// The refusal of a voucher code longer than any code's text
// (limits::kCodeTextBytesMax) or empty, or nothing.
[[nodiscard]] std::optional<grpc::Status> refuse_bad_code(std::string_view code);

// The refusal (INVALID_ARGUMENT naming the field) of a request that breaks
// its RPC's rules, or nothing. A refusal never echoes more than a bounded,
// escaped prefix of the caller's input (status_map.h).
// VoucherService:
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::ClaimRequest& r);
// The batch as a whole (1 to limits::kClaimBatchClaimsMax claims); each of its
// claims is checked with the ClaimRequest check and refused on its own.
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::ClaimBatchRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::DrawRequest& r);
// At most limits::kApplicationPreferencesMax preferences, each an id, each once.
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::ApplyRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::GetApplicationRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::GetVoucherRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::RedeemRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::ListMemberVouchersRequest& r);
// AdminService (CreateCampaign and ListCampaigns below):
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::GetCampaignRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::GetCampaignStatsRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::ReconcileCampaignRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::CancelVoucherRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::ExportRedemptionsRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::RevealSeedRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::ExportDrawsRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(
    const voucher::v1::ExportApplicationsRequest& r);
[[nodiscard]] std::optional<grpc::Status> check_request(const voucher::v1::ListReplicasRequest& r);

// CreateCampaign: the campaign in the engine's terms, or the refusal of one
// that is missing or whose wire form cannot be represented. Whether the
// campaign adds up is validate_and_normalize()'s to say, in the engine.
[[nodiscard]] std::expected<CampaignSpec, grpc::Status> check_request(
    const voucher::v1::CreateCampaignRequest& r);

// ListCampaigns: the page asked for, or the refusal of a negative size or a
// page token voucherd did not make.
struct CampaignPage {
  int size = 0;                      // campaigns at most, 1 to kListPageSizeMax
  std::optional<std::string> after;  // the page starts after this campaign id
};
inline constexpr int kListPageSizeDefault = 50;
inline constexpr int kListPageSizeMax = 1000;
[[nodiscard]] std::expected<CampaignPage, grpc::Status> check_request(
    const voucher::v1::ListCampaignsRequest& r);

// Page tokens name the last campaign id of a page, hex-encoded behind a
// version tag, so they stay opaque and printable. id_of_page_token() gives
// nullopt for a token voucherd did not make.
[[nodiscard]] std::string page_token_of(std::string_view last_id);
[[nodiscard]] std::optional<std::string> id_of_page_token(std::string_view token);

}  // namespace voucherd
