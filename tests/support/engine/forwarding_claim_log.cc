#include "tests/support/engine/forwarding_claim_log.h"

#include <gtest/gtest.h>

namespace voucherd::testing {

StoreResult<void> ForwardingClaimLog::open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                                    StoredDefinition stored) {
  stock_ = &stock;
  if (stock_mode_ == Stock::kManual) return {};
  return memory_.open_campaign(spec, stock, stored);
}

void ForwardingClaimLog::append_claim(ClaimLogWrite& write) {
  appends_.fetch_add(1, std::memory_order_relaxed);
  if (appends_mode_ == Appends::kHold) {
    std::lock_guard lock(mu_);
    held_.push_back(&write);
    return;
  }
  memory_.append_claim(write);
}

void ForwardingClaimLog::find_voucher(std::string_view campaign_id, std::string_view code,
                                      VoucherLookup& lookup) {
  finds_.fetch_add(1, std::memory_order_relaxed);
  memory_.find_voucher(campaign_id, code, lookup);
}

void ForwardingClaimLog::redeem(std::string_view campaign_id, std::string_view code,
                                const RedeemRequestView& request, VoucherRedemption& done) {
  redeems_.fetch_add(1, std::memory_order_relaxed);
  memory_.redeem(campaign_id, code, request, done);
}

void ForwardingClaimLog::cancel(std::string_view campaign_id, std::string_view code,
                                const CancelRequestView& request, VoucherCancellation& done) {
  memory_.cancel(campaign_id, code, request, done);
}

void ForwardingClaimLog::find_member_vouchers(std::string_view campaign_id,
                                              std::string_view member_id,
                                              std::span<const std::string> known_codes,
                                              MemberVouchersLookup& done) {
  member_lookups_.fetch_add(1, std::memory_order_relaxed);
  memory_.find_member_vouchers(campaign_id, member_id, known_codes, done);
}

StoreResult<std::vector<VoucherPtr>> ForwardingClaimLog::redeemed_vouchers(
    std::string_view campaign_id) {
  return memory_.redeemed_vouchers(campaign_id);
}

StoreResult<std::vector<std::int64_t>> ForwardingClaimLog::expired_counts(const CampaignSpec& spec,
                                                                          UnixMicros now_us) {
  return memory_.expired_counts(spec, now_us);
}

void ForwardingClaimLog::append_draw(DrawLogWrite& write) { memory_.append_draw(write); }

StoreResult<std::vector<DrawEntry>> ForwardingClaimLog::draw_entries(const CampaignSpec& spec) {
  return memory_.draw_entries(spec);
}

void ForwardingClaimLog::append_application(ApplicationLogWrite& write) {
  memory_.append_application(write);
}

void ForwardingClaimLog::find_application(const CampaignSpec& spec, std::string_view member_id,
                                          ApplicationLookup& lookup) {
  memory_.find_application(spec, member_id, lookup);
}

StoreResult<AllocationTurn> ForwardingClaimLog::take_allocation(const CampaignSpec& spec,
                                                                std::string_view replica) {
  return memory_.take_allocation(spec, replica);
}

StoreResult<std::vector<ApplicationEntry>> ForwardingClaimLog::read_applications(
    const CampaignSpec& spec, const AllocationTurn& turn) {
  application_reads_.fetch_add(1, std::memory_order_relaxed);
  if (unreadable_.load(std::memory_order_relaxed)) {
    return store_bad_reply("the test's store holds an application voucherd cannot read");
  }
  return memory_.read_applications(spec, turn);
}

StoreResult<AllocationTurn> ForwardingClaimLog::write_allocation(
    const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from, std::int64_t to,
    std::span<const AllocatedVoucher> winners) {
  allocation_writes_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    if (lost_allocation_writes_ > 0) {
      --lost_allocation_writes_;
      // The store applies the step, and its answer is lost on the way back.
      (void)memory_.write_allocation(spec, turn, from, to, winners);
      return store_unavailable("the test lost the store's answer");
    }
  }
  return memory_.write_allocation(spec, turn, from, to, winners);
}

StoreResult<ApplicationCounts> ForwardingClaimLog::application_counts(const CampaignSpec& spec) {
  return memory_.application_counts(spec);
}

StoreResult<ApplicationOutcomes> ForwardingClaimLog::application_outcomes(
    const CampaignSpec& spec) {
  return memory_.application_outcomes(spec);
}

std::size_t ForwardingClaimLog::queued() {
  std::lock_guard lock(mu_);
  return held_.size();
}

VoucherPtr ForwardingClaimLog::front_voucher() {
  std::lock_guard lock(mu_);
  return held_.empty() ? nullptr : held_.front()->voucher;
}

void ForwardingClaimLog::complete(LogStatus status, VoucherPtr held) {
  ClaimLogWrite* w = nullptr;
  {
    std::lock_guard lock(mu_);
    ASSERT_FALSE(held_.empty()) << "complete() with no append held";
    w = held_.front();
    held_.pop_front();
  }
  if (status == LogStatus::kWritten) {
    memory_.append_claim(*w);  // records it and completes it with kWritten
  } else {
    w->on_logged(status, std::move(held));
  }
}

}  // namespace voucherd::testing
