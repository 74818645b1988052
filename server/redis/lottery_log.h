// lottery_log.h — draws of LOTTERY campaigns in Redis: the script that
// decides a batch of draws atomically, and the compact draw log.
//
// Keys of a campaign C (all with the hash tag {C}; server/redis/keys.h):
//   vd:{C}:stock      hash SKU -> prize units left (the register script fills it)
//   vd:{C}:issued     hash SKU -> prizes won, and _members
//   vd:{C}:seed       the seed (64 hex digits); SET NX by the first replica
//   vd:{C}:d:<member> string: draws, local day of the latest, draws that
//                     day, prizes (\x1f-separated), then the latest draws
//                     (for retries), each \x1e<len>:<request id>\x1f<entry>
//   vd:{C}:drawn      draws logged so far; vd:{C}:drawn:<k> holds lines
//                     k*65536 .. of the draw log, one APPEND per batch.
//                     The script declares the chunks it appends to: the
//                     writer names two (its guess of the current one, from
//                     the latest answer, and the next), and the script
//                     answers the right one, changing nothing, if they are
//                     not (a replica's first batch on a long log).
// A draw log line: <len>:<member>\t<n>\t<ms since starts_at>\t<outcome
// letter>\t<SKU index or -1>\t<released>\t<remaining before>\n
//
// The replica computes what needs the seed (each draw's randomness, whether
// it is lucky, and the voucher for the SKU it expects a win to pick); the
// script checks the replica's guesses of the member's draw number and of the
// SKU against the store, and answers "try again with ..." without changing
// anything when one is wrong (a member who drew on another replica, or
// prizes won elsewhere since).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/claim_log.h"
#include "engine/lottery.h"
#include "server/redis/connection.h"
#include "server/redis/link.h"

namespace voucherd::redis {

inline constexpr std::int64_t kDrawLogChunk = 65'536;

// One draw as the writer sends it.
struct DrawAttempt {
  DrawLogWrite* write = nullptr;
  std::int64_t draw_number = 0;  // the replica's guess
  DrawRandomness random;
  std::uint32_t sku_guess = kNoSku;  // with `minted`, for a lucky draw
  VoucherPtr minted;
  int attempts = 0;
  // A retry of a win whose record the script could not read (its key was
  // not declared): this attempt declares it.
  std::string repeat_code;
};

// scripts/draw.lua, which names its KEYS, ARGV and answers (script_replies.h).
[[nodiscard]] const Script& draw_script();
// One script call deciding `draws` (all of `spec`) in order, declaring the
// draw log's chunks `drawn_chunk` and the next.
[[nodiscard]] Command draw_command(const CampaignSpec& spec, const std::vector<DrawAttempt>& draws,
                                   std::int64_t drawn_chunk);
// The draw log chunk the line after `drawn` lines goes in.
[[nodiscard]] constexpr std::int64_t draw_log_chunk(std::int64_t drawn) {
  return drawn / kDrawLogChunk;
}

// What the script said of one draw.
struct DrawReply {
  enum class Kind : std::uint8_t {
    kDrawn,        // outcome, sku, remaining before, draws today
    kRepeat,       // entry, voucher record, draws today
    kDailyLimit,   // draws today
    kWrongNumber,  // the member's next draw number is `next_number`
    kWrongSku,     // the win picks `sku`
    kRecordKey,    // a repeat of a win: declare the record key of `code`
    kUnreadable,
  };
  Kind kind = Kind::kUnreadable;
  DrawEntry entry;     // kDrawn: outcome, sku, remaining; kRepeat: all of it
  std::string code;    // kRepeat of a win, kRecordKey
  std::string record;  // kRepeat of a win: the voucher record
  std::int32_t draws_today = 0;
  std::int64_t next_number = 0;
  std::uint32_t sku = kNoSku;
};
// The per-draw answers, then each SKU's prize units left after the batch
// (`remaining`) and the draws logged after it (`drawn`); or, when the
// chunks declared were the wrong ones, only `wrong_chunk` (the chunk the
// batch would start in: nothing changed). An error when the reply has
// another shape.
struct DrawBatchReply {
  std::vector<DrawReply> draws;
  std::vector<std::int64_t> remaining;
  std::int64_t drawn = 0;
  std::optional<std::int64_t> wrong_chunk;
};
[[nodiscard]] std::expected<DrawBatchReply, std::string> parse_draw_reply(const CampaignSpec& spec,
                                                                          std::size_t draws,
                                                                          const Reply& reply);

// The campaign's whole draw log, read chunk by chunk on `conn`.
[[nodiscard]] StoreResult<std::vector<DrawEntry>> read_draw_log(Link& conn,
                                                                const CampaignSpec& spec);
// Parses draw log lines (appends to `out`); an error names the line.
[[nodiscard]] std::expected<void, std::string> parse_draw_lines(const CampaignSpec& spec,
                                                                std::string_view text,
                                                                std::vector<DrawEntry>& out);

}  // namespace voucherd::redis
