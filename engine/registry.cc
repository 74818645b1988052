// registry.cc — the campaigns an engine serves: creation (with the claim
// log's open_campaign), look-up by id, the list, and their stats.
#include "engine/check.h"
#include "engine/claim_engine.h"

namespace voucherd {
namespace {

std::size_t slot_hash(std::string_view id) { return ShardedMap<int>::hash(id); }

}  // namespace

ClaimEngine::ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
                         std::span<const std::uint8_t> secret)
    : log_(log),
      clock_(clock),
      random_(random),
      signer_(secret),
      press_epoch_us_(clock.now_us()),
      slots_(std::make_unique<std::atomic<CampaignRuntime*>[]>(limits::kCampaignSlots)) {}

ClaimEngine::ClaimEngine(ClaimLog& log, const Clock& clock, RandomSource& random,
                         std::span<const std::vector<std::uint8_t>> secrets)
    : log_(log),
      clock_(clock),
      random_(random),
      signer_(secrets),
      press_epoch_us_(clock.now_us()),
      slots_(std::make_unique<std::atomic<CampaignRuntime*>[]>(limits::kCampaignSlots)) {}

ClaimEngine::~ClaimEngine() = default;

std::expected<const CampaignRuntime*, CreateError> ClaimEngine::create_campaign(
    CampaignSpec spec, StoredDefinition stored) {
  if (auto valid = validate_and_normalize(spec); !valid) {
    return std::unexpected(CreateError{Outcome::kInvalidArgument, std::move(valid.error())});
  }
  std::lock_guard lock(create_mu_);
  if (const CampaignRuntime* existing = find_campaign(spec.id)) {
    if (existing->spec() == spec) return existing;
    return std::unexpected(CreateError{
        Outcome::kCampaignExists,
        {"campaign.id", "the definition given differs from the one this replica serves"}});
  }
  if (owned_.size() >= limits::kCampaignsMax) {
    return std::unexpected(
        CreateError{Outcome::kOverloaded,
                    {"campaign", "this voucherd holds " + std::to_string(limits::kCampaignsMax) +
                                     " campaigns, its limit"}});
  }
  LotterySeed proposed{};
  if (has_seed(spec.mode)) random_.fill(proposed);
  auto runtime = std::make_unique<CampaignRuntime>(std::move(spec), signer_, proposed);
  CampaignRuntime* c = runtime.get();
  if (auto opened = log_.open_campaign(c->spec(), *c, stored); !opened) {
    // The store's kind of refusal, not always "exists": a store that cannot
    // be reached says so (UNAVAILABLE), and one that does not serve this
    // kind of campaign says that.
    return std::unexpected(
        CreateError{outcome_of(opened.error().kind), {"campaign", opened.error().message}});
  }
  owned_.push_back(std::move(runtime));

  // Link into the tag list first, then publish in the id table. Release
  // stores pair with the readers' acquire loads, so a reader that sees the
  // pointer sees the fully built campaign.
  c->next_same_tag_.store(by_tag_[c->tag()].load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
  by_tag_[c->tag()].store(c, std::memory_order_release);
  std::size_t i = slot_hash(c->spec().id) & (limits::kCampaignSlots - 1);
  while (slots_[i].load(std::memory_order_relaxed) != nullptr) {
    i = (i + 1) & (limits::kCampaignSlots - 1);
  }
  slots_[i].store(c, std::memory_order_release);
  return c;
}

CampaignRuntime* ClaimEngine::find_mutable(std::string_view id) const {
  std::size_t i = slot_hash(id) & (limits::kCampaignSlots - 1);
  // The table is at most half full, so a probe ends at an empty slot.
  for (std::size_t probes = 0; probes < limits::kCampaignSlots; ++probes) {
    CampaignRuntime* c = slots_[i].load(std::memory_order_acquire);
    if (c == nullptr) return nullptr;
    if (c->spec().id == id) return c;
    i = (i + 1) & (limits::kCampaignSlots - 1);
  }
  return nullptr;
}

const CampaignRuntime* ClaimEngine::find_campaign(std::string_view id) const {
  return find_mutable(id);
}

std::vector<const CampaignRuntime*> ClaimEngine::campaigns() const {
  std::lock_guard lock(create_mu_);
  std::vector<const CampaignRuntime*> out;
  for (const auto& c : owned_) out.push_back(c.get());
  return out;
}

std::expected<CampaignStatsView, Outcome> ClaimEngine::campaign_stats(
    std::string_view campaign_id) const {
  const CampaignRuntime* c = find_campaign(campaign_id);
  if (c == nullptr) return std::unexpected(Outcome::kCampaignNotFound);
  CampaignStatsView out;
  out.campaign_id = c->spec().id;
  out.members = c->members_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < c->spec().skus.size(); ++i) {
    const SkuSpec& s = c->spec().skus[i];
    SkuStatsView v;
    v.sku_id = s.id;
    v.stock = s.stock;
    v.issued = c->sku_counters_[i].issued.load(std::memory_order_relaxed);
    v.redeemed = c->sku_counters_[i].redeemed.load(std::memory_order_relaxed);
    v.remaining = v.stock - v.issued;
    out.stock_total += v.stock;
    out.issued += v.issued;
    out.redeemed += v.redeemed;
    out.remaining += v.remaining;
    out.skus.push_back(std::move(v));
  }
  return out;
}

}  // namespace voucherd
