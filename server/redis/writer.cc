// The writer: the queues every claim, look-up, redemption, cancellation and
// draw waits in; the writer thread, which takes everything queued at once and
// sends it as one pipeline; and the batch, one part per kind of request.
#include <algorithm>
#include <span>
#include <thread>
#include <typeinfo>

#include "engine/check.h"
#include "engine/limits.h"
#include "server/base/bug.h"
#include "server/base/log.h"
#include "server/redis/apply_log.h"
#include "server/redis/claim_log_internal.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/script_replies.h"
#include "server/redis/scripts.h"

namespace voucherd::redis {

using internal::Clock;

namespace {

// An idle writer connection is pinged this often, so a lost Redis is
// noticed with no traffic (and readiness follows within a second).
constexpr auto kWriterIdlePing = std::chrono::milliseconds(250);

// Follow-ups. In Redis Cluster a script may touch only the keys it declares,
// so a script that finds it needs a key it was not given (a held voucher's
// record, a member's allowance, records of codes it did not expect) writes
// nothing and says which; the request goes into the writer's queue again,
// declaring that key, and is answered from the next batch. The queues'
// element types are redis_claim_log.h's: the extra state rides in an adapter
// of the request's completion, which forwards the answer and deletes itself
// (every completion is called exactly once). The parts recognise an adapter
// by its type.
//
// Follow-ups of one request, at most: each one needs the store to change
// between two batches (a held voucher cancelled and claimed again, a member
// given another voucher), so a request that keeps missing is answered
// UNAVAILABLE rather than chased.
constexpr int kFollowUpsMax = 4;

// A claim whose member holds `held_code`, sent again declaring that
// voucher's record key.
struct HeldClaim final : ClaimLogWrite {
  HeldClaim(ClaimLogWrite& original, std::string code)
      : claim(original), held_code(std::move(code)) {
    voucher = original.voucher;
    per_member_limit = original.per_member_limit;
  }
  void on_logged(LogStatus status, VoucherPtr held) override {
    ClaimLogWrite& done = claim;
    delete this;
    done.on_logged(status, std::move(held));
  }
  ClaimLogWrite& claim;
  std::string held_code;
  int follow_ups = 1;
};

// A cancellation sent again declaring the allowance key of the voucher's
// member (a record's member never changes).
struct MemberKnownCancellation final : VoucherCancellation {
  MemberKnownCancellation(VoucherCancellation& original, std::string member)
      : done(original), member_id(std::move(member)) {}
  void on_cancel_logged(CancelStatus status, VoucherPtr voucher) override {
    VoucherCancellation& d = done;
    delete this;
    d.on_cancel_logged(status, std::move(voucher));
  }
  VoucherCancellation& done;
  std::string member_id;
  int follow_ups = 1;
};

// A member look-up with the record keys it declares: at first the codes the
// engine knows the member holds, after a first answer every code their
// allowance holds. Made by find_member_vouchers(), so it knows its log.
struct DeclaredCodesLookup final : MemberVouchersLookup {
  DeclaredCodesLookup(RedisClaimLog& l, MemberVouchersLookup& original, std::vector<std::string> c)
      : log(l), done(original), codes(std::move(c)) {}
  void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) override {
    MemberVouchersLookup& d = done;
    delete this;
    d.on_member_vouchers(status, std::move(vouchers));
  }
  RedisClaimLog& log;
  MemberVouchersLookup& done;
  std::vector<std::string> codes;
  int follow_ups = 0;
};

}  // namespace

// ------------------------------------------------------------------ queues

void RedisClaimLog::append_claim(ClaimLogWrite& write) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && claims_.size() < queue_max_) {
      claims_.push_back(&write);
      queue_depth_.store(claims_.size(), std::memory_order_relaxed);
      queued = true;
    }
  }
  if (!queued) {
    // Full queue: shed now rather than let memory grow (RESOURCE_EXHAUSTED).
    write.on_logged(LogStatus::kOverloaded, nullptr);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::append_draw(DrawLogWrite& write) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && claims_.size() + draws_.size() < queue_max_) {
      draws_.push_back(&write);
      queued = true;
    }
  }
  if (!queued) {
    write.on_draw_logged(DrawLogStatus::kOverloaded, DrawEntry{}, nullptr, 0);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::append_application(ApplicationLogWrite& write) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    // Applications write, as claims and draws do: one bound for the three.
    if (!stopping_ && claims_.size() + draws_.size() + applications_.size() < queue_max_) {
      applications_.push_back(&write);
      queued = true;
    }
  }
  if (!queued) {
    write.on_application_logged(ApplyLogStatus::kOverloaded, ApplicationEntry{});
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::find_application(const CampaignSpec& spec, std::string_view member_id,
                                     ApplicationLookup& lookup) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && application_lookups_.size() < queue_max_) {
      application_lookups_.push_back(
          ApplicationLookupRequest{&spec, std::string(member_id), &lookup, {}, 0});
      queued = true;
    }
  }
  if (!queued) {
    lookup.on_application_found(LookupStatus::kUnavailable, ApplicationEntry{},
                                ApplicationState::kPending, nullptr);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::find_voucher(std::string_view campaign_id, std::string_view code,
                                 VoucherLookup& lookup) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && lookups_.size() < queue_max_) {
      lookups_.push_back(Lookup{std::string(campaign_id), std::string(code), &lookup});
      queued = true;
    }
  }
  if (!queued) {
    lookup.on_found(LookupStatus::kUnavailable, nullptr);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::redeem(std::string_view campaign_id, std::string_view code,
                           const RedeemRequestView& request, VoucherRedemption& done) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && redemptions_.size() < queue_max_) {
      redemptions_.push_back(Redemption{std::string(campaign_id), std::string(code),
                                        std::string(request.site_id),
                                        std::string(request.request_id), request.now_us, &done});
      queued = true;
    }
  }
  if (!queued) {
    done.on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::cancel(std::string_view campaign_id, std::string_view code,
                           const CancelRequestView& request, VoucherCancellation& done) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && cancellations_.size() < queue_max_) {
      cancellations_.push_back(
          Cancellation{std::string(campaign_id), std::string(code), request, &done});
      queued = true;
    }
  }
  if (!queued) {
    done.on_cancel_logged(CancelStatus::kUnavailable, nullptr);
    return;
  }
  wake_.notify_one();
}

