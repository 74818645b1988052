// voucherctl — the operators' command-line tool.
//
//   voucherctl hash-token                       reads a token on stdin, prints
//                                               its tokens-file form
//   voucherctl export-redemptions --target HOST:PORT --campaign ID
//       [--site ID] --settlement FILE.csv [--detail FILE.csv]
//       [--tls-ca CA.pem [--tls-cert CERT.pem --tls-key KEY.pem]]
//   voucherctl export-draws --target HOST:PORT --campaign ID --out DIR [TLS]
//       writes DIR/campaign.json (with the seed commitment), DIR/draws.jsonl
//       (every draw, in order) and, once the campaign has ended,
//       DIR/seed.txt: what voucher-audit checks
//
// The bearer token comes from VOUCHERCTL_TOKEN or --token-file (never from a
// flag, which would show in process lists). Exit status: 0 done, 1 the
// server refused or failed, 2 bad usage.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include "client/credentials.h"
#include "server/grpc/auth.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace {

namespace v1 = voucher::v1;

// One CSV field, quoted when it holds a separator, a quote or a line break.
std::string csv(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string yuan(std::int64_t cents) {
  std::ostringstream s;
  s << cents / 100 << '.' << (cents % 100 < 10 ? "0" : "") << cents % 100;
  return s.str();
}

std::string read_token(const std::string& token_file) {
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::string token;
    std::getline(in, token);
    return token;
  }
  const char* env = std::getenv("VOUCHERCTL_TOKEN");
  return env != nullptr ? env : "";
}

