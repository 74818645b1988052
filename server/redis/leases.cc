// The lease keeper: keeps each campaign's local counters topped up from the
// shared stock (top_up), hands idle and dropped units back, beats (taking
// back the leases of replicas whose beat lapsed), reads the holders feed and
// the campaign registry, and settles the waits of claims waiting for units.
// Also here: what the writer tells the keeper of a claim's unit (fenced,
// unconfirmed, returned by a cancellation).
//
// Local unit counts (dropped, handed back) are checked never to go below
// zero where they are added to and where they are read back.
#include <algorithm>
#include <thread>

#include "engine/check.h"
#include "engine/limits.h"
#include "server/base/log.h"
#include "server/redis/claim_log_internal.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/script_replies.h"
#include "server/redis/scripts.h"

namespace voucherd::redis {

using internal::Clock;

namespace {

// How often the lease keeper looks at local stock; a claim storm drains a
// 512-unit block in a few milliseconds, so the keeper must look often.
constexpr auto kLeasePoll = std::chrono::milliseconds(2);
// A SKU whose shared stock is gone is asked again this often, so units that
// come back (reconciliation, cancelled vouchers) are found.
constexpr auto kFinalRecheck = std::chrono::milliseconds(100);
// The campaign registry's version is read this often, so a campaign created
// on another replica is served here within a second.
constexpr auto kRegistryPoll = std::chrono::milliseconds(200);
// The holders feed of each campaign is read this often (a member's voucher
// from another replica is known here, and a cancellation elsewhere frees the
// allowance here, within this much).
constexpr auto kHoldersPoll = std::chrono::milliseconds(50);
// Entries of the holders feed read per LRANGE, and LRANGEs per look.
constexpr std::int64_t kHoldersChunk = 1024;
constexpr int kHoldersReadsMax = 256;
// The first lease of a campaign is taken this long before its window opens.
constexpr auto kPreleaseLead = std::chrono::seconds(10);
// SKUs one lease call asks for (besides a final recheck of all of them).
constexpr std::size_t kLeaseSkusPerCall = 8;
// A press naming an empty SKU leases at most this many units of it.
constexpr std::int64_t kNamedLeaseUnitsMax = 16;
// Below this many units left in the shared pool, leases shrink to an eighth
// of what is left.
constexpr std::int64_t kNearlyGoneUnits = 4 * limits::kLeaseUnitsMax;
// "Every unit the lease record holds", for return_units after a lost link
// (return_units.lua gives back at most what the record holds).
constexpr std::int64_t kAllHeldUnits = std::int64_t{1} << 50;
// Units asked per SKU by the final recheck.
constexpr std::int64_t kRecheckUnits = 16;
// Local units untouched this long go back to the shared pool, so the last
// packs of a campaign do not wait in a replica whose crowd has gone.
constexpr auto kIdleLeaseReturn = std::chrono::milliseconds(250);

// Units this replica stopped handing out while its lease record may still
// hold them are kept as dropped, per SKU, and handed back by return_units()
// (Redis takes back at most what the record holds). A count of units is
// never negative: checked here, where one is added, and in return_units(),
// where it is read back.
void add_dropped(std::int64_t& dropped, std::int64_t units) {
  VOUCHERD_CHECK(units >= 0, "units dropped from local stock are never negative");
  dropped += units;
  VOUCHERD_CHECK(dropped >= 0, "a SKU's dropped units never go below zero");
}

// Units taken out of a local counter: what the engine gave, never negative
// and never more than asked.
std::int64_t taken(std::int64_t units, std::int64_t max) {
  VOUCHERD_CHECK(units >= 0 && units <= max, "take_units gives 0..max units");
  return units;
}

// Whether this replica's beat lapsed, as a lease or beat answer tells: it is
// older than the timeout, or gone although this replica had leased here
// (its leases were taken back).
bool lapsed(std::int64_t beat_state, bool leased_before) {
  return beat_state == replies::beat_state::kLapsed ||
         (beat_state == replies::beat_state::kNone && leased_before);
}

}  // namespace

void RedisClaimLog::top_up(Link& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  const CampaignKeys keys(spec.id);
  const std::size_t n = spec.skus.size();
  const auto now = Clock::now();
  c.named.clear();
  const bool missed = c.stock->take_missed(c.named);
  std::vector<std::string> args{options_.replica_id,
                                std::to_string(options_.lease_timeout.count())};
  std::vector<std::size_t> skus;
  auto asked = [&](std::size_t i) { return std::find(skus.begin(), skus.end(), i) != skus.end(); };
  auto ask = [&](std::size_t i, std::int64_t want) {
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(want));
    skus.push_back(i);
  };

