// apply_calls.cc — the RPCs of APPLY_THEN_DRAW campaigns: Apply and
// GetApplication (VoucherService), ExportApplications (AdminService).
#include "server/grpc/call.h"

namespace voucherd {
namespace {

// Like a claim (claim_calls.cc), an application written by the claim log's
// writer is answered on the call's own queue thread.
class ApplyCall final : public UnaryCall<ApplyCall, v1::ApplyRequest, v1::ApplyResponse>,
                        private ApplyOp,
                        private HandedBack {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kApply;
  void request() {
    core_.voucher_service.RequestApply(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) {
      if (core_.metrics != nullptr) core_.metrics->count_apply({}, Outcome::kInvalidArgument);
      return fail(*refused);
    }
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    request_id = request_.request_id();
    // check_request() bounded the count.
    const auto n = static_cast<std::size_t>(request_.preferred_sku_ids_size());
    for (std::size_t i = 0; i < n; ++i) {
      preferences_[i] = request_.preferred_sku_ids(static_cast<int>(i));
    }
    preferred_sku_ids = std::span<const std::string_view>(preferences_.data(), n);
    core_.engine.apply(*this);
  }

 private:
  void on_apply_done(const ApplicationResult& r) override {
    if (!on_own_thread()) {
      decided_ = r;
      return inbox_->post(this);
    }
    answer(r);
  }
  void resume() override { answer(decided_); }

  void answer(const ApplicationResult& r) {
    if (core_.metrics != nullptr) core_.metrics->count_apply(request_.campaign_id(), r.outcome);
    if (r.outcome == Outcome::kOk) {
      // The campaign is loaded: the engine found it to take the application.
      const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
      v1::ApplyResponse& response = new_response();
      application_to_proto(c->spec(), r, core_.engine.clock().now_us(),
                           response.mutable_application());
      response.set_replaced(r.replaced);
      response.set_already_applied(r.repeat);
      return reply(response);
    }
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    if (r.field != nullptr) ctx.field = r.field;
    if (r.outcome == Outcome::kSkuNotFound) ctx.sku_id = r.sku_id;
    if (r.outcome == Outcome::kWrongMode) {
      ctx.detail = wrong_mode_detail(core_.engine, request_.campaign_id());
    }
    if (r.outcome == Outcome::kClosed) ctx.detail = closed_detail();
    fail(to_grpc_status(r.outcome, ctx));
  }

  // Why applications are closed: the window ended, or the allocation began
  // (which is at or after the window's end, so the end is always the news).
  std::string closed_detail() const {
    const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
    if (c == nullptr) return {};
    return "applications closed at " + timestamp_text(c->spec().ends_at_us) +
           "; the packs are allocated at " + timestamp_text(c->spec().allocation_at_us);
  }

  // The views preferred_sku_ids hands the engine, into request_.
  std::array<std::string_view, limits::kApplicationPreferencesMax> preferences_{};
  ApplicationResult decided_;  // a decision made on another thread, until resume()
};

class GetApplicationCall final
    : public UnaryCall<GetApplicationCall, v1::GetApplicationRequest, v1::Application>,
      private ApplicationLookupOp,
      private HandedBack {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kApp;
  static constexpr Rpc kRpc = Rpc::kGetApplication;
  void request() {
    core_.voucher_service.RequestGetApplication(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    campaign_id = request_.campaign_id();
    member_id = request_.member_id();
    core_.engine.get_application(*this);
  }

 private:
  void on_application_done(const ApplicationResult& r) override {
    if (!on_own_thread()) {
      decided_ = r;
      return inbox_->post(this);
    }
    answer(r);
  }
  void resume() override { answer(decided_); }

  void answer(const ApplicationResult& r) {
    if (r.outcome == Outcome::kOk) {
      const CampaignRuntime* c = core_.engine.find_campaign(request_.campaign_id());
      v1::Application& response = new_response();
      application_to_proto(c->spec(), r, core_.engine.clock().now_us(), &response);
      return reply(response);
    }
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    if (r.field != nullptr) ctx.field = r.field;
    if (r.outcome == Outcome::kWrongMode) {
      ctx.detail = wrong_mode_detail(core_.engine, request_.campaign_id());
    }
    fail(to_grpc_status(r.outcome, ctx));
  }

  ApplicationResult decided_;  // a decision made on another thread, until resume()
};

// Every application of an APPLY_THEN_DRAW campaign and what it got, ordered
// by member (AdminService): read whole from the store on the admin worker,
// then streamed.
class ExportApplicationsCall final
    : public ExportCall<ExportApplicationsCall, v1::ExportApplicationsRequest,
                        v1::ApplicationRecord> {
 public:
  using ExportCall::ExportCall;
  static constexpr Rpc kRpc = Rpc::kExportApplications;
  void request() {
    core_.admin_service.RequestExportApplications(&ctx_, &request_, &writer_, cq_, cq_, this);
  }
  std::optional<grpc::Status> load(const CampaignRuntime& c) {
    StatusContext ctx;
    ctx.campaign_id = request_.campaign_id();
    if (c.spec().mode != CampaignMode::kApplyThenDraw) {
      ctx.detail = "only APPLY_THEN_DRAW campaigns have applications";
      return to_grpc_status(Outcome::kWrongMode, ctx);
    }
    auto read = core_.engine.application_outcomes(c.spec());
    if (!read) {
      ctx.detail = read.error().message;
      return to_grpc_status(outcome_of(read.error().kind), ctx);
    }
    spec_ = &c.spec();
    read_ = std::move(*read);
    return std::nullopt;
  }
  bool next(v1::ApplicationRecord& r) {
    if (next_ == read_.outcomes.size()) return false;
    application_outcome_to_proto(*spec_, read_.outcomes[next_++], read_.allocation_done, &r);
    return true;
  }

 private:
  const CampaignSpec* spec_ = nullptr;
  ApplicationOutcomes read_;
  std::size_t next_ = 0;
};

}  // namespace

void post_apply_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  post_calls<ApplyCall>(core, cq);
  post_calls<GetApplicationCall>(core, cq);
  post_calls<ExportApplicationsCall>(core, cq);
}

}  // namespace voucherd
