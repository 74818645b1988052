// lottery.h — the rules of LOTTERY campaigns, as pure functions, so that the
// claim logs decide draws with them and voucher-audit re-derives draws with
// exactly the same code.
//
// A draw, given the member's draw number n (1, 2, ... over the campaign):
//   1. its randomness is HMAC-SHA256(seed, "voucherd/draw/v1" || lp(campaign)
//      || lp(member) || n as 8 bytes big-endian): 32 bytes that depend on
//      nothing but the seed and those three values (lp: 4-byte big-endian
//      length, then the bytes);
//   2. it is lucky when the first 8 bytes, as a 53-bit fraction, fall below
//      the win probability;
//   3. a member at their prize limit gets ALREADY_WON, whatever the luck; an
//      unlucky draw gets UNLUCKY; a lucky one wins unless no prize is left
//      (ALL_PRIZES_GONE) or every prize released so far is gone
//      (PRIZES_PAUSED_UNTIL_NEXT_RELEASE);
//   4. a win picks its SKU with the next 8 bytes: the cumulative weights of
//      the SKUs that have stock left, in campaign order, at the point
//      floor(u * total weight), u the 53-bit fraction (see choose_sku).
// The stock released at a moment follows the campaign's ReleaseSchedule.
//
// Thread-safety: pure functions; LotteryCalendar is immutable once loaded.
#pragma once

#include <absl/time/time.h>

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/voucher_code.h"

namespace voucherd {

inline constexpr std::size_t kLotterySeedBytes = 32;
using LotterySeed = std::array<std::uint8_t, kLotterySeedBytes>;
inline constexpr std::int32_t kDefaultDrawsPerDay = 3;
inline constexpr std::string_view kDefaultTimeZone = "Asia/Shanghai";

// The numbering matches voucher.v1.NoPrizeReason (kWon is 0: no reason).
enum class DrawOutcome : std::uint8_t {
  kWon = 0,
  kUnlucky = 1,
  kPaused = 2,      // lucky, but every prize released so far is gone
  kAllGone = 3,     // lucky, but no prize is left at all
  kAlreadyWon = 4,  // the member holds their prizes already
};
// One letter per outcome (W, U, P, G, A) in the stored draw log.
[[nodiscard]] char outcome_letter(DrawOutcome o);
[[nodiscard]] std::optional<DrawOutcome> outcome_from_letter(char c);
[[nodiscard]] const char* outcome_name(DrawOutcome o);

struct DrawRandomness {
  std::array<std::uint8_t, 32> mac{};
  // The first 8 bytes (big-endian) shifted to 53 bits: decides luck.
  [[nodiscard]] std::uint64_t win() const;
  // The next 8 bytes (big-endian) shifted to 53 bits: picks the SKU.
  [[nodiscard]] std::uint64_t pick() const;
};

[[nodiscard]] DrawRandomness draw_randomness(const LotterySeed& seed, std::string_view campaign_id,
                                             std::string_view member_id, std::int64_t draw_number);
// The same, with the seed's HMAC midstates computed once (hmac_key(seed)).
[[nodiscard]] DrawRandomness draw_randomness(const SkuMacKey& seed_key,
                                             std::string_view campaign_id,
                                             std::string_view member_id, std::int64_t draw_number);
// Whether a 53-bit `win` value is below `probability`.
[[nodiscard]] bool is_lucky(double probability, std::uint64_t win);

// Lower-case hex of SHA-256(seed): what the campaign publishes before it opens.
[[nodiscard]] std::string seed_commitment(const LotterySeed& seed);
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
[[nodiscard]] std::optional<LotterySeed> seed_from_hex(std::string_view hex);

// Prize units released by `now_us`: 0 before the window; during second k
// of a window of N seconds (linear), floor(stock * (k + 1) / N); during 24 h
// period k of D (equal per day), floor(stock * (k + 1) / D). The last second
// (day) of the window offers the whole stock.
[[nodiscard]] std::int64_t released_units(const CampaignSpec& spec, UnixMicros now_us);

// The SKU a winning draw gets, given each SKU's remaining stock; kNoSku when
// no SKU with weight has stock. Integer weights; u = pick / 2^53 (exact),
// point = floor(u * total) in IEEE double (exact for totals below 2^53, and
// what the Redis script computes too).
[[nodiscard]] std::uint32_t choose_sku(const CampaignSpec& spec,
                                       std::span<const std::int64_t> remaining, std::uint64_t pick);

struct DrawDecision {
  DrawOutcome outcome = DrawOutcome::kUnlucky;
  std::uint32_t sku = kNoSku;  // for kWon
};

// The outcome of one draw. `remaining`: per SKU, before the draw;
// `released`: released_units() at the draw's time.
[[nodiscard]] DrawDecision decide_draw(const CampaignSpec& spec, std::int32_t prizes_held,
                                       std::span<const std::int64_t> remaining, bool lucky,
                                       std::uint64_t pick, std::int64_t released);

// Local calendar days of a campaign's time zone (IANA database, via abseil).
class LotteryCalendar {
 public:
  // An unknown zone name is an error naming it.
  [[nodiscard]] static std::expected<LotteryCalendar, std::string> load(std::string_view zone);
  // Days since 1970-01-01 of the local date at `t`.
  [[nodiscard]] std::int64_t day_of(UnixMicros t) const;
  // When local day `day` begins.
  [[nodiscard]] UnixMicros day_start(std::int64_t day) const;
  // RFC 3339 with the zone's offset, e.g. 2026-11-29T00:00:00+08:00.
  [[nodiscard]] std::string format(UnixMicros t) const;

 private:
  absl::TimeZone zone_;
};

// One line of a campaign's draw log: what was decided, and the state it was
// decided in (export, audit).
struct DrawEntry {
  std::string member_id;
  std::int64_t draw_number = 0;  // the member's, from 1
  UnixMicros at_us = 0;
  DrawOutcome outcome = DrawOutcome::kUnlucky;
  std::uint32_t sku = kNoSku;  // SKU index, for kWon
  std::int64_t released = 0;   // released_units() at at_us
  std::int64_t remaining = 0;  // prize units left in total, before this draw
  bool operator==(const DrawEntry&) const = default;
};

struct AuditProblem {
  std::size_t index = 0;  // 0-based position in the log
  std::string what;
};

struct AuditReport {
  bool commitment_matches = false;
  std::int64_t draws = 0;
  std::vector<AuditProblem> problems;  // empty: every draw follows from the rules
};

// Re-derives every draw of a log from the revealed seed, in log order,
// replaying prize stock and each member's prizes, draw numbers and daily
// counts, and reports each draw that does not follow.
[[nodiscard]] AuditReport audit_draws(const CampaignSpec& spec, const LotterySeed& seed,
                                      std::string_view commitment,
                                      std::span<const DrawEntry> entries);

}  // namespace voucherd
