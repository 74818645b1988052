#include "server/redis/redis_claim_log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <random>
#include <unordered_set>

#include "engine/limits.h"
#include "server/base/log.h"
#include "server/redis/records.h"

namespace voucherd::redis {
namespace {

using Clock = std::chrono::steady_clock;

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
// An idle writer connection is pinged this often, so a lost Redis is
// noticed with no traffic (and readiness follows within a second).
constexpr auto kWriterIdlePing = std::chrono::milliseconds(250);
// The first lease of a campaign is taken this long before its window opens.
constexpr auto kPreleaseLead = std::chrono::seconds(10);
// SKUs one lease call asks for (besides a final recheck of all of them).
constexpr std::size_t kLeaseSkusPerCall = 8;
// A press naming an empty SKU leases at most this many units of it.
constexpr std::int64_t kNamedLeaseUnitsMax = 16;
// Below this many units left in the shared pool, leases shrink to an eighth
// of what is left.
constexpr std::int64_t kNearlyGoneUnits = 4 * limits::kLeaseUnitsMax;
// Units asked per SKU by the final recheck.
constexpr std::int64_t kRecheckUnits = 16;
// Local units untouched this long go back to the shared pool, so the last
// packs of a campaign do not wait in a replica whose crowd has gone.
constexpr auto kIdleLeaseReturn = std::chrono::milliseconds(250);
// Reconnection backoff: doubles from 50 ms, capped at 500 ms so that a Redis
// that comes back is found within a second; each wait is jittered (half to
// all of it) so that replicas do not reconnect in step.
constexpr auto kBackoffMin = std::chrono::milliseconds(50);
constexpr auto kBackoffMax = std::chrono::milliseconds(500);

std::chrono::milliseconds jittered(std::chrono::milliseconds backoff) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const auto half = backoff.count() / 2;
  return std::chrono::milliseconds(half + static_cast<std::int64_t>(rng() % (half + 1)));
}

// Registry keys: one hash tag of their own, so both live in one slot.
constexpr const char* kRegistryKey = "vd:{registry}:campaigns";
constexpr const char* kRegistryVersionKey = "vd:{registry}:version";

// Redis's clock in Unix ms, as a Lua prelude: every replica's beat and
// lease are stamped by the one clock they share.
#define VOUCHERD_LUA_NOW_MS        \
  "local t = redis.call('TIME')\n" \
  "local now = tonumber(t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)))\n"

const Script kIndexScript(R"lua(
-- KEYS: the registry (hash: campaign id -> definition), its version.
-- ARGV: campaign id, definition. Moves the version when the index changed.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
)lua");

const Script kRegisterScript(R"lua(
-- KEYS: def, opens, stock, issued, leases, leased, seed.
-- ARGV: definition, opens at (unix us), replace (1 or 0), then (sku, stock) pairs.
-- 2: created; 1: same definition already there; 3: replaced; a different
-- definition is there and stays: 0 (no replace asked), -1 (it has opened,
-- by Redis's clock), -2 (vouchers were issued), -3 (units are leased).
local cur = redis.call('GET', KEYS[1])
if cur then
  if cur == ARGV[1] then return 1 end
  if ARGV[3] ~= '1' then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  if now >= tonumber(redis.call('GET', KEYS[2]) or '0') then return -1 end
  if redis.call('EXISTS', KEYS[4]) == 1 then return -2 end
  if redis.call('HLEN', KEYS[5]) > 0 then return -3 end
  -- A replaced LOTTERY gets a new seed (and commitment) from its first replica.
  redis.call('DEL', KEYS[3], KEYS[6], KEYS[7])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
if cur then return 3 end
return 2
)lua");

const Script kLeaseScript(VOUCHERD_LUA_NOW_MS R"lua(
-- KEYS: stock, leases, leased, returns, alive, holders.
-- ARGV: replica, lease timeout (ms), then (sku, wanted) pairs.
-- Takes at most what remains (never below zero). Per SKU returns: granted,
-- left in the pool, and units leased to the other replicas; then the count
-- of reconciliations that gave units back, the length of the holders feed,
-- and this replica's beat before this call: 0 fresh, 1 lapsed, 2 none (its
-- leases were taken back, or it never leased). The call counts as a beat.
local mine = redis.call('HGET', KEYS[5], ARGV[1])
local beat = 0
if not mine then beat = 2 elseif now - tonumber(mine) > tonumber(ARGV[2]) then beat = 1 end
redis.call('HSET', KEYS[5], ARGV[1], now)
local out = {}
for i = 3, #ARGV, 2 do
  local f = ARGV[1] .. '|' .. ARGV[i]
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local g = math.min(have, tonumber(ARGV[i + 1]))
  if g > 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[i], -g)
    redis.call('HINCRBY', KEYS[2], f, g)
    redis.call('HINCRBY', KEYS[3], ARGV[i], g)
  end
  local held = tonumber(redis.call('HGET', KEYS[2], f) or '0')
  local all = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  out[#out + 1] = g
  out[#out + 1] = have - g
  out[#out + 1] = all - held
end
out[#out + 1] = tonumber(redis.call('GET', KEYS[4]) or '0')
out[#out + 1] = redis.call('LLEN', KEYS[6])
out[#out + 1] = beat
return out
)lua");

const Script kBeatScript(VOUCHERD_LUA_NOW_MS R"lua(
-- KEYS: alive (hash: replica -> its latest beat, Unix ms by Redis's clock),
--   leases, leased, stock, returns.
-- ARGV: replica ('' for a reconciliation that does not beat), lease timeout
--   (ms), overdue (ms).
-- Stamps this replica's beat, and gives back to the pool the leased units of
-- every other replica whose latest beat is older than the timeout (or that
-- holds a lease and never beat): atomically, so a replica is never half
-- taken back. A replica paused meanwhile finds its lease records gone, and
-- the claim script refuses what it would issue from them (the fence).
-- Returns {this replica's beat before: 0 fresh, 1 lapsed, 2 none;
--   replicas taken back; replicas overdue; units they hold; units left in
--   the pool; then (sku, units given back) pairs}.
local timeout, overdue = tonumber(ARGV[2]), tonumber(ARGV[3])
local beat = 0
if ARGV[1] ~= '' then
  local mine = redis.call('HGET', KEYS[1], ARGV[1])
  if not mine then beat = 2 elseif now - tonumber(mine) > timeout then beat = 1 end
  redis.call('HSET', KEYS[1], ARGV[1], now)
end
local last = {}
local a = redis.call('HGETALL', KEYS[1])
for i = 1, #a, 2 do last[a[i]] = tonumber(a[i + 1]) end
local gone, gone_n, late, late_n, late_units = {}, 0, {}, 0, 0
local back = {}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local f = all[i]
  local bar = string.find(f, '|', 1, true)
  if bar then
    local rep = string.sub(f, 1, bar - 1)
    local n = tonumber(all[i + 1])
    local seen = last[rep]
    if rep ~= ARGV[1] and (seen == nil or now - seen > timeout) then
      local sku = string.sub(f, bar + 1)
      -- (Redis refuses "-0" as an integer, so zero is never sent.)
      if n ~= 0 then redis.call('HINCRBY', KEYS[3], sku, -n) end
      if n > 0 then
        redis.call('HINCRBY', KEYS[4], sku, n)
        back[sku] = (back[sku] or 0) + n
      end
      redis.call('HDEL', KEYS[2], f)
      if not gone[rep] then gone[rep] = true; gone_n = gone_n + 1 end
    elseif rep ~= ARGV[1] and n > 0 and now - seen > overdue then
      if not late[rep] then late[rep] = true; late_n = late_n + 1 end
      late_units = late_units + n
    end
  end
end
-- Replicas whose beat lapsed are forgotten (their leases are back above).
for rep, seen in pairs(last) do
  if rep ~= ARGV[1] and now - seen > timeout then redis.call('HDEL', KEYS[1], rep) end
end
local pool = 0
for _, v in ipairs(redis.call('HVALS', KEYS[4])) do pool = pool + tonumber(v) end
local out = {beat, gone_n, late_n, late_units, pool}
local any = false
for sku, n in pairs(back) do
  out[#out + 1] = sku
  out[#out + 1] = n
  any = true
end
if any then redis.call('INCR', KEYS[5]) end
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
-- KEYS: issued, leases, leased, expiring, holders, then (member, voucher)
--   key pairs, one per claim.
-- ARGV: replica, voucher key prefix, the campaign's per-member limit, then
--   per claim: sku, voucher record (server/redis/records.h), the minute its
--   voucher expires in and, when the limit is above 1, the request id.
-- Per claim: 0 when written; {held code, held voucher record} when the
-- member already holds this request or their whole allowance; 2 when this
-- replica's lease of the SKU has no unit left for it (the fence: its lease
-- was taken back while it was paused or cut off), and nothing is written.
-- A member with an allowance of 1 is a string key holding their code (one
-- SET NX GET decides it); a larger allowance is a hash: n, last, r:<request>.
-- The batch's records go out in one MSET, its counters once per SKU, and
-- the members it gave a first voucher in one entry of the holders feed.
local out = {}
local per_sku = {}
local records = {}
local written = {}  -- code -> record, for a later claim of the batch that finds it held
local feed = {}
local new_members = 0
local per_bucket = {}
local lease_left = {}  -- sku -> units of this replica's lease not used yet
local n = (#KEYS - 5) / 2
local limit = tonumber(ARGV[3])
local prefix_len = #ARGV[2]  -- the member key prefix (vd:{C}:m:) is as long
local stride = 3
if limit > 1 then stride = 4 end
for i = 1, n do
  local mk = KEYS[4 + 2 * i]
  local vk = KEYS[5 + 2 * i]
  local b = 3 + stride * (i - 1)
  local sku = ARGV[b + 1]
  local code = string.sub(vk, prefix_len + 1)
  local left = lease_left[sku]
  if left == nil then
    left = tonumber(redis.call('HGET', KEYS[2], ARGV[1] .. '|' .. sku) or '0')
    lease_left[sku] = left
  end
  local held = false
  local rid = ARGV[b + 4]
  if left <= 0 then
    -- Fenced, unless the member holds the answer already.
    if limit == 1 then
      held = redis.call('GET', mk)
    else
      held = redis.call('HGET', mk, 'r:' .. rid)
      if not held and tonumber(redis.call('HGET', mk, 'n') or '0') >= limit then
        held = redis.call('HGET', mk, 'last')
      end
    end
    if not held then out[i] = 2 end
  elseif limit == 1 then
    held = redis.call('SET', mk, code, 'NX', 'GET')
    if not held then
      new_members = new_members + 1
      local member = string.sub(mk, prefix_len + 1)
      feed[#feed + 1] = '+' .. #member .. ':' .. member
    end
  else
    held = redis.call('HGET', mk, 'r:' .. rid)
    if not held and tonumber(redis.call('HGET', mk, 'n') or '0') >= limit then
      held = redis.call('HGET', mk, 'last')
    end
    if not held then
      if redis.call('HINCRBY', mk, 'n', 1) == 1 then
        new_members = new_members + 1
        local member = string.sub(mk, prefix_len + 1)
        feed[#feed + 1] = '+' .. #member .. ':' .. member
      end
      redis.call('HSET', mk, 'last', code, 'r:' .. rid, code)
    end
  end
  if held then
    -- The held voucher's key has the campaign's hash tag: same slot as vk.
    out[i] = {held, written[held] or redis.call('GET', ARGV[2] .. held)}
  elseif left > 0 then
    lease_left[sku] = left - 1
    records[#records + 1] = vk
    records[#records + 1] = ARGV[b + 2]
    written[code] = ARGV[b + 2]
    per_sku[sku] = (per_sku[sku] or 0) + 1
    local bucket = sku .. '|' .. ARGV[b + 3]
    per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
    out[i] = 0
  end
end
if #records > 0 then redis.call('MSET', unpack(records)) end
for sku, k in pairs(per_sku) do
  redis.call('HINCRBY', KEYS[1], sku, k)
  redis.call('HINCRBY', KEYS[2], ARGV[1] .. '|' .. sku, -k)
  redis.call('HINCRBY', KEYS[3], sku, -k)
end
for bucket, k in pairs(per_bucket) do redis.call('HINCRBY', KEYS[4], bucket, k) end
if new_members > 0 then
  redis.call('HINCRBY', KEYS[1], '_members', new_members)
  redis.call('RPUSH', KEYS[5], table.concat(feed))
end
return out
)lua");

std::string key(std::string_view campaign_id, std::string_view suffix) {
  return campaign_key("vd:", campaign_id, suffix);
}
std::string member_key(std::string_view campaign_id, std::string_view member) {
  return key(campaign_id, "m:") + std::string(member);
}
std::string voucher_prefix(std::string_view campaign_id) { return key(campaign_id, "v:"); }
std::string endpoint_text(const Endpoint& e) { return e.host + ":" + std::to_string(e.port); }

void log_warning(const std::string& msg) { log::warn(msg); }

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
  // Give both a moment to connect and read the registry, so that a replica
  // that can reach Redis serves the store's campaigns from its first call.
  // Bounded: a Redis that is down does not hold the start up.
  const auto until = Clock::now() + options_.io_timeout;
  while (!connected() && Clock::now() < until && !link_tried_.load(std::memory_order_acquire)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void RedisClaimLog::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (!lease_keeper_.joinable()) return;  // never started: no claim can be waiting
  if (writer_.joinable()) writer_.join();
  lease_stop_.store(true, std::memory_order_release);
  lease_keeper_.join();
  // Claims still waiting for units get their answer: no unit will come.
  // Answering one may run a press of the same member that waited on it,
  // which may wait in turn: settle until none is left (bounded).
  // (REQUIRES: the engine is still there, as for the threads above.)
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    for (int round = 0; round < 64 && c->stock->waiting_claims() > 0; ++round) {
      c->stock->settle_waits(/*store_reachable=*/false);
    }
  }
}

void RedisClaimLog::note_link(const std::string& error) {
  std::lock_guard lock(link_mu_);
  const bool up = connected();  // under the lock: the last caller logs the last state
  if (!up && !error.empty()) link_tried_.store(true, std::memory_order_release);
  if (up == link_reported_up_ && (up || link_ever_reported_)) return;
  const auto now = Clock::now();
  const std::string where = endpoint_text(options_.endpoint);
  if (up) {
    if (!link_ever_up_) {
      log::info("store connected: Redis at " + where, {{"redis", where}});
    } else {
      const double outage_s = std::chrono::duration<double>(now - link_down_since_).count();
      char took[32];
      std::snprintf(took, sizeof took, "%.3f", outage_s);
      log::info("store back: Redis at " + where + " is reachable again after " + took + " s",
                {{"redis", where}, {"outage_seconds", outage_s}});
    }
    link_ever_up_ = true;
    link_reported_up_ = true;
    link_ever_reported_ = true;
    return;
  }
  if (error.empty()) return;  // down, but nothing to say yet (a connection is being made)
  link_down_since_ = now;
  link_reported_up_ = false;
  link_ever_reported_ = true;
  log::warn((link_ever_up_ ? "store lost: Redis at " : "store unreachable: Redis at ") + where +
                ": " + error + " (not ready, claims UNAVAILABLE, until it is back)",
            {{"redis", where}, {"error", error}});
}

// ------------------------------------------------------------------ campaigns

bool RedisClaimLog::register_campaign(Connection& conn, Campaign& c, std::string* conflict) {
  const CampaignSpec& spec = *c.spec;
  const bool replace = c.stored == StoredDefinition::kReplaceBeforeOpen;
  std::vector<std::string> args{encode_campaign_(spec), std::to_string(spec.starts_at_us),
                                replace ? "1" : "0"};
  for (const SkuSpec& sku : spec.skus) {
    args.push_back(sku.id);
    args.push_back(std::to_string(sku.stock));
  }
  auto r = conn.eval(
      kRegisterScript,
      {key(spec.id, "def"), key(spec.id, "opens"), key(spec.id, "stock"), key(spec.id, "issued"),
       key(spec.id, "leases"), key(spec.id, "leased"), key(spec.id, "seed")},
      args);
  if (!r || r->is_error()) return false;
  const std::string different =
      "campaign \"" + spec.id + "\" exists in Redis with a different definition";
  switch (r->integer) {
    case 0:
      *conflict = different +
                  " (before it opens, --replace-campaigns or CreateCampaign's replace_before_open "
                  "replace it)";
      return false;
    case -1:
      *conflict = different + ", and it has opened: it can no longer be replaced";
      return false;
    case -2:
      *conflict = different + ", and vouchers of it were issued: it can no longer be replaced";
      return false;
    case -3:
      *conflict = different + ", and replicas hold leased units of it: it cannot be replaced";
      return false;
    case 3:
      log_warning("campaign \"" + spec.id + "\": replaced its definition in Redis (not open yet)");
      break;
    default:
      break;
  }
  // In the registry, so every replica serves it (within kRegistryPoll).
  if (auto indexed = conn.eval(kIndexScript, {kRegistryKey, kRegistryVersionKey},
                               {spec.id, encode_campaign_(spec)});
      !indexed || indexed->is_error()) {
    return false;
  }
  if (spec.mode == CampaignMode::kLottery) {
    // The first replica's seed stays: every replica draws with it.
    const std::string proposed = to_hex(c.stock->proposed_seed());
    auto seed = conn.command({"SET", key(spec.id, "seed"), proposed, "NX", "GET"});
    if (!seed || seed->is_error()) return false;
    auto stored = seed_from_hex(seed->type == Reply::Type::kString ? seed->str : proposed);
    if (!stored) {
      *conflict = "campaign \"" + spec.id + "\": " + key(spec.id, "seed") +
                  " in Redis is not 64 hex digits";
      return false;
    }
    c.stock->set_seed(*stored);
  }
  c.registered = true;
  return true;
}

std::expected<void, std::string> RedisClaimLog::open_campaign(const CampaignSpec& spec,
                                                              CampaignStock& stock,
                                                              StoredDefinition stored) {
  auto c = std::make_unique<Campaign>();
  c->spec = &spec;
  c->stock = &stock;
  c->stored = stored;
  c->known_left.assign(spec.skus.size(), 0);
  c->final.assign(spec.skus.size(), false);
  // Replicas start leasing at different SKUs, so they do not all draw on one.
  c->cursor = std::hash<std::string>{}(options_.replica_id) % spec.skus.size();
  c->elsewhere.assign(spec.skus.size(), 0);
  c->dropped.assign(spec.skus.size(), 0);
  c->next_final_check.assign(spec.skus.size(), Clock::now());
  c->last_available.assign(spec.skus.size(), 0);
  c->last_change.assign(spec.skus.size(), Clock::now());
  c->pool_units = spec.stock_total();
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    c->known_left[i] = spec.skus[i].stock;
    // A SKU without stock never gets any: it is sold out from the start.
    c->final[i] = spec.skus[i].stock == 0;
    if (c->final[i]) stock.set_final(static_cast<std::uint32_t>(i), true);
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
    log_warning(parsed.error());
    for (DrawAttempt& d : draws) {
      d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
    }
    return;
  }
  LotteryView& view = lottery_views_[spec.id];
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

std::expected<std::vector<DrawEntry>, std::string> RedisClaimLog::draw_entries(
    const CampaignSpec& spec) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected("redis: " + conn.error());
  return read_draw_log(**conn, spec);
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

bool RedisClaimLog::ensure_writer_connection() {
  // A connection the server closed while it sat idle (Redis restarted) is
  // replaced before anything is written on it.
  if (writer_conn_ && !writer_conn_->peer_closed()) return true;
  writer_conn_.reset();
  const auto now = Clock::now();
  if (now < next_connect_) return false;
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) {
    backoff_ = std::min(kBackoffMax, backoff_ * 2);
    next_connect_ = now + jittered(backoff_);
    writer_up_.store(false, std::memory_order_release);
    note_link(conn.error());
    return false;
  }
  writer_conn_ = std::move(*conn);
  writer_last_used_ = now;
  backoff_ = kBackoffMin;
  writer_up_.store(true, std::memory_order_release);
  note_link("");
  return true;
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
                                         std::span<const std::string> /*known_codes*/,
                                         MemberVouchersLookup& done) {
  // Redis's record of the member is complete; this replica's index is not.
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && member_lookups_.size() < queue_max_) {
      member_lookups_.push_back(
          MemberLookup{std::string(campaign_id), std::string(member_id), &done});
      queued = true;
    }
  }
  if (!queued) {
    done.on_member_vouchers(LookupStatus::kUnavailable, {});
    return;
  }
  wake_.notify_one();
}

bool RedisClaimLog::queues_empty() const {
  return claims_.empty() && lookups_.empty() && redemptions_.empty() && cancellations_.empty() &&
         member_lookups_.empty() && draws_.empty();
}

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
  }
}

void RedisClaimLog::keep_writer_alive() {
  if (!ensure_writer_connection()) return;
  const auto now = Clock::now();
  if (now - writer_last_used_ < kWriterIdlePing) return;
  writer_last_used_ = now;
  auto pong = writer_conn_->command({"PING"});
  if (!pong) {
    writer_up_.store(false, std::memory_order_release);
    note_link(pong.error());
  }
}

void RedisClaimLog::write_batch(Batch& batch) {
  const std::vector<ClaimLogWrite*>& claims = batch.claims;
  const std::vector<Lookup>& lookups = batch.lookups;
  const std::vector<Redemption>& redemptions = batch.redemptions;
  const std::vector<Cancellation>& cancellations = batch.cancellations;
  const std::vector<MemberLookup>& member_lookups = batch.member_lookups;
  auto fail_all = [&] {
    drop_unconfirmed(claims);
    for (ClaimLogWrite* w : claims) w->on_logged(LogStatus::kUnavailable, nullptr);
    for (const Lookup& l : lookups) l.lookup->on_found(LookupStatus::kUnavailable, nullptr);
    // A redemption whose answer was lost may or may not have happened; a
    // retry with the same request_id tells.
    for (const Redemption& r : redemptions) {
      r.done->on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
    }
    for (const Cancellation& x : cancellations) {
      x.done->on_cancel_logged(CancelStatus::kUnavailable, nullptr);
    }
    for (const MemberLookup& m : member_lookups) {
      m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
    }
    // A draw whose answer was lost may or may not be logged; a retry with
    // the same request_id tells.
    for (const DrawAttempt& d : batch.draws) {
      d.write->on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
    }
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
  commands.reserve(groups.size() + lookups.size() + redemptions.size());
  for (const auto& [cid, writes] : groups) {
    std::vector<std::string> keys{key(cid, "issued"), key(cid, "leases"), key(cid, "leased"),
                                  key(cid, "expiring"), key(cid, "holders")};
    // Every claim of a campaign carries the campaign's per-member limit.
    const std::int32_t limit = writes.front()->per_member_limit;
    std::vector<std::string> args{options_.replica_id, voucher_prefix(cid), std::to_string(limit)};
    keys.reserve(5 + 2 * writes.size());
    args.reserve(3 + 4 * writes.size());
    for (const ClaimLogWrite* w : writes) {
      const VoucherRecord& v = *w->voucher;
      keys.push_back(member_key(cid, v.member_id));
      keys.push_back(voucher_prefix(cid) + v.code);
      args.push_back(v.sku_id);
      args.push_back(encode_voucher(v));
      args.push_back(expiry_bucket(v.expires_at_us));
      if (limit > 1) args.push_back(v.request_id);
    }
    commands.push_back(Connection::evalsha(kClaimScript, keys, args));
  }
  for (const Lookup& l : lookups) {
    commands.push_back({"GET", voucher_prefix(l.campaign_id) + l.code});
  }
  const std::size_t first_redemption = commands.size();
  for (const Redemption& r : redemptions) {
    commands.push_back(redeem_command("vd:", r.campaign_id, r.code,
                                      RedeemRequestView{r.site_id, r.request_id, r.now_us},
                                      /*track_expiring=*/true));
  }
  const std::size_t first_cancellation = commands.size();
  for (const Cancellation& x : cancellations) {
    commands.push_back(cancel_command(x.campaign_id, x.code, x.request));
  }
  const std::size_t first_member_lookup = commands.size();
  for (const MemberLookup& m : member_lookups) {
    commands.push_back(member_vouchers_command(m.campaign_id, m.member_id));
  }
  // Draws: one script call per campaign, in arrival order (retries first).
  std::vector<std::pair<const CampaignSpec*, std::vector<DrawAttempt>>> draw_groups;
  for (DrawAttempt& d : batch.draws) {
    if (d.draw_number == 0) prepare_draw(d);  // a new draw (retries are prepared)
    const CampaignSpec* spec = d.write->draw.spec;
    auto it = std::find_if(draw_groups.begin(), draw_groups.end(),
                           [&](auto& g) { return g.first == spec; });
    if (it == draw_groups.end()) {
      draw_groups.emplace_back(spec, std::vector<DrawAttempt>{});
      it = draw_groups.end() - 1;
    }
    it->second.push_back(d);
  }
  const std::size_t first_draw_group = commands.size();
  for (const auto& [spec, draws] : draw_groups) commands.push_back(draw_command(*spec, draws));

  auto replies = writer_conn_->pipeline(commands);
  if (!replies) {
    // The writes may or may not have been applied: answer UNAVAILABLE (a
    // retry is safe: it returns the voucher if the claim did land).
    writer_up_.store(false, std::memory_order_release);
    note_link(replies.error());
    return fail_all();
  }
  // Scripts Redis forgot (it restarted): load and send those calls again.
  // A NOSCRIPT call did not run, so sending it again cannot apply it twice.
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (!is_noscript((*replies)[i])) continue;
    const Script& script = i < groups.size()          ? kClaimScript
                           : i >= first_draw_group    ? draw_script()
                           : i >= first_member_lookup ? member_vouchers_script()
                           : i >= first_cancellation  ? cancel_script()
                                                      : redeem_script();
    if (auto loaded = writer_conn_->load(script); !loaded) break;
    if (auto again = writer_conn_->command(commands[i])) (*replies)[i] = std::move(*again);
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
      if (one.type == Reply::Type::kInteger && one.integer == 2) {
        // Fenced: nothing written. The SKU's local units go first, so the
        // claim, waiting again, cannot take another unit that is not ours.
        drop_fenced(*writes[i]);
        writes[i]->on_logged(LogStatus::kFenced, nullptr);
        continue;
      }
      VoucherPtr held;
      if (one.type == Reply::Type::kArray && one.elements.size() == 2) {
        held = decode_voucher(groups[g].first, one.elements[0].str, one.elements[1].str);
      }
      // A held code whose record is missing would mean a corrupted store:
      // refuse to guess, and let the caller retry.
      if (!held) drop_unconfirmed({writes[i]});
      writes[i]->on_logged(held ? LogStatus::kDuplicate : LogStatus::kUnavailable, held);
    }
  }
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    const Reply& r = (*replies)[groups.size() + i];
    VoucherPtr v = r.type == Reply::Type::kString
                       ? decode_voucher(lookups[i].campaign_id, lookups[i].code, r.str)
                       : nullptr;
    const LookupStatus status = v              ? LookupStatus::kFound
                                : r.is_error() ? LookupStatus::kUnavailable
                                               : LookupStatus::kNotFound;
    lookups[i].lookup->on_found(status, std::move(v));
  }
  for (std::size_t i = 0; i < redemptions.size(); ++i) {
    const Redemption& r = redemptions[i];
    RedeemReply answer =
        parse_redeem_reply(r.campaign_id, r.code, (*replies)[first_redemption + i]);
    r.done->on_redeem_logged(answer.status, std::move(answer.voucher));
  }
  for (std::size_t i = 0; i < cancellations.size(); ++i) {
    const Cancellation& x = cancellations[i];
    CancelReply answer =
        parse_cancel_reply(x.campaign_id, x.code, (*replies)[first_cancellation + i]);
    if (answer.status == CancelStatus::kCancelled && x.request.return_unit)
      unit_returned(x.campaign_id, x.request.sku_index);
    x.done->on_cancel_logged(answer.status, std::move(answer.voucher));
  }
  for (std::size_t i = 0; i < member_lookups.size(); ++i) {
    const MemberLookup& m = member_lookups[i];
    auto found = parse_member_vouchers(m.campaign_id, (*replies)[first_member_lookup + i]);
    if (found) {
      m.done->on_member_vouchers(LookupStatus::kFound, std::move(*found));
    } else {
      m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
    }
  }
  for (std::size_t g = 0; g < draw_groups.size(); ++g) {
    complete_draws(*draw_groups[g].first, draw_groups[g].second, (*replies)[first_draw_group + g]);
  }
}

// ------------------------------------------------------------------ leases

void RedisClaimLog::top_up(Connection& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
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
      // packs spread thin over the replicas instead of sitting in one.
      std::int64_t need = pool < kNearlyGoneUnits ? std::max<std::int64_t>(1, pool / 8)
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
          auto returns = conn.command({"GET", key(spec.id, "returns")});
          if (returns && to_int(*returns) != c.returns_seen) {
            for (std::size_t i = 0; i < n; ++i) ask(i, kRecheckUnits);
          }
        }
      }
    }
  }
  if (skus.empty()) return;

  auto r = conn.eval(kLeaseScript,
                     {key(spec.id, "stock"), key(spec.id, "leases"), key(spec.id, "leased"),
                      key(spec.id, "returns"), key(spec.id, "alive"), key(spec.id, "holders")},
                     args);
  if (!r || r->type != Reply::Type::kArray || r->elements.size() != 3 * skus.size() + 3) {
    if (!r || (r->type != Reply::Type::kError)) {
      // The answer was lost: the lease may have been granted. Count what we
      // asked for as dropped; handing it back later returns only what our
      // lease record really holds, so nothing strands in a live replica.
      for (std::size_t k = 0; k < skus.size(); ++k) {
        c.dropped[skus[k]] += std::stoll(args[3 + 2 * k]);
      }
    } else {
      log_warning("lease script failed: " + r->str);
    }
    return;
  }
  const std::size_t tail = 3 * skus.size();
  const std::int64_t holders_len = to_int(r->elements[tail + 1]);
  const std::int64_t beat_state = to_int(r->elements[tail + 2]);
  c.preleased = true;
  // A SKU turns final (an empty shelf then means SOLD_OUT) only once this
  // replica knows every member who got a voucher before the pool ran dry:
  // the feed is read up to its length in this same answer first.
  bool holders_known = false;
  for (std::size_t k = 0; k < skus.size(); ++k) {
    const std::size_t i = skus[k];
    const auto sku = static_cast<std::uint32_t>(i);
    const std::int64_t granted = to_int(r->elements[3 * k]);
    const std::int64_t left = to_int(r->elements[3 * k + 1]);
    const std::int64_t elsewhere = to_int(r->elements[3 * k + 2]);
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
  c.returns_seen = to_int(r->elements[tail]);
  if (beat_state == 1 || (beat_state == 2 && c.leased_before)) on_lapsed(conn, c);
}

void RedisClaimLog::on_lapsed(Connection& conn, Campaign& c) {
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
    c.dropped[i] += c.stock->take_units(sku, INT64_MAX);
    c.final[i] = false;
    c.stock->set_final(sku, false);
    c.last_available[i] = 0;
  }
  return_units(conn, c);
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
    const std::int64_t n = c.stock->take_units(sku, here);
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

void RedisClaimLog::drop_fenced(const ClaimLogWrite& write) {
  const VoucherRecord& v = *write.voucher;
  std::lock_guard lock(campaigns_mu_);
  for (auto& c : campaigns_) {
    if (c->spec->id != v.campaign_id) continue;
    for (std::size_t i = 0; i < c->spec->skus.size(); ++i) {
      if (c->spec->skus[i].id != v.sku_id) continue;
      const auto sku = static_cast<std::uint32_t>(i);
      // Handed back later, as far as our lease record still holds them
      // (the fenced claim's own unit was never in it).
      c->dropped[i] += c->stock->take_units(sku, INT64_MAX);
      c->final[i] = false;
      c->stock->set_final(sku, false);
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
      c->final[i] = false;
    }
  }
}

void RedisClaimLog::beat(Connection& conn, Campaign& c) {
  const CampaignSpec& spec = *c.spec;
  const auto timeout_ms = options_.lease_timeout.count();
  const auto beat_ms = std::max<std::int64_t>(1, timeout_ms / 6);
  auto r =
      conn.eval(kBeatScript,
                {key(spec.id, "alive"), key(spec.id, "leases"), key(spec.id, "leased"),
                 key(spec.id, "stock"), key(spec.id, "returns")},
                {options_.replica_id, std::to_string(timeout_ms), std::to_string(2 * beat_ms)});
  if (!r || r->type != Reply::Type::kArray || r->elements.size() < 5 ||
      r->elements.size() % 2 != 1) {
    if (r && r->is_error()) log_warning("beat script failed: " + r->str);
    return;
  }
  const std::vector<Reply>& e = r->elements;
  const std::int64_t beat_state = to_int(e[0]);
  const std::int64_t gone = to_int(e[1]);
  c.pool_units = to_int(e[4]);
  std::int64_t reclaimed = 0;
  for (std::size_t k = 5; k + 1 < e.size(); k += 2) {
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
    h.overdue_replicas = to_int(e[2]);
    h.stranded_units = to_int(e[3]);
    h.reclaimed_replicas_total += gone;
    h.reclaimed_units_total += reclaimed;
  }
  if (beat_state == 1 || (beat_state == 2 && c.leased_before)) on_lapsed(conn, c);
}

LeaseHealth RedisClaimLog::lease_health(std::string_view campaign_id) const {
  std::lock_guard lock(health_mu_);
  const auto it = health_.find(absl::string_view(campaign_id.data(), campaign_id.size()));
  return it == health_.end() ? LeaseHealth{} : it->second;
}

bool RedisClaimLog::read_holders(Connection& conn, Campaign& c, std::int64_t until) {
  const std::string feed = key(c.spec->id, "holders");
  std::vector<HolderChange> changes;
  for (int reads = 0; reads < kHoldersReadsMax; ++reads) {
    if (until >= 0 && c.holders_read >= until) return true;
    auto r = conn.command({"LRANGE", feed, std::to_string(c.holders_read),
                           std::to_string(c.holders_read + kHoldersChunk - 1)});
    if (!r || r->type != Reply::Type::kArray) return false;
    for (const Reply& entry : r->elements) {
      changes.clear();
      if (!decode_holders_entry(entry.str, changes)) {
        log_warning("campaign \"" + c.spec->id + "\": an entry of " + feed +
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

bool RedisClaimLog::poll_registry(Connection& conn) {
  auto version = conn.command({"GET", kRegistryVersionKey});
  if (!version) return false;
  const std::string seen = version->type == Reply::Type::kString ? version->str : "";
  if (seen == registry_version_ && keeper_up_.load(std::memory_order_relaxed)) return true;
  auto all = conn.command({"HGETALL", kRegistryKey});
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
  std::unique_ptr<Connection> conn;
  auto next_connect = Clock::now();
  auto backoff = kBackoffMin;
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
        if (auto c = Connection::connect(options_.endpoint, options_.io_timeout)) {
          conn = std::move(*c);
          had_connection = true;
          backoff = kBackoffMin;
          next_registry_poll = now;
        } else {
          backoff = std::min(kBackoffMax, backoff * 2);
          next_connect = now + jittered(backoff);
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
      for (auto& c : campaigns_) {
        if (!c->registered) {
          std::string conflict;
          if (!register_campaign(*conn, *c, &conflict)) {
            // No unit can come for a campaign the store refuses: its
            // waiting claims hear UNAVAILABLE rather than wait.
            c->stock->settle_waits(/*store_reachable=*/false);
            if (!conflict.empty() && !c->conflict_logged) {
              log_warning(conflict + "; not leasing its stock");
              c->conflict_logged = true;
            }
            continue;
          }
        }
        // A lottery's prizes are drawn in the store itself: nothing to lease.
        if (c->spec->mode == CampaignMode::kLottery) continue;
        if (now >= c->next_beat) {
          c->next_beat = now + beat_every;
          beat(*conn, *c);
        }
        if (std::any_of(c->dropped.begin(), c->dropped.end(),
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
    if (auto c = Connection::connect(options_.endpoint, options_.io_timeout)) conn = std::move(*c);
  }
  if (conn) {
    std::lock_guard lock(campaigns_mu_);
    for (auto& c : campaigns_) {
      if (!c->registered || c->spec->mode == CampaignMode::kLottery) continue;
      return_units(*conn, *c);
      (void)conn->command({"HDEL", key(c->spec->id, "alive"), options_.replica_id});
    }
  }
}

// ------------------------------------------------------------------ admin

std::expected<std::optional<CampaignCounts>, std::string> RedisClaimLog::read_counts(
    const CampaignSpec& spec) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected(conn.error());
  Command issued{"HMGET", key(spec.id, "issued"), "_members"};
  Command redeemed{"HMGET", key(spec.id, "redeemed")};
  for (const SkuSpec& s : spec.skus) {
    issued.push_back(s.id);
    redeemed.push_back(s.id);
  }
  auto r = (*conn)->pipeline({issued, redeemed});
  if (!r) return std::unexpected(r.error());
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

std::expected<std::vector<std::int64_t>, std::string> RedisClaimLog::reconcile(
    const CampaignSpec& spec) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected(conn.error());
  // The keepers' own beat script, without a beat of this caller's: the
  // replicas whose beat lapsed lose their leases, in one atomic step.
  const auto timeout_ms = options_.lease_timeout.count();
  auto r = (*conn)->eval(kBeatScript,
                         {key(spec.id, "alive"), key(spec.id, "leases"), key(spec.id, "leased"),
                          key(spec.id, "stock"), key(spec.id, "returns")},
                         {"", std::to_string(timeout_ms), std::to_string(timeout_ms)});
  if (!r) return std::unexpected(r.error());
  if (r->is_error()) return std::unexpected("reconcile script failed: " + r->str);
  if (r->type != Reply::Type::kArray || r->elements.size() < 5) {
    return std::unexpected(std::string("reconcile script: unexpected answer"));
  }
  std::vector<std::int64_t> returned(spec.skus.size(), 0);
  for (std::size_t i = 5; i + 1 < r->elements.size(); i += 2) {
    for (std::size_t s = 0; s < spec.skus.size(); ++s) {
      if (spec.skus[s].id == r->elements[i].str) returned[s] += to_int(r->elements[i + 1]);
    }
  }
  return returned;
}

std::expected<std::vector<VoucherPtr>, std::string> RedisClaimLog::redeemed_vouchers(
    std::string_view campaign_id) {
  return read_redeemed(options_.endpoint, options_.io_timeout, "vd:", campaign_id);
}

std::expected<std::vector<std::int64_t>, std::string> RedisClaimLog::expired_counts(
    const CampaignSpec& spec, UnixMicros now_us) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return std::unexpected(conn.error());
  auto all = (*conn)->command({"HGETALL", key(spec.id, "expiring")});
  if (!all) return std::unexpected(all.error());
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

}  // namespace voucherd::redis
