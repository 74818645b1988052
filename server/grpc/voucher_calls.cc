// voucher_calls.cc — the RPCs on one voucher or one member: GetVoucher, Redeem and
// ListMemberVouchers (VoucherService), CancelVoucher and ExportRedemptions
// (AdminService).
#include <algorithm>
#include <tuple>

#include "server/grpc/call.h"

namespace voucherd {
namespace {

// A code that proved not to be a voucher counts against `caller`; past the
// budget its answer turns into RESOURCE_EXHAUSTED for the cool-down (with
// its rest as the RetryInfo), so a guesser learns nothing more. Redemptions
// and lookups share one budget per caller.
std::optional<grpc::Status> guess_refused(RedeemGuard& guard, const std::string& caller) {
  const auto now = RedeemGuard::Clock::now();
  guard.failed(caller, now);
  auto allowed = guard.check(caller, now);
  if (allowed) return std::nullopt;
  StatusContext ctx;
  ctx.detail = "retry in " + std::to_string(allowed.error().count()) + " s";
  ctx.retry_delay = allowed.error();
  return to_grpc_status(Outcome::kRedeemThrottled, ctx);
}

// The guard's name for a caller: its token with --auth-file; without one,
// what names it best (the site it redeems for, the address it calls from).
std::string guard_key(const std::optional<Principal>& principal, std::string_view fallback) {
  return principal ? principal->token_hash : std::string(fallback);
}

class GetVoucherCall final : public UnaryCall<GetVoucherCall, v1::GetVoucherRequest, v1::Voucher>,
                             private VoucherLookupOp {
 public:
  using UnaryCall::UnaryCall;
  static constexpr Access kAccess = Access::kLookup;
  static constexpr Rpc kRpc = Rpc::kGetVoucher;
  void request() {
    core_.voucher_service.RequestGetVoucher(&ctx_, &request_, &responder_, cq_, cq_, this);
  }
  void handle() {
    if (auto refused = check_request(request_)) return fail(*refused);
    code = request_.code();
    core_.engine.get_voucher(*this);
  }

 private:
  void on_lookup_done(Outcome outcome, VoucherPtr voucher, VoucherState visible) override {
    if (outcome == Outcome::kVoucherNotFound) {
      if (auto refused =
              guess_refused(core_.redeem_guard, guard_key(principal_, "peer:" + peer_host(ctx_)))) {
        return fail(*refused);
      }
    }
    // A site sees its own vouchers only.
    if (outcome == Outcome::kOk && principal_ && principal_->role == Role::kSite &&
        voucher->site_id() != principal_->site_id) {
      return fail(permission_denied("this voucher belongs to another site than the token's (\"" +
                                    principal_->site_id + "\")"));
    }
    if (outcome == Outcome::kOk) {
      v1::Voucher& response = new_response();
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
    if (auto refused = check_request(request_)) return fail(*refused);
    // A site token redeems for its own site only.
    if (principal_ && !request_.site_id().empty() && request_.site_id() != principal_->site_id) {
      return fail(permission_denied("a token of site " + quoted_input(principal_->site_id) +
                                    " may not redeem for site " +
                                    quoted_input(request_.site_id())));
    }
    // The guard knows a caller by its token (by the site it names, without
    // --auth-file).
    guard_key_ = guard_key(principal_, "site:" + request_.site_id());
    code = request_.code();
    site_id = request_.site_id();
    request_id = request_.request_id();
    core_.engine.redeem(*this);
  }

 private:
  void on_redeem_done(Outcome outcome, VoucherPtr voucher, bool already_redeemed,
                      const char* field) override {
    // A real voucher is never throttled; only a fresh redemption starts the
    // caller's count again (a replay changes nothing, so it proves nothing).
    if (outcome == Outcome::kVoucherNotFound) {
      if (auto refused = guess_refused(core_.redeem_guard, guard_key_)) {
        count(Outcome::kRedeemThrottled, voucher);
        return fail(*refused);
      }
    } else if (outcome == Outcome::kOk && !already_redeemed) {
      core_.redeem_guard.succeeded(guard_key_, RedeemGuard::Clock::now());
    }
    count(outcome, voucher);
    if (outcome == Outcome::kOk) {
      v1::RedeemResponse& response = new_response();
      voucher_to_proto(*voucher, VoucherState::kRedeemed, response.mutable_voucher());
      response.set_already_redeemed(already_redeemed);
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = field != nullptr ? field : "code";
    ctx.site_id = request_.site_id();
    if (voucher) {
      ctx.campaign_id = voucher->campaign_id();
      ctx.sku_id = voucher->sku_id();
    }
    if (outcome == Outcome::kAlreadyRedeemed && voucher) {
      ctx.detail = "at " + timestamp_text(voucher->redeemed_at_us()) + " by site \"" +
                   voucher->redeemed_site_id() + "\"";
    } else if (outcome == Outcome::kVoucherExpired && voucher) {
      ctx.detail = "it expired at " + timestamp_text(voucher->expires_at_us());
    }
    fail(to_grpc_status(outcome, ctx));
  }

  // A redemption counts under its voucher's campaign; a code that is not a
  // voucher has none, and counts under "(unknown)".
  void count(Outcome outcome, const VoucherPtr& voucher) {
    if (core_.metrics == nullptr) return;
    core_.metrics->count_redemption(voucher ? std::string_view(voucher->campaign_id()) : "",
                                    outcome);
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
    if (auto refused = check_request(request_)) return fail(*refused);
    member_id = request_.member_id();
    campaign_id = request_.campaign_id();
    core_.engine.list_member_vouchers(*this);
  }

 private:
  void on_member_vouchers_done(Outcome outcome, std::vector<VoucherPtr> vouchers,
                               UnixMicros now_us) override {
    if (outcome == Outcome::kOk) {
      v1::ListMemberVouchersResponse& response = new_response();
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
    if (auto refused = check_request(request_)) return fail(*refused);
    code = request_.code();
    core_.engine.cancel(*this);
  }

 private:
  void on_cancel_done(Outcome outcome, VoucherPtr voucher) override {
    if (outcome == Outcome::kOk) {
      v1::Voucher& response = new_response();
      voucher_to_proto(*voucher, voucher->state(), &response);
      return reply(response);
    }
    StatusContext ctx;
    ctx.field = "code";
    if (outcome == Outcome::kAlreadyRedeemed) ctx.detail = "a redeemed voucher cannot be cancelled";
    fail(to_grpc_status(outcome, ctx));
  }
};

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
      ctx.detail = records.error().message;
      return to_grpc_status(outcome_of(records.error().kind), ctx);
    }
    for (VoucherPtr& v : *records) {
      if (request_.site_id().empty() || v->site_id() == request_.site_id()) {
        records_.push_back(std::move(v));
      }
    }
    std::sort(records_.begin(), records_.end(), [](const VoucherPtr& a, const VoucherPtr& b) {
      if (a->site_id() != b->site_id()) return a->site_id() < b->site_id();
      if (a->sku_id() != b->sku_id()) return a->sku_id() < b->sku_id();
      return a->packed_code() < b->packed_code();  // the codes' text order
    });
    return std::nullopt;
  }
  bool next(v1::RedemptionRecord& r) {
    if (next_ == records_.size()) return false;
    const VoucherRecord& v = *records_[next_++];
    const CodeString code = v.code();
    r.set_code(code.data(), code.size());
    r.set_campaign_id(v.campaign_id());
    r.set_site_id(v.site_id());
    r.set_sku_id(v.sku_id());
    r.set_sku_kind(static_cast<v1::SkuKind>(v.sku_kind()));
    r.set_member_id(v.member_id().data(), v.member_id().size());
    r.set_face_value_cents(v.face_value_cents());
    timestamp_to_proto(v.issued_at_us(), r.mutable_issued_at());
    timestamp_to_proto(v.redeemed_at_us(), r.mutable_redeemed_at());
    r.set_redeem_request_id(v.redeem_request_id());
    return true;
  }

 private:
  std::vector<VoucherPtr> records_;
  std::size_t next_ = 0;
};

}  // namespace

void post_voucher_calls(GrpcServer::Core& core, grpc::ServerCompletionQueue* cq) {
  post_calls<GetVoucherCall>(core, cq);
  post_calls<RedeemCall>(core, cq);
  post_calls<ListMemberVouchersCall>(core, cq);
  post_calls<CancelVoucherCall>(core, cq);
  post_calls<ExportRedemptionsCall>(core, cq);
}

}  // namespace voucherd
