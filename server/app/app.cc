// app.cc — run_voucherd: each step of a start is one function below, and
// run() reads as the list of them.
#include "server/app/app.h"

#include <grpcpp/grpcpp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "common/files.h"
#include "common/lock_checks.h"
#include "engine/claim_engine.h"
#include "engine/clock.h"
#include "engine/random.h"
#include "server/allocation/allocator.h"
#include "server/app/campaign_loader.h"
#include "server/base/log.h"
#include "server/grpc/auth.h"
#include "server/grpc/grpc_server.h"
#include "server/grpc/proto_convert.h"
#include "server/ops/metrics.h"
#include "server/ops/ops_server.h"
#include "server/redis/redis_claim_log.h"

namespace voucherd {
namespace {

constexpr auto kDrainGrace = std::chrono::seconds(10);
// How often the gRPC health service is set to follow readiness.
constexpr auto kReadinessPoll = std::chrono::milliseconds(100);

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
  auto text = read_file(path, flag);
  if (!text || text->find("-----BEGIN ") == std::string::npos) {
    return std::unexpected(std::string("cannot read a PEM file from ") + flag + " " + path);
  }
  return text;
}

// When the first certificate of a PEM text stops being valid (notAfter), in
// Unix seconds, for voucherd_tls_certificate_not_after_seconds.
std::expected<std::int64_t, std::string> certificate_not_after(const std::string& pem,
                                                               const std::string& path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, &X509_free);
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    return std::unexpected("--tls-cert " + path + " holds no certificate voucherd can read");
  }
  return static_cast<std::int64_t>(timegm(&tm));
}

struct ServerTls {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::int64_t not_after_seconds = 0;  // when the certificate expires
};

// gRPC's own TLS: the certificate and key, and with a client CA, mutual TLS.
std::expected<ServerTls, std::string> tls_credentials(const Config& config) {
  auto cert = read_pem(config.tls_cert, "--tls-cert");
  if (!cert) return std::unexpected(cert.error());
  auto not_after = certificate_not_after(*cert, config.tls_cert);
  if (!not_after) return std::unexpected(not_after.error());
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
  return ServerTls{grpc::SslServerCredentials(options), *not_after};
}

// The codes' HMAC secrets: the file's, or a random one for the memory store.
std::expected<std::vector<std::vector<std::uint8_t>>, std::string> load_secrets(
    const Config& config) {
  if (!config.secret_file.empty()) {
    auto secrets = read_secret_file(config.secret_file);
    if (secrets && secrets->size() > 1) {
      log::info("--secret-file holds " + std::to_string(secrets->size()) +
                " secrets: the first mints codes, the others still verify theirs");
    }
    return secrets;
  }
  // Codes minted under a random secret verify only in this process: fine
  // for the memory store, whose vouchers die with the process anyway.
  std::vector<std::vector<std::uint8_t>> secrets(1, std::vector<std::uint8_t>(32));
  SecureRandom{}.fill(secrets[0]);
  log::warn("no --secret-file: using a random secret; codes will not verify after restart");
  return secrets;
}

