// voucherd — entry point: parse configuration, wire the engine to its
// adapters, serve until SIGTERM/SIGINT, drain, exit 0.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/memory_claim_log.h"
#include "engine/random.h"
#include "server/auth.h"
#include "server/campaign_loader.h"
#include "server/config.h"
#include "server/grpc_server.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/ops_server.h"
#include "server/proto_convert.h"
#include "server/redis/per_claim_log.h"
#include "server/redis/redis_claim_log.h"
#include "server/store.h"

namespace {

using namespace voucherd;

constexpr auto kDrainGrace = std::chrono::seconds(10);
// How often the gRPC health service is set to follow readiness.
constexpr auto kReadinessPoll = std::chrono::milliseconds(100);

void log_line(const std::string& level, const std::string& msg) {
  log::write(log::parse_level(level).value_or(log::Level::kInfo), msg);
}

// host-pid-random: a new name at every start, so a restarted replica never
// mistakes the leases of its killed predecessor for its own.
std::string default_replica_id() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::uint8_t r[4];
  SecureRandom{}.fill(r);
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + suffix;
}

bool write_port_file(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << port << "\n";
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::expected<std::string, std::string> read_pem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  if (!in || out.str().find("-----BEGIN ") == std::string::npos) {
    return std::unexpected(std::string("cannot read a PEM file from ") + flag + " " + path);
  }
  return out.str();
}

