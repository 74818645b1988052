#include "engine/campaign_validation.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "engine/limits.h"
#include "engine/lottery.h"

namespace voucherd {
namespace {

std::string indexed(std::string_view list, std::size_t i, std::string_view field) {
  return "campaign." + std::string(list) + "[" + std::to_string(i) + "]." + std::string(field);
}

using Problems = std::vector<InvalidField>;

void check_id(Problems& out, std::string_view value, std::string field) {
  const IdProblem problem = id_problem(value);
  if (problem != IdProblem::kNone) out.push_back({field, id_problem_text(field, value, problem)});
}

void check_name(Problems& out, std::string_view value, std::string field) {
  if (value.size() > limits::kNameBytesMax) {
    out.push_back({field, field + " is " + std::to_string(value.size()) + " bytes; the limit is " +
                              std::to_string(limits::kNameBytesMax)});
  }
}

bool kind_is_known(SkuKind k) {
  return k == SkuKind::kHotel || k == SkuKind::kHomestay || k == SkuKind::kHotSpring ||
         k == SkuKind::kScenic;
}

// The lottery rules of a LOTTERY campaign; a FIRST_COME one has none.
void check_lottery(Problems& out, const CampaignSpec& spec) {
  const LotterySpec& l = spec.lottery;
  auto bad = [&out](std::string field, std::string message) {
    out.push_back({"campaign.lottery." + field, std::move(message)});
  };
  if (spec.mode != CampaignMode::kLottery) {
    if (l != LotterySpec{}) {
      out.push_back({"campaign.lottery",
                     std::string("campaign.lottery is for CAMPAIGN_MODE_LOTTERY campaigns; this "
                                 "one is ") +
                         mode_name(spec.mode)});
    }
    return;
  }
  if (!(l.win_probability > 0 && l.win_probability <= 1)) {
    bad("win_probability", "campaign.lottery.win_probability must be above 0 and at most 1; got " +
                               std::to_string(l.win_probability));
  }
  if (l.draws_per_day < 0 || l.draws_per_day > limits::kDrawsPerDayMax) {
    bad("draws_per_day", "campaign.lottery.draws_per_day must be between 1 and " +
                             std::to_string(limits::kDrawsPerDayMax) + " (0: the default, " +
                             std::to_string(kDefaultDrawsPerDay) + "); got " +
                             std::to_string(l.draws_per_day));
  }
  if (l.prizes_per_member < 0 || l.prizes_per_member > limits::kPerMemberLimitMax) {
    bad("prizes_per_member", "campaign.lottery.prizes_per_member must be between 1 and " +
                                 std::to_string(limits::kPerMemberLimitMax) +
                                 " (0: the default, 1); got " +
                                 std::to_string(l.prizes_per_member));
  } else {
    const std::int32_t prizes = l.prizes_per_member == 0 ? 1 : l.prizes_per_member;
    if (spec.per_member_limit != 0 && spec.per_member_limit != prizes) {
      out.push_back({"campaign.per_member_limit",
                     "a LOTTERY campaign's allowance is campaign.lottery.prizes_per_member (" +
                         std::to_string(prizes) +
                         "); leave campaign.per_member_limit unset or equal to it"});
    }
  }
  if (auto calendar = LotteryCalendar::load(l.time_zone); !calendar) {
    bad("time_zone", "campaign.lottery.time_zone: " + calendar.error());
  }
  if (l.sku_choice != SkuChoice::kWeighted) {
    if (!l.sku_weights.empty()) {
      bad("sku_weights", "campaign.lottery.sku_weights needs sku_choice SKU_CHOICE_WEIGHTED");
    }
    return;
  }
  if (l.sku_weights.size() != spec.skus.size()) {
    bad("sku_weights", "campaign.lottery.sku_weights must give every SKU a weight");
    return;
  }
  bool any = false;
  bool in_range = true;
  for (std::size_t i = 0; i < l.sku_weights.size(); ++i) {
    const std::int64_t w = l.sku_weights[i];
    if (w < 0 || w > limits::kSkuWeightMax) {
      bad("sku_weights", "campaign.lottery.sku_weights: SKU \"" + spec.skus[i].id +
                             "\" weight must be between 0 and " +
                             std::to_string(limits::kSkuWeightMax) + "; got " + std::to_string(w));
      in_range = false;
    }
    any = any || (w > 0 && spec.skus[i].stock > 0);
  }
  if (in_range && !any) {
    bad("sku_weights", "campaign.lottery.sku_weights: no SKU with stock has a weight above 0");
  }
}

// The allocation time of an APPLY_THEN_DRAW campaign; the others have none.
void check_allocation(Problems& out, const CampaignSpec& spec) {
  if (spec.mode != CampaignMode::kApplyThenDraw) {
    if (spec.allocation_at_us != 0) {
      out.push_back({"campaign.allocation_at",
                     std::string("campaign.allocation_at is for CAMPAIGN_MODE_APPLY_THEN_DRAW "
                                 "campaigns; this one is ") +
                         mode_name(spec.mode)});
    }
    return;
  }
  if (spec.allocation_at_us <= 0) {
    out.push_back({"campaign.allocation_at",
                   "campaign.allocation_at must be set for CAMPAIGN_MODE_APPLY_THEN_DRAW: when "
                   "the stock is allocated among the applicants"});
  } else if (spec.ends_at_us > 0 && spec.allocation_at_us < spec.ends_at_us) {
    out.push_back({"campaign.allocation_at",
                   "campaign.allocation_at must be at or after campaign.ends_at: the allocation "
                   "takes the applications of the whole window"});
  }
  if (spec.per_member_limit > 1) {
    out.push_back({"campaign.per_member_limit",
                   "campaign.per_member_limit must be 1 (or 0) for "
                   "CAMPAIGN_MODE_APPLY_THEN_DRAW: an applicant gets at most one pack; got " +
                       std::to_string(spec.per_member_limit)});
  }
}

}  // namespace

std::size_t control_character_at(std::string_view id) {
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto b = static_cast<unsigned char>(id[i]);
    if (b < 0x20 || b == 0x7F) return i;
  }
  return std::string_view::npos;
}

