#include "server/redis/redis_claim_log.h"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <unordered_set>

#include "engine/limits.h"

namespace voucherd::redis {
namespace {

using Clock = std::chrono::steady_clock;

// How often the lease keeper looks at local stock; a claim storm drains a
// 512-unit block in a few milliseconds, so the keeper must look often.
constexpr auto kLeasePoll = std::chrono::milliseconds(2);
// A SKU whose shared stock is gone is asked again this often, so units that
// come back (reconciliation, cancelled vouchers) are found.
constexpr auto kFinalRecheck = std::chrono::milliseconds(100);
// Heartbeat: refreshed every second, expires after 15 s without one.
constexpr auto kHeartbeatEvery = std::chrono::seconds(1);
constexpr int kHeartbeatTtlSeconds = 15;
// Local units untouched this long go back to the shared pool, so the last
// packs of a campaign do not wait in a replica whose crowd has gone.
constexpr auto kIdleLeaseReturn = std::chrono::milliseconds(250);
constexpr auto kBackoffMin = std::chrono::milliseconds(50);
constexpr auto kBackoffMax = std::chrono::milliseconds(2000);

// Fields of a voucher hash, in the order the scripts read them.
const std::vector<std::string> kVoucherFields = {"s", "si", "m", "r", "k", "f", "i", "e", "st"};

const Script kRegisterScript(R"lua(
-- KEYS: def, stock. ARGV: definition, then (sku, stock) pairs.
-- 2: created; 1: same definition already there; 0: a different one is there.
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[1] then return 1 end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 2
)lua");

const Script kLeaseScript(R"lua(
-- KEYS: stock, leases, leased. ARGV: replica, then (sku, wanted) pairs.
-- Takes at most what remains (never below zero). Per SKU returns: granted,
-- left in the pool, and units leased to the other replicas.
local out = {}
for i = 2, #ARGV, 2 do
  local f = ARGV[1] .. '|' .. ARGV[i]
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local g = math.min(have, tonumber(ARGV[i + 1]))
  if g > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], -g)
    redis.call('HINCRBY', KEYS[2], f, g)
    redis.call('HINCRBY', KEYS[3], ARGV[i], g)
  end
  local mine = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  local all = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  out[#out + 1] = g
  out[#out + 1] = have - g
  out[#out + 1] = all - mine
end
return out
)lua");

const Script kReturnScript(R"lua(
-- KEYS: stock, leases, leased. ARGV: replica, then (sku, units) pairs.
-- Gives back at most what this replica's lease still records.
local out = {}
for i = 2, #ARGV, 2 do
  local f = ARGV[1] .. '|' .. ARGV[i]
  local held = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  local n = math.max(math.min(held, tonumber(ARGV[i + 1])), 0)
  if n > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], n)
    redis.call('HINCRBY', KEYS[3], ARGV[i], -n)
  end
  if held - n <= 0 then redis.call('HDEL', KEYS[2], f) else redis.call('HINCRBY', KEYS[2], f, -n) end
  out[#out + 1] = n
end
return out
)lua");

const Script kClaimScript(R"lua(
-- KEYS: issued, leases, leased, then (member, voucher) key pairs, one per claim.
-- ARGV: replica, voucher key prefix, then 10 fields per claim:
--   limit, request_id, code, sku, site, member, kind, face, issued_at, expires_at.
-- Per claim: 0 when written; {held code, held voucher fields...} when the
-- member already holds this request or their whole allowance.
local out = {}
local n = (#KEYS - 3) / 2
for i = 1, n do
  local mk = KEYS[2 + 2 * i]
  local vk = KEYS[3 + 2 * i]
  local b = 2 + (i - 1) * 10
  local limit = tonumber(ARGV[b + 1])
  local rid = ARGV[b + 2]
  local code = ARGV[b + 3]
  local sku = ARGV[b + 4]
  local held = false
  if limit == 1 then
    held = redis.call('HGET', mk, 'last')
  else
    held = redis.call('HGET', mk, 'r:' .. rid)
    if not held and tonumber(redis.call('HGET', mk, 'n') or '0') >= limit then
      held = redis.call('HGET', mk, 'last')
    end
  end
  if held then
    -- The held voucher's key has the campaign's hash tag: same slot as vk.
    local v = redis.call('HMGET', ARGV[2] .. held, 's', 'si', 'm', 'r', 'k', 'f', 'i', 'e', 'st')
    table.insert(v, 1, held)
    out[i] = v
  else
    redis.call('HSET', vk, 's', sku, 'si', ARGV[b + 5], 'm', ARGV[b + 6], 'r', rid,
               'k', ARGV[b + 7], 'f', ARGV[b + 8], 'i', ARGV[b + 9], 'e', ARGV[b + 10], 'st', '1')
    if redis.call('HINCRBY', mk, 'n', 1) == 1 then redis.call('HINCRBY', KEYS[1], '_members', 1) end
    redis.call('HSET', mk, 'last', code, 'r:' .. rid, code)
    redis.call('HINCRBY', KEYS[1], sku, 1)
    redis.call('HINCRBY', KEYS[2], ARGV[1] .. '|' .. sku, -1)
    redis.call('HINCRBY', KEYS[3], sku, -1)
    out[i] = 0
  end
end
return out
)lua");

const Script kReconcileScript(R"lua(
-- KEYS: stock, leases, leased. ARGV: replicas that are gone.
-- Moves their outstanding leased units back to the shared stock.
local gone = {}
for i = 1, #ARGV do gone[ARGV[i]] = true end
local out = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local f = all[i]
  local bar = string.find(f, '|', 1, true)
  if bar and gone[string.sub(f, 1, bar - 1)] then
    local sku = string.sub(f, bar + 1)
    local n = tonumber(all[i + 1])
    -- (Redis refuses "-0" as an integer, so zero is never sent.)
    if n ~= 0 then redis.call('HINCRBY', KEYS[3], sku, -n) end
    if n > 0 then redis.call('HINCRBY', KEYS[1], sku, n) end
    redis.call('HDEL', KEYS[2], f)
    out[#out + 1] = sku
    out[#out + 1] = math.max(n, 0)
  end
end
return out
)lua");

std::string key(std::string_view campaign_id, std::string_view suffix) {
  std::string k;
  k.reserve(6 + campaign_id.size() + suffix.size());
  k.append("vd:{").append(campaign_id).append("}:").append(suffix);
  return k;
}
std::string member_key(std::string_view campaign_id, std::string_view member) {
  return key(campaign_id, "m:") + std::string(member);
}
std::string voucher_prefix(std::string_view campaign_id) { return key(campaign_id, "v:"); }
std::string heartbeat_key(std::string_view replica) { return "vd:replica:" + std::string(replica); }

std::int64_t to_int(const Reply& r) {
  if (r.type == Reply::Type::kInteger) return r.integer;
  if (r.type == Reply::Type::kString) {
    std::int64_t v = 0;
    std::from_chars(r.str.data(), r.str.data() + r.str.size(), v);
    return v;
  }
  return 0;
}

// A voucher record from HMGET fields (kVoucherFields order); nullptr if the
// voucher does not exist.
VoucherPtr voucher_from(std::string_view campaign_id, std::string code, const std::vector<Reply>& f,
                        std::size_t first) {
  if (f.size() < first + kVoucherFields.size() || f[first].type != Reply::Type::kString) {
    return nullptr;
  }
  auto v = std::make_shared<VoucherRecord>();
  v->code = std::move(code);
  v->campaign_id = std::string(campaign_id);
  v->sku_id = f[first + 0].str;
  v->site_id = f[first + 1].str;
  v->member_id = f[first + 2].str;
  v->request_id = f[first + 3].str;
  v->sku_kind = static_cast<SkuKind>(std::clamp<std::int64_t>(to_int(f[first + 4]), 0, 4));
  v->face_value_cents = to_int(f[first + 5]);
  v->issued_at_us = to_int(f[first + 6]);
  v->expires_at_us = to_int(f[first + 7]);
  v->state = static_cast<VoucherState>(std::clamp<std::int64_t>(to_int(f[first + 8]), 1, 4));
  return v;
}

void log_warning(const std::string& msg) { std::cerr << "voucherd warn: " << msg << std::endl; }

}  // namespace

RedisClaimLog::RedisClaimLog(ClaimLogOptions options,
                             std::function<std::string(const CampaignSpec&)> encode_campaign)
    : options_(std::move(options)),
      encode_campaign_(std::move(encode_campaign)),
      queue_max_(options_.queue_max != 0 ? options_.queue_max : limits::kClaimLogQueueMax) {}

RedisClaimLog::~RedisClaimLog() { stop(); }

void RedisClaimLog::start() {
  writer_ = std::thread([this] { writer_loop(); });
  lease_keeper_ = std::thread([this] { lease_loop(); });
}

void RedisClaimLog::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  lease_stop_.store(true, std::memory_order_release);
  if (lease_keeper_.joinable()) lease_keeper_.join();
}

// ------------------------------------------------------------------ campaigns

bool RedisClaimLog::register_campaign(Connection& conn, Campaign& c, std::string* conflict) {
  const CampaignSpec& spec = *c.spec;
  std::vector<std::string> args{encode_campaign_(spec)};
  for (const SkuSpec& sku : spec.skus) {
    args.push_back(sku.id);
    args.push_back(std::to_string(sku.stock));
  }
  auto r = conn.eval(kRegisterScript, {key(spec.id, "def"), key(spec.id, "stock")}, args);
  if (!r || r->is_error()) return false;
  if (r->integer == 0) {
    *conflict = "campaign \"" + spec.id + "\" exists in Redis with a different definition";
    return false;
  }
  c.registered = true;
  return true;
}

std::expected<void, std::string> RedisClaimLog::open_campaign(const CampaignSpec& spec,
                                                              CampaignStock& stock) {
  auto c = std::make_unique<Campaign>();
  c->spec = &spec;
  c->stock = &stock;
  c->block.assign(spec.skus.size(), 0);
  c->dropped.assign(spec.skus.size(), 0);
  c->next_final_check.assign(spec.skus.size(), Clock::now());
  c->last_available.assign(spec.skus.size(), 0);
  c->last_change.assign(spec.skus.size(), Clock::now());
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    // First block: an eighth of the SKU's stock, at most kLeaseUnitsMax.
    c->block[i] = std::clamp<std::int64_t>(spec.skus[i].stock / 8, 1, limits::kLeaseUnitsMax);
  }
  // Register now if Redis is reachable, so a conflicting definition is
  // refused at once; otherwise the lease keeper registers it later.
  if (auto conn = Connection::connect(options_.endpoint, options_.io_timeout)) {
    std::string conflict;
    if (!register_campaign(**conn, *c, &conflict) && !conflict.empty()) {
      return std::unexpected(conflict);
    }
  }
  std::lock_guard lock(campaigns_mu_);
  campaigns_.push_back(std::move(c));
  return {};
}

// ------------------------------------------------------------------ writer

void RedisClaimLog::append_claim(ClaimLogWrite& write) {
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && claims_.size() < queue_max_) {
      claims_.push_back(&write);
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

bool RedisClaimLog::ensure_writer_connection() {
  if (writer_conn_ && !writer_conn_->broken()) return true;
  writer_conn_.reset();
  const auto now = Clock::now();
  if (now < next_connect_) return false;
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) {
    backoff_ = std::min(kBackoffMax, backoff_ * 2);
    next_connect_ = now + backoff_;
    connected_.store(false, std::memory_order_release);
    return false;
  }
  writer_conn_ = std::move(*conn);
  backoff_ = kBackoffMin;
  connected_.store(true, std::memory_order_release);
  return true;
}

void RedisClaimLog::writer_loop() {
  std::vector<ClaimLogWrite*> claims;
  std::vector<Lookup> lookups;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !claims_.empty() || !lookups_.empty(); });
      if (claims_.empty() && lookups_.empty()) return;  // stopping, and drained
      const std::size_t n = std::min(claims_.size(), limits::kClaimLogBatchMax);
      claims.assign(claims_.begin(), claims_.begin() + static_cast<std::ptrdiff_t>(n));
      claims_.erase(claims_.begin(), claims_.begin() + static_cast<std::ptrdiff_t>(n));
      const std::size_t m = std::min(lookups_.size(), limits::kClaimLogBatchMax);
      for (std::size_t i = 0; i < m; ++i) lookups.push_back(std::move(lookups_[i]));
      lookups_.erase(lookups_.begin(), lookups_.begin() + static_cast<std::ptrdiff_t>(m));
    }
    write_batch(claims, lookups);
    claims.clear();
    lookups.clear();
  }
}

