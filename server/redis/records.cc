#include "server/redis/records.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>

#include "server/redis/script_replies.h"

namespace voucherd::redis {
namespace {

void append_field(std::string& out, std::string_view field) {
  out.append(std::to_string(field.size())).push_back(':');
  out.append(field);
}

// Reads one <length>:<bytes> field from the front of `in`.
std::optional<std::string_view> next_field(std::string_view& in) {
  std::size_t size = 0;
  const auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), size);
  if (ec != std::errc() || end == in.data() + in.size() || *end != ':') return std::nullopt;
  const std::size_t header = static_cast<std::size_t>(end - in.data()) + 1;
  if (in.size() - header < size) return std::nullopt;
  std::string_view field = in.substr(header, size);
  in.remove_prefix(header + size);
  return field;
}

std::optional<std::int64_t> number(std::string_view s) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string expiry_bucket(UnixMicros expires_at_us) {
  return std::to_string(expires_at_us / (60 * kMicrosPerSecond));
}

std::string encode_voucher(const VoucherRecord& v) {
  std::string out;
  out.reserve(64 + v.sku_id().size() + v.site_id().size() + v.member_id().size() +
              v.request_id().size());
  out.push_back(static_cast<char>('0' + static_cast<int>(v.state())));
  append_field(out, v.sku_id());
  append_field(out, v.site_id());
  append_field(out, v.member_id());
  append_field(out, v.request_id());
  append_field(out, std::to_string(static_cast<int>(v.sku_kind())));
  append_field(out, std::to_string(v.face_value_cents()));
  append_field(out, std::to_string(v.issued_at_us()));
  append_field(out, std::to_string(v.expires_at_us()));
  return out;
}

VoucherPtr decode_voucher(std::string_view campaign_id, std::string_view code,
                          std::string_view value) {
  // Codes are written in display form, and a record keeps its code packed:
  // a key in any other form is not one of ours.
  if (!PackedCode::pack(code).has_value()) return nullptr;
  if (value.empty() || value[0] < '1' || value[0] > '4') return nullptr;
  VoucherFields v;
  v.state = static_cast<VoucherState>(value[0] - '0');
  value.remove_prefix(1);
  std::string_view f[8];
  for (std::string_view& field : f) {
    auto next = next_field(value);
    if (!next) return nullptr;
    field = *next;
  }
  const auto kind = number(f[4]);
  const auto face = number(f[5]);
  const auto issued = number(f[6]);
  const auto expires = number(f[7]);
  if (!kind || *kind < 1 || *kind > 4 || !face || !issued || !expires) return nullptr;
  if (!value.empty()) {  // a redemption follows
    std::string_view r[3];
    for (std::string_view& field : r) {
      auto next = next_field(value);
      if (!next) return nullptr;
      field = *next;
    }
    const auto at = number(r[1]);
    if (!value.empty() || !at || v.state != VoucherState::kRedeemed) return nullptr;
    v.redeemed_site_id = std::string(r[0]);
    v.redeemed_at_us = *at;
    v.redeem_request_id = std::string(r[2]);
  }
  v.code = std::string(code);
  v.campaign_id = std::string(campaign_id);
  v.sku_id = std::string(f[0]);
  v.site_id = std::string(f[1]);
  v.member_id = std::string(f[2]);
  v.request_id = std::string(f[3]);
  v.sku_kind = static_cast<SkuKind>(*kind);
  v.face_value_cents = *face;
  v.issued_at_us = *issued;
  v.expires_at_us = *expires;
  return VoucherRecord::make(v);
}

Command redeem_command(std::string_view key_prefix, std::string_view campaign_id,
                       std::string_view code, const RedeemRequestView& request,
                       bool track_expiring) {
  const CampaignKeys keys(campaign_id, key_prefix);
  return Connection::evalsha(
      redeem_script(),
      {keys.voucher(code), keys.redeemed(), keys.redeemed_codes(), keys.expiring()},
      {std::string(request.site_id), std::to_string(request.now_us),
       std::string(request.request_id), std::string(code), track_expiring ? "1" : "0"});
}

