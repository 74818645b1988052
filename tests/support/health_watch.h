// health_watch.h — test support: a grpc.health.v1.Health/Watch held open on
// a thread of its own, as a load balancer's client-side health check holds
// it, with every status it was sent and how the stream ended.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace voucherd::testing {

class HealthWatch {
 public:
  // Starts watching `service` ("" for the server) at `target`.
  HealthWatch(const std::string& target, const std::string& service);
  ~HealthWatch();  // cancels the watch if it is still open
  HealthWatch(const HealthWatch&) = delete;
  HealthWatch& operator=(const HealthWatch&) = delete;

  // The next status sent (1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN), or
  // nullopt when none came within `wait` (or the stream ended).
  std::optional<int> next(std::chrono::milliseconds wait);
  // How the stream ended, once it has, within `wait`.
  std::optional<grpc::Status> ended(std::chrono::milliseconds wait);

 private:
  grpc::ClientContext ctx_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<int> statuses_;         // by mu_
  std::optional<grpc::Status> end_;  // by mu_
  std::thread reader_;
};

}  // namespace voucherd::testing
