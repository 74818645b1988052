// member_index.h — one shard of what this process knows of a campaign's
// members: the vouchers each holds here, the press limit's state, and the
// claims of each member in flight with the presses waiting for them.
//
// A campaign keeps 64 shards (Sharded<MemberShard>), the member's picked by
// ShardedMap<int>::hash(member_id), each under its spin lock. Per member the
// shard keeps one MemberRecord of 28 B (the id inline when it has up to 15
// bytes, a 12-byte MemberEntry whose first voucher is a 4-byte pool number)
// in chunks that never move, numbered in the order members came, and a
// 4-byte index slot holding that number; longer ids are kept in the shard's
// byte arena. The index keeps no hash: it hashes a record's id again when
// the table grows. What most members never need stays out of the record:
//   - vouchers beyond the first (an allowance above one, several prizes, a
//     new claim after a cancel) are in `more_`;
//   - a claim in flight, and the presses waiting for it, are in
//     `in_flight_`, and only while the claim is in flight.
// A member who holds nothing here and has no claim in flight is released
// (release_if_inactive): out of the index, their record and their long id's
// block reused for the next new member. So the records are bounded by the
// members active at once. A record found that is not `active()` (its press
// was refused before it claimed) is treated as a new member's.
//
// Usage (under the shard's lock):
//   MemberRecord* m = shard.find(member_id, hash);
//   if (m == nullptr) m = &shard.emplace(member_id, hash);
//   shard.add_pending(*m, op);  ...  ClaimOp* waiters = shard.remove_pending(op);
//   shard.release_if_inactive(*m, hash);
//
// Thread-safety: none; the caller holds the shard's lock for every call. A
// MemberRecord& stays valid as long as the shard; it is another member's
// once released. The VoucherPtrs find_held and last_held return are counted
// references of their own: they may be kept after the lock is let go.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chunked.h"
#include "engine/limits.h"
#include "engine/model.h"
#include "engine/ops.h"

namespace voucherd {

struct MemberEntry {
  CompactVoucherPtr first;  // the oldest voucher held here, by its pool number; null: none
  // The press limit's theoretical arrival time (GCRA), in press ticks since
  // the engine started (limits::kPressTickUs).
  std::uint32_t press_tat = 0;
  std::uint32_t more = 0;  // vouchers held beyond `first`
};
static_assert(sizeof(MemberEntry) == 12, "a member's entry stays small (docs/member-memory.md)");

// One member of a shard. The id is kept inline when it has up to
// kInlineIdBytes bytes, else in the shard's arena (id_bytes then holds the
// pointer to it).
struct MemberRecord {
  static constexpr std::size_t kInlineIdBytes = 15;

  MemberEntry entry;
  std::uint8_t id_size = 0;
  char id_bytes[kInlineIdBytes] = {};

  [[nodiscard]] std::string_view id() const {
    if (id_size <= kInlineIdBytes) return {id_bytes, id_size};
    const char* kept = nullptr;
    std::memcpy(&kept, id_bytes, sizeof kept);
    return {kept, id_size};
  }
};
static_assert(sizeof(MemberRecord) == 28, "a member's record stays small (docs/member-memory.md)");
static_assert(limits::kIdBytesMax <= UINT8_MAX, "a member id's size fits MemberRecord::id_size");

class MemberShard final {
 public:
  MemberShard() = default;
  MemberShard(const MemberShard&) = delete;
  MemberShard& operator=(const MemberShard&) = delete;

  // The member's record, or null.
  [[nodiscard]] MemberRecord* find(std::string_view member_id, std::size_t hash);
  // A new record for a member find() did not find; the id has at most
  // limits::kIdBytesMax bytes, and `hash` is ShardedMap<int>::hash(id)
  // (the index hashes the id itself when it grows).
  MemberRecord& emplace(std::string_view member_id, std::size_t hash);
  // Releases the member's record when they hold nothing here and have no
  // claim in flight; `hash` is the one find() was given.
  void release_if_inactive(MemberRecord& m, std::size_t hash);
  // True while the member holds a voucher here or has a claim in flight.
  [[nodiscard]] bool active(const MemberRecord& m) const {
    return static_cast<bool>(m.entry.first) || in_flight_.contains(&m);
  }

