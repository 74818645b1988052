// campaigns.h — test support: the campaigns the end-to-end tests serve, as
// --campaigns files (voucher.v1.CampaignSet in proto JSON) or as messages
// for CreateCampaign, built in one place; and the timestamp conversions the
// tests need.
//
// Usage:
//   const std::string file = CampaignJson("ops").spring_site()
//                                .sku("spa", "Spa", 19800, 40).write(dir, "ops.json");
//   client.create_campaign(CampaignJson("wave").first_come_skus(2'000, 8).message());
//
// Thread-safety: none (value types and pure functions).
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.pb.h"

namespace voucherd::testing {

using SystemTime = std::chrono::system_clock::time_point;

// "2024-06-18T02:00:00Z": whole seconds, UTC.
std::string rfc3339(SystemTime t);
google::protobuf::Timestamp timestamp_of(SystemTime t);

// One campaign, FIRST_COME and open from 2020 to 2099 unless told otherwise.
class CampaignJson {
 public:
  explicit CampaignJson(const std::string& id, const std::string& name = "");

  CampaignJson& window(SystemTime starts, SystemTime ends);
  CampaignJson& window(const std::string& starts_rfc3339, const std::string& ends_rfc3339);
  CampaignJson& per_member_limit(int limit);
  CampaignJson& voucher_valid_seconds(std::int64_t seconds);
  // LOTTERY with these odds and draws per member per day.
  CampaignJson& lottery(double win_probability, int draws_per_day);
  // APPLY_THEN_DRAW, its packs allocated at `allocation_at`.
  CampaignJson& apply_then_draw(SystemTime allocation_at);

  // `kind`: "SKU_KIND_HOT_SPRING", "SKU_KIND_HOTEL", "SKU_KIND_SCENIC", ...
  CampaignJson& site(const std::string& id, const std::string& name, const std::string& city,
                     const std::string& kind);
  // site-1 "Spring", a hot spring in Qingyuan: the site most tests use.
  CampaignJson& spring_site();
  // A SKU of the last site added, of its kind.
  CampaignJson& sku(const std::string& id, const std::string& name, std::int64_t face_value_cents,
                    std::int64_t stock);
  // A SKU at `site_id` of `kind`.
  CampaignJson& sku_at(const std::string& site_id, const std::string& kind, const std::string& id,
                       const std::string& name, std::int64_t face_value_cents, std::int64_t stock);
  // `skus` SKUs sku-0 .. of the last site added, "Tickets" at 198.00,
  // sharing `stock` (the first ones get one more when it does not divide).
  CampaignJson& shared_stock(std::int64_t stock, int skus, std::int64_t face_value_cents = 19'800,
                             const std::string& name = "Tickets");

  // {"campaigns":[this]}: a --campaigns file's content.
  [[nodiscard]] std::string text() const;
  // Writes text() to `file` in `dir`; its path.
  [[nodiscard]] std::string write(const TempDir& dir, const std::string& file) const;
  // The campaign as a message, for CreateCampaign.
  [[nodiscard]] voucher::v1::Campaign message() const;

 private:
  nlohmann::ordered_json json_;
};

// One FIRST_COME campaign `id`, open from 2020 to 2099, one site (site-1),
// `skus` SKUs (sku-0 ..) sharing `stock` packs, one per member; and that as
// a --campaigns file's content.
CampaignJson first_come_campaign(const std::string& id, std::int64_t stock, int skus);
std::string first_come_campaign_json(const std::string& id, std::int64_t stock, int skus);

// The Guangdong sample (deploy/campaigns/guangdong-2024.json, 59,000 packs).
std::string guangdong_sample_path();
// The same packs as an APPLY_THEN_DRAW campaign
// (deploy/campaigns/guangdong-apply-2024.json: a 7-day window, allocated 2
// hours after it).
std::string guangdong_apply_sample_path();
// The Guangdong sample with a window open for the whole test run (every
// replica must load the very same definition); its path in `dir`.
std::string guangdong_always_open(const TempDir& dir);

// Two sites (site-1 "Spring", a hot spring; site-2 "Hotel" in Shaoguan) with
// one SKU each: "spring" (Spa, 198.00) and "room" (Room, 398.00).
CampaignJson spring_and_hotel(const std::string& id, std::int64_t spring_stock,
                              std::int64_t room_stock);

}  // namespace voucherd::testing
