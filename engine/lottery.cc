#include "engine/lottery.h"

#include <absl/container/flat_hash_map.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/seed_hmac.h"

namespace voucherd {
namespace {

constexpr double kTwoTo53 = 9007199254740992.0;
constexpr std::string_view kDrawDomain = "voucherd/draw/v1";

std::uint64_t read_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

char outcome_letter(DrawOutcome o) {
  switch (o) {
    case DrawOutcome::kWon:
      return 'W';
    case DrawOutcome::kUnlucky:
      return 'U';
    case DrawOutcome::kPaused:
      return 'P';
    case DrawOutcome::kAllGone:
      return 'G';
    case DrawOutcome::kAlreadyWon:
      return 'A';
  }
  return '?';
}

std::optional<DrawOutcome> outcome_from_letter(char c) {
  switch (c) {
    case 'W':
      return DrawOutcome::kWon;
    case 'U':
      return DrawOutcome::kUnlucky;
    case 'P':
      return DrawOutcome::kPaused;
    case 'G':
      return DrawOutcome::kAllGone;
    case 'A':
      return DrawOutcome::kAlreadyWon;
    default:
      return std::nullopt;
  }
}

const char* outcome_name(DrawOutcome o) {
  switch (o) {
    case DrawOutcome::kWon:
      return "WON";
    case DrawOutcome::kUnlucky:
      return "UNLUCKY";
    case DrawOutcome::kPaused:
      return "PRIZES_PAUSED_UNTIL_NEXT_RELEASE";
    case DrawOutcome::kAllGone:
      return "ALL_PRIZES_GONE";
    case DrawOutcome::kAlreadyWon:
      return "ALREADY_WON";
  }
  return "?";
}

std::uint64_t DrawRandomness::win() const { return read_u64(mac.data()) >> 11; }
std::uint64_t DrawRandomness::pick() const { return read_u64(mac.data() + 8) >> 11; }

DrawRandomness draw_randomness(const SkuMacKey& seed_key, std::string_view campaign_id,
                               std::string_view member_id, std::int64_t draw_number) {
  std::string msg(kDrawDomain);
  append_lp(msg, campaign_id);
  append_lp(msg, member_id);
  const auto n = static_cast<std::uint64_t>(draw_number);
  append_u32(msg, static_cast<std::uint32_t>(n >> 32));
  append_u32(msg, static_cast<std::uint32_t>(n));
  DrawRandomness r;
  r.mac = hmac_sha256(seed_key,
                      std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()));
  return r;
}

DrawRandomness draw_randomness(const LotterySeed& seed, std::string_view campaign_id,
                               std::string_view member_id, std::int64_t draw_number) {
  return draw_randomness(hmac_key(seed), campaign_id, member_id, draw_number);
}

bool is_lucky(double probability, std::uint64_t win) {
  return static_cast<double>(win) < probability * kTwoTo53;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::string seed_commitment(const LotterySeed& seed) {
  std::array<std::uint8_t, SHA256_DIGEST_LENGTH> digest{};
  SHA256(seed.data(), seed.size(), digest.data());
  return to_hex(digest);
}

std::optional<LotterySeed> seed_from_hex(std::string_view hex) {
  if (hex.size() != 2 * kLotterySeedBytes) return std::nullopt;
  LotterySeed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    seed[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return seed;
}

std::int64_t released_units(const CampaignSpec& spec, UnixMicros now_us) {
  const std::int64_t total = spec.stock_total();
  if (now_us < spec.starts_at_us) return 0;
  if (now_us >= spec.ends_at_us) return total;
  const std::int64_t elapsed_s = (now_us - spec.starts_at_us) / kMicrosPerSecond;
  const std::int64_t window_s = (spec.ends_at_us - spec.starts_at_us) / kMicrosPerSecond;
  if (window_s <= 0) return total;
  if (spec.lottery.release == ReleaseSchedule::kEqualPerDay) {
    constexpr std::int64_t kDay = 86'400;
    const std::int64_t days = (window_s + kDay - 1) / kDay;
    const std::int64_t day = elapsed_s / kDay;
    return static_cast<std::int64_t>(static_cast<__int128>(total) * (day + 1) / days);
  }
  // Second k of the window (from 0) has released (k + 1) / N of the stock,
  // so the last second of the window offers all of it. 128 bits: a
  // campaign's stock times its window in seconds may pass 2^63.
  const std::int64_t seconds = std::min(elapsed_s + 1, window_s);
  return static_cast<std::int64_t>(static_cast<__int128>(total) * seconds / window_s);
}

std::uint32_t choose_sku(const CampaignSpec& spec, std::span<const std::int64_t> remaining,
                         std::uint64_t pick) {
  const bool weighted = spec.lottery.sku_choice == SkuChoice::kWeighted;
  auto weight = [&](std::size_t i) -> std::int64_t {
    if (remaining[i] <= 0) return 0;
    return weighted ? spec.lottery.sku_weights[i] : remaining[i];
  };
  std::int64_t total = 0;
  for (std::size_t i = 0; i < remaining.size(); ++i) total += weight(i);
  if (total <= 0) return kNoSku;
  const double u = static_cast<double>(pick) / kTwoTo53;
  auto point = static_cast<std::int64_t>(std::floor(u * static_cast<double>(total)));
  for (std::size_t i = 0; i < remaining.size(); ++i) {
    const std::int64_t w = weight(i);
    if (point < w) return static_cast<std::uint32_t>(i);
    point -= w;
  }
  return kNoSku;  // unreachable: point < total
}

DrawDecision decide_draw(const CampaignSpec& spec, std::int32_t prizes_held,
                         std::span<const std::int64_t> remaining, bool lucky, std::uint64_t pick,
                         std::int64_t released) {
  if (prizes_held >= spec.lottery.prizes_per_member) return {DrawOutcome::kAlreadyWon, kNoSku};
  if (!lucky) return {DrawOutcome::kUnlucky, kNoSku};
  std::int64_t left = 0;
  for (std::int64_t r : remaining) left += r;
  if (left <= 0) return {DrawOutcome::kAllGone, kNoSku};
  if (spec.stock_total() - left >= released) return {DrawOutcome::kPaused, kNoSku};
  const std::uint32_t sku = choose_sku(spec, remaining, pick);
  if (sku == kNoSku) return {DrawOutcome::kAllGone, kNoSku};  // only zero-weight SKUs left
  return {DrawOutcome::kWon, sku};
}

std::expected<LotteryCalendar, std::string> LotteryCalendar::load(std::string_view zone) {
  LotteryCalendar c;
  const std::string name(zone.empty() ? kDefaultTimeZone : zone);
  if (!absl::LoadTimeZone(name, &c.zone_)) {
    return std::unexpected("unknown time zone \"" + name + "\" (an IANA name such as " +
                           std::string(kDefaultTimeZone) + "; is tzdata installed?)");
  }
  return c;
}

std::int64_t LotteryCalendar::day_of(UnixMicros t) const {
  const absl::CivilDay day = absl::ToCivilDay(absl::FromUnixMicros(t), zone_);
  return day - absl::CivilDay(1970, 1, 1);
}

UnixMicros LotteryCalendar::day_start(std::int64_t day) const {
  return absl::ToUnixMicros(absl::FromCivil(absl::CivilDay(1970, 1, 1) + day, zone_));
}

std::string LotteryCalendar::format(UnixMicros t) const {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", absl::FromUnixMicros(t), zone_);
}

AuditReport audit_draws(const CampaignSpec& spec, const LotterySeed& seed,
                        std::string_view commitment, std::span<const DrawEntry> entries) {
  AuditReport report;
  report.commitment_matches = seed_commitment(seed) == commitment;
  report.draws = static_cast<std::int64_t>(entries.size());
  auto calendar = LotteryCalendar::load(spec.lottery.time_zone);
  if (!calendar) {
    report.problems.push_back({0, calendar.error()});
    return report;
  }
  struct Member {
    std::int64_t draws = 0;
    std::int32_t prizes = 0;
    std::int64_t day = -1;
    std::int32_t today = 0;
  };
  absl::flat_hash_map<std::string, Member> members;
  const SkuMacKey seed_key = hmac_key(seed);
  std::vector<std::int64_t> remaining;
  std::int64_t left = 0;
  for (const SkuSpec& s : spec.skus) {
    remaining.push_back(s.stock);
    left += s.stock;
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const DrawEntry& e = entries[i];
    auto problem = [&](std::string what) {
      report.problems.push_back({i, "draw " + std::to_string(e.draw_number) + " of member \"" +
                                        e.member_id + "\": " + std::move(what)});
    };
    Member& m = members[e.member_id];
    if (e.draw_number != m.draws + 1) {
      problem("the member's previous draw was number " + std::to_string(m.draws));
    }
    m.draws = e.draw_number;
    const std::int64_t day = calendar->day_of(e.at_us);
    m.today = day == m.day ? m.today + 1 : 1;
    m.day = day;
    if (m.today > spec.lottery.draws_per_day) {
      problem("draw " + std::to_string(m.today) + " of the member's day " +
              calendar->format(calendar->day_start(day)) + ", over the limit of " +
              std::to_string(spec.lottery.draws_per_day));
    }
    if (e.at_us < spec.starts_at_us || e.at_us >= spec.ends_at_us) {
      problem("drawn outside the campaign window");
    }
    const std::int64_t released = released_units(spec, e.at_us);
    if (e.released != released) {
      problem("says " + std::to_string(e.released) + " units were released; the schedule says " +
              std::to_string(released));
    }
    if (e.remaining != left) {
      problem("says " + std::to_string(e.remaining) + " units remained; replaying the log gives " +
              std::to_string(left));
    }
    const DrawRandomness r = draw_randomness(seed_key, spec.id, e.member_id, e.draw_number);
    const DrawDecision d =
        decide_draw(spec, m.prizes, remaining, is_lucky(spec.lottery.win_probability, r.win()),
                    r.pick(), released);
    if (d.outcome != e.outcome) {
      problem(std::string("the log says ") + outcome_name(e.outcome) + ", the rules say " +
              outcome_name(d.outcome));
    } else if (d.outcome == DrawOutcome::kWon && d.sku != e.sku) {
      const auto name = [&](std::uint32_t k) {
        return k < spec.skus.size() ? "\"" + spec.skus[k].id + "\"" : std::string("none");
      };
      problem("won SKU " + name(e.sku) + ", the rules pick " + name(d.sku));
    }
    // Replay what the log says happened, so one bad line is reported once.
    if (e.outcome == DrawOutcome::kWon && e.sku < remaining.size() && remaining[e.sku] > 0) {
      --remaining[e.sku];
      --left;
      ++m.prizes;
    }
  }
  return report;
}

}  // namespace voucherd
