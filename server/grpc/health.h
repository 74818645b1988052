// health.h — the standard grpc.health.v1.Health service (Check and Watch),
// served on voucherd's own completion queues.
//
// Why not gRPC's built-in one (grpc::EnableDefaultHealthCheckService): in
// gRPC 1.51 it is a callback service, and a server with a callback service
// gets polling threads of its own. With the epoll1 engine every polling
// thread takes turns at reading the sockets, so most Claims were read on one
// of those threads and handed to the completion-queue thread that answers
// them: a futex wake and a context switch per call. Measured on voucherd's
// memory store with one queue thread, 16 calls in flight, during
// development on a busy machine: 1.0 context switches and 34 µs of server
// CPU per call with it, 0.15 and 22 µs with this service (bench/README.md,
// "The gRPC front").
//
//   HealthService health;                 // NOT_SERVING until set_serving(true)
//   builder.RegisterService(health.service());
//   ... health.post_calls(cq) for each completion queue ...
//   health.set_serving(true);             // any thread
//   health.stop();                        // before grpc::Server::Shutdown
//
// The server ("") and each name given to the constructor are known; they
// share one status. Check of another name is NOT_FOUND; Watch of another
// name is answered SERVICE_UNKNOWN once and left open, as the protocol says.
//
// Thread-safety: set_serving() and stop() from any thread. Each call object
// is driven by its completion queue's one thread; the watch list and each
// watch's state between writes are guarded by the service's mutex.
#pragma once

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <string>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"

namespace voucherd {

class HealthService final {
 public:
  explicit HealthService(std::vector<std::string> services);
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  grpc::Service* service() { return &service_; }
  // Posts Check and Watch calls on `cq`, whose one thread drives them.
  void post_calls(grpc::ServerCompletionQueue* cq);
  // The status of the server and of every known service.
  void set_serving(bool serving);
  // Ends every watch (they are answered UNAVAILABLE) and any started later.
  void stop();

 private:
  class CheckCall;
  class WatchCall;
  friend class CheckCall;
  friend class WatchCall;

  [[nodiscard]] bool knows(const std::string& service) const;
  // The status a watch of a known (or unknown) service is sent now.
  // REQUIRES: mu_ held.
  [[nodiscard]] grpc::health::v1::HealthCheckResponse::ServingStatus status_locked(
      bool known) const;

  grpc::health::v1::Health::AsyncService service_;
  const std::vector<std::string> services_;
  mutable std::mutex mu_;
  bool serving_ = false;             // by mu_
  bool stopped_ = false;             // by mu_
  std::vector<WatchCall*> watches_;  // by mu_: the watches under way
};

}  // namespace voucherd
