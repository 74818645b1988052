// member_index.cc — see member_index.h.
#include "engine/member_index.h"

#include <algorithm>
#include <utility>

#include "engine/check.h"
#include "engine/limits.h"
#include "engine/sharded_map.h"

namespace voucherd {

MemberEntry* MemberShard::find(std::string_view member_id, std::size_t hash) {
  auto it = members_.find(to_absl(member_id), hash);
  return it == members_.end() ? nullptr : &it->second;
}

MemberEntry& MemberShard::emplace(std::string_view member_id) {
  return members_.try_emplace(std::string(member_id)).first->second;
}

void MemberShard::erase_if_unused(std::string_view member_id, std::size_t hash) {
  auto it = members_.find(to_absl(member_id), hash);
  if (it == members_.end() || it->second.first != nullptr) return;
  if (in_flight_.contains(to_absl(member_id))) return;
  members_.erase(it);
}

std::size_t MemberShard::held_count(const MemberEntry& e) const {
  return e.first == nullptr ? 0 : 1 + std::size_t{e.more};
}

const std::vector<VoucherPtr>& MemberShard::more_of(std::string_view member_id) const {
  auto it = more_.find(to_absl(member_id));
  VOUCHERD_CHECK(it != more_.end(), "a member's further vouchers are kept");
  return it->second;
}

const VoucherPtr& MemberShard::last_held(std::string_view member_id, const MemberEntry& e) const {
  VOUCHERD_CHECK(e.first != nullptr, "the member holds a voucher");
  return e.more == 0 ? e.first : more_of(member_id).back();
}

MemberShard::Added MemberShard::add_held(std::string_view member_id, MemberEntry& e, VoucherPtr v) {
  const auto same_code = [&](const VoucherPtr& h) { return h->code() == v->code(); };
  if (find_held(member_id, e, same_code) != nullptr) return Added::kKnown;
  if (e.first == nullptr) {
    e.first = std::move(v);
    return Added::kFirst;
  }
  more_[to_absl(member_id)].push_back(std::move(v));
  ++e.more;
  return Added::kMore;
}

bool MemberShard::drop_held(std::string_view member_id, MemberEntry& e, std::string_view code) {
  if (e.first == nullptr) return false;
  if (e.more == 0) {
    if (e.first->code() != code) return false;
    e.first = nullptr;
    return true;
  }
  auto it = more_.find(to_absl(member_id));
  VOUCHERD_CHECK(it != more_.end(), "a member's further vouchers are kept");
  std::vector<VoucherPtr>& more = it->second;
  if (e.first->code() == code) {
    e.first = std::move(more.front());
    more.erase(more.begin());
  } else {
    auto m = std::find_if(more.begin(), more.end(),
                          [&](const VoucherPtr& v) { return v->code() == code; });
    if (m == more.end()) return false;
    more.erase(m);
  }
  if (--e.more == 0) more_.erase(it);
  return false;
}

std::uint32_t MemberShard::pending_count(std::string_view member_id, std::size_t hash) const {
  auto it = in_flight_.find(to_absl(member_id), hash);
  return it == in_flight_.end() ? 0 : it->second.pending_count;
}

const ClaimOp* MemberShard::pending(std::string_view member_id, std::size_t hash) const {
  auto it = in_flight_.find(to_absl(member_id), hash);
  return it == in_flight_.end() ? nullptr : it->second.pending;
}

void MemberShard::add_pending(ClaimOp& op) {
  // The first claim in flight gives the entry its key: its own member id.
  InFlight& f = in_flight_.try_emplace(to_absl(op.member_id)).first->second;
  op.next_pending_ = f.pending;
  f.pending = &op;
  ++f.pending_count;
}

ClaimOp* MemberShard::remove_pending(ClaimOp& op) {
  auto it = in_flight_.find(to_absl(op.member_id), op.member_hash_);
  VOUCHERD_CHECK(it != in_flight_.end(), "a claim in flight is on its member's list");
  InFlight& f = it->second;
  ClaimOp** link = &f.pending;
  while (*link != nullptr && *link != &op) link = &(*link)->next_pending_;
  VOUCHERD_CHECK(*link == &op, "a claim in flight is on its member's list");
  *link = op.next_pending_;
  op.next_pending_ = nullptr;
  if (--f.pending_count == 0) {
    ClaimOp* waiters = f.waiters;
    in_flight_.erase(it);
    return waiters;
  }
  // The key views the member id of a claim that may be ending: re-key the
  // entry under the id of one that stays.
  if (it->first.data() == op.member_id.data()) {
    const InFlight rest = f;
    in_flight_.erase(it);
    in_flight_.try_emplace(to_absl(rest.pending->member_id), rest);
  }
  return nullptr;
}

bool MemberShard::add_waiter(ClaimOp& op) {
  auto it = in_flight_.find(to_absl(op.member_id), op.member_hash_);
  VOUCHERD_CHECK(it != in_flight_.end(), "a press waits only for a claim in flight");
  InFlight& f = it->second;
  if (f.waiter_count >= limits::kWaitersPerMemberMax) return false;
  op.next_waiter_ = f.waiters;
  f.waiters = &op;
  ++f.waiter_count;
  return true;
}

}  // namespace voucherd