void RedisClaimLog::write_batch(std::vector<ClaimLogWrite*>& claims, std::vector<Lookup>& lookups) {
  auto fail_all = [&] {
    drop_unconfirmed(claims);
    for (ClaimLogWrite* w : claims) w->on_logged(LogStatus::kUnavailable, nullptr);
    for (Lookup& l : lookups) l.lookup->on_found(LookupStatus::kUnavailable, nullptr);
  };
  if (!ensure_writer_connection()) return fail_all();

  // One script call per campaign, claims in arrival order within it.
  // The campaign id is copied: a write's record may be freed as soon as its
  // claim is answered, while later claims of the group are still decoded.
  std::vector<std::pair<std::string, std::vector<ClaimLogWrite*>>> groups;
  for (ClaimLogWrite* w : claims) {
    const std::string_view cid = w->voucher->campaign_id;
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == cid; });
    if (it == groups.end()) {
      groups.emplace_back(std::string(cid), std::vector<ClaimLogWrite*>{});
      it = groups.end() - 1;
    }
    it->second.push_back(w);
  }
  std::vector<Command> commands;
  commands.reserve(groups.size() + lookups.size());
  for (const auto& [cid, writes] : groups) {
    std::vector<std::string> keys{key(cid, "issued"), key(cid, "leases"), key(cid, "leased")};
    std::vector<std::string> args{options_.replica_id, voucher_prefix(cid)};
    keys.reserve(3 + 2 * writes.size());
    args.reserve(2 + 10 * writes.size());
    for (const ClaimLogWrite* w : writes) {
      const VoucherRecord& v = *w->voucher;
      keys.push_back(member_key(cid, v.member_id));
      keys.push_back(voucher_prefix(cid) + v.code);
      args.push_back(std::to_string(w->per_member_limit));
      args.push_back(v.request_id);
      args.push_back(v.code);
      args.push_back(v.sku_id);
      args.push_back(v.site_id);
      args.push_back(v.member_id);
      args.push_back(std::to_string(static_cast<int>(v.sku_kind)));
      args.push_back(std::to_string(v.face_value_cents));
      args.push_back(std::to_string(v.issued_at_us));
      args.push_back(std::to_string(v.expires_at_us));
    }
    commands.push_back(Connection::evalsha(kClaimScript, keys, args));
  }
  for (const Lookup& l : lookups) {
    Command cmd{"HMGET", voucher_prefix(l.campaign_id) + l.code};
    cmd.insert(cmd.end(), kVoucherFields.begin(), kVoucherFields.end());
    commands.push_back(std::move(cmd));
  }

  auto replies = writer_conn_->pipeline(commands);
  if (!replies) {
    // The writes may or may not have been applied: answer UNAVAILABLE (a
    // retry is safe: it returns the voucher if the claim did land).
    connected_.store(false, std::memory_order_release);
    log_warning(replies.error());
    return fail_all();
  }
  // Scripts Redis forgot (it restarted): load and send those calls again.
  // A NOSCRIPT call did not run, so sending it again cannot apply it twice.
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (!is_noscript((*replies)[g])) continue;
    if (auto loaded = writer_conn_->load(kClaimScript); !loaded) break;
    if (auto again = writer_conn_->command(commands[g])) (*replies)[g] = std::move(*again);
  }

  for (std::size_t g = 0; g < groups.size(); ++g) {
    const Reply& r = (*replies)[g];
    const auto& writes = groups[g].second;
    if (r.type != Reply::Type::kArray || r.elements.size() != writes.size()) {
      log_warning("claim script failed: " + r.str);
      drop_unconfirmed(writes);
      for (ClaimLogWrite* w : writes) w->on_logged(LogStatus::kUnavailable, nullptr);
      continue;
    }
    for (std::size_t i = 0; i < writes.size(); ++i) {
      const Reply& one = r.elements[i];
      if (one.type == Reply::Type::kInteger && one.integer == 0) {
        writes[i]->on_logged(LogStatus::kWritten, nullptr);
        continue;
      }
      VoucherPtr held;
      if (one.type == Reply::Type::kArray && !one.elements.empty()) {
        held = voucher_from(groups[g].first, one.elements[0].str, one.elements, 1);
      }
      // A held code whose record is missing would mean a corrupted store:
      // refuse to guess, and let the caller retry.
      if (!held) drop_unconfirmed({writes[i]});
      writes[i]->on_logged(held ? LogStatus::kDuplicate : LogStatus::kUnavailable, held);
    }
  }
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    const Reply& r = (*replies)[groups.size() + i];
    VoucherPtr v = r.type == Reply::Type::kArray
                       ? voucher_from(lookups[i].campaign_id, lookups[i].code, r.elements, 0)
                       : nullptr;
    const LookupStatus status = v              ? LookupStatus::kFound
                                : r.is_error() ? LookupStatus::kUnavailable
                                               : LookupStatus::kNotFound;
    lookups[i].lookup->on_found(status, std::move(v));
  }
}

