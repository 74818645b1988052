// member_index.cc — see member_index.h.
#include "engine/member_index.h"

#include <algorithm>
#include <utility>

#include "engine/check.h"
#include "engine/limits.h"
#include "engine/sharded_map.h"

namespace voucherd {

std::size_t MemberShard::SlotHash::operator()(std::uint32_t n) const {
  return ShardedMap<int>::hash((*records)[n].id());
}

MemberRecord* MemberShard::find(std::string_view member_id, std::size_t hash) {
  VOUCHERD_DCHECK(hash == ShardedMap<int>::hash(member_id), "a member's hash is their id's");
  auto it = index_.find(Probe{member_id, hash});
  return it == index_.end() ? nullptr : &records_[*it];
}

MemberRecord& MemberShard::emplace(std::string_view member_id, std::size_t hash) {
  VOUCHERD_DCHECK(hash == ShardedMap<int>::hash(member_id), "a member's hash is their id's");
  static_assert(limits::kIdBytesMax <= decltype(long_ids_)::kStringMax, "an id fits the arena");
  VOUCHERD_CHECK(member_id.size() <= limits::kIdBytesMax, "a member id has at most 128 bytes");
  std::uint32_t number = 0;
  MemberRecord* m = nullptr;
  if (free_.empty()) {
    number = static_cast<std::uint32_t>(records_.size());
    m = &records_.push_back(MemberRecord{});
  } else {
    number = free_.back();
    m = &records_[number];
    free_.pop_back();
  }
  m->id_size = static_cast<std::uint8_t>(member_id.size());
  if (member_id.size() <= MemberRecord::kInlineIdBytes) {
    std::copy(member_id.begin(), member_id.end(), m->id_bytes);
  } else {
    const char* kept = long_ids_.append(member_id);
    std::memcpy(m->id_bytes, &kept, sizeof kept);
  }
  // The hash is the caller's: only a table that grows hashes the id again.
  bool inserted = false;
  index_.lazy_emplace(Probe{m->id(), hash}, [&](const auto& construct) {
    construct(number);
    inserted = true;
  });
  VOUCHERD_CHECK(inserted, "a new record is a new member in the index");
  return *m;
}

void MemberShard::release_if_inactive(MemberRecord& m, std::size_t hash) {
  if (active(m)) return;
  auto it = index_.find(Probe{m.id(), hash});
  VOUCHERD_CHECK(it != index_.end() && &records_[*it] == &m, "a record in use is in the index");
  const std::uint32_t number = *it;
  index_.erase(it);
  if (m.id_size > MemberRecord::kInlineIdBytes) {
    char* kept = nullptr;
    std::memcpy(&kept, m.id_bytes, sizeof kept);
    long_ids_.give_back(kept, m.id_size);
  }
  m = MemberRecord{};
  free_.push_back(number);
}

const std::vector<VoucherPtr>& MemberShard::more_of(const MemberRecord& m) const {
  auto it = more_.find(&m);
  VOUCHERD_CHECK(it != more_.end(), "a member's further vouchers are kept");
  return it->second;
}

VoucherPtr MemberShard::last_held(const MemberRecord& m) const {
  VOUCHERD_CHECK(m.entry.first, "the member holds a voucher");
  return m.entry.more == 0 ? m.entry.first.share() : more_of(m).back();
}

MemberShard::Added MemberShard::add_held(MemberRecord& m, VoucherPtr v) {
  const auto same_code = [&](const VoucherRecord& h) {
    return h.packed_code() == v->packed_code();
  };
  if (find_held(m, same_code) != nullptr) return Added::kKnown;
  if (!m.entry.first) {
    m.entry.first = CompactVoucherPtr(std::move(v));
    return Added::kFirst;
  }
  more_[&m].push_back(std::move(v));
  ++m.entry.more;
  return Added::kMore;
}

bool MemberShard::drop_held(MemberRecord& m, std::string_view text) {
  MemberEntry& e = m.entry;
  if (!e.first) return false;
  const std::optional<PackedCode> code = PackedCode::pack(text);
  if (!code) return false;  // not in display form: no voucher held has it
  if (e.more == 0) {
    if (e.first->packed_code() != *code) return false;
    e.first = CompactVoucherPtr();
    return true;
  }
  auto it = more_.find(&m);
  VOUCHERD_CHECK(it != more_.end(), "a member's further vouchers are kept");
  std::vector<VoucherPtr>& more = it->second;
  if (e.first->packed_code() == *code) {
    e.first = CompactVoucherPtr(std::move(more.front()));
    more.erase(more.begin());
  } else {
    auto at = std::find_if(more.begin(), more.end(),
                           [&](const VoucherPtr& v) { return v->packed_code() == *code; });
    if (at == more.end()) return false;
    more.erase(at);
  }
  if (--e.more == 0) more_.erase(it);
  return false;
}

std::uint32_t MemberShard::pending_count(const MemberRecord& m) const {
  auto it = in_flight_.find(&m);
  return it == in_flight_.end() ? 0 : it->second.pending_count;
}

const ClaimOp* MemberShard::pending(const MemberRecord& m) const {
  auto it = in_flight_.find(&m);
  return it == in_flight_.end() ? nullptr : it->second.pending;
}

void MemberShard::add_pending(MemberRecord& m, ClaimOp& op) {
  InFlight& f = in_flight_[&m];
  op.member_ref_ = &m;
  op.next_pending_ = f.pending;
  f.pending = &op;
  ++f.pending_count;
}

ClaimOp* MemberShard::remove_pending(ClaimOp& op) {
  auto it = in_flight_.find(op.member_ref_);
  VOUCHERD_CHECK(it != in_flight_.end(), "a claim in flight is on its member's list");
  InFlight& f = it->second;
  ClaimOp** link = &f.pending;
  while (*link != nullptr && *link != &op) link = &(*link)->next_pending_;
  VOUCHERD_CHECK(*link == &op, "a claim in flight is on its member's list");
  *link = op.next_pending_;
  op.next_pending_ = nullptr;
  if (--f.pending_count > 0) return nullptr;
  ClaimOp* waiters = f.waiters;
  in_flight_.erase(it);
  return waiters;
}

bool MemberShard::add_waiter(const MemberRecord& m, ClaimOp& op) {
  auto it = in_flight_.find(&m);
  VOUCHERD_CHECK(it != in_flight_.end(), "a press waits only for a claim in flight");
  InFlight& f = it->second;
  if (f.waiter_count >= limits::kWaitersPerMemberMax) return false;
  op.next_waiter_ = f.waiters;
  f.waiters = &op;
  ++f.waiter_count;
  return true;
}

}  // namespace voucherd