void RedisClaimLog::find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                                         std::span<const std::string> known_codes,
                                         MemberVouchersLookup& done) {
  // Redis's record of the member is complete; this replica's index is not.
  // The codes it knows are declared (their records are read in the same
  // step); codes it does not know cost a second script call.
  auto* lookup = new DeclaredCodesLookup(
      *this, done, std::vector<std::string>(known_codes.begin(), known_codes.end()));
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && member_lookups_.size() < queue_max_) {
      member_lookups_.push_back(
          MemberLookup{std::string(campaign_id), std::string(member_id), lookup});
      queued = true;
    }
  }
  if (!queued) {
    lookup->on_member_vouchers(LookupStatus::kUnavailable, {});
    return;
  }
  wake_.notify_one();
}

bool RedisClaimLog::queues_empty() const {
  return claims_.empty() && lookups_.empty() && redemptions_.empty() && cancellations_.empty() &&
         member_lookups_.empty() && draws_.empty() && applications_.empty() &&
         application_lookups_.empty();
}

// ------------------------------------------------------------------ writer thread

void RedisClaimLog::writer_loop() {
  keep_writer_alive();  // connect at once, not at the first claim
  Batch batch;
  // Moves up to limits::kClaimLogBatchMax items from `from` to `to`.
  auto take = [](auto& from, auto& to) {
    const std::size_t n = std::min(from.size(), limits::kClaimLogBatchMax);
    for (std::size_t i = 0; i < n; ++i) to.push_back(std::move(from[i]));
    from.erase(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(n));
  };
  for (;;) {
    {
      std::unique_lock lock(mu_);
      // Draws whose guesses were wrong go out again at once. With nothing
      // to write, the writer wakes now and then to watch its connection.
      const bool work = wake_.wait_for(lock, kWriterIdlePing, [&] {
        return stopping_ || !queues_empty() || !draw_retries_.empty();
      });
      if (queues_empty() && draw_retries_.empty()) {
        if (stopping_) return;  // stopping, and drained
        lock.unlock();
        if (!work) keep_writer_alive();
        continue;
      }
      take(claims_, batch.claims);
      batch.draws = std::move(draw_retries_);
      draw_retries_.clear();
      const std::size_t n = std::min(draws_.size(), limits::kClaimLogBatchMax);
      for (std::size_t i = 0; i < n; ++i) {
        DrawAttempt d;
        d.write = draws_[i];
        batch.draws.push_back(std::move(d));
      }
      draws_.erase(draws_.begin(), draws_.begin() + static_cast<std::ptrdiff_t>(n));
      take(lookups_, batch.lookups);
      take(redemptions_, batch.redemptions);
      take(cancellations_, batch.cancellations);
      take(member_lookups_, batch.member_lookups);
      take(applications_, batch.applications);
      take(application_lookups_, batch.application_lookups);
      queue_depth_.store(claims_.size(), std::memory_order_relaxed);
    }
    const auto started = std::chrono::steady_clock::now();
    write_batch(batch);
    writer_last_used_ = std::chrono::steady_clock::now();
    write_latency_ns_.observe(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(writer_last_used_ - started).count()));
    if (!batch.claims.empty()) batch_claims_.observe(batch.claims.size());
    batch.claims.clear();
    batch.lookups.clear();
    batch.redemptions.clear();
    batch.cancellations.clear();
    batch.member_lookups.clear();
    batch.draws.clear();
    batch.applications.clear();
    batch.application_lookups.clear();
  }
}

void RedisClaimLog::keep_writer_alive() {
  if (!ensure_writer_connection()) return;
  const auto now = Clock::now();
  if (now - writer_last_used_ < kWriterIdlePing) return;
  writer_last_used_ = now;
  auto pong = writer_link_->ping();
  if (!pong) {
    writer_link_.reset();
    writer_up_.store(false, std::memory_order_release);
    note_link(pong.error());
  }
}

