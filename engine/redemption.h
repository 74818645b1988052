// redemption.h — the rules of redeeming a voucher, shared by every claim log
// that decides in process memory (the Redis log runs the same rules in one
// Lua script, server/redis/records.cc).
//
// Order of the checks, cheapest and least revealing first: the voucher must
// belong to the redeeming site; a REDEEMED one stays redeemed (a retry of the
// same request is told apart by the engine); a CANCELLED one cannot be
// redeemed; an ISSUED one past expires_at is expired (nothing is written:
// expiry is derived when read, no sweeper runs).
#pragma once

#include "engine/claim_log.h"
#include "engine/model.h"

namespace voucherd {

[[nodiscard]] RedeemStatus decide_redeem(const VoucherRecord& stored,
                                         const RedeemRequestView& request);

// `stored` as REDEEMED by `request`.
[[nodiscard]] VoucherPtr redeemed_copy(const VoucherRecord& stored,
                                       const RedeemRequestView& request);

}  // namespace voucherd
