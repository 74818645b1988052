#include "engine/outcome.h"

namespace voucherd {

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "OK";
    case Outcome::kAlreadyClaimed:
      return "ALREADY_CLAIMED";
    case Outcome::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Outcome::kMistypedCode:
      return "MISTYPED_CODE";
    case Outcome::kCampaignNotFound:
      return "CAMPAIGN_NOT_FOUND";
    case Outcome::kSkuNotFound:
      return "SKU_NOT_FOUND";
    case Outcome::kVoucherNotFound:
      return "VOUCHER_NOT_FOUND";
    case Outcome::kNotOpen:
      return "NOT_OPEN";
    case Outcome::kClosed:
      return "CLOSED";
    case Outcome::kWrongMode:
      return "WRONG_MODE";
    case Outcome::kSoldOut:
      return "SOLD_OUT";
    case Outcome::kSkuSoldOut:
      return "SKU_SOLD_OUT";
    case Outcome::kRequestIdRequired:
      return "REQUEST_ID_REQUIRED";
    case Outcome::kTooManyWaiters:
      return "TOO_MANY_PRESSES";
    case Outcome::kOverloaded:
      return "OVERLOADED";
    case Outcome::kStockRefilling:
      return "STOCK_REFILLING";
    case Outcome::kLogUnavailable:
      return "STORE_UNAVAILABLE";
    case Outcome::kCampaignExists:
      return "CAMPAIGN_EXISTS";
    case Outcome::kWrongSite:
      return "WRONG_SITE";
    case Outcome::kVoucherExpired:
      return "EXPIRED";
    case Outcome::kVoucherCancelled:
      return "CANCELLED";
    case Outcome::kAlreadyRedeemed:
      return "ALREADY_REDEEMED";
    case Outcome::kRedeemThrottled:
      return "REDEEM_THROTTLED";
    case Outcome::kDrawLimitReached:
      return "DAILY_DRAW_LIMIT";
    case Outcome::kCampaignNotOver:
      return "CAMPAIGN_NOT_OVER";
    case Outcome::kPressRateLimited:
      return "PRESS_RATE_LIMITED";
    case Outcome::kApplicationNotFound:
      return "APPLICATION_NOT_FOUND";
    case Outcome::kApplicationsFull:
      return "APPLICATIONS_FULL";
    case Outcome::kInternal:
      return "INTERNAL";
  }
  return "UNKNOWN";
}

}  // namespace voucherd