std::expected<std::unique_ptr<Store>, std::string> make_store(const Config& config,
                                                              const AppOptions& options) {
  if (config.store == StoreKind::kMemory) {
    return std::make_unique<MemoryStore>(config.replica_id.empty() ? default_replica_id()
                                                                   : config.replica_id);
  }
  if (config.store == StoreKind::kRedisPerClaim) {
    if (!options.per_claim_store) {
      return std::unexpected(
          "--store=redis-per-claim is the benchmark baseline: run voucherd-baseline for it");
    }
    return options.per_claim_store(config);
  }
  redis::ClaimLogOptions redis_options;
  if (!config.redis_cluster.empty()) {
    auto seeds = redis::parse_seed_list(config.redis_cluster);
    if (!seeds) return std::unexpected("--redis-cluster: " + seeds.error());
    redis::ClusterOptions cluster;
    cluster.seeds = std::move(*seeds);
    if (const char* password = std::getenv("REDIS_PASSWORD")) cluster.password = password;
    cluster.timeout = redis_options.io_timeout;
    redis_options.cluster = std::move(cluster);
  } else if (config.redis_sentinel.empty()) {
    auto endpoint = redis::parse_url(config.redis_url, std::getenv("REDIS_PASSWORD"));
    if (!endpoint) return std::unexpected(endpoint.error());
    redis_options.endpoint = std::move(*endpoint);
  } else {
    auto sentinels =
        redis::parse_sentinels(config.redis_sentinel, std::getenv("REDIS_SENTINEL_PASSWORD"));
    if (!sentinels) return std::unexpected(sentinels.error());
    redis_options.sentinel = redis::SentinelOptions{std::move(*sentinels), config.redis_master};
    if (const char* password = std::getenv("REDIS_PASSWORD")) {
      redis_options.endpoint.password = password;
    }
  }
  redis_options.min_replicas = config.redis_min_replicas;
  redis_options.replica_wait = std::chrono::milliseconds(config.redis_replica_wait_ms);
  redis_options.replica_id = config.replica_id.empty() ? default_replica_id() : config.replica_id;
  redis_options.lease_timeout = std::chrono::milliseconds(config.lease_timeout_ms);
  redis_options.allocation_lease = std::chrono::milliseconds(config.allocation_lease_ms);
  return std::make_unique<redis::RedisClaimLog>(std::move(redis_options),
                                                encode_campaign_definition);
}

// --campaigns: every campaign of the file, created (or matched against the
// store's definition), with --rehearse opening its window now.
std::expected<void, std::string> load_campaigns(const Config& config, ClaimEngine& engine,
                                                const Clock& clock) {
  if (config.campaigns_file.empty()) return {};
  auto campaigns = load_campaigns_file(config.campaigns_file);
  if (!campaigns) return std::unexpected(campaigns.error());
  for (const auto& proto : *campaigns) {
    auto spec = campaign_from_proto(proto);
    if (!spec) {
      return std::unexpected("campaign \"" + proto.id() + "\": " + spec.error().message);
    }
    if (config.rehearse) {
      const UnixMicros length = spec->ends_at_us - spec->starts_at_us;
      const UnixMicros allocated_after = spec->allocation_at_us - spec->ends_at_us;
      spec->starts_at_us = clock.now_us();
      spec->ends_at_us = spec->starts_at_us + (length > 0 ? length : kMicrosPerDay);
      // An apply campaign is allocated as long after its window as planned.
      if (spec->mode == CampaignMode::kApplyThenDraw) {
        spec->allocation_at_us = spec->ends_at_us + std::max<UnixMicros>(0, allocated_after);
      }
    }
    auto created = engine.create_campaign(
        std::move(*spec), config.replace_campaigns ? StoredDefinition::kReplaceBeforeOpen
                                                   : StoredDefinition::kMustMatch);
    if (!created) {
      return std::unexpected("campaign \"" + proto.id() + "\" in " + config.campaigns_file + ": " +
                             created.error().field.message);
    }
    std::int64_t stock = 0;
    for (const auto& sku : (*created)->spec().skus) stock += sku.stock;
    log::info("loaded campaign \"" + proto.id() +
              "\": " + std::to_string((*created)->spec().sites.size()) + " sites, " +
              std::to_string((*created)->spec().skus.size()) + " SKUs, " + std::to_string(stock) +
              " packs" + (config.rehearse ? " (rehearsal: window opens now)" : ""));
  }
  return {};
}

// The store's registry (after --campaigns, which may replace a stored
// definition before it opens): every campaign it holds is served here too,
// whichever replica created it, without a restart or a file.
void serve_registry(Store& store, ClaimEngine& engine) {
  store.watch_campaigns([&engine](const std::string& id, const std::string& definition) {
    const auto refuse = [&id](const std::string& why) {
      log::warn("campaign \"" + id + "\" in the store's registry " + why + "; not served",
                {{"campaign", id}});
    };
    voucher::v1::Campaign proto;
    if (!proto.ParseFromString(definition)) return refuse("does not parse");
    auto spec = campaign_from_proto(proto);
    if (!spec) return refuse("is not valid here (" + spec.error().message + ")");
    auto created = engine.create_campaign(std::move(*spec));
    if (!created) return refuse("cannot be served: " + created.error().field.message);
    log::info("serving campaign \"" + id + "\" from the store's registry", {{"campaign", id}});
  });
}

