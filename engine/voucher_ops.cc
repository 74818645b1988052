// voucher_ops.cc — operations on an issued voucher or a member's vouchers: look-up,
// redemption, cancellation, a member's list.
#include <algorithm>

#include "engine/check.h"
#include "engine/claim_engine.h"

namespace voucherd {

std::expected<ClaimEngine::CodeMatch, Outcome> ClaimEngine::match_code(
    std::string_view code) const {
  auto parsed = parse_code(code);
  if (!parsed) return std::unexpected(Outcome::kMistypedCode);
  const CodeFields& f = *parsed;
  // Try the MAC against each campaign carrying this tag; forged codes stop
  // here without touching the claim log.
  for (const CampaignRuntime* c = by_tag_[f.campaign_tag].load(std::memory_order_acquire);
       c != nullptr; c = c->next_same_tag_.load(std::memory_order_relaxed)) {
    if (f.sku_index >= c->spec().skus.size()) continue;
    for (std::size_t k = 0; k < c->secret_count_; ++k) {
      if (compute_mac(c->mac_keys_[f.sku_index * c->secret_count_ + k], f) == f.mac) {
        // Relaxed: a statistic (which secrets are still in use).
        verified_by_secret_[k].fetch_add(1, std::memory_order_relaxed);
        return CodeMatch{c, f.sku_index, format_code(f)};
      }
    }
  }
  return std::unexpected(Outcome::kVoucherNotFound);
}

void ClaimEngine::get_voucher(VoucherLookupOp& op) {
  op.engine_ = this;
  auto match = match_code(op.code);
  if (!match) return op.on_lookup_done(match.error(), nullptr, VoucherState::kUnspecified);
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  log_.find_voucher(op.campaign_->spec().id, op.canonical_, op);
}

void ClaimEngine::redeem(RedeemOp& op) {
  op.engine_ = this;
  auto fail = [&](Outcome o, const char* field = nullptr) {
    op.on_redeem_done(o, nullptr, false, field);
  };
  if (op.site_id.empty() || op.site_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "site_id");
  }
  if (op.request_id.size() > limits::kIdBytesMax) {
    return fail(Outcome::kInvalidArgument, "request_id");
  }
  // Mistyped codes and forged MACs stop here, before the claim log.
  auto match = match_code(op.code);
  if (!match) return fail(match.error());
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  log_.redeem(op.campaign_->spec().id, op.canonical_,
              RedeemRequestView{op.site_id, op.request_id, clock_.now_us()}, op);
}

void ClaimEngine::cancel(CancelOp& op) {
  op.engine_ = this;
  auto match = match_code(op.code);
  if (!match) return op.on_cancel_done(match.error(), nullptr);
  op.campaign_ = match->campaign;
  op.sku_ = match->sku;
  op.canonical_ = std::move(match->canonical);
  const CampaignSpec& spec = op.campaign_->spec();
  // A LOTTERY prize or an allocated pack is forfeited: its unit stays out of
  // the stock the draws or the allocation replay (audit), and the voucher
  // still counts against the member's allowance.
  const bool forfeit = spec.mode != CampaignMode::kFirstCome;
  log_.cancel(spec.id, op.canonical_,
              CancelRequestView{op.sku_, clock_.now_us(), spec.cancel_keeps_allowance || forfeit,
                                spec.per_member_limit, !forfeit},
              op);
}

void CancelOp::on_cancel_logged(CancelStatus status, VoucherPtr voucher) {
  switch (status) {
    case CancelStatus::kCancelled:
      // A forfeited prize or allocated pack stays counted: its unit does not
      // come back.
      if (campaign_->spec().mode == CampaignMode::kFirstCome) {
        campaign_->count_issued(sku_, -1);
        if (!campaign_->spec().cancel_keeps_allowance) engine_->forget_held(*voucher);
      }
      return on_cancel_done(Outcome::kOk, std::move(voucher));
    case CancelStatus::kAlreadyCancelled:
      return on_cancel_done(Outcome::kOk, std::move(voucher));
    case CancelStatus::kNotFound:
      return on_cancel_done(Outcome::kVoucherNotFound, nullptr);
    case CancelStatus::kRedeemed:
      return on_cancel_done(Outcome::kAlreadyRedeemed, std::move(voucher));
    case CancelStatus::kUnavailable:
      return on_cancel_done(Outcome::kLogUnavailable, nullptr);
  }
  check::fail("status", "every CancelStatus is handled above");
}

namespace {

// One ListMemberVouchers: a look-up per campaign, answered when all are in.
// Deleted by the last look-up to complete.
struct MemberFanout {
  struct Part final : MemberVouchersLookup {
    MemberFanout* fanout = nullptr;
    std::size_t index = 0;
    std::string campaign_id;
    std::vector<std::string> known_codes;
    std::vector<VoucherPtr> found;
    void on_member_vouchers(LookupStatus status, std::vector<VoucherPtr> vouchers) override {
      if (status == LookupStatus::kUnavailable) {
        fanout->unavailable.store(true, std::memory_order_relaxed);
      }
      found = std::move(vouchers);
      // acq_rel: the last part sees every other part's `found`.
      if (fanout->left.fetch_sub(1, std::memory_order_acq_rel) == 1) fanout->finish();
    }
  };

