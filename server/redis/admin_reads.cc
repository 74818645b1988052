// The admin paths' reads of the Redis claim log: counts, the manual
// reconciliation, the settlement export, expired counts, the draw log, and an
// APPLY_THEN_DRAW campaign's counts and applications with their outcomes.
// Each runs on the caller's thread with a short-lived connection of its own,
// never on the writer's or the keeper's.
#include <algorithm>
#include <charconv>
#include <map>

#include "server/redis/apply_log.h"
#include "server/redis/keys.h"
#include "server/redis/records.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/script_replies.h"
#include "server/redis/scripts.h"

namespace voucherd::redis {

StoreResult<std::optional<CampaignCounts>> RedisClaimLog::read_counts(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  const CampaignKeys keys(spec.id);
  Command issued{"HMGET", keys.issued(), "_members"};
  Command redeemed{"HMGET", keys.redeemed()};
  for (const SkuSpec& s : spec.skus) {
    issued.push_back(s.id);
    redeemed.push_back(s.id);
  }
  auto r = (*conn)->pipeline({issued, redeemed});
  if (!r) return store_unavailable(r.error());
  const std::vector<Reply>& a = (*r)[0].elements;
  const std::vector<Reply>& b = (*r)[1].elements;
  CampaignCounts out;
  out.issued.assign(spec.skus.size(), 0);
  out.redeemed.assign(spec.skus.size(), 0);
  if (!a.empty()) out.members = to_int(a[0]);
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    if (i + 1 < a.size()) out.issued[i] = to_int(a[i + 1]);
    if (i < b.size()) out.redeemed[i] = to_int(b[i]);
  }
  return out;
}

StoreResult<ApplicationCounts> RedisClaimLog::application_counts(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  const CampaignKeys keys(spec.id);
  auto r = (*conn)->pipeline({{"HLEN", keys.applications()},
                              {"HMGET", keys.allocation(), "state", "selected", "done_ms"}});
  if (!r) return store_unavailable(r.error());
  const Reply& count = (*r)[0];
  const Reply& alloc = (*r)[1];
  if (count.type != Reply::Type::kInteger || alloc.type != Reply::Type::kArray ||
      alloc.elements.size() != 3) {
    return store_bad_reply("unexpected reply reading " + keys.allocation() + ": " + count.str +
                           alloc.str);
  }
  ApplicationCounts out;
  out.applications = count.integer;
  out.selected = to_int(alloc.elements[1]);
  const std::string& state = alloc.elements[0].str;
  if (state == "done") {
    out.allocation = ApplicationCounts::Allocation::kDone;
    out.allocated_at_us = to_int(alloc.elements[2]) * 1000;
  } else if (state == "running") {
    out.allocation = ApplicationCounts::Allocation::kRunning;
  } else if (alloc.elements[0].type != Reply::Type::kNil) {
    return store_bad_reply(keys.allocation() + " holds state \"" + state + "\"");
  }
  // Once begun, the applications counted are the frozen ones (apply.lua
  // refuses any later one), so HLEN is the frozen total too.
  return out;
}

StoreResult<ApplicationOutcomes> RedisClaimLog::application_outcomes(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  const CampaignKeys keys(spec.id);
  // The state first: when it says done, every winner is in `won` already;
  // otherwise a winner written after it is read is shown SELECTED, and the
  // rest PENDING.
  auto state = (*conn)->command({"HGET", keys.allocation(), "state"});
  if (!state) return store_unavailable(state.error());
  const bool begun =
      state->type == Reply::Type::kString && (state->str == "running" || state->str == "done");
  if (state->type != Reply::Type::kNil && !begun) {
    return store_bad_reply("unexpected reply reading " + keys.allocation() + ": " + state->str);
  }
  ApplicationOutcomes out;
  out.allocation_done = begun && state->str == "done";
  auto applications = redis::read_applications(**conn, spec);
  if (!applications) return std::unexpected(std::move(applications.error()));
  out.outcomes.reserve(applications->size());
  for (ApplicationEntry& a : *applications) out.outcomes.push_back({std::move(a)});
  // Not begun when the state was read: nobody had won, and applications may
  // have come during the scan, so the winners (of an allocation begun since)
  // are left for the next export rather than matched against a set that may
  // miss them.
  if (!begun) return out;
  // Begun: the applications were frozen before the state was read, so each
  // winner is among them.
  auto winners = redis::read_winners(**conn, spec);
  if (!winners) return std::unexpected(std::move(winners.error()));
  std::size_t matched = 0;
  for (ApplicationOutcome& o : out.outcomes) {
    if (auto w = winners->find(o.application.member_id); w != winners->end()) {
      o.sku = w->second;
      ++matched;
    }
  }
  if (matched != winners->size()) {
    return store_bad_reply(keys.won() + " holds " + std::to_string(winners->size() - matched) +
                           " winners without an application in " + keys.applications());
  }
  return out;
}

