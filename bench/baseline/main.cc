// voucherd-baseline — voucherd with one more store: --store=redis-per-claim,
// the benchmark baseline (per_claim_log.h). Everything else is voucherd's
// own program (server/app/app.h), so the comparison measures the store only.
#include <cstdlib>

#include "bench/baseline/per_claim_log.h"
#include "server/app/app.h"
#include "server/base/log.h"

int main(int argc, char** argv) {
  voucherd::AppOptions options;
  options.per_claim_store = [](const voucherd::Config& config)
      -> std::expected<std::unique_ptr<voucherd::Store>, std::string> {
    auto endpoint = voucherd::redis::parse_url(config.redis_url, std::getenv("REDIS_PASSWORD"));
    if (!endpoint) return std::unexpected(endpoint.error());
    voucherd::log::warn(
        "--store=redis-per-claim is the benchmark baseline (one Lua call per claim, one "
        "replica), not a production store");
    voucherd::redis::PerClaimLogOptions per_claim;
    per_claim.endpoint = std::move(*endpoint);
    per_claim.connections = static_cast<std::size_t>(config.redis_pool);
    return std::make_unique<voucherd::redis::PerClaimRedisLog>(std::move(per_claim));
  };
  return voucherd::run_voucherd(argc, argv, options);
}