  // 1. SKUs that presses named and found empty: a small lease each. A SKU
  //    whose pool was empty at the last look is asked again now and then.
  for (const std::uint32_t i : c.named) {
    if (skus.size() >= kLeaseSkusPerCall || c.stock->available(i) > 0) continue;
    if (c.known_left[i] == 0 && now < c.next_final_check[i]) continue;
    ask(i, std::clamp<std::int64_t>(c.known_left[i] / 4, 1, kNamedLeaseUnitsMax));
  }

  // 2. Presses for any SKU: keep this replica's units above the low-water
  //    mark while there is demand (a press found nothing, claims wait for
  //    units, or units moved in the last kIdleLeaseReturn), and take a
  //    first lease before the window opens, so the opening wave is served
  //    from local stock. Units come from as few SKUs as possible, so that
  //    a batch of claims touches few SKUs and its counters are updated once
  //    per SKU.
  const bool waiting = c.stock->waiting_claims() > 0;
  const UnixMicros now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  const bool prelease =
      !c.preleased && now_us < spec.ends_at_us &&
      now_us + std::chrono::duration_cast<std::chrono::microseconds>(kPreleaseLead).count() >=
          spec.starts_at_us;
  const bool demand = missed || waiting;
  const bool busy = now - c.last_busy < kIdleLeaseReturn;
  if (demand || busy || prelease) {
    std::int64_t here = 0;
    std::int64_t pool = 0;
    for (std::size_t i = 0; i < n; ++i) {
      here += c.stock->available(static_cast<std::uint32_t>(i));
      pool += c.known_left[i];
    }
    if (here < limits::kLeaseUnitsMax / limits::kLeaseLowWaterDivisor) {
      // Nearly gone: lease an eighth of what is left, so that the last
      // packs spread thin over the replicas instead of sitting in one; but
      // at least what the claims already waiting here need. Those units
      // are taken the moment they arrive, so they cannot sit here, and the
      // tail must not cost one lease round trip per eighth of it while
      // members wait: on a slow link (50 ms each way) that was seconds,
      // and presses waited out limits::kStockWaitUsMax (STOCK_REFILLING)
      // with stock left in the pool.
      const auto waiting_units = std::min<std::int64_t>(
          limits::kLeaseUnitsMax, static_cast<std::int64_t>(c.stock->waiting_claims()));
      std::int64_t need = pool < kNearlyGoneUnits
                              ? std::max<std::int64_t>({1, pool / 8, waiting_units - here})
                              : limits::kLeaseUnitsMax - here;
      for (std::size_t k = 0; k < n && need > 0 && skus.size() < kLeaseSkusPerCall; ++k) {
        const std::size_t i = (c.cursor + k) % n;
        if (c.known_left[i] <= 0 || asked(i)) continue;
        // Another replica draws on this SKU too: take a quarter of it at most.
        const std::int64_t cap =
            c.elsewhere[i] > 0 ? std::max<std::int64_t>(1, c.known_left[i] / 4) : c.known_left[i];
        const std::int64_t want = std::min(need, cap);
        ask(i, want);
        need -= want;
        c.cursor = i;
      }
      // 3. No unit known anywhere: look again now and then for units that
      //    came back. SKUs not final yet (units still leased elsewhere,
      //    which come back when that replica goes idle) are asked again;
      //    once all are final (sold out), one GET tells whether a
      //    reconciliation gave units back since, and only then are all
      //    asked. Presses on a sold-out campaign cost Redis nothing more.
      if (skus.empty() && pool == 0 && demand && now >= c.next_recheck) {
        c.next_recheck = now + kFinalRecheck;
        for (std::size_t i = 0; i < n; ++i) {
          if (!c.final[i]) ask(i, kRecheckUnits);
        }
        if (skus.empty()) {
          auto returns = conn.command({"GET", keys.returns()});
          if (returns && to_int(*returns) != c.returns_seen) {
            for (std::size_t i = 0; i < n; ++i) ask(i, kRecheckUnits);
          }
        }
      }
    }
  }
  if (skus.empty()) return;

