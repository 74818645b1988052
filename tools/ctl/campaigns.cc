// campaigns.cc — voucherctl campaigns list | get | create | validate.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <vector>

#include "engine/campaign_validation.h"
#include "server/app/campaign_loader.h"
#include "server/grpc/proto_convert.h"
#include "tools/ctl/ctl.h"

namespace voucherd::ctl {
namespace {

namespace v1 = voucher::v1;

std::int64_t stock_of(const v1::Campaign& c) {
  std::int64_t stock = 0;
  for (const v1::Sku& s : c.skus()) stock += s.stock();
  return stock;
}

std::string mode_of(const v1::Campaign& c) {
  return short_name(v1::CampaignMode_Name(c.mode()), "CAMPAIGN_MODE_");
}

// Every problem of every campaign in a file: the offline check `validate`
// prints and `create` runs first. Returns the number of problems.
int print_problems(const std::string& file, const std::vector<v1::Campaign>& campaigns) {
  int problems = 0;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < campaigns.size(); ++i) {
    const v1::Campaign& proto = campaigns[i];
    const std::string where =
        file + ": campaign " + std::to_string(i) + " (\"" + proto.id() + "\"): ";
    if (!proto.id().empty() && !ids.insert(proto.id()).second) {
      std::cerr << where << "campaign.id: the file holds campaign \"" << proto.id() << "\" twice\n";
      ++problems;
    }
    auto spec = campaign_from_proto(proto);
    if (!spec) {
      std::cerr << where << spec.error().field << ": " << spec.error().message << "\n";
      ++problems;
      continue;
    }
    for (const InvalidField& p : campaign_problems(*spec)) {
      std::cerr << where << p.field << ": " << p.message << "\n";
      ++problems;
    }
  }
  return problems;
}

// The file's campaigns, or the exit status: kUsage when it cannot be read,
// kFailed when it is not campaigns in protobuf JSON.
std::expected<std::vector<v1::Campaign>, int> read_campaigns(const std::string& file) {
  if (!std::ifstream(file)) {
    std::cerr << "voucherctl: cannot read " << file << "\n";
    return std::unexpected(kUsage);
  }
  auto campaigns = load_campaigns_file(file, "campaigns file");
  if (!campaigns) {
    std::cerr << "voucherctl: " << campaigns.error() << "\n";
    return std::unexpected(kFailed);
  }
  if (campaigns->empty()) {
    std::cerr << "voucherctl: " << file << " holds no campaign\n";
    return std::unexpected(kFailed);
  }
  return std::move(*campaigns);
}

// The file's campaigns if every one adds up; else each problem is printed,
// then the count and `then`, and the exit status is returned.
std::expected<std::vector<v1::Campaign>, int> checked_campaigns(const std::string& file,
                                                                std::string_view then) {
  auto campaigns = read_campaigns(file);
  if (!campaigns) return campaigns;
  if (const int problems = print_problems(file, *campaigns); problems > 0) {
    std::cerr << "voucherctl: " << file << ": " << problems << " problem"
              << (problems == 1 ? "" : "s") << then << "\n";
    return std::unexpected(kFailed);
  }
  return campaigns;
}

}  // namespace

int campaigns_list(const Session& s, Output o) {
  v1::ListCampaignsResponse all;
  v1::ListCampaignsRequest req;
  req.set_page_size(1000);
  do {
    auto page = unary<v1::ListCampaignsResponse>(s, "ListCampaigns", [&](auto& ctx, auto& out) {
      return s.admin().ListCampaigns(&ctx, req, &out);
    });
    if (!page) return page.error();
    for (v1::Campaign& c : *page->mutable_campaigns()) *all.add_campaigns() = std::move(c);
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  if (o == Output::kJson) {
    print_json(all);
    return kDone;
  }
  std::printf("%-24s %-15s %-20s %-20s %6s %6s %10s\n", "ID", "MODE", "STARTS", "ENDS", "SITES",
              "SKUS", "STOCK");
  for (const v1::Campaign& c : all.campaigns()) {
    std::printf("%-24s %-15s %-20s %-20s %6d %6d %10lld\n", c.id().c_str(), mode_of(c).c_str(),
                time_text(c.starts_at()).c_str(), time_text(c.ends_at()).c_str(), c.sites_size(),
                c.skus_size(), static_cast<long long>(stock_of(c)));
  }
  return kDone;
}

int campaigns_get(const Session& s, const std::string& id, Output o) {
  v1::GetCampaignRequest req;
  req.set_campaign_id(id);
  auto got = unary<v1::Campaign>(s, "GetCampaign", [&](auto& ctx, auto& out) {
    return s.admin().GetCampaign(&ctx, req, &out);
  });
  if (!got) return got.error();
  const v1::Campaign& c = *got;
  if (o == Output::kJson) {
    print_json(c);
    return kDone;
  }
  std::cout << "id               " << c.id() << "\n"
            << "name             " << c.name() << "\n"
            << "mode             " << mode_of(c) << "\n"
            << "window           " << time_text(c.starts_at()) << " to " << time_text(c.ends_at())
            << "\n"
            << "per member       " << c.per_member_limit() << "\n"
            << "sites            " << c.sites_size() << "\n"
            << "SKUs             " << c.skus_size() << "\n"
            << "stock            " << stock_of(c) << "\n";
  if (c.mode() == v1::CAMPAIGN_MODE_LOTTERY) {
    std::cout << "win probability  " << c.lottery().win_probability() << "\n"
              << "draws per day    " << c.lottery().draws_per_day() << "\n"
              << "seed commitment  " << c.seed_commitment() << "\n";
  }
  if (c.mode() == v1::CAMPAIGN_MODE_APPLY_THEN_DRAW) {
    std::cout << "allocation at    " << time_text(c.allocation_at()) << "\n"
              << "seed commitment  " << c.seed_commitment() << "\n";
  }
  return kDone;
}

int campaigns_validate(const std::string& file) {
  auto campaigns = checked_campaigns(file, "");
  if (!campaigns) return campaigns.error();
  std::int64_t stock = 0;
  for (const v1::Campaign& c : *campaigns) stock += stock_of(c);
  std::cout << file << ": " << campaigns->size() << " campaign"
            << (campaigns->size() == 1 ? "" : "s") << ", " << stock << " packs: valid\n";
  return kDone;
}

int campaigns_create(const Session& s, const std::string& file, bool replace_before_open) {
  // Nothing is sent unless the whole file adds up.
  auto campaigns = checked_campaigns(file, "; nothing was created");
  if (!campaigns) return campaigns.error();
  for (const v1::Campaign& c : *campaigns) {
    v1::CreateCampaignRequest req;
    *req.mutable_campaign() = c;
    req.set_replace_before_open(replace_before_open);
    auto made = unary<v1::Campaign>(
        s, "CreateCampaign \"" + c.id() + "\"",
        [&](auto& ctx, auto& out) { return s.admin().CreateCampaign(&ctx, req, &out); });
    if (!made) return made.error();
    const v1::Campaign& created = *made;
    std::cout << "campaign \"" << created.id() << "\" is served: " << created.sites_size()
              << " sites, " << created.skus_size() << " SKUs, " << stock_of(created) << " packs\n";
  }
  return kDone;
}

}  // namespace voucherd::ctl
