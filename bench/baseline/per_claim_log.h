// per_claim_log.h — the benchmark baseline: the claim log written the way
// most flash-sale services write it. Every claim is one Lua script call of
// its own (check the member, check and decrement the SKU's stock, write the
// voucher), sent from a pool of connections, one blocking round trip per
// claim, no batching and no leasing.
//
// It exists to be measured against RedisClaimLog behind the same gRPC front
// (bench/compare_stores.sh: voucherd-baseline --store=redis-per-claim). It
// serves one replica: the engine gets the whole stock at open, and the
// script's stock check only guards the shared record. Keys use the prefix "vdb:" so a baseline run
// never touches the real store's keys.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "engine/claim_log.h"
#include "server/redis/connection.h"
#include "server/store/store.h"

namespace voucherd::redis {

struct PerClaimLogOptions {
  Endpoint endpoint;
  std::size_t connections = 16;  // worker threads, one connection each
  std::chrono::milliseconds io_timeout{2000};
  std::size_t queue_max = 0;  // 0: limits::kClaimLogQueueMax
};

class PerClaimRedisLog final : public ClaimLog, public Store {
 public:
  explicit PerClaimRedisLog(PerClaimLogOptions options);
  ~PerClaimRedisLog() override;

  // Store: one replica; the engine's counts are the store's.
  [[nodiscard]] std::string_view kind() const override { return "redis-per-claim"; }
  [[nodiscard]] std::string_view replica_id() const override { return "baseline"; }
  [[nodiscard]] ClaimLog& claim_log() override { return *this; }
  void start() override;
  // Lets queued calls finish, then stops the workers.
  void stop() override;

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
  // Scans the campaign's records (the baseline keeps no expiry buckets).
  StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec& spec,
                                                        UnixMicros now_us) override;
  // The baseline measures claims only: it refuses LOTTERY campaigns at
  // open_campaign, so no draw ever reaches it.
  void append_draw(DrawLogWrite& write) override;
  StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec& spec) override;
  // APPLY_THEN_DRAW campaigns are refused by open_campaign: never called
  // through the engine; answered UNAVAILABLE (the allocation: kUnsupported).
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

 private:
  struct Lookup {
    std::string campaign_id;
    std::string code;
    VoucherLookup* lookup;
  };
  struct Redemption {
    std::string campaign_id;
    std::string code;
    std::string site_id;
    std::string request_id;
    UnixMicros now_us;
    VoucherRedemption* done;
  };
  struct Cancellation {
    std::string campaign_id;
    std::string code;
    CancelRequestView request;
    VoucherCancellation* done;
  };
  struct MemberLookup {
    std::string campaign_id;
    std::string member_id;
    MemberVouchersLookup* done;
  };
  using Job = std::variant<ClaimLogWrite*, Lookup, Redemption, Cancellation, MemberLookup>;

  void worker_loop();
  void run_claim(Connection& conn, ClaimLogWrite& write);
  void run_lookup(Connection& conn, const Lookup& lookup);
  void run_redemption(Connection& conn, const Redemption& redemption);
  void run_cancellation(Connection& conn, const Cancellation& cancellation);
  void run_member_lookup(Connection& conn, const MemberLookup& lookup);
  bool enqueue(Job job);

  PerClaimLogOptions options_;
  std::size_t queue_max_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::mutex stocks_mu_;  // guards stocks_: the engine's stock of each campaign
  std::unordered_map<std::string, CampaignStock*> stocks_;
};

}  // namespace voucherd::redis
