#include "server/redis/lottery_log.h"

#include <charconv>

#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/script_replies.h"

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

// `ms` (+ `base_ms`) in µs; false when that does not fit an int64 (a
// corrupted log or answer, not a time voucherd wrote).
bool micros_of_ms(std::int64_t base_ms, std::int64_t ms, UnixMicros& out) {
  std::int64_t at_ms = 0;
  return !__builtin_add_overflow(base_ms, ms, &at_ms) && !__builtin_mul_overflow(at_ms, 1000, &out);
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

Command draw_command(const CampaignSpec& spec, const std::vector<DrawAttempt>& draws,
                     std::int64_t drawn_chunk) {
  const std::string& cid = spec.id;
  const LotterySpec& rules = spec.lottery;
  const bool weighted = rules.sku_choice == SkuChoice::kWeighted;
  const CampaignKeys campaign(cid);
  const std::string prefix = campaign.voucher_prefix();
  std::vector<std::string> keys{campaign.stock(),
                                campaign.issued(),
                                campaign.expiring(),
                                campaign.drawn(),
                                campaign.drawn_chunk(drawn_chunk),
                                campaign.drawn_chunk(drawn_chunk + 1)};
  keys.reserve(keys.size() + 4 * draws.size());
  std::size_t repeats = 0;
  for (const DrawAttempt& d : draws) repeats += d.repeat_code.empty() ? 0 : 1;
  std::vector<std::string> args{
      prefix, std::to_string(spec.stock_total()), std::to_string(rules.draws_per_day),
      std::to_string(rules.prizes_per_member), weighted ? "1" : "0",
      std::to_string(spec.starts_at_us / 1000),
      // Retries are recognised among the member's
      // latest draws: a day's worth and then some.
      std::to_string(rules.draws_per_day + 2), std::to_string(drawn_chunk), std::to_string(repeats),
      std::to_string(spec.skus.size())};
  args.reserve(args.size() + 2 * spec.skus.size() + kDrawArgs * draws.size());
  for (const SkuSpec& s : spec.skus) args.push_back(s.id);
  if (weighted) {
    for (std::int64_t w : rules.sku_weights) args.push_back(std::to_string(w));
  }
  for (const DrawAttempt& d : draws) {
    const DrawRequestView& v = d.write->draw;
    const std::string draws_key = campaign.draws(v.member_id);
    keys.push_back(draws_key);
    keys.push_back(campaign.member(v.member_id));
    keys.push_back(d.minted ? prefix + std::string(d.minted->code()) : draws_key);
    const std::string n = std::to_string(d.draw_number);
    args.emplace_back(v.request_id);
    args.push_back(n);
    args.push_back(std::to_string(v.day));
    args.push_back(std::to_string(v.released));
    args.push_back(is_lucky(rules.win_probability, d.random.win()) ? "1" : "0");
    args.push_back(std::to_string(d.random.pick()));
    args.push_back(d.minted ? std::to_string(d.sku_guess) : "-1");
    args.push_back(d.minted ? encode_voucher(*d.minted) : std::string());
    args.push_back(d.minted ? expiry_bucket(d.minted->expires_at_us()) : std::string());
    // What the script would otherwise format per draw, made here.
    args.push_back(std::to_string(v.member_id.size()) + ":" + std::string(v.member_id) + "\t" + n +
                   "\t" + std::to_string(v.now_us / 1000 - spec.starts_at_us / 1000) + "\t");
    args.push_back(n + "\x1f" + std::to_string(v.now_us / 1000) + "\x1f");
  }
  // The repeats' record keys go last (the script counts them from the end).
  for (const DrawAttempt& d : draws) {
    if (!d.repeat_code.empty()) keys.push_back(prefix + d.repeat_code);
  }
  return Connection::evalsha(draw_script(), keys, args);
}

std::expected<DrawBatchReply, std::string> parse_draw_reply(const CampaignSpec& spec,
                                                            std::size_t draws, const Reply& reply) {
  if (reply.is_error()) return std::unexpected("draw script failed: " + reply.str);
  DrawBatchReply out;
  if (reply.type == Reply::Type::kInteger) {
    if (reply.integer < 0) return std::unexpected("draw script answered a negative chunk");
    out.wrong_chunk = reply.integer;
    return out;
  }
  if (reply.type != Reply::Type::kArray || reply.elements.size() != draws + 2) {
    return std::unexpected("draw script answered " + std::to_string(reply.elements.size()) +
                           " elements for " + std::to_string(draws) + " draws");
  }
  const Reply& drawn = reply.elements[draws + 1];
  if (drawn.type != Reply::Type::kInteger || drawn.integer < 0) {
    return std::unexpected("draw script answered no draw count");
  }
  out.drawn = drawn.integer;
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
      case replies::draw::kDrawn:
        if (e.size() == 5 &&
            parse_decision(spec, e[1].str, std::to_string(e[2].integer), d.entry)) {
          d.kind = DrawReply::Kind::kDrawn;
          d.entry.remaining = e[3].integer;
          d.draws_today = static_cast<std::int32_t>(e[4].integer);
        }
        break;
      case replies::draw::kRepeat: {
        // n, at (ms), outcome, SKU, released, remaining, code
        std::int64_t at_ms = 0;
        if (e.size() == 4 && split(e[1].str, '\x1f', 7, fields) &&
            parse_int(fields[0], d.entry.draw_number) && parse_int(fields[1], at_ms) &&
            parse_decision(spec, fields[2], fields[3], d.entry) &&
            parse_int(fields[4], d.entry.released) && parse_int(fields[5], d.entry.remaining) &&
            micros_of_ms(0, at_ms, d.entry.at_us)) {
          d.kind = DrawReply::Kind::kRepeat;
          d.code = std::string(fields[6]);
          d.record = e[2].str;
          d.draws_today = static_cast<std::int32_t>(e[3].integer);
        }
        break;
      }
      case replies::draw::kDailyLimit:
        if (e.size() == 2) {
          d.kind = DrawReply::Kind::kDailyLimit;
          d.draws_today = static_cast<std::int32_t>(e[1].integer);
        }
        break;
      case replies::draw::kWrongNumber:
        if (e.size() == 2) {
          d.kind = DrawReply::Kind::kWrongNumber;
          d.next_number = e[1].integer;
        }
        break;
      case replies::draw::kRecordKey:
        if (e.size() == 2 && e[1].type == Reply::Type::kString && !e[1].str.empty()) {
          d.kind = DrawReply::Kind::kRecordKey;
          d.code = e[1].str;
        }
        break;
      case replies::draw::kWrongSku:
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
        !parse_int(fields[4], e.released) || !parse_int(fields[5], e.remaining) ||
        !micros_of_ms(base_ms, at_ms, e.at_us)) {
      return std::unexpected(where + ": unreadable fields");
    }
    out.push_back(std::move(e));
    text.remove_prefix(end + 1);
  }
  return {};
}

StoreResult<std::vector<DrawEntry>> read_draw_log(Link& conn, const CampaignSpec& spec) {
  const CampaignKeys campaign(spec.id);
  const std::string drawn = campaign.drawn();
  auto count = conn.command({"GET", drawn});
  if (!count) return store_unavailable(count.error());
  std::int64_t n = 0;
  if (count->type == Reply::Type::kString && !parse_int(count->str, n)) {
    return store_bad_reply(drawn + " is not a number");
  }
  std::vector<DrawEntry> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t chunk = 0; chunk * kDrawLogChunk < n; ++chunk) {
    auto text = conn.command({"GET", campaign.drawn_chunk(chunk)});
    if (!text) return store_unavailable(text.error());
    if (auto parsed = parse_draw_lines(spec, text->str, out); !parsed) {
      return store_bad_reply(parsed.error());
    }
  }
  if (static_cast<std::int64_t>(out.size()) != n) {
    return store_bad_reply("the draw log holds " + std::to_string(out.size()) + " lines; " + drawn +
                           " says " + std::to_string(n));
  }
  return out;
}

}  // namespace voucherd::redis
