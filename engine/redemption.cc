#include "engine/redemption.h"

#include <memory>

namespace voucherd {

RedeemStatus decide_redeem(const VoucherRecord& stored, const RedeemRequestView& request) {
  if (stored.site_id() != request.site_id) return RedeemStatus::kWrongSite;
  switch (stored.state()) {
    case VoucherState::kRedeemed:
      return RedeemStatus::kRedeemedBefore;
    case VoucherState::kCancelled:
      return RedeemStatus::kCancelled;
    default:
      break;
  }
  if (request.now_us >= stored.expires_at_us()) return RedeemStatus::kExpired;
  return RedeemStatus::kRedeemed;
}

VoucherPtr redeemed_copy(const VoucherRecord& stored, const RedeemRequestView& request) {
  return stored.redeemed(request.site_id, request.now_us, request.request_id);
}

}  // namespace voucherd