// ------------------------------------------------------------------ leases

void RedisClaimLog::top_up(Connection& conn, Campaign& c, bool check_final) {
  const CampaignSpec& spec = *c.spec;
  std::vector<std::string> args{options_.replica_id};
  std::vector<std::size_t> skus;
  const auto now = Clock::now();
  // Lease only where there is demand: claims went unserved since the last
  // look, or units here moved recently. An idle replica holds nothing.
  const bool missed = c.stock->take_missed();
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const bool busy = now - c.last_change[i] < kIdleLeaseReturn;
    if (!missed && !busy) continue;
    const auto sku = static_cast<std::uint32_t>(i);
    const std::int64_t low_water =
        std::max<std::int64_t>(1, c.block[i] / limits::kLeaseLowWaterDivisor);
    if (c.stock->available(sku) >= low_water) continue;  // enough units here
    // The shared pool was empty at the last look: ask again only now and then.
    if (c.block[i] == 0 && !(check_final && now >= c.next_final_check[i])) continue;
    const std::int64_t want = std::max<std::int64_t>(c.block[i], 1);
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(want));
    skus.push_back(i);
  }
  if (skus.empty()) return;
  auto r = conn.eval(kLeaseScript,
                     {key(spec.id, "stock"), key(spec.id, "leases"), key(spec.id, "leased")}, args);
  if (!r || r->type != Reply::Type::kArray || r->elements.size() != 3 * skus.size()) {
    if (!r || (r->type != Reply::Type::kError)) {
      // The answer was lost: the lease may have been granted. Count what we
      // asked for as dropped; handing it back later returns only what our
      // lease record really holds, so nothing strands in a live replica.
      for (std::size_t k = 0; k < skus.size(); ++k) {
        c.dropped[skus[k]] += std::stoll(args[2 + 2 * k]);
      }
    }
    return;
  }
  for (std::size_t k = 0; k < skus.size(); ++k) {
    const std::size_t i = skus[k];
    const auto sku = static_cast<std::uint32_t>(i);
    const std::int64_t granted = to_int(r->elements[3 * k]);
    const std::int64_t left = to_int(r->elements[3 * k + 1]);
    const std::int64_t elsewhere = to_int(r->elements[3 * k + 2]);
    if (granted > 0) c.stock->add_units(sku, granted);
    // Next block: an eighth of what is left, so the last packs spread thin
    // over replicas instead of sitting in one.
    c.block[i] = std::clamp<std::int64_t>(left / 8, left > 0 ? 1 : 0, limits::kLeaseUnitsMax);
    // Final once the pool is empty and no other replica holds a lease: an
    // empty local counter then means sold out. While others still hold
    // units, presses here hear STOCK_REFILLING (retry) instead, and the
    // units come back when those replicas go idle (or are reconciled).
    c.stock->set_final(sku, left == 0 && elsewhere <= 0);
    if (left == 0) c.next_final_check[i] = now + kFinalRecheck;
  }
}

