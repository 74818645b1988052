// inventory.h — lock-free per-SKU stock counters for one campaign.
//
// Each SKU has a counter of units this process may still hand out (with the
// memory claim log: the whole stock; with a shared store: what this replica
// has leased). A bitmap marks SKUs that may have units, so "any SKU" and
// "sold out" are answered from a few words instead of a scan of all counters.
//
// Invariants:
//   - a counter never goes below zero: take() is a compare-and-swap that only
//     succeeds from a positive value, so units handed out <= units put in;
//   - a SKU whose counter is positive has its bitmap bit set, except for the
//     instant between give_back()'s add and its bit set (a taker may then see
//     "sold out" for a SKU that just got a unit back — a benign false
//     negative, the same approximation Envoy's resource counters make);
//   - a set bit may be stale (counter already zero); takers clear it and then
//     re-check the counter, so a racing give_back() is never hidden.
//
// Thread-safety: all methods may be called concurrently from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "engine/limits.h"
#include "engine/model.h"

namespace voucherd {

class Inventory final {
 public:
  // REQUIRES: units.size() <= limits::kSkusPerCampaignMax, each unit count >= 0.
  explicit Inventory(std::span<const std::int64_t> units);
  Inventory(const Inventory&) = delete;
  Inventory& operator=(const Inventory&) = delete;

  [[nodiscard]] std::uint32_t sku_count() const { return sku_count_; }

  // Takes one unit of `sku`. False when it has none.
  [[nodiscard]] bool take(std::uint32_t sku);
  // Takes one unit of any SKU with stock, starting the search at `hint` so
  // that concurrent callers with different hints spread over SKUs. Returns
  // the SKU index, or kNoSku when every SKU is empty.
  [[nodiscard]] std::uint32_t take_any(std::uint32_t hint);
  // Returns units to `sku` (a failed claim, a cancelled voucher, a new lease).
  void give_back(std::uint32_t sku, std::int64_t units);
  // Takes up to `max` units of `sku` at once (to hand a lease back); returns
  // how many were taken.
  [[nodiscard]] std::int64_t take_up_to(std::uint32_t sku, std::int64_t max);

  // A SKU is final when no units will arrive beyond those already here (the
  // memory log gives the whole stock at once; a shared store marks a SKU
  // final once its shared stock is gone). An empty final SKU is sold out; an
  // empty SKU that is not final is waiting for a refill.
  void set_final(std::uint32_t sku, bool final);
  [[nodiscard]] bool is_final(std::uint32_t sku) const;
  // True when every SKU is final (then sold_out() means sold out for good).
  [[nodiscard]] bool all_final() const;

  // Cheap pre-checks without taking (may be stale by the time they return).
  [[nodiscard]] bool sold_out() const;
  [[nodiscard]] bool sku_empty(std::uint32_t sku) const;
  [[nodiscard]] std::int64_t available(std::uint32_t sku) const;

 private:
  static constexpr std::size_t kWords = limits::kSkusPerCampaignMax / 64;
  struct alignas(64) Counter {
    std::atomic<std::int64_t> units{0};
  };

  void clear_bit_if_empty(std::uint32_t sku);

  std::uint32_t sku_count_;
  std::uint32_t word_count_;
  std::unique_ptr<Counter[]> counters_;
  alignas(64) std::array<std::atomic<std::uint64_t>, kWords> has_stock_{};
  alignas(64) std::array<std::atomic<std::uint64_t>, kWords> final_{};
};

}  // namespace voucherd