// gRPC's own TLS: the certificate and key, and with a client CA, mutual TLS.
std::expected<std::shared_ptr<grpc::ServerCredentials>, std::string> tls_credentials(
    const Config& config) {
  auto cert = read_pem(config.tls_cert, "--tls-cert");
  if (!cert) return std::unexpected(cert.error());
  auto key = read_pem(config.tls_key, "--tls-key");
  if (!key) return std::unexpected(key.error());
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!config.tls_client_ca.empty()) {
    auto ca = read_pem(config.tls_client_ca, "--tls-client-ca");
    if (!ca) return std::unexpected(ca.error());
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

int run(const Config& config, const sigset_t& signals) {
  log::set_level(log::parse_level(config.log_level).value_or(log::Level::kInfo));
  std::vector<std::uint8_t> secret;
  if (!config.secret_file.empty()) {
    auto s = read_secret_file(config.secret_file);
    if (!s) {
      log_line("error", s.error());
      return 2;
    }
    secret = std::move(*s);
  } else {
    // Codes minted under a random secret verify only in this process: fine
    // for the memory store, whose vouchers die with the process anyway.
    secret.resize(32);
    SecureRandom{}.fill(secret);
    log_line("warn",
             "no --secret-file: using a random secret; codes will not verify after restart");
  }

  SystemClock clock;
  SecureRandom random;
  std::unique_ptr<Store> store;
  if (config.store == StoreKind::kMemory) {
    store = std::make_unique<MemoryStore>();
  } else {
    auto endpoint = redis::parse_url(config.redis_url, std::getenv("REDIS_PASSWORD"));
    if (!endpoint) {
      log_line("error", endpoint.error());
      return 2;
    }
    if (config.store == StoreKind::kRedis) {
      redis::ClaimLogOptions options;
      options.endpoint = std::move(*endpoint);
      options.replica_id = config.replica_id.empty() ? default_replica_id() : config.replica_id;
      options.lease_timeout = std::chrono::milliseconds(config.lease_timeout_ms);
      store =
          std::make_unique<redis::RedisClaimLog>(std::move(options), encode_campaign_definition);
    } else {
      log_line("warn",
               "--store=redis-per-claim is the benchmark baseline (one Lua call per "
               "claim, one replica), not a production store");
      redis::PerClaimLogOptions options;
      options.endpoint = std::move(*endpoint);
      options.connections = static_cast<std::size_t>(config.redis_pool);
      store = std::make_unique<redis::PerClaimRedisLog>(std::move(options));
    }
  }
  ClaimEngine engine(store->claim_log(), clock, random, secret);
  std::fill(secret.begin(), secret.end(), 0);
  if (!config.campaigns_file.empty()) {
    auto campaigns = load_campaigns_file(config.campaigns_file);
    if (!campaigns) {
      log_line("error", campaigns.error());
      return 2;
    }
    for (const auto& proto : *campaigns) {
      auto spec = campaign_from_proto(proto);
      if (!spec) {
        log_line("error", "campaign \"" + proto.id() + "\": " + spec.error().message);
        return 2;
      }
      if (config.rehearse) {
        const UnixMicros length = spec->ends_at_us - spec->starts_at_us;
        spec->starts_at_us = clock.now_us();
        spec->ends_at_us = spec->starts_at_us + (length > 0 ? length : kMicrosPerDay);
      }
      auto created = engine.create_campaign(
          std::move(*spec), config.replace_campaigns ? StoredDefinition::kReplaceBeforeOpen
                                                     : StoredDefinition::kMustMatch);
      if (!created) {
        log_line("error", "campaign \"" + proto.id() + "\" in " + config.campaigns_file + ": " +
                              created.error().field.message);
        return 2;
      }
      std::int64_t stock = 0;
      for (const auto& sku : (*created)->spec().skus) stock += sku.stock;
      log_line("info", "loaded campaign \"" + proto.id() +
                           "\": " + std::to_string((*created)->spec().sites.size()) + " sites, " +
                           std::to_string((*created)->spec().skus.size()) + " SKUs, " +
                           std::to_string(stock) + " packs" +
                           (config.rehearse ? " (rehearsal: window opens now)" : ""));
    }
  }

  // The store's registry (after --campaigns, which may replace a stored
  // definition before it opens): every campaign it holds is served here too,
  // whichever replica created it, without a restart or a file.
  store->watch_campaigns([&engine](const std::string& id, const std::string& definition) {
    voucher::v1::Campaign proto;
    if (!proto.ParseFromString(definition)) {
      log::warn("campaign \"" + id + "\" in the store's registry does not parse; not served",
                {{"campaign", id}});
      return;
    }
    auto spec = campaign_from_proto(proto);
    if (!spec) {
      log::warn("campaign \"" + id + "\" in the store's registry is not valid here (" +
                    spec.error().message + "); not served",
                {{"campaign", id}});
      return;
    }
    auto created = engine.create_campaign(std::move(*spec));
    if (!created) {
      log::warn("campaign \"" + id + "\" from the store's registry: " +
                    created.error().field.message + "; not served",
                {{"campaign", id}});
      return;
    }
    log::info("serving campaign \"" + id + "\" from the store's registry", {{"campaign", id}});
  });
  // Connects at once (and reads the registry); the store's threads call into
  // the engine's campaigns: stop them before the engine goes, on every way
  // out of this function.
  store->start();
  struct StopStore {
    Store& store;
    ~StopStore() { store.stop(); }
  } stop_store{*store};

  std::optional<Authenticator> auth;
  if (!config.auth_file.empty()) {
    auto loaded = Authenticator::load(config.auth_file);
    if (!loaded) {
      log_line("error", loaded.error());
      return 2;
    }
    auth = std::move(*loaded);
    log_line("info", "auth: " + std::to_string(auth->size()) + " tokens from " + config.auth_file);
  } else {
    log_line("warn",
             "NO --auth-file: voucherd is OPEN. Anyone who can reach it may claim, redeem and "
             "administer. Give it a tokens file before it faces a network.");
  }
  GrpcServerOptions server_options;
  if (!config.tls_cert.empty()) {
    auto credentials = tls_credentials(config);
    if (!credentials) {
      log_line("error", credentials.error());
      return 2;
    }
    server_options.credentials = std::move(*credentials);
  }
  server_options.listen = config.listen;
  server_options.polling_threads = config.grpc_threads;
  server_options.store = store.get();
  server_options.auth = auth ? &*auth : nullptr;
  server_options.redeem_failure_budget = config.redeem_failure_budget;
  server_options.redeem_cooldown = std::chrono::seconds(config.redeem_cooldown_seconds);
  const std::string transport = config.tls_cert.empty()        ? "plaintext"
                                : config.tls_client_ca.empty() ? "TLS"
                                                               : "mutual TLS";
  const std::string store_name(store->kind());
  Metrics metrics(engine, MetricsOptions{VOUCHERD_VERSION, store.get()});
  server_options.metrics = &metrics;
  OpsServerOptions ops_options;
  ops_options.listen = config.ops_listen;
  ops_options.version = VOUCHERD_VERSION;
  ops_options.store = store.get();
  ops_options.auth_open = !auth.has_value();
  ops_options.transport = transport;
  ops_options.metrics = &metrics;
  OpsServer ops(engine, std::move(ops_options));
  const auto ops_port = ops.start();
  if (!ops_port) {
    log_line("error", ops_port.error());
    return 1;
  }
  if (!config.ops_port_file.empty() && !write_port_file(config.ops_port_file, *ops_port)) {
    log_line("error", "cannot write --ops-port-file " + config.ops_port_file);
    return 1;
  }
  GrpcServer server(engine, std::move(server_options));
  const int port = server.start();
  if (port == 0) {
    log_line("error", "cannot listen on " + config.listen);
    return 1;
  }
  if (!config.port_file.empty() && !write_port_file(config.port_file, port)) {
    log_line("error", "cannot write --port-file " + config.port_file);
    server.shutdown(std::chrono::milliseconds(0));
    return 1;
  }
  const std::string store_state = store->connected()
                                      ? store_name
                                      : store_name +
                                            " (not connected yet: not ready, claims UNAVAILABLE, "
                                            "until it is)";
  log::info("listening on " + config.listen + " (port " + std::to_string(port) + ", " + transport +
                "), store=" + store_state + (auth ? ", auth=tokens" : ", auth=OPEN") +
                "; ops HTTP on port " + std::to_string(*ops_port),
            {{"grpc_port", port},
             {"ops_port", *ops_port},
             {"store", store_state},
             {"transport", transport},
             {"auth", auth ? "tokens" : "open"}});

  // Until SIGTERM/SIGINT: the gRPC health service follows readiness (the
  // store's connection), looked at every kReadinessPoll.
  bool serving = ops.readiness_problem().empty();
  server.set_serving(serving);
  int sig = 0;
  const timespec poll{0, std::chrono::nanoseconds(kReadinessPoll).count()};
  for (;;) {
    sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) break;
    const bool ready = ops.readiness_problem().empty();
    if (ready != serving) server.set_serving(serving = ready);
  }
  log_line("info",
           std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining");
  // Readiness and gRPC health flip first, so balancers stop sending.
  ops.set_draining();
  server.set_serving(false);
  server.shutdown(kDrainGrace);
  store->stop();  // pending writes, then leases go back
  ops.stop();
  log_line("info", "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // SIGTERM/SIGINT are taken by sigwait() in run(), so block them before any
  // thread (gRPC's included) starts: every thread inherits this mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const ConfigResult parsed = parse_config(argc, argv);
  if (parsed.should_exit) return parsed.exit_code;
  return run(parsed.config, signals);
}