std::expected<std::optional<Authenticator>, std::string> load_auth(const Config& config) {
  if (config.auth_file.empty()) {
    log::warn(
        "NO --auth-file: voucherd is OPEN. Anyone who can reach it may claim, redeem and "
        "administer. Give it a tokens file before it faces a network.");
    return std::nullopt;
  }
  auto loaded = Authenticator::load(config.auth_file);
  if (!loaded) return std::unexpected(loaded.error());
  log::info("auth: " + std::to_string(loaded->size()) + " tokens from " + config.auth_file);
  return std::optional<Authenticator>(std::move(*loaded));
}

// The ops port's tokens: none without --ops-auth-file (config refused a
// non-loopback address without them unless --ops-insecure).
std::expected<std::optional<OpsTokens>, std::string> load_ops_tokens(const Config& config) {
  if (config.ops_auth_file.empty()) {
    if (config.ops_insecure) {
      log::warn("--ops-insecure: the ops port " + config.ops_listen +
                " serves /status, /metrics, /series and the dashboard to anyone who can connect");
    }
    return std::nullopt;
  }
  auto loaded = OpsTokens::load(config.ops_auth_file);
  if (!loaded) return std::unexpected(loaded.error());
  log::info("ops auth: " + std::to_string(loaded->size()) + " tokens from " + config.ops_auth_file);
  return std::optional<OpsTokens>(std::move(*loaded));
}

// Until SIGTERM/SIGINT: the gRPC health service follows readiness (the
// store's connection), looked at every kReadinessPoll. Returns the signal.
int serve_until_signal(const sigset_t& signals, OpsServer& ops, GrpcServer& server) {
  bool serving = ops.readiness_problem().empty();
  server.set_serving(serving);
  const timespec poll{0, std::chrono::nanoseconds(kReadinessPoll).count()};
  for (;;) {
    const int sig = sigtimedwait(&signals, nullptr, &poll);
    if (sig == SIGTERM || sig == SIGINT) return sig;
    const bool ready = ops.readiness_problem().empty();
    if (ready != serving) server.set_serving(serving = ready);
  }
}

// Logs why the start failed; the exit code for it.
int failed(const std::string& why, int code = 2) {
  log::error(why);
  return code;
}