bool RedisClaimLog::ensure_writer_connection() {
  // A connection the server closed while it sat idle (Redis restarted) is
  // replaced before anything is written on it.
  // So is one to a server that is no longer the primary (a failover).
  if (writer_link_ && writer_link_->usable()) return true;
  writer_link_.reset();
  const auto now = Clock::now();
  if (now < next_connect_) return false;
  auto link = open_link();
  if (!link) {
    backoff_ = std::min(internal::kBackoffMax, backoff_ * 2);
    next_connect_ = now + internal::jittered(backoff_);
    writer_up_.store(false, std::memory_order_release);
    note_link(link.error());
    return false;
  }
  writer_link_ = std::move(*link);
  writer_last_used_ = now;
  backoff_ = internal::kBackoffMin;
  writer_up_.store(true, std::memory_order_release);
  note_link("");
  return true;
}

// ------------------------------------------------------------------ the batch

// A batch goes out as one pipeline in parts, one per kind of request, in
// this order. Each part builds its commands (build), and answers its
// requests from its own slice of the replies (answer), or all of them
// UNAVAILABLE when the pipeline failed (fail). `script` is the script its
// commands call (nullptr for plain commands), loaded again on NOSCRIPT.
// Writer thread only.

struct RedisClaimLog::ClaimsPart {
  RedisClaimLog& log;
  const std::vector<ClaimLogWrite*>& writes;
  const Script* script = &claim_script();
  std::size_t first = 0;  // the part's slice of the pipeline
  std::size_t count = 0;
  // One script call per campaign, claims in arrival order within it.
  // The campaign id is copied: a write's record may be freed as soon as its
  // claim is answered, while later claims of the group are still decoded.
  std::vector<std::pair<std::string, std::vector<ClaimLogWrite*>>> groups = {};

  void build(std::vector<Command>& out) {
    for (ClaimLogWrite* w : writes) {
      const std::string_view cid = w->voucher->campaign_id();
      auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == cid; });
      if (it == groups.end()) {
        groups.emplace_back(std::string(cid), std::vector<ClaimLogWrite*>{});
        it = groups.end() - 1;
      }
      it->second.push_back(w);
    }
    for (const auto& [cid, group] : groups) {
      const CampaignKeys campaign(cid);
      std::vector<std::string> keys{campaign.issued(), campaign.leases(), campaign.leased(),
                                    campaign.expiring(), campaign.holders()};
      // Every claim of a campaign carries the campaign's per-member limit.
      const std::int32_t limit = group.front()->per_member_limit;
      // The fourth: how many held voucher keys end the keys (0 but for
      // follow-ups).
      std::vector<std::string> args{log.options_.replica_id, campaign.voucher_prefix(),
                                    std::to_string(limit), "0"};
      keys.reserve(5 + 2 * group.size());
      args.reserve(4 + 4 * group.size());
      std::vector<std::string> held_keys;
      for (const ClaimLogWrite* w : group) {
        const VoucherRecord& v = *w->voucher;
        keys.push_back(campaign.member(v.member_id()));
        keys.push_back(campaign.voucher(v.code().view()));
        args.push_back(v.sku_id());
        args.push_back(encode_voucher(v));
        args.push_back(expiry_bucket(v.expires_at_us()));
        if (limit > 1) args.emplace_back(v.request_id());
        if (typeid(*w) == typeid(HeldClaim)) {
          held_keys.push_back(campaign.voucher(static_cast<const HeldClaim*>(w)->held_code));
        }
      }
      if (!held_keys.empty()) {
        args[3] = std::to_string(held_keys.size());
        keys.insert(keys.end(), std::make_move_iterator(held_keys.begin()),
                    std::make_move_iterator(held_keys.end()));
      }
      out.push_back(Connection::evalsha(*script, keys, args));
    }
  }

  void answer(std::span<const Reply> slice) {
    VOUCHERD_DCHECK(slice.size() == groups.size(), "one claim script call per campaign");
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const Reply& r = slice[g];
      const auto& group = groups[g].second;
      if (r.type != Reply::Type::kArray || r.elements.size() != group.size()) {
        log::warn("claim script failed: " + r.str);
        log.drop_unconfirmed(group);
        for (ClaimLogWrite* w : group) w->on_logged(LogStatus::kUnavailable, nullptr);
        continue;
      }
      for (std::size_t i = 0; i < group.size(); ++i) {
        const Reply& one = r.elements[i];
        if (one.type == Reply::Type::kInteger && one.integer == replies::claim::kWritten) {
          group[i]->on_logged(LogStatus::kWritten, nullptr);
          continue;
        }
        if (one.type == Reply::Type::kInteger && one.integer == replies::claim::kFenced) {
          // Fenced: nothing written. The SKU's local units go first, so the
          // claim, waiting again, cannot take another unit that is not ours.
          log.drop_fenced(*group[i]);
          group[i]->on_logged(LogStatus::kFenced, nullptr);
          continue;
        }
        if (one.type == Reply::Type::kArray &&
            one.elements.size() == replies::claim::kHeldCodeOnly &&
            one.elements[0].type == Reply::Type::kString && !one.elements[0].str.empty()) {
          follow_up(*group[i], one.elements[0].str);
          continue;
        }
        VoucherPtr held;
        if (one.type == Reply::Type::kArray &&
            one.elements.size() == replies::claim::kHeldWithRecord) {
          held = decode_voucher(groups[g].first, one.elements[0].str, one.elements[1].str);
        }
        // A held code whose record is missing would mean a corrupted store:
        // refuse to guess, and let the caller retry.
        if (!held) log.drop_unconfirmed({group[i]});
        group[i]->on_logged(held ? LogStatus::kDuplicate : LogStatus::kUnavailable, held);
      }
    }
  }

  // The member holds `code`, whose record the script was not given: the
  // claim goes out again declaring it. The script then reads the record in
  // the same atomic step as the allowance, so the answer is the record as
  // of that step (a held voucher redeemed meanwhile answers redeemed); and
  // if the allowance no longer holds that code (it was cancelled and freed
  // meanwhile), the claim is decided afresh, as a press arriving then would
  // be. The first call wrote nothing for this claim, so deciding it again
  // cannot issue twice.
  void follow_up(ClaimLogWrite& w, const std::string& code) {
    HeldClaim* again = nullptr;
    if (typeid(w) == typeid(HeldClaim)) {
      again = static_cast<HeldClaim*>(&w);
      if (++again->follow_ups > kFollowUpsMax) {
        log::warn("a claim's held voucher kept changing; answering it UNAVAILABLE");
        log.drop_unconfirmed({&w});
        w.on_logged(LogStatus::kUnavailable, nullptr);
        return;
      }
      again->held_code = code;
    } else {
      again = new HeldClaim(w, code);
    }
    // The writer thread's own queue: it looks at it again before waiting.
    // Not bounded by queue_max_: at most one batch's claims come back.
    std::lock_guard lock(log.mu_);
    log.claims_.push_back(again);
  }

  void fail() {
    // The writes may or may not have been applied: UNAVAILABLE (a retry is
    // safe: it returns the voucher if the claim did land), and their units
    // are kept as dropped.
    log.drop_unconfirmed(writes);
    for (ClaimLogWrite* w : writes) w->on_logged(LogStatus::kUnavailable, nullptr);
  }
};

