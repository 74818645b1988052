// grpc_server.h — voucherd's gRPC front on the asynchronous completion-queue
// API (chosen by measurement: ~70k tiny calls/s with one polling thread here
// against ~42k for the callback API; see bench/README.md).
//
// Each polling thread owns one completion queue with calls of every RPC
// posted on it. Handlers never block: a claim's RPC is answered from the
// claim log's completion, on whatever thread that runs.
//
// Thread-safety: start() and shutdown() from one controlling thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/claim_engine.h"
#include "server/grpc/auth.h"
#include "server/grpc/health.h"
#include "server/ops/metrics.h"
#include "server/store/store.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd {

class Inbox;

struct GrpcServerOptions {
  std::string listen;
  // nullptr: plaintext (loopback and tests); else e.g. grpc::SslServerCredentials.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  int polling_threads = 2;
  // The store behind the claim log: store-wide stats, reconciliation and
  // connection state come from it. REQUIRES: set.
  Store* store = nullptr;
  // Bearer-token roles; nullptr runs open (anyone may call anything).
  const Authenticator* auth = nullptr;
  // Consecutive failed redemptions (codes that are not vouchers) a caller
  // may make before a cool-down.
  int redeem_failure_budget = 100;
  std::chrono::seconds redeem_cooldown{60};
  // Counts outcomes, status codes and latencies; nullptr counts nothing.
  Metrics* metrics = nullptr;
};

class GrpcServer final {
 public:
  GrpcServer(ClaimEngine& engine, GrpcServerOptions options);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving. Returns the bound port, or 0 if binding failed.
  [[nodiscard]] int start();
  // Stops accepting, lets in-flight calls finish (up to `grace`), then stops
  // the polling threads. Idempotent.
  void shutdown(std::chrono::milliseconds grace);
  // The standard grpc.health.v1.Health service answers SERVING or
  // NOT_SERVING, for the server and for each service (server/grpc/health.h).
  // main follows readiness with it (the store's connection, the drain).
  void set_serving(bool serving) { health_.set_serving(serving); }

  // Internal: shared by the call objects.
  // Runs admin work that waits on the store (a Redis round trip) off the
  // completion-queue threads, so RPC handlers never block.
  class AdminWorker {
   public:
    AdminWorker();
    ~AdminWorker();
    // False when the queue is full (the caller answers RESOURCE_EXHAUSTED).
    bool post(std::function<void()> job);
    void stop();

   private:
    std::mutex mu_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
  };

  struct Core {
    ClaimEngine& engine;
    Store& store;
    const Authenticator* auth;
    Metrics* metrics;
    RedeemGuard redeem_guard;
    AdminWorker admin_worker;
    voucher::v1::VoucherService::AsyncService voucher_service;
    voucher::v1::AdminService::AsyncService admin_service;
  };

 private:
  Core core_;
  GrpcServerOptions options_;
  HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::unique_ptr<Inbox>> inboxes_;  // one per queue (queue_thread.h)
  std::vector<std::thread> threads_;
  bool shut_down_ = false;
};

}  // namespace voucherd
