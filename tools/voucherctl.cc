// voucherctl — the operators' command-line tool.
//
//   voucherctl campaigns list [-o json]
//   voucherctl campaigns get ID [-o json]
//   voucherctl campaigns create FILE [--replace-before-open]
//   voucherctl campaigns validate FILE        offline: names each wrong field
//   voucherctl stats CAMPAIGN [-o json]
//   voucherctl voucher get CODE [-o json]
//   voucherctl voucher cancel CODE [-o json]
//   voucherctl reconcile CAMPAIGN [-o json]
//   voucherctl replicas [--campaign ID] [-o json]
//   voucherctl export-redemptions --campaign ID [--site ID] --settlement FILE.csv
//       [--detail FILE.csv]
//   voucherctl export-draws --campaign ID --out DIR
//       writes DIR/campaign.json (with the seed commitment), DIR/draws.jsonl
//       (every draw, in order) and, once the campaign has ended,
//       DIR/seed.txt: what voucher-audit checks
//   voucherctl export-applications --campaign ID --out DIR
//       the same for an APPLY_THEN_DRAW campaign: DIR/campaign.json,
//       DIR/applications.jsonl (every application and its outcome, by
//       member), DIR/stats.json (the published counts) and, once the
//       allocation is done, DIR/seed.txt
//   voucherctl hash-token                     reads a token on stdin, prints
//                                             its tokens-file form
//
// Every subcommand that calls voucherd takes the same connection flags:
// --target HOST:PORT (or VOUCHERCTL_TARGET; default 127.0.0.1:50051),
// --token-file F (else VOUCHERCTL_TOKEN; never a flag, which would show in
// process lists), --tls-ca/--tls-cert/--tls-key, --deadline-s. Exit status:
// 0 done, 1 voucherd refused or failed (or the file does not validate),
// 2 bad usage.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "server/grpc/auth.h"
#include "tools/ctl/ctl.h"

namespace {

using voucherd::ctl::ConnectionFlags;
using voucherd::ctl::Output;
using voucherd::ctl::Session;

int hash_token() {
  std::string token;
  std::getline(std::cin, token);
  if (token.empty()) {
    std::cerr << "voucherctl: no token on stdin\n";
    return voucherd::ctl::kUsage;
  }
  std::cout << "sha256:" << voucherd::token_hash(token) << "\n";
  return voucherd::ctl::kDone;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"voucherctl — voucherd operators' tool", "voucherctl"};
  app.require_subcommand(1);
  ConnectionFlags flags;
  std::string output = "table";
  // The flags of every subcommand that calls voucherd.
  auto connection = [&](CLI::App* sub) {
    sub->add_option("--target", flags.target, "voucherd address (HOST:PORT)")
        ->envname("VOUCHERCTL_TARGET")
        ->capture_default_str();
    sub->add_option("--token-file", flags.token_file,
                    "file whose first line is the bearer token (else VOUCHERCTL_TOKEN)");
    sub->add_option("--tls-ca", flags.tls.ca_file,
                    "PEM CA that signed voucherd's certificate: use TLS")
        ->check(CLI::ExistingFile);
    sub->add_option("--tls-cert", flags.tls.cert_file, "PEM client certificate, for mutual TLS")
        ->check(CLI::ExistingFile);
    sub->add_option("--tls-key", flags.tls.key_file, "PEM private key of --tls-cert")
        ->check(CLI::ExistingFile);
    sub->add_option("--deadline-s", flags.deadline_s, "deadline of each call, in seconds")
        ->capture_default_str();
  };
  auto with_output = [&](CLI::App* sub) {
    sub->add_option("-o,--output", output, "table (for people) or json (protobuf JSON)")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
  };
  auto calling = [&](CLI::App* parent, const char* name, const char* what) {
    CLI::App* sub = parent->add_subcommand(name, what);
    connection(sub);
    return sub;
  };

  std::string id, file, campaign, code, site, settlement, detail, out_dir;
  bool replace_before_open = false;