struct RedisClaimLog::LookupsPart {
  const std::vector<Lookup>& lookups;
  const Script* script = nullptr;  // plain GETs
  std::size_t first = 0;
  std::size_t count = 0;

  void build(std::vector<Command>& out) const {
    for (const Lookup& l : lookups) {
      out.push_back({"GET", CampaignKeys(l.campaign_id).voucher(l.code)});
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == lookups.size(), "one GET per look-up");
    for (std::size_t i = 0; i < lookups.size(); ++i) {
      const Reply& r = slice[i];
      VoucherPtr v = r.type == Reply::Type::kString
                         ? decode_voucher(lookups[i].campaign_id, lookups[i].code, r.str)
                         : nullptr;
      const LookupStatus status = v              ? LookupStatus::kFound
                                  : r.is_error() ? LookupStatus::kUnavailable
                                                 : LookupStatus::kNotFound;
      lookups[i].lookup->on_found(status, std::move(v));
    }
  }

  void fail() const {
    for (const Lookup& l : lookups) l.lookup->on_found(LookupStatus::kUnavailable, nullptr);
  }
};

struct RedisClaimLog::RedemptionsPart {
  const std::vector<Redemption>& redemptions;
  const Script* script = &redeem_script();
  std::size_t first = 0;
  std::size_t count = 0;

  void build(std::vector<Command>& out) const {
    for (const Redemption& r : redemptions) {
      out.push_back(redeem_command(kStoreKeyPrefix, r.campaign_id, r.code,
                                   RedeemRequestView{r.site_id, r.request_id, r.now_us},
                                   /*track_expiring=*/true));
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == redemptions.size(), "one redeem script call per redemption");
    for (std::size_t i = 0; i < redemptions.size(); ++i) {
      const Redemption& r = redemptions[i];
      RedeemReply answer = parse_redeem_reply(r.campaign_id, r.code, slice[i]);
      r.done->on_redeem_logged(answer.status, std::move(answer.voucher));
    }
  }

  void fail() const {
    // A redemption whose answer was lost may or may not have happened; a
    // retry with the same request_id tells.
    for (const Redemption& r : redemptions) {
      r.done->on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
    }
  }
};

struct RedisClaimLog::CancellationsPart {
  RedisClaimLog& log;
  const std::vector<Cancellation>& cancellations;
  const Script* script = &cancel_script();
  std::size_t first = 0;
  std::size_t count = 0;

