#include "engine/inventory.h"

#include <algorithm>
#include <bit>

#include "engine/check.h"

namespace voucherd {

Inventory::Inventory(std::span<const std::int64_t> units)
    : sku_count_(static_cast<std::uint32_t>(units.size())),
      word_count_(static_cast<std::uint32_t>((units.size() + 63) / 64)),
      counters_(std::make_unique<Counter[]>(units.size())) {
  VOUCHERD_CHECK(units.size() <= limits::kSkusPerCampaignMax,
                 "validation bounds a campaign's SKUs by kSkusPerCampaignMax");
  for (std::size_t i = 0; i < units.size(); ++i) {
    VOUCHERD_CHECK(units[i] >= 0, "a SKU's stock never goes below zero");
    counters_[i].units.store(units[i], std::memory_order_relaxed);
    if (units[i] > 0)
      has_stock_[i / 64].fetch_or(std::uint64_t{1} << (i % 64), std::memory_order_relaxed);
  }
  // The constructor publishes through whatever hands the Inventory to other
  // threads (the campaign registry's release store).
}

bool Inventory::take(std::uint32_t sku) {
  VOUCHERD_DCHECK(sku < sku_count_, "a SKU index comes from this campaign's spec");
  std::atomic<std::int64_t>& c = counters_[sku].units;
  // Relaxed: the counter guards no other memory; each CAS is atomic on its own
  // location and only succeeds from a positive value, which is all the
  // no-oversell invariant needs.
  std::int64_t cur = c.load(std::memory_order_relaxed);
  while (cur > 0) {
    if (c.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed)) {
      if (cur == 1) clear_bit_if_empty(sku);
      return true;
    }
  }
  return false;
}

std::uint32_t Inventory::take_any(std::uint32_t hint) {
  if (word_count_ == 0) return kNoSku;
  const std::uint32_t start_word = (hint / 64) % word_count_;
  const std::uint32_t start_bit = hint % 64;
  for (std::uint32_t w = 0; w < word_count_; ++w) {
    const std::uint32_t word = (start_word + w) % word_count_;
    // Acquire pairs with give_back()'s release: a bit seen set implies its
    // counter increment is visible.
    std::uint64_t bits = has_stock_[word].load(std::memory_order_acquire);
    // Rotate so the search starts at the hint's bit within the first word.
    const std::uint32_t rot = (w == 0) ? start_bit : 0;
    std::uint64_t rotated = std::rotr(bits, static_cast<int>(rot));
    while (rotated != 0) {
      const auto k = static_cast<std::uint32_t>(std::countr_zero(rotated));
      rotated &= rotated - 1;
      const std::uint32_t sku = word * 64 + ((k + rot) % 64);
      if (sku >= sku_count_) continue;
      if (take(sku)) return sku;
      clear_bit_if_empty(sku);  // a stale bit: drop it so sold_out() can become true
    }
  }
  return kNoSku;
}

void Inventory::give_back(std::uint32_t sku, std::int64_t units) {
  VOUCHERD_DCHECK(sku < sku_count_, "a SKU index comes from this campaign's spec");
  VOUCHERD_CHECK(units > 0, "only units taken (a positive count) are given back");
  const std::int64_t before = counters_[sku].units.fetch_add(units, std::memory_order_relaxed);
  VOUCHERD_DCHECK(before >= 0, "a SKU's stock never goes below zero");
  // Release: a taker that acquires this bit sees the units just added.
  has_stock_[sku / 64].fetch_or(std::uint64_t{1} << (sku % 64), std::memory_order_release);
}

void Inventory::clear_bit_if_empty(std::uint32_t sku) {
  const std::uint64_t mask = std::uint64_t{1} << (sku % 64);
  // acq_rel: if a give_back() set the bit before this clear, we read its
  // release and the re-check below sees its units; if it sets the bit after,
  // the bit stays set. Either way a SKU with units keeps its bit.
  has_stock_[sku / 64].fetch_and(~mask, std::memory_order_acq_rel);
  if (counters_[sku].units.load(std::memory_order_relaxed) > 0) {
    has_stock_[sku / 64].fetch_or(mask, std::memory_order_release);
  }
}

std::int64_t Inventory::take_up_to(std::uint32_t sku, std::int64_t max) {
  VOUCHERD_DCHECK(sku < sku_count_, "a SKU index comes from this campaign's spec");
  std::atomic<std::int64_t>& c = counters_[sku].units;
  std::int64_t cur = c.load(std::memory_order_relaxed);
  while (cur > 0 && max > 0) {
    const std::int64_t n = std::min(cur, max);
    // Relaxed, as in take(): atomic on its own location, never below zero.
    if (c.compare_exchange_weak(cur, cur - n, std::memory_order_relaxed)) {
      if (cur == n) clear_bit_if_empty(sku);
      return n;
    }
  }
  return 0;
}

void Inventory::set_final(std::uint32_t sku, bool final) {
  VOUCHERD_DCHECK(sku < sku_count_, "a SKU index comes from this campaign's spec");
  const std::uint64_t mask = std::uint64_t{1} << (sku % 64);
  // Release/acquire: a reader that sees "final" also sees the units that
  // were added before it was set.
  if (final) {
    final_[sku / 64].fetch_or(mask, std::memory_order_release);
  } else {
    final_[sku / 64].fetch_and(~mask, std::memory_order_release);
  }
}

bool Inventory::is_final(std::uint32_t sku) const {
  return (final_[sku / 64].load(std::memory_order_acquire) >> (sku % 64)) & 1u;
}

bool Inventory::all_final() const {
  for (std::uint32_t w = 0; w < word_count_; ++w) {
    const std::uint32_t bits_in_word = std::min<std::uint32_t>(64, sku_count_ - w * 64);
    const std::uint64_t want =
        bits_in_word == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << bits_in_word) - 1);
    if ((final_[w].load(std::memory_order_acquire) & want) != want) return false;
  }
  return true;
}

bool Inventory::sold_out() const {
  for (std::uint32_t w = 0; w < word_count_; ++w) {
    if (has_stock_[w].load(std::memory_order_relaxed) != 0) return false;
  }
  return true;
}

bool Inventory::sku_empty(std::uint32_t sku) const {
  return counters_[sku].units.load(std::memory_order_relaxed) <= 0;
}

std::int64_t Inventory::available(std::uint32_t sku) const {
  VOUCHERD_DCHECK(sku < sku_count_, "a SKU index comes from this campaign's spec");
  const std::int64_t units = counters_[sku].units.load(std::memory_order_relaxed);
  // The pair of the checks where units are written (take, give_back).
  VOUCHERD_DCHECK(units >= 0, "a SKU's stock never goes below zero");
  return units;
}

}  // namespace voucherd
