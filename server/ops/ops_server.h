// ops_server.h — the operators' HTTP port (Boost.Asio + Beast), apart from
// the gRPC port: /healthz, /readyz, /status, /metrics, /series and the
// live dashboard at /.
//
//   GET /healthz  200 "ok" while the process serves at all
//   GET /readyz   200 "ready", or 503 with the reason: draining, or the
//                 store unreachable (a replica with no campaign yet is ready:
//                 ready means "can serve")
//   GET /status   JSON: version, uptime, store and auth mode, and per
//                 campaign its window, mode and per-SKU stock, issued,
//                 redeemed and remaining
//   GET /metrics  Prometheus text exposition (server/metrics.h)
//   GET /series   the last five minutes, one point a second (server/series.h)
//   GET /         the live dashboard (server/dashboard.h)
//
// With --ops-auth-file (server/ops/ops_auth.h), everything but /healthz and
// /readyz answers 401 without one of its tokens.
//
// Two threads, neither on the claim path. The ops thread accepts, reads
// requests, answers /healthz, /readyz and / itself (engine counters and
// flags, never the store) and writes every answer. The store reader runs
// what reads the store: /status, /metrics, /series, and a timer sampling
// the dashboard's series once a second. A store read may hang until the
// Redis I/O timeout when the link to Redis fails; /readyz and /healthz are
// not held up by it, nor is a 401.
//
// Thread-safety: start()/stop() from one thread; set_draining() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "engine/claim_engine.h"
#include "server/ops/metrics.h"
#include "server/ops/ops_auth.h"
#include "server/store/store.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace voucherd {

struct OpsServerOptions {
  std::string listen = "127.0.0.1:9464";
  std::string version;
  Store* store = nullptr;             // REQUIRES: set
  bool auth_open = true;              // no --auth-file
  const OpsTokens* tokens = nullptr;  // --ops-auth-file; nullptr: the port is open
  std::string transport;              // "plaintext", "TLS", "mutual TLS"
  Metrics* metrics = nullptr;         // nullptr: /metrics and /series answer 503
};

class OpsServer {
 public:
  OpsServer(ClaimEngine& engine, OpsServerOptions options);
  ~OpsServer();
  OpsServer(const OpsServer&) = delete;
  OpsServer& operator=(const OpsServer&) = delete;

  // Binds and starts serving; the bound port, or an error naming the address.
  [[nodiscard]] std::expected<int, std::string> start();
  void stop();

  // Readiness flips first when voucherd starts to drain.
  void set_draining() { draining_.store(true, std::memory_order_release); }
  // Why this replica is not ready ("" when it is): draining, or the store
  // unreachable. The gRPC health service follows the same answer.
  [[nodiscard]] std::string readiness_problem() const;

  // Internal, for the connection handlers.
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    bool challenge = false;  // a 401: send WWW-Authenticate
  };
  // The answers given before anything is served, on the ops thread: 405 to
  // a method other than GET and HEAD, the probes, and 401 without a token
  // of --ops-auth-file (`authorization`: the request's Authorization
  // header, "" when none). nullopt: the request is admitted; serve() it.
  [[nodiscard]] std::optional<Response> answer_before_serving(std::string_view method,
                                                              std::string_view target,
                                                              std::string_view authorization) const;
  // An admitted request's answer. For a target that reads_store(), called on
  // the store reader's thread, never on the one answering /readyz.
  [[nodiscard]] Response serve(std::string_view target);
  [[nodiscard]] static bool reads_store(std::string_view target);
  [[nodiscard]] boost::asio::io_context& store_reader();

 private:
  struct Impl;
  [[nodiscard]] std::string status_json() const;
  // Takes the dashboard's point of this second (store reader's thread).
  void sample_series();

  ClaimEngine& engine_;
  OpsServerOptions options_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<Impl> impl_;
};

}  // namespace voucherd