  void build(std::vector<Command>& out) const {
    for (const Cancellation& x : cancellations) {
      const auto* known = typeid(*x.done) == typeid(MemberKnownCancellation)
                              ? static_cast<const MemberKnownCancellation*>(x.done)
                              : nullptr;
      out.push_back(cancel_command(x.campaign_id, x.code, x.request,
                                   known != nullptr ? known->member_id : std::string_view()));
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == cancellations.size(),
                    "one cancel script call per cancellation");
    for (std::size_t i = 0; i < cancellations.size(); ++i) {
      const Cancellation& x = cancellations[i];
      CancelReply answer = parse_cancel_reply(x.campaign_id, x.code, slice[i]);
      if (!answer.member_key_of.empty() && follow_up(x, std::move(answer.member_key_of))) continue;
      if (answer.status == CancelStatus::kCancelled && x.request.return_unit)
        log.unit_returned(x.campaign_id, x.request.sku_index);
      x.done->on_cancel_logged(answer.status, std::move(answer.voucher));
    }
  }

  // The first call of a cancellation does not know the voucher's member;
  // when the allowance is to be freed, the script names the member and
  // writes nothing, and the cancellation goes out again declaring that
  // member's allowance key. False (answered UNAVAILABLE by the caller) after
  // too many follow-ups.
  bool follow_up(const Cancellation& x, std::string member_id) const {
    MemberKnownCancellation* again = nullptr;
    if (typeid(*x.done) == typeid(MemberKnownCancellation)) {
      again = static_cast<MemberKnownCancellation*>(x.done);
      if (++again->follow_ups > kFollowUpsMax) {
        log::warn("a cancellation's member did not match its record; answering it UNAVAILABLE");
        return false;
      }
      again->member_id = std::move(member_id);
    } else {
      again = new MemberKnownCancellation(*x.done, std::move(member_id));
    }
    // Not bounded by queue_max_: at most one batch's cancellations come back.
    std::lock_guard lock(log.mu_);
    log.cancellations_.push_back(Cancellation{x.campaign_id, x.code, x.request, again});
    return true;
  }

  void fail() const {
    for (const Cancellation& x : cancellations) {
      x.done->on_cancel_logged(CancelStatus::kUnavailable, nullptr);
    }
  }
};

struct RedisClaimLog::MemberLookupsPart {
  const std::vector<MemberLookup>& member_lookups;
  const Script* script = &member_vouchers_script();
  std::size_t first = 0;
  std::size_t count = 0;

  // Every queued look-up is made by find_member_vouchers(), with the codes
  // it declares.
  static DeclaredCodesLookup* declared(const MemberLookup& m) {
    return typeid(*m.done) == typeid(DeclaredCodesLookup)
               ? static_cast<DeclaredCodesLookup*>(m.done)
               : nullptr;
  }

  void build(std::vector<Command>& out) const {
    for (const MemberLookup& m : member_lookups) {
      const DeclaredCodesLookup* d = declared(m);
      out.push_back(member_vouchers_command(
          m.campaign_id, m.member_id,
          d != nullptr ? std::span<const std::string>(d->codes) : std::span<const std::string>()));
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == member_lookups.size(),
                    "one member vouchers script call per look-up");
    for (std::size_t i = 0; i < member_lookups.size(); ++i) {
      const MemberLookup& m = member_lookups[i];
      auto found = parse_member_vouchers(m.campaign_id, slice[i]);
      if (found && found->listed) {
        m.done->on_member_vouchers(LookupStatus::kFound, std::move(found->vouchers));
        continue;
      }
      if (found && follow_up(m, std::move(found->codes))) continue;
      m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
    }
  }

  // The allowance holds codes the call did not declare: it goes out again
  // declaring every code the allowance held, and the script reads the
  // allowance and the records again in one step (so the list is one
  // moment's, as before). False after too many follow-ups (the member's
  // vouchers kept changing).
  static bool follow_up(const MemberLookup& m, std::vector<std::string> codes) {
    DeclaredCodesLookup* d = declared(m);
    if (d == nullptr || ++d->follow_ups > kFollowUpsMax) {
      log::warn("a member's vouchers kept changing; answering the look-up UNAVAILABLE");
      return false;
    }
    d->codes = std::move(codes);
    // Not bounded by queue_max_: at most one batch's look-ups come back.
    std::lock_guard lock(d->log.mu_);
    d->log.member_lookups_.push_back(m);
    return true;
  }

  void fail() const {
    for (const MemberLookup& m : member_lookups) {
      m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
    }
  }
};

struct RedisClaimLog::DrawsPart {
  RedisClaimLog& log;
  std::vector<DrawAttempt>& draws;
  const Script* script = &draw_script();
  std::size_t first = 0;
  std::size_t count = 0;
  // One script call per campaign, in arrival order (retries first).
  std::vector<std::pair<const CampaignSpec*, std::vector<DrawAttempt>>> groups = {};

