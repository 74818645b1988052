// memory_claim_log.h — the claim log kept in process memory.
//
// Used by tests, benchmarks and --store=memory (a single replica whose
// vouchers die with it: fine for rehearsals, not for a real campaign).
// Completes every call inline.
//
// Thread-safety: safe from any thread; state is sharded by member and by
// code, each shard under its own mutex, so concurrent claims of different
// members rarely meet.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "engine/claim_log.h"

namespace voucherd {

class MemoryClaimLog final : public ClaimLog {
 public:
  void append_claim(ClaimLogWrite& write) override;
  void find_voucher(std::string_view code, VoucherLookup& lookup) override;

  // Vouchers recorded so far (all campaigns).
  [[nodiscard]] std::int64_t voucher_count() const {
    return voucher_count_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr std::size_t kShards = 64;
  struct alignas(64) MemberShard {
    std::mutex mu;
    // key: campaign_id + '\0' + member_id -> vouchers held, oldest first
    absl::flat_hash_map<std::string, std::vector<VoucherPtr>> held;
  };
  struct alignas(64) CodeShard {
    std::mutex mu;
    absl::flat_hash_map<std::string, VoucherPtr> by_code;
  };

  std::array<MemberShard, kShards> members_;
  std::array<CodeShard, kShards> codes_;
  std::atomic<std::int64_t> voucher_count_{0};
};

}  // namespace voucherd
