// member_index.h — one shard of what this process knows of a campaign's
// members: the vouchers each holds here, the press limit's state, and the
// claims of each member in flight with the presses waiting for them.
//
// A campaign keeps 64 shards (Sharded<MemberShard>), the member's picked by
// ShardedMap<int>::hash(member_id), each under its spin lock. Per member the
// shard keeps one slot of 56 B (the id and a 24-byte MemberEntry); what most
// members never need stays out of it:
//   - vouchers beyond the first (an allowance above one, several prizes, a
//     new claim after a cancel) are in `more_`;
//   - a claim in flight, and the presses waiting for it, are in
//     `in_flight_`, and only while the claim is in flight.
// A member is kept while they hold a voucher here or have a claim in flight.
//
// Usage (under the shard's lock):
//   MemberEntry* e = shard.find(member_id, hash);
//   if (e == nullptr) e = &shard.emplace(member_id);
//   shard.add_pending(op);  ...  ClaimOp* waiters = shard.remove_pending(op);
//
// Thread-safety: none; the caller holds the shard's lock for every call, and
// a MemberEntry* is valid only until the shard's next emplace or erase.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/ops.h"

namespace voucherd {

struct MemberEntry {
  VoucherPtr first;  // the oldest voucher held here; null: none
  // The press limit's theoretical arrival time (GCRA), in press ticks since
  // the engine started (limits::kPressTickUs).
  std::uint32_t press_tat = 0;
  std::uint32_t more = 0;  // vouchers held beyond `first`
};
static_assert(sizeof(MemberEntry) == 24, "a member's entry stays small (docs/member-memory.md)");

class MemberShard final {
 public:
  // The member's entry, or null.
  [[nodiscard]] MemberEntry* find(std::string_view member_id, std::size_t hash);
  // A new entry for a member find() did not find.
  MemberEntry& emplace(std::string_view member_id);
  // Drops the member once they hold nothing here and have no claim in flight.
  void erase_if_unused(std::string_view member_id, std::size_t hash);

  // The vouchers held, oldest first.
  [[nodiscard]] std::size_t held_count(const MemberEntry& e) const;
  // The first voucher held that `pred` accepts, or null.
  template <class Pred>
  [[nodiscard]] const VoucherPtr* find_held(std::string_view member_id, const MemberEntry& e,
                                            Pred&& pred) const {
    if (e.first == nullptr) return nullptr;
    if (pred(e.first)) return &e.first;
    if (e.more == 0) return nullptr;
    for (const VoucherPtr& v : more_of(member_id)) {
      if (pred(v)) return &v;
    }
    return nullptr;
  }
  template <class Fn>
  void for_each_held(std::string_view member_id, const MemberEntry& e, Fn&& fn) const {
    if (e.first == nullptr) return;
    fn(e.first);
    if (e.more == 0) return;
    for (const VoucherPtr& v : more_of(member_id)) fn(v);
  }
  // The newest voucher held; the member holds one.
  [[nodiscard]] const VoucherPtr& last_held(std::string_view member_id, const MemberEntry& e) const;
  // Adds `v` unless a voucher with its code is held already; true when it
  // is the member's first.
  enum class Added : std::uint8_t { kKnown, kFirst, kMore };
  Added add_held(std::string_view member_id, MemberEntry& e, VoucherPtr v);
  // Drops the voucher with `code`; true when the member then holds nothing.
  bool drop_held(std::string_view member_id, MemberEntry& e, std::string_view code);

  // The member's claims in flight: how many, and each (through
  // ClaimOp::next_pending_).
  // `hash` is ShardedMap<int>::hash(member_id), as for find().
  [[nodiscard]] std::uint32_t pending_count(std::string_view member_id, std::size_t hash) const;
  [[nodiscard]] const ClaimOp* pending(std::string_view member_id, std::size_t hash) const;
  // The ops below take the member's id and hash from the op.
  void add_pending(ClaimOp& op);
  // Takes `op` off its member's claims in flight. When it was the last one,
  // hands over the presses that waited for them; else null.
  ClaimOp* remove_pending(ClaimOp& op);
  // Parks `op` until its member's claims in flight are done; false (and
  // nothing parked) when limits::kWaitersPerMemberMax presses wait already.
  // The member has a claim in flight.
  bool add_waiter(ClaimOp& op);

 private:
  struct InFlight {
    ClaimOp* pending = nullptr;  // a list through ClaimOp::next_pending_
    ClaimOp* waiters = nullptr;  // a list through ClaimOp::next_waiter_
    std::uint32_t pending_count = 0;
    std::uint32_t waiter_count = 0;
  };

  [[nodiscard]] const std::vector<VoucherPtr>& more_of(std::string_view member_id) const;

  absl::flat_hash_map<std::string, MemberEntry> members_;
  // Vouchers beyond each member's first, oldest first.
  absl::flat_hash_map<std::string, std::vector<VoucherPtr>> more_;
  // Keyed by the member id of one of the member's claims in flight (it
  // lives as long as that claim does: the key moves when that claim ends).
  absl::flat_hash_map<absl::string_view, InFlight> in_flight_;
};

}  // namespace voucherd
