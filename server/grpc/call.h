// call.h — what every call object of the gRPC front shares (internal to
// server/grpc/): the completion-queue tag, the unary and server-streaming
// call templates, admission by bearer token, and the per-call metrics and
// debug line. The call objects themselves live one file per RPC family:
//
//   claim_calls.cc     Claim, ClaimBatch                       (VoucherService)
//   voucher_calls.cc   GetVoucher, Redeem, ListMemberVouchers,  (VoucherService)
//                      CancelVoucher, ExportRedemptions         (AdminService)
//   lottery_calls.cc   Draw (VoucherService); RevealSeed, ExportDraws (AdminService)
//   apply_calls.cc     Apply, GetApplication (VoucherService); ExportApplications
//                      (AdminService)
//   campaign_calls.cc  CreateCampaign, GetCampaign, ListCampaigns,
//                      GetCampaignStats, ReconcileCampaign,     (AdminService)
//                      ListReplicas
//
// Each family file exposes one post_*_calls() that grpc_server.cc calls per
// completion queue.
//
// Thread-safety: a call object is driven by its completion queue's thread;
// where an engine completion answers it from another thread, the call says
// how the two are ordered.
#pragma once

#include <google/protobuf/arena.h>
#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "engine/campaign_validation.h"
#include "engine/claim_engine.h"
#include "engine/limits.h"
#include "server/base/log.h"
#include "server/grpc/auth.h"
#include "server/grpc/grpc_server.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/queue_thread.h"
#include "server/grpc/request_checks.h"
#include "server/grpc/status_map.h"
#include "server/ops/metrics.h"
#include "voucher/v1/voucher.grpc.pb.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace voucherd {

namespace v1 = voucher::v1;

// Calls of each RPC kept posted per completion queue, so a burst of new calls
// does not wait for re-arming. Each posted call holds about 4 KB (its
// context, the first block of its arena, gRPC's own state): 32 of each of 19
// RPCs on two queues took 5 MB of an idle server's 8 MB of heap. The admin
// RPCs come one at a time, from an operator or a tool (and most are served
// one at a time by the admin worker), so a few of each are posted; a call
// that finds none posted waits in gRPC for the next one, which each call
// posts as it arrives.
constexpr int kPostedCallsPerRpc = 32;
constexpr int kPostedAdminCallsPerRpc = 2;

// The refusal a claim is answered with. No stock can arrive while the
// shared store is unreachable, so a replica waiting for a lease then says
// the store is down (UNAVAILABLE) rather than "refilling".
[[nodiscard]] Outcome refusal_on_wire(const GrpcServer::Core& core, Outcome outcome);

// The caller's deadline in Unix µs, for a claim that may wait for units;
// 0 when the caller set none (gRPC's "infinite" is far in the future).
[[nodiscard]] UnixMicros deadline_us(const grpc::ServerContext& ctx);

// The caller's address without its port ("ipv4:127.0.0.1"), which names an
// unauthenticated caller in the redeem guard.
[[nodiscard]] std::string peer_host(const grpc::ServerContext& ctx);

// With --auth-file, whether the caller's bearer token admits `access`: the
// refusal to answer, or nothing (and the caller in `principal`).
[[nodiscard]] std::optional<grpc::Status> check_access(const GrpcServer::Core& core,
                                                       const grpc::ServerContext& ctx,
                                                       Access access,
                                                       std::optional<Principal>* principal);

// The detail of a WRONG_MODE answer: the campaign's mode and the RPC it
// takes ("it is a LOTTERY campaign: use Draw").
[[nodiscard]] std::string wrong_mode_detail(const ClaimEngine& engine,
                                            std::string_view campaign_id);

// Context for the admin calls that name one campaign.
[[nodiscard]] StatusContext campaign_context(std::string_view campaign_id);

[[nodiscard]] std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point since);

// Whether a request of this type may be parsed onto its call's arena: not
// when it holds, at any depth, a singular message field or a map. gRPC
// parses the next call into the same request after a parse that failed, and
// an arena message's Clear() leaves such a field's message (a map's
// entries) on the arena, so bad requests, which need no token to be sent,
// would grow it without bound. Strings and repeated fields are cleared in
// place and reused. (call_arena_test checks both.)
[[nodiscard]] bool fits_call_arena(const google::protobuf::Descriptor& request);

