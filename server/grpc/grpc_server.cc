#include "server/grpc/grpc_server.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <optional>
#include <tuple>

#include "engine/campaign_validation.h"
#include "engine/limits.h"
#include "server/base/log.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/status_map.h"

namespace voucherd {
namespace {

namespace v1 = voucher::v1;

// gRPC 1.51 predates the HTTP/2 rapid-reset fixes: bound streams and messages.
constexpr int kMaxConcurrentStreams = 1024;
constexpr int kMaxReceiveMessageBytes = 4 << 20;  // a 1,024-SKU campaign fits easily
// Calls of each RPC kept posted per completion queue, so a burst of new calls
// does not wait for re-arming.
constexpr int kPostedCallsPerRpc = 32;

// A completion-queue tag: every event of a call comes back as proceed(ok).
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void proceed(bool ok) = 0;
};

// The refusal a claim is answered with. No stock can arrive while the
// shared store is unreachable, so a replica waiting for a lease then says
// the store is down (UNAVAILABLE) rather than "refilling".
Outcome refusal_on_wire(const GrpcServer::Core& core, Outcome outcome) {
  const bool store_down = !core.store.connected();
  return outcome == Outcome::kStockRefilling && store_down ? Outcome::kLogUnavailable : outcome;
}

// The caller's deadline in Unix µs, for a claim that may wait for units;
// 0 when the caller set none (gRPC's "infinite" is far in the future).
UnixMicros deadline_us(const grpc::ServerContext& ctx) {
  const auto deadline = ctx.deadline();
  if (deadline - std::chrono::system_clock::now() > std::chrono::hours(24)) return 0;
  return std::chrono::duration_cast<std::chrono::microseconds>(deadline.time_since_epoch()).count();
}

const char* access_text(Access access) {
  switch (access) {
    case Access::kApp:
      return "an app token";
    case Access::kAppOrSite:
      return "an app or site token";
    case Access::kSite:
      return "a site token";
    case Access::kAdmin:
      return "an admin token";
  }
  return "another token";
}

// With --auth-file, whether the caller's bearer token admits `access`: the
// refusal to answer, or nothing (and the caller in `principal`).
std::optional<grpc::Status> check_access(const GrpcServer::Core& core,
                                         const grpc::ServerContext& ctx, Access access,
                                         std::optional<Principal>* principal) {
  if (core.auth == nullptr) return std::nullopt;
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find("authorization");
  const std::string_view value = it == metadata.end()
                                     ? std::string_view()
                                     : std::string_view(it->second.data(), it->second.size());
  auto admitted = core.auth->admit(value, access);
  if (admitted) {
    *principal = std::move(*admitted);
    return std::nullopt;
  }
  if (admitted.error() == Authenticator::Refusal::kUnauthenticated) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or unknown bearer token: send \"authorization: Bearer <token>\"");
  }
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      std::string("this call needs ") + access_text(access) +
                          "; the token presented has another role");
}

std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point since) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - since)
          .count());
}

