// campaign_loader.h — reads a --campaigns file (protobuf JSON).
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "voucher/v1/voucher.pb.h"

namespace voucherd {

// Accepts a CampaignSet ({"campaigns": [...]}) or a single Campaign object.
[[nodiscard]] std::expected<std::vector<voucher::v1::Campaign>, std::string> load_campaigns_file(
    const std::string& path);

}  // namespace voucherd
