#include "server/app/campaign_loader.h"

#include <google/protobuf/util/json_util.h>

#include "common/files.h"

namespace voucherd {

std::expected<std::vector<voucher::v1::Campaign>, std::string> load_campaigns_file(
    const std::string& path, std::string_view what) {
  auto read = read_file(path, std::string(what));
  if (!read) return std::unexpected(read.error());
  return parse_campaigns_json(*read, what, path);
}

std::expected<std::vector<voucher::v1::Campaign>, std::string> parse_campaigns_json(
    std::string_view json, std::string_view what, std::string_view path) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a silent default
  voucher::v1::CampaignSet set;
  auto status = google::protobuf::util::JsonStringToMessage(json, &set, options);
  if (status.ok())
    return std::vector<voucher::v1::Campaign>(set.campaigns().begin(), set.campaigns().end());
  voucher::v1::Campaign one;
  auto one_status = google::protobuf::util::JsonStringToMessage(json, &one, options);
  if (one_status.ok()) return std::vector<voucher::v1::Campaign>{one};
  return std::unexpected(std::string(what) + " " + std::string(path) +
                         " is neither a CampaignSet nor a Campaign in protobuf JSON: " +
                         std::string(status.message()));
}

}  // namespace voucherd