void RedisClaimLog::return_units(Connection& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  std::vector<std::string> args{options_.replica_id};
  std::vector<std::int64_t> sent(spec.skus.size(), 0);
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    sent[i] = c.stock->take_units(static_cast<std::uint32_t>(i), INT64_MAX) + c.dropped[i];
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(sent[i]));
  }
  auto r = conn.eval(kReturnScript,
                     {key(spec.id, "stock"), key(spec.id, "leases"), key(spec.id, "leased")}, args);
  if (!r || r->is_error()) {
    // Not handed back: the units stay ours in Redis's lease record. Keep
    // them as dropped and try again on the next pass.
    c.dropped = std::move(sent);
    log_warning("could not hand leased units of \"" + spec.id + "\" back yet");
    return;
  }
  // Redis took back at most what our lease still recorded; anything above
  // that was issued by a write whose answer never reached us.
  std::fill(c.dropped.begin(), c.dropped.end(), 0);
}

void RedisClaimLog::return_idle_units(Connection& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  const auto now = Clock::now();
  std::vector<std::string> args{options_.replica_id};
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const auto sku = static_cast<std::uint32_t>(i);
    const std::int64_t here = c.stock->available(sku);
    if (here != c.last_available[i]) {
      c.last_available[i] = here;
      c.last_change[i] = now;
      continue;
    }
    if (here == 0 || now - c.last_change[i] < kIdleLeaseReturn) continue;
    const std::int64_t n = c.stock->take_units(sku, here);
    if (n == 0) continue;
    args.push_back(spec.skus[i].id);
    args.push_back(std::to_string(n));
    c.last_available[i] = 0;
    c.last_change[i] = now - kIdleLeaseReturn;  // idle: no refill without demand
    // Lease small again next time: this SKU is not busy here.
    c.block[i] = 1;
    c.next_final_check[i] = now;
  }
  if (args.size() == 1) return;
  auto r = conn.eval(kReturnScript,
                     {key(spec.id, "stock"), key(spec.id, "leases"), key(spec.id, "leased")}, args);
  if (!r || r->is_error()) {
    // Taken out of local stock but not handed back: keep them as dropped.
    for (std::size_t k = 1; k + 1 < args.size(); k += 2) {
      for (std::size_t i = 0; i < spec.skus.size(); ++i) {
        if (spec.skus[i].id == args[k]) c.dropped[i] += std::stoll(args[k + 1]);
      }
    }
  }
}