RedeemReply parse_redeem_reply(std::string_view campaign_id, std::string_view code,
                               const Reply& reply) {
  RedeemReply out;
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return out;
  const std::int64_t status = to_int(reply.elements[0]);
  if (reply.elements.size() == 2) {
    out.voucher = decode_voucher(campaign_id, code, reply.elements[1].str);
    if (!out.voucher) return out;  // a record we cannot read: do not guess
  }
  switch (status) {
    case replies::redeem::kRedeemed:
      out.status = RedeemStatus::kRedeemed;
      break;
    case replies::redeem::kNotFound:
      out.status = RedeemStatus::kNotFound;
      break;
    case replies::redeem::kWrongSite:
      out.status = RedeemStatus::kWrongSite;
      break;
    case replies::redeem::kRedeemedBefore:
      out.status = RedeemStatus::kRedeemedBefore;
      break;
    case replies::redeem::kCancelled:
      out.status = RedeemStatus::kCancelled;
      break;
    case replies::redeem::kExpired:
      out.status = RedeemStatus::kExpired;
      break;
    default:
      break;
  }
  // Statuses that carry a record must have one.
  const bool needs_record =
      status == replies::redeem::kRedeemed || status == replies::redeem::kRedeemedBefore ||
      status == replies::redeem::kCancelled || status == replies::redeem::kExpired;
  if (needs_record && !out.voucher) out.status = RedeemStatus::kUnavailable;
  return out;
}

Command cancel_command(std::string_view campaign_id, std::string_view code,
                       const CancelRequestView& request, std::string_view member_id) {
  const CampaignKeys keys(campaign_id);
  std::vector<std::string> declared{keys.voucher(code), keys.issued(),    keys.stock(),
                                    keys.returns(),     keys.cancelled(), keys.expiring(),
                                    keys.holders()};
  if (!member_id.empty()) declared.push_back(keys.member(member_id));
  return Connection::evalsha(cancel_script(), declared,
                             {std::string(code), request.keep_allowance ? "1" : "0",
                              std::to_string(request.per_member_limit), std::string(member_id),
                              request.return_unit ? "1" : "0"});
}

CancelReply parse_cancel_reply(std::string_view campaign_id, std::string_view code,
                               const Reply& reply) {
  CancelReply out;
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return out;
  const std::int64_t status = to_int(reply.elements[0]);
  if (status == replies::cancel::kNotFound) {
    out.status = CancelStatus::kNotFound;
    return out;
  }
  if (reply.elements.size() != 2) return out;
  if (status == replies::cancel::kMemberKey) {
    // An empty member would ask for the same call again: not a record of ours.
    if (reply.elements[1].type == Reply::Type::kString && !reply.elements[1].str.empty()) {
      out.member_key_of = reply.elements[1].str;
    }
    return out;
  }
  out.voucher = decode_voucher(campaign_id, code, reply.elements[1].str);
  if (!out.voucher) return out;  // a record we cannot read: do not guess
  out.status = status == replies::cancel::kCancelled         ? CancelStatus::kCancelled
               : status == replies::cancel::kCancelledBefore ? CancelStatus::kAlreadyCancelled
               : status == replies::cancel::kRedeemed        ? CancelStatus::kRedeemed
                                                             : CancelStatus::kUnavailable;
  return out;
}

Command member_vouchers_command(std::string_view campaign_id, std::string_view member_id,
                                std::span<const std::string> codes) {
  const CampaignKeys keys(campaign_id);
  std::vector<std::string> declared;
  declared.reserve(1 + codes.size());
  declared.push_back(keys.member(member_id));
  for (const std::string& code : codes) declared.push_back(keys.voucher(code));
  return Connection::evalsha(member_vouchers_script(), declared, {keys.voucher_prefix()});
}

