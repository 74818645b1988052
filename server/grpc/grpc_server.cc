// grpc_server.cc — the server: services, completion queues and their
// threads, the admin worker, health. The calls are in *_calls.cc (call.h).
#include "server/grpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>

#include "server/base/thread_name.h"
#include "server/grpc/call.h"

namespace voucherd {
namespace {

// gRPC 1.51 predates the HTTP/2 rapid-reset fixes: bound streams and messages.
constexpr int kMaxConcurrentStreams = 1024;
constexpr int kMaxReceiveMessageBytes = 4 << 20;  // a 1,024-SKU campaign fits easily

}  // namespace

// Admin jobs waiting at most; beyond this, admin calls are shed.
constexpr std::size_t kAdminJobsMax = 1024;

GrpcServer::AdminWorker::AdminWorker() {
  thread_ = std::thread([this] {
    name_this_thread("vd-admin");
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  });
}

GrpcServer::AdminWorker::~AdminWorker() { stop(); }

bool GrpcServer::AdminWorker::post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || jobs_.size() >= kAdminJobsMax) return false;
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void GrpcServer::AdminWorker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

GrpcServer::GrpcServer(ClaimEngine& engine, GrpcServerOptions options)
    : core_{engine,
            *options.store,
            options.auth,
            options.metrics,
            RedeemGuard(options.redeem_failure_budget, options.redeem_cooldown),
            {},
            {},
            {}},
      options_(std::move(options)),
      health_({voucher::v1::VoucherService::service_full_name(),
               voucher::v1::AdminService::service_full_name()}) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

int GrpcServer::start() {
  // Health is our own service on our own queues (health.h says why);
  // reflection is a synchronous service: one more polling thread, which
  // costs far less than the built-in health service's (bench/README.md).
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      options_.listen,
      options_.credentials ? options_.credentials : grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&core_.voucher_service);
  builder.RegisterService(&core_.admin_service);
  builder.RegisterService(health_.service());
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  for (int i = 0; i < options_.polling_threads; ++i) {
    cqs_.push_back(builder.AddCompletionQueue());
    inboxes_.push_back(std::make_unique<Inbox>(cqs_.back().get()));
  }
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    return 0;
  }
  health_.set_serving(true);
  for (std::size_t i = 0; i < cqs_.size(); ++i) {
    grpc::ServerCompletionQueue* cq = cqs_[i].get();
    post_claim_calls(core_, cq);
    post_voucher_calls(core_, cq);
    post_lottery_calls(core_, cq);
    post_apply_calls(core_, cq);
    post_campaign_calls(core_, cq);
    health_.post_calls(cq);
    threads_.emplace_back(run_queue, cq, inboxes_[i].get());
  }
  return port;
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  health_.stop();  // health watches end now, not at the grace's end
  if (server_) {
    // Stops accepting; in-flight calls get until the deadline to finish, then
    // are cancelled. Posted-but-unused calls come back with ok=false.
    server_->Shutdown(std::chrono::system_clock::now() + grace);
  }
  core_.admin_worker.stop();  // runs what was posted, then stops
  // What is decided after this (a store write that ends after the grace)
  // is answered on the deciding thread, as the queues are going away.
  for (auto& inbox : inboxes_) inbox->close();
  for (auto& cq : cqs_) cq->Shutdown();
  for (auto& t : threads_) t.join();
  if (threads_.empty()) {
    for (auto& cq : cqs_) run_queue(cq.get(), nullptr);  // never started: drain here
  }
  threads_.clear();
  // Drained: Next() returned false, every tag has been deleted.
}

}  // namespace voucherd
