// workloads.cc — each voucher-load mode's calls (Claim, ClaimBatch, Draw,
// Apply, GetApplication, Redeem) and workloads (the crowd's presses, the
// applicants' outcomes, redemptions, mixed), and the
// factories load.cc builds a phase's workload with.
#include "bench/load/workloads.h"

#include <algorithm>
#include <random>

namespace voucherd::load::detail {
namespace {

// The crowd: every member once, then repeats of random members, shuffled.
std::vector<std::int64_t> make_crowd(const LoadOptions& o) {
  std::vector<std::int64_t> crowd;
  const auto repeats = static_cast<std::int64_t>(o.repeat_share * static_cast<double>(o.members));
  crowd.reserve(static_cast<std::size_t>(o.members + repeats));
  for (std::int64_t m = 0; m < o.members; ++m) crowd.push_back(o.member_first + m);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::int64_t> pick(0, std::max<std::int64_t>(0, o.members - 1));
  for (std::int64_t i = 0; i < repeats; ++i) crowd.push_back(o.member_first + pick(rng));
  std::shuffle(crowd.begin(), crowd.end(), rng);
  return crowd;
}

// ---- claim mode: VoucherService.Claim, one member per call ----

class ClaimCall final : public Call {
 public:
  ClaimCall(const LoadOptions& o, std::string member) {
    request.set_campaign_id(o.campaign_id);
    request.set_member_id(std::move(member));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncClaim(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_claimed(w, request.member_id(), response, now);
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::ClaimRequest request;
  v1::ClaimResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimResponse>> reader;
};

// ---- claim mode with --batch: VoucherService.ClaimBatch ----

class ClaimBatchCall final : public Call {
 public:
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncClaimBatch(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  // Up to 1,000 claims and results of a few strings each: on one arena
  // rather than thousands of small allocations.
  google::protobuf::Arena arena;
  v1::ClaimBatchRequest& request =
      *google::protobuf::Arena::CreateMessage<v1::ClaimBatchRequest>(&arena);
  v1::ClaimBatchResponse& response =
      *google::protobuf::Arena::CreateMessage<v1::ClaimBatchResponse>(&arena);
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    std::vector<std::int64_t> again;
    const int n = request.claims_size();
    if (!status.ok() || response.results_size() != n) {
      // The whole call failed (or answered the wrong number of results:
      // counted as INTERNAL for every claim).
      const auto code = status.ok() ? grpc::StatusCode::INTERNAL : status.error_code();
      if (send_again(w, *this, code)) return work;
      const std::string reason = status.ok() ? "WRONG_RESULT_COUNT" : w.reasons.reason(status);
      for (int i = 0; i < n; ++i) tally_refusal(w, code, reason, now);
      return {};
    }
    for (int i = 0; i < n; ++i) {
      const v1::ClaimResult& r = response.results(i);
      const auto code = static_cast<grpc::StatusCode>(r.code());
      if (code == grpc::StatusCode::OK) {
        tally_claimed(w, request.claims(i).member_id(), r.response(), now);
      } else if (send_again(w, *this, code)) {
        again.push_back(work[static_cast<std::size_t>(i)]);
      } else {
        tally_refusal(w, code, r.reason(), now);
      }
    }
    return again;
  }

  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ClaimBatchResponse>> reader;
};

// ---- draw mode: VoucherService.Draw of a LOTTERY campaign ----

class DrawCall final : public Call {
 public:
  DrawCall(const LoadOptions& o, std::string member, std::int64_t index) {
    request.set_campaign_id(o.campaign_id);
    request.set_member_id(std::move(member));
    // The draw's place in the run: a retry of this call is the same draw.
    request.set_request_id("load-draw-" + std::to_string(index));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncDraw(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_ok(w, now);
      if (response.won()) {
        tally_issued(w, request.member_id(), response.voucher(), now);
      } else {
        ++w.tally.reasons[v1::NoPrizeReason_Name(response.reason())];
      }
      return {};
    }
    const std::string reason = w.reasons.reason(status);
    // The day's draws used up is final for the day: not a "retry shortly".
    if (reason != "DAILY_DRAW_LIMIT" && send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), reason, now);
    return {};
  }

  v1::DrawRequest request;
  v1::DrawResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::DrawResponse>> reader;
};

class ClaimWorkload final : public Workload {
 public:
  explicit ClaimWorkload(const LoadOptions& o) : options_(o), crowd_(make_crowd(o)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    if (options_.mode == Mode::kDraw) {
      auto call = std::make_unique<DrawCall>(options_, member(work.front()), work.front());
      call->work = std::move(work);
      return call;
    }
    if (options_.batch > 0) {
      auto call = std::make_unique<ClaimBatchCall>();
      for (std::int64_t i : work) {
        v1::ClaimRequest* claim = call->request.add_claims();
        claim->set_campaign_id(options_.campaign_id);
        claim->set_member_id(member(i));
      }
      call->work = std::move(work);
      return call;
    }
    auto call = std::make_unique<ClaimCall>(options_, member(work.front()));
    call->work = std::move(work);
    return call;
  }
  int work_per_call() const override { return std::max(1, options_.batch); }
  [[nodiscard]] std::int64_t crowd_size() const { return static_cast<std::int64_t>(crowd_.size()); }
  [[nodiscard]] std::string member(std::int64_t i) const {
    const auto n = crowd_.size();
    return options_.member_prefix + std::to_string(crowd_[static_cast<std::size_t>(i) % n]);
  }

