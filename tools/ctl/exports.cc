// exports.cc — voucherctl export-redemptions (the settlement CSVs) and
// export-draws (what voucher-audit checks).
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "tools/ctl/csv.h"
#include "tools/ctl/ctl.h"

namespace voucherd::ctl {
namespace {

namespace v1 = voucher::v1;

// Streams of a whole campaign may take a while.
constexpr std::chrono::seconds kExportDeadline{600};

std::string yuan(std::int64_t cents) {
  std::ostringstream s;
  s << cents / 100 << '.' << (cents % 100 < 10 ? "0" : "") << cents % 100;
  return s.str();
}

}  // namespace

int export_redemptions(const Session& s, const std::string& campaign, const std::string& site,
                       const std::string& settlement_path, const std::string& detail_path) {
  grpc::ClientContext ctx;
  s.prepare(ctx, kExportDeadline);
  v1::ExportRedemptionsRequest req;
  req.set_campaign_id(campaign);
  req.set_site_id(site);
  auto reader = s.admin().ExportRedemptions(&ctx, req);

  std::ofstream detail;
  if (!detail_path.empty()) {
    detail.open(detail_path);
    if (!detail) {
      std::cerr << "voucherctl: cannot write " << detail_path << "\n";
      return kUsage;
    }
    detail << "code,campaign_id,site_id,sku_id,member_id,face_value_cents,face_value_yuan,"
              "issued_at,redeemed_at,redeem_request_id\n";
  }
  // (site, SKU) -> count, face value total
  std::map<std::pair<std::string, std::string>, std::pair<std::int64_t, std::int64_t>> per_sku;
  std::int64_t count = 0, total = 0;
  v1::RedemptionRecord r;
  using google::protobuf::util::TimeUtil;
  while (reader->Read(&r)) {
    auto& [n, sum] = per_sku[{r.site_id(), r.sku_id()}];
    ++n;
    sum += r.face_value_cents();
    ++count;
    total += r.face_value_cents();
    if (detail.is_open()) {
      detail << csv_field(r.code()) << ',' << csv_field(r.campaign_id()) << ','
             << csv_field(r.site_id()) << ',' << csv_field(r.sku_id()) << ','
             << csv_field(r.member_id()) << ',' << r.face_value_cents() << ','
             << yuan(r.face_value_cents()) << ',' << TimeUtil::ToString(r.issued_at()) << ','
             << TimeUtil::ToString(r.redeemed_at()) << ',' << csv_field(r.redeem_request_id())
             << '\n';
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return refused("ExportRedemptions", status);
  std::ofstream settlement(settlement_path);
  if (!settlement) {
    std::cerr << "voucherctl: cannot write " << settlement_path << "\n";
    return kUsage;
  }
  settlement << "site_id,sku_id,redeemed,face_value_cents,face_value_yuan\n";
  std::string site_now;
  std::int64_t site_count = 0, site_total = 0;
  auto site_line = [&] {
    if (site_now.empty()) return;
    settlement << csv_field(site_now) << ",ALL," << site_count << ',' << site_total << ','
               << yuan(site_total) << '\n';
  };
  for (const auto& [key, value] : per_sku) {
    if (key.first != site_now) {
      site_line();
      site_now = key.first;
      site_count = site_total = 0;
    }
    settlement << csv_field(key.first) << ',' << csv_field(key.second) << ',' << value.first << ','
               << value.second << ',' << yuan(value.second) << '\n';
    site_count += value.first;
    site_total += value.second;
  }
  site_line();
  settlement << "ALL,ALL," << count << ',' << total << ',' << yuan(total) << '\n';
  std::cerr << "voucherctl: " << count << " redemptions, " << yuan(total) << " yuan, over "
            << per_sku.size() << " site/SKU pairs\n";
  return kDone;
}

// Writes what an auditor needs: the campaign (with its commitment), every
// draw, and the seed once the campaign has ended.
int export_draws(const Session& s, const std::string& campaign, const std::string& out_dir) {
  auto context = [&](grpc::ClientContext& ctx) { s.prepare(ctx, kExportDeadline); };
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(out_dir + "/" + name, std::ios::binary);
    out << text;
    if (!out) std::cerr << "voucherctl: cannot write " << out_dir << "/" << name << "\n";
    return static_cast<bool>(out);
  };
  google::protobuf::util::JsonPrintOptions json;
  json.preserve_proto_field_names = true;

  v1::Campaign c;
  {
    grpc::ClientContext ctx;
    context(ctx);
    v1::GetCampaignRequest req;
    req.set_campaign_id(campaign);
    if (auto st = s.admin().GetCampaign(&ctx, req, &c); !st.ok()) return refused("GetCampaign", st);
  }
  std::string text;
  json.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(c, &text, json);
  if (!write("campaign.json", text + "\n")) return kUsage;

  grpc::ClientContext ctx;
  context(ctx);
  v1::ExportDrawsRequest req;
  req.set_campaign_id(campaign);
  auto reader = s.admin().ExportDraws(&ctx, req);
  std::ofstream draws(out_dir + "/draws.jsonl", std::ios::binary);
  json.add_whitespace = false;
  v1::DrawRecord r;
  std::int64_t n = 0;
  while (reader->Read(&r)) {
    text.clear();
    (void)google::protobuf::util::MessageToJsonString(r, &text, json);
    draws << text << '\n';
    ++n;
  }
  if (auto st = reader->Finish(); !st.ok()) return refused("ExportDraws", st);
  if (!draws.flush()) {
    std::cerr << "voucherctl: cannot write " << out_dir << "/draws.jsonl\n";
    return kUsage;
  }
  std::cerr << "voucherctl: " << n << " draws\n";

  grpc::ClientContext seed_ctx;
  context(seed_ctx);
  v1::RevealSeedRequest seed_req;
  seed_req.set_campaign_id(campaign);
  v1::RevealSeedResponse seed;
  if (auto st = s.admin().RevealSeed(&seed_ctx, seed_req, &seed); !st.ok()) {
    std::cerr << "voucherctl: no seed yet (" << st.error_message()
              << "); export again after the campaign ends\n";
    return kDone;
  }
  return write("seed.txt", seed.seed() + "\n") ? kDone : kUsage;
}

}  // namespace voucherd::ctl
