// claim_calls.cc — the claim RPCs: Claim and ClaimBatch (VoucherService).
#include <grpcpp/alarm.h>

#include "server/grpc/call.h"

namespace voucherd {
namespace {

// A claim decided by the claim log's writer (a Redis write) is handed back
// to the call's queue thread and answered there (queue_thread.h); one decided
// at once (the memory store, a sold-out or already-held press) is answered
// where it was decided, which is that thread.
class ClaimCall final : public UnaryCall<ClaimCall, v1::ClaimRequest, v1::ClaimResponse>,
                        private ClaimOp,
                        private HandedBack {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kClaim;
  void request() {
    core_.voucher_service.RequestClaim(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) {
      if (core_.metrics != nullptr) core_.metrics->count_claim({}, Outcome::kInvalidArgument);
      return fail(*refused);
    }
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    sku_id = request_.sku_id();
    request_id = request_.request_id();
    deadline_us = voucherd::deadline_us(ctx_);
    core_.engine.claim(*this);
  }

 private:
  void on_claim_done(const ClaimResult& r) override {
    if (!on_own_thread()) {
      decided_ = r;
      return inbox_->post(this);
    }
    answer(r);
  }
  void resume() override { answer(decided_); }

  void answer(const ClaimResult& r) {
    const Outcome outcome = refusal_on_wire(core_, r.outcome);
    if (core_.metrics != nullptr) core_.metrics->count_claim(request_.campaign_id(), outcome);
    if (outcome == Outcome::kOk || outcome == Outcome::kAlreadyClaimed) {
      v1::ClaimResponse& response = new_response();
      voucher_to_proto(*r.voucher, visible_state(*r.voucher, core_.engine.clock().now_us()),
                       response.mutable_voucher());
      response.set_already_claimed(outcome == Outcome::kAlreadyClaimed);
      return reply(response);
    }
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    ctx.sku_id = request_.sku_id();
    if (r.field != nullptr) ctx.field = r.field;
    if (outcome == Outcome::kWrongMode) {
      ctx.detail = wrong_mode_detail(core_.engine, request_.campaign_id());
    }
    ctx.retry_delay = std::chrono::milliseconds(r.retry_after_ms);
    fail(to_grpc_status(outcome, ctx));
  }

  ClaimResult decided_;  // a decision made on another thread, until resume()
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
    if (auto refused = check_request(request_)) return fail(*refused);
    const auto n = static_cast<std::size_t>(request_.claims_size());
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
      if (check_request(claim)) {
        // Answered in answer(), which words the refusal again; this loop's
        // share keeps claim_done() from answering here.
        item.refused_ids = true;
        item.on_claim_done(ClaimResult{Outcome::kInvalidArgument, nullptr, nullptr});
        continue;
      }
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
    bool refused_ids = false;  // refused before the engine: the ids break the id rules
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
    alarm_.Set(cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), static_cast<Tag*>(this));
  }

  // Every claim is decided: build the answer and send it (queue thread).
  void answer() {
    const UnixMicros now_us = core_.engine.clock().now_us();
    // Up to 1,000 results of a few strings each, on the call's arena.
    v1::ClaimBatchResponse& response = new_response();
    const int n = request_.claims_size();
    response.mutable_results()->Reserve(n);
    // Refusals repeat (a storm past sell-out is one SOLD_OUT after
    // another): a refusal like the previous one is the previous one's
    // message, added again. On the call's arena nothing deletes the
    // results one by one and nothing changes them once added, so the one
    // message may stand at several places: it is serialized once per
    // place, and no copy of its text is made (a message over 15 bytes was a
    // heap block per refusal, and perf put those copies and their frees at
    // about a tenth of a batch's server time in a storm past sell-out).
    v1::ClaimResult* last_refusal = nullptr;
    Outcome last_outcome = Outcome::kOk;
    const char* last_field = nullptr;
    const v1::ClaimRequest* last_claim = nullptr;
    for (int i = 0; i < n; ++i) {
      const Item& item = items_[static_cast<std::size_t>(i)];
      const ClaimResult& r = item.result;
      const v1::ClaimRequest& claim = request_.claims(i);
      if (item.refused_ids) {
        if (core_.metrics != nullptr) core_.metrics->count_claim({}, Outcome::kInvalidArgument);
        const grpc::Status status = check_request(claim).value();
        v1::ClaimResult* out = response.add_results();
        out->set_code(static_cast<std::int32_t>(status.error_code()));
        out->set_message(status.error_message());
        out->set_reason(wire_reason(Outcome::kInvalidArgument));
        continue;
      }
      // Every claim of a batch counts as a claim, by its outcome.
      if (core_.metrics != nullptr) {
        core_.metrics->count_claim(claim.campaign_id(), refusal_on_wire(core_, r.outcome));
      }
      if (r.outcome == Outcome::kOk || r.outcome == Outcome::kAlreadyClaimed) {
        v1::ClaimResult* out = response.add_results();
        voucher_to_proto(*r.voucher, visible_state(*r.voucher, now_us),
                         out->mutable_response()->mutable_voucher());
        out->mutable_response()->set_already_claimed(r.outcome == Outcome::kAlreadyClaimed);
        continue;
      }
      const Outcome outcome = refusal_on_wire(core_, r.outcome);
      if (last_refusal != nullptr && outcome == last_outcome && r.field == last_field &&
          claim.campaign_id() == last_claim->campaign_id() &&
          claim.sku_id() == last_claim->sku_id()) {
        response.mutable_results()->UnsafeArenaAddAllocated(last_refusal);
        continue;
      }
      StatusContext ctx;
      ctx.campaign_id = claim.campaign_id();
      ctx.sku_id = claim.sku_id();
      if (r.field != nullptr) ctx.field = r.field;
      // As Claim words it.
      if (outcome == Outcome::kWrongMode) {
        ctx.detail = wrong_mode_detail(core_.engine, claim.campaign_id());
      }
      const grpc::Status status = to_grpc_status(outcome, ctx);
      v1::ClaimResult* out = response.add_results();
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

}  // namespace

void post_claim_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  post_calls<ClaimCall>(core, cq);
  post_calls<ClaimBatchCall>(core, cq);
}

}  // namespace voucherd
