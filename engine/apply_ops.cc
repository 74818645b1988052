// apply_ops.cc — APPLY_THEN_DRAW campaigns on the engine: an application
// checked and handed to the claim log, a member's application found, and
// the allocation written through the claim log's turn.
#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/limits.h"

namespace voucherd {

void ClaimEngine::apply(ApplyOp& op) {
  auto fail = [&op](Outcome o, const char* field = nullptr, std::string_view sku_id = {}) {
    ApplicationResult r;
    r.outcome = o;
    r.field = field;
    r.sku_id = sku_id;
    op.on_apply_done(r);
  };
  if (!id_is_valid(op.campaign_id)) return fail(Outcome::kInvalidArgument, "campaign_id");
  if (!id_is_valid(op.member_id)) return fail(Outcome::kInvalidArgument, "member_id");
  if (!id_is_valid(op.request_id)) return fail(Outcome::kInvalidArgument, "request_id");
  if (op.preferred_sku_ids.size() > limits::kApplicationPreferencesMax) {
    return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
  }
  for (std::string_view id : op.preferred_sku_ids) {
    if (!id_is_valid(id)) return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
  }
  CampaignRuntime* c = find_mutable(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  const CampaignSpec& spec = c->spec();
  if (spec.mode != CampaignMode::kApplyThenDraw) return fail(Outcome::kWrongMode);
  const UnixMicros now = clock_.now_us();
  if (now < spec.starts_at_us) return fail(Outcome::kNotOpen);
  if (now >= spec.ends_at_us) return fail(Outcome::kClosed);
  const std::size_t count = op.preferred_sku_ids.size();
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t sku = c->sku_index(op.preferred_sku_ids[i]);
    if (sku == kNoSku) return fail(Outcome::kSkuNotFound, nullptr, op.preferred_sku_ids[i]);
    // A SKU named twice would say nothing more about what the member wants.
    if (std::find(op.preferred_.begin(), op.preferred_.begin() + i, sku) !=
        op.preferred_.begin() + i) {
      return fail(Outcome::kInvalidArgument, "preferred_sku_ids");
    }
    op.preferred_[i] = sku;
  }
  // The seed (and so the published commitment) is settled when the claim
  // log first reaches its store: no application is taken before it.
  if (!c->seed_set_.load(std::memory_order_acquire)) return fail(Outcome::kLogUnavailable);
  // Kept to the millisecond, as the Redis store keeps it.
  op.application = ApplicationRequestView{&spec, op.member_id, op.request_id,
                                          std::span(op.preferred_.data(), count), now - now % 1000};
  log_.append_application(op);  // completes through ApplyOp::on_application_logged
}

void ApplyOp::on_application_logged(ApplyLogStatus status, const ApplicationEntry& stored) {
  ApplicationResult r;
  switch (status) {
    case ApplyLogStatus::kRecorded:
    case ApplyLogStatus::kReplaced:
    case ApplyLogStatus::kRepeat:
      r.outcome = Outcome::kOk;
      r.application = stored;
      r.replaced = status == ApplyLogStatus::kReplaced;
      r.repeat = status == ApplyLogStatus::kRepeat;
      break;
    case ApplyLogStatus::kNotOpen:
      r.outcome = Outcome::kNotOpen;
      break;
    case ApplyLogStatus::kClosed:
      r.outcome = Outcome::kClosed;
      break;
    case ApplyLogStatus::kFull:
      r.outcome = Outcome::kApplicationsFull;
      break;
    case ApplyLogStatus::kOverloaded:
      r.outcome = Outcome::kOverloaded;
      break;
    case ApplyLogStatus::kUnavailable:
      r.outcome = Outcome::kLogUnavailable;
      break;
  }
  on_apply_done(r);  // `this` may be gone after this line
}

void ClaimEngine::get_application(ApplicationLookupOp& op) {
  auto fail = [&op](Outcome o, const char* field = nullptr) {
    ApplicationResult r;
    r.outcome = o;
    r.field = field;
    op.on_application_done(r);
  };
  if (!id_is_valid(op.campaign_id)) return fail(Outcome::kInvalidArgument, "campaign_id");
  if (!id_is_valid(op.member_id)) return fail(Outcome::kInvalidArgument, "member_id");
  const CampaignRuntime* c = find_campaign(op.campaign_id);
  if (c == nullptr) return fail(Outcome::kCampaignNotFound);
  if (c->spec().mode != CampaignMode::kApplyThenDraw) return fail(Outcome::kWrongMode);
  if (!c->seed_set_.load(std::memory_order_acquire)) return fail(Outcome::kLogUnavailable);
  op.seed_key_ = &c->seed_key_;  // written once, before the release store
  log_.find_application(c->spec(), op.member_id, op);
}

void ApplicationLookupOp::on_application_found(LookupStatus status,
                                               const ApplicationEntry& application,
                                               ApplicationState state, VoucherPtr voucher) {
  ApplicationResult r;
  switch (status) {
    case LookupStatus::kFound:
      r.outcome = Outcome::kOk;
      r.application = application;
      r.state = state;
      r.voucher = std::move(voucher);
      if (state != ApplicationState::kPending) {
        std::string scratch;
        r.proof = "rank HMAC-SHA256 " +
                  to_hex(apply_rank(*seed_key_, campaign_id, application.member_id, scratch));
      }
      break;
    case LookupStatus::kNotFound:
      r.outcome = Outcome::kApplicationNotFound;
      break;
    case LookupStatus::kUnavailable:
      r.outcome = Outcome::kLogUnavailable;
      break;
  }
  on_application_done(r);  // `this` may be gone after this line
}

StoreResult<AllocationRun> ClaimEngine::allocate(std::string_view campaign_id,
                                                 std::string_view replica_id,
                                                 const AllocationOptions& options) {
  CampaignRuntime* c = find_mutable(campaign_id);
  if (c == nullptr || c->spec().mode != CampaignMode::kApplyThenDraw) {
    return store_unsupported("campaign \"" + std::string(campaign_id) +
                             "\" is not an APPLY_THEN_DRAW campaign this replica serves");
  }
  const CampaignSpec& spec = c->spec();
  AllocationRun run;
  if (clock_.now_us() < spec.allocation_at_us) return run;  // kTooEarly
  // Two calls at once under one replica id would share its turn, and each
  // take the other's refused step for its own, landed.
  if (c->allocating_.exchange(true, std::memory_order_acquire)) {
    run.result = AllocationRun::Result::kBusy;
    return run;
  }
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag.store(false, std::memory_order_release); }
  } release{c->allocating_};
  const std::optional<LotterySeed> seed = c->seed();
  if (!seed) return store_unavailable("campaign \"" + spec.id + "\": its seed is not settled");

  // 1. The turn.
  auto taken = log_.take_allocation(spec, replica_id);
  if (!taken) return std::unexpected(std::move(taken.error()));
  AllocationTurn turn = std::move(*taken);
  switch (turn.kind) {
    case AllocationTurn::Kind::kTooEarly:
      return run;
    case AllocationTurn::Kind::kBusy:
      run.result = AllocationRun::Result::kBusy;
      return run;
    case AllocationTurn::Kind::kDone:
      c->allocation_done_.store(true, std::memory_order_release);
      run.result = AllocationRun::Result::kDone;
      return run;
    case AllocationTurn::Kind::kTaken:
      break;
  }
  auto bad = [&spec](const std::string& what) {
    return store_bad_reply("campaign \"" + spec.id + "\": " + what + "; the allocation stops");
  };

  // 2. The frozen applications, checked as allocate() requires them.
  auto read = log_.read_applications(spec, turn);
  if (!read) return std::unexpected(std::move(read.error()));
  const std::vector<ApplicationEntry>& applications = *read;
  run.applications = std::ssize(applications);
  if (run.applications != turn.total) {
    return bad("the store holds " + std::to_string(run.applications) + " applications, not the " +
               std::to_string(turn.total) + " it froze");
  }
  {
    absl::flat_hash_set<std::string_view> members;
    for (const ApplicationEntry& a : applications) {
      if (!members.insert(a.member_id).second) {
        return bad("member \"" + a.member_id + "\" applied twice");
      }
      for (std::uint32_t sku : a.preferred) {
        if (sku >= spec.skus.size()) {
          return bad("member \"" + a.member_id + "\" prefers a SKU the campaign does not have");
        }
      }
    }
  }

  // 3. The allocation, and where the store says it stands: the stock left
  // after the positions written so far must be what the allocation leaves.
  const Allocation allocation = voucherd::allocate(spec, *seed, applications);
  const std::int64_t total = turn.total;
  if (turn.next < 0 || turn.next > total || turn.stock_left.size() != spec.skus.size()) {
    return bad("the store's cursor or stock does not fit the campaign");
  }
  std::vector<std::int64_t> left;
  for (const SkuSpec& s : spec.skus) left.push_back(s.stock);
  std::int64_t last_win = -1;
  for (std::int64_t p = 0; p < total; ++p) {
    const std::uint32_t sku = allocation.sku_of[allocation.order[p]];
    if (sku == kNoSku) continue;
    last_win = p;
    if (p < turn.next) --left[sku];
  }
  if (left != turn.stock_left) {
    return bad("the stock the store left after rank position " + std::to_string(turn.next) +
               " is not the allocation's");
  }

  // The turn again, now that the applications are read and ranked (which
  // may take seconds): a step of a turn that passed on meanwhile would only
  // be refused, and the next owner would rank them all again.
  auto renewed = log_.take_allocation(spec, replica_id);
  if (!renewed) return std::unexpected(std::move(renewed.error()));
  if (renewed->kind != AllocationTurn::Kind::kTaken || renewed->owner != turn.owner ||
      renewed->epoch != turn.epoch || renewed->next != turn.next) {
    run.result = renewed->kind == AllocationTurn::Kind::kDone ? AllocationRun::Result::kDone
                                                              : AllocationRun::Result::kLost;
    if (renewed->kind == AllocationTurn::Kind::kDone) {
      c->allocation_done_.store(true, std::memory_order_release);
    }
    return run;
  }

  // 4. Steps of at most batch_max winners, in rank order. The step that
  // passes the last winner runs to the end: the rest are not selected.
  const std::size_t batch_max =
      std::clamp<std::size_t>(options.batch_max, 1, limits::kAllocationBatchMax);
  std::int64_t from = turn.next;
  for (;;) {
    std::vector<AllocatedVoucher> winners;
    std::int64_t to = from;
    while (to < total && to <= last_win && winners.size() < batch_max) {
      const std::uint32_t i = allocation.order[to];
      const std::uint32_t sku = allocation.sku_of[i];
      if (sku != kNoSku) {
        // Issued now, with no request id: the allocation, not a press, issued it.
        winners.push_back(
            {sku, mint_voucher(*c, sku, applications[i].member_id, {}, clock_.now_us())});
      }
      ++to;
    }
    if (to > last_win) to = total;

    // 5. The step, sent again as it was (the same vouchers) while the store
    // does not answer and the caller wants to wait.
    for (int attempt = 1;; ++attempt) {
      auto after = log_.write_allocation(spec, turn, from, to, winners);
      if (!after) {
        if (after.error().kind == StoreErrorKind::kUnavailable && options.retry_wait &&
            options.retry_wait(attempt)) {
          continue;
        }
        return std::unexpected(std::move(after.error()));
      }
      if (after->owner == turn.owner && after->epoch == turn.epoch && after->next == to) break;
      run.result = AllocationRun::Result::kLost;  // another replica has the turn now
      return run;
    }
    for (const AllocatedVoucher& w : winners) {
      c->count_issued(w.sku, 1);
      remember_held(*c, w.voucher);
    }
    run.written += to - from;
    run.selected += std::ssize(winners);
    turn.next = to;
    from = to;
    if (to == total) break;
    if (options.keep_going && !options.keep_going()) {
      run.result = AllocationRun::Result::kStopped;
      return run;
    }
  }
  c->allocated_here_at_us_.store(clock_.now_us(), std::memory_order_relaxed);
  c->allocation_done_.store(true, std::memory_order_release);
  run.result = AllocationRun::Result::kDone;
  return run;
}

StoreResult<ApplicationCounts> ClaimEngine::application_counts(const CampaignRuntime& c) {
  auto counts = log_.application_counts(c.spec());
  if (counts && counts->allocation == ApplicationCounts::Allocation::kDone &&
      counts->allocated_at_us == 0) {
    counts->allocated_at_us = c.allocated_here_at_us_.load(std::memory_order_relaxed);
  }
  return counts;
}

}  // namespace voucherd
