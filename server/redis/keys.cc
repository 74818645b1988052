#include "server/redis/keys.h"

namespace voucherd::redis {

std::string campaign_key(std::string_view prefix, std::string_view campaign_id,
                         std::string_view suffix) {
  std::string k;
  k.reserve(prefix.size() + campaign_id.size() + suffix.size() + 3);
  k.append(prefix).append("{").append(campaign_id).append("}:").append(suffix);
  return k;
}

CampaignKeys::CampaignKeys(std::string_view campaign_id, std::string_view prefix)
    : tagged_(campaign_key(prefix, campaign_id, "")) {}

std::string CampaignKeys::key(std::string_view suffix) const {
  std::string k;
  k.reserve(tagged_.size() + suffix.size());
  k.append(tagged_).append(suffix);
  return k;
}

std::string CampaignKeys::drawn_chunk(std::int64_t k) const {
  return key("drawn:") + std::to_string(k);
}

std::string CampaignKeys::member(std::string_view member_id) const {
  return key("m:").append(member_id);
}

std::string CampaignKeys::voucher(std::string_view code) const { return key("v:").append(code); }

std::string CampaignKeys::draws(std::string_view member_id) const {
  return key("d:").append(member_id);
}

}  // namespace voucherd::redis
