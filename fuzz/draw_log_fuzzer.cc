// draw_log_fuzzer — the readers of a LOTTERY campaign's draw log and of the
// draw script's answers (server/redis/lottery_log.h). The log is what
// voucher-audit and ExportDraws replay, so a line read wrong would make an
// honest draw look forged, or a forged one honest.
//
// An input's first byte picks the campaign (1 to 4 SKUs; a window opening
// in 2024, or at either end of the range a Campaign's timestamps allow); the
// rest is read as:
//  1. draw log text (parse_draw_lines): lines that parse name a known
//     outcome, a SKU of the campaign exactly for a win, and written again in
//     the log's format (draw.lua's) parse to the same draws; a refusal names
//     the first line it could not read;
//  2. a draw script answer of any shape (parse_draw_reply): one that is
//     accepted has an answer per draw and per SKU, each of a known kind, and
//     a SKU of the campaign where it names one.
#include <string>
#include <vector>

#include "engine/lottery.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/reply_reader.h"
#include "server/redis/lottery_log.h"

namespace voucherd {
namespace {

CampaignSpec campaign(std::uint8_t choice) {
  static constexpr UnixMicros kStarts[] = {
      INT64_C(1'718'676'000'000'000),     // 2024-06-18T02:00:00Z
      INT64_C(-62'135'596'800'000'000),   // 0001-01-01T00:00:00Z, the earliest Timestamp
      INT64_C(253'402'300'799'000'000)};  // 9999-12-31T23:59:59Z, the latest
  CampaignSpec spec;
  spec.id = "lottery-fuzz";
  spec.mode = CampaignMode::kLottery;
  spec.starts_at_us = kStarts[choice % 3];
  spec.ends_at_us = spec.starts_at_us + 30 * kMicrosPerDay;
  spec.sites = {{"site-1", "Site", "City", SkuKind::kScenic}};
  const std::size_t skus = 1 + (choice / 3) % 4;
  for (std::size_t i = 0; i < skus; ++i) {
    spec.skus.push_back(
        {"sku-" + std::to_string(i), "site-1", SkuKind::kScenic, "Ticket", 100, 10});
  }
  spec.lottery.win_probability = 0.5;
  spec.lottery.draws_per_day = 3;
  spec.lottery.prizes_per_member = 1;
  return spec;
}

// One line as draw.lua appends it.
std::string line_of(const CampaignSpec& spec, const DrawEntry& e) {
  const std::int64_t at_ms = e.at_us / 1000 - spec.starts_at_us / 1000;
  return std::to_string(e.member_id.size()) + ":" + e.member_id + "\t" +
         std::to_string(e.draw_number) + "\t" + std::to_string(at_ms) + "\t" +
         outcome_letter(e.outcome) + "\t" +
         (e.outcome == DrawOutcome::kWon ? std::to_string(e.sku) : std::string("-1")) + "\t" +
         std::to_string(e.released) + "\t" + std::to_string(e.remaining) + "\n";
}

void expect_decision(const CampaignSpec& spec, const DrawEntry& e) {
  FUZZ_EXPECT(e.outcome >= DrawOutcome::kWon && e.outcome <= DrawOutcome::kAlreadyWon,
              "a known outcome");
  if (e.outcome == DrawOutcome::kWon) {
    FUZZ_EXPECT(e.sku < spec.skus.size(), "a win names a SKU of the campaign");
  } else {
    FUZZ_EXPECT(e.sku == kNoSku, "only a win names a SKU");
  }
}

void check_lines(const CampaignSpec& spec, std::string_view text) {
  std::vector<DrawEntry> out(1);  // lines of an earlier chunk
  const auto parsed = redis::parse_draw_lines(spec, text, out);
  if (!parsed) {
    // Lines are numbered across chunks: the one after those read so far.
    const std::string expected = "draw log line " + std::to_string(out.size() + 1) + ":";
    FUZZ_EXPECT(parsed.error().rfind(expected, 0) == 0,
                "a refusal names the first line not read: " + parsed.error());
  }
  std::string again_text;
  for (std::size_t i = 1; i < out.size(); ++i) {
    expect_decision(spec, out[i]);
    again_text += line_of(spec, out[i]);
  }
  std::vector<DrawEntry> again;
  const auto reparsed = redis::parse_draw_lines(spec, again_text, again);
  FUZZ_EXPECT(reparsed.has_value(),
              "lines written again parse: " + (reparsed ? std::string() : reparsed.error()));
  FUZZ_EXPECT(again.size() + 1 == out.size(), "as many lines");
  for (std::size_t i = 0; i < again.size(); ++i) {
    FUZZ_EXPECT(again[i] == out[i + 1], "lines written again are the same draws");
  }
}

void check_reply(const CampaignSpec& spec, fuzz::InputReader& in) {
  const std::size_t draws = in.byte() % 5;
  const redis::Reply reply = fuzz::make_reply(in);
  const auto parsed = redis::parse_draw_reply(spec, draws, reply);
  if (!parsed) return;
  if (parsed->wrong_chunk) return;
  FUZZ_EXPECT(parsed->draws.size() == draws, "an answer per draw");
  FUZZ_EXPECT(parsed->remaining.size() == spec.skus.size(), "prize units left per SKU");
  for (const redis::DrawReply& d : parsed->draws) {
    using Kind = redis::DrawReply::Kind;
    FUZZ_EXPECT(d.kind >= Kind::kDrawn && d.kind <= Kind::kUnreadable, "a known kind");
    if (d.kind == Kind::kDrawn || d.kind == Kind::kRepeat) expect_decision(spec, d.entry);
    if (d.kind == Kind::kWrongSku) FUZZ_EXPECT(d.sku < spec.skus.size(), "a SKU of the campaign");
    if (d.kind == Kind::kRecordKey) FUZZ_EXPECT(!d.code.empty(), "a record key names its code");
  }
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const voucherd::CampaignSpec spec = voucherd::campaign(data[0]);
  voucherd::check_lines(spec, std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  voucherd::fuzz::InputReader in(data + 1, size - 1);
  voucherd::check_reply(spec, in);
  return 0;
}