  void finish() {
    std::vector<VoucherPtr> all;
    for (Part& p : parts) {
      std::sort(p.found.begin(), p.found.end(), [](const VoucherPtr& a, const VoucherPtr& b) {
        return a->issued_at_us() < b->issued_at_us();
      });
      all.insert(all.end(), p.found.begin(), p.found.end());
    }
    MemberVouchersOp* done = op;
    const bool failed = unavailable.load(std::memory_order_relaxed);
    const UnixMicros at = now_us;
    delete this;
    done->on_member_vouchers_done(failed ? Outcome::kLogUnavailable : Outcome::kOk,
                                  failed ? std::vector<VoucherPtr>{} : std::move(all), at);
  }

  MemberVouchersOp* op = nullptr;
  UnixMicros now_us = 0;
  std::vector<Part> parts;
  std::atomic<std::size_t> left{0};
  std::atomic<bool> unavailable{false};
};

}  // namespace

void ClaimEngine::list_member_vouchers(MemberVouchersOp& op) {
  const UnixMicros now = clock_.now_us();
  if (op.member_id.empty() || op.member_id.size() > limits::kIdBytesMax) {
    return op.on_member_vouchers_done(Outcome::kInvalidArgument, {}, now);
  }
  std::vector<const CampaignRuntime*> targets;
  if (!op.campaign_id.empty()) {
    const CampaignRuntime* c = find_campaign(op.campaign_id);
    if (c == nullptr) return op.on_member_vouchers_done(Outcome::kCampaignNotFound, {}, now);
    targets.push_back(c);
  } else {
    targets = campaigns();
  }
  if (targets.empty()) return op.on_member_vouchers_done(Outcome::kOk, {}, now);

  auto* fanout = new MemberFanout;
  fanout->op = &op;
  fanout->now_us = now;
  fanout->parts.resize(targets.size());
  const std::size_t hash = ShardedMap<int>::hash(op.member_id);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    MemberFanout::Part& part = fanout->parts[i];
    part.fanout = fanout;
    part.index = i;
    part.campaign_id = targets[i]->spec().id;
    CampaignRuntime* c = find_mutable(part.campaign_id);
    c->members_index_.with_shard(hash, [&](MemberShard& members) {
      const MemberRecord* m = members.find(op.member_id, hash);
      if (m == nullptr) return;
      members.for_each_held(
          *m, [&](const VoucherRecord& v) { part.known_codes.emplace_back(v.code()); });
    });
  }
  const std::size_t n = targets.size();
  fanout->left.store(n, std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    // The last completion deletes `fanout`: take what the call needs first.
    MemberFanout::Part* part = &fanout->parts[i];
    log_.find_member_vouchers(part->campaign_id, op.member_id, part->known_codes, *part);
  }
}

void ClaimEngine::forget_held(const VoucherRecord& v) {
  CampaignRuntime* c = find_mutable(v.campaign_id());
  if (c != nullptr) c->forget_held(v.member_id(), v.code().view());
}

void RedeemOp::on_redeem_logged(RedeemStatus status, VoucherPtr voucher) {
  switch (status) {
    case RedeemStatus::kRedeemed:
      campaign_->count_redeemed(sku_);
      return on_redeem_done(Outcome::kOk, std::move(voucher), false, nullptr);
    case RedeemStatus::kRedeemedBefore:
      // The same request again (a retry after a lost answer): the same answer.
      if (!request_id.empty() && voucher->redeem_request_id() == request_id) {
        return on_redeem_done(Outcome::kOk, std::move(voucher), true, nullptr);
      }
      return on_redeem_done(Outcome::kAlreadyRedeemed, std::move(voucher), false, nullptr);
    case RedeemStatus::kNotFound:
      return on_redeem_done(Outcome::kVoucherNotFound, nullptr, false, nullptr);
    case RedeemStatus::kWrongSite:
      return on_redeem_done(Outcome::kWrongSite, nullptr, false, nullptr);
    case RedeemStatus::kCancelled:
      return on_redeem_done(Outcome::kVoucherCancelled, std::move(voucher), false, nullptr);
    case RedeemStatus::kExpired:
      return on_redeem_done(Outcome::kVoucherExpired, std::move(voucher), false, nullptr);
    case RedeemStatus::kUnavailable:
      return on_redeem_done(Outcome::kLogUnavailable, nullptr, false, nullptr);
  }
  check::fail("status", "every RedeemStatus is handled above");
}

void VoucherLookupOp::on_found(LookupStatus status, VoucherPtr voucher) {
  switch (status) {
    case LookupStatus::kFound:
      if (voucher->campaign_id() != campaign_->spec().id) break;  // not the record the MAC named
      return on_lookup_done(Outcome::kOk, voucher,
                            visible_state(*voucher, engine_->clock().now_us()));
    case LookupStatus::kNotFound:
      break;
    case LookupStatus::kUnavailable:
      return on_lookup_done(Outcome::kLogUnavailable, nullptr, VoucherState::kUnspecified);
  }
  on_lookup_done(Outcome::kVoucherNotFound, nullptr, VoucherState::kUnspecified);
}

}  // namespace voucherd
