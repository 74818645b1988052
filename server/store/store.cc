#include "server/store/store.h"

namespace voucherd {

void apply_counts(const CampaignCounts& counts, CampaignStatsView& stats) {
  stats.issued = stats.redeemed = stats.remaining = 0;
  stats.members = counts.members;
  for (std::size_t i = 0; i < stats.skus.size(); ++i) {
    SkuStatsView& s = stats.skus[i];
    s.issued = i < counts.issued.size() ? counts.issued[i] : 0;
    s.redeemed = i < counts.redeemed.size() ? counts.redeemed[i] : 0;
    s.remaining = s.stock - s.issued;
    stats.issued += s.issued;
    stats.redeemed += s.redeemed;
    stats.remaining += s.remaining;
  }
}

std::expected<CampaignStatsView, std::string> storewide_stats(const ClaimEngine& engine,
                                                              Store& store,
                                                              const CampaignSpec& spec) {
  auto stats = engine.campaign_stats(spec.id);
  if (!stats) return std::unexpected("campaign \"" + spec.id + "\" is not loaded");
  // While the store is known to be down, a read would only wait for its
  // connection to fail (on the thread that also answers /healthz).
  if (!store.connected()) {
    return std::unexpected(std::string("the ") + std::string(store.kind()) +
                           " store is not connected");
  }
  auto counts = store.read_counts(spec);
  if (!counts) return std::unexpected(counts.error().message);
  if (*counts) apply_counts(**counts, *stats);
  return std::move(*stats);
}

std::optional<CampaignStatsView> best_stats(const ClaimEngine& engine, Store& store,
                                            const CampaignSpec& spec) {
  if (auto stats = storewide_stats(engine, store, spec)) return std::move(*stats);
  auto local = engine.campaign_stats(spec.id);
  if (!local) return std::nullopt;
  return std::move(*local);
}

}  // namespace voucherd
