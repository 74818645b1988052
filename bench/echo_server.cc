// echo-server — the ceiling any unary claim service can reach on this
// machine: VoucherService.Claim served the way voucherd serves it (the
// asynchronous completion-queue API, the same channel settings and posted
// calls per queue), answered at once with a ClaimResponse of the same size
// as voucherd's (a voucher with a 35-character code, ids, face value and
// timestamps) and no work behind it. Every other RPC is UNIMPLEMENTED.
// bench/compare drives it with voucher-load next to voucherd.
//
// The code is made from the member id, so voucher-load's check (one code per
// member, one member per code) holds.
//
// With --refuse, every Claim is answered instead with the SOLD_OUT refusal
// voucherd gives for the call's campaign (the same status, message and
// google.rpc.ErrorInfo trailer, made by voucherd's to_grpc_status() once per
// campaign and thread, as voucherd keeps it): the ceiling of a refusal, which
// gRPC makes costlier than an answer (docs/architecture.md).
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "common/lock_checks.h"
#include "server/grpc/status_map.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace {

namespace v1 = voucher::v1;

// As in server/grpc_server.cc, so both servers run with the same settings.
constexpr int kMaxConcurrentStreams = 1024;
constexpr int kPostedCallsPerQueue = 32;

// The SOLD_OUT refusal voucherd gives for `campaign_id`, made once per
// campaign on each thread.
const grpc::Status& sold_out(const std::string& campaign_id) {
  thread_local std::string campaign;
  thread_local grpc::Status status;
  if (campaign.empty() || campaign != campaign_id) {
    campaign = campaign_id;
    voucherd::StatusContext ctx;
    ctx.campaign_id = campaign;
    status = voucherd::to_grpc_status(voucherd::Outcome::kSoldOut, ctx);
  }
  return status;
}

// One Claim: posted, answered, finished, deleted.
class EchoCall {
 public:
  EchoCall(v1::VoucherService::AsyncService& service, grpc::ServerCompletionQueue* cq,
           const v1::Voucher& prototype, bool refuse)
      : service_(service), cq_(cq), prototype_(prototype), refuse_(refuse), responder_(&ctx_) {
    service_.RequestClaim(&ctx_, &request_, &responder_, cq_, cq_, this);
  }

  void proceed(bool ok) {
    if (answered_ || !ok) {  // finished, or shutting down before a call arrived
      delete this;
      return;
    }
    answered_ = true;
    new EchoCall(service_, cq_, prototype_, refuse_);  // keep a call posted
    if (refuse_) {
      responder_.FinishWithError(sold_out(request_.campaign_id()), this);
      return;
    }
    v1::ClaimResponse response;
    v1::Voucher* v = response.mutable_voucher();
    *v = prototype_;
    v->set_campaign_id(request_.campaign_id());
    v->set_member_id(request_.member_id());
    // 35 characters like a real code, unique per member.
    std::string code = "E-" + request_.member_id();
    code.resize(35, '-');
    v->set_code(std::move(code));
    responder_.Finish(response, grpc::Status::OK, this);
  }

 private:
  v1::VoucherService::AsyncService& service_;
  grpc::ServerCompletionQueue* cq_;
  const v1::Voucher& prototype_;
  const bool refuse_;
  grpc::ServerContext ctx_;
  v1::ClaimRequest request_;
  grpc::ServerAsyncResponseWriter<v1::ClaimResponse> responder_;
  bool answered_ = false;
};

std::atomic<bool> g_stop{false};

}  // namespace

int main(int argc, char** argv) {
  // As voucherd does: the ceiling is measured with the same gRPC locks.
  voucherd::skip_lock_order_checks();
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  int threads = 1;
  bool refuse = false;
  CLI::App app{"echo-server: VoucherService.Claim answered at once (the gRPC ceiling)"};
  app.add_option("--listen", listen, "host:port (port 0 picks a free one)")->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port to FILE");
  app.add_option("--threads", threads, "completion-queue polling threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_flag("--refuse", refuse,
               "answer every Claim with voucherd's SOLD_OUT refusal for its campaign");
  CLI11_PARSE(app, argc, argv);

  v1::Voucher prototype;
  prototype.set_sku_id("gd-sku-0001");
  prototype.set_site_id("gd-site-001");
  prototype.set_state(v1::VOUCHER_STATE_ISSUED);
  prototype.set_face_value_cents(39'800);
  prototype.set_sku_kind(v1::SKU_KIND_HOTEL);
  prototype.mutable_issued_at()->set_seconds(1'790'000'000);
  prototype.mutable_issued_at()->set_nanos(123'456'000);
  prototype.mutable_expires_at()->set_seconds(1'792'592'000);
  prototype.mutable_expires_at()->set_nanos(123'456'000);

  v1::VoucherService::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::cerr << "echo-server: cannot listen on " << listen << "\n";
    return 2;
  }
  std::vector<std::thread> pollers;
  for (auto& cq : cqs) {
    for (int i = 0; i < kPostedCallsPerQueue; ++i)
      new EchoCall(service, cq.get(), prototype, refuse);
    pollers.emplace_back([q = cq.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<EchoCall*>(tag)->proceed(ok);
    });
  }
  if (!port_file.empty()) std::ofstream(port_file) << port << "\n";
  std::signal(SIGTERM, [](int) { g_stop.store(true); });
  std::signal(SIGINT, [](int) { g_stop.store(true); });
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : pollers) t.join();
  return 0;
}