  auto r = conn.eval(
      lease_script(),
      {keys.stock(), keys.leases(), keys.leased(), keys.returns(), keys.alive(), keys.holders()},
      args);
  namespace lease = replies::lease;
  if (!r || r->type != Reply::Type::kArray ||
      r->elements.size() != lease::kPerSku * skus.size() + lease::kTail) {
    if (!r || (r->type != Reply::Type::kError)) {
      // The answer was lost: the lease may have been granted. Count what we
      // asked for as dropped; handing it back later returns only what our
      // lease record really holds, so nothing strands in a live replica.
      for (std::size_t k = 0; k < skus.size(); ++k) {
        add_dropped(c.dropped[skus[k]], std::stoll(args[3 + 2 * k]));
      }
    } else {
      log::warn("lease script failed: " + r->str);
    }
    return;
  }
  const std::size_t tail = lease::kPerSku * skus.size();
  const std::int64_t holders_len = to_int(r->elements[tail + lease::kHoldersLength]);
  const std::int64_t beat_state = to_int(r->elements[tail + lease::kBeatState]);
  c.preleased = true;
  // A SKU turns final (an empty shelf then means SOLD_OUT) only once this
  // replica knows every member who got a voucher before the pool ran dry:
  // the feed is read up to its length in this same answer first.
  bool holders_known = false;
  for (std::size_t k = 0; k < skus.size(); ++k) {
    const std::size_t i = skus[k];
    const auto sku = static_cast<std::uint32_t>(i);
    const std::size_t at = lease::kPerSku * k;
    const std::int64_t granted = to_int(r->elements[at + lease::kGranted]);
    const std::int64_t left = to_int(r->elements[at + lease::kLeft]);
    const std::int64_t elsewhere = to_int(r->elements[at + lease::kElsewhere]);
    if (granted > 0) {
      c.leased_before = true;
      c.stock->add_units(sku, granted);
      c.last_available[i] += granted;
      c.last_change[i] = now;  // fresh units get a whole idle period
    }
    c.known_left[i] = left;
    c.elsewhere[i] = elsewhere;
    // Final once the pool is empty and no other replica holds a lease: an
    // empty local counter then means sold out. While others still hold
    // units, presses here wait for them (they come back when those replicas
    // go idle, or when a dead replica's lease times out).
    bool final = left == 0 && elsewhere <= 0;
    if (final && !c.final[i] && !holders_known) {
      holders_known = read_holders(conn, c, holders_len);
      if (!holders_known) final = false;  // look again at the next pass
    }
    c.final[i] = final;
    c.stock->set_final(sku, final);
    if (left == 0) c.next_final_check[i] = now + kFinalRecheck;
  }
  c.returns_seen = to_int(r->elements[tail + lease::kReturns]);
  if (lapsed(beat_state, c.leased_before)) on_lapsed(conn, c);
}

