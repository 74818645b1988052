// campaign_spec.h — test support: campaign specs built in one place.
//
// A fluent builder over CampaignSpec with the defaults tests share (FIRST_COME,
// open from 1 µs past the epoch to far in the future, limits left to
// validation's defaults), and the shapes several tests use.
//
// Usage:
//   CampaignSpec c = SpecBuilder("spring", "Spring")
//                        .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Site")
//                        .sku("spa", 5, 100, "Spa")   // at the last site added
//                        .build();
//
// Thread-safety: none (a value type).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"

namespace voucherd::testing {

// The window SpecBuilder starts with: open for any test clock.
inline constexpr UnixMicros kAlwaysOpenStartUs = 1;
inline constexpr UnixMicros kAlwaysOpenEndUs = INT64_C(4'000'000'000'000'000);

class SpecBuilder {
 public:
  explicit SpecBuilder(std::string id, std::string name = "Test campaign");

  SpecBuilder& mode(CampaignMode mode);
  // LOTTERY, winning with probability `p`.
  SpecBuilder& lottery(double p);
  // APPLY_THEN_DRAW, allocated at `allocation_at_us` (at or after the end).
  SpecBuilder& apply_then_draw(UnixMicros allocation_at_us);
  SpecBuilder& draws_per_day(std::int32_t draws);
  SpecBuilder& prizes_per_member(std::int32_t prizes);
  SpecBuilder& window(UnixMicros starts_at_us, UnixMicros ends_at_us);
  SpecBuilder& per_member_limit(std::int32_t limit);
  SpecBuilder& voucher_valid_days(std::int32_t days);

  SpecBuilder& site(std::string id, std::string city, SkuKind kind, std::string name);
  // A SKU of the last site added, of that site's kind.
  SpecBuilder& sku(std::string id, std::int64_t stock, std::int64_t face_value_cents,
                   std::string name);
  SpecBuilder& sku(SkuSpec sku);

  // The Guangdong sample's shape: site-001 (hot spring, Qingyuan) and
  // site-002 (homestay, Chaozhou); sku-001 "Spa pass" (199.00) at site-001,
  // sku-002 "One night" (399.00) and sku-003 "Walking tour" (scenic, priced
  // `tour_cents`) at site-002.
  SpecBuilder& guangdong_sites_and_skus(std::int64_t spa_stock, std::int64_t night_stock,
                                        std::int64_t tour_stock, std::int64_t tour_cents);

  [[nodiscard]] CampaignSpec build() const { return spec_; }
  // NOLINTNEXTLINE(google-explicit-constructor): builders read best without .build()
  operator CampaignSpec() const { return spec_; }

 private:
  CampaignSpec spec_;
};

}  // namespace voucherd::testing
