#include "bench/baseline/per_claim_log.h"

#include <iostream>
#include <unordered_set>

#include "engine/limits.h"
#include "server/base/log.h"
#include "server/redis/records.h"

namespace voucherd::redis {
namespace {

const Script kInitScript(R"lua(
-- KEYS (every key it touches): stock. ARGV: (sku, stock) pairs. Sets each
-- SKU's stock unless set.
for i = 1, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 0
)lua");

// The classic flash-sale script: one call per claim.
const Script kClaimScript(R"lua(
-- KEYS (every key it touches): stock, members, issued, voucher. ARGV:
-- member, code, sku, voucher record (server/redis/records.h).
-- 0: written; -1: the SKU's stock is gone; {held code} when the member
-- already holds a voucher (the caller reads its record: a script may touch
-- only the keys it declares).
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then return {held} end
if tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0') <= 0 then return -1 end
redis.call('HINCRBY', KEYS[1], ARGV[3], -1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
return 0
)lua");

// The baseline's cancellation: its allowances are one campaign-wide hash.
const Script kCancelScript(record_fields_lua() + R"lua(
-- KEYS (every key it touches): voucher, members, stock, issued. ARGV: code,
-- keep allowance (1 or 0).
-- Returns {status} or {status, record}: 0 cancelled, 1 not found, 2 cancelled
-- before, 3 redeemed (not cancelled).
local v = redis.call('GET', KEYS[1])
if not v then return {1} end
local state = string.sub(v, 1, 1)
if state == '2' then return {3, v} end
if state == '4' then return {2, v} end
local f = record_fields(v, 3)
local c = '4' .. string.sub(v, 2)
redis.call('SET', KEYS[1], c)
redis.call('HINCRBY', KEYS[3], f[1], 1)
redis.call('HINCRBY', KEYS[4], f[1], -1)
if ARGV[2] == '0' and redis.call('HGET', KEYS[2], f[3]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], f[3])
end
return {0, c}
)lua");

}  // namespace

PerClaimRedisLog::PerClaimRedisLog(PerClaimLogOptions options)
    : options_(std::move(options)),
      queue_max_(options_.queue_max != 0 ? options_.queue_max : limits::kClaimLogQueueMax) {}

PerClaimRedisLog::~PerClaimRedisLog() { stop(); }

void PerClaimRedisLog::start() {
  for (std::size_t i = 0; i < options_.connections; ++i) {
    workers_.emplace_back([this] { worker_loop(); });
  }
}

void PerClaimRedisLog::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

StoreResult<void> PerClaimRedisLog::open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                                  StoredDefinition /*stored*/) {
  if (spec.mode != CampaignMode::kFirstCome) {
    return store_unsupported("campaign \"" + spec.id + "\" is " + mode_name(spec.mode) +
                             ": --store=redis-per-claim is a claim benchmark baseline and "
                             "serves CAMPAIGN_MODE_FIRST_COME campaigns only");
  }
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return store_unavailable("redis: " + conn.error());
  std::vector<std::string> args;
  for (const SkuSpec& s : spec.skus) {
    args.push_back(s.id);
    args.push_back(std::to_string(s.stock));
  }
  auto r = (*conn)->eval(kInitScript, {CampaignKeys(spec.id, kBaselineKeyPrefix).stock()}, args);
  if (!r) return store_unavailable("redis: " + r.error());
  if (r->is_error()) return store_bad_reply("redis: " + r->str);
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const auto sku = static_cast<std::uint32_t>(i);
    if (spec.skus[i].stock > 0) stock.add_units(sku, spec.skus[i].stock);
    stock.set_final(sku, true);
  }
  std::lock_guard lock(stocks_mu_);
  stocks_[spec.id] = &stock;
  return {};
}

bool PerClaimRedisLog::enqueue(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || jobs_.size() >= queue_max_) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void PerClaimRedisLog::append_claim(ClaimLogWrite& write) {
  if (!enqueue(&write)) write.on_logged(LogStatus::kOverloaded, nullptr);
}

