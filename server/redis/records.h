// records.h — how voucherd's Redis stores lay out a voucher record, and the
// commands and replies of the scripts that read and change one; shared by the
// Redis claim log and the per-claim baseline. The key names are keys.h's;
// the scripts are scripts/*.lua (scripts.h), their answers script_replies.h.
//
// A voucher record is one string value: the state as one digit first (so a
// script can read or change it with GETRANGE/SETRANGE at offset 0), then
// each field as <decimal length>:<bytes>, in this order: SKU, site, member,
// request id, kind, face value (cents), issued at (µs), expires at (µs); a
// redeemed voucher's record goes on with three more: the redeeming site, the
// time (µs) and the request id.
// A string costs Redis about half the memory and CPU of a hash of fields.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/claim_log.h"
#include "engine/model.h"
#include "server/redis/connection.h"
#include "server/redis/keys.h"
#include "server/redis/link.h"

namespace voucherd::redis {

[[nodiscard]] std::string encode_voucher(const VoucherRecord& v);

// Lua defining record_fields(v, n): the first n fields of a record, for the
// scripts that read one (prepended to their source): scripts/record_fields.lua.
[[nodiscard]] const std::string& record_fields_lua();

// The minute a voucher expires in (Unix minutes), as the Redis claim log
// names its expiry buckets: vd:{C}:expiring holds "<sku>|<minute>" -> ISSUED
// vouchers expiring in that minute.
[[nodiscard]] std::string expiry_bucket(UnixMicros expires_at_us);

// The record of `code` in `campaign_id` from its stored value; nullptr when
// the value is not a voucher record (missing, or not written by voucherd) or
// `code` is not in a code's display form (PackedCode::pack).
[[nodiscard]] VoucherPtr decode_voucher(std::string_view campaign_id, std::string_view code,
                                        std::string_view value);

// The redemption rules of engine/redemption.h as one atomic script
// (scripts/redeem.lua, which names its KEYS, ARGV and answers).
[[nodiscard]] const Script& redeem_script();
// `track_expiring`: the store keeps expiry buckets (the claim log does; the
// baseline does not).
[[nodiscard]] Command redeem_command(std::string_view key_prefix, std::string_view campaign_id,
                                     std::string_view code, const RedeemRequestView& request,
                                     bool track_expiring);
// Cancels a voucher of the Redis claim log in one atomic step (the
// baseline store has its own): ISSUED -> CANCELLED, the unit back to the
// shared pool (issued - 1, pool + 1, and `returns` + 1 so that replicas that
// found the campaign sold out look again), and the member's allowance freed
// unless asked to keep it.
[[nodiscard]] const Script& cancel_script();
// `member_id`: the voucher's member, whose allowance key the call declares;
// empty when not known yet (the first call of a cancellation: the script
// then answers the member, if it needs that key, and writes nothing).
[[nodiscard]] Command cancel_command(std::string_view campaign_id, std::string_view code,
                                     const CancelRequestView& request, std::string_view member_id);
struct CancelReply {
  CancelStatus status = CancelStatus::kUnavailable;
  VoucherPtr voucher;
  // Set (status kUnavailable) when the script needs the allowance key of
  // this member declared: nothing was written; ask again.
  std::string member_key_of;
};
[[nodiscard]] CancelReply parse_cancel_reply(std::string_view campaign_id, std::string_view code,
                                             const Reply& reply);

// A member's vouchers in one campaign of the Redis claim log, read in one
// script from their allowance key and the records of `codes`, the codes the
// caller expects the member to hold (their record keys are declared).
[[nodiscard]] const Script& member_vouchers_script();
[[nodiscard]] Command member_vouchers_command(std::string_view campaign_id,
                                              std::string_view member_id,
                                              std::span<const std::string> codes);
struct MemberVouchersReply {
  // True: `vouchers` is the member's whole list. False: the allowance holds
  // codes that were not declared; `codes` is every code it holds (ask again
  // with those).
  bool listed = false;
  std::vector<VoucherPtr> vouchers;
  std::vector<std::string> codes;
};
// nullopt when the reply has another shape, or a record is unreadable.
[[nodiscard]] std::optional<MemberVouchersReply> parse_member_vouchers(std::string_view campaign_id,
                                                                       const Reply& reply);

// Every REDEEMED voucher of a campaign: the codes in <prefix>{C}:redeemed_codes
// (SSCAN) and their records, read in pipelined chunks on `conn`. Blocking.
[[nodiscard]] StoreResult<std::vector<VoucherPtr>> read_redeemed(Link& conn,
                                                                 std::string_view key_prefix,
                                                                 std::string_view campaign_id);

// The holders feed of a campaign (vd:{C}:holders, a list): what every
// replica needs to answer a member who holds a voucher from another replica
// (`already_claimed`, also after the sell-out) and to free the allowance of
// a member whose voucher another replica cancelled. The claim script pushes
// one entry per batch that gave members their first voucher; the cancel
// script one per cancellation that freed an allowance. An entry is a run of
//   '+' <len>:<member>                       the member holds a voucher now
//   '-' <len>:<member> <len>:<code> <0|1>    `code` was cancelled and its
//                                            allowance freed; 1: the member
//                                            holds no voucher any more
struct HolderChange {
  bool holds = true;
  std::string_view member_id;
  std::string_view code;   // for !holds
  bool none_left = false;  // for !holds
};
// Appends the changes of one entry to `out` (views into `entry`); false when
// the entry is not well formed (nothing is appended then).
[[nodiscard]] bool decode_holders_entry(std::string_view entry, std::vector<HolderChange>& out);

// The outcome of one redeem_command() reply.
struct RedeemReply {
  RedeemStatus status = RedeemStatus::kUnavailable;
  VoucherPtr voucher;
};
[[nodiscard]] RedeemReply parse_redeem_reply(std::string_view campaign_id, std::string_view code,
                                             const Reply& reply);

}  // namespace voucherd::redis