void RedisClaimLog::drop_unconfirmed(const std::vector<ClaimLogWrite*>& writes) {
  std::lock_guard lock(campaigns_mu_);
  for (const ClaimLogWrite* w : writes) {
    const VoucherRecord& v = *w->voucher;
    for (auto& c : campaigns_) {
      if (c->spec->id != v.campaign_id) continue;
      for (std::size_t i = 0; i < c->spec->skus.size(); ++i) {
        if (c->spec->skus[i].id == v.sku_id) ++c->dropped[i];
      }
    }
  }
}

void RedisClaimLog::drop_local_units() {
  // Redis is unreachable: units leased to us are "unknown" until we are back
  // (a reconciliation may meanwhile give them to others), so stop handing
  // them out; remember how many, to give them back on reconnection.
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    for (std::size_t i = 0; i < c->spec->skus.size(); ++i) {
      const auto sku = static_cast<std::uint32_t>(i);
      c->dropped[i] += c->stock->take_units(sku, INT64_MAX);
      c->stock->set_final(sku, false);
    }
  }
}

void RedisClaimLog::lease_loop() {
  std::unique_ptr<Connection> conn;
  auto next_connect = Clock::now();
  auto backoff = kBackoffMin;
  auto next_heartbeat = Clock::now();
  bool had_connection = false;
  while (!lease_stop_.load(std::memory_order_acquire)) {
    const auto now = Clock::now();
    if (!conn || conn->broken()) {
      if (conn || had_connection) {
        conn.reset();
        had_connection = false;
        connected_.store(false, std::memory_order_release);
        drop_local_units();
      }
      if (now >= next_connect) {
        if (auto c = Connection::connect(options_.endpoint, options_.io_timeout)) {
          conn = std::move(*c);
          had_connection = true;
          backoff = kBackoffMin;
          next_heartbeat = now;
        } else {
          backoff = std::min(kBackoffMax, backoff * 2);
          next_connect = now + backoff;
        }
      }
      if (!conn) {
        std::this_thread::sleep_for(kLeasePoll);
        continue;
      }
    }
    if (now >= next_heartbeat) {
      auto r = conn->command({"SET", heartbeat_key(options_.replica_id), "1", "EX",
                              std::to_string(kHeartbeatTtlSeconds)});
      if (!r) continue;  // broken: handled at the top
      next_heartbeat = now + kHeartbeatEvery;
    }
    {
      std::lock_guard lock(campaigns_mu_);
      for (auto& c : campaigns_) {
        if (!c->registered) {
          std::string conflict;
          if (!register_campaign(*conn, *c, &conflict)) {
            if (!conflict.empty()) log_warning(conflict + "; not leasing its stock");
            continue;
          }
        }
        if (std::any_of(c->dropped.begin(), c->dropped.end(),
                        [](std::int64_t d) { return d > 0; })) {
          return_units(*conn, *c);  // what we dropped while Redis was away
        }
        return_idle_units(*conn, *c);
        top_up(*conn, *c, /*check_final=*/true);
        if (conn->broken()) break;
      }
    }
    std::this_thread::sleep_for(kLeasePoll);
  }
  // Clean stop: hand every unused unit back and say goodbye.
  if (!conn || conn->broken()) conn.reset();
  if (!conn) {
    if (auto c = Connection::connect(options_.endpoint, options_.io_timeout)) conn = std::move(*c);
  }
  if (conn) {
    std::lock_guard lock(campaigns_mu_);
    for (auto& c : campaigns_) {
      if (c->registered) return_units(*conn, *c);
    }
    (void)conn->command({"DEL", heartbeat_key(options_.replica_id)});
  }
}