std::optional<MemberVouchersReply> parse_member_vouchers(std::string_view campaign_id,
                                                         const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty() ||
      reply.elements[0].type != Reply::Type::kInteger) {
    return std::nullopt;
  }
  MemberVouchersReply out;
  const std::span<const Reply> rest = std::span(reply.elements).subspan(1);
  switch (reply.elements[0].integer) {
    case replies::member_vouchers::kListed:
      if (rest.size() % 2 != 0) return std::nullopt;
      out.listed = true;
      for (std::size_t i = 0; i < rest.size(); i += 2) {
        VoucherPtr v = decode_voucher(campaign_id, rest[i].str, rest[i + 1].str);
        if (!v) return std::nullopt;
        out.vouchers.push_back(std::move(v));
      }
      return out;
    case replies::member_vouchers::kUndeclared:
      if (rest.empty()) return std::nullopt;  // nothing undeclared: not this script's answer
      for (const Reply& code : rest) {
        if (code.type != Reply::Type::kString || code.str.empty()) return std::nullopt;
        out.codes.push_back(code.str);
      }
      return out;
    default:
      return std::nullopt;
  }
}

StoreResult<std::vector<VoucherPtr>> read_redeemed(Link& conn, std::string_view key_prefix,
                                                   std::string_view campaign_id) {
  const CampaignKeys keys(campaign_id, key_prefix);
  const std::string set = keys.redeemed_codes();
  const std::string prefix = keys.voucher_prefix();
  std::vector<VoucherPtr> out;
  std::string cursor = "0";
  do {
    auto page = conn.command({"SSCAN", set, cursor, "COUNT", "1000"});
    if (!page) return store_unavailable(page.error());
    if (page->type != Reply::Type::kArray || page->elements.size() != 2) {
      return store_bad_reply("unexpected SSCAN reply: " + page->str);
    }
    cursor = page->elements[0].str;
    std::vector<Command> gets;
    for (const Reply& code : page->elements[1].elements) gets.push_back({"GET", prefix + code.str});
    if (gets.empty()) continue;
    auto records = conn.pipeline(gets);
    if (!records) return store_unavailable(records.error());
    for (std::size_t k = 0; k < records->size(); ++k) {
      const std::string& code = page->elements[1].elements[k].str;
      VoucherPtr v = decode_voucher(campaign_id, code, (*records)[k].str);
      if (!v) return store_bad_reply("unreadable voucher record " + prefix + code);
      // SSCAN may return a code twice; a set member is one voucher.
      out.push_back(std::move(v));
    }
  } while (cursor != "0");
  std::sort(out.begin(), out.end(), [](const VoucherPtr& a, const VoucherPtr& b) {
    return a->packed_code() < b->packed_code();  // the codes' text order
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const VoucherPtr& a, const VoucherPtr& b) {
                          return a->packed_code() == b->packed_code();
                        }),
            out.end());
  return out;
}

namespace {

// "<len>:<bytes>" at the front of `in`; advances it. False when malformed.
bool take_field(std::string_view& in, std::string_view& field) {
  std::size_t len = 0;
  std::size_t i = 0;
  // An id is at most limits::kIdBytesMax bytes; a code far less: 4 digits
  // bound the length without overflow.
  while (i < in.size() && i < 4 && in[i] >= '0' && in[i] <= '9') {
    len = len * 10 + static_cast<std::size_t>(in[i] - '0');
    ++i;
  }
  if (i == 0 || i >= in.size() || in[i] != ':' || in.size() - i - 1 < len) return false;
  field = in.substr(i + 1, len);
  in.remove_prefix(i + 1 + len);
  return true;
}

}  // namespace

bool decode_holders_entry(std::string_view entry, std::vector<HolderChange>& out) {
  const std::size_t first = out.size();
  auto fail = [&] {
    out.resize(first);
    return false;
  };
  while (!entry.empty()) {
    const char op = entry.front();
    entry.remove_prefix(1);
    HolderChange c;
    if (!take_field(entry, c.member_id) || c.member_id.empty()) return fail();
    if (op == '-') {
      c.holds = false;
      if (!take_field(entry, c.code) || entry.empty()) return fail();
      if (entry.front() != '0' && entry.front() != '1') return fail();
      c.none_left = entry.front() == '1';
      entry.remove_prefix(1);
    } else if (op != '+') {
      return fail();
    }
    out.push_back(c);
  }
  return true;
}

}  // namespace voucherd::redis
