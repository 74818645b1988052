#include "server/grpc/request_checks.h"

#include <algorithm>

#include "engine/campaign_validation.h"
#include "engine/limits.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/status_map.h"

namespace voucherd {

namespace v1 = voucher::v1;

namespace {

constexpr std::string_view kPageTokenTag = "c1.";

// The requests that name one campaign, and nothing else to check.
std::optional<grpc::Status> check_campaign_id(std::string_view campaign_id) {
  return refuse_bad_ids({{"campaign_id", campaign_id}});
}

}  // namespace

std::optional<grpc::Status> refuse_bad_ids(std::initializer_list<IdField> ids) {
  for (const IdField& f : ids) {
    const IdProblem problem = id_problem(f.id);
    if (problem == IdProblem::kNone || (problem == IdProblem::kEmpty && !f.required)) continue;
    return invalid_id(f.field, f.id, problem);
  }
  return std::nullopt;
}

std::optional<grpc::Status> refuse_bad_code(std::string_view code) {
  if (code.empty()) return invalid_argument("code", "code must not be empty");
  if (code.size() > limits::kCodeTextBytesMax) {
    return invalid_argument("code", "code is " + std::to_string(code.size()) +
                                        " bytes; a voucher code is at most " +
                                        std::to_string(limits::kCodeTextBytesMax));
  }
  return std::nullopt;
}

std::optional<grpc::Status> check_request(const v1::ClaimRequest& r) {
  return refuse_bad_ids({{"campaign_id", r.campaign_id()},
                         {"member_id", r.member_id()},
                         {"sku_id", r.sku_id(), false},
                         {"request_id", r.request_id(), false}});
}

std::optional<grpc::Status> check_request(const v1::ClaimBatchRequest& r) {
  const auto n = static_cast<std::size_t>(r.claims_size());
  if (n == 0 || n > limits::kClaimBatchClaimsMax) {
    return invalid_argument("claims", "claims must hold 1 to " +
                                          std::to_string(limits::kClaimBatchClaimsMax) +
                                          " claims; this batch holds " + std::to_string(n));
  }
  return std::nullopt;
}

std::optional<grpc::Status> check_request(const v1::DrawRequest& r) {
  return refuse_bad_ids({{"campaign_id", r.campaign_id()},
                         {"member_id", r.member_id()},
                         {"request_id", r.request_id()}});
}

std::optional<grpc::Status> check_request(const v1::ApplyRequest& r) {
  if (auto refused = refuse_bad_ids({{"campaign_id", r.campaign_id()},
                                     {"member_id", r.member_id()},
                                     {"request_id", r.request_id()}})) {
    return refused;
  }
  const auto n = static_cast<std::size_t>(r.preferred_sku_ids_size());
  if (n > limits::kApplicationPreferencesMax) {
    return invalid_argument("preferred_sku_ids",
                            "preferred_sku_ids holds " + std::to_string(n) + " SKUs; at most " +
                                std::to_string(limits::kApplicationPreferencesMax) +
                                " may be named");
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& id = r.preferred_sku_ids(static_cast<int>(i));
    const std::string field = "preferred_sku_ids[" + std::to_string(i) + "]";
    if (const IdProblem problem = id_problem(id); problem != IdProblem::kNone) {
      return invalid_argument("preferred_sku_ids", id_problem_text(field, id, problem));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (r.preferred_sku_ids(static_cast<int>(j)) == id) {
        return invalid_argument("preferred_sku_ids", field + " names SKU " + quoted_input(id) +
                                                         " again (preferred_sku_ids[" +
                                                         std::to_string(j) +
                                                         "]): name each SKU once");
      }
    }
  }
  return std::nullopt;
}

std::optional<grpc::Status> check_request(const v1::GetApplicationRequest& r) {
  return refuse_bad_ids({{"campaign_id", r.campaign_id()}, {"member_id", r.member_id()}});
}

std::optional<grpc::Status> check_request(const v1::GetVoucherRequest& r) {
  return refuse_bad_code(r.code());
}

std::optional<grpc::Status> check_request(const v1::RedeemRequest& r) {
  if (auto refused = refuse_bad_code(r.code())) return refused;
  return refuse_bad_ids({{"site_id", r.site_id()}, {"request_id", r.request_id(), false}});
}

std::optional<grpc::Status> check_request(const v1::ListMemberVouchersRequest& r) {
  return refuse_bad_ids({{"member_id", r.member_id()}, {"campaign_id", r.campaign_id(), false}});
}

std::optional<grpc::Status> check_request(const v1::GetCampaignRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::GetCampaignStatsRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::ReconcileCampaignRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::CancelVoucherRequest& r) {
  return refuse_bad_code(r.code());
}

std::optional<grpc::Status> check_request(const v1::ExportRedemptionsRequest& r) {
  // An empty site_id asks for every site.
  return refuse_bad_ids({{"campaign_id", r.campaign_id()}, {"site_id", r.site_id(), false}});
}

std::optional<grpc::Status> check_request(const v1::RevealSeedRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::ExportDrawsRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::ExportApplicationsRequest& r) {
  return check_campaign_id(r.campaign_id());
}

std::optional<grpc::Status> check_request(const v1::ListReplicasRequest& r) {
  // Empty: every campaign.
  return refuse_bad_ids({{"campaign_id", r.campaign_id(), false}});
}

std::expected<CampaignSpec, grpc::Status> check_request(const v1::CreateCampaignRequest& r) {
  if (!r.has_campaign())
    return std::unexpected(invalid_argument("campaign", "campaign must be set"));
  auto spec = campaign_from_proto(r.campaign());
  if (!spec) return std::unexpected(invalid_argument(spec.error().field, spec.error().message));
  return std::move(*spec);
}

std::expected<CampaignPage, grpc::Status> check_request(const v1::ListCampaignsRequest& r) {
  if (r.page_size() < 0) {
    return std::unexpected(invalid_argument("page_size", "page_size must not be negative"));
  }
  CampaignPage page;
  page.size = r.page_size() == 0 ? kListPageSizeDefault : std::min(r.page_size(), kListPageSizeMax);
  if (!r.page_token().empty()) {
    page.after = id_of_page_token(r.page_token());
    if (!page.after) {
      return std::unexpected(invalid_argument("page_token",
                                              "page_token is not one voucherd gave (pass the "
                                              "next_page_token of the previous page, or nothing)"));
    }
  }
  return page;
}

std::string page_token_of(std::string_view last_id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kPageTokenTag);
  for (const char ch : last_id) {
    const auto b = static_cast<unsigned char>(ch);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::optional<std::string> id_of_page_token(std::string_view token) {
  if (token.substr(0, kPageTokenTag.size()) != kPageTokenTag) return std::nullopt;
  token.remove_prefix(kPageTokenTag.size());
  if (token.empty() || token.size() % 2 != 0 || token.size() > 2 * limits::kIdBytesMax) {
    return std::nullopt;
  }
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
  };
  std::string id;
  for (std::size_t i = 0; i < token.size(); i += 2) {
    const int hi = nibble(token[i]);
    const int lo = nibble(token[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id.push_back(static_cast<char>(hi * 16 + lo));
  }
  return id;
}

}  // namespace voucherd
