#include "tests/support/campaigns.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <array>
#include <ctime>
#include <fstream>
#include <sstream>

namespace voucherd::testing {

std::string rfc3339(SystemTime t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

google::protobuf::Timestamp timestamp_of(SystemTime t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

CampaignJson::CampaignJson(const std::string& id, const std::string& name) {
  json_["id"] = id;
  json_["name"] = name.empty() ? "Test " + id : name;
  json_["mode"] = "CAMPAIGN_MODE_FIRST_COME";
  json_["startsAt"] = "2020-01-01T00:00:00Z";
  json_["endsAt"] = "2099-01-01T00:00:00Z";
  json_["sites"] = nlohmann::ordered_json::array();
  json_["skus"] = nlohmann::ordered_json::array();
}

CampaignJson& CampaignJson::window(SystemTime starts, SystemTime ends) {
  return window(rfc3339(starts), rfc3339(ends));
}

CampaignJson& CampaignJson::window(const std::string& starts_rfc3339,
                                   const std::string& ends_rfc3339) {
  json_["startsAt"] = starts_rfc3339;
  json_["endsAt"] = ends_rfc3339;
  return *this;
}

CampaignJson& CampaignJson::per_member_limit(int limit) {
  json_["perMemberLimit"] = limit;
  return *this;
}

CampaignJson& CampaignJson::voucher_valid_seconds(std::int64_t seconds) {
  json_["voucherValidSeconds"] = std::to_string(seconds);  // int64: a string in proto JSON
  return *this;
}

CampaignJson& CampaignJson::lottery(double win_probability, int draws_per_day) {
  json_["mode"] = "CAMPAIGN_MODE_LOTTERY";
  json_["lottery"] = {{"winProbability", win_probability}, {"drawsPerDay", draws_per_day}};
  return *this;
}

CampaignJson& CampaignJson::apply_then_draw(SystemTime allocation_at) {
  json_["mode"] = "CAMPAIGN_MODE_APPLY_THEN_DRAW";
  json_["allocationAt"] = rfc3339(allocation_at);
  return *this;
}

CampaignJson& CampaignJson::site(const std::string& id, const std::string& name,
                                 const std::string& city, const std::string& kind) {
  json_["sites"].push_back({{"id", id}, {"name", name}, {"city", city}, {"kind", kind}});
  return *this;
}

CampaignJson& CampaignJson::spring_site() {
  return site("site-1", "Spring", "Qingyuan", "SKU_KIND_HOT_SPRING");
}

CampaignJson& CampaignJson::sku(const std::string& id, const std::string& name,
                                std::int64_t face_value_cents, std::int64_t stock) {
  const auto& at = json_["sites"].back();  // REQUIRES: a site was added
  return sku_at(at["id"], at["kind"], id, name, face_value_cents, stock);
}

CampaignJson& CampaignJson::sku_at(const std::string& site_id, const std::string& kind,
                                   const std::string& id, const std::string& name,
                                   std::int64_t face_value_cents, std::int64_t stock) {
  json_["skus"].push_back({{"id", id},
                           {"siteId", site_id},
                           {"kind", kind},
                           {"name", name},
                           {"faceValueCents", std::to_string(face_value_cents)},
                           {"stock", std::to_string(stock)}});
  return *this;
}

CampaignJson& CampaignJson::shared_stock(std::int64_t stock, int skus,
                                         std::int64_t face_value_cents, const std::string& name) {
  for (int i = 0; i < skus; ++i) {
    sku("sku-" + std::to_string(i), name, face_value_cents,
        stock / skus + (i < stock % skus ? 1 : 0));
  }
  return *this;
}

std::string CampaignJson::text() const {
  nlohmann::ordered_json set;
  set["campaigns"] = nlohmann::ordered_json::array({json_});
  return set.dump();
}

std::string CampaignJson::write(const TempDir& dir, const std::string& file) const {
  return dir.write(file, text()).string();
}

voucher::v1::Campaign CampaignJson::message() const {
  voucher::v1::Campaign out;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json_.dump(), &out);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString() << "\n" << json_.dump();
  return out;
}

CampaignJson first_come_campaign(const std::string& id, std::int64_t stock, int skus) {
  CampaignJson c(id);
  c.per_member_limit(1).spring_site().shared_stock(stock, skus);
  return c;
}

std::string first_come_campaign_json(const std::string& id, std::int64_t stock, int skus) {
  return first_come_campaign(id, stock, skus).text();
}

std::string guangdong_sample_path() {
  return std::string(VOUCHERD_SOURCE_DIR) + "/deploy/campaigns/guangdong-2024.json";
}

std::string guangdong_apply_sample_path() {
  return std::string(VOUCHERD_SOURCE_DIR) + "/deploy/campaigns/guangdong-apply-2024.json";
}

std::string guangdong_always_open(const TempDir& dir) {
  std::ifstream in(guangdong_sample_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string json = ss.str();
  for (auto [from, to] : {std::pair{"2024-06-18T02:00:00Z", "2020-01-01T00:00:00Z"},
                          std::pair{"2024-12-31T16:00:00Z", "2099-01-01T00:00:00Z"}}) {
    const auto at = json.find(from);
    if (at != std::string::npos) json.replace(at, std::string(from).size(), to);
  }
  return dir.write("guangdong-open.json", json).string();
}

CampaignJson spring_and_hotel(const std::string& id, std::int64_t spring_stock,
                              std::int64_t room_stock) {
  CampaignJson c(id);
  c.spring_site().sku("spring", "Spa", 19'800, spring_stock);
  c.site("site-2", "Hotel", "Shaoguan", "SKU_KIND_HOTEL").sku("room", "Room", 39'800, room_stock);
  return c;
}

}  // namespace voucherd::testing
