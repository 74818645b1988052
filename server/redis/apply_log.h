// apply_log.h — applications and the allocation of APPLY_THEN_DRAW campaigns
// in Redis: the scripts' commands, the decoders of their answers, and the
// read of the frozen applications (docs/apply-then-draw.md, section 5).
//
// Keys of a campaign C (all with the hash tag {C}; server/redis/keys.h):
//   vd:{C}:apps    hash member -> application:
//                  "<applied_at ms>\x1f<request id>\x1f<SKU indexes>", the
//                  indexes comma-separated, most wanted first (a definition
//                  cannot change once the campaign opened, so they are stable)
//   vd:{C}:alloc   hash: state (running, done), owner, epoch, beat (Unix ms,
//                  Redis's clock), next (rank positions below it are
//                  written), total (the frozen count), selected, started_ms,
//                  done_ms
//   vd:{C}:won     hash member -> SKU index: the allocation's outcome, which
//                  a cancellation never changes
//   stock, issued, expiring, m:<member>, v:<code>: as for claims, so a
//                  winner's voucher is found, listed, redeemed and counted
//                  like any other
//
// The scripts (server/redis/scripts/): apply.lua records applications (by
// Redis's clock); application.lua reads one; alloc_take.lua begins the
// allocation (freezing the applications), renews the caller's turn or hands
// it over when its owner's lease lapsed (with the next epoch, which fences
// the old owner); alloc_release.lua hands a turn on at once; alloc_batch.lua
// writes rank positions [from, to) in one step, by compare-and-set on
// (owner, epoch, next).
//
// Thread-safety: pure functions; read_applications uses the link it is given.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/apply.h"
#include "engine/claim_log.h"
#include "server/redis/connection.h"
#include "server/redis/link.h"

namespace voucherd::redis {

// HSCAN's page when the applications are read: well under a millisecond of
// Redis's time each.
inline constexpr int kApplicationsScanCount = 1'000;

// The SKU indexes of an application as stored: "2,0", or "" for none.
[[nodiscard]] std::string encode_preferences(std::span<const std::uint32_t> preferred);
// A stored application of `member_id` (Redis input): its time, and its
// preferences, each an index of one of `spec`'s SKUs, at most
// limits::kApplicationPreferencesMax, each once. `request_id`, when given,
// receives the request id it was made by. nullopt when it is not well
// formed.
[[nodiscard]] std::optional<ApplicationEntry> decode_application(const CampaignSpec& spec,
                                                                 std::string_view member_id,
                                                                 std::string_view value,
                                                                 std::string* request_id = nullptr);

// The scripts (defined in scripts.cc).
[[nodiscard]] const Script& apply_script();          // now_ms.lua + apply.lua
[[nodiscard]] const Script& application_script();    // application.lua
[[nodiscard]] const Script& alloc_take_script();     // now_ms.lua + alloc_take.lua
[[nodiscard]] const Script& alloc_release_script();  // alloc_release.lua
[[nodiscard]] const Script& alloc_batch_script();    // now_ms.lua + alloc_batch.lua

// One script call recording `writes` (all of `spec`) in order; `bound` is
// the campaign's most applications.
[[nodiscard]] Command apply_command(const CampaignSpec& spec,
                                    std::span<ApplicationLogWrite* const> writes,
                                    std::int64_t bound);
// What the script said of one application: kRecorded, kReplaced or kRepeat
// with the application as it now stands, or kNotOpen, kClosed, kFull.
struct ApplyReply {
  ApplyLogStatus status = ApplyLogStatus::kUnavailable;
  ApplicationEntry stored;
};
// An error when the reply has another shape than `writes` asked for.
[[nodiscard]] std::expected<std::vector<ApplyReply>, std::string> parse_apply_reply(
    const CampaignSpec& spec, std::span<ApplicationLogWrite* const> writes, const Reply& reply);

// One member's application; `record_code`, when not empty, declares that
// voucher's record key (an earlier answer named it).
[[nodiscard]] Command application_command(const CampaignSpec& spec, std::string_view member_id,
                                          std::string_view record_code);
struct ApplicationReply {
  enum class Kind : std::uint8_t {
    kNotFound,   // the member did not apply
    kFound,      // `application`, `state` and, when kSelected, `voucher`
    kRecordKey,  // selected: ask again declaring the record key of `code`
  };
  Kind kind = Kind::kNotFound;
  ApplicationEntry application;
  ApplicationState state = ApplicationState::kPending;
  VoucherPtr voucher;
  std::string code;
};
[[nodiscard]] std::expected<ApplicationReply, std::string> parse_application_reply(
    const CampaignSpec& spec, std::string_view member_id, const Reply& reply);

// The caller asks for the turn (alloc_take.lua).
[[nodiscard]] Command alloc_take_command(const CampaignSpec& spec, std::string_view replica,
                                         std::chrono::milliseconds lease);
// The turn as the script answered it, with each SKU's stock left.
[[nodiscard]] std::expected<AllocationTurn, std::string> parse_alloc_take_reply(
    const CampaignSpec& spec, const Reply& reply);
// The caller hands its turn on (alloc_release.lua): true when it had it.
[[nodiscard]] Command alloc_release_command(const CampaignSpec& spec, std::string_view replica);

// Rank positions [from, to) of `turn`, with the step's winners.
[[nodiscard]] Command alloc_batch_command(const CampaignSpec& spec, const AllocationTurn& turn,
                                          std::int64_t from, std::int64_t to,
                                          std::span<const AllocatedVoucher> winners);
struct AllocBatchReply {
  enum class Kind : std::uint8_t {
    kWritten,  // `turn`: next = to (kDone when it was the last step)
    kMoved,    // the turn is not the caller's as given: `turn` as it stands
    kHeld,     // a winner, `name`, holds a voucher already: nothing written
    kShort,    // a SKU, `name`, has less stock than the step's winners of it
    kBadStep,  // the step does not fit the allocation (`name` says how): nothing written
  };
  Kind kind = Kind::kMoved;
  AllocationTurn turn;  // kWritten, kMoved (without stock_left)
  std::string name;     // kHeld: the member; kShort: the SKU id; kBadStep: what
};
[[nodiscard]] std::expected<AllocBatchReply, std::string> parse_alloc_batch_reply(
    const Reply& reply);

// Every application of the campaign, read page by page (HSCAN) on `conn`,
// each member once, ordered by member id. The caller compares the count with the frozen total.
// `after_page`, when set, runs after each page (on `conn` too, if it
// likes); an error from it ends the read with that error.
[[nodiscard]] StoreResult<std::vector<ApplicationEntry>> read_applications(
    Link& conn, const CampaignSpec& spec,
    const std::function<StoreResult<void>()>& after_page = {});

// The allocation's outcome as written so far (vd:{C}:won, HSCAN on `conn`):
// member -> the SKU index they won.
[[nodiscard]] StoreResult<absl::flat_hash_map<std::string, std::uint32_t>> read_winners(
    Link& conn, const CampaignSpec& spec);

}  // namespace voucherd::redis
