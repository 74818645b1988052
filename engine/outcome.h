// outcome.h — the engine's one error vocabulary.
//
// A one-byte result on the hot path; server/status_map.cc is the only place
// that turns it into a gRPC status. `field` names the offending input for
// kInvalidArgument and points at a string literal (no allocation).
#pragma once

#include <cstdint>

namespace voucherd {

enum class Outcome : std::uint8_t {
  kOk = 0,
  kAlreadyClaimed,   // OK on the wire, already_claimed = true
  kInvalidArgument,  // `field` says which
  kMistypedCode,     // malformed code or bad check character
  kCampaignNotFound,
  kSkuNotFound,
  kVoucherNotFound,      // also: MAC does not verify
  kNotOpen,              // window not started
  kClosed,               // window over
  kWrongMode,            // e.g. Claim on a LOTTERY campaign
  kSoldOut,              // whole campaign
  kSkuSoldOut,           // the chosen SKU
  kRequestIdRequired,    // per_member_limit > 1 needs idempotency keys
  kTooManyWaiters,       // one member pressing far too often (shed)
  kOverloaded,           // claim log queue full (shed, retry later)
  kStockRefilling,       // no local units yet, a lease is on its way (retry shortly)
  kLogUnavailable,       // claim log could not confirm the write
  kCampaignExists,       // CreateCampaign with a different definition
  kWrongSite,            // Redeem by a site the voucher does not belong to
  kVoucherExpired,       // Redeem after expires_at
  kVoucherCancelled,     // Redeem of a cancelled voucher
  kAlreadyRedeemed,      // Redeem of a voucher another request redeemed
  kRedeemThrottled,      // too many failed redemptions by one caller (cool-down)
  kDrawLimitReached,     // Draw: the member used every draw of their day
  kCampaignNotOver,      // RevealSeed before the campaign's window ended
  kPressRateLimited,     // one member pressing Claim faster than the press limit
  kApplicationNotFound,  // GetApplication of a member who did not apply
  kApplicationsFull,     // Apply beyond limits::kApplicationsPerCampaignMax
  kInternal,
};

const char* outcome_name(Outcome o);

}  // namespace voucherd