void PerClaimRedisLog::find_voucher(std::string_view campaign_id, std::string_view code,
                                    VoucherLookup& lookup) {
  if (!enqueue(Lookup{std::string(campaign_id), std::string(code), &lookup})) {
    lookup.on_found(LookupStatus::kUnavailable, nullptr);
  }
}

void PerClaimRedisLog::redeem(std::string_view campaign_id, std::string_view code,
                              const RedeemRequestView& request, VoucherRedemption& done) {
  if (!enqueue(Redemption{std::string(campaign_id), std::string(code), std::string(request.site_id),
                          std::string(request.request_id), request.now_us, &done})) {
    done.on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
  }
}

void PerClaimRedisLog::cancel(std::string_view campaign_id, std::string_view code,
                              const CancelRequestView& request, VoucherCancellation& done) {
  if (!enqueue(Cancellation{std::string(campaign_id), std::string(code), request, &done})) {
    done.on_cancel_logged(CancelStatus::kUnavailable, nullptr);
  }
}

void PerClaimRedisLog::find_member_vouchers(std::string_view campaign_id,
                                            std::string_view member_id,
                                            std::span<const std::string> /*known_codes*/,
                                            MemberVouchersLookup& done) {
  if (!enqueue(MemberLookup{std::string(campaign_id), std::string(member_id), &done})) {
    done.on_member_vouchers(LookupStatus::kUnavailable, {});
  }
}

void PerClaimRedisLog::worker_loop() {
  std::unique_ptr<Connection> conn;
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (!conn || conn->broken()) {
      conn.reset();
      if (auto c = Connection::connect(options_.endpoint, options_.io_timeout)) {
        conn = std::move(*c);
      }
    }
    if (auto* w = std::get_if<ClaimLogWrite*>(&job)) {
      if (conn) {
        run_claim(*conn, **w);
      } else {
        (*w)->on_logged(LogStatus::kUnavailable, nullptr);
      }
    } else if (const auto* l = std::get_if<Lookup>(&job)) {
      if (conn) {
        run_lookup(*conn, *l);
      } else {
        l->lookup->on_found(LookupStatus::kUnavailable, nullptr);
      }
    } else if (const auto* r = std::get_if<Redemption>(&job)) {
      if (conn) {
        run_redemption(*conn, *r);
      } else {
        r->done->on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
      }
    } else if (const auto* x = std::get_if<Cancellation>(&job)) {
      if (conn) {
        run_cancellation(*conn, *x);
      } else {
        x->done->on_cancel_logged(CancelStatus::kUnavailable, nullptr);
      }
    } else {
      const MemberLookup& m = std::get<MemberLookup>(job);
      if (conn) {
        run_member_lookup(*conn, m);
      } else {
        m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
      }
    }
  }
}

void PerClaimRedisLog::run_claim(Connection& conn, ClaimLogWrite& write) {
  const VoucherRecord& v = *write.voucher;
  const std::vector<std::string> args{std::string(v.member_id()), std::string(v.code()), v.sku_id(),
                                      encode_voucher(v)};
  const CampaignKeys keys(v.campaign_id(), kBaselineKeyPrefix);
  auto r =
      conn.eval(kClaimScript,
                {keys.stock(), keys.members(), keys.issued(), keys.voucher(v.code().view())}, args);
  if (r && r->type == Reply::Type::kInteger && r->integer == 0) {
    return write.on_logged(LogStatus::kWritten, nullptr);
  }
  if (r && r->type == Reply::Type::kArray && r->elements.size() == 1) {
    // A repeat: the held voucher's record, read with a second round trip
    // (the record as of now: a voucher redeemed meanwhile reads redeemed).
    const std::string& code = r->elements[0].str;
    auto record = conn.command({"GET", keys.voucher(code)});
    if (!record) log::warn("baseline held voucher not read", {{"error", record.error()}});
    if (record && record->type == Reply::Type::kString) {
      if (VoucherPtr held = decode_voucher(v.campaign_id(), code, record->str)) {
        return write.on_logged(LogStatus::kDuplicate, std::move(held));
      }
    }
  }
  // Lost answers, script errors and a shared stock that ran out: the claim
  // is not confirmed (this baseline does not try to account for the unit).
  if (!r) log::warn("baseline claim not confirmed", {{"error", r.error()}});
  write.on_logged(LogStatus::kUnavailable, nullptr);
}