void RedisClaimLog::on_lapsed(Link& conn, Campaign& c) {
  // This replica's beat lapsed (it was paused, or cut off from Redis for
  // longer than the lease timeout): its leases may have been given to
  // others. Its local units are not to be trusted: drop them, hand back
  // what its lease records still hold, and lease again. Claims already on
  // their way that find no lease record are fenced by the claim script.
  log::warn("this replica's lease beat in campaign \"" + c.spec->id +
                "\" lapsed (paused or cut off for longer than the lease timeout): dropping its "
                "local units and leasing again",
            {{"campaign", c.spec->id}, {"replica", options_.replica_id}});
  for (std::size_t i = 0; i < c.spec->skus.size(); ++i) {
    const auto sku = static_cast<std::uint32_t>(i);
    add_dropped(c.dropped[i], taken(c.stock->take_units(sku, INT64_MAX), INT64_MAX));
    c.final[i] = false;
    c.stock->set_final(sku, false);
    c.last_available[i] = 0;
  }
  return_units(conn, c);
}

void RedisClaimLog::return_units(Link& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  std::vector<std::string> args{options_.replica_id};
  std::vector<std::int64_t> sent(spec.skus.size(), 0);
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    VOUCHERD_CHECK(c.dropped[i] >= 0, "a SKU's dropped units never go below zero");
    const auto sku = static_cast<std::uint32_t>(i);
    if (c.return_all_held || c.dropped[i] > 0 || c.stock->available(sku) > 0) {
      // The units go back to the pool, where they may be leased again: a
      // press that finds none here meanwhile waits for the next lease
      // instead of hearing SOLD_OUT (cleared before the units leave, so no
      // press sees an empty shelf still marked final).
      c.final[i] = false;
      c.stock->set_final(sku, false);
      c.next_final_check[i] = Clock::now();
    }
    sent[i] = taken(c.stock->take_units(sku, INT64_MAX), INT64_MAX) + c.dropped[i];
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(c.return_all_held ? kAllHeldUnits : sent[i]));
  }
  const CampaignKeys keys(spec.id);
  auto r = conn.eval(return_units_script(), {keys.stock(), keys.leases(), keys.leased()}, args);
  if (!r || r->is_error()) {
    // Not handed back: the units stay ours in Redis's lease record. Keep
    // them as dropped and try again on the next pass.
    c.dropped = std::move(sent);
    // Once per outage: the keeper tries again every few milliseconds (a
    // Redis still loading its AOF answers LOADING for a while).
    if (!c.return_failure_logged) {
      log::warn("could not hand leased units of \"" + spec.id + "\" back yet" +
                (r ? ": " + r->str : ": " + r.error()) + " (trying again)");
      c.return_failure_logged = true;
    }
    return;
  }
  c.return_failure_logged = false;
  // Redis took back at most what our lease still recorded; anything above
  // that was issued by a write whose answer never reached us.
  std::fill(c.dropped.begin(), c.dropped.end(), 0);
  c.return_all_held = false;
}

bool RedisClaimLog::check_server(Link& conn) {
  auto identity = conn.server_identity();
  if (!identity) return false;
  std::string run_id = std::move(*identity);
  // Another server (a failover), or the same one restarted: its holders
  // feeds may be shorter than what was read here (writes lost with the old
  // primary, or with an AOF that was not fsynced), so positions read so
  // far mean nothing there. Read every feed again from its start (applying
  // an entry twice changes nothing).
  if (run_id.empty() || run_id != server_run_id_) {
    std::lock_guard lock(campaigns_mu_);
    for (auto& c : campaigns_) c->holders_read = 0;
  }
  server_run_id_ = std::move(run_id);
  return true;
}