IdProblem id_problem(std::string_view id) {
  // Length first: an over-long id is refused without being read further.
  if (id.empty()) return IdProblem::kEmpty;
  if (id.size() > limits::kIdBytesMax) return IdProblem::kTooLong;
  if (control_character_at(id) != std::string_view::npos) return IdProblem::kControlCharacter;
  return IdProblem::kNone;
}

bool id_is_valid(std::string_view id) { return id_problem(id) == IdProblem::kNone; }

std::string id_problem_text(std::string_view field, std::string_view id, IdProblem problem) {
  std::string text(field);
  switch (problem) {
    case IdProblem::kEmpty:
      return text + " must not be empty";
    case IdProblem::kTooLong:
      return text + " is " + std::to_string(id.size()) + " bytes; the limit is " +
             std::to_string(limits::kIdBytesMax);
    case IdProblem::kControlCharacter: {
      static constexpr char kHex[] = "0123456789abcdef";
      const std::size_t at = control_character_at(id);
      const auto b = static_cast<unsigned char>(id[at]);
      return text + " contains a control character (byte 0x" + kHex[b >> 4] + kHex[b & 15] +
             " at offset " + std::to_string(at) + "); ids are printable text";
    }
    case IdProblem::kNone:
      break;
  }
  return text + " is valid";
}

