// campaign_loader_fuzzer — the campaigns file (--campaigns, voucherctl
// campaigns validate|create: protobuf JSON, server/app/campaign_loader.h)
// and what voucherd does with each campaign in it before serving it
// (campaign_from_proto, validate_and_normalize, ClaimEngine::create_campaign).
//
// An input is a campaigns file's text. The target asserts:
//  - the file is read as a CampaignSet or one Campaign, or refused naming
//    it;
//  - a campaign is accepted (validate_and_normalize, and the engine's
//    create_campaign on a fresh engine) exactly when campaign_problems()
//    finds nothing; a refusal is its first problem and leaves the campaign
//    unchanged;
//  - an accepted campaign has valid ids, no problem after normalizing, and
//    normalizing it again changes nothing;
//  - it survives the trips it makes: to the stored definition (the bytes a
//    shared store compares replicas' definitions by) and back, and to JSON
//    (what voucherctl shows) and through the loader again.
#include <google/protobuf/util/json_util.h>

#include <string>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"
#include "fuzz/fuzz_check.h"
#include "server/app/campaign_loader.h"
#include "server/grpc/proto_convert.h"

namespace voucherd {
namespace {

constexpr std::string_view kWhat = "--campaigns file";
constexpr std::string_view kPath = "fuzz.json";

// A fresh engine for the campaigns of one input.
struct Engine {
  MemoryClaimLog log;
  FakeClock clock{INT64_C(1'718'000'000'000'000)};
  DeterministicRandom random{7};
  std::vector<std::uint8_t> secret = std::vector<std::uint8_t>(32, 0x42);
  ClaimEngine engine{log, clock, random, secret};
};

void check_campaign(Engine& e, const voucher::v1::Campaign& proto) {
  auto converted = campaign_from_proto(proto);
  if (!converted) {
    FUZZ_EXPECT(!converted.error().field.empty() && !converted.error().message.empty(),
                "a campaign that does not convert names its field");
    return;
  }
  const CampaignSpec& spec = *converted;
  const std::vector<InvalidField> problems = campaign_problems(spec);
  CampaignSpec normalized = spec;
  const auto valid = validate_and_normalize(normalized);
  FUZZ_EXPECT(valid.has_value() == problems.empty(),
              "validate_and_normalize accepts exactly what campaign_problems finds nothing in");
  // The engine: a campaign id met before in this file is the engine's
  // "exists" (or the same definition again), not a validation question.
  const bool seen = e.engine.find_campaign(spec.id) != nullptr;
  auto created = e.engine.create_campaign(spec);
  if (!seen) {
    FUZZ_EXPECT(created.has_value() == problems.empty(),
                "the engine creates exactly the campaigns that have no problem");
  }
  if (!valid) {
    FUZZ_EXPECT(normalized == spec, "a refused campaign is left unchanged");
    FUZZ_EXPECT(valid.error().field == problems.front().field &&
                    valid.error().message == problems.front().message,
                "the refusal is the first problem");
    if (!seen) {
      FUZZ_EXPECT(created.error().outcome == Outcome::kInvalidArgument &&
                      created.error().field.field == problems.front().field,
                  "the engine refuses with the same field");
    }
    return;
  }
  if (!seen)
    FUZZ_EXPECT((*created)->spec() == normalized, "the engine serves the normalized campaign");
  FUZZ_EXPECT(campaign_problems(normalized).empty(), "a normalized campaign has no problem");
  CampaignSpec again = normalized;
  FUZZ_EXPECT(validate_and_normalize(again).has_value() && again == normalized,
              "normalizing is idempotent");
  FUZZ_EXPECT(id_is_valid(normalized.id), "the campaign id is valid");
  for (const SiteSpec& site : normalized.sites) FUZZ_EXPECT(id_is_valid(site.id), "site ids");
  for (const SkuSpec& sku : normalized.skus) FUZZ_EXPECT(id_is_valid(sku.id), "SKU ids");

  // The stored definition, and back.
  const std::string stored = encode_campaign_definition(normalized);
  FUZZ_EXPECT(stored == encode_campaign_definition(again), "equal campaigns store equal bytes");
  voucher::v1::Campaign decoded;
  FUZZ_EXPECT(decoded.ParseFromString(stored), "a stored definition decodes");
  auto back = campaign_from_proto(decoded);
  FUZZ_EXPECT(back.has_value() && *back == normalized, "a stored definition reads back the same");

  // JSON, as voucherctl shows a campaign, through the loader again.
  voucher::v1::Campaign shown;
  campaign_to_proto(normalized, &shown);
  std::string json;
  FUZZ_EXPECT(google::protobuf::util::MessageToJsonString(shown, &json).ok(), "shown as JSON");
  auto reloaded = parse_campaigns_json(json, kWhat, kPath);
  FUZZ_EXPECT(reloaded.has_value() && reloaded->size() == 1, "a shown campaign loads again");
  auto reconverted = campaign_from_proto(reloaded->front());
  FUZZ_EXPECT(reconverted.has_value() && *reconverted == normalized,
              "a shown campaign loads as the same campaign");
}

}  // namespace
}  // namespace voucherd

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace voucherd;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto campaigns = parse_campaigns_json(json, kWhat, kPath);
  if (!campaigns) {
    FUZZ_EXPECT(campaigns.error().rfind("--campaigns file fuzz.json is neither", 0) == 0,
                "a file that is not campaigns is refused, naming it");
    return 0;
  }
  Engine engine;
  for (const voucher::v1::Campaign& proto : *campaigns) check_campaign(engine, proto);
  return 0;
}