void RedisClaimLog::return_idle_units(Link& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  const auto now = Clock::now();
  std::vector<std::string> args{options_.replica_id};
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const auto sku = static_cast<std::uint32_t>(i);
    const std::int64_t here = c.stock->available(sku);
    if (here != c.last_available[i]) {
      // Units went out (claims): demand. Units came in (a claim's unit given
      // back) only restart the idle clock. Leases are not changes: top_up()
      // counts them in, or every lease would look like demand for the next.
      if (here < c.last_available[i]) c.last_busy = now;
      c.last_available[i] = here;
      c.last_change[i] = now;
      continue;
    }
    // Idle units go back only once the shared pool is empty (as of the
    // latest beat): until then other replicas lease from the pool, and this
    // replica keeps its block for its next presses (a trickle of members is
    // served from memory, with no wait for a lease).
    if (here == 0 || c.pool_units > 0 || now - c.last_change[i] < kIdleLeaseReturn) continue;
    const std::int64_t n = taken(c.stock->take_units(sku, here), here);
    if (n == 0) continue;
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(n));
    c.last_available[i] = 0;
    c.last_change[i] = now - kIdleLeaseReturn;  // idle: no refill without demand
    c.known_left[i] += n;
    c.next_final_check[i] = now;
    // The units are in the pool again, where another replica may take them:
    // not sold out here until a lease answer (and the holders feed up to
    // it) says so again.
    c.final[i] = false;
    c.stock->set_final(sku, false);
  }
  if (args.size() == 1) return;
  const CampaignKeys keys(spec.id);
  auto r = conn.eval(return_units_script(), {keys.stock(), keys.leases(), keys.leased()}, args);
  if (!r || r->is_error()) {
    // Taken out of local stock but not handed back: keep them as dropped.
    for (std::size_t k = 1; k + 1 < args.size(); k += 2) {
      for (std::size_t i = 0; i < spec.skus.size(); ++i) {
        if (spec.skus[i].id == args[k]) add_dropped(c.dropped[i], std::stoll(args[k + 1]));
      }
    }
  }
}

void RedisClaimLog::unit_returned(std::string_view campaign_id, std::uint32_t sku) {
  // The unit is in the shared pool again: this SKU is no longer final here,
  // so presses hear STOCK_REFILLING and the keeper leases it at once (other
  // replicas find it at their next look, within kFinalRecheck).
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    if (c->spec->id != campaign_id || sku >= c->spec->skus.size()) continue;
    c->known_left[sku] += 1;
    c->final[sku] = false;
    c->stock->set_final(sku, false);
  }
}

RedisClaimLog::Campaign* RedisClaimLog::writer_campaign(std::string_view campaign_id,
                                                        std::string_view sku_id,
                                                        std::uint32_t* sku) {
  for (Campaign* c : writer_index_) {
    if (c->spec->id != campaign_id) continue;
    for (std::size_t i = 0; i < c->spec->skus.size(); ++i) {
      if (c->spec->skus[i].id != sku_id) continue;
      *sku = static_cast<std::uint32_t>(i);
      return c;
    }
  }
  return nullptr;
}

void RedisClaimLog::drop_fenced(const ClaimLogWrite& write) {
  const VoucherRecord& v = *write.voucher;
  // The local units go now (CampaignStock is thread-safe), before the claim
  // waits again, so that it cannot take one that is not ours; the keeper
  // learns of them from a note (see apply_unit_notes()).
  std::lock_guard lock(notes_mu_);
  std::uint32_t sku = 0;
  Campaign* c = writer_campaign(v.campaign_id(), v.sku_id(), &sku);
  if (c == nullptr) return;
  // Handed back later, as far as our lease record still holds them (the
  // fenced claim's own unit was never in it).
  const std::int64_t units = taken(c->stock->take_units(sku, INT64_MAX), INT64_MAX);
  c->stock->set_final(sku, false);
  unit_notes_.push_back(UnitNote{c, sku, units, /*fenced=*/true});
}

void RedisClaimLog::drop_unconfirmed(const std::vector<ClaimLogWrite*>& writes) {
  std::lock_guard lock(notes_mu_);
  for (const ClaimLogWrite* w : writes) {
    const VoucherRecord& v = *w->voucher;
    std::uint32_t sku = 0;
    if (Campaign* c = writer_campaign(v.campaign_id(), v.sku_id(), &sku)) {
      unit_notes_.push_back(UnitNote{c, sku, 1, /*fenced=*/false});
    }
  }
}

