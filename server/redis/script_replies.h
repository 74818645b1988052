// script_replies.h — what voucherd's Lua scripts (server/redis/scripts/)
// answer, as named constants: the one vocabulary shared by the scripts'
// header comments and the C++ that decodes their replies. A script's reply
// is Redis input: the decoders check its shape and treat anything else as an
// error (never a crash).
//
// Each namespace is one script; a value here must match the literal the
// script returns (the .lua file names the constant next to it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace voucherd::redis::replies {

// index.lua: whether the registry changed.
namespace index {
inline constexpr std::int64_t kUnchanged = 0;
inline constexpr std::int64_t kChanged = 1;
}  // namespace index

// register.lua: one integer.
namespace registration {
inline constexpr std::int64_t kCreated = 2;
inline constexpr std::int64_t kSame = 1;  // the same definition is stored
inline constexpr std::int64_t kReplaced = 3;
// A different definition is stored, and stays:
inline constexpr std::int64_t kDifferent = 0;   // no replace was asked
inline constexpr std::int64_t kHasOpened = -1;  // it opened, by Redis's clock
inline constexpr std::int64_t kHasIssued = -2;  // vouchers of it were issued
inline constexpr std::int64_t kHasLeases = -3;  // replicas hold leased units of it
}  // namespace registration

// This replica's beat before a lease or beat call (lease.lua, beat.lua).
namespace beat_state {
inline constexpr std::int64_t kFresh = 0;
inline constexpr std::int64_t kLapsed = 1;  // older than the lease timeout
inline constexpr std::int64_t kNone = 2;    // taken back (or it never beat)
}  // namespace beat_state

// lease.lua: per SKU asked {granted, left in the pool, leased elsewhere},
// then {returns, holders feed length, beat state}.
namespace lease {
inline constexpr std::size_t kPerSku = 3;
inline constexpr std::size_t kGranted = 0;  // offsets within a SKU's three
inline constexpr std::size_t kLeft = 1;
inline constexpr std::size_t kElsewhere = 2;
inline constexpr std::size_t kTail = 3;
inline constexpr std::size_t kReturns = 0;  // offsets within the tail
inline constexpr std::size_t kHoldersLength = 1;
inline constexpr std::size_t kBeatState = 2;
}  // namespace lease

// beat.lua: {beat state, replicas taken back, replicas overdue, units they
// hold, units in the pool}, then (SKU, units given back) pairs.
namespace beat {
inline constexpr std::size_t kBeatState = 0;
inline constexpr std::size_t kTakenBack = 1;
inline constexpr std::size_t kOverdue = 2;
inline constexpr std::size_t kOverdueUnits = 3;
inline constexpr std::size_t kPoolUnits = 4;
inline constexpr std::size_t kHead = 5;  // where the (SKU, units) pairs start
}  // namespace beat

// claim.lua: per claim an integer, or {held code, held record} when the
// member already holds this request or their whole allowance, or {held
// code} alone when the held record's key was not declared (ask again
// declaring it).
namespace claim {
inline constexpr std::int64_t kWritten = 0;
inline constexpr std::int64_t kFenced = 2;         // this replica's lease has no unit for it
inline constexpr std::size_t kHeldWithRecord = 2;  // elements of {held code, held record}
inline constexpr std::size_t kHeldCodeOnly = 1;    // elements of {held code}
}  // namespace claim

// redeem.lua: {status} or {status, record}.
namespace redeem {
inline constexpr std::int64_t kRedeemed = 0;
inline constexpr std::int64_t kNotFound = 1;
inline constexpr std::int64_t kWrongSite = 2;
inline constexpr std::int64_t kRedeemedBefore = 3;
inline constexpr std::int64_t kCancelled = 4;
inline constexpr std::int64_t kExpired = 5;
}  // namespace redeem

// cancel.lua: {status} or {status, record}.
namespace cancel {
inline constexpr std::int64_t kCancelled = 0;
inline constexpr std::int64_t kNotFound = 1;
inline constexpr std::int64_t kCancelledBefore = 2;
inline constexpr std::int64_t kRedeemed = 3;  // not cancelled
// {5, member}: the allowance is to be freed and that member's allowance key
// was not declared; nothing was written (ask again declaring it).
inline constexpr std::int64_t kMemberKey = 5;
}  // namespace cancel

// member_vouchers.lua: {status, ...}.
namespace member_vouchers {
inline constexpr std::int64_t kListed = 0;      // then code, record pairs
inline constexpr std::int64_t kUndeclared = 1;  // then every code held: declare them
}  // namespace member_vouchers

// draw.lua: per draw {kind, ...}, then each SKU's prize units left, then
// the draws logged after the batch; or one integer, the draw log chunk the
// batch would start in, when the two chunks declared were not the right
// ones (nothing changed).
namespace draw {
inline constexpr std::int64_t kDrawn = 0;        // {0, outcome, SKU, remaining, draws today}
inline constexpr std::int64_t kRepeat = 1;       // {1, entry, record or nil, draws today}
inline constexpr std::int64_t kDailyLimit = 2;   // {2, draws today}
inline constexpr std::int64_t kWrongNumber = 3;  // {3, next draw number}
inline constexpr std::int64_t kWrongSku = 4;     // {4, SKU index}
inline constexpr std::int64_t kRecordKey = 5;    // {5, code}: declare its record key
}  // namespace draw

// apply.lua: per application {status, application} ({status} alone for
// kNotOpen, kClosed and kFull).
namespace apply {
inline constexpr std::int64_t kRecorded = 0;
inline constexpr std::int64_t kReplaced = 1;
inline constexpr std::int64_t kRepeat = 2;
inline constexpr std::int64_t kClosed = 3;   // the window is over, or the allocation began
inline constexpr std::int64_t kFull = 4;     // a new member at the campaign's bound
inline constexpr std::int64_t kNotOpen = 5;  // before starts_at, by Redis's clock
}  // namespace apply

// application.lua: {kind, ...}.
namespace application {
inline constexpr std::int64_t kNotFound = 0;     // {0}
inline constexpr std::int64_t kPending = 1;      // {1, application}
inline constexpr std::int64_t kSelected = 2;     // {2, application, SKU index, code, record}
inline constexpr std::int64_t kNotSelected = 3;  // {3, application}
inline constexpr std::int64_t kRecordKey = 4;    // {4, code}: declare its record key
}  // namespace application

// alloc_take.lua: {kind, owner, epoch, next, total}, then each SKU's stock.
namespace alloc_take {
inline constexpr std::int64_t kTooEarly = 0;
inline constexpr std::int64_t kBusy = 1;
inline constexpr std::int64_t kTaken = 2;
inline constexpr std::int64_t kDone = 3;
}  // namespace alloc_take

// alloc_release.lua: one integer.
namespace alloc_release {
inline constexpr std::int64_t kNotOwner = 0;
inline constexpr std::int64_t kReleased = 1;
}  // namespace alloc_release

// alloc_batch.lua: {kind, owner, epoch, next, total, done (0/1)}, or {kind,
// name}.
namespace alloc_batch {
inline constexpr std::int64_t kWritten = 0;
inline constexpr std::int64_t kMoved = 1;    // the turn is not the caller's as given
inline constexpr std::int64_t kHeld = 2;     // {2, member}: a winner holds a voucher already
inline constexpr std::int64_t kShort = 3;    // {3, SKU id}: less stock than the step's winners
inline constexpr std::int64_t kBadStep = 4;  // {4, what}: positions or members that do not fit
}  // namespace alloc_batch

}  // namespace voucherd::redis::replies
