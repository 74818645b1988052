// limits.h — every bound voucherd enforces, in one place, each with its reason.
//
// Input limits protect memory and keep hot-path data small; capacity limits
// make queues shed load instead of growing. Related limits are checked against
// each other with static_asserts at the bottom.
#pragma once

#include <cstddef>
#include <cstdint>

namespace voucherd::limits {

// Ids (campaign, site, SKU, member, request) are opaque strings chosen by
// callers; 128 bytes fits any UUID, hash or composite key and bounds memory
// per member entry.
inline constexpr std::size_t kIdBytesMax = 128;
// Campaign, site and SKU names are shown in apps; 256 bytes is ~85 CJK chars.
inline constexpr std::size_t kNameBytesMax = 256;
// An error shows at most this many bytes of anything the caller sent (an
// id, a code), escaped (so up to 4x as many on the wire) and marked when
// cut: an echo of unbounded input makes the trailers outgrow what clients
// accept (~8-64 KiB), and the call then never completes for the client.
inline constexpr std::size_t kEchoedInputBytesMax = 128;
// An error message as a whole (what it quotes plus the words around it)
// stays below this; a longer one is cut. Far inside any client's trailer
// bound, even with the same text again in the google.rpc.Status detail.
inline constexpr std::size_t kErrorMessageBytesMax = 1024;

// SKU and site indexes are carried in 10 bits of a voucher code.
inline constexpr std::size_t kCodeSkuIndexBits = 10;
inline constexpr std::size_t kSkusPerCampaignMax = std::size_t{1} << kCodeSkuIndexBits;
inline constexpr std::size_t kSitesPerCampaignMax = 1024;

// Campaigns are never unloaded while the process runs (the registry is
// insert-only so that lookups are lock-free); this bounds its size.
inline constexpr std::size_t kCampaignsMax = 4096;
// Open-addressing table for the registry: a power of two, at most half full.
inline constexpr std::size_t kCampaignSlots = 2 * kCampaignsMax;

// One SKU's stock: far above any real giveaway, far below int64 overflow
// when summed over kSkusPerCampaignMax SKUs.
inline constexpr std::int64_t kSkuStockMax = 1'000'000'000;
// The memory claim log sizes its code table for the stock of the campaigns
// it opens, for at most this many codes not yet issued at once (over all
// campaigns): a table that grows rehashes every code it holds, reading each
// voucher's record (~100 ns a cache miss apiece), while a sale is on. At the
// cap the table's room takes ~38 MB (what 2M issued codes take anyway);
// past it the table grows as needed.
inline constexpr std::int64_t kCodesReservedMax = 1 << 21;
// Voucher records in memory at once, over all campaigns (the slot pool's
// directory is sized for them up front, 8 bytes a 4,095-record slab: 262
// KB of address space, a page of it resident per 2.1M records): 134M
// records take 8.6 GB, far more than one process is given. A record past it
// stops the process (the memory would have run out first).
inline constexpr std::uint64_t kVoucherRecordsMax = std::uint64_t{1} << 27;
// Face value of one pack in cents (fen): 10 million yuan.
inline constexpr std::int64_t kFaceValueCentsMax = 1'000'000'000;

// Vouchers one member may hold per campaign. Each held voucher costs memory
// in the member's allowance entry; a giveaway is one to a few packs.
inline constexpr std::int32_t kPerMemberLimitMax = 100;
// LOTTERY campaigns: draws per member per day, and a SKU's weight.
inline constexpr std::int32_t kDrawsPerDayMax = 1000;
inline constexpr std::int64_t kSkuWeightMax = 1'000'000;
// Members whose latest draw number a Redis writer remembers (for its guesses).
inline constexpr std::size_t kLotteryViewMembersMax = 1'000'000;
// APPLY_THEN_DRAW campaigns: the SKUs one application may name (an app shows
// a short list; it bounds the stored value and each applicant's turn in the
// allocation), and the applications one campaign takes (the allocating
// replica holds them all in memory, about 130 B each: 650 MB at the bound).
inline constexpr std::size_t kApplicationPreferencesMax = 16;
inline constexpr std::int64_t kApplicationsPerCampaignMax = 5'000'000;
// Winners written in one step of an allocation: one script call, as a batch
// of claims is.
inline constexpr std::size_t kAllocationBatchMax = 512;
// Presses of one member that may wait on that member's claim in flight; more
// are answered RESOURCE_EXHAUSTED (one person cannot press faster than this
// matters, a misbehaving client can).
inline constexpr std::size_t kWaitersPerMemberMax = 16;

// The member press limit (ClaimEngine::MemberPressLimit) keeps its clock in
// ticks of this many µs since the engine started, in 32 bits of the
// member's entry: 497 days of uptime, and at most 100 presses a second.
inline constexpr std::int64_t kPressTickUs = 10'000;
inline constexpr std::uint32_t kPressRatePerSecondMax = 100;

// A claim that finds this replica's shelf empty while a refill is on its way
// waits for it rather than telling the member to retry: a lease takes a few
// milliseconds, an idle replica's units come back within a second, and a
// dead replica's when its lease times out (3 s by default, plus a beat).
// At most this long, and at most the caller's deadline.
inline constexpr std::int64_t kStockWaitUsMax = 5'000'000;
// Claims waiting for units at once, per campaign: a bound on memory and on
// the work of one refill. Beyond it a claim is shed (RESOURCE_EXHAUSTED).
inline constexpr std::size_t kStockWaitersMax = 16'384;
// Times one claim may be refused by the store's fence (its unit was leased
// back from this replica) before it is shed: each refusal drops the
// replica's local units of that SKU, so a second refusal is already rare.
inline constexpr std::uint8_t kFencedClaimRetriesMax = 3;

// Voucher validity: up to ten years.
inline constexpr std::int32_t kVoucherValidDaysMax = 3650;
inline constexpr std::int32_t kVoucherValidDaysDefault = 30;

// Allowance index shards: enough that two cores rarely meet on one shard.
inline constexpr std::size_t kAllowanceShards = 64;

// Voucher code shape (see voucher_code.h).
inline constexpr std::size_t kCodeCampaignTagBits = 10;
inline constexpr std::size_t kCodeRandomBits = 80;  // the unguessable part
inline constexpr std::size_t kCodeMacBits = 45;     // forgery resistance
inline constexpr std::size_t kCodePayloadBits =
    kCodeCampaignTagBits + kCodeSkuIndexBits + kCodeRandomBits + kCodeMacBits;
inline constexpr std::size_t kCodeBodyChars = kCodePayloadBits / 5;  // base32
inline constexpr std::size_t kCodeChars = kCodeBodyChars + 1;        // + check
// A code's display form: six groups of five symbols with dashes between.
inline constexpr std::size_t kCodeDisplayChars = kCodeChars + kCodeChars / 5 - 1;
// Longest text accepted as a code (dashes and spaces allowed between groups).
inline constexpr std::size_t kCodeTextBytesMax = 64;

// Claim-log writes waiting for the store. Beyond this the claim is shed with
// RESOURCE_EXHAUSTED: at ~100k claims/s it is over half a second of backlog,
// past which a caller is better off retrying than waiting.
inline constexpr std::size_t kClaimLogQueueMax = 65'536;
// Claims in one ClaimBatch call: an aggregating backend's batch of presses.
// 1,000 claims are ~130 KiB of request and ~300 KiB of answer, far inside the
// 4 MiB message bound, and one batch can never fill the claim-log queue.
inline constexpr std::size_t kClaimBatchClaimsMax = 1'000;
// Claims sent to the store in one script call: big enough that a storm
// shares round trips and fsyncs, small enough to keep Redis responsive
// (one call runs a few milliseconds at most).
inline constexpr std::size_t kClaimLogBatchMax = 512;
// Most units of a campaign one replica leases in one call (over all SKUs);
// leases shrink as the shared stock runs low so the last packs are not
// stranded in one replica.
inline constexpr std::int64_t kLeaseUnitsMax = 512;
// A lease is asked for when a replica's units of a campaign fall below this
// share of kLeaseUnitsMax.
inline constexpr std::int64_t kLeaseLowWaterDivisor = 2;

// Server secret: at least 256 bits.
inline constexpr std::size_t kSecretBytesMin = 32;
inline constexpr std::size_t kSecretBytesMax = 1024;
// Secrets a secret file may hold: the one that mints, and older ones whose
// codes still verify while they are rotated out (each costs a forged code
// one more MAC).
inline constexpr std::size_t kSecretsMax = 4;

static_assert(kEchoedInputBytesMax >= kIdBytesMax, "a valid id is shown whole in errors");
static_assert(2 * (kEchoedInputBytesMax + 2) + 256 < kErrorMessageBytesMax,
              "a message quoting two plain ids is never cut");
static_assert(kClaimLogBatchMax <= kClaimLogQueueMax, "a batch comes out of the queue");
static_assert(kAllocationBatchMax <= kClaimLogBatchMax,
              "an allocation step is no longer in Redis than a batch of claims");
static_assert(kStockWaitersMax <= kClaimLogQueueMax, "woken waiters fit in the claim-log queue");
static_assert(kClaimBatchClaimsMax * 16 <= kClaimLogQueueMax,
              "many ClaimBatch calls in flight fit in the claim-log queue");
static_assert(kLeaseUnitsMax >= kLeaseLowWaterDivisor, "a lease refills before it is empty");
static_assert(kCodePayloadBits % 5 == 0, "code payload must fill whole base32 characters");
static_assert(kCodeRandomBits >= 80, "the brief asks for at least 80 secret bits per code");
static_assert(kCodeChars < 31, "the GF(32) check character detects all swaps only below 31 chars");
static_assert(kCodeTextBytesMax >= kCodeChars + kCodeChars / 5 + 1, "room for dashes");
static_assert((kCampaignSlots & (kCampaignSlots - 1)) == 0, "slots must be a power of two");
static_assert(kCampaignSlots >= 2 * kCampaignsMax, "registry must stay at most half full");
static_assert(kSkuStockMax * static_cast<std::int64_t>(kSkusPerCampaignMax) <
                  (std::int64_t{1} << 62),
              "campaign stock sums must not overflow");
static_assert((kAllowanceShards & (kAllowanceShards - 1)) == 0, "shards: power of two");
static_assert(kSkusPerCampaignMax <= 64 * 16, "inventory bitmap has 16 words of 64 bits");

}  // namespace voucherd::limits