  // The vouchers held, oldest first.
  [[nodiscard]] static std::size_t held_count(const MemberRecord& m) {
    return m.entry.first ? 1 + std::size_t{m.entry.more} : 0;
  }
  // The first voucher held that `pred` (given a const VoucherRecord&)
  // accepts, or null.
  template <class Pred>
  [[nodiscard]] VoucherPtr find_held(const MemberRecord& m, Pred&& pred) const {
    const VoucherRecord* first = m.entry.first.get();  // one look through the pool's directory
    if (first == nullptr) return nullptr;
    if (pred(*first)) return VoucherPtr::share(*first);
    if (m.entry.more == 0) return nullptr;
    for (const VoucherPtr& v : more_of(m)) {
      if (pred(*v)) return v;
    }
    return nullptr;
  }
  // Calls fn(const VoucherRecord&) for each voucher held, oldest first.
  template <class Fn>
  void for_each_held(const MemberRecord& m, Fn&& fn) const {
    if (!m.entry.first) return;
    fn(*m.entry.first);
    if (m.entry.more == 0) return;
    for (const VoucherPtr& v : more_of(m)) fn(*v);
  }
  // The newest voucher held; the member holds one.
  [[nodiscard]] VoucherPtr last_held(const MemberRecord& m) const;
  // Adds `v` unless a voucher with its code is held already; true when it
  // is the member's first.
  enum class Added : std::uint8_t { kKnown, kFirst, kMore };
  Added add_held(MemberRecord& m, VoucherPtr v);
  // Drops the voucher with `code`; true when the member then holds nothing.
  bool drop_held(MemberRecord& m, std::string_view code);

  // The member's claims in flight: how many, and each (through
  // ClaimOp::next_pending_).
  [[nodiscard]] std::uint32_t pending_count(const MemberRecord& m) const;
  [[nodiscard]] const ClaimOp* pending(const MemberRecord& m) const;
  // Puts `op` on the member's claims in flight (and remembers the member
  // in op.member_ref_).
  void add_pending(MemberRecord& m, ClaimOp& op);
  // Takes `op` off its member's claims in flight. When it was the last one,
  // hands over the presses that waited for them; else null.
  ClaimOp* remove_pending(ClaimOp& op);
  // Parks `op` until the member's claims in flight are done; false (and
  // nothing parked) when limits::kWaitersPerMemberMax presses wait already.
  // The member has a claim in flight.
  bool add_waiter(const MemberRecord& m, ClaimOp& op);

 private:
  struct InFlight {
    ClaimOp* pending = nullptr;  // a list through ClaimOp::next_pending_
    ClaimOp* waiters = nullptr;  // a list through ClaimOp::next_waiter_
    std::uint32_t pending_count = 0;
    std::uint32_t waiter_count = 0;
  };
  // The index keeps record numbers (4 bytes a slot) and looks records up by
  // (id, hash) without building one. A slot's hash is its id's: the
  // caller's for a new member (emplace), worked out again from the id when
  // the table grows.
  struct Probe {
    std::string_view id;
    std::size_t hash;
  };
  using Records = Chunked<MemberRecord, 16, 4096>;
  struct SlotHash {
    using is_transparent = void;
    std::size_t operator()(std::uint32_t n) const;
    std::size_t operator()(const Probe& p) const { return p.hash; }
    const Records* records;
  };
  struct SlotEq {
    using is_transparent = void;
    bool operator()(std::uint32_t a, std::uint32_t b) const { return a == b; }
    bool operator()(std::uint32_t n, const Probe& p) const { return (*records)[n].id() == p.id; }
    bool operator()(const Probe& p, std::uint32_t n) const { return (*this)(n, p); }
    const Records* records;
  };

  [[nodiscard]] const std::vector<VoucherPtr>& more_of(const MemberRecord& m) const;

  Records records_;
  std::vector<std::uint32_t> free_;  // numbers of released records
  ByteArena<256, 16384> long_ids_;   // ids of more than kInlineIdBytes bytes
  // The numbers of the records in use. Its hash and equality read records_,
  // so the shard never moves.
  absl::flat_hash_set<std::uint32_t, SlotHash, SlotEq> index_{0, SlotHash{&records_},
                                                              SlotEq{&records_}};
  // Vouchers beyond each member's first, oldest first, by record.
  absl::flat_hash_map<const MemberRecord*, std::vector<VoucherPtr>> more_;
  // The members with claims in flight, by record.
  absl::flat_hash_map<const MemberRecord*, InFlight> in_flight_;
};

}  // namespace voucherd
