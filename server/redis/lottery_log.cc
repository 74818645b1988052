#include "server/redis/lottery_log.h"

#include <charconv>

#include "server/redis/records.h"

namespace voucherd::redis {
namespace {

// Arguments per draw after the header (see the script).
constexpr std::size_t kDrawArgs = 11;

// Parses a decimal integer field; false when it is not one.
bool parse_int(std::string_view s, std::int64_t& out) {
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits `s` at `sep` into exactly `n` fields; false otherwise.
bool split(std::string_view s, char sep, std::size_t n, std::vector<std::string_view>& out) {
  out.clear();
  for (;;) {
    const std::size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out.size() == n;
}

// The outcome, SKU and remaining fields of a line or entry, checked against
// the campaign.
bool parse_decision(const CampaignSpec& spec, std::string_view letter, std::string_view sku,
                    DrawEntry& e) {
  auto outcome = letter.size() == 1 ? outcome_from_letter(letter[0]) : std::nullopt;
  std::int64_t index = 0;
  if (!outcome || !parse_int(sku, index)) return false;
  e.outcome = *outcome;
  if (e.outcome == DrawOutcome::kWon) {
    if (index < 0 || index >= static_cast<std::int64_t>(spec.skus.size())) return false;
    e.sku = static_cast<std::uint32_t>(index);
  } else {
    e.sku = kNoSku;
  }
  return true;
}

}  // namespace

const Script& draw_script() {
  static const Script script(R"lua(
-- KEYS: stock, issued, expiring, drawn, then per draw: the member's draw
--   record, their allowance key, and the voucher key of the code minted for
--   the SKU the replica expects a win to pick (the draw record again when
--   none was minted).
-- ARGV: voucher key prefix, prize stock in total, draws per day, prizes per
--   member, weighted (1/0), starts_at (ms), retries remembered per member,
--   the number of SKUs, the SKU ids, [the weights,] then per draw: request
--   id, draw number (the replica's guess), local day, released, lucky (1/0),
--   pick (53 bits), SKU guessed (index or -1), voucher record, expiry
--   minute, the draw log line's start ("<len>:<member>\t<n>\t<ms since
--   starts_at>\t") and the retry entry's start ("<n>\31<time in ms>\31").
-- Per draw: {0, outcome letter, SKU index or -1, remaining before, draws
--   today} decided and logged; {1, entry, voucher record or nil, draws
--   today} a retry; {2, draws today} at the daily limit; {3, next draw
--   number} or {4, SKU index} the replica guessed wrong, nothing changed.
--   Then each SKU's prize units left.
local prefix = ARGV[1]
local stock_total = tonumber(ARGV[2])
local per_day = tonumber(ARGV[3])
local prizes_max = tonumber(ARGV[4])
local weighted = ARGV[5] == '1'
local base_ms = tonumber(ARGV[6])
local keep = tonumber(ARGV[7])
local nsku = tonumber(ARGV[8])
local ids = {}
for k = 1, nsku do ids[k] = ARGV[8 + k] end
local a = 9 + nsku
local weights = {}
if weighted then
  for k = 1, nsku do weights[k] = tonumber(ARGV[a + k - 1]) end
  a = a + nsku
end
local rem = redis.call('HMGET', KEYS[1], unpack(ids))
local left = 0
for k = 1, nsku do
  rem[k] = tonumber(rem[k] or '0')
  left = left + rem[k]
end
local won, per_bucket, chunks, written = {}, {}, {}, {}
local new_members = 0
local seq = tonumber(redis.call('GET', KEYS[4]) or '0')
local function weight(k)
  if rem[k] <= 0 then return 0 end
  if weighted then return weights[k] end
  return rem[k]
end
local function choose(pick)
  local total = 0
  for k = 1, nsku do total = total + weight(k) end
  if total <= 0 then return -1 end
  local point = math.floor(pick / 9007199254740992 * total)
  for k = 1, nsku do
    local w = weight(k)
    if point < w then return k - 1 end
    point = point - w
  end
  return -1
end
local function draw(i)
  local dk, mk, vk = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local b = a + 11 * (i - 1)
  local rid, guess, day = ARGV[b], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local released, lucky, pick = tonumber(ARGV[b + 3]), ARGV[b + 4] == '1', tonumber(ARGV[b + 5])
  local sku_guess = tonumber(ARGV[b + 6])
  -- The member's record: draws, day, draws that day, prizes, then the
  -- latest draws (each '\30' <len>:<request id> '\31' entry).
  local dn, dd, dc, dw, recent = 0, -1, 0, 0, ''
  local v = redis.call('GET', dk)
  if v then
    dn, dd, dc, dw, recent = string.match(v, '^(%d+)\31(%-?%d+)\31(%d+)\31(%d+)\31(.*)$')
    dn, dd, dc, dw = tonumber(dn), tonumber(dd), tonumber(dc), tonumber(dw)
  end
  -- A day before the member's latest (a replica's clock a little behind)
  -- counts as that day.
  local same_day = day <= dd
  local today = 0
  if same_day then today = dc end
  local tag = '\30' .. #rid .. ':' .. rid .. '\31'
  local s = string.find(recent, tag, 1, true)
  if s then
    local e = string.find(recent, '\30', s + 1, true)
    local entry = string.sub(recent, s + #tag, (e or 0) - 1)
    local code = string.match(entry, '([^\31]*)$')
    local record = false
    if code ~= '' then record = written[code] or redis.call('GET', prefix .. code) end
    return {1, entry, record, today}
  end
  if same_day and dc >= per_day then return {2, dc} end
  if dn + 1 ~= guess then return {3, dn + 1} end
  local o, sku = 'U', -1
  if dw >= prizes_max then
    o = 'A'
  elseif not lucky then
    o = 'U'
  elseif left <= 0 then
    o = 'G'
  elseif stock_total - left >= released then
    o = 'P'
  else
    sku = choose(pick)
    if sku < 0 then
      o = 'G'
    elseif sku ~= sku_guess then
      return {4, sku}
    else
      o = 'W'
    end
  end
  local before = left
  local code = ''
  if o == 'W' then
    local k = sku + 1
    rem[k] = rem[k] - 1
    left = left - 1
    won[k] = (won[k] or 0) + 1
    code = string.sub(vk, #prefix + 1)
    redis.call('SET', vk, ARGV[b + 7])
    written[code] = ARGV[b + 7]
    local bucket = ids[k] .. '|' .. ARGV[b + 8]
    per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
    if prizes_max == 1 then
      redis.call('SET', mk, code)
    else
      redis.call('HINCRBY', mk, 'n', 1)
      redis.call('HSET', mk, 'last', code, 'r:' .. rid, code)
    end
    if dw == 0 then new_members = new_members + 1 end
    dw = dw + 1
  end
  seq = seq + 1
  local c = math.floor((seq - 1) / 65536)
  chunks[c] = chunks[c] or {}
  local t = chunks[c]
  local decided = o .. '\t' .. sku .. '\t' .. ARGV[b + 3] .. '\t' .. before
  t[#t + 1] = ARGV[b + 9] .. decided .. '\n'
  recent = recent .. tag .. ARGV[b + 10] .. string.gsub(decided, '\t', '\31') .. '\31' .. code
  local starts, p = {}, 1
  while true do
    local q = string.find(recent, '\30', p, true)
    if not q then break end
    starts[#starts + 1] = q
    p = q + 1
  end
  if #starts > keep then recent = string.sub(recent, starts[#starts - keep + 1]) end
  today = today + 1
  if day > dd then dd = day end
  redis.call('SET', dk, ARGV[b + 1] .. '\31' .. dd .. '\31' .. today .. '\31' .. dw .. '\31' .. recent)
  return {0, o, sku, before, today}
end
local out = {}
local n = (#KEYS - 4) / 3
for i = 1, n do out[i] = draw(i) end
for k, cnt in pairs(won) do
  redis.call('HINCRBY', KEYS[1], ids[k], -cnt)
  redis.call('HINCRBY', KEYS[2], ids[k], cnt)
end
for bucket, cnt in pairs(per_bucket) do redis.call('HINCRBY', KEYS[3], bucket, cnt) end
if new_members > 0 then redis.call('HINCRBY', KEYS[2], '_members', new_members) end
for c, t in pairs(chunks) do redis.call('APPEND', KEYS[4] .. ':' .. c, table.concat(t)) end
redis.call('SET', KEYS[4], seq)
out[n + 1] = rem
return out
)lua");
  return script;
}

Command draw_command(const CampaignSpec& spec, const std::vector<DrawAttempt>& draws) {
  const std::string& cid = spec.id;
  const LotterySpec& rules = spec.lottery;
  const bool weighted = rules.sku_choice == SkuChoice::kWeighted;
  const std::string prefix = campaign_key("vd:", cid, "v:");
  std::vector<std::string> keys{
      campaign_key("vd:", cid, "stock"), campaign_key("vd:", cid, "issued"),
      campaign_key("vd:", cid, "expiring"), campaign_key("vd:", cid, "drawn")};
  keys.reserve(4 + 3 * draws.size());
  std::vector<std::string> args{
      prefix, std::to_string(spec.stock_total()), std::to_string(rules.draws_per_day),
      std::to_string(rules.prizes_per_member), weighted ? "1" : "0",
      std::to_string(spec.starts_at_us / 1000),
      // Retries are recognised among the member's
      // latest draws: a day's worth and then some.
      std::to_string(rules.draws_per_day + 2), std::to_string(spec.skus.size())};
  args.reserve(args.size() + 2 * spec.skus.size() + kDrawArgs * draws.size());
  for (const SkuSpec& s : spec.skus) args.push_back(s.id);
  if (weighted) {
    for (std::int64_t w : rules.sku_weights) args.push_back(std::to_string(w));
  }
  for (const DrawAttempt& d : draws) {
    const DrawRequestView& v = d.write->draw;
    const std::string draws_key = campaign_key("vd:", cid, "d:") + std::string(v.member_id);
    keys.push_back(draws_key);
    keys.push_back(campaign_key("vd:", cid, "m:") + std::string(v.member_id));
    keys.push_back(d.minted ? prefix + d.minted->code : draws_key);
    const std::string n = std::to_string(d.draw_number);
    args.emplace_back(v.request_id);
    args.push_back(n);
    args.push_back(std::to_string(v.day));
    args.push_back(std::to_string(v.released));
    args.push_back(is_lucky(rules.win_probability, d.random.win()) ? "1" : "0");
    args.push_back(std::to_string(d.random.pick()));
    args.push_back(d.minted ? std::to_string(d.sku_guess) : "-1");
    args.push_back(d.minted ? encode_voucher(*d.minted) : std::string());
    args.push_back(d.minted ? expiry_bucket(d.minted->expires_at_us) : std::string());
    // What the script would otherwise format per draw, made here.
    args.push_back(std::to_string(v.member_id.size()) + ":" + std::string(v.member_id) + "\t" + n +
                   "\t" + std::to_string(v.now_us / 1000 - spec.starts_at_us / 1000) + "\t");
    args.push_back(n + "\x1f" + std::to_string(v.now_us / 1000) + "\x1f");
  }
  return Connection::evalsha(draw_script(), keys, args);
}

std::expected<DrawBatchReply, std::string> parse_draw_reply(const CampaignSpec& spec,
                                                            std::size_t draws, const Reply& reply) {
  if (reply.is_error()) return std::unexpected("draw script failed: " + reply.str);
  if (reply.type != Reply::Type::kArray || reply.elements.size() != draws + 1) {
    return std::unexpected("draw script answered " + std::to_string(reply.elements.size()) +
                           " elements for " + std::to_string(draws) + " draws");
  }
  DrawBatchReply out;
  const Reply& left = reply.elements[draws];
  if (left.type != Reply::Type::kArray || left.elements.size() != spec.skus.size()) {
    return std::unexpected("draw script answered no stock list");
  }
  for (const Reply& r : left.elements) out.remaining.push_back(r.integer);
  std::vector<std::string_view> fields;
  for (std::size_t i = 0; i < draws; ++i) {
    const Reply& r = reply.elements[i];
    DrawReply d;
    const auto& e = r.elements;
    if (r.type != Reply::Type::kArray || e.empty() || e[0].type != Reply::Type::kInteger) {
      out.draws.push_back(d);
      continue;
    }
    switch (e[0].integer) {
      case 0:
        if (e.size() == 5 &&
            parse_decision(spec, e[1].str, std::to_string(e[2].integer), d.entry)) {
          d.kind = DrawReply::Kind::kDrawn;
          d.entry.remaining = e[3].integer;
          d.draws_today = static_cast<std::int32_t>(e[4].integer);
        }
        break;
      case 1: {
        // n, at (ms), outcome, SKU, released, remaining, code
        std::int64_t at_ms = 0;
        if (e.size() == 4 && split(e[1].str, '\x1f', 7, fields) &&
            parse_int(fields[0], d.entry.draw_number) && parse_int(fields[1], at_ms) &&
            parse_decision(spec, fields[2], fields[3], d.entry) &&
            parse_int(fields[4], d.entry.released) && parse_int(fields[5], d.entry.remaining)) {
          d.kind = DrawReply::Kind::kRepeat;
          d.entry.at_us = at_ms * 1000;
          d.code = std::string(fields[6]);
          d.record = e[2].str;
          d.draws_today = static_cast<std::int32_t>(e[3].integer);
        }
        break;
      }
      case 2:
        if (e.size() == 2) {
          d.kind = DrawReply::Kind::kDailyLimit;
          d.draws_today = static_cast<std::int32_t>(e[1].integer);
        }
        break;
      case 3:
        if (e.size() == 2) {
          d.kind = DrawReply::Kind::kWrongNumber;
          d.next_number = e[1].integer;
        }
        break;
      case 4:
        if (e.size() == 2 && e[1].integer >= 0 &&
            e[1].integer < static_cast<long long>(spec.skus.size())) {
          d.kind = DrawReply::Kind::kWrongSku;
          d.sku = static_cast<std::uint32_t>(e[1].integer);
        }
        break;
      default:
        break;
    }
    out.draws.push_back(std::move(d));
  }
  return out;
}

std::expected<void, std::string> parse_draw_lines(const CampaignSpec& spec, std::string_view text,
                                                  std::vector<DrawEntry>& out) {
  const std::int64_t base_ms = spec.starts_at_us / 1000;
  std::vector<std::string_view> fields;
  while (!text.empty()) {
    const std::string where = "draw log line " + std::to_string(out.size() + 1);
    // <len>:<member>
    const std::size_t colon = text.find(':');
    std::int64_t len = 0;
    if (colon == std::string_view::npos || !parse_int(text.substr(0, colon), len) || len < 0 ||
        static_cast<std::size_t>(len) > text.size() - colon - 1) {
      return std::unexpected(where + ": no member");
    }
    DrawEntry e;
    e.member_id = std::string(text.substr(colon + 1, static_cast<std::size_t>(len)));
    text.remove_prefix(colon + 1 + static_cast<std::size_t>(len));
    const std::size_t end = text.find('\n');
    if (end == std::string_view::npos || text.empty() || text[0] != '\t') {
      return std::unexpected(where + ": unterminated");
    }
    std::int64_t at_ms = 0;
    if (!split(text.substr(1, end - 1), '\t', 6, fields) || !parse_int(fields[0], e.draw_number) ||
        !parse_int(fields[1], at_ms) || !parse_decision(spec, fields[2], fields[3], e) ||
        !parse_int(fields[4], e.released) || !parse_int(fields[5], e.remaining)) {
      return std::unexpected(where + ": unreadable fields");
    }
    e.at_us = (base_ms + at_ms) * 1000;
    out.push_back(std::move(e));
    text.remove_prefix(end + 1);
  }
  return {};
}

std::expected<std::vector<DrawEntry>, std::string> read_draw_log(Connection& conn,
                                                                 const CampaignSpec& spec) {
  const std::string drawn = campaign_key("vd:", spec.id, "drawn");
  auto count = conn.command({"GET", drawn});
  if (!count) return std::unexpected(count.error());
  std::int64_t n = 0;
  if (count->type == Reply::Type::kString && !parse_int(count->str, n)) {
    return std::unexpected(drawn + " is not a number");
  }
  std::vector<DrawEntry> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t chunk = 0; chunk * kDrawLogChunk < n; ++chunk) {
    auto text = conn.command({"GET", drawn + ":" + std::to_string(chunk)});
    if (!text) return std::unexpected(text.error());
    if (auto parsed = parse_draw_lines(spec, text->str, out); !parsed) {
      return std::unexpected(parsed.error());
    }
  }
  if (static_cast<std::int64_t>(out.size()) != n) {
    return std::unexpected("the draw log holds " + std::to_string(out.size()) + " lines; " + drawn +
                           " says " + std::to_string(n));
  }
  return out;
}

}  // namespace voucherd::redis
