// records.h — how voucherd's Redis stores name their keys and lay out a
// voucher record; shared by the Redis claim log and the per-claim baseline.
//
// Every key of a campaign carries the hash tag {<campaign id>}, so one
// campaign lives in one Redis Cluster slot (docs/redis.md).
//
// A voucher record is one string value: the state as one digit first (so a
// script can read or change it with GETRANGE/SETRANGE at offset 0), then
// each field as <decimal length>:<bytes>, in this order: SKU, site, member,
// request id, kind, face value (cents), issued at (µs), expires at (µs).
// A string costs Redis about half the memory and CPU of a hash of fields.
#pragma once

#include <string>
#include <string_view>

#include "engine/model.h"

namespace voucherd::redis {

// "<prefix>{<campaign id>}:<suffix>", e.g. vd:{guangdong-2024}:stock.
[[nodiscard]] std::string campaign_key(std::string_view prefix, std::string_view campaign_id,
                                       std::string_view suffix);

[[nodiscard]] std::string encode_voucher(const VoucherRecord& v);

// The record of `code` in `campaign_id` from its stored value; nullptr when
// the value is not a voucher record (missing, or not written by voucherd).
[[nodiscard]] VoucherPtr decode_voucher(std::string_view campaign_id, std::string_view code,
                                        std::string_view value);

}  // namespace voucherd::redis
