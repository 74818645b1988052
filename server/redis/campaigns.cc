// Campaigns in the store: registration (the definition, the stock, the
// registry entry and the seed of a LOTTERY or APPLY_THEN_DRAW campaign) and
// open_campaign.
#include <functional>

#include "server/base/log.h"
#include "server/redis/claim_log_internal.h"
#include "server/redis/keys.h"
#include "server/redis/redis_claim_log.h"
#include "server/redis/script_replies.h"
#include "server/redis/scripts.h"

namespace voucherd::redis {

using internal::Clock;

bool RedisClaimLog::register_campaign(Link& conn, Campaign& c, std::string* conflict) {
  const CampaignSpec& spec = *c.spec;
  const bool replace = c.stored == StoredDefinition::kReplaceBeforeOpen;
  const CampaignKeys keys(spec.id);
  std::vector<std::string> args{encode_campaign_(spec), std::to_string(spec.starts_at_us),
                                replace ? "1" : "0"};
  for (const SkuSpec& sku : spec.skus) {
    args.push_back(sku.id);
    args.push_back(std::to_string(sku.stock));
  }
  auto r = conn.eval(register_script(),
                     {keys.def(), keys.opens(), keys.stock(), keys.issued(), keys.leases(),
                      keys.leased(), keys.seed()},
                     args);
  if (!r || r->is_error()) return false;
  const std::string different =
      "campaign \"" + spec.id + "\" exists in Redis with a different definition";
  switch (r->integer) {
    case replies::registration::kDifferent:
      *conflict = different +
                  " (before it opens, --replace-campaigns or CreateCampaign's replace_before_open "
                  "replace it)";
      return false;
    case replies::registration::kHasOpened:
      *conflict = different + ", and it has opened: it can no longer be replaced";
      return false;
    case replies::registration::kHasIssued:
      *conflict = different + ", and vouchers of it were issued: it can no longer be replaced";
      return false;
    case replies::registration::kHasLeases:
      *conflict = different + ", and replicas hold leased units of it: it cannot be replaced";
      return false;
    case replies::registration::kReplaced:
      log::warn("campaign \"" + spec.id + "\": replaced its definition in Redis (not open yet)");
      break;
    default:  // kCreated, kSame: stored as asked
      break;
  }
  // In the registry, so every replica serves it (within kRegistryPoll).
  if (auto indexed =
          conn.eval(index_script(), {std::string(kRegistryKey), std::string(kRegistryVersionKey)},
                    {spec.id, encode_campaign_(spec)});
      !indexed || indexed->is_error()) {
    return false;
  }
  if (has_seed(spec.mode)) {
    // The first replica's seed stays: every replica draws (or ranks) with it.
    const std::string proposed = to_hex(c.stock->proposed_seed());
    auto seed = conn.command({"SET", keys.seed(), proposed, "NX", "GET"});
    if (!seed || seed->is_error()) return false;
    auto stored = seed_from_hex(seed->type == Reply::Type::kString ? seed->str : proposed);
    if (!stored) {
      *conflict = "campaign \"" + spec.id + "\": " + keys.seed() + " in Redis is not 64 hex digits";
      return false;
    }
    c.stock->set_seed(*stored);
  }
  c.registered = true;
  return true;
}

StoreResult<void> RedisClaimLog::open_campaign(const CampaignSpec& spec, CampaignStock& stock,
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
  if (auto conn = open_link()) {
    std::string conflict;
    if (!register_campaign(**conn, *c, &conflict) && !conflict.empty()) {
      return store_conflict(conflict);
    }
  }
  Campaign* added = c.get();
  {
    std::lock_guard lock(campaigns_mu_);
    campaigns_.push_back(std::move(c));
  }
  std::lock_guard lock(notes_mu_);
  writer_index_.push_back(added);
  return {};
}

}  // namespace voucherd::redis
