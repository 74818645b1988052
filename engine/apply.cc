// apply.cc — see apply.h.
#include "engine/apply.h"

#include <absl/container/flat_hash_set.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/check.h"
#include "engine/seed_hmac.h"

namespace voucherd {
namespace {

std::string describe(const CampaignSpec& spec, std::uint32_t sku) {
  return sku == kNoSku ? std::string("NOT_SELECTED") : "SELECTED " + spec.skus[sku].id;
}

}  // namespace

ApplyRank apply_rank(const SkuMacKey& seed_key, std::string_view campaign_id,
                     std::string_view member_id, std::string& scratch) {
  scratch.assign(kApplyDomain);
  append_lp(scratch, campaign_id);
  append_lp(scratch, member_id);
  return hmac_sha256(
      seed_key, std::span(reinterpret_cast<const std::uint8_t*>(scratch.data()), scratch.size()));
}

Allocation allocate(const CampaignSpec& spec, const LotterySeed& seed,
                    std::span<const ApplicationEntry> applications) {
  VOUCHERD_CHECK(applications.size() < kNoSku, "an application's index fits 32 bits");
  const auto n = static_cast<std::uint32_t>(applications.size());
  const SkuMacKey key = hmac_key(seed);
  std::vector<ApplyRank> ranks(n);
  std::string scratch;
  for (std::uint32_t i = 0; i < n; ++i) {
    ranks[i] = apply_rank(key, spec.id, applications[i].member_id, scratch);
  }
  Allocation out;
  out.order.resize(n);
  std::iota(out.order.begin(), out.order.end(), 0U);
  std::sort(out.order.begin(), out.order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const int c = std::memcmp(ranks[a].data(), ranks[b].data(), ranks[a].size());
    return c != 0 ? c < 0 : applications[a].member_id < applications[b].member_id;
  });
  // A member twice would rank twice, equally: which got what would then
  // depend on the input's order. Such entries sort next to each other.
  for (std::uint32_t p = 1; p < n; ++p) {
    VOUCHERD_CHECK(applications[out.order[p - 1]].member_id != applications[out.order[p]].member_id,
                   "a member applies once");
  }

  out.sku_of.assign(n, kNoSku);
  std::vector<std::int64_t> remaining;
  remaining.reserve(spec.skus.size());
  for (const SkuSpec& sku : spec.skus) remaining.push_back(sku.stock);
  std::int64_t left = spec.stock_total();
  for (const std::uint32_t i : out.order) {
    if (left <= 0) break;  // everyone after is not selected
    const ApplicationEntry& a = applications[i];
    std::uint32_t got = kNoSku;
    if (a.preferred.empty()) {
      got = choose_sku(spec, remaining, DrawRandomness{ranks[i]}.pick());
    } else {
      for (const std::uint32_t sku : a.preferred) {
        VOUCHERD_CHECK(sku < remaining.size(), "a preferred SKU is one of the campaign's");
        if (remaining[sku] > 0) {
          got = sku;
          break;
        }
      }
    }
    if (got == kNoSku) continue;
    --remaining[got];
    --left;
    ++out.selected;
    out.sku_of[i] = got;
  }
  return out;
}

AllocationAudit audit_allocation(const CampaignSpec& spec, const LotterySeed& seed,
                                 std::string_view commitment,
                                 std::span<const ApplicationOutcome> outcomes,
                                 std::optional<std::int64_t> published_applications) {
  AllocationAudit report;
  report.commitment_matches = seed_commitment(seed) == commitment;
  report.applications = static_cast<std::int64_t>(outcomes.size());
  const std::size_t skus = spec.skus.size();
  // The lines that are valid applications, where each is in `outcomes`, and
  // whether its published outcome can be compared (names a SKU or none).
  std::vector<ApplicationEntry> valid;
  std::vector<std::size_t> line_of;
  std::vector<bool> comparable;
  absl::flat_hash_set<std::string_view> members;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const ApplicationOutcome& o = outcomes[i];
    if (o.sku != kNoSku) ++report.selected;
    const std::string& member = o.application.member_id;
    std::string problem;
    if (!members.insert(member).second) {
      problem = "member \"" + member + "\" applies a second time";
    } else if (auto bad =
                   std::find_if(o.application.preferred.begin(), o.application.preferred.end(),
                                [&](std::uint32_t s) { return s >= skus; });
               bad != o.application.preferred.end()) {
      problem = "member \"" + member + "\" names SKU index " + std::to_string(*bad) +
                ", and the campaign has " + std::to_string(skus) + " SKUs";
    }
    if (!problem.empty()) {
      // Not an application: left out of the replay.
      report.problems.push_back({i, std::move(problem)});
      continue;
    }
    // A valid application with an outcome that names no SKU of the
    // campaign: reported, and still replayed (it took its part of the stock).
    const bool names_a_sku = o.sku == kNoSku || o.sku < skus;
    if (!names_a_sku) {
      report.problems.push_back({i, "member \"" + member + "\" got SKU index " +
                                        std::to_string(o.sku) + ", and the campaign has " +
                                        std::to_string(skus) + " SKUs"});
    }
    valid.push_back(o.application);
    line_of.push_back(i);
    comparable.push_back(names_a_sku);
  }
  const Allocation replay = allocate(spec, seed, valid);
  for (std::size_t j = 0; j < valid.size(); ++j) {
    const std::uint32_t published = outcomes[line_of[j]].sku;
    if (!comparable[j] || published == replay.sku_of[j]) continue;
    report.problems.push_back({line_of[j], "member \"" + valid[j].member_id +
                                               "\": the export says " + describe(spec, published) +
                                               ", the allocation gives " +
                                               describe(spec, replay.sku_of[j])});
  }
  std::sort(report.problems.begin(), report.problems.end(),
            [](const AuditProblem& a, const AuditProblem& b) { return a.index < b.index; });
  if (published_applications && *published_applications != report.applications) {
    // After every line: the count is the export's as a whole.
    report.problems.push_back(
        {outcomes.size(), std::to_string(*published_applications) +
                              " applications were published, and the export has " +
                              std::to_string(report.applications)});
  }
  return report;
}

}  // namespace voucherd
