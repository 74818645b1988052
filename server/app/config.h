// config.h — voucherd's configuration: parsed and validated once at start
// into one immutable struct, then passed down by const&.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <expected>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/base/log.h"

namespace voucherd {

enum class StoreKind : std::uint8_t {
  kMemory,
  kRedis,
  kRedisPerClaim,  // the benchmark baseline: one Lua call per claim, no batching
};

struct Config {
  std::string listen = "127.0.0.1:50051";
  std::string campaigns_file;  // protobuf JSON: a CampaignSet or one Campaign
  StoreKind store = StoreKind::kMemory;
  std::string redis_url;            // --store=redis*: redis://HOST:PORT[/DB]
  std::string redis_sentinel;       // --store=redis: HOST:PORT[,HOST:PORT...] of sentinels
  std::string redis_master;         // with redis_sentinel: the master's name
  std::string redis_cluster;        // --store=redis: HOST:PORT[,HOST:PORT...] of cluster nodes
  int redis_min_replicas = 0;       // --store=redis: WAIT for this many replicas per batch
  int redis_replica_wait_ms = 500;  // ... at most this long
  int redis_pool = 16;              // --store=redis-per-claim: connections, one thread each
  bool replace_campaigns = false;   // replace different stored definitions before they open
  std::string replica_id;           // --store=redis: this process's name in lease records
  int lease_timeout_ms = 3000;      // --store=redis: a replica silent this long loses its leases
  int allocation_lease_ms =
      10'000;                      // --store=redis: an allocation turn not renewed this long passes
  int allocation_batch_max = 512;  // winners an allocation step writes at most
  std::string secret_file;         // hex; see README "Secret file"
  std::string port_file;           // written with the bound port once listening
  std::string ops_listen = "127.0.0.1:9464";  // the operators' HTTP port
  std::string ops_port_file;                  // written with the bound ops port
  std::uint32_t member_press_rate = 5;        // Claim presses a second per member and campaign
  std::uint32_t member_press_burst = 20;      // ... at once
  std::string ops_auth_file;  // bearer tokens for the ops port; empty: open (loopback only)
  bool ops_insecure = false;  // allow an open ops port on a non-loopback address
  log::Level log_level = log::Level::kInfo;  // --log-level debug, info, warn, error
  bool rehearse = false;                     // open loaded campaigns' windows from now
  // Completion-queue polling threads; 0: default_grpc_threads().
  int grpc_threads = 0;
  std::string auth_file;            // bearer tokens -> roles; empty: open (warned loudly)
  std::string tls_cert;             // PEM server certificate chain; with tls_key: TLS
  std::string tls_key;              // PEM private key
  std::string tls_client_ca;        // PEM CA: clients must present a certificate it signed (mTLS)
  int redeem_failure_budget = 100;  // failed redemptions before a cool-down
  int redeem_cooldown_seconds = 60;
  std::string config_file;  // --config / VOUCHERD_CONFIG: where file settings came from
  bool operator==(const Config&) const = default;
};

struct ConfigResult {
  int exit_code = 0;  // when set: exit with it (--help, --version, bad value)
  bool should_exit = false;
  Config config;
};

// Reads an environment variable; nullptr when unset.
using EnvLookup = std::function<const char*(const char*)>;

// The completion-queue threads voucherd runs without --grpc-threads: one
// per core. Measured on 2 cores (bench/README.md, "The gRPC front"): with
// one client connection one queue thread answers more calls than two (the
// pollers take turns at the one socket, so a second thread mostly adds
// hand-offs), but with two connections two threads answer a third more than
// one, the echo server too. A replica behind a load balancer serves many
// connections.
[[nodiscard]] int default_grpc_threads();

// Parses the configuration from its sources, strongest first: argv, then
// the environment (VOUCHERD_<FLAG>), then the config file (--config FILE or
// VOUCHERD_CONFIG; "flag = value" lines), then the defaults. A bad value
// from any source produces should_exit with exit code 2 and a message on
// stderr naming the flag and its source; --help and --version print and
// exit 0.
[[nodiscard]] ConfigResult parse_config(
    int argc, char** argv, const EnvLookup& env = [](const char* name) {
      return static_cast<const char*>(std::getenv(name));
    });

// A value from one source, for a flag named without its dashes.
struct ConfigSetting {
  std::string name;  // "ops-listen"
  std::string value;
  std::string source;  // "config file F, line N" or "environment variable VOUCHERD_X"
};

// The settings of a config file's text (`path` names the file in errors):
// one "flag = value" per line, as parse_config reads --config. Unknown
// flags, flags set twice and lines that are not settings are refused,
// naming the file and line. The values are not checked here.
[[nodiscard]] std::expected<std::vector<ConfigSetting>, std::string> parse_config_file(
    std::string_view text, const std::string& path);

// Reads the secret file: one secret per line (hex digits, spaces ignored,
// 32 to limits::kSecretBytesMax bytes), at most limits::kSecretsMax; the
// first mints voucher codes, the others (being rotated out) only verify
// them; '#' starts a comment.
[[nodiscard]] std::expected<std::vector<std::vector<std::uint8_t>>, std::string> read_secret_file(
    const std::string& path);

}  // namespace voucherd
