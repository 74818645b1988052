#include "server/config.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include "engine/limits.h"

#ifndef VOUCHERD_VERSION
#define VOUCHERD_VERSION "0.0.0"
#endif

namespace voucherd {

ConfigResult parse_config(int argc, char** argv) {
  ConfigResult result;
  Config& c = result.config;
  CLI::App app{"voucherd — voucher lottery and redemption engine (gRPC)", "voucherd"};
  app.set_version_flag("--version", std::string("voucherd ") + VOUCHERD_VERSION);
  app.add_option("--listen", c.listen, "gRPC listen address host:port (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--campaigns", c.campaigns_file,
                 "campaigns to load at start, protobuf JSON (CampaignSet or one Campaign)")
      ->check(CLI::ExistingFile);
  std::string store = "memory";
  app.add_option("--store", store,
                 "claim log: memory (one process, gone at exit), redis (shared, durable), or "
                 "redis-per-claim (benchmark baseline: one Lua call per claim, one replica)")
      ->check(CLI::IsMember({"memory", "redis", "redis-per-claim"}))
      ->capture_default_str();
  app.add_option("--redis", c.redis_url,
                 "with --store=redis: redis://HOST:PORT[/DB] (password: REDIS_PASSWORD or "
                 "redis://:PASSWORD@HOST:PORT)");
  app.add_option("--redis-pool", c.redis_pool,
                 "with --store=redis-per-claim: Redis connections, one thread each")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_flag("--replace-campaigns", c.replace_campaigns,
               "with a shared store: a campaign from --campaigns replaces a different stored "
               "definition if it has not opened, nothing was issued and nothing is leased");
  app.add_option("--replica-id", c.replica_id,
                 "with --store=redis: this replica's name in lease records (default: host, "
                 "pid and a random suffix, new at every start)");
  app.add_option("--secret-file", c.secret_file,
                 "file holding the voucher-code MAC secret as hex (>= 64 hex digits)")
      ->check(CLI::ExistingFile);
  app.add_option("--port-file", c.port_file, "write the bound gRPC port here once listening");
  app.add_option("--ops-listen", c.ops_listen,
                 "operators' HTTP address host:port: /healthz, /readyz, /status (port 0: any)")
      ->capture_default_str();
  app.add_option("--ops-port-file", c.ops_port_file, "write the bound ops HTTP port here");
  app.add_option("--log-level", c.log_level, "JSON log lines on stderr from this level up")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_flag("--rehearse", c.rehearse,
               "open every loaded campaign's window from now (same length) for a rehearsal");
  app.add_option("--auth-file", c.auth_file,
                 "bearer tokens file (sha256:<hex of token> <role> per line; roles app, admin, "
                 "site:<id>); without it voucherd is open to anyone")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", c.tls_cert, "PEM certificate chain: serve gRPC over TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca", c.tls_client_ca,
                 "PEM CA certificate: require client certificates it signed (mutual TLS)")
      ->check(CLI::ExistingFile);
  app.add_option("--redeem-failure-budget", c.redeem_failure_budget,
                 "consecutive redemptions of codes that are not vouchers one caller may make "
                 "before a cool-down")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  app.add_option("--redeem-cooldown-seconds", c.redeem_cooldown_seconds,
                 "how long a caller past the failure budget is refused")
      ->check(CLI::Range(1, 86'400))
      ->capture_default_str();
  app.add_option("--grpc-threads", c.grpc_threads, "completion-queue polling threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  // Every flag may also come from the environment: --ops-listen from
  // VOUCHERD_OPS_LISTEN, and so on. A flag on the command line wins.
  for (CLI::Option* option : app.get_options()) {
    const std::string name = option->get_single_name();
    if (name == "help" || name == "version" || name.empty()) continue;
    std::string env = "VOUCHERD_";
    for (char ch : name) env.push_back(ch == '-' ? '_' : static_cast<char>(std::toupper(ch)));
    option->envname(env);
  }
  app.footer(
      "Every flag may also be set in the environment as VOUCHERD_<FLAG> (e.g. "
      "VOUCHERD_OPS_LISTEN, VOUCHERD_STORE); a flag given on the command line wins over the "
      "environment, which wins over the default. Secrets stay in files (--secret-file, "
      "--auth-file) or REDIS_PASSWORD.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    result.should_exit = true;
    result.exit_code = app.exit(e);  // prints help/version (0) or the error (non-zero)
    if (result.exit_code != 0) result.exit_code = 2;
    return result;
  }
  c.store = store == "redis"             ? StoreKind::kRedis
            : store == "redis-per-claim" ? StoreKind::kRedisPerClaim
                                         : StoreKind::kMemory;
  auto refuse = [&](const std::string& msg) {
    std::cerr << msg << "\n";
    result.should_exit = true;
    result.exit_code = 2;
    return result;
  };
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return refuse("--tls-cert and --tls-key go together: give both, or neither");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return refuse("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (c.store != StoreKind::kMemory) {
    if (c.redis_url.empty()) {
      return refuse("--store=" + store + " needs --redis redis://HOST:PORT[/DB]");
    }
    // Codes minted under a throw-away secret could not be verified by the
    // other replicas or after a restart: refuse rather than mint them.
    if (c.secret_file.empty()) {
      return refuse("--store=" + store +
                    " needs --secret-file: every replica and every restart must share one "
                    "MAC secret to verify each other's voucher codes");
    }
  } else if (!c.redis_url.empty()) {
    return refuse("--redis is only used with --store=redis or redis-per-claim");
  }
  return result;
}

std::expected<std::vector<std::uint8_t>, std::string> read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected("cannot read --secret-file " + path);
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  if (text.size() > 2 * limits::kSecretBytesMax + 1024) {
    return std::unexpected("--secret-file " + path + " is too large");
  }
  std::vector<std::uint8_t> out;
  int high = -1;
  for (char ch : text) {
    if (std::isspace(static_cast<unsigned char>(ch))) continue;
    int v = -1;
    if (ch >= '0' && ch <= '9') v = ch - '0';
    if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
    if (v < 0) return std::unexpected("--secret-file " + path + " must hold hex digits only");
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(high * 16 + v));
      high = -1;
    }
  }
  if (high >= 0)
    return std::unexpected("--secret-file " + path + " has an odd number of hex digits");
  if (out.size() < limits::kSecretBytesMin) {
    return std::unexpected("--secret-file " + path + " holds " + std::to_string(out.size()) +
                           " bytes; at least " + std::to_string(limits::kSecretBytesMin) +
                           " are needed (64 hex digits)");
  }
  return out;
}

}  // namespace voucherd