  void build(std::vector<Command>& out) {
    for (DrawAttempt& d : draws) {
      if (d.draw_number == 0) log.prepare_draw(d);  // a new draw (retries are prepared)
      const CampaignSpec* spec = d.write->draw.spec;
      auto it =
          std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == spec; });
      if (it == groups.end()) {
        groups.emplace_back(spec, std::vector<DrawAttempt>{});
        it = groups.end() - 1;
      }
      it->second.push_back(d);
    }
    for (const auto& [spec, group] : groups) {
      out.push_back(draw_command(*spec, group, log.lottery_views_[spec->id].drawn_chunk));
    }
  }

  void answer(std::span<const Reply> slice) {
    VOUCHERD_DCHECK(slice.size() == groups.size(), "one draw script call per campaign");
    for (std::size_t g = 0; g < groups.size(); ++g) {
      log.complete_draws(*groups[g].first, groups[g].second, slice[g]);
    }
  }

  void fail() const {
    // A draw whose answer was lost may or may not be logged; a retry with
    // the same request_id tells.
    for (const DrawAttempt& d : draws) {
      d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
    }
  }
};

struct RedisClaimLog::ApplicationsPart {
  const std::vector<ApplicationLogWrite*>& writes;
  const Script* script = &apply_script();
  std::size_t first = 0;
  std::size_t count = 0;
  // One script call per campaign, in arrival order within it.
  std::vector<std::pair<const CampaignSpec*, std::vector<ApplicationLogWrite*>>> groups = {};

  void build(std::vector<Command>& out) {
    for (ApplicationLogWrite* w : writes) {
      const CampaignSpec* spec = w->application.spec;
      auto it =
          std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == spec; });
      if (it == groups.end()) {
        groups.emplace_back(spec, std::vector<ApplicationLogWrite*>{});
        it = groups.end() - 1;
      }
      it->second.push_back(w);
    }
    for (const auto& [spec, group] : groups) {
      out.push_back(apply_command(*spec, group, limits::kApplicationsPerCampaignMax));
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == groups.size(), "one apply script call per campaign");
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const auto& group = groups[g].second;
      // The group's answers are all read before its first completion runs:
      // a completion may free its request, whose views the reading uses
      // (groups share no request).
      auto decided = parse_apply_reply(*groups[g].first, group, slice[g]);
      if (!decided) {
        // Maybe recorded, maybe not: a retry with the same request_id tells.
        log::warn(decided.error());
        for (ApplicationLogWrite* w : group) {
          w->on_application_logged(ApplyLogStatus::kUnavailable, ApplicationEntry{});
        }
        continue;
      }
      for (std::size_t i = 0; i < group.size(); ++i) {
        group[i]->on_application_logged((*decided)[i].status, (*decided)[i].stored);
      }
    }
  }

  void fail() const {
    for (ApplicationLogWrite* w : writes) {
      w->on_application_logged(ApplyLogStatus::kUnavailable, ApplicationEntry{});
    }
  }
};

struct RedisClaimLog::ApplicationLookupsPart {
  RedisClaimLog& log;
  const std::vector<ApplicationLookupRequest>& lookups;
  const Script* script = &application_script();
  std::size_t first = 0;
  std::size_t count = 0;

  void build(std::vector<Command>& out) const {
    for (const ApplicationLookupRequest& l : lookups) {
      out.push_back(application_command(*l.spec, l.member_id, l.code));
    }
  }

  void answer(std::span<const Reply> slice) const {
    VOUCHERD_DCHECK(slice.size() == lookups.size(), "one application script call per look-up");
    for (std::size_t i = 0; i < lookups.size(); ++i) {
      const ApplicationLookupRequest& l = lookups[i];
      auto found = parse_application_reply(*l.spec, l.member_id, slice[i]);
      if (!found) {
        log::warn(found.error());
        unavailable(l);
        continue;
      }
      switch (found->kind) {
        case ApplicationReply::Kind::kNotFound:
          l.done->on_application_found(LookupStatus::kNotFound, ApplicationEntry{},
                                       ApplicationState::kPending, nullptr);
          break;
        case ApplicationReply::Kind::kFound:
          l.done->on_application_found(LookupStatus::kFound, found->application, found->state,
                                       std::move(found->voucher));
          break;
        case ApplicationReply::Kind::kRecordKey:
          follow_up(l, std::move(found->code));
          break;
      }
    }
  }

  // The member was selected, and the call did not declare their voucher's
  // record key: it goes out again declaring it, and the script reads the
  // application and the record in one step. A member's code never changes
  // once written, so one follow-up answers; more would mean a store that
  // changes under us, answered UNAVAILABLE.
  void follow_up(const ApplicationLookupRequest& l, std::string code) const {
    if (l.follow_ups >= kFollowUpsMax) {
      log::warn("a member's allocated voucher kept changing; answering the look-up UNAVAILABLE");
      return unavailable(l);
    }
    // Not bounded by queue_max_: at most one batch's look-ups come back.
    std::lock_guard lock(log.mu_);
    log.application_lookups_.push_back(
        ApplicationLookupRequest{l.spec, l.member_id, l.done, std::move(code), l.follow_ups + 1});
  }