// A number unique in this process, for calls that bring no request id.
[[nodiscard]] std::uint64_t next_call_number();

// The request id of a call, for its log lines: the request's own
// request_id when it has one, else the caller's x-request-id metadata
// (bounded), else a number unique in this process. Debug lines only.
template <class Request>
std::string request_id_of(const Request& request, const grpc::ServerContext& ctx) {
  if constexpr (requires { request.request_id(); }) {
    // Bounded: a refused request's id may be of any length.
    if (!request.request_id().empty()) {
      return request.request_id().substr(0, limits::kIdBytesMax);
    }
  }
  const auto& metadata = ctx.client_metadata();
  if (const auto it = metadata.find("x-request-id"); it != metadata.end()) {
    return std::string(it->second.data(),
                       std::min<std::size_t>(it->second.size(), limits::kIdBytesMax));
  }
  return "call-" + std::to_string(next_call_number());
}

// Counts an answered call and, at debug level, logs one line about it.
template <class Request>
void record_answer(const GrpcServer::Core& core, Rpc rpc, const Request& request,
                   const grpc::ServerContext& ctx, const grpc::Status& status,
                   std::chrono::steady_clock::time_point started) {
  const std::uint64_t ns = elapsed_ns(started);
  if (core.metrics != nullptr) core.metrics->observe_rpc(rpc, status.error_code(), ns);
  if (log::enabled(log::Level::kDebug)) {
    log::debug("rpc answered",
               {{"request_id", request_id_of(request, ctx)},
                {"rpc", rpc_name(rpc)},
                {"code", grpc_code_name(static_cast<std::size_t>(status.error_code()))},
                {"duration_us", ns / 1000}});
  }
}

// The storage of one type of call object, reused on the thread that frees
// it. A call object is made and deleted on its queue thread (but for the
// first ones posted, made on the main thread), so the objects a thread
// frees serve the calls it posts next. A call object is a few KiB (its
// arena's first block is inside), past glibc's per-thread cache (at most
// 1,032 bytes), so each new and delete went through malloc's bins. A
// thread keeps at most kKeptMax free objects of a type: a storm of N calls
// in flight leaves at most that many behind, and the rest go back to malloc.
// Under AddressSanitizer a kept object is poisoned, so a call touched after
// its end is still reported.
template <class Call>
class CallStorage {
 public:
  static constexpr std::size_t kKeptMax = 128;

  static void* take() {
    if (ended_here()) return ::operator new(sizeof(Call));
    Kept& kept = kept_here();
    if (kept.free.empty()) return ::operator new(sizeof(Call));
    void* p = kept.free.back();
    kept.free.pop_back();
    unpoison(p);
    return p;
  }
  static void give(void* p) noexcept {
    if (ended_here()) return ::operator delete(p);
    Kept& kept = kept_here();
    if (kept.free.size() >= kKeptMax) return ::operator delete(p);
    poison(p);
    kept.free.push_back(p);  // reserved: does not allocate
  }
  // Objects this thread keeps now (tests).
  static std::size_t kept_count() { return ended_here() ? 0 : kept_here().free.size(); }

 private:
  struct Kept {
    Kept() { free.reserve(kKeptMax); }
    ~Kept() {
      ended_here() = true;  // a call freed later on this thread goes to malloc
      for (void* p : free) {
        unpoison(p);
        ::operator delete(p);
      }
    }
    std::vector<void*> free;
  };
  static Kept& kept_here() {
    thread_local Kept kept;
    return kept;
  }
  // Whether this thread's Kept is already destroyed (the thread is ending).
  static bool& ended_here() {
    thread_local bool ended = false;
    return ended;
  }
  static void poison([[maybe_unused]] void* p) {
#if defined(__SANITIZE_ADDRESS__)
    __asan_poison_memory_region(p, sizeof(Call));
#endif
  }
  static void unpoison([[maybe_unused]] void* p) {
#if defined(__SANITIZE_ADDRESS__)
    __asan_unpoison_memory_region(p, sizeof(Call));
#endif
  }
};

// One unary call: posted, then admitted, then handled, then finished, then
// deleted (its storage kept for the thread's next call: CallStorage). Derived provides: void
// request(); void handle(); Derived(Core&, CQ*); static constexpr Access kAccess (who may call it,
// with --auth-file); static constexpr Rpc kRpc (its name in metrics and logs).
template <class Derived, class Request, class Response>
class UnaryCall : public Tag {
 public:
  UnaryCall(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq)
      : core_(core), cq_(cq), responder_(&ctx_) {}

