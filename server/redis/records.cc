#include "server/redis/records.h"

#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>

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

std::string campaign_key(std::string_view prefix, std::string_view campaign_id,
                         std::string_view suffix) {
  std::string k;
  k.reserve(prefix.size() + campaign_id.size() + suffix.size() + 3);
  k.append(prefix).append("{").append(campaign_id).append("}:").append(suffix);
  return k;
}

std::string encode_voucher(const VoucherRecord& v) {
  std::string out;
  out.reserve(64 + v.sku_id.size() + v.site_id.size() + v.member_id.size() + v.request_id.size());
  out.push_back(static_cast<char>('0' + static_cast<int>(v.state)));
  append_field(out, v.sku_id);
  append_field(out, v.site_id);
  append_field(out, v.member_id);
  append_field(out, v.request_id);
  append_field(out, std::to_string(static_cast<int>(v.sku_kind)));
  append_field(out, std::to_string(v.face_value_cents));
  append_field(out, std::to_string(v.issued_at_us));
  append_field(out, std::to_string(v.expires_at_us));
  return out;
}

VoucherPtr decode_voucher(std::string_view campaign_id, std::string_view code,
                          std::string_view value) {
  if (value.empty() || value[0] < '1' || value[0] > '4') return nullptr;
  auto v = std::make_shared<VoucherRecord>();
  v->state = static_cast<VoucherState>(value[0] - '0');
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
  if (!value.empty() || !kind || *kind < 1 || *kind > 4 || !face || !issued || !expires) {
    return nullptr;
  }
  v->code = std::string(code);
  v->campaign_id = std::string(campaign_id);
  v->sku_id = std::string(f[0]);
  v->site_id = std::string(f[1]);
  v->member_id = std::string(f[2]);
  v->request_id = std::string(f[3]);
  v->sku_kind = static_cast<SkuKind>(*kind);
  v->face_value_cents = *face;
  v->issued_at_us = *issued;
  v->expires_at_us = *expires;
  return v;
}

}  // namespace voucherd::redis