int run(const Config& config, const AppOptions& options, const sigset_t& signals) {
  log::set_level(config.log_level);
  auto secrets = load_secrets(config);
  if (!secrets) return failed(secrets.error());
  auto store = make_store(config, options);
  if (!store) return failed(store.error());
  SystemClock clock;
  SecureRandom random;
  ClaimEngine engine((*store)->claim_log(), clock, random, *secrets);
  for (auto& secret : *secrets) std::fill(secret.begin(), secret.end(), 0);
  engine.set_member_press_limit({config.member_press_rate, config.member_press_burst});
  if (auto loaded = load_campaigns(config, engine, clock); !loaded) return failed(loaded.error());
  serve_registry(**store, engine);
  // Connects at once (and reads the registry); the store's threads call into
  // the engine's campaigns: stop them before the engine goes, on every way
  // out of this function.
  (*store)->start();
  struct StopStore {
    Store& store;
    ~StopStore() { store.stop(); }
  } stop_store{**store};
  // Allocates APPLY_THEN_DRAW campaigns once their time has come: every
  // replica runs one, and the store's turn decides who writes. Declared
  // after the store's guard, so it stops first on every way out.
  AllocatorOptions allocator_options;
  allocator_options.batch_max = static_cast<std::size_t>(config.allocation_batch_max);
  // An unanswered step is sent again for at most a lease: by then the turn
  // may have passed on, and the next pass asks the store where it stands.
  allocator_options.retry_for = std::chrono::milliseconds(config.allocation_lease_ms);
  Allocator allocator(engine, std::string((*store)->replica_id()), allocator_options);
  allocator.start();

  auto auth = load_auth(config);
  if (!auth) return failed(auth.error());
  auto ops_tokens = load_ops_tokens(config);
  if (!ops_tokens) return failed(ops_tokens.error());
  GrpcServerOptions server_options;
  MetricsOptions metrics_options{VOUCHERD_VERSION, store->get(), std::nullopt};
  if (!config.tls_cert.empty()) {
    auto tls = tls_credentials(config);
    if (!tls) return failed(tls.error());
    server_options.credentials = std::move(tls->credentials);
    metrics_options.tls_not_after_seconds = tls->not_after_seconds;
  }
  server_options.listen = config.listen;
  const int grpc_threads = config.grpc_threads > 0 ? config.grpc_threads : default_grpc_threads();
  server_options.polling_threads = grpc_threads;
  server_options.store = store->get();
  server_options.auth = *auth ? &**auth : nullptr;
  server_options.redeem_failure_budget = config.redeem_failure_budget;
  server_options.redeem_cooldown = std::chrono::seconds(config.redeem_cooldown_seconds);
  const std::string transport = config.tls_cert.empty()        ? "plaintext"
                                : config.tls_client_ca.empty() ? "TLS"
                                                               : "mutual TLS";
  Metrics metrics(engine, std::move(metrics_options));
  server_options.metrics = &metrics;
  OpsServerOptions ops_options;
  ops_options.listen = config.ops_listen;
  ops_options.version = VOUCHERD_VERSION;
  ops_options.store = store->get();
  ops_options.auth_open = !auth->has_value();
  ops_options.tokens = *ops_tokens ? &**ops_tokens : nullptr;
  ops_options.transport = transport;
  ops_options.metrics = &metrics;
  OpsServer ops(engine, std::move(ops_options));
  const auto ops_port = ops.start();
  if (!ops_port) return failed(ops_port.error(), 1);
  if (!config.ops_port_file.empty() && !write_port_file(config.ops_port_file, *ops_port)) {
    return failed("cannot write --ops-port-file " + config.ops_port_file, 1);
  }
  GrpcServer server(engine, std::move(server_options));
  const int port = server.start();
  if (port == 0) return failed("cannot listen on " + config.listen, 1);
  if (!config.port_file.empty() && !write_port_file(config.port_file, port)) {
    server.shutdown(std::chrono::milliseconds(0));
    return failed("cannot write --port-file " + config.port_file, 1);
  }
  const std::string store_name((*store)->kind());
  const std::string store_state = (*store)->connected()
                                      ? store_name
                                      : store_name +
                                            " (not connected yet: not ready, claims UNAVAILABLE, "
                                            "until it is)";
  log::info("listening on " + config.listen + " (port " + std::to_string(port) + ", " + transport +
                "), store=" + store_state + (*auth ? ", auth=tokens" : ", auth=OPEN") +
                "; ops HTTP on port " + std::to_string(*ops_port),
            {{"grpc_port", port},
             {"ops_port", *ops_port},
             {"store", store_state},
             {"transport", transport},
             {"grpc_threads", grpc_threads},
             {"auth", *auth ? "tokens" : "open"}});

  const int sig = serve_until_signal(signals, ops, server);
  log::info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining");
  // Readiness and gRPC health flip first, so balancers stop sending.
  ops.set_draining();
  server.set_serving(false);
  server.shutdown(kDrainGrace);
  allocator.stop();  // after its step in flight; the rest is resumed later (docs/architecture.md)
  (*store)->stop();  // pending writes, then leases go back
  ops.stop();
  log::info("stopped");
  return 0;
}

}  // namespace

int run_voucherd(int argc, char** argv, const AppOptions& options) {
  skip_lock_order_checks();
  // SIGTERM/SIGINT are taken by sigtimedwait() in run(), so block them
  // before any thread (gRPC's included) starts: every thread inherits this
  // mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const ConfigResult parsed = parse_config(argc, argv);
  if (parsed.should_exit) return parsed.exit_code;
  return run(parsed.config, options, signals);
}

}  // namespace voucherd