  // `new Derived` and `delete this` take and give back CallStorage<Derived>.
  static void* operator new(std::size_t size) {
    if (size != sizeof(Derived)) return ::operator new(size);  // a type derived further
    return CallStorage<Derived>::take();
  }
  static void operator delete(void* p, std::size_t size) noexcept {
    if (size != sizeof(Derived)) return ::operator delete(p);
    CallStorage<Derived>::give(p);
  }

  void proceed(bool ok) override {
    if (!handled_) {
      if (!ok) {  // the server is shutting down: this posted call never arrived
        delete this;
        return;
      }
      handled_ = true;
      inbox_ = current_inbox();
      started_ = std::chrono::steady_clock::now();
      (new Derived(core_, cq_))->post();  // keep a call posted for the next client
      // A call whose deadline has already passed is not started: its caller
      // has given up, and its work would only delay the live ones.
      if (ctx_.deadline() <= std::chrono::system_clock::now()) {
        return fail(deadline_passed());
      }
      if (!admit()) return;
      static_cast<Derived*>(this)->handle();
      return;
    }
    // Finish completed (ok or not): the call is over. The acquire pairs
    // with the release in reply()/fail(), which may have run on another
    // thread (a claim log's); gRPC orders the two as well, but inside
    // libraries ThreadSanitizer cannot see, so the order is made explicit.
    (void)answered_.load(std::memory_order_acquire);
    delete this;
  }

  void post() { static_cast<Derived*>(this)->request(); }

  // With --auth-file: the caller's bearer token must admit Derived::kAccess.
  bool admit() {
    auto refused = check_access(core_, ctx_, Derived::kAccess, &principal_);
    if (refused) fail(*refused);
    return !refused;
  }

 protected:
  void reply(const Response& response) {
    record_answer(core_, Derived::kRpc, request_, ctx_, grpc::Status::OK, started_);
    answered_.store(true, std::memory_order_release);
    responder_.Finish(response, grpc::Status::OK, this);
  }
  void fail(const grpc::Status& status) {
    record_answer(core_, Derived::kRpc, request_, ctx_, status, started_);
    answered_.store(true, std::memory_order_release);
    responder_.FinishWithError(status, this);
  }
  // Whether this runs on the call's own queue thread; elsewhere (the claim
  // log's writer deciding a claim), a call hands itself back to it with
  // inbox_->post() before answering (queue_thread.h).
  [[nodiscard]] bool on_own_thread() const { return current_inbox() == inbox_; }
  // The campaign an admin call names, or nullptr with the call answered
  // (NOT_FOUND). REQUIRES: the request passed check_request(), which
  // refuses a malformed id.
  const CampaignRuntime* named_campaign(std::string_view campaign_id) {
    const StatusContext ctx = campaign_context(campaign_id);
    const CampaignRuntime* c = core_.engine.find_campaign(campaign_id);
    if (c == nullptr) fail(to_grpc_status(Outcome::kCampaignNotFound, ctx));
    return c;
  }
  // Answers with what the store reported about the named campaign.
  void fail_store(const StoreError& error, std::string_view campaign_id) {
    StatusContext ctx = campaign_context(campaign_id);
    ctx.detail = error.message;
    fail(to_grpc_status(outcome_of(error.kind), ctx));
  }

  // An answer on the call's arena. reply() serializes it before it
  // returns, so it may be built in any function that ends with reply().
  Response& new_response() { return *google::protobuf::Arena::CreateMessage<Response>(&arena_); }
  // The request: on the arena when its type fits_call_arena(), else on the
  // heap, owned by the arena (deleted with it).
  static Request& new_request(google::protobuf::Arena& arena) {
    static const bool on_arena = fits_call_arena(*Request::descriptor());
    if (on_arena) return *google::protobuf::Arena::CreateMessage<Request>(&arena);
    auto* request = new Request();
    arena.Own(request);
    return *request;
  }

  GrpcServer::Core& core_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;

