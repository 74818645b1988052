#include "engine/redemption.h"

#include <memory>

namespace voucherd {

RedeemStatus decide_redeem(const VoucherRecord& stored, const RedeemRequestView& request) {
  if (stored.site_id != request.site_id) return RedeemStatus::kWrongSite;
  switch (stored.state) {
    case VoucherState::kRedeemed:
      return RedeemStatus::kRedeemedBefore;
    case VoucherState::kCancelled:
      return RedeemStatus::kCancelled;
    default:
      break;
  }
  if (request.now_us >= stored.expires_at_us) return RedeemStatus::kExpired;
  return RedeemStatus::kRedeemed;
}

VoucherPtr redeemed_copy(const VoucherRecord& stored, const RedeemRequestView& request) {
  auto v = std::make_shared<VoucherRecord>(stored);
  v->state = VoucherState::kRedeemed;
  v->redeemed_site_id = std::string(request.site_id);
  v->redeemed_at_us = request.now_us;
  v->redeem_request_id = std::string(request.request_id);
  return v;
}

}  // namespace voucherd
