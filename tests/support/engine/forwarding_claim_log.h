// forwarding_claim_log.h — test support: a ClaimLog that forwards every call
// to a MemoryClaimLog of its own, with the hooks engine tests need to watch
// or steer the engine's side of the port.
//
// Hooks (each off unless asked for):
//   - counts: every append, find, member look-up and redeem that reaches the
//     log is counted,
//     so a test can prove bad input never touches storage;
//   - Appends::kHold: appends wait in a queue until the test completes them
//     with the status it picks (complete()), so the engine's asynchronous
//     paths (presses waiting on a claim in flight, log refusals) run in a
//     known order; a kWritten completion goes through to the memory log;
//   - lose_allocation_answers(n): the next n allocation steps are written
//     and answered UNAVAILABLE, as when Redis's reply is lost;
//   - unreadable_applications(true): reading the frozen applications
//     answers kBadReply, as a store holding one voucherd cannot read does
//     (application_reads() counts the reads);
//   - Stock::kManual: open_campaign() keeps the campaign's stock for the test
//     (stock()) instead of handing all units over at once, as a leasing log
//     does, so units arrive only when the test adds them.
//
// Usage:
//   ForwardingClaimLog log(ForwardingClaimLog::Appends::kHold);
//   ClaimEngine engine(log, clock, random, secret);
//   ... engine.claim(op);      // queued
//   log.complete(LogStatus::kWritten);
//
// Thread-safety: as MemoryClaimLog; the held queue is guarded by a mutex, the
// counters are relaxed atomics (read after the calls they count returned).
#pragma once

#include <atomic>
#include <deque>
#include <mutex>

#include "engine/claim_log.h"
#include "engine/memory_claim_log.h"

namespace voucherd::testing {

class ForwardingClaimLog final : public ClaimLog {
 public:
  enum class Appends : std::uint8_t { kForward, kHold };
  enum class Stock : std::uint8_t { kForward, kManual };

  explicit ForwardingClaimLog(Appends appends = Appends::kForward, Stock stock = Stock::kForward)
      : appends_mode_(appends), stock_mode_(stock) {}

  StoreResult<void> open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                  StoredDefinition stored) override;
  void append_claim(ClaimLogWrite& write) override;
  void find_voucher(std::string_view campaign_id, std::string_view code,
                    VoucherLookup& lookup) override;
  void redeem(std::string_view campaign_id, std::string_view code, const RedeemRequestView& request,
              VoucherRedemption& done) override;
  void cancel(std::string_view campaign_id, std::string_view code, const CancelRequestView& request,
              VoucherCancellation& done) override;
  void find_member_vouchers(std::string_view campaign_id, std::string_view member_id,
                            std::span<const std::string> known_codes,
                            MemberVouchersLookup& done) override;
  StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(std::string_view campaign_id) override;
  StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec& spec,
                                                        UnixMicros now_us) override;
  void append_draw(DrawLogWrite& write) override;
  StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec& spec) override;
  void append_application(ApplicationLogWrite& write) override;
  void find_application(const CampaignSpec& spec, std::string_view member_id,
                        ApplicationLookup& lookup) override;
  StoreResult<AllocationTurn> take_allocation(const CampaignSpec& spec,
                                              std::string_view replica) override;
  StoreResult<std::vector<ApplicationEntry>> read_applications(const CampaignSpec& spec,
                                                               const AllocationTurn& turn) override;
  StoreResult<AllocationTurn> write_allocation(const CampaignSpec& spec, const AllocationTurn& turn,
                                               std::int64_t from, std::int64_t to,
                                               std::span<const AllocatedVoucher> winners) override;
  StoreResult<ApplicationCounts> application_counts(const CampaignSpec& spec) override;
  StoreResult<ApplicationOutcomes> application_outcomes(const CampaignSpec& spec) override;

  // Calls that reached the log.
  [[nodiscard]] int appends() const { return appends_.load(std::memory_order_relaxed); }
  [[nodiscard]] int finds() const { return finds_.load(std::memory_order_relaxed); }
  [[nodiscard]] int redeems() const { return redeems_.load(std::memory_order_relaxed); }
  [[nodiscard]] int member_lookups() const {
    return member_lookups_.load(std::memory_order_relaxed);
  }
  // Allocation steps that reached the log, and making the answer of the
  // next `n` of them lost: the step is written, the caller told
  // UNAVAILABLE (as when a reply is lost on the way back).
  [[nodiscard]] int allocation_writes() const {
    return allocation_writes_.load(std::memory_order_relaxed);
  }
  void lose_allocation_answers(int n) {
    std::lock_guard lock(mu_);
    lost_allocation_writes_ = n;
  }
  void unreadable_applications(bool on) { unreadable_.store(on, std::memory_order_relaxed); }
  [[nodiscard]] int application_reads() const {
    return application_reads_.load(std::memory_order_relaxed);
  }
  // Vouchers the memory log recorded.
  [[nodiscard]] std::int64_t voucher_count() const { return memory_.voucher_count(); }

  // Appends::kHold: how many appends wait, the voucher of the oldest, and
  // completing the oldest with `status` (kWritten records it in the memory
  // log; any other status is answered with `held`).
  [[nodiscard]] std::size_t queued();
  [[nodiscard]] VoucherPtr front_voucher();
  void complete(LogStatus status, VoucherPtr held = nullptr);

  // The stock of the last campaign opened (nullptr before), to feed it
  // (note_store_holder) or, with Stock::kManual, to add units to it.
  [[nodiscard]] CampaignStock* stock() const { return stock_; }

 private:
  const Appends appends_mode_;
  const Stock stock_mode_;
  MemoryClaimLog memory_;
  CampaignStock* stock_ = nullptr;
  std::atomic<int> appends_{0};
  std::atomic<int> finds_{0};
  std::atomic<int> redeems_{0};
  std::atomic<int> member_lookups_{0};
  std::atomic<int> allocation_writes_{0};
  std::atomic<int> application_reads_{0};
  std::atomic<bool> unreadable_{false};
  std::mutex mu_;
  std::deque<ClaimLogWrite*> held_;  // guarded by mu_
  int lost_allocation_writes_ = 0;   // guarded by mu_
};

}  // namespace voucherd::testing