 private:
  // The request (but see new_request()) and the answer live on the call's
  // arena, whose first block is inside the call. Each field of a heap
  // message is an allocation of its own (perf put the parse of an Apply's
  // request at 8.6% of its queue thread, mostly malloc); here a request of
  // a few ids of up to 15 bytes, parsed and answered on the thread that
  // made the call object (its queue thread, but for the first calls
  // posted), allocates nothing more. Longer ids still allocate their
  // characters; an answer built on another thread, or a larger request
  // (ClaimBatch), takes blocks the arena allocates and frees with the call.
  static constexpr std::size_t kArenaBlockBytes = 2048;
  alignas(std::max_align_t) std::array<char, kArenaBlockBytes> arena_block_;
  google::protobuf::Arena arena_{arena_block_.data(), arena_block_.size()};

 protected:
  Request& request_ = new_request(arena_);
  grpc::ServerAsyncResponseWriter<Response> responder_;
  std::optional<Principal> principal_;  // set when --auth-file admitted the caller
  Inbox* inbox_ = nullptr;              // of the call's queue thread, once handled

 private:
  bool handled_ = false;
  std::chrono::steady_clock::time_point started_{};
  std::atomic<bool> answered_{false};
};

// A server-streaming export of one campaign: the records are gathered on the
// admin worker, then streamed one Write at a time, each next one started by
// the previous one's completion. Derived provides: void request();
// std::optional<grpc::Status> load(const CampaignRuntime&) (admin worker:
// gathers, or the refusal); bool next(Record&) (the next record, or done).
template <class Derived, class Request, class Record>
class ExportCall : public Tag {
 public:
  static constexpr Access kAccess = Access::kAdmin;  // exports are an operator's
  ExportCall(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq)
      : core_(core), cq_(cq), writer_(&ctx_) {}

  void post() { static_cast<Derived*>(this)->request(); }

  void proceed(bool ok) override {
    // Pairs with the release in start_next(): a Write may start on the
    // admin worker while its completion runs on a completion-queue thread.
    (void)started_.load(std::memory_order_acquire);
    switch (state_) {
      case State::kPosted:
        if (!ok) {  // shutting down: this posted call never arrived
          delete this;
          return;
        }
        started_at_ = std::chrono::steady_clock::now();
        (new Derived(core_, cq_))->post();
        return handle();
      case State::kWriting:
        if (!ok) return finish(client_gone());
        return start_next();
      case State::kFinishing:
        delete this;
        return;
    }
  }

 protected:
  GrpcServer::Core& core_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  Request request_;
  grpc::ServerAsyncWriter<Record> writer_;

 private:
  enum class State : std::uint8_t { kPosted, kWriting, kFinishing };

  void handle() {
    std::optional<Principal> principal;
    if (auto refused = check_access(core_, ctx_, kAccess, &principal)) {
      return finish(*refused);
    }
    if (auto refused = check_request(request_)) return finish(*refused);
    const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
    if (c == nullptr) {
      StatusContext ctx;
      ctx.campaign_id = request_.campaign_id();
      return finish(to_grpc_status(Outcome::kCampaignNotFound, ctx));
    }
    const bool posted = core_.admin_worker.post([this, c] {
      if (auto refused = static_cast<Derived*>(this)->load(*c)) return finish(*refused);
      start_next();
    });
    if (!posted) finish(to_grpc_status(Outcome::kOverloaded, StatusContext{}));
  }

  void start_next() {
    Record r;
    if (!static_cast<Derived*>(this)->next(r)) return finish(grpc::Status::OK);
    state_ = State::kWriting;
    started_.store(true, std::memory_order_release);
    writer_.Write(r, this);
  }

  void finish(const grpc::Status& status) {
    record_answer(core_, Derived::kRpc, request_, ctx_, status, started_at_);
    state_ = State::kFinishing;
    started_.store(true, std::memory_order_release);
    writer_.Finish(status, this);
  }

  State state_ = State::kPosted;
  std::chrono::steady_clock::time_point started_at_{};
  std::atomic<bool> started_{false};
};

template <class Call>
void post_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  const int posted = Call::kAccess == Access::kAdmin ? kPostedAdminCallsPerRpc : kPostedCallsPerRpc;
  for (int i = 0; i < posted; ++i) (new Call(core, cq))->post();
}

// One per RPC family: posts kPostedCallsPerRpc calls of each of its RPCs on
// `cq` (kPostedAdminCallsPerRpc of an admin RPC).
void post_claim_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq);
void post_voucher_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq);
void post_lottery_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq);
void post_apply_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq);
void post_campaign_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq);

}  // namespace voucherd