// ------------------------------------------------------------------ admin

std::expected<CampaignCounts, std::string> RedisClaimLog::read_counts(const CampaignSpec& spec) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected(conn.error());
  Command issued{"HMGET", key(spec.id, "issued"), "_members"};
  for (const SkuSpec& s : spec.skus) issued.push_back(s.id);
  auto r = (*conn)->command(issued);
  if (!r) return std::unexpected(r.error());
  CampaignCounts out;
  out.issued.assign(spec.skus.size(), 0);
  if (!r->elements.empty()) out.members = to_int(r->elements[0]);
  for (std::size_t i = 0; i < spec.skus.size() && i + 1 < r->elements.size(); ++i) {
    out.issued[i] = to_int(r->elements[i + 1]);
  }
  return out;
}

std::expected<std::vector<std::int64_t>, std::string> RedisClaimLog::reconcile(
    const CampaignSpec& spec) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected(conn.error());
  auto leases = (*conn)->command({"HGETALL", key(spec.id, "leases")});
  if (!leases) return std::unexpected(leases.error());
  std::unordered_set<std::string> replicas;
  for (std::size_t i = 0; i < leases->elements.size(); i += 2) {
    const std::string& f = leases->elements[i].str;
    if (const auto bar = f.find('|'); bar != std::string::npos) replicas.insert(f.substr(0, bar));
  }
  std::vector<std::string> gone;
  for (const std::string& rep : replicas) {
    auto alive = (*conn)->command({"EXISTS", heartbeat_key(rep)});
    if (!alive) return std::unexpected(alive.error());
    if (alive->integer == 0) gone.push_back(rep);
  }
  std::vector<std::int64_t> returned(spec.skus.size(), 0);
  if (gone.empty()) return returned;
  auto r =
      (*conn)->eval(kReconcileScript,
                    {key(spec.id, "stock"), key(spec.id, "leases"), key(spec.id, "leased")}, gone);
  if (!r) return std::unexpected(r.error());
  if (r->is_error()) return std::unexpected("reconcile script failed: " + r->str);
  for (std::size_t i = 0; i + 1 < r->elements.size(); i += 2) {
    for (std::size_t s = 0; s < spec.skus.size(); ++s) {
      if (spec.skus[s].id == r->elements[i].str) returned[s] += to_int(r->elements[i + 1]);
    }
  }
  return returned;
}

}  // namespace voucherd::redis