  static void unavailable(const ApplicationLookupRequest& l) {
    l.done->on_application_found(LookupStatus::kUnavailable, ApplicationEntry{},
                                 ApplicationState::kPending, nullptr);
  }

  void fail() const {
    for (const ApplicationLookupRequest& l : lookups) unavailable(l);
  }
};

void RedisClaimLog::write_batch(Batch& batch) {
  ClaimsPart claims{*this, batch.claims};
  LookupsPart lookups{batch.lookups};
  RedemptionsPart redemptions{batch.redemptions};
  CancellationsPart cancellations{*this, batch.cancellations};
  MemberLookupsPart member_lookups{batch.member_lookups};
  DrawsPart draws{*this, batch.draws};
  ApplicationsPart applications{batch.applications};
  ApplicationLookupsPart application_lookups{*this, batch.application_lookups};
  // Every part, in the order its commands go out and its requests are answered.
  const auto each_part = [&](auto&& visit) {
    visit(claims);
    visit(lookups);
    visit(redemptions);
    visit(cancellations);
    visit(member_lookups);
    visit(draws);
    visit(applications);
    visit(application_lookups);
  };
  const auto fail_all = [&] { each_part([](auto& part) { part.fail(); }); };
  if (!ensure_writer_connection()) return fail_all();

  std::vector<Command> commands;
  commands.reserve(batch.lookups.size() + batch.redemptions.size() + batch.cancellations.size() +
                   batch.member_lookups.size() + batch.application_lookups.size() + 3);
  each_part([&](auto& part) {
    part.first = commands.size();
    part.build(commands);
    part.count = commands.size() - part.first;
  });

  // Each command's script, for the link to load again where Redis forgot
  // it (plain commands have none).
  std::vector<const Script*> scripts(commands.size(), nullptr);
  each_part([&](const auto& part) {
    std::fill_n(scripts.begin() + static_cast<std::ptrdiff_t>(part.first), part.count, part.script);
  });
  // Acknowledged means replicated, when asked: a batch that writes waits
  // for the replicas (with one primary, a WAIT ends its pipeline, so the
  // confirmation costs no round trip of its own).
  const bool wrote = !batch.claims.empty() || !batch.redemptions.empty() ||
                     !batch.cancellations.empty() || !batch.draws.empty() ||
                     !batch.applications.empty();
  const int min_replicas = wrote ? options_.min_replicas : 0;
  BatchAnswers sent =
      writer_link_->send_batch(std::move(commands), scripts, min_replicas, options_.replica_wait);
  if (sent.replies.size() != scripts.size()) {
    // Link::send_batch answers every command, or fails it.
    VOUCHERD_BUG("a batch's replies do not match its requests");
    return fail_all();
  }
  const bool none_answered =
      !sent.replies.empty() && std::none_of(sent.replies.begin(), sent.replies.end(),
                                            [](const auto& r) { return r.has_value(); });
  if (none_answered) {
    // The link failed (its one primary went away, say). The writes may or
    // may not have been applied: UNAVAILABLE (a retry is safe: it returns
    // the voucher if the claim did land).
    writer_up_.store(false, std::memory_order_release);
    note_link(sent.replies.front().error());
    writer_link_.reset();
    return fail_all();
  }
  // A command without an answer: its server could not be reached, or the
  // connection failed after it was written (it may have run). Its part
  // answers it as an error: UNAVAILABLE, and a claim's unit is kept as
  // dropped (a retry is safe: it returns the voucher if the claim landed).
  std::vector<Reply> answers;
  answers.reserve(sent.replies.size());
  std::string lost;
  for (auto& r : sent.replies) {
    if (r) {
      answers.push_back(std::move(*r));
      continue;
    }
    if (lost.empty()) lost = r.error();
    Reply error;
    error.type = Reply::Type::kError;
    error.str = "UNAVAILABLE " + r.error();
    answers.push_back(std::move(error));
  }
  if (!lost.empty() || writer_link_->broken()) {
    // A lost connection, or READONLY (the server turned into a replica):
    // the next batch goes through a new link, to the primary as found then.
    writer_up_.store(false, std::memory_order_release);
    note_link(lost.empty() ? "Redis answered READONLY: it is a replica now (a failover?)" : lost);
    if (writer_link_->broken()) writer_link_.reset();
  }

  // The batch's writes are answered only once enough replicas have them;
  // if they do not confirm in time, UNAVAILABLE (the writes may stay: a
  // retry returns them).
  if (min_replicas > 0 && !sent.not_replicated.empty()) {
    log::warn("a batch's writes were not confirmed by " + std::to_string(options_.min_replicas) +
                  " replica(s): " + sent.not_replicated + "; answering them UNAVAILABLE",
              {{"min_replicas", options_.min_replicas}});
    const std::span<const Reply> all(answers);
    lookups.answer(all.subspan(lookups.first, lookups.count));
    member_lookups.answer(all.subspan(member_lookups.first, member_lookups.count));
    application_lookups.answer(all.subspan(application_lookups.first, application_lookups.count));
    claims.fail();
    redemptions.fail();
    cancellations.fail();
    draws.fail();
    applications.fail();
    return;
  }

  const std::span<const Reply> all(answers);
  each_part([&](auto& part) { part.answer(all.subspan(part.first, part.count)); });
}

