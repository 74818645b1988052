#include "tests/support/health_watch.h"

#include "grpc/health/v1/health.grpc.pb.h"

namespace voucherd::testing {

HealthWatch::HealthWatch(const std::string& target, const std::string& service) {
  ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  reader_ = std::thread([this, target, service] {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    auto reader = stub->Watch(&ctx_, request);
    grpc::health::v1::HealthCheckResponse response;
    while (reader->Read(&response)) {
      std::lock_guard lock(mu_);
      statuses_.push_back(response.status());
      changed_.notify_all();
    }
    grpc::Status status = reader->Finish();
    std::lock_guard lock(mu_);
    end_ = std::move(status);
    changed_.notify_all();
  });
}

HealthWatch::~HealthWatch() {
  ctx_.TryCancel();
  reader_.join();
}

std::optional<int> HealthWatch::next(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (!changed_.wait_for(lock, wait, [&] { return !statuses_.empty() || end_; }) ||
      statuses_.empty()) {
    return std::nullopt;
  }
  const int status = statuses_.front();
  statuses_.pop_front();
  return status;
}

std::optional<grpc::Status> HealthWatch::ended(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, wait, [&] { return end_.has_value(); });
  return end_;
}

}  // namespace voucherd::testing