StoreResult<std::vector<std::int64_t>> RedisClaimLog::reconcile(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  // The keepers' own beat script, without a beat of this caller's: the
  // replicas whose beat lapsed lose their leases, in one atomic step.
  const auto timeout_ms = options_.lease_timeout.count();
  const CampaignKeys keys(spec.id);
  auto r = (*conn)->eval(beat_script(),
                         {keys.alive(), keys.leases(), keys.leased(), keys.stock(), keys.returns()},
                         {"", std::to_string(timeout_ms), std::to_string(timeout_ms)});
  if (!r) return store_unavailable(r.error());
  if (r->is_error()) return store_bad_reply("reconcile script failed: " + r->str);
  if (r->type != Reply::Type::kArray || r->elements.size() < replies::beat::kHead) {
    return store_bad_reply("reconcile script: unexpected answer");
  }
  std::vector<std::int64_t> returned(spec.skus.size(), 0);
  for (std::size_t i = replies::beat::kHead; i + 1 < r->elements.size(); i += 2) {
    for (std::size_t s = 0; s < spec.skus.size(); ++s) {
      if (spec.skus[s].id == r->elements[i].str) returned[s] += to_int(r->elements[i + 1]);
    }
  }
  return returned;
}

StoreResult<std::vector<ReplicaLeases>> RedisClaimLog::read_replicas(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  const CampaignKeys keys(spec.id);
  auto r = (*conn)->eval(replicas_script(), {keys.alive(), keys.leases()}, {});
  if (!r) return store_unavailable(r.error());
  if (r->is_error()) return store_bad_reply("replicas script failed: " + r->str);
  if (r->type != Reply::Type::kArray || r->elements.size() != 3) {
    return store_bad_reply("replicas script: unexpected answer");
  }
  const std::int64_t now_ms = to_int(r->elements[0]);
  const std::vector<Reply>& alive = r->elements[1].elements;
  const std::vector<Reply>& leases = r->elements[2].elements;
  std::map<std::string, ReplicaLeases, std::less<>> by_id;
  auto replica = [&](std::string_view id) -> ReplicaLeases& {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      it = by_id.emplace(std::string(id), ReplicaLeases{}).first;
      it->second.replica_id = std::string(id);
      it->second.leased.assign(spec.skus.size(), 0);
    }
    return it->second;
  };
  const std::int64_t timeout_ms = options_.lease_timeout.count();
  for (std::size_t i = 0; i + 1 < alive.size(); i += 2) {
    ReplicaLeases& rl = replica(alive[i].str);
    rl.last_beat_ms = to_int(alive[i + 1]);
    rl.beat_age_ms = std::max<std::int64_t>(0, now_ms - *rl.last_beat_ms);
  }
  for (std::size_t i = 0; i + 1 < leases.size(); i += 2) {
    // 'replica|SKU', split at the first '|' as beat.lua splits it.
    const std::string& field = leases[i].str;
    const auto bar = field.find('|');
    if (bar == std::string::npos) continue;
    ReplicaLeases& rl = replica(std::string_view(field).substr(0, bar));
    const std::string_view sku = std::string_view(field).substr(bar + 1);
    for (std::size_t s = 0; s < spec.skus.size(); ++s) {
      if (spec.skus[s].id == sku) rl.leased[s] += to_int(leases[i + 1]);
    }
  }
  std::vector<ReplicaLeases> out;
  out.reserve(by_id.size());
  for (auto& [id, rl] : by_id) {
    // As the beat script judges it: no beat, or one older than the timeout.
    rl.lapsed = !rl.last_beat_ms || rl.beat_age_ms > timeout_ms;
    out.push_back(std::move(rl));
  }
  return out;
}

StoreResult<std::vector<VoucherPtr>> RedisClaimLog::redeemed_vouchers(
    std::string_view campaign_id) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  return read_redeemed(**conn, kStoreKeyPrefix, campaign_id);
}

StoreResult<std::vector<std::int64_t>> RedisClaimLog::expired_counts(const CampaignSpec& spec,
                                                                     UnixMicros now_us) {
  auto conn = open_link();
  if (!conn) return store_unavailable(conn.error());
  auto all = (*conn)->command({"HGETALL", CampaignKeys(spec.id).expiring()});
  if (!all) return store_unavailable(all.error());
  std::vector<std::int64_t> out(spec.skus.size(), 0);
  const std::int64_t minute = 60 * kMicrosPerSecond;
  for (std::size_t k = 0; k + 1 < all->elements.size(); k += 2) {
    const std::string& field = all->elements[k].str;
    const auto bar = field.rfind('|');
    if (bar == std::string::npos) continue;
    std::int64_t bucket = 0;
    std::from_chars(field.data() + bar + 1, field.data() + field.size(), bucket);
    if ((bucket + 1) * minute > now_us) continue;  // not wholly past yet
    const std::string_view sku(field.data(), bar);
    for (std::size_t s = 0; s < spec.skus.size(); ++s) {
      if (spec.skus[s].id == sku) out[s] += to_int(all->elements[k + 1]);
    }
  }
  return out;
}

StoreResult<std::vector<DrawEntry>> RedisClaimLog::draw_entries(const CampaignSpec& spec) {
  auto conn = open_link();
  if (!conn) return store_unavailable("redis: " + conn.error());
  return read_draw_log(**conn, spec);
}

}  // namespace voucherd::redis