void RedisClaimLog::apply_unit_notes() {
  std::vector<UnitNote> notes;
  {
    std::lock_guard lock(notes_mu_);
    notes.swap(unit_notes_);
  }
  for (const UnitNote& n : notes) {
    add_dropped(n.campaign->dropped[n.sku], n.dropped_units);
    if (!n.fenced) continue;
    // Fenced: not final until a lease answer says so again (the writer
    // cleared it in the engine already; a lease answer read before that may
    // have set it since).
    n.campaign->final[n.sku] = false;
    n.campaign->stock->set_final(n.sku, false);
  }
}

void RedisClaimLog::drop_local_units() {
  // Redis is unreachable: units leased to us are "unknown" until we are back
  // (a reconciliation may meanwhile give them to others), so stop handing
  // them out; remember how many, to give them back on reconnection. Back,
  // all that our lease record holds goes back to the pool: after a failover
  // it may hold units of writes that were confirmed to us and then lost
  // (asynchronous replication), which nothing here would ever hand back.
  // A claim still on its way is then fenced by the claim script.
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    c->return_all_held = true;
    for (std::size_t i = 0; i < c->spec->skus.size(); ++i) {
      const auto sku = static_cast<std::uint32_t>(i);
      add_dropped(c->dropped[i], taken(c->stock->take_units(sku, INT64_MAX), INT64_MAX));
      c->stock->set_final(sku, false);
      c->final[i] = false;
    }
  }
}

void RedisClaimLog::beat(Link& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  const auto timeout_ms = options_.lease_timeout.count();
  const auto beat_ms = std::max<std::int64_t>(1, timeout_ms / 6);
  const CampaignKeys keys(spec.id);
  auto r = conn.eval(
      beat_script(), {keys.alive(), keys.leases(), keys.leased(), keys.stock(), keys.returns()},
      {options_.replica_id, std::to_string(timeout_ms), std::to_string(2 * beat_ms)});
  // The head, then (SKU, units) pairs: an odd count.
  if (!r || r->type != Reply::Type::kArray || r->elements.size() < replies::beat::kHead ||
      r->elements.size() % 2 != replies::beat::kHead % 2) {
    if (r && r->is_error()) log::warn("beat script failed: " + r->str);
    return;
  }
  const std::vector<Reply>& e = r->elements;
  const std::int64_t beat_state = to_int(e[replies::beat::kBeatState]);
  const std::int64_t gone = to_int(e[replies::beat::kTakenBack]);
  c.pool_units = to_int(e[replies::beat::kPoolUnits]);
  std::int64_t reclaimed = 0;
  for (std::size_t k = replies::beat::kHead; k + 1 < e.size(); k += 2) {
    const std::int64_t units = to_int(e[k + 1]);
    reclaimed += units;
    for (std::size_t i = 0; i < spec.skus.size(); ++i) {
      if (spec.skus[i].id != e[k].str) continue;
      // Back in the pool: this SKU is not sold out after all. Claims here
      // wait for it; the next lease (or look again) takes it.
      c.known_left[i] += units;
      c.final[i] = false;
      c.stock->set_final(static_cast<std::uint32_t>(i), false);
      c.next_final_check[i] = Clock::now();
    }
  }
  if (gone > 0) {
    log::warn("took back the leases of " + std::to_string(gone) +
                  " replica(s) whose beat lapsed in campaign \"" + spec.id +
                  "\": " + std::to_string(reclaimed) + " units back in the pool",
              {{"campaign", spec.id}, {"replicas", gone}, {"units", reclaimed}});
  }
  {
    std::lock_guard lock(health_mu_);
    LeaseHealth& h = health_[spec.id];
    h.overdue_replicas = to_int(e[replies::beat::kOverdue]);
    h.stranded_units = to_int(e[replies::beat::kOverdueUnits]);
    h.reclaimed_replicas_total += gone;
    h.reclaimed_units_total += reclaimed;
  }
  if (lapsed(beat_state, c.leased_before)) on_lapsed(conn, c);
}

