// lottery_calls.cc — the lottery RPCs: Draw (VoucherService), RevealSeed and ExportDraws
// (AdminService).
#include "server/grpc/call.h"

namespace voucherd {
namespace {

// Like a claim (claim_calls.cc), a draw decided by the claim log's writer is
// answered on the call's own queue thread.
class DrawCall final : public UnaryCall<DrawCall, v1::DrawRequest, v1::DrawResponse>,
                       private DrawOp,
                       private HandedBack {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kDraw;
  void request() {
    core_.voucher_service.RequestDraw(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) {
      if (core_.metrics != nullptr) {
        core_.metrics->count_draw({}, Outcome::kInvalidArgument, false);
      }
      return fail(*refused);
    }
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    request_id = request_.request_id();
    core_.engine.draw(*this);
  }

 private:
  void on_draw_done(const DrawOpResult& r) override {
    if (!on_own_thread()) {
      decided_ = r;
      return inbox_->post(this);
    }
    answer(r);
  }
  void resume() override { answer(decided_); }

  void answer(const DrawOpResult& r) {
    if (core_.metrics != nullptr) {
      core_.metrics->count_draw(request_.campaign_id(), r.outcome,
                                r.outcome == Outcome::kOk && r.entry.outcome == DrawOutcome::kWon);
    }
    if (r.outcome == Outcome::kOk) {
      v1::DrawResponse& response = new_response();
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
    if (r.outcome == Outcome::kWrongMode) {
      ctx.detail = wrong_mode_detail(core_.engine, request_.campaign_id());
    }
    fail(to_grpc_status(r.outcome, ctx));
  }

  DrawOpResult decided_;  // a decision made on another thread, until resume()
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
    if (auto refused = check_request(request_)) return fail(*refused);
    const CampaignRuntime* c = named_campaign(request_.campaign_id());
    if (c == nullptr) return;
    auto seed = core_.engine.reveal_seed(request_.campaign_id());
    if (!seed) {
      StatusContext ctx = campaign_context(request_.campaign_id());
      if (seed.error() == Outcome::kCampaignNotOver) {
        ctx.detail = c->spec().mode == CampaignMode::kApplyThenDraw
                         ? "its packs are allocated at " +
                               timestamp_text(c->spec().allocation_at_us) +
                               ", and the seed is revealed once the allocation is done"
                         : "it ends at " + timestamp_text(c->spec().ends_at_us);
      } else if (seed.error() == Outcome::kWrongMode) {
        ctx.detail = "only LOTTERY and APPLY_THEN_DRAW campaigns have a seed";
      }
      return fail(to_grpc_status(seed.error(), ctx));
    }
    v1::RevealSeedResponse& response = new_response();
    response.set_campaign_id(request_.campaign_id());
    response.set_seed(to_hex(*seed));
    response.set_seed_commitment(seed_commitment(*seed));
    reply(response);
  }
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
      ctx.detail = entries.error().message;
      return to_grpc_status(outcome_of(entries.error().kind), ctx);
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

}  // namespace

void post_lottery_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  post_calls<DrawCall>(core, cq);
  post_calls<RevealSeedCall>(core, cq);
  post_calls<ExportDrawsCall>(core, cq);
}

}  // namespace voucherd