int export_redemptions(const std::string& target,
                       const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                       const std::string& token, const std::string& campaign,
                       const std::string& site, const std::string& settlement_path,
                       const std::string& detail_path) {
  auto stub = v1::AdminService::NewStub(grpc::CreateChannel(target, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::ExportRedemptionsRequest req;
  req.set_campaign_id(campaign);
  req.set_site_id(site);
  auto reader = stub->ExportRedemptions(&ctx, req);

  std::ofstream detail;
  if (!detail_path.empty()) {
    detail.open(detail_path);
    if (!detail) {
      std::cerr << "voucherctl: cannot write " << detail_path << "\n";
      return 2;
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
      detail << csv(r.code()) << ',' << csv(r.campaign_id()) << ',' << csv(r.site_id()) << ','
             << csv(r.sku_id()) << ',' << csv(r.member_id()) << ',' << r.face_value_cents() << ','
             << yuan(r.face_value_cents()) << ',' << TimeUtil::ToString(r.issued_at()) << ','
             << TimeUtil::ToString(r.redeemed_at()) << ',' << csv(r.redeem_request_id()) << '\n';
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::cerr << "voucherctl: export-redemptions failed: " << status.error_message() << "\n";
    return 1;
  }
  std::ofstream settlement(settlement_path);
  if (!settlement) {
    std::cerr << "voucherctl: cannot write " << settlement_path << "\n";
    return 2;
  }
  settlement << "site_id,sku_id,redeemed,face_value_cents,face_value_yuan\n";
  std::string site_now;
  std::int64_t site_count = 0, site_total = 0;
  auto site_line = [&] {
    if (site_now.empty()) return;
    settlement << csv(site_now) << ",ALL," << site_count << ',' << site_total << ','
               << yuan(site_total) << '\n';
  };
  for (const auto& [key, value] : per_sku) {
    if (key.first != site_now) {
      site_line();
      site_now = key.first;
      site_count = site_total = 0;
    }
    settlement << csv(key.first) << ',' << csv(key.second) << ',' << value.first << ','
               << value.second << ',' << yuan(value.second) << '\n';
    site_count += value.first;
    site_total += value.second;
  }
  site_line();
  settlement << "ALL,ALL," << count << ',' << total << ',' << yuan(total) << '\n';
  std::cerr << "voucherctl: " << count << " redemptions, " << yuan(total) << " yuan, over "
            << per_sku.size() << " site/SKU pairs\n";
  return 0;
}

// Writes what an auditor needs: the campaign (with its commitment), every
// draw, and the seed once the campaign has ended.
int export_draws(const std::string& target,
                 const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                 const std::string& token, const std::string& campaign,
                 const std::string& out_dir) {
  auto stub = v1::AdminService::NewStub(grpc::CreateChannel(target, credentials));
  auto context = [&](grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  };
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
    if (auto st = stub->GetCampaign(&ctx, req, &c); !st.ok()) {
      std::cerr << "voucherctl: GetCampaign failed: " << st.error_message() << "\n";
      return 1;
    }
  }
  std::string text;
  json.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(c, &text, json);
  if (!write("campaign.json", text + "\n")) return 2;

  grpc::ClientContext ctx;
  context(ctx);
  v1::ExportDrawsRequest req;
  req.set_campaign_id(campaign);
  auto reader = stub->ExportDraws(&ctx, req);
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
  if (auto st = reader->Finish(); !st.ok()) {
    std::cerr << "voucherctl: ExportDraws failed: " << st.error_message() << "\n";
    return 1;
  }
  if (!draws.flush()) {
    std::cerr << "voucherctl: cannot write " << out_dir << "/draws.jsonl\n";
    return 2;
  }
  std::cerr << "voucherctl: " << n << " draws\n";

  grpc::ClientContext seed_ctx;
  context(seed_ctx);
  v1::RevealSeedRequest seed_req;
  seed_req.set_campaign_id(campaign);
  v1::RevealSeedResponse seed;
  if (auto st = stub->RevealSeed(&seed_ctx, seed_req, &seed); !st.ok()) {
    std::cerr << "voucherctl: no seed yet (" << st.error_message()
              << "); export again after the campaign ends\n";
    return 0;
  }
  return write("seed.txt", seed.seed() + "\n") ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"voucherctl — voucherd operators' tool", "voucherctl"};
  app.require_subcommand(1);
  auto* hash =
      app.add_subcommand("hash-token", "read a token on stdin and print its --auth-file form");
  std::string target = "127.0.0.1:50051", campaign, site, settlement, detail, token_file;
  auto* exp = app.add_subcommand("export-redemptions",
                                 "write the settlement report (per site and SKU) and the "
                                 "per-voucher detail as CSV");
  exp->add_option("--target", target, "voucherd address")->capture_default_str();
  exp->add_option("--campaign", campaign, "campaign id")->required();
  exp->add_option("--site", site, "only this site's redemptions");
  exp->add_option("--settlement", settlement, "settlement CSV to write")->required();
  exp->add_option("--detail", detail, "per-voucher CSV to write");
  voucherd::ClientTls tls;
  // Where voucherd is and how to reach it: every calling subcommand has these.
  auto connection_options = [&](CLI::App* sub) {
    sub->add_option("--tls-ca", tls.ca_file, "PEM CA that signed voucherd's certificate: use TLS")
        ->check(CLI::ExistingFile);
    sub->add_option("--tls-cert", tls.cert_file, "PEM client certificate, for mutual TLS")
        ->check(CLI::ExistingFile);
    sub->add_option("--tls-key", tls.key_file, "PEM private key of --tls-cert")
        ->check(CLI::ExistingFile);
    sub->add_option("--token-file", token_file,
                    "file whose first line is the admin bearer token (else VOUCHERCTL_TOKEN)");
  };
  connection_options(exp);
  std::string out_dir;
  auto* draws = app.add_subcommand(
      "export-draws",
      "write a LOTTERY campaign's definition, every draw and (once it ended) its seed to a "
      "folder, for voucher-audit");
  draws->add_option("--target", target, "voucherd address")->capture_default_str();
  draws->add_option("--campaign", campaign, "campaign id")->required();
  draws->add_option("--out", out_dir, "folder to write campaign.json, draws.jsonl, seed.txt")
      ->required();
  connection_options(draws);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (hash->parsed()) {
    std::string token;
    std::getline(std::cin, token);
    if (token.empty()) {
      std::cerr << "voucherctl: no token on stdin\n";
      return 2;
    }
    std::cout << "sha256:" << voucherd::token_hash(token) << "\n";
    return 0;
  }
  if (tls.cert_file.empty() != tls.key_file.empty() ||
      (!tls.cert_file.empty() && tls.ca_file.empty())) {
    std::cerr << "voucherctl: --tls-cert and --tls-key go together, with --tls-ca\n";
    return 2;
  }
  auto credentials = voucherd::client_credentials(tls);
  if (!credentials) {
    std::cerr << "voucherctl: " << credentials.error() << "\n";
    return 2;
  }
  if (draws->parsed()) {
    return export_draws(target, *credentials, read_token(token_file), campaign, out_dir);
  }
  return export_redemptions(target, *credentials, read_token(token_file), campaign, site,
                            settlement, detail);
}