bool RedisClaimLog::read_holders(Link& conn, Campaign& c, std::int64_t until) {
  const std::string feed = CampaignKeys(c.spec->id).holders();
  std::vector<HolderChange> changes;
  for (int reads = 0; reads < kHoldersReadsMax; ++reads) {
    if (until >= 0 && c.holders_read >= until) return true;
    auto r = conn.command({"LRANGE", feed, std::to_string(c.holders_read),
                           std::to_string(c.holders_read + kHoldersChunk - 1)});
    if (!r || r->type != Reply::Type::kArray) return false;
    for (const Reply& entry : r->elements) {
      changes.clear();
      if (!decode_holders_entry(entry.str, changes)) {
        log::warn("campaign \"" + c.spec->id + "\": an entry of " + feed +
                  " is not a holders entry; skipped");
      }
      for (const HolderChange& h : changes) {
        c.stock->note_store_holder(h.member_id, h.code, h.holds || !h.none_left);
        if (h.holds) continue;
        // A cancellation gave its unit back to the pool: SOLD_OUT is not the
        // answer here any more until the pool has been looked at again.
        for (std::size_t i = 0; i < c.spec->skus.size(); ++i) {
          c.final[i] = false;
          c.stock->set_final(static_cast<std::uint32_t>(i), false);
        }
        c.next_recheck = Clock::now();
      }
      ++c.holders_read;
    }
    if (static_cast<std::int64_t>(r->elements.size()) < kHoldersChunk) {
      return until < 0 || c.holders_read >= until;
    }
  }
  return false;  // more than one look reads; the rest at the next one
}

bool RedisClaimLog::poll_registry(Link& conn) {
  auto version = conn.command({"GET", std::string(kRegistryVersionKey)});
  if (!version) return false;
  const std::string seen = version->type == Reply::Type::kString ? version->str : "";
  if (seen == registry_version_ && keeper_up_.load(std::memory_order_relaxed)) return true;
  auto all = conn.command({"HGETALL", std::string(kRegistryKey)});
  if (!all || all->type != Reply::Type::kArray) return false;
  registry_version_ = seen;
  if (!listener_) return true;
  std::vector<std::pair<std::string, std::string>> fresh;
  {
    std::lock_guard lock(campaigns_mu_);
    for (std::size_t k = 0; k + 1 < all->elements.size(); k += 2) {
      const std::string& id = all->elements[k].str;
      const bool known = std::any_of(campaigns_.begin(), campaigns_.end(),
                                     [&](const auto& c) { return c->spec->id == id; });
      if (!known) fresh.emplace_back(id, all->elements[k + 1].str);
    }
  }
  // Outside campaigns_mu_: creating a campaign opens it here, which takes it.
  for (const auto& [id, definition] : fresh) listener_(id, definition);
  return true;
}

