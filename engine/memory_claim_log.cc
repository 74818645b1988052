#include "engine/memory_claim_log.h"

#include <absl/hash/hash.h>

#include <cassert>

namespace voucherd {
namespace {

std::size_t shard_of(std::string_view key, std::size_t shards) {
  return absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size())) & (shards - 1);
}

}  // namespace

void MemoryClaimLog::append_claim(ClaimLogWrite& write) {
  const VoucherRecord& v = *write.voucher;
  std::string member_key;
  member_key.reserve(v.campaign_id.size() + 1 + v.member_id.size());
  member_key.append(v.campaign_id).push_back('\0');
  member_key.append(v.member_id);

  VoucherPtr held;
  {
    MemberShard& shard = members_[shard_of(v.member_id, kShards)];
    std::lock_guard lock(shard.mu);
    std::vector<VoucherPtr>& list = shard.held[member_key];
    for (const VoucherPtr& h : list) {
      if (!v.request_id.empty() && h->request_id == v.request_id) held = h;
    }
    if (!held && static_cast<std::int32_t>(list.size()) >= write.per_member_limit) {
      held = list.back();
    }
    if (!held) list.push_back(write.voucher);
  }
  if (held) {
    write.on_logged(LogStatus::kDuplicate, std::move(held));
    return;
  }
  {
    CodeShard& shard = codes_[shard_of(v.code, kShards)];
    std::lock_guard lock(shard.mu);
    const bool inserted = shard.by_code.emplace(v.code, write.voucher).second;
    // 80 random bits per code: a collision means the random source is broken.
    assert(inserted);
    (void)inserted;
  }
  voucher_count_.fetch_add(1, std::memory_order_relaxed);  // a statistic only
  write.on_logged(LogStatus::kWritten, nullptr);
}

void MemoryClaimLog::find_voucher(std::string_view code, VoucherLookup& lookup) {
  VoucherPtr found;
  {
    CodeShard& shard = codes_[shard_of(code, kShards)];
    std::lock_guard lock(shard.mu);
    auto it = shard.by_code.find(absl::string_view(code.data(), code.size()));
    if (it != shard.by_code.end()) found = it->second;
  }
  if (found) {
    lookup.on_found(LookupStatus::kFound, std::move(found));
  } else {
    lookup.on_found(LookupStatus::kNotFound, nullptr);
  }
}

}  // namespace voucherd
