// exports.cc — voucherctl export-redemptions (the settlement CSVs),
// export-draws and export-applications (what voucher-audit checks).
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

namespace {

// The files of an audit export, in one folder.
class AuditFolder {
 public:
  AuditFolder(const Session& s, std::string dir) : s_(s), dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    json_.preserve_proto_field_names = true;
  }

  void prepare(grpc::ClientContext& ctx) const { s_.prepare(ctx, kExportDeadline); }

  bool write(const std::string& name, const std::string& text) const {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    out << text;
    if (!out) std::cerr << "voucherctl: cannot write " << dir_ << "/" << name << "\n";
    return static_cast<bool>(out);
  }

  // `m` as indented JSON, in the file `name`.
  bool write_json(const std::string& name, const google::protobuf::Message& m) {
    std::string text;
    json_.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(m, &text, json_);
    return write(name, text + "\n");
  }

  // The campaign as GetCampaign shows it, with its seed commitment:
  // campaign.json. kDone, or the exit status of the failure.
  int campaign(const std::string& id, voucher::v1::Campaign& c) {
    grpc::ClientContext ctx;
    prepare(ctx);
    voucher::v1::GetCampaignRequest req;
    req.set_campaign_id(id);
    if (auto st = s_.admin().GetCampaign(&ctx, req, &c); !st.ok()) {
      return refused("GetCampaign", st);
    }
    return write_json("campaign.json", c) ? kDone : kUsage;
  }

  // Every record of a stream, one compact JSON line each, in the file
  // `name`; `count` gets how many. kDone, or the exit status of the failure.
  template <class Record, class Reader>
  int records(const char* rpc, Reader& reader, const std::string& name, std::int64_t& count) {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    json_.add_whitespace = false;
    Record r;
    std::string text;
    count = 0;
    while (reader->Read(&r)) {
      text.clear();
      (void)google::protobuf::util::MessageToJsonString(r, &text, json_);
      out << text << '\n';
      ++count;
    }
    if (auto st = reader->Finish(); !st.ok()) return refused(rpc, st);
    if (!out.flush()) {
      std::cerr << "voucherctl: cannot write " << dir_ << "/" << name << "\n";
      return kUsage;
    }
    return kDone;
  }

  // seed.txt once RevealSeed gives it; `later` says when to export again.
  int seed(const std::string& id, const char* later) const {
    grpc::ClientContext ctx;
    prepare(ctx);
    voucher::v1::RevealSeedRequest req;
    req.set_campaign_id(id);
    voucher::v1::RevealSeedResponse seed;
    if (auto st = s_.admin().RevealSeed(&ctx, req, &seed); !st.ok()) {
      std::cerr << "voucherctl: no seed yet (" << st.error_message() << "); export again " << later
                << "\n";
      return kDone;
    }
    return write("seed.txt", seed.seed() + "\n") ? kDone : kUsage;
  }

 private:
  const Session& s_;
  std::string dir_;
  google::protobuf::util::JsonPrintOptions json_;
};

}  // namespace

// Writes what an auditor needs: the campaign (with its commitment), every
// draw, and the seed once the campaign has ended.
int export_draws(const Session& s, const std::string& campaign, const std::string& out_dir) {
  AuditFolder folder(s, out_dir);
  v1::Campaign c;
  if (int failed = folder.campaign(campaign, c); failed != kDone) return failed;
  grpc::ClientContext ctx;
  folder.prepare(ctx);
  v1::ExportDrawsRequest req;
  req.set_campaign_id(campaign);
  auto reader = s.admin().ExportDraws(&ctx, req);
  std::int64_t n = 0;
  if (int failed = folder.records<v1::DrawRecord>("ExportDraws", reader, "draws.jsonl", n);
      failed != kDone) {
    return failed;
  }
  std::cerr << "voucherctl: " << n << " draws\n";
  return folder.seed(campaign, "after the campaign ends");
}

// The same for an APPLY_THEN_DRAW campaign: the campaign, every application
// with its outcome, the published counts (GetCampaignStats), and the seed
// once the allocation is done.
int export_applications(const Session& s, const std::string& campaign, const std::string& out_dir) {
  AuditFolder folder(s, out_dir);
  v1::Campaign c;
  if (int failed = folder.campaign(campaign, c); failed != kDone) return failed;
  // The counts first: when they say the allocation is done, the export that
  // follows has every outcome (the store reads in the same order).
  v1::CampaignStats stats;
  {
    grpc::ClientContext ctx;
    folder.prepare(ctx);
    v1::GetCampaignStatsRequest req;
    req.set_campaign_id(campaign);
    if (auto st = s.admin().GetCampaignStats(&ctx, req, &stats); !st.ok()) {
      return refused("GetCampaignStats", st);
    }
  }
  grpc::ClientContext ctx;
  folder.prepare(ctx);
  v1::ExportApplicationsRequest req;
  req.set_campaign_id(campaign);
  auto reader = s.admin().ExportApplications(&ctx, req);
  std::int64_t n = 0;
  if (int failed = folder.records<v1::ApplicationRecord>("ExportApplications", reader,
                                                         "applications.jsonl", n);
      failed != kDone) {
    return failed;
  }
  if (!folder.write_json("stats.json", stats)) return kUsage;
  std::cerr << "voucherctl: " << n << " applications, " << stats.selected() << " selected\n";
  if (stats.allocation() != v1::ALLOCATION_STATE_DONE) {
    std::cerr << "voucherctl: the allocation is not done ("
              << v1::AllocationState_Name(stats.allocation())
              << "): applications without a pack are PENDING; export again once it is\n";
    return kDone;
  }
  return folder.seed(campaign, "once the allocation is done");
}

}  // namespace voucherd::ctl