void RedisClaimLog::lease_loop() {
  std::unique_ptr<Link> conn;
  auto next_connect = Clock::now();
  auto backoff = internal::kBackoffMin;
  auto next_registry_poll = Clock::now();
  const auto beat_every = std::max(std::chrono::milliseconds(1), options_.lease_timeout / 6);
  bool had_connection = false;
  std::string last_error = "connection lost";
  auto settle_all = [&](bool reachable) {
    std::lock_guard lock(campaigns_mu_);
    for (auto& c : campaigns_) c->stock->settle_waits(reachable);
  };
  while (!lease_stop_.load(std::memory_order_acquire)) {
    const auto now = Clock::now();
    if (conn && !conn->broken() && !conn->usable()) {
      // A failover moved the primary: what this connection's server says
      // is no longer the store's word.
      conn.reset();
      last_error = "the Redis primary moved (a failover)";
    }
    if (!conn || conn->broken()) {
      if (conn || had_connection) {
        conn.reset();
        had_connection = false;
        keeper_up_.store(false, std::memory_order_release);
        note_link(last_error);
        drop_local_units();
      }
      // No unit can come while Redis is away: waiting claims hear so.
      settle_all(/*reachable=*/false);
      if (now >= next_connect) {
        if (auto c = open_link()) {
          conn = std::move(*c);
          had_connection = true;
          backoff = internal::kBackoffMin;
          next_registry_poll = now;
          if (!check_server(*conn)) {
            last_error = "reading the primary's run_id failed (connection lost)";
            continue;
          }
        } else {
          backoff = std::min(internal::kBackoffMax, backoff * 2);
          next_connect = now + internal::jittered(backoff);
          last_error = c.error();
          note_link(last_error);
        }
      }
      if (!conn) {
        std::this_thread::sleep_for(kLeasePoll);
        continue;
      }
    }
    // The registry first: a new connection is "up" once it has read it, so
    // a replica is ready only when it serves the store's campaigns.
    if (now >= next_registry_poll) {
      if (!poll_registry(*conn)) {
        // Broken: handled at the top. An error reply (Redis still loading
        // its AOF, say) leaves the connection up: look again after a pause.
        last_error = "reading the campaign registry failed";
        settle_all(/*reachable=*/true);
        std::this_thread::sleep_for(kLeasePoll);
        continue;
      }
      next_registry_poll = now + kRegistryPoll;
      if (!keeper_up_.load(std::memory_order_relaxed)) {
        keeper_up_.store(true, std::memory_order_release);
        note_link("");
      }
    }
    {
      std::lock_guard lock(campaigns_mu_);
      apply_unit_notes();
      for (auto& c : campaigns_) {
        if (!c->registered) {
          std::string conflict;
          if (!register_campaign(*conn, *c, &conflict)) {
            // No unit can come for a campaign the store refuses: its
            // waiting claims hear UNAVAILABLE rather than wait.
            c->stock->settle_waits(/*store_reachable=*/false);
            if (!conflict.empty() && !c->conflict_logged) {
              log::warn(conflict + "; not leasing its stock");
              c->conflict_logged = true;
            }
            continue;
          }
        }
        // A lottery's prizes are drawn, and an apply campaign's packs
        // allocated, in the store itself: nothing to lease.
        if (c->spec->mode != CampaignMode::kFirstCome) continue;
        if (now >= c->next_beat) {
          c->next_beat = now + beat_every;
          beat(*conn, *c);
        }
        if (c->return_all_held || std::any_of(c->dropped.begin(), c->dropped.end(),
                                              [](std::int64_t d) { return d > 0; })) {
          return_units(*conn, *c);  // what we dropped while Redis was away
        }
        return_idle_units(*conn, *c);
        top_up(*conn, *c);
        if (now >= c->next_holders_read) {
          c->next_holders_read = now + kHoldersPoll;
          (void)read_holders(*conn, *c, -1);
        }
        if (conn->broken()) break;
        c->stock->settle_waits(/*store_reachable=*/true);
      }
    }
    if (conn->broken()) last_error = "a command to Redis failed (connection lost)";
    std::this_thread::sleep_for(kLeasePoll);
  }
  // Clean stop: hand every unused unit back and say goodbye.
  if (!conn || conn->broken()) conn.reset();
  if (!conn) {
    if (auto c = open_link()) conn = std::move(*c);
  }
  if (conn) {
    std::lock_guard lock(campaigns_mu_);
    apply_unit_notes();
    for (auto& c : campaigns_) {
      if (!c->registered || c->spec->mode != CampaignMode::kFirstCome) continue;
      return_units(*conn, *c);
      (void)conn->command({"HDEL", CampaignKeys(c->spec->id).alive(), options_.replica_id});
    }
  }
}

}  // namespace voucherd::redis