void PerClaimRedisLog::run_lookup(Connection& conn, const Lookup& l) {
  auto r = conn.command({"GET", CampaignKeys(l.campaign_id, kBaselineKeyPrefix).voucher(l.code)});
  if (!r || r->is_error()) return l.lookup->on_found(LookupStatus::kUnavailable, nullptr);
  VoucherPtr v = decode_voucher(l.campaign_id, l.code, r->str);
  const LookupStatus status = v ? LookupStatus::kFound : LookupStatus::kNotFound;
  l.lookup->on_found(status, std::move(v));
}

void PerClaimRedisLog::run_redemption(Connection& conn, const Redemption& r) {
  const Command cmd =
      redeem_command(kBaselineKeyPrefix, r.campaign_id, r.code, {r.site_id, r.request_id, r.now_us},
                     /*track_expiring=*/false);
  auto reply = conn.command(cmd);
  if (reply && is_noscript(*reply) && conn.load(redeem_script())) reply = conn.command(cmd);
  if (!reply) return r.done->on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
  RedeemReply answer = parse_redeem_reply(r.campaign_id, r.code, *reply);
  r.done->on_redeem_logged(answer.status, std::move(answer.voucher));
}

void PerClaimRedisLog::run_cancellation(Connection& conn, const Cancellation& x) {
  const CampaignKeys keys(x.campaign_id, kBaselineKeyPrefix);
  auto reply =
      conn.eval(kCancelScript, {keys.voucher(x.code), keys.members(), keys.stock(), keys.issued()},
                {x.code, x.request.keep_allowance ? "1" : "0"});
  if (!reply) return x.done->on_cancel_logged(CancelStatus::kUnavailable, nullptr);
  CancelReply answer = parse_cancel_reply(x.campaign_id, x.code, *reply);
  if (answer.status == CancelStatus::kCancelled) {
    // The engine holds the whole stock of this one replica: the unit goes
    // back there too, matching the +1 in Redis.
    std::lock_guard lock(stocks_mu_);
    if (auto it = stocks_.find(x.campaign_id); it != stocks_.end()) {
      it->second->add_units(x.request.sku_index, 1);
    }
  }
  x.done->on_cancel_logged(answer.status, std::move(answer.voucher));
}

void PerClaimRedisLog::run_member_lookup(Connection& conn, const MemberLookup& m) {
  // The baseline allows one voucher per member: members hash -> code.
  const CampaignKeys keys(m.campaign_id, kBaselineKeyPrefix);
  auto code = conn.command({"HGET", keys.members(), m.member_id});
  if (!code || code->is_error()) return m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
  if (code->type != Reply::Type::kString)
    return m.done->on_member_vouchers(LookupStatus::kFound, {});
  auto record = conn.command({"GET", keys.voucher(code->str)});
  if (!record || record->is_error()) {
    return m.done->on_member_vouchers(LookupStatus::kUnavailable, {});
  }
  std::vector<VoucherPtr> found;
  if (VoucherPtr v = decode_voucher(m.campaign_id, code->str, record->str)) {
    found.push_back(std::move(v));
  }
  m.done->on_member_vouchers(LookupStatus::kFound, std::move(found));
}

StoreResult<std::vector<VoucherPtr>> PerClaimRedisLog::redeemed_vouchers(
    std::string_view campaign_id) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return store_unavailable(conn.error());
  return read_redeemed(*link_over(std::move(*conn)), kBaselineKeyPrefix, campaign_id);
}