// ------------------------------------------------------------------ draws

void RedisClaimLog::prepare_draw(DrawAttempt& d) {
  const DrawRequestView& v = d.write->draw;
  LotteryView& view = lottery_views_[v.spec->id];
  if (view.remaining.empty()) {
    for (const SkuSpec& s : v.spec->skus) view.remaining.push_back(s.stock);
  }
  if (d.draw_number == 0) {
    // A member this replica has not seen draws for the first time, as a rule.
    auto it = view.draws_by_member.find(absl::string_view(v.member_id.data(), v.member_id.size()));
    d.draw_number = it == view.draws_by_member.end() ? 1 : it->second + 1;
  }
  d.random = d.write->randomness(d.draw_number);
  const LotterySpec& rules = v.spec->lottery;
  d.minted = nullptr;
  if (d.sku_guess == kNoSku && is_lucky(rules.win_probability, d.random.win())) {
    d.sku_guess = choose_sku(*v.spec, view.remaining, d.random.pick());
  }
  if (d.sku_guess != kNoSku) d.minted = d.write->mint(d.sku_guess);
}

void RedisClaimLog::complete_draws(const CampaignSpec& spec, std::vector<DrawAttempt>& draws,
                                   const Reply& reply) {
  // Guesses wrong this many times in a row (a storm of one member's draws
  // across replicas) give up: the caller may retry.
  constexpr int kAttemptsMax = 8;
  auto parsed = parse_draw_reply(spec, draws.size(), reply);
  if (!parsed) {
    log::warn(parsed.error());
    for (DrawAttempt& d : draws) {
      d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
    }
    return;
  }
  LotteryView& view = lottery_views_[spec.id];
  if (parsed->wrong_chunk) {
    // The draw log is on another chunk than this replica thought (its
    // first batch on a long log): nothing changed; every draw goes again.
    view.drawn_chunk = *parsed->wrong_chunk;
    for (DrawAttempt& d : draws) {
      if (++d.attempts >= kAttemptsMax) {
        d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
      } else {
        draw_retries_.push_back(d);
      }
    }
    return;
  }
  view.drawn_chunk = draw_log_chunk(parsed->drawn);
  view.remaining = std::move(parsed->remaining);
  // Bounded: a view of millions of members is dropped, and guesses start over.
  if (view.draws_by_member.size() > limits::kLotteryViewMembersMax) view.draws_by_member.clear();
  for (std::size_t i = 0; i < draws.size(); ++i) {
    DrawAttempt& d = draws[i];
    const DrawReply& r = parsed->draws[i];
    const DrawRequestView& v = d.write->draw;
    switch (r.kind) {
      case DrawReply::Kind::kDrawn: {
        DrawEntry e = r.entry;
        e.member_id = std::string(v.member_id);
        e.draw_number = d.draw_number;
        e.at_us = v.now_us;
        e.released = v.released;
        view.draws_by_member[e.member_id] = d.draw_number;
        VoucherPtr voucher = e.outcome == DrawOutcome::kWon ? d.minted : nullptr;
        d.write->on_draw_logged(DrawLogStatus::kDrawn, e, std::move(voucher), r.draws_today);
        continue;
      }
      case DrawReply::Kind::kRepeat: {
        DrawEntry e = r.entry;
        e.member_id = std::string(v.member_id);
        VoucherPtr voucher;
        if (e.outcome == DrawOutcome::kWon) voucher = decode_voucher(spec.id, r.code, r.record);
        if (e.outcome == DrawOutcome::kWon && !voucher) break;  // the record is unreadable
        d.write->on_draw_logged(DrawLogStatus::kRepeat, e, std::move(voucher), r.draws_today);
        continue;
      }
      case DrawReply::Kind::kDailyLimit:
        d.write->on_draw_logged(DrawLogStatus::kDailyLimit, DrawEntry{}, nullptr, r.draws_today);
        continue;
      case DrawReply::Kind::kWrongNumber:
        if (++d.attempts >= kAttemptsMax) break;
        view.draws_by_member[std::string(v.member_id)] = r.next_number - 1;
        d.draw_number = r.next_number;
        d.sku_guess = kNoSku;
        prepare_draw(d);
        draw_retries_.push_back(d);
        continue;
      case DrawReply::Kind::kRecordKey:
        // A retry of a win whose record key was not declared: nothing
        // changed; it goes again declaring it (its guesses stay).
        if (++d.attempts >= kAttemptsMax) break;
        d.repeat_code = r.code;
        draw_retries_.push_back(d);
        continue;
      case DrawReply::Kind::kWrongSku:
        if (++d.attempts >= kAttemptsMax) break;
        d.sku_guess = r.sku;
        prepare_draw(d);
        draw_retries_.push_back(d);
        continue;
      case DrawReply::Kind::kUnreadable:
        break;
    }
    d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
  }
}

}  // namespace voucherd::redis
