// campaign_loader.h — reads a campaigns file (protobuf JSON): voucherd's
// --campaigns, voucherctl's campaigns validate and create.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "voucher/v1/voucher.pb.h"

namespace voucherd {

// Accepts a CampaignSet ({"campaigns": [...]}) or a single Campaign object.
// `what` names the file in errors ("--campaigns file").
[[nodiscard]] std::expected<std::vector<voucher::v1::Campaign>, std::string> load_campaigns_file(
    const std::string& path, std::string_view what = "--campaigns file");

// The same, from the file's text (`what` and `path` name it in errors).
[[nodiscard]] std::expected<std::vector<voucher::v1::Campaign>, std::string> parse_campaigns_json(
    std::string_view json, std::string_view what, std::string_view path);

}  // namespace voucherd