StoreResult<std::vector<std::int64_t>> PerClaimRedisLog::expired_counts(const CampaignSpec& spec,
                                                                        UnixMicros now_us) {
  auto conn = Connection::connect(options_.endpoint, options_.io_timeout);
  if (!conn) return store_unavailable(conn.error());
  const std::string prefix = CampaignKeys(spec.id, kBaselineKeyPrefix).voucher_prefix();
  std::vector<std::int64_t> out(spec.skus.size(), 0);
  std::unordered_set<std::string> seen;  // SCAN may return a key twice
  std::string cursor = "0";
  do {
    auto page = (*conn)->command({"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000"});
    if (!page) return store_unavailable(page.error());
    if (page->type != Reply::Type::kArray || page->elements.size() != 2) {
      return store_bad_reply("unexpected SCAN reply: " + page->str);
    }
    cursor = page->elements[0].str;
    for (const Reply& k : page->elements[1].elements) {
      if (!seen.insert(k.str).second) continue;
      auto value = (*conn)->command({"GET", k.str});
      if (!value) return store_unavailable(value.error());
      VoucherPtr v = decode_voucher(spec.id, k.str.substr(prefix.size()), value->str);
      if (!v || visible_state(*v, now_us) != VoucherState::kExpired) continue;
      for (std::size_t s = 0; s < spec.skus.size(); ++s) {
        if (spec.skus[s].id == v->sku_id()) ++out[s];
      }
    }
  } while (cursor != "0");
  return out;
}

void PerClaimRedisLog::append_draw(DrawLogWrite& write) {
  write.on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
}

StoreResult<std::vector<DrawEntry>> PerClaimRedisLog::draw_entries(const CampaignSpec& spec) {
  return store_unsupported("campaign \"" + spec.id + "\" is not served by --store=redis-per-claim");
}

void PerClaimRedisLog::append_application(ApplicationLogWrite& write) {
  write.on_application_logged(ApplyLogStatus::kUnavailable, ApplicationEntry{});
}

void PerClaimRedisLog::find_application(const CampaignSpec& /*spec*/,
                                        std::string_view /*member_id*/, ApplicationLookup& lookup) {
  lookup.on_application_found(LookupStatus::kUnavailable, ApplicationEntry{},
                              ApplicationState::kPending, nullptr);
}

StoreResult<AllocationTurn> PerClaimRedisLog::take_allocation(const CampaignSpec& spec,
                                                              std::string_view /*replica*/) {
  return store_unsupported("campaign \"" + spec.id +
                           "\": --store=redis-per-claim takes no applications");
}

StoreResult<std::vector<ApplicationEntry>> PerClaimRedisLog::read_applications(
    const CampaignSpec& spec, const AllocationTurn& /*turn*/) {
  return store_unsupported("campaign \"" + spec.id +
                           "\": --store=redis-per-claim takes no applications");
}

StoreResult<AllocationTurn> PerClaimRedisLog::write_allocation(
    const CampaignSpec& spec, const AllocationTurn& /*turn*/, std::int64_t /*from*/,
    std::int64_t /*to*/, std::span<const AllocatedVoucher> /*winners*/) {
  return store_unsupported("campaign \"" + spec.id +
                           "\": --store=redis-per-claim takes no applications");
}

StoreResult<ApplicationCounts> PerClaimRedisLog::application_counts(const CampaignSpec& spec) {
  return store_unsupported("campaign \"" + spec.id +
                           "\": --store=redis-per-claim takes no applications");
}

StoreResult<ApplicationOutcomes> PerClaimRedisLog::application_outcomes(const CampaignSpec& spec) {
  return store_unsupported("campaign \"" + spec.id +
                           "\": --store=redis-per-claim takes no applications");
}

}  // namespace voucherd::redis
