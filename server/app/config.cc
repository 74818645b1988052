#include "server/app/config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "engine/campaign_validation.h"
#include "engine/limits.h"
#include "server/base/loopback.h"

#ifndef VOUCHERD_VERSION
#define VOUCHERD_VERSION "0.0.0"
#endif

namespace voucherd {

namespace {

// A config file holds one line per flag (about 25) and comments; anything
// far longer is not a config file.
constexpr std::size_t kConfigLinesMax = 1000;

using Setting = ConfigSetting;

constexpr const char* kPrecedence =
    "Each setting comes from, strongest first: the command line, then the environment "
    "(VOUCHERD_<FLAG>, e.g. VOUCHERD_OPS_LISTEN, VOUCHERD_STORE), then the config file "
    "(--config FILE or VOUCHERD_CONFIG: one \"flag = value\" per line, the flag without its "
    "dashes, e.g. ops-listen = 127.0.0.1:9464; # starts a comment line; values may be "
    "quoted; true/false for switches), then the default. Secrets stay in files "
    "(--secret-file, --auth-file) or REDIS_PASSWORD.";

// The options, bound to `c` (and to `store`, read after parsing).
void define_options(CLI::App& app, Config& c, std::string& store, std::string& log_level) {
  app.set_version_flag("--version", std::string("voucherd ") + VOUCHERD_VERSION);
  app.add_option("--listen", c.listen, "gRPC listen address host:port (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--campaigns", c.campaigns_file,
                 "campaigns to load at start, protobuf JSON (CampaignSet or one Campaign)")
      ->check(CLI::ExistingFile);
  app.add_option("--store", store,
                 "claim log: memory (one process, gone at exit), redis (shared, durable), or "
                 "redis-per-claim (benchmark baseline: one Lua call per claim, one replica)")
      ->check(CLI::IsMember({"memory", "redis", "redis-per-claim"}))
      ->capture_default_str();
  app.add_option("--redis", c.redis_url,
                 "with --store=redis: redis://HOST:PORT[/DB] (password: REDIS_PASSWORD or "
                 "redis://:PASSWORD@HOST:PORT)");
  app.add_option("--redis-sentinel", c.redis_sentinel,
                 "with --store=redis, instead of --redis: Redis Sentinel HOST:PORT[,HOST:PORT...] "
                 "naming the primary of --redis-master (password: REDIS_PASSWORD for the "
                 "primary, REDIS_SENTINEL_PASSWORD for the sentinels)");
  app.add_option("--redis-cluster", c.redis_cluster,
                 "with --store=redis, instead of --redis: a Redis Cluster, from any of its nodes "
                 "HOST:PORT[,HOST:PORT...] (password: REDIS_PASSWORD); each campaign lives on the "
                 "primary that serves its slot");
  app.add_option("--redis-master", c.redis_master,
                 "with --redis-sentinel: the master's name in the sentinels' configuration");
  app.add_option("--redis-min-replicas", c.redis_min_replicas,
                 "with --store=redis: a claim, redemption, cancellation or draw is answered OK "
                 "only once this many replicas of the Redis primary have it (WAIT); if fewer "
                 "confirm within --redis-replica-wait-ms it is answered UNAVAILABLE (0: no WAIT)")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  app.add_option("--redis-replica-wait-ms", c.redis_replica_wait_ms,
                 "with --redis-min-replicas: how long a batch waits for its replicas")
      ->check(CLI::Range(1, 1500))
      ->capture_default_str();
  app.add_option("--redis-pool", c.redis_pool,
                 "with --store=redis-per-claim: Redis connections, one thread each")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_flag("--replace-campaigns", c.replace_campaigns,
               "with a shared store: a campaign from --campaigns replaces a different stored "
               "definition if it has not opened, nothing was issued and nothing is leased");
  app.add_option("--replica-id", c.replica_id,
                 "this replica's name in the store's lease records and in ListReplicas "
                 "(default: host, pid and a random suffix, new at every start)");
  app.add_option("--lease-timeout-ms", c.lease_timeout_ms,
                 "with --store=redis: a replica that has not beaten this long is taken for dead, "
                 "and any live replica gives its leased units back to the pool (it beats every "
                 "sixth of this); use the same value on every replica")
      ->check(CLI::Range(600, 600'000))
      ->capture_default_str();
  app.add_option("--allocation-lease-ms", c.allocation_lease_ms,
                 "with --store=redis: an APPLY_THEN_DRAW campaign's allocation passes to another "
                 "replica when the one allocating has not renewed its turn this long (it renews it "
                 "with every step, and while it reads the applications); it must cover reading "
                 "and ranking them; use the same value on every replica")
      ->check(CLI::Range(1'000, 3'600'000))
      ->capture_default_str();
  app.add_option("--allocation-batch-max", c.allocation_batch_max,
                 "winners an allocation step writes at most, in one atomic step of the store "
                 "(smaller: shorter scripts, more round trips)")
      ->check(CLI::Range(1, static_cast<int>(limits::kAllocationBatchMax)))
      ->capture_default_str();
  app.add_option("--secret-file", c.secret_file,
                 "file holding the voucher-code MAC secret as hex (>= 64 hex digits)")
      ->check(CLI::ExistingFile);
  app.add_option("--port-file", c.port_file, "write the bound gRPC port here once listening");
  app.add_option("--ops-listen", c.ops_listen,
                 "operators' HTTP address host:port: /healthz, /readyz, /status (port 0: any)")
      ->capture_default_str();
  app.add_option("--ops-port-file", c.ops_port_file, "write the bound ops HTTP port here");
  app.add_option("--ops-auth-file", c.ops_auth_file,
                 "bearer tokens (sha256:<hex> <name> per line) the ops port asks for, but on "
                 "/healthz and /readyz")
      ->check(CLI::ExistingFile);
  app.add_flag("--ops-insecure", c.ops_insecure,
               "serve the ops port on a non-loopback --ops-listen without --ops-auth-file");
  app.add_option("--log-level", log_level, "JSON log lines on stderr from this level up")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_flag("--rehearse", c.rehearse,
               "open every loaded campaign's window from now (same length; an apply campaign's "
               "allocation as long after it) for a rehearsal");
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
  app.add_option("--member-press-rate", c.member_press_rate,
                 "Claim presses a second one member may make in one campaign once its burst "
                 "is spent (0: no limit)")
      ->check(CLI::Range(0u, limits::kPressRatePerSecondMax))
      ->capture_default_str();
  app.add_option("--member-press-burst", c.member_press_burst,
                 "Claim presses one member may make at once in one campaign")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  app.add_option("--grpc-threads", c.grpc_threads,
                 "completion-queue polling threads; 0: one per core (" +
                     std::to_string(default_grpc_threads()) + " here)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  app.add_option("--config", c.config_file,
                 "config file of flag = value lines (see below); also VOUCHERD_CONFIG");
  for (CLI::Option* option : app.get_options()) {
    // The sources are layered by order of arguments (see parse_config):
    // the last value given wins.
    option->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  app.footer(kPrecedence);
}

// The names settable from the environment or a config file: every flag
// but --help, --version and --config.
std::vector<std::string> setting_names(CLI::App& app) {
  std::vector<std::string> names;
  for (CLI::Option* option : app.get_options()) {
    const std::string name = option->get_single_name();
    if (name.empty() || name == "help" || name == "version" || name == "config") continue;
    names.push_back(name);
  }
  return names;
}

std::string env_name(std::string_view flag) {
  std::string env = "VOUCHERD_";
  for (char ch : flag) env.push_back(ch == '-' ? '_' : static_cast<char>(std::toupper(ch)));
  return env;
}

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return std::string(s.substr(first, last - first + 1));
}

// Reads `flag = value` lines from `in`. Unknown flags, repeated flags and
// lines that are not settings are refused, naming the file and line.
std::expected<std::vector<Setting>, std::string> read_settings(
    std::istream& in, const std::string& path, const std::vector<std::string>& names) {
  std::vector<Setting> out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = "config file " + path + ", line " + std::to_string(number);
    if (number > static_cast<int>(kConfigLinesMax)) {
      return std::unexpected(where + ": more than " + std::to_string(kConfigLinesMax) + " lines");
    }
    const std::string text = trim(line);
    if (text.empty() || text[0] == '#') continue;
    const auto eq = text.find('=');
    if (eq == std::string::npos) {
      return std::unexpected(where + ": expected \"flag = value\", got \"" + text + "\"");
    }
    std::string name = trim(std::string_view(text).substr(0, eq));
    for (char& ch : name) ch = ch == '_' ? '-' : static_cast<char>(std::tolower(ch));
    if (name.rfind("--", 0) == 0) name.erase(0, 2);
    std::string value = trim(std::string_view(text).substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return std::unexpected(where + ": unknown setting \"" + name + "\"");
    }
    for (const Setting& s : out) {
      if (s.name == name) return std::unexpected(where + ": \"" + name + "\" is set twice");
    }
    out.push_back({name, value, where});
  }
  return out;
}

std::expected<std::vector<Setting>, std::string> read_config_file(
    const std::string& path, const std::vector<std::string>& names) {
  std::ifstream in(path);
  if (!in) return std::unexpected("cannot read config file " + path);
  return read_settings(in, path, names);
}

// Parses `args` (in order) into a fresh Config; the CLI11 error, if any.
std::optional<std::string> try_parse(std::vector<std::string> args) {
  Config scratch;
  std::string store = "memory";
  std::string log_level = "info";
  CLI::App app{"voucherd", "voucherd"};
  define_options(app, scratch, store, log_level);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector reversed
  try {
    app.parse(std::move(args));
  } catch (const CLI::ParseError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

}  // namespace

int default_grpc_threads() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

ConfigResult parse_config(int argc, char** argv, const EnvLookup& env) {
  ConfigResult result;
  Config& c = result.config;
  CLI::App app{"voucherd — voucher lottery and redemption engine (gRPC)", "voucherd"};
  std::string store = "memory";
  std::string log_level = "info";
  define_options(app, c, store, log_level);
  const std::vector<std::string> names = setting_names(app);
  auto refuse = [&](const std::string& msg) {
    std::cerr << "voucherd: " << msg << "\n";
    result.should_exit = true;
    result.exit_code = 2;
    return result;
  };

  // The config file: --config on the command line, else VOUCHERD_CONFIG.
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) config_path = argv[i + 1];
    if (arg.rfind("--config=", 0) == 0) config_path = std::string(arg.substr(9));
  }
  if (config_path.empty()) {
    if (const char* from_env = env("VOUCHERD_CONFIG"); from_env != nullptr) {
      config_path = from_env;
    }
  }
  std::vector<Setting> settings;
  if (!config_path.empty()) {
    auto file = read_config_file(config_path, names);
    if (!file) return refuse(file.error());
    settings = std::move(*file);
  }
  for (const std::string& name : names) {
    const std::string variable = env_name(name);
    if (const char* value = env(variable.c_str()); value != nullptr) {
      settings.push_back({name, value, "environment variable " + variable});
    }
  }
  // --help and --version answer whatever the other sources hold.
  bool asks_help_or_version = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    asks_help_or_version =
        asks_help_or_version || arg == "--help" || arg == "-h" || arg == "--version";
  }
  if (asks_help_or_version) settings.clear();
  // Each value of a file or the environment alone first, so that a bad one
  // is reported with its source.
  for (const Setting& s : settings) {
    if (auto error = try_parse({"--" + s.name + "=" + s.value})) {
      return refuse(s.source + ": " + *error);
    }
  }
  // Then all of them in order of precedence, weakest first: with every
  // option taking the last value given, the command line beats the
  // environment, which beats the file (CLI11's own config and environment
  // support would put the file above the environment).
  std::vector<std::string> args;
  for (const Setting& s : settings) args.push_back("--" + s.name + "=" + s.value);
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector reversed
  try {
    app.parse(std::move(args));
  } catch (const CLI::ParseError& e) {
    result.should_exit = true;
    result.exit_code = app.exit(e);  // prints help/version (0) or the error (non-zero)
    if (result.exit_code != 0) {
      result.exit_code = 2;
      std::cerr << "voucherd: the command line has a bad value (see above)\n";
    }
    return result;
  }
  c.config_file = config_path;
  c.store = store == "redis"             ? StoreKind::kRedis
            : store == "redis-per-claim" ? StoreKind::kRedisPerClaim
                                         : StoreKind::kMemory;
  // The option's check admits only names parse_level knows.
  c.log_level = log::parse_level(log_level).value_or(log::Level::kInfo);
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return refuse("--tls-cert and --tls-key go together: give both, or neither");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return refuse("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (!c.redis_sentinel.empty() && c.store != StoreKind::kRedis) {
    return refuse("--redis-sentinel is only used with --store=redis");
  }
  if (c.redis_min_replicas > 0 && c.store != StoreKind::kRedis) {
    return refuse("--redis-min-replicas is only used with --store=redis");
  }
  // An id like any other, and without '|': lease records are "replica|SKU",
  // split at the first '|'.
  if (!c.replica_id.empty() && (id_problem(c.replica_id) != IdProblem::kNone ||
                                c.replica_id.find('|') != std::string::npos)) {
    return refuse("--replica-id must be 1 to " + std::to_string(limits::kIdBytesMax) +
                  " bytes without '|' or control characters");
  }
  // /status tells campaign definitions, sites and counts: it does not face a
  // network without tokens unless the operator says so.
  if (c.ops_auth_file.empty() && !c.ops_insecure && !binds_loopback_only(c.ops_listen)) {
    return refuse("--ops-listen " + c.ops_listen +
                  " reaches beyond this machine: give --ops-auth-file (tokens for "
                  "/status, /metrics, /series and the dashboard), or --ops-insecure to serve "
                  "them to anyone who can connect");
  }
  if (c.redis_sentinel.empty() != c.redis_master.empty()) {
    return refuse("--redis-sentinel and --redis-master go together: give both, or neither");
  }
  if (!c.redis_cluster.empty() && c.store != StoreKind::kRedis) {
    return refuse("--redis-cluster is only used with --store=redis");
  }
  if (!c.redis_url.empty() + !c.redis_sentinel.empty() + !c.redis_cluster.empty() > 1) {
    return refuse("give one of --redis, --redis-sentinel and --redis-cluster");
  }
  if (c.store != StoreKind::kMemory) {
    if (c.redis_url.empty() && c.redis_sentinel.empty() && c.redis_cluster.empty()) {
      return refuse("--store=" + store +
                    " needs --redis redis://HOST:PORT[/DB] (or, with --store=redis, "
                    "--redis-sentinel HOST:PORT[,...] and --redis-master NAME, or "
                    "--redis-cluster HOST:PORT[,...])");
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

std::expected<std::vector<ConfigSetting>, std::string> parse_config_file(std::string_view text,
                                                                         const std::string& path) {
  Config scratch;
  std::string store;
  std::string log_level;
  CLI::App app{"voucherd", "voucherd"};
  define_options(app, scratch, store, log_level);
  std::istringstream in{std::string(text)};
  return read_settings(in, path, setting_names(app));
}

std::expected<std::vector<std::vector<std::uint8_t>>, std::string> read_secret_file(
    const std::string& path) {
  auto read = read_file(path, "--secret-file");
  if (!read) return std::unexpected(read.error());
  const std::string& text = *read;
  if (text.size() > limits::kSecretsMax * (2 * limits::kSecretBytesMax + 1024)) {
    return std::unexpected("--secret-file " + path + " is too large");
  }
  // One secret per line, the minting one first; '#' starts a comment.
  std::vector<std::vector<std::uint8_t>> secrets;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const std::string where = "--secret-file " + path + " line " + std::to_string(number);
    std::vector<std::uint8_t> secret;
    int high = -1;
    for (char ch : line) {
      if (std::isspace(static_cast<unsigned char>(ch))) continue;
      int v = -1;
      if (ch >= '0' && ch <= '9') v = ch - '0';
      if (ch >= 'a' && ch <= 'f') v = ch - 'a' + 10;
      if (ch >= 'A' && ch <= 'F') v = ch - 'A' + 10;
      if (v < 0) return std::unexpected(where + " must hold hex digits only");
      if (high < 0) {
        high = v;
      } else {
        secret.push_back(static_cast<std::uint8_t>(high * 16 + v));
        high = -1;
      }
    }
    if (high < 0 && secret.empty()) continue;  // blank or comment
    if (high >= 0) return std::unexpected(where + " has an odd number of hex digits");
    if (secret.size() < limits::kSecretBytesMin) {
      return std::unexpected(
          where + " holds " + std::to_string(secret.size()) + " bytes; a secret needs at least " +
          std::to_string(limits::kSecretBytesMin) + " (64 hex digits), on one line");
    }
    if (secret.size() > limits::kSecretBytesMax) {
      return std::unexpected(where + " holds more than " + std::to_string(limits::kSecretBytesMax) +
                             " bytes");
    }
    for (const auto& earlier : secrets) {
      if (earlier == secret) return std::unexpected(where + ": the same secret appears twice");
    }
    if (secrets.size() == limits::kSecretsMax) {
      return std::unexpected("--secret-file " + path + " holds more than " +
                             std::to_string(limits::kSecretsMax) + " secrets");
    }
    secrets.push_back(std::move(secret));
  }
  if (secrets.empty()) return std::unexpected("--secret-file " + path + " holds no secret");
  return secrets;
}

}  // namespace voucherd
