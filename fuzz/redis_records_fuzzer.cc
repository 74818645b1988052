// redis_records_fuzzer — the readers of voucher records and of the replies
// that carry them (server/redis/records.h): what Redis holds or answers is
// input to voucherd, never trusted.
//
// Each input is read as:
//  1. a stored voucher record (decode_voucher): a record that decodes has a
//     known state and SKU kind, holds a redemption only when REDEEMED,
//     encodes back (encode_voucher) to a record that decodes to the same
//     fields, and is refused with one byte more or one byte less;
//  2. a holders feed entry (decode_holders_entry): one that decodes encodes
//     back, as the scripts write it, to an entry that decodes the same, and
//     one that does not leaves the list as it was;
//  3. a script reply (made from the input: any shape) to redeem, cancel and
//     a member's vouchers: a status that must carry a record has one, a list
//     holds only records, and nothing else is guessed at.
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/reply_reader.h"
#include "server/redis/records.h"

namespace voucherd {
namespace {

constexpr std::string_view kCampaign = "fuzz-2024";
constexpr std::string_view kCode = "AK00H-D8M2Z-M4CVM-2QCDM-R8TME-5K5QJ";

bool same_fields(const VoucherRecord& a, const VoucherRecord& b) {
  return a.code() == b.code() && a.campaign_id() == b.campaign_id() && a.sku_id() == b.sku_id() &&
         a.site_id() == b.site_id() && a.member_id() == b.member_id() &&
         a.request_id() == b.request_id() && a.sku_kind() == b.sku_kind() &&
         a.face_value_cents() == b.face_value_cents() && a.issued_at_us() == b.issued_at_us() &&
         a.expires_at_us() == b.expires_at_us() && a.state() == b.state();
}

void check_record(std::string_view value) {
  const VoucherPtr v = redis::decode_voucher(kCampaign, kCode, value);
  if (!v) return;
  FUZZ_EXPECT(v->code() == kCode && v->campaign_id() == kCampaign, "a record is the code's");
  FUZZ_EXPECT(v->state() >= VoucherState::kIssued && v->state() <= VoucherState::kCancelled,
              "a record's state is one voucherd writes");
  FUZZ_EXPECT(v->sku_kind() >= SkuKind::kHotel && v->sku_kind() <= SkuKind::kScenic,
              "a record's SKU kind is one voucherd writes");
  const bool redeemed_part =
      !v->redeemed_site_id().empty() || v->redeemed_at_us() != 0 || !v->redeem_request_id().empty();
  FUZZ_EXPECT(!redeemed_part || v->state() == VoucherState::kRedeemed,
              "only a REDEEMED record carries a redemption");
  const std::string encoded = redis::encode_voucher(*v);
  const VoucherPtr again = redis::decode_voucher(kCampaign, kCode, encoded);
  FUZZ_EXPECT(again && same_fields(*again, *v), "a decoded record encodes to the same fields");
  FUZZ_EXPECT(redis::decode_voucher(kCampaign, kCode, std::string(value) + "x") == nullptr,
              "a record with a byte more is refused");
  FUZZ_EXPECT(redis::decode_voucher(kCampaign, kCode, value.substr(0, value.size() - 1)) == nullptr,
              "a record with a byte less is refused");
}

std::string field(std::string_view s) { return std::to_string(s.size()) + ":" + std::string(s); }

void check_holders(std::string_view entry) {
  std::vector<redis::HolderChange> out(1);  // what an earlier entry left
  const bool ok = redis::decode_holders_entry(entry, out);
  if (!ok) {
    FUZZ_EXPECT(out.size() == 1, "an entry that does not decode appends nothing");
    return;
  }
  std::string encoded;  // as the claim and cancel scripts write entries
  for (std::size_t i = 1; i < out.size(); ++i) {
    const redis::HolderChange& c = out[i];
    FUZZ_EXPECT(!c.member_id.empty(), "a change names its member");
    if (c.holds) {
      encoded += "+" + field(c.member_id);
    } else {
      encoded += "-" + field(c.member_id) + field(c.code) + (c.none_left ? "1" : "0");
    }
  }
  std::vector<redis::HolderChange> again;
  FUZZ_EXPECT(redis::decode_holders_entry(encoded, again), "an encoded entry decodes");
  FUZZ_EXPECT(again.size() + 1 == out.size(), "as many changes");
  for (std::size_t i = 0; i < again.size(); ++i) {
    const redis::HolderChange& a = again[i];
    const redis::HolderChange& b = out[i + 1];
    FUZZ_EXPECT(a.holds == b.holds && a.member_id == b.member_id && a.code == b.code &&
                    a.none_left == b.none_left,
                "the same changes");
  }
}

void check_replies(fuzz::InputReader& in) {
  const redis::Reply reply = fuzz::make_reply(in);

  const redis::RedeemReply redeem = redis::parse_redeem_reply(kCampaign, kCode, reply);
  if (redeem.status == RedeemStatus::kRedeemed || redeem.status == RedeemStatus::kRedeemedBefore ||
      redeem.status == RedeemStatus::kCancelled || redeem.status == RedeemStatus::kExpired) {
    FUZZ_EXPECT(redeem.voucher != nullptr, "a redemption's answer carries its record");
  }

  const redis::CancelReply cancel = redis::parse_cancel_reply(kCampaign, kCode, reply);
  if (cancel.status == CancelStatus::kCancelled ||
      cancel.status == CancelStatus::kAlreadyCancelled ||
      cancel.status == CancelStatus::kRedeemed) {
    FUZZ_EXPECT(cancel.voucher != nullptr, "a cancellation's answer carries its record");
  }
  if (!cancel.member_key_of.empty()) {
    FUZZ_EXPECT(cancel.status == CancelStatus::kUnavailable && !cancel.voucher,
                "asking for a member's key changes nothing");
  }

  const auto listed = redis::parse_member_vouchers(kCampaign, reply);
  if (listed) {
    if (listed->listed) {
      FUZZ_EXPECT(listed->codes.empty(), "a whole list asks for nothing more");
      for (const VoucherPtr& v : listed->vouchers) FUZZ_EXPECT(v != nullptr, "records only");
    } else {
      FUZZ_EXPECT(listed->vouchers.empty() && !listed->codes.empty(),
                  "a list that is not whole names the codes to declare");
      for (const std::string& code : listed->codes) FUZZ_EXPECT(!code.empty(), "codes are named");
    }
  }
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  voucherd::check_record(text);
  voucherd::check_holders(text);
  voucherd::fuzz::InputReader in(data, size);
  voucherd::check_replies(in);
  return 0;
}