std::vector<InvalidField> campaign_problems(const CampaignSpec& spec) {
  Problems out;
  check_id(out, spec.id, "campaign.id");
  check_name(out, spec.name, "campaign.name");
  if (spec.mode != CampaignMode::kFirstCome && spec.mode != CampaignMode::kLottery &&
      spec.mode != CampaignMode::kApplyThenDraw) {
    out.push_back({"campaign.mode",
                   "campaign.mode must be CAMPAIGN_MODE_FIRST_COME, CAMPAIGN_MODE_LOTTERY or "
                   "CAMPAIGN_MODE_APPLY_THEN_DRAW"});
  }
  if (spec.starts_at_us <= 0) {
    out.push_back({"campaign.starts_at", "campaign.starts_at must be set"});
  } else if (spec.ends_at_us <= spec.starts_at_us) {
    out.push_back({"campaign.ends_at", "campaign.ends_at must be after campaign.starts_at"});
  }
  if (spec.per_member_limit < 0 || spec.per_member_limit > limits::kPerMemberLimitMax) {
    out.push_back({"campaign.per_member_limit", "campaign.per_member_limit must be between 1 and " +
                                                    std::to_string(limits::kPerMemberLimitMax) +
                                                    " (0 means 1); got " +
                                                    std::to_string(spec.per_member_limit)});
  }
  if (spec.voucher_valid_days < 0 || spec.voucher_valid_days > limits::kVoucherValidDaysMax) {
    out.push_back({"campaign.voucher_valid_days",
                   "campaign.voucher_valid_days must be between 1 and " +
                       std::to_string(limits::kVoucherValidDaysMax) + " (0 means " +
                       std::to_string(limits::kVoucherValidDaysDefault) + "); got " +
                       std::to_string(spec.voucher_valid_days)});
  }
  constexpr std::int64_t kValidSecondsMax = std::int64_t{limits::kVoucherValidDaysMax} * 86'400;
  if (spec.voucher_valid_seconds < 0 || spec.voucher_valid_seconds > kValidSecondsMax) {
    out.push_back({"campaign.voucher_valid_seconds",
                   "campaign.voucher_valid_seconds must be between 1 and " +
                       std::to_string(kValidSecondsMax) + " (0: voucher_valid_days applies); got " +
                       std::to_string(spec.voucher_valid_seconds)});
  }
  if (spec.sites.empty()) {
    out.push_back({"campaign.sites", "campaign.sites must not be empty"});
  } else if (spec.sites.size() > limits::kSitesPerCampaignMax) {
    out.push_back({"campaign.sites", "campaign has " + std::to_string(spec.sites.size()) +
                                         " sites; the limit is " +
                                         std::to_string(limits::kSitesPerCampaignMax)});
    return out;  // too many to check one by one
  }
  if (spec.skus.empty()) {
    out.push_back({"campaign.skus", "campaign.skus must not be empty"});
  } else if (spec.skus.size() > limits::kSkusPerCampaignMax) {
    out.push_back({"campaign.skus", "campaign has " + std::to_string(spec.skus.size()) +
                                        " SKUs; the limit is " +
                                        std::to_string(limits::kSkusPerCampaignMax)});
    return out;
  }

  std::unordered_set<std::string_view> site_ids;
  for (std::size_t i = 0; i < spec.sites.size(); ++i) {
    const SiteSpec& site = spec.sites[i];
    check_id(out, site.id, indexed("sites", i, "id"));
    check_name(out, site.name, indexed("sites", i, "name"));
    check_name(out, site.city, indexed("sites", i, "city"));
    if (!site_ids.insert(site.id).second) {
      out.push_back({indexed("sites", i, "id"), "duplicate site id \"" + site.id + "\""});
    }
  }

  std::unordered_set<std::string_view> sku_ids;
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const SkuSpec& sku = spec.skus[i];
    check_id(out, sku.id, indexed("skus", i, "id"));
    check_name(out, sku.name, indexed("skus", i, "name"));
    if (!sku_ids.insert(sku.id).second) {
      out.push_back({indexed("skus", i, "id"), "duplicate SKU id \"" + sku.id + "\""});
    }
    if (!site_ids.contains(sku.site_id)) {
      out.push_back({indexed("skus", i, "site_id"),
                     "SKU \"" + sku.id + "\" names unknown site \"" + sku.site_id + "\""});
    }
    if (!kind_is_known(sku.kind)) {
      out.push_back(
          {indexed("skus", i, "kind"), "SKU \"" + sku.id +
                                           "\" kind must be SKU_KIND_HOTEL, SKU_KIND_HOMESTAY, "
                                           "SKU_KIND_HOT_SPRING or SKU_KIND_SCENIC"});
    }
    if (sku.stock < 0 || sku.stock > limits::kSkuStockMax) {
      out.push_back({indexed("skus", i, "stock"), "SKU \"" + sku.id +
                                                      "\" stock must be between 0 and " +
                                                      std::to_string(limits::kSkuStockMax) +
                                                      "; got " + std::to_string(sku.stock)});
    }
    if (sku.face_value_cents < 0 || sku.face_value_cents > limits::kFaceValueCentsMax) {
      out.push_back({indexed("skus", i, "face_value_cents"),
                     "SKU \"" + sku.id + "\" face_value_cents must be between 0 and " +
                         std::to_string(limits::kFaceValueCentsMax) + "; got " +
                         std::to_string(sku.face_value_cents)});
    }
  }

  check_lottery(out, spec);
  check_allocation(out, spec);
  return out;
}

std::expected<void, InvalidField> validate_and_normalize(CampaignSpec& spec) {
  if (std::vector<InvalidField> problems = campaign_problems(spec); !problems.empty()) {
    return std::unexpected(std::move(problems.front()));
  }

  if (spec.mode == CampaignMode::kLottery) {
    LotterySpec& l = spec.lottery;
    if (l.draws_per_day == 0) l.draws_per_day = kDefaultDrawsPerDay;
    if (l.prizes_per_member == 0) l.prizes_per_member = 1;
    if (l.time_zone.empty()) l.time_zone = kDefaultTimeZone;
    // A member's allowance in a lottery is their prizes.
    spec.per_member_limit = l.prizes_per_member;
  }
  if (spec.per_member_limit == 0) spec.per_member_limit = 1;
  if (spec.voucher_valid_days == 0) spec.voucher_valid_days = limits::kVoucherValidDaysDefault;
  return {};
}

}  // namespace voucherd
