// The allocation of APPLY_THEN_DRAW campaigns in the store: the turn, the
// frozen applications and the steps (server/redis/apply_log.h has the keys
// and the scripts). Called by the allocating thread through the engine
// (ClaimEngine::allocate), blocking, on a link of its own; stop() hands on
// the turns this replica holds.
#include <algorithm>

#include "server/base/log.h"
#include "server/redis/apply_log.h"
#include "server/redis/claim_log_internal.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/script_replies.h"

namespace voucherd::redis {

using internal::Clock;

StoreResult<Reply> RedisClaimLog::allocation_call(const Command& command, const Script& script,
                                                  bool writes) {
  if (!allocation_link_ || !allocation_link_->usable()) {
    allocation_link_.reset();
    auto link = open_link();
    if (!link) return store_unavailable(link.error());
    allocation_link_ = std::move(*link);
  }
  BatchAnswers sent = allocation_link_->send_batch(
      {command}, {&script}, writes ? options_.min_replicas : 0, options_.replica_wait);
  if (allocation_link_->broken()) allocation_link_.reset();
  if (sent.replies.size() != 1) return store_unavailable("the store did not answer");
  if (!sent.replies[0]) return store_unavailable(sent.replies[0].error());
  Reply& reply = *sent.replies[0];
  // READONLY (a failover under way), OOM, BUSY: the store cannot answer now.
  if (reply.is_error()) return store_unavailable(reply.str);
  if (writes && options_.min_replicas > 0 && !sent.not_replicated.empty()) {
    // Written, maybe, but not confirmed by the replicas: sent again, the
    // step is recognised if it stayed (alloc_batch.lua answers next = to).
    return store_unavailable("an allocation step was not confirmed by " +
                             std::to_string(options_.min_replicas) +
                             " replica(s): " + sent.not_replicated);
  }
  return std::move(reply);
}

StoreResult<AllocationTurn> RedisClaimLog::take_turn(const CampaignSpec& spec,
                                                     std::string_view replica) {
  // Not waited for min_replicas: a turn lost in a failover costs only a
  // wait for the lease, and the steps, which are waited for, carry the
  // freeze to the replicas with them (a replica applies writes in order).
  auto reply = allocation_call(alloc_take_command(spec, replica, options_.allocation_lease),
                               alloc_take_script(), /*writes=*/false);
  if (!reply) return std::unexpected(std::move(reply.error()));
  auto turn = parse_alloc_take_reply(spec, *reply);
  if (!turn) return store_bad_reply("campaign \"" + spec.id + "\": " + turn.error());
  const auto held = std::find(turns_held_.begin(), turns_held_.end(), &spec);
  if (turn->kind == AllocationTurn::Kind::kTaken && turn->owner == replica) {
    if (held == turns_held_.end()) turns_held_.push_back(&spec);
  } else if (held != turns_held_.end()) {
    turns_held_.erase(held);
  }
  return std::move(*turn);
}

StoreResult<AllocationTurn> RedisClaimLog::take_allocation(const CampaignSpec& spec,
                                                           std::string_view replica) {
  std::lock_guard lock(allocation_mu_);
  return take_turn(spec, replica);
}

StoreResult<std::vector<ApplicationEntry>> RedisClaimLog::read_applications(
    const CampaignSpec& spec, const AllocationTurn& turn) {
  std::lock_guard lock(allocation_mu_);
  // A million applications take seconds to read: the turn is renewed every
  // third of the lease meanwhile, and the read ends if it passed on.
  auto renewed = Clock::now();
  auto keep_turn = [&]() -> StoreResult<void> {
    if (Clock::now() - renewed < options_.allocation_lease / 3) return {};
    renewed = Clock::now();
    auto now = take_turn(spec, turn.owner);
    if (!now) return std::unexpected(std::move(now.error()));
    if (now->kind != AllocationTurn::Kind::kTaken || now->epoch != turn.epoch) {
      return store_unavailable("campaign \"" + spec.id + "\": the allocation's turn passed to \"" +
                               now->owner + "\" while its applications were read");
    }
    return {};
  };
  // The pages come on a link of the read's own, which the renewals (on
  // allocation_link_) cannot replace under it.
  auto link = open_link();
  if (!link) return store_unavailable(link.error());
  return redis::read_applications(**link, spec, keep_turn);
}

StoreResult<AllocationTurn> RedisClaimLog::write_allocation(
    const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from, std::int64_t to,
    std::span<const AllocatedVoucher> winners) {
  std::lock_guard lock(allocation_mu_);
  auto reply = allocation_call(alloc_batch_command(spec, turn, from, to, winners),
                               alloc_batch_script(), /*writes=*/true);
  if (!reply) return std::unexpected(std::move(reply.error()));
  auto step = parse_alloc_batch_reply(*reply);
  if (!step) return store_bad_reply("campaign \"" + spec.id + "\": " + step.error());
  switch (step->kind) {
    case AllocBatchReply::Kind::kWritten:
    case AllocBatchReply::Kind::kMoved:
      if (step->turn.kind == AllocationTurn::Kind::kDone || step->turn.owner != turn.owner) {
        std::erase(turns_held_, &spec);
      }
      return std::move(step->turn);
    case AllocBatchReply::Kind::kHeld:
      // The second halves of the checks the engine made before the step:
      // the store holds what the allocation did not write (tampered with,
      // or a defect). Nothing was written; the run stops.
      return store_bad_reply("campaign \"" + spec.id + "\": member \"" + step->name +
                             "\" holds a voucher the allocation did not write; it stops");
    case AllocBatchReply::Kind::kShort:
      return store_bad_reply("campaign \"" + spec.id + "\": SKU \"" + step->name +
                             "\" has less stock in the store than the allocation leaves; it stops");
    case AllocBatchReply::Kind::kBadStep:
      return store_bad_reply("campaign \"" + spec.id +
                             "\": the store refused an allocation step (" + step->name +
                             "); it stops");
  }
  return store_bad_reply("campaign \"" + spec.id + "\": an allocation step's answer is unknown");
}

void RedisClaimLog::release_turns() {
  std::lock_guard lock(allocation_mu_);
  for (const CampaignSpec* spec : turns_held_) {
    auto released =
        allocation_call(alloc_release_command(*spec, options_.replica_id), alloc_release_script(),
                        /*writes=*/false);
    if (!released) {
      log::warn("campaign \"" + spec->id + "\": could not hand the allocation's turn on (" +
                released.error().message + "); another replica takes it when the lease lapses");
    } else if (released->integer == replies::alloc_release::kReleased) {
      log::info("campaign \"" + spec->id + "\": handed the allocation's turn on");
    }
  }
  turns_held_.clear();
  allocation_link_.reset();
}

}  // namespace voucherd::redis
