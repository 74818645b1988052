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
//     holds only records, and nothing else is guessed at;
//  4. a stored application of an APPLY_THEN_DRAW campaign
//     (decode_application, server/redis/apply_log.h): one that decodes names
//     each of its SKUs once, at most 16, all the campaign's, and encodes
//     back to a value that decodes the same;
//  5. the same reply, to the apply campaigns' scripts: a SELECTED
//     application carries its member's voucher, a turn's cursor is within
//     its frozen count and it has every SKU's stock, and a done allocation
//     has written every position.
#include <string>
#include <vector>

#include "engine/limits.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/reply_reader.h"
#include "server/redis/apply_log.h"
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

// An APPLY_THEN_DRAW campaign with three SKUs, as the scripts' readers see it.
const CampaignSpec& apply_campaign() {
  static const CampaignSpec spec = [] {
    CampaignSpec s;
    s.id = std::string(kCampaign);
    s.mode = CampaignMode::kApplyThenDraw;
    for (const char* id : {"sku-a", "sku-b", "sku-c"}) {
      SkuSpec sku;
      sku.id = id;
      sku.site_id = "site-1";
      sku.stock = 5;
      s.skus.push_back(sku);
    }
    return s;
  }();
  return spec;
}

void check_application(std::string_view value) {
  const CampaignSpec& spec = apply_campaign();
  std::string request;
  const auto e = redis::decode_application(spec, "m-1", value, &request);
  if (!e) return;
  FUZZ_EXPECT(e->member_id == "m-1" && e->applied_at_us >= 0 && e->applied_at_us % 1000 == 0,
              "an application is the member's, at a millisecond");
  FUZZ_EXPECT(e->preferred.size() <= limits::kApplicationPreferencesMax, "at most 16 SKUs");
  for (std::size_t i = 0; i < e->preferred.size(); ++i) {
    FUZZ_EXPECT(e->preferred[i] < spec.skus.size(), "each preference is one of the SKUs");
    for (std::size_t j = 0; j < i; ++j) {
      FUZZ_EXPECT(e->preferred[i] != e->preferred[j], "each SKU once");
    }
  }
  const std::string encoded = std::to_string(e->applied_at_us / 1000) + "\x1f" + request + "\x1f" +
                              redis::encode_preferences(e->preferred);
  std::string request_again;
  const auto again = redis::decode_application(spec, "m-1", encoded, &request_again);
  FUZZ_EXPECT(again && *again == *e && request_again == request,
              "a decoded application encodes to the same");
}

void check_apply_replies(fuzz::InputReader& in) {
  const CampaignSpec& spec = apply_campaign();
  const redis::Reply reply = fuzz::make_reply(in);
  if (const auto found = redis::parse_application_reply(spec, "m-1", reply)) {
    if (found->kind == redis::ApplicationReply::Kind::kFound &&
        found->state == ApplicationState::kSelected) {
      FUZZ_EXPECT(found->voucher != nullptr && found->voucher->member_id() == "m-1",
                  "a SELECTED application carries the member's voucher");
    }
    if (found->kind == redis::ApplicationReply::Kind::kRecordKey) {
      FUZZ_EXPECT(found->voucher == nullptr, "asking for a record key reads nothing");
    }
  }
  if (const auto turn = redis::parse_alloc_take_reply(spec, reply)) {
    FUZZ_EXPECT(turn->next >= 0 && turn->next <= turn->total && turn->epoch >= 0,
                "a turn's cursor is within its frozen count");
    FUZZ_EXPECT(turn->stock_left.size() == spec.skus.size(), "a turn has every SKU's stock");
  }
  if (const auto step = redis::parse_alloc_batch_reply(reply)) {
    if (step->kind == redis::AllocBatchReply::Kind::kWritten ||
        step->kind == redis::AllocBatchReply::Kind::kMoved) {
      FUZZ_EXPECT(step->turn.next >= 0 && step->turn.next <= step->turn.total,
                  "a step's cursor is within its frozen count");
      FUZZ_EXPECT(
          step->turn.kind != AllocationTurn::Kind::kDone || step->turn.next == step->turn.total,
          "a done allocation has written every position");
    }
  }
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  voucherd::check_record(text);
  voucherd::check_holders(text);
  voucherd::check_application(text);
  voucherd::fuzz::InputReader in(data, size);
  voucherd::check_replies(in);
  voucherd::fuzz::InputReader again(data, size);
  voucherd::check_apply_replies(again);
  return 0;
}