  auto* campaigns = app.add_subcommand("campaigns", "list, show, create and validate campaigns");
  campaigns->require_subcommand(1);
  auto* c_list = calling(campaigns, "list", "every campaign voucherd serves, ordered by id");
  with_output(c_list);
  auto* c_get = calling(campaigns, "get", "one campaign's definition");
  c_get->add_option("ID", id, "campaign id")->required();
  with_output(c_get);
  auto* c_create = calling(campaigns, "create",
                           "create every campaign of a file (a CampaignSet or one Campaign in "
                           "protobuf JSON), after validating it offline");
  c_create->add_option("FILE", file, "campaigns file")->required();
  c_create->add_flag("--replace-before-open", replace_before_open,
                     "replace a different stored definition if it has not opened, nothing was "
                     "issued and nothing is leased");
  auto* c_validate = campaigns->add_subcommand(
      "validate", "check a campaigns file offline, naming each wrong field (no call)");
  c_validate->add_option("FILE", file, "campaigns file")->required();

  auto* st = calling(&app, "stats", "stock, issued, redeemed, remaining and expired, per SKU");
  st->add_option("CAMPAIGN", campaign, "campaign id")->required();
  with_output(st);

  auto* voucher = app.add_subcommand("voucher", "look up or cancel a voucher");
  voucher->require_subcommand(1);
  auto* v_get = calling(voucher, "get", "a voucher by its code, with its state");
  v_get->add_option("CODE", code, "voucher code")->required();
  with_output(v_get);
  auto* v_cancel = calling(voucher, "cancel",
                           "cancel an ISSUED voucher: its unit goes back to stock (a cancelled "
                           "one is returned unchanged)");
  v_cancel->add_option("CODE", code, "voucher code")->required();
  with_output(v_cancel);

  auto* rec = calling(&app, "reconcile",
                      "return the units leased by lapsed replicas to the shared stock now");
  rec->add_option("CAMPAIGN", campaign, "campaign id")->required();
  with_output(rec);

  auto* reps = calling(&app, "replicas",
                       "the replicas sharing the store: beats and leased units, per campaign");
  reps->add_option("--campaign", campaign, "only this campaign");
  with_output(reps);

  auto* exp = calling(&app, "export-redemptions",
                      "write the settlement report (per site and SKU) and the per-voucher "
                      "detail as CSV");
  exp->add_option("--campaign", campaign, "campaign id")->required();
  exp->add_option("--site", site, "only this site's redemptions");
  exp->add_option("--settlement", settlement, "settlement CSV to write")->required();
  exp->add_option("--detail", detail, "per-voucher CSV to write");

  auto* draws = calling(&app, "export-draws",
                        "write a LOTTERY campaign's definition, every draw and (once it ended) "
                        "its seed to a folder, for voucher-audit");
  draws->add_option("--campaign", campaign, "campaign id")->required();
  draws->add_option("--out", out_dir, "folder to write campaign.json, draws.jsonl, seed.txt")
      ->required();

  auto* apps = calling(&app, "export-applications",
                       "write an APPLY_THEN_DRAW campaign's definition, every application with "
                       "its outcome, its published counts and (once allocated) its seed to a "
                       "folder, for voucher-audit");
  apps->add_option("--campaign", campaign, "campaign id")->required();
  apps->add_option("--out", out_dir,
                   "folder to write campaign.json, applications.jsonl, stats.json, seed.txt")
      ->required();

  auto* hash =
      app.add_subcommand("hash-token", "read a token on stdin and print its --auth-file form");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code_out = app.exit(e);
    return code_out == 0 ? voucherd::ctl::kDone : voucherd::ctl::kUsage;
  }
  if (hash->parsed()) return hash_token();
  if (c_validate->parsed()) return voucherd::ctl::campaigns_validate(file);

  auto session = Session::open(flags);
  if (!session) {
    std::cerr << "voucherctl: " << session.error() << "\n";
    return voucherd::ctl::kUsage;
  }
  const Session& s = *session;
  const Output o = output == "json" ? Output::kJson : Output::kTable;
  namespace ctl = voucherd::ctl;
  if (c_list->parsed()) return ctl::campaigns_list(s, o);
  if (c_get->parsed()) return ctl::campaigns_get(s, id, o);
  if (c_create->parsed()) return ctl::campaigns_create(s, file, replace_before_open);
  if (st->parsed()) return ctl::stats(s, campaign, o);
  if (v_get->parsed()) return ctl::voucher_get(s, code, o);
  if (v_cancel->parsed()) return ctl::voucher_cancel(s, code, o);
  if (rec->parsed()) return ctl::reconcile(s, campaign, o);
  if (reps->parsed()) return ctl::replicas(s, campaign, o);
  if (draws->parsed()) return ctl::export_draws(s, campaign, out_dir);
  if (apps->parsed()) return ctl::export_applications(s, campaign, out_dir);
  return ctl::export_redemptions(s, campaign, site, settlement, detail);
}
