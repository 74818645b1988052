#include "server/redis/records.h"

#include <algorithm>
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

const std::string& record_fields_lua() {
  static const std::string lua = R"lua(
-- The first n fields of a voucher record (after its state digit).
local function record_fields(v, n)
  local f = {}
  local pos = 2
  for i = 1, n do
    local colon = string.find(v, ':', pos, true)
    local len = tonumber(string.sub(v, pos, colon - 1))
    f[i] = string.sub(v, colon + 1, colon + len)
    pos = colon + len + 1
  end
  return f
end
)lua";
  return lua;
}

std::string campaign_key(std::string_view prefix, std::string_view campaign_id,
                         std::string_view suffix) {
  std::string k;
  k.reserve(prefix.size() + campaign_id.size() + suffix.size() + 3);
  k.append(prefix).append("{").append(campaign_id).append("}:").append(suffix);
  return k;
}

std::string expiry_bucket(UnixMicros expires_at_us) {
  return std::to_string(expires_at_us / (60 * kMicrosPerSecond));
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
  if (!kind || *kind < 1 || *kind > 4 || !face || !issued || !expires) return nullptr;
  if (!value.empty()) {  // a redemption follows
    std::string_view r[3];
    for (std::string_view& field : r) {
      auto next = next_field(value);
      if (!next) return nullptr;
      field = *next;
    }
    const auto at = number(r[1]);
    if (!value.empty() || !at || v->state != VoucherState::kRedeemed) return nullptr;
    v->redeemed_site_id = std::string(r[0]);
    v->redeemed_at_us = *at;
    v->redeem_request_id = std::string(r[2]);
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

const Script& redeem_script() {
  static const Script script(record_fields_lua() + R"lua(
-- KEYS: voucher, redeemed (hash: SKU -> count), redeemed codes (set), expiring.
-- ARGV: site, now (unix us), request id, code, track expiring (1 or 0).
-- Returns {status} or {status, record}; status as RedeemStatus: 0 redeemed,
-- 1 not found, 2 wrong site, 3 redeemed before, 4 cancelled, 5 expired.
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local f = record_fields(v, 8)
if f[2] ~= ARGV[1] then return {2} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {4, v} end
if tonumber(ARGV[2]) >= tonumber(f[8]) then return {5, v} end
local r = '2' .. string.sub(v, 2) .. #ARGV[1] .. ':' .. ARGV[1] .. #ARGV[2] .. ':' .. ARGV[2] ..
          #ARGV[3] .. ':' .. ARGV[3]
redis.call('SET', KEYS[1], r)
redis.call('HINCRBY', KEYS[2], f[1], 1)
redis.call('SADD', KEYS[3], ARGV[4])
if ARGV[5] == '1' then
  -- No longer ISSUED: out of its expiry bucket.
  local b = f[1] .. '|' .. string.format('%d', math.floor(tonumber(f[8]) / 60000000))
  if redis.call('HINCRBY', KEYS[4], b, -1) <= 0 then redis.call('HDEL', KEYS[4], b) end
end
return {0, r}
)lua");
  return script;
}

Command redeem_command(std::string_view key_prefix, std::string_view campaign_id,
                       std::string_view code, const RedeemRequestView& request,
                       bool track_expiring) {
  return Connection::evalsha(
      redeem_script(),
      {campaign_key(key_prefix, campaign_id, "v:") + std::string(code),
       campaign_key(key_prefix, campaign_id, "redeemed"),
       campaign_key(key_prefix, campaign_id, "redeemed_codes"),
       campaign_key(key_prefix, campaign_id, "expiring")},
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
    case 0:
      out.status = RedeemStatus::kRedeemed;
      break;
    case 1:
      out.status = RedeemStatus::kNotFound;
      break;
    case 2:
      out.status = RedeemStatus::kWrongSite;
      break;
    case 3:
      out.status = RedeemStatus::kRedeemedBefore;
      break;
    case 4:
      out.status = RedeemStatus::kCancelled;
      break;
    case 5:
      out.status = RedeemStatus::kExpired;
      break;
    default:
      break;
  }
  // Statuses that carry a record must have one.
  const bool needs_record = status == 0 || status == 3 || status == 4 || status == 5;
  if (needs_record && !out.voucher) out.status = RedeemStatus::kUnavailable;
  return out;
}

const Script& cancel_script() {
  static const Script script(record_fields_lua() + R"lua(
-- KEYS: voucher, issued, stock, returns, cancelled (hash: SKU -> count), expiring,
--   holders (the feed, records.h).
-- ARGV: code, keep allowance (1 or 0), per-member limit, member key prefix,
--   return the unit to the stock (1 or 0; LOTTERY prizes are not returned).
-- Returns {status} or {status, record}: 0 cancelled, 1 not found,
-- 2 cancelled before, 3 redeemed (not cancelled).
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {2, v} end
local f = record_fields(v, 8)
local sku, member, rid = f[1], f[3], f[4]
-- No longer ISSUED: out of its expiry bucket.
local b = sku .. '|' .. string.format('%d', math.floor(tonumber(f[8]) / 60000000))
if redis.call('HINCRBY', KEYS[6], b, -1) <= 0 then redis.call('HDEL', KEYS[6], b) end
local c = '4' .. string.sub(v, 2)
redis.call('SET', KEYS[1], c)
if ARGV[5] == '1' then
  redis.call('HINCRBY', KEYS[2], sku, -1)
  redis.call('HINCRBY', KEYS[3], sku, 1)
  redis.call('INCR', KEYS[4])
end
redis.call('HINCRBY', KEYS[5], sku, 1)
if ARGV[2] == '0' then
  -- The member key has the campaign's hash tag: same slot as the voucher.
  local mk = ARGV[4] .. member
  local freed, none_left = false, '0'
  if tonumber(ARGV[3]) == 1 then
    if redis.call('GET', mk) == ARGV[1] then
      redis.call('DEL', mk)
      redis.call('HINCRBY', KEYS[2], '_members', -1)
      freed, none_left = true, '1'
    end
  elseif redis.call('HGET', mk, 'r:' .. rid) == ARGV[1] then
    redis.call('HDEL', mk, 'r:' .. rid)
    freed = true
    if redis.call('HINCRBY', mk, 'n', -1) <= 0 then
      redis.call('DEL', mk)
      redis.call('HINCRBY', KEYS[2], '_members', -1)
      none_left = '1'
    end
  end
  -- Every replica frees the allowance too (the holders feed).
  if freed then
    redis.call('RPUSH', KEYS[7], '-' .. #member .. ':' .. member .. #ARGV[1] .. ':' .. ARGV[1] ..
      none_left)
  end
end
return {0, c}
)lua");
  return script;
}

Command cancel_command(std::string_view campaign_id, std::string_view code,
                       const CancelRequestView& request) {
  return Connection::evalsha(
      cancel_script(),
      {campaign_key("vd:", campaign_id, "v:") + std::string(code),
       campaign_key("vd:", campaign_id, "issued"), campaign_key("vd:", campaign_id, "stock"),
       campaign_key("vd:", campaign_id, "returns"), campaign_key("vd:", campaign_id, "cancelled"),
       campaign_key("vd:", campaign_id, "expiring"), campaign_key("vd:", campaign_id, "holders")},
      {std::string(code), request.keep_allowance ? "1" : "0",
       std::to_string(request.per_member_limit), campaign_key("vd:", campaign_id, "m:"),
       request.return_unit ? "1" : "0"});
}

CancelReply parse_cancel_reply(std::string_view campaign_id, std::string_view code,
                               const Reply& reply) {
  CancelReply out;
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) return out;
  const std::int64_t status = to_int(reply.elements[0]);
  if (status == 1) {
    out.status = CancelStatus::kNotFound;
    return out;
  }
  if (reply.elements.size() != 2) return out;
  out.voucher = decode_voucher(campaign_id, code, reply.elements[1].str);
  if (!out.voucher) return out;  // a record we cannot read: do not guess
  out.status = status == 0   ? CancelStatus::kCancelled
               : status == 2 ? CancelStatus::kAlreadyCancelled
               : status == 3 ? CancelStatus::kRedeemed
                             : CancelStatus::kUnavailable;
  return out;
}

const Script& member_vouchers_script() {
  static const Script script(R"lua(
-- KEYS: the member's allowance key. ARGV: voucher key prefix.
-- A string holds one code; a hash holds r:<request> -> code.
local t = redis.call('TYPE', KEYS[1])['ok']
local codes = {}
if t == 'string' then
  codes[1] = redis.call('GET', KEYS[1])
elseif t == 'hash' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'r:' then codes[#codes + 1] = all[i + 1] end
  end
end
local out = {}
for _, c in ipairs(codes) do
  -- The voucher keys carry the campaign's hash tag: same slot.
  local r = redis.call('GET', ARGV[1] .. c)
  if r then
    out[#out + 1] = c
    out[#out + 1] = r
  end
end
return out
)lua");
  return script;
}

Command member_vouchers_command(std::string_view campaign_id, std::string_view member_id) {
  return Connection::evalsha(member_vouchers_script(),
                             {campaign_key("vd:", campaign_id, "m:") + std::string(member_id)},
                             {campaign_key("vd:", campaign_id, "v:")});
}

std::optional<std::vector<VoucherPtr>> parse_member_vouchers(std::string_view campaign_id,
                                                             const Reply& reply) {
  if (reply.type != Reply::Type::kArray || reply.elements.size() % 2 != 0) return std::nullopt;
  std::vector<VoucherPtr> out;
  for (std::size_t i = 0; i < reply.elements.size(); i += 2) {
    VoucherPtr v = decode_voucher(campaign_id, reply.elements[i].str, reply.elements[i + 1].str);
    if (!v) return std::nullopt;
    out.push_back(std::move(v));
  }
  return out;
}

std::expected<std::vector<VoucherPtr>, std::string> read_redeemed(const Endpoint& endpoint,
                                                                  std::chrono::milliseconds timeout,
                                                                  std::string_view key_prefix,
                                                                  std::string_view campaign_id) {
  auto conn = Connection::connect(endpoint, timeout);
  if (!conn) return std::unexpected(conn.error());
  const std::string set = campaign_key(key_prefix, campaign_id, "redeemed_codes");
  const std::string prefix = campaign_key(key_prefix, campaign_id, "v:");
  std::vector<VoucherPtr> out;
  std::string cursor = "0";
  do {
    auto page = (*conn)->command({"SSCAN", set, cursor, "COUNT", "1000"});
    if (!page) return std::unexpected(page.error());
    if (page->type != Reply::Type::kArray || page->elements.size() != 2) {
      return std::unexpected("unexpected SSCAN reply: " + page->str);
    }
    cursor = page->elements[0].str;
    std::vector<Command> gets;
    for (const Reply& code : page->elements[1].elements) gets.push_back({"GET", prefix + code.str});
    if (gets.empty()) continue;
    auto records = (*conn)->pipeline(gets);
    if (!records) return std::unexpected(records.error());
    for (std::size_t k = 0; k < records->size(); ++k) {
      const std::string& code = page->elements[1].elements[k].str;
      VoucherPtr v = decode_voucher(campaign_id, code, (*records)[k].str);
      if (!v) return std::unexpected("unreadable voucher record " + prefix + code);
      // SSCAN may return a code twice; a set member is one voucher.
      out.push_back(std::move(v));
    }
  } while (cursor != "0");
  std::sort(out.begin(), out.end(),
            [](const VoucherPtr& a, const VoucherPtr& b) { return a->code < b->code; });
  out.erase(
      std::unique(out.begin(), out.end(),
                  [](const VoucherPtr& a, const VoucherPtr& b) { return a->code == b->code; }),
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