 private:
  const LoadOptions& options_;
  std::vector<std::int64_t> crowd_;
};

// ---- redeem mode: VoucherService.Redeem of issued codes ----

class RedeemCall final : public Call {
 public:
  RedeemCall(std::string code, std::string site) {
    // The request id is the code's own: a second redemption of a code by
    // this harness is a retry of the first, and must come back
    // already_redeemed, never as a second redemption.
    request.set_request_id("load-" + code);
    request.set_code(std::move(code));
    request.set_site_id(std::move(site));
  }
  void start(Worker& w) override {
    w.prepare(*this, w.options.site_token);
    reader = w.stub->AsyncRedeem(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      w.tally.count_code(grpc::StatusCode::OK);
      ++w.tally.answers;
      ++w.second(now).ok;
      if (response.already_redeemed()) {
        ++w.tally.already_redeemed;
      } else {
        ++w.tally.redeemed;
        ++w.tally.fresh_redemptions[request.code()];
      }
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::RedeemRequest request;
  v1::RedeemResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::RedeemResponse>> reader;
};

class RedeemWorkload final : public Workload {
 public:
  explicit RedeemWorkload(std::vector<std::pair<std::string, std::string>> codes)
      : codes_(std::move(codes)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    const auto& [code, site] = codes_[static_cast<std::size_t>(work.front()) % codes_.size()];
    auto call = std::make_unique<RedeemCall>(code, site);
    call->work = std::move(work);
    return call;
  }

 private:
  std::vector<std::pair<std::string, std::string>> codes_;  // (code, site)
};

// ---- apply mode: VoucherService.Apply, then GetApplication ----

class ApplyCall final : public Call {
 public:
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncApply(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_ok(w, now);
      ++w.tally.reasons[response.already_applied() ? "ALREADY_APPLIED"
                        : response.replaced()      ? "REPLACED"
                                                   : "APPLIED"];
      w.tally.applicants.push_back(request.member_id());
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::ApplyRequest request;
  v1::ApplyResponse response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ApplyResponse>> reader;
};

class ApplyWorkload final : public Workload {
 public:
  ApplyWorkload(const LoadOptions& o, std::vector<std::string> sku_ids)
      : options_(o), crowd_(make_crowd(o)), sku_ids_(std::move(sku_ids)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    const std::int64_t i = work.front();
    const std::int64_t number = crowd_[static_cast<std::size_t>(i) % crowd_.size()];
    // Two kinds of press per member, by the press's place in the run: the
    // same kind again is a retry of the same application, the other kind
    // replaces it with other preferences.
    const int kind = static_cast<int>(i % 2);
    auto call = std::make_unique<ApplyCall>();
    call->request.set_campaign_id(options_.campaign_id);
    call->request.set_member_id(options_.member_prefix + std::to_string(number));
    call->request.set_request_id(call->request.member_id() + "-" + std::to_string(kind + 1));
    std::mt19937_64 rng(options_.seed ^
                        (static_cast<std::uint64_t>(number) * 2 + kind) * 0x9e3779b97f4a7c15ULL);
    const std::size_t wanted =
        std::min(sku_ids_.size(), static_cast<std::size_t>(std::max(0, options_.preferences)));
    std::vector<std::size_t> chosen;
    std::uniform_int_distribution<std::size_t> pick(0, sku_ids_.empty() ? 0 : sku_ids_.size() - 1);
    while (chosen.size() < wanted) {
      const std::size_t s = pick(rng);
      if (std::find(chosen.begin(), chosen.end(), s) == chosen.end()) chosen.push_back(s);
    }
    for (std::size_t s : chosen) call->request.add_preferred_sku_ids(sku_ids_[s]);
    call->work = std::move(work);
    return call;
  }
  [[nodiscard]] std::int64_t crowd_size() const { return static_cast<std::int64_t>(crowd_.size()); }

 private:
  const LoadOptions& options_;
  std::vector<std::int64_t> crowd_;
  std::vector<std::string> sku_ids_;
};

class ApplicationCall final : public Call {
 public:
  void start(Worker& w) override {
    w.prepare(*this, w.options.app_token);
    reader = w.stub->AsyncGetApplication(&ctx, request, &w.cq);
    reader->Finish(&response, &status, this);
  }
  std::vector<std::int64_t> finish(Worker& w, Clock::time_point now) override {
    if (status.ok()) {
      tally_ok(w, now);
      ++w.tally.reasons[v1::ApplicationState_Name(response.state())];
      if (response.state() == v1::APPLICATION_STATE_SELECTED) {
        tally_issued(w, request.member_id(), response.voucher(), now);
        ++w.tally.won_per_sku[response.voucher().sku_id()];
      }
      return {};
    }
    if (send_again(w, *this, status.error_code())) return work;
    tally_refusal(w, status.error_code(), w.reasons.reason(status), now);
    return {};
  }

  v1::GetApplicationRequest request;
  v1::Application response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::Application>> reader;
};

class ResultsWorkload final : public Workload {
 public:
  ResultsWorkload(const LoadOptions& o, std::vector<std::string> members)
      : options_(o), members_(std::move(members)) {}
  std::unique_ptr<Call> make(Worker&, std::vector<std::int64_t> work) override {
    auto call = std::make_unique<ApplicationCall>();
    call->request.set_campaign_id(options_.campaign_id);
    call->request.set_member_id(members_[static_cast<std::size_t>(work.front()) % members_.size()]);
    call->work = std::move(work);
    return call;
  }

 private:
  const LoadOptions& options_;
  std::vector<std::string> members_;
};

// ---- mixed mode: claims, and each thread redeems the vouchers it got ----

class MixedWorkload final : public Workload {
 public:
  explicit MixedWorkload(const LoadOptions& o) : options_(o), claims_(o) {}
  std::unique_ptr<Call> make(Worker& w, std::vector<std::int64_t> work) override {
    std::uniform_real_distribution<double> coin(0, 1);
    if (!w.to_redeem.empty() && coin(w.rng) < options_.mixed_redeem_share) {
      auto [code, site] = std::move(w.to_redeem.front());
      w.to_redeem.pop_front();
      auto call = std::make_unique<RedeemCall>(std::move(code), std::move(site));
      call->work = std::move(work);
      return call;
    }
    return claims_.make(w, std::move(work));
  }
  [[nodiscard]] std::int64_t crowd_size() const { return claims_.crowd_size(); }

 private:
  const LoadOptions& options_;
  ClaimWorkload claims_;
};

}  // namespace

CrowdWorkload make_crowd_workload(const LoadOptions& o) {
  if (o.mode == Mode::kMixed) {
    auto mixed = std::make_unique<MixedWorkload>(o);
    const std::int64_t crowd_size = mixed->crowd_size();
    return {std::move(mixed), crowd_size, "mixed"};
  }
  auto claims = std::make_unique<ClaimWorkload>(o);
  const std::int64_t crowd_size = claims->crowd_size();
  const char* name = o.mode == Mode::kDraw ? "draw" : o.batch > 0 ? "claim-batch" : "claim";
  return {std::move(claims), crowd_size, name};
}

CrowdWorkload make_apply_workload(const LoadOptions& o, std::vector<std::string> sku_ids) {
  auto applications = std::make_unique<ApplyWorkload>(o, std::move(sku_ids));
  const std::int64_t crowd_size = applications->crowd_size();
  return {std::move(applications), crowd_size, "apply"};
}

std::unique_ptr<Workload> make_results_workload(const LoadOptions& o,
                                                std::vector<std::string> members) {
  return std::make_unique<ResultsWorkload>(o, std::move(members));
}

std::unique_ptr<Workload> make_redeem_workload(
    std::vector<std::pair<std::string, std::string>> codes) {
  return std::make_unique<RedeemWorkload>(std::move(codes));
}

}  // namespace voucherd::load::detail
