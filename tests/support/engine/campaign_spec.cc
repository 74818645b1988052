#include "tests/support/engine/campaign_spec.h"

#include <utility>

namespace voucherd::testing {

SpecBuilder::SpecBuilder(std::string id, std::string name) {
  spec_.id = std::move(id);
  spec_.name = std::move(name);
  spec_.mode = CampaignMode::kFirstCome;
  spec_.starts_at_us = kAlwaysOpenStartUs;
  spec_.ends_at_us = kAlwaysOpenEndUs;
}

SpecBuilder& SpecBuilder::mode(CampaignMode mode) {
  spec_.mode = mode;
  return *this;
}

SpecBuilder& SpecBuilder::lottery(double p) {
  spec_.mode = CampaignMode::kLottery;
  spec_.lottery.win_probability = p;
  return *this;
}

SpecBuilder& SpecBuilder::apply_then_draw(UnixMicros allocation_at_us) {
  spec_.mode = CampaignMode::kApplyThenDraw;
  spec_.allocation_at_us = allocation_at_us;
  return *this;
}

SpecBuilder& SpecBuilder::draws_per_day(std::int32_t draws) {
  spec_.lottery.draws_per_day = draws;
  return *this;
}

SpecBuilder& SpecBuilder::prizes_per_member(std::int32_t prizes) {
  spec_.lottery.prizes_per_member = prizes;
  return *this;
}

SpecBuilder& SpecBuilder::window(UnixMicros starts_at_us, UnixMicros ends_at_us) {
  spec_.starts_at_us = starts_at_us;
  spec_.ends_at_us = ends_at_us;
  return *this;
}

SpecBuilder& SpecBuilder::per_member_limit(std::int32_t limit) {
  spec_.per_member_limit = limit;
  return *this;
}

SpecBuilder& SpecBuilder::voucher_valid_days(std::int32_t days) {
  spec_.voucher_valid_days = days;
  return *this;
}

SpecBuilder& SpecBuilder::site(std::string id, std::string city, SkuKind kind, std::string name) {
  spec_.sites.push_back(SiteSpec{std::move(id), std::move(name), std::move(city), kind});
  return *this;
}

SpecBuilder& SpecBuilder::sku(std::string id, std::int64_t stock, std::int64_t face_value_cents,
                              std::string name) {
  const SiteSpec& at = spec_.sites.back();  // REQUIRES: a site was added
  return sku(SkuSpec{std::move(id), at.id, at.kind, std::move(name), face_value_cents, stock});
}

SpecBuilder& SpecBuilder::sku(SkuSpec sku) {
  spec_.skus.push_back(std::move(sku));
  return *this;
}

SpecBuilder& SpecBuilder::guangdong_sites_and_skus(std::int64_t spa_stock, std::int64_t night_stock,
                                                   std::int64_t tour_stock,
                                                   std::int64_t tour_cents) {
  site("site-001", "Qingyuan", SkuKind::kHotSpring, "Hot Spring Resort");
  sku("sku-001", spa_stock, 19'900, "Spa pass");
  site("site-002", "Chaozhou", SkuKind::kHomestay, "Old Town Homestay");
  sku("sku-002", night_stock, 39'900, "One night");
  return sku(
      SkuSpec{"sku-003", "site-002", SkuKind::kScenic, "Walking tour", tour_cents, tour_stock});
}

}  // namespace voucherd::testing