// A number unique in this process, for calls that bring no request id.
std::uint64_t next_call_number() {
  static std::atomic<std::uint64_t> next{0};
  // Relaxed: the number only has to be unique, not ordered with anything.
  return next.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The request id of a call, for its log lines: the request's own
// request_id when it has one, else the caller's x-request-id metadata
// (bounded), else a number unique in this process. Debug lines only.
template <class Request>
std::string request_id_of(const Request& request, const grpc::ServerContext& ctx) {
  if constexpr (requires { request.request_id(); }) {
    if (!request.request_id().empty()) return request.request_id();
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

// One unary call: posted, then admitted, then handled, then finished, then
// deleted. Derived provides: void request(); void handle(); Derived(Core&,
// CQ*); static constexpr Access kAccess (who may call it, with --auth-file);
// static constexpr Rpc kRpc (its name in metrics and logs).
template <class Derived, class Request, class Response>
class UnaryCall : public Tag {
 public:
  UnaryCall(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq)
      : core_(core), cq_(cq), responder_(&ctx_) {}

  void proceed(bool ok) override {
    if (!handled_) {
      if (!ok) {  // the server is shutting down: this posted call never arrived
        delete this;
        return;
      }
      handled_ = true;
      started_ = std::chrono::steady_clock::now();
      (new Derived(core_, cq_))->post();  // keep a call posted for the next client
      // A call whose deadline has already passed is not started: its caller
      // has given up, and its work would only delay the live ones.
      if (ctx_.deadline() <= std::chrono::system_clock::now()) {
        return fail(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                 "the call's deadline passed before voucherd could start it"));
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

  GrpcServer::Core& core_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  Request request_;
  grpc::ServerAsyncResponseWriter<Response> responder_;
  std::optional<Principal> principal_;  // set when --auth-file admitted the caller

 private:
  bool handled_ = false;
  std::chrono::steady_clock::time_point started_{};
  std::atomic<bool> answered_{false};
};

class ClaimCall final : public UnaryCall<ClaimCall, v1::ClaimRequest, v1::ClaimResponse>,
                        private ClaimOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kClaim;
  void request() {
    core_.voucher_service.RequestClaim(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    sku_id = request_.sku_id();
    request_id = request_.request_id();
    deadline_us = voucherd::deadline_us(ctx_);
    core_.engine.claim(*this);
  }

 private:
  void on_claim_done(const ClaimResult& r) override {
    const Outcome outcome = refusal_on_wire(core_, r.outcome);
    if (core_.metrics != nullptr) core_.metrics->count_claim(request_.campaign_id(), outcome);
    if (outcome == Outcome::kOk || outcome == Outcome::kAlreadyClaimed) {
      v1::ClaimResponse response;
      voucher_to_proto(*r.voucher, visible_state(*r.voucher, core_.engine.clock().now_us()),
                       response.mutable_voucher());
      response.set_already_claimed(outcome == Outcome::kAlreadyClaimed);
      return reply(response);
    }
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    ctx.sku_id = request_.sku_id();
    if (r.field != nullptr) ctx.field = r.field;
    if (outcome == Outcome::kWrongMode) ctx.detail = "it is a LOTTERY campaign: use Draw";
    fail(to_grpc_status(outcome, ctx));
  }
};

// A batch of claims from an aggregating backend. Every claim goes through
// the engine exactly as a Claim would, and so through the group-committed
// claim log: the claims of one batch join the same store batches. The call
// is answered once its last claim is decided (and, when written, durable).
// The answer is always built and sent on the call's completion-queue
// thread: when the last claim is decided elsewhere (the claim log's writer),
// an alarm hands the call back to its queue, so the writer does not spend
// its time encoding up to 1,000 vouchers, and the call is answered and
// freed on one thread.
//
// Thread-safety: the claims' completions run on any thread, each writing
// only its own Item; `pending_` hands the Items to the last completer, and
// its acquire on the queue thread orders them before the answer.
class ClaimBatchCall final
    : public UnaryCall<ClaimBatchCall, v1::ClaimBatchRequest, v1::ClaimBatchResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kClaimBatch;
  void request() {
    core_.voucher_service.RequestClaimBatch(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    const auto n = static_cast<std::size_t>(request_.claims_size());
    if (n == 0 || n > limits::kClaimBatchClaimsMax) {
      return fail(invalid_argument("claims", "claims must hold 1 to " +
                                                 std::to_string(limits::kClaimBatchClaimsMax) +
                                                 " claims; this batch holds " + std::to_string(n)));
    }
    items_ = std::make_unique<Item[]>(n);
    // One share per claim plus one for this loop, so that the answer (which
    // frees nothing, but reads every Item) is not built while claims are
    // still being started. Relaxed: nothing has been handed out yet.
    pending_.store(n + 1, std::memory_order_relaxed);
    const UnixMicros deadline = deadline_us(ctx_);
    for (std::size_t i = 0; i < n; ++i) {
      const v1::ClaimRequest& claim = request_.claims(static_cast<int>(i));
      Item& item = items_[i];
      item.batch = this;
      item.campaign_id = claim.campaign_id();
      item.member_id = claim.member_id();
      item.sku_id = claim.sku_id();
      item.request_id = claim.request_id();
      item.deadline_us = deadline;
      core_.engine.claim(item);
    }
    // acq_rel as in claim_done(); here, on the queue thread, the last share
    // answers at once (the memory store decides every claim inside claim()).
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) answer();
  }

  void proceed(bool ok) override {
    // Relaxed would do for the flag itself (only this thread clears it); the
    // acquire pairs with the release in claim_done() so the Items written on
    // the deciding thread are visible here.
    if (handed_back_.exchange(false, std::memory_order_acq_rel)) return answer();
    UnaryCall::proceed(ok);
  }

 private:
  struct Item final : ClaimOp {
    ClaimBatchCall* batch = nullptr;
    ClaimResult result;
    void on_claim_done(const ClaimResult& r) override {
      result = r;
      batch->claim_done();
    }
  };

  // A claim was decided, on any thread (the queue's inside claim(), or the
  // claim log's).
  void claim_done() {
    // acq_rel: each completer publishes its Item (release); the last one
    // sees all of them (acquire).
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // The last claim, decided after handle() gave up its share: hand the
    // call back to its queue thread (proceed() answers). Nothing of the
    // call is read after the flag is published but the alarm, which gRPC's
    // queue orders before the event it delivers (tests/tsan.supp).
    grpc::ServerCompletionQueue* const cq = cq_;
    handed_back_.store(true, std::memory_order_release);
    alarm_.Set(cq, gpr_now(GPR_CLOCK_MONOTONIC), static_cast<Tag*>(this));
  }

  // Every claim is decided: build the answer and send it (queue thread).
  void answer() {
    const UnixMicros now_us = core_.engine.clock().now_us();
    // Up to 1,000 results of a few strings each: one arena instead of
    // thousands of small allocations (Finish serializes the answer before
    // it returns, so the arena may end with this function).
    google::protobuf::Arena arena;
    auto& response = *google::protobuf::Arena::CreateMessage<v1::ClaimBatchResponse>(&arena);
    const int n = request_.claims_size();
    response.mutable_results()->Reserve(n);
    // Refusals repeat (a storm past sell-out is one SOLD_OUT after
    // another): a refusal like the previous one reuses its text.
    const v1::ClaimResult* last_refusal = nullptr;
    Outcome last_outcome = Outcome::kOk;
    const char* last_field = nullptr;
    const v1::ClaimRequest* last_claim = nullptr;
    for (int i = 0; i < n; ++i) {
      const ClaimResult& r = items_[static_cast<std::size_t>(i)].result;
      const v1::ClaimRequest& claim = request_.claims(i);
      // Every claim of a batch counts as a claim, by its outcome.
      if (core_.metrics != nullptr) {
        core_.metrics->count_claim(claim.campaign_id(), refusal_on_wire(core_, r.outcome));
      }
      v1::ClaimResult* out = response.add_results();
      if (r.outcome == Outcome::kOk || r.outcome == Outcome::kAlreadyClaimed) {
        voucher_to_proto(*r.voucher, visible_state(*r.voucher, now_us),
                         out->mutable_response()->mutable_voucher());
        out->mutable_response()->set_already_claimed(r.outcome == Outcome::kAlreadyClaimed);
        continue;
      }
      const Outcome outcome = refusal_on_wire(core_, r.outcome);
      if (last_refusal != nullptr && outcome == last_outcome && r.field == last_field &&
          claim.campaign_id() == last_claim->campaign_id() &&
          claim.sku_id() == last_claim->sku_id()) {
        out->set_code(last_refusal->code());
        out->set_message(last_refusal->message());
        out->set_reason(last_refusal->reason());
        continue;
      }
      StatusContext ctx;
      ctx.campaign_id = claim.campaign_id();
      ctx.sku_id = claim.sku_id();
      if (r.field != nullptr) ctx.field = r.field;
      const grpc::Status status = to_grpc_status(outcome, ctx);
      out->set_code(static_cast<std::int32_t>(status.error_code()));
      out->set_message(status.error_message());
      out->set_reason(wire_reason(outcome));
      last_refusal = out;
      last_outcome = outcome;
      last_field = r.field;
      last_claim = &claim;
    }
    reply(response);
  }

  std::unique_ptr<Item[]> items_;
  std::atomic<std::size_t> pending_{0};
  std::atomic<bool> handed_back_{false};  // the alarm below is set
  grpc::Alarm alarm_;
};

class GetVoucherCall final : public UnaryCall<GetVoucherCall, v1::GetVoucherRequest, v1::Voucher>,
                             private VoucherLookupOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAppOrSite;
  static constexpr Rpc kRpc = Rpc::kGetVoucher;
  void request() {
    core_.voucher_service.RequestGetVoucher(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (request_.code().empty()) return fail(invalid_argument("code", "code must not be empty"));
    code = request_.code();
    core_.engine.get_voucher(*this);
  }

 private:
  void on_lookup_done(Outcome outcome, VoucherPtr voucher, VoucherState visible) override {
    // A site sees its own vouchers only.
    if (outcome == Outcome::kOk && principal_ && principal_->role == Role::kSite &&
        voucher->site_id != principal_->site_id) {
      return fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                               "this voucher belongs to another site than the token's (\"" +
                                   principal_->site_id + "\")"));
    }
    if (outcome == Outcome::kOk) {
      v1::Voucher response;
      voucher_to_proto(*voucher, visible, &response);
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = "code";
    fail(to_grpc_status(outcome, ctx));
  }
};

class RedeemCall final : public UnaryCall<RedeemCall, v1::RedeemRequest, v1::RedeemResponse>,
                         private RedeemOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kSite;
  static constexpr Rpc kRpc = Rpc::kRedeem;
  void request() {
    core_.voucher_service.RequestRedeem(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (request_.code().empty()) return fail(invalid_argument("code", "code must not be empty"));
    // A site token redeems for its own site only.
    if (principal_ && !request_.site_id().empty() && request_.site_id() != principal_->site_id) {
      return fail(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                               "a token of site \"" + principal_->site_id +
                                   "\" may not redeem for site \"" + request_.site_id() + "\""));
    }
    // The guard knows a caller by its token (by the site it names, without
    // --auth-file).
    guard_key_ = principal_ ? principal_->token_hash : "site:" + request_.site_id();
    code = request_.code();
    site_id = request_.site_id();
    request_id = request_.request_id();
    core_.engine.redeem(*this);
  }

 private:
  void on_redeem_done(Outcome outcome, VoucherPtr voucher, bool already_redeemed,
                      const char* field) override {
    // Codes that are not vouchers count against the caller; past the budget,
    // their answers turn into RESOURCE_EXHAUSTED for the cool-down, so a
    // guesser learns nothing more. A real voucher is never throttled.
    if (outcome == Outcome::kVoucherNotFound) {
      const auto now = RedeemGuard::Clock::now();
      core_.redeem_guard.failed(guard_key_, now);
      if (auto allowed = core_.redeem_guard.check(guard_key_, now); !allowed) {
        StatusContext ctx;
        ctx.detail = "retry in " + std::to_string(allowed.error().count()) + " s";
        count(Outcome::kRedeemThrottled, voucher);
        return fail(to_grpc_status(Outcome::kRedeemThrottled, ctx));
      }
    } else if (outcome == Outcome::kOk) {
      core_.redeem_guard.succeeded(guard_key_);
    }
    count(outcome, voucher);
    if (outcome == Outcome::kOk) {
      v1::RedeemResponse response;
      voucher_to_proto(*voucher, VoucherState::kRedeemed, response.mutable_voucher());
      response.set_already_redeemed(already_redeemed);
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = field != nullptr ? field : "code";
    ctx.site_id = request_.site_id();
    if (voucher) {
      ctx.campaign_id = voucher->campaign_id;
      ctx.sku_id = voucher->sku_id;
    }
    if (outcome == Outcome::kAlreadyRedeemed && voucher) {
      google::protobuf::Timestamp at;
      at.set_seconds(voucher->redeemed_at_us / kMicrosPerSecond);
      at.set_nanos(static_cast<std::int32_t>(voucher->redeemed_at_us % kMicrosPerSecond) * 1000);
      ctx.detail = "at " + google::protobuf::util::TimeUtil::ToString(at) + " by site \"" +
                   voucher->redeemed_site_id + "\"";
    } else if (outcome == Outcome::kVoucherExpired && voucher) {
      google::protobuf::Timestamp at;
      at.set_seconds(voucher->expires_at_us / kMicrosPerSecond);
      ctx.detail = "it expired at " + google::protobuf::util::TimeUtil::ToString(at);
    }
    fail(to_grpc_status(outcome, ctx));
  }

  // A redemption counts under its voucher's campaign; a code that is not a
  // voucher has none, and counts under "(unknown)".
  void count(Outcome outcome, const VoucherPtr& voucher) {
    if (core_.metrics == nullptr) return;
    core_.metrics->count_redemption(voucher ? std::string_view(voucher->campaign_id) : "", outcome);
  }

  std::string guard_key_;
};

class ListMemberVouchersCall final
    : public UnaryCall<ListMemberVouchersCall, v1::ListMemberVouchersRequest,
                       v1::ListMemberVouchersResponse>,
      private MemberVouchersOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kListMemberVouchers;
  void request() {
    core_.voucher_service.RequestListMemberVouchers(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    member_id = request_.member_id();
    campaign_id = request_.campaign_id();
    core_.engine.list_member_vouchers(*this);
  }

 private:
  void on_member_vouchers_done(Outcome outcome, std::vector<VoucherPtr> vouchers,
                               UnixMicros now_us) override {
    if (outcome == Outcome::kOk) {
      v1::ListMemberVouchersResponse response;
      for (const VoucherPtr& v : vouchers) {
        voucher_to_proto(*v, visible_state(*v, now_us), response.add_vouchers());
      }
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = "member_id";
    ctx.campaign_id = request_.campaign_id();
    fail(to_grpc_status(outcome, ctx));
  }
};

// A server-streaming export of one campaign: the records are gathered on the
// admin worker, then streamed one Write at a time, each next one started by
// the previous one's completion. Derived provides: void request();
// std::optional<grpc::Status> load(const CampaignRuntime&) (admin worker:
// gathers, or the refusal); bool next(Record&) (the next record, or done).
template <class Derived, class Request, class Record>
class ExportCall : public Tag {
 public:
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
        if (!ok) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
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
    if (auto refused = check_access(core_, ctx_, Access::kAdmin, &principal)) {
      return finish(*refused);
    }
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

void set_timestamp(UnixMicros us, google::protobuf::Timestamp* out) {
  out->set_seconds(us / kMicrosPerSecond);
  out->set_nanos(static_cast<std::int32_t>(us % kMicrosPerSecond) * 1000);
}

// Redeemed vouchers, ordered by site, SKU and code (settlement).
class ExportRedemptionsCall final
    : public ExportCall<ExportRedemptionsCall, v1::ExportRedemptionsRequest, v1::RedemptionRecord> {
 public:
  using ExportCall::ExportCall;
  static constexpr Rpc kRpc = Rpc::kExportRedemptions;
  void request() {
    core_.admin_service.RequestExportRedemptions(&ctx_, &request_, &writer_, cq_, cq_, this);
  }
  std::optional<grpc::Status> load(const CampaignRuntime& /*c*/) {
    auto records = core_.engine.redeemed_vouchers(request_.campaign_id());
    if (!records) {
      StatusContext ctx;
      ctx.campaign_id = request_.campaign_id();
      ctx.detail = records.error();
      return to_grpc_status(Outcome::kLogUnavailable, ctx);
    }
    for (VoucherPtr& v : *records) {
      if (request_.site_id().empty() || v->site_id == request_.site_id()) {
        records_.push_back(std::move(v));
      }
    }
    std::sort(records_.begin(), records_.end(), [](const VoucherPtr& a, const VoucherPtr& b) {
      return std::tie(a->site_id, a->sku_id, a->code) < std::tie(b->site_id, b->sku_id, b->code);
    });
    return std::nullopt;
  }
  bool next(v1::RedemptionRecord& r) {
    if (next_ == records_.size()) return false;
    const VoucherRecord& v = *records_[next_++];
    r.set_code(v.code);
    r.set_campaign_id(v.campaign_id);
    r.set_site_id(v.site_id);
    r.set_sku_id(v.sku_id);
    r.set_sku_kind(static_cast<v1::SkuKind>(v.sku_kind));
    r.set_member_id(v.member_id);
    r.set_face_value_cents(v.face_value_cents);
    set_timestamp(v.issued_at_us, r.mutable_issued_at());
    set_timestamp(v.redeemed_at_us, r.mutable_redeemed_at());
    r.set_redeem_request_id(v.redeem_request_id);
    return true;
  }

 private:
  std::vector<VoucherPtr> records_;
  std::size_t next_ = 0;
};

// Every draw of a LOTTERY campaign, in decision order (audit).
class ExportDrawsCall final
    : public ExportCall<ExportDrawsCall, v1::ExportDrawsRequest, v1::DrawRecord> {
 public:
  using ExportCall::ExportCall;
  static constexpr Rpc kRpc = Rpc::kExportDraws;
  void request() {
    core_.admin_service.RequestExportDraws(&ctx_, &request_, &writer_, cq_, cq_, this);
  }
  std::optional<grpc::Status> load(const CampaignRuntime& c) {
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    if (c.spec().mode != CampaignMode::kLottery) {
      ctx.detail = "only LOTTERY campaigns have draws";
      return to_grpc_status(Outcome::kWrongMode, ctx);
    }
    auto entries = core_.engine.draw_entries(c.spec());
    if (!entries) {
      ctx.detail = entries.error();
      return to_grpc_status(Outcome::kLogUnavailable, ctx);
    }
    spec_ = &c.spec();
    entries_ = std::move(*entries);
    return std::nullopt;
  }
  bool next(v1::DrawRecord& r) {
    if (next_ == entries_.size()) return false;
    draw_entry_to_proto(*spec_, entries_[next_++], &r);
    return true;
  }

 private:
  const CampaignSpec* spec_ = nullptr;
  std::vector<DrawEntry> entries_;
  std::size_t next_ = 0;
};

class DrawCall final : public UnaryCall<DrawCall, v1::DrawRequest, v1::DrawResponse>,
                       private DrawOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kDraw;
  void request() {
    core_.voucher_service.RequestDraw(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    request_id = request_.request_id();
    core_.engine.draw(*this);
  }

 private:
  void on_draw_done(const DrawOpResult& r) override {
    if (core_.metrics != nullptr) {
      core_.metrics->count_draw(request_.campaign_id(), r.outcome,
                                r.outcome == Outcome::kOk && r.entry.outcome == DrawOutcome::kWon);
    }
    if (r.outcome == Outcome::kOk) {
      v1::DrawResponse response;
      response.set_won(r.entry.outcome == DrawOutcome::kWon);
      if (r.voucher) {
        voucher_to_proto(*r.voucher, visible_state(*r.voucher, core_.engine.clock().now_us()),
                         response.mutable_voucher());
      } else {
        response.set_reason(static_cast<v1::NoPrizeReason>(r.entry.outcome));
      }
      response.set_draws_left_today(r.draws_left_today);
      response.set_proof(r.proof);
      return reply(response);
    }
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    if (r.field != nullptr) ctx.field = r.field;
    if (r.outcome == Outcome::kDrawLimitReached) ctx.detail = "draws reset at " + r.resets_at;
    if (r.outcome == Outcome::kWrongMode) ctx.detail = "it is a FIRST_COME campaign: use Claim";
    fail(to_grpc_status(r.outcome, ctx));
  }
};

class CancelVoucherCall final
    : public UnaryCall<CancelVoucherCall, v1::CancelVoucherRequest, v1::Voucher>,
      private CancelOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kCancelVoucher;
  void request() {
    core_.admin_service.RequestCancelVoucher(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (request_.code().empty()) return fail(invalid_argument("code", "code must not be empty"));
    code = request_.code();
    core_.engine.cancel(*this);
  }

 private:
  void on_cancel_done(Outcome outcome, VoucherPtr voucher) override {
    if (outcome == Outcome::kOk) {
      v1::Voucher response;
      voucher_to_proto(*voucher, voucher->state, &response);
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = "code";
    if (outcome == Outcome::kAlreadyRedeemed) ctx.detail = "a redeemed voucher cannot be cancelled";
    fail(to_grpc_status(outcome, ctx));
  }
};

class CreateCampaignCall final
    : public UnaryCall<CreateCampaignCall, v1::CreateCampaignRequest, v1::Campaign> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kCreateCampaign;
  void request() {
    core_.admin_service.RequestCreateCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (!request_.has_campaign()) return fail(invalid_argument("campaign", "campaign must be set"));
    auto spec = campaign_from_proto(request_.campaign());
    if (!spec) return fail(invalid_argument(spec.error().field, spec.error().message));
    // Registering a campaign writes it to the store (Redis: the definition,
    // the stock, the registry): on the admin worker, never on a queue thread.
    const bool posted = core_.admin_worker.post([this, spec = std::move(*spec)]() mutable {
      auto created = core_.engine.create_campaign(
          std::move(spec), request_.replace_before_open() ? StoredDefinition::kReplaceBeforeOpen
                                                          : StoredDefinition::kMustMatch);
      if (!created) {
        const CreateError& e = created.error();
        if (e.outcome == Outcome::kInvalidArgument) {
          return fail(invalid_argument(e.field.field, e.field.message));
        }
        StatusContext ctx;
        ctx.campaign_id = request_.campaign().id();
        return fail(to_grpc_status(e.outcome, ctx));
      }
      v1::Campaign response;
      campaign_to_proto((*created)->spec(), &response);
      response.set_seed_commitment((*created)->seed_commitment());
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, StatusContext{}));
  }
};

// Context for the admin calls that name one campaign.
StatusContext campaign_context(std::string_view campaign_id) {
  StatusContext ctx;
  ctx.campaign_id = campaign_id;
  ctx.field = "campaign_id";
  return ctx;
}

class GetCampaignCall final
    : public UnaryCall<GetCampaignCall, v1::GetCampaignRequest, v1::Campaign> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kGetCampaign;
  void request() {
    core_.admin_service.RequestGetCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    const StatusContext ctx = campaign_context(request_.campaign_id());
    if (!id_is_valid(request_.campaign_id())) {
      return fail(to_grpc_status(Outcome::kInvalidArgument, ctx));
    }
    const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
    if (c == nullptr) return fail(to_grpc_status(Outcome::kCampaignNotFound, ctx));
    v1::Campaign response;
    campaign_to_proto(c->spec(), &response);
    response.set_seed_commitment(c->seed_commitment());
    reply(response);
  }
};

// Pages are cut at a campaign id: the token is the last id of the page,
// hex-encoded behind a version tag, so it stays opaque and printable.
constexpr std::string_view kPageTokenTag = "c1.";
constexpr int kListPageSizeDefault = 50;
constexpr int kListPageSizeMax = 1000;

std::string page_token_of(std::string_view last_id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kPageTokenTag);
  for (const char ch : last_id) {
    const auto b = static_cast<unsigned char>(ch);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// The campaign id a token names; nullopt when voucherd did not make it.
std::optional<std::string> id_of_page_token(std::string_view token) {
  if (token.substr(0, kPageTokenTag.size()) != kPageTokenTag) return std::nullopt;
  token.remove_prefix(kPageTokenTag.size());
  if (token.empty() || token.size() % 2 != 0 || token.size() > 2 * limits::kIdBytesMax) {
    return std::nullopt;
  }
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
  };
  std::string id;
  for (std::size_t i = 0; i < token.size(); i += 2) {
    const int hi = nibble(token[i]);
    const int lo = nibble(token[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id.push_back(static_cast<char>(hi * 16 + lo));
  }
  return id;
}

class ListCampaignsCall final
    : public UnaryCall<ListCampaignsCall, v1::ListCampaignsRequest, v1::ListCampaignsResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kListCampaigns;
  void request() {
    core_.admin_service.RequestListCampaigns(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (request_.page_size() < 0) {
      return fail(invalid_argument("page_size", "page_size must not be negative"));
    }
    const int size = request_.page_size() == 0 ? kListPageSizeDefault
                                               : std::min(request_.page_size(), kListPageSizeMax);
    std::optional<std::string> after;
    if (!request_.page_token().empty()) {
      after = id_of_page_token(request_.page_token());
      if (!after) {
        return fail(invalid_argument("page_token",
                                     "page_token is not one voucherd gave (pass the "
                                     "next_page_token of the previous page, or nothing)"));
      }
    }
    std::vector<const CampaignRuntime*> all = core_.engine.campaigns();
    std::sort(all.begin(), all.end(), [](const CampaignRuntime* a, const CampaignRuntime* b) {
      return a->spec().id < b->spec().id;
    });
    auto it = all.begin();
    if (after) {
      it = std::upper_bound(
          all.begin(), all.end(), *after,
          [](const std::string& id, const CampaignRuntime* c) { return id < c->spec().id; });
    }
    v1::ListCampaignsResponse response;
    for (; it != all.end() && response.campaigns_size() < size; ++it) {
      v1::Campaign* out = response.add_campaigns();
      campaign_to_proto((*it)->spec(), out);
      out->set_seed_commitment((*it)->seed_commitment());
    }
    if (it != all.end() && response.campaigns_size() > 0) {
      response.set_next_page_token(
          page_token_of(response.campaigns(response.campaigns_size() - 1).id()));
    }
    reply(response);
  }
};

class RevealSeedCall final
    : public UnaryCall<RevealSeedCall, v1::RevealSeedRequest, v1::RevealSeedResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kRevealSeed;
  void request() {
    core_.admin_service.RequestRevealSeed(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    StatusContext ctx = campaign_context(request_.campaign_id());
    if (!id_is_valid(request_.campaign_id())) {
      return fail(to_grpc_status(Outcome::kInvalidArgument, ctx));
    }
    auto seed = core_.engine.reveal_seed(request_.campaign_id());
    if (!seed) {
      const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
      if (seed.error() == Outcome::kCampaignNotOver) {
        ctx.detail =
            "it ends at " +
            google::protobuf::util::TimeUtil::ToString(
                google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(c->spec().ends_at_us));
      } else if (seed.error() == Outcome::kWrongMode) {
        ctx.detail = "only LOTTERY campaigns have a seed";
      }
      return fail(to_grpc_status(seed.error(), ctx));
    }
    v1::RevealSeedResponse response;
    response.set_campaign_id(request_.campaign_id());
    response.set_seed(to_hex(*seed));
    response.set_seed_commitment(seed_commitment(*seed));
    reply(response);
  }
};

class GetCampaignStatsCall final
    : public UnaryCall<GetCampaignStatsCall, v1::GetCampaignStatsRequest, v1::CampaignStats> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kGetCampaignStats;
  void request() {
    core_.admin_service.RequestGetCampaignStats(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    const StatusContext ctx = campaign_context(request_.campaign_id());
    if (!id_is_valid(request_.campaign_id())) {
      return fail(to_grpc_status(Outcome::kInvalidArgument, ctx));
    }
    auto stats = core_.engine.campaign_stats(request_.campaign_id());
    if (!stats) return fail(to_grpc_status(stats.error(), ctx));
    // Expired vouchers (and, with Redis, the store-wide counts of every
    // replica) are read from the store: on the admin worker.
    const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
    const bool posted = core_.admin_worker.post([this, c, local = std::move(*stats)]() mutable {
      auto store_failed = [&](const std::string& why) {
        StatusContext failed = campaign_context(request_.campaign_id());
        failed.detail = why;
        fail(to_grpc_status(Outcome::kLogUnavailable, failed));
      };
      auto expired = core_.engine.expired_counts(c->spec());
      if (!expired) return store_failed(expired.error());
      local.expired = 0;
      for (std::size_t i = 0; i < local.skus.size(); ++i) {
        local.skus[i].expired = (*expired)[i];
        local.expired += (*expired)[i];
      }
      auto counts = core_.store.read_counts(c->spec());
      if (!counts) return store_failed(counts.error());
      if (*counts) apply_counts(**counts, local);
      v1::CampaignStats response;
      stats_to_proto(local, &response);
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, ctx));
  }
};

class ReconcileCampaignCall final
    : public UnaryCall<ReconcileCampaignCall, v1::ReconcileCampaignRequest,
                       v1::ReconcileCampaignResponse> {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kAdmin;
  static constexpr Rpc kRpc = Rpc::kReconcileCampaign;
  void request() {
    core_.admin_service.RequestReconcileCampaign(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    const StatusContext ctx = campaign_context(request_.campaign_id());
    if (!id_is_valid(request_.campaign_id())) {
      return fail(to_grpc_status(Outcome::kInvalidArgument, ctx));
    }
    const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
    if (c == nullptr) return fail(to_grpc_status(Outcome::kCampaignNotFound, ctx));
    v1::ReconcileCampaignResponse response;
    response.set_campaign_id(c->spec().id);
    const bool posted = core_.admin_worker.post([this, c, response]() mutable {
      auto returned = core_.store.reconcile(c->spec());
      if (!returned) {
        StatusContext failed = campaign_context(request_.campaign_id());
        failed.detail = returned.error();
        return fail(to_grpc_status(Outcome::kLogUnavailable, failed));
      }
      std::int64_t total = 0;
      for (std::size_t i = 0; i < c->spec().skus.size(); ++i) {
        auto* s = response.add_skus();
        s->set_sku_id(c->spec().skus[i].id);
        s->set_units_returned((*returned)[i]);
        total += (*returned)[i];
      }
      response.set_units_returned(total);
      reply(response);
    });
    if (!posted) fail(to_grpc_status(Outcome::kOverloaded, ctx));
  }
};

template <class Call>
void post_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  for (int i = 0; i < kPostedCallsPerRpc; ++i) (new Call(core, cq))->post();
}

void poll(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->proceed(ok);
}

}  // namespace

// Admin jobs waiting at most; beyond this, admin calls are shed.
constexpr std::size_t kAdminJobsMax = 1024;

GrpcServer::AdminWorker::AdminWorker() {
  thread_ = std::thread([this] {
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
      options_(std::move(options)) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::milliseconds(0)); }

int GrpcServer::start() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      options_.listen,
      options_.credentials ? options_.credentials : grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&core_.voucher_service);
  builder.RegisterService(&core_.admin_service);
  builder.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams);
  for (int i = 0; i < options_.polling_threads; ++i) cqs_.push_back(builder.AddCompletionQueue());
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    return 0;
  }
  // The health service answers per service too (probes may name one);
  // set_not_serving() flips them all at once.
  if (auto* health = server_->GetHealthCheckService(); health != nullptr) {
    health->SetServingStatus(voucher::v1::VoucherService::service_full_name(), true);
    health->SetServingStatus(voucher::v1::AdminService::service_full_name(), true);
  }
  for (auto& cq : cqs_) {
    post_calls<ClaimCall>(core_, cq.get());
    post_calls<ClaimBatchCall>(core_, cq.get());
    post_calls<GetVoucherCall>(core_, cq.get());
    post_calls<RedeemCall>(core_, cq.get());
    post_calls<CancelVoucherCall>(core_, cq.get());
    post_calls<ListMemberVouchersCall>(core_, cq.get());
    post_calls<ExportRedemptionsCall>(core_, cq.get());
    post_calls<DrawCall>(core_, cq.get());
    post_calls<RevealSeedCall>(core_, cq.get());
    post_calls<ExportDrawsCall>(core_, cq.get());
    post_calls<CreateCampaignCall>(core_, cq.get());
    post_calls<GetCampaignCall>(core_, cq.get());
    post_calls<ListCampaignsCall>(core_, cq.get());
    post_calls<GetCampaignStatsCall>(core_, cq.get());
    post_calls<ReconcileCampaignCall>(core_, cq.get());
    threads_.emplace_back(poll, cq.get());
  }
  return port;
}

void GrpcServer::set_serving(bool serving) {
  auto* health = server_ ? server_->GetHealthCheckService() : nullptr;
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(voucher::v1::VoucherService::service_full_name(), serving);
  health->SetServingStatus(voucher::v1::AdminService::service_full_name(), serving);
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) {
    // Stops accepting; in-flight calls get until the deadline to finish, then
    // are cancelled. Posted-but-unused calls come back with ok=false.
    server_->Shutdown(std::chrono::system_clock::now() + grace);
  }
  core_.admin_worker.stop();  // runs what was posted, then stops
  for (auto& cq : cqs_) cq->Shutdown();
  for (auto& t : threads_) t.join();
  if (threads_.empty()) {
    for (auto& cq : cqs_) poll(cq.get());  // never started: drain here
  }
  threads_.clear();
  // Drained: Next() returned false, every tag has been deleted.
}

}  // namespace voucherd
