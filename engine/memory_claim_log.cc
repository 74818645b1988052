#include "engine/memory_claim_log.h"

#include <absl/hash/hash.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include "engine/check.h"
#include "engine/redemption.h"

namespace voucherd {

// High bits pick the shard: the shard's own hash map uses the low bits of the
// same hash, and keys that all share their low bits would crowd its probes.
std::size_t MemoryClaimLog::shard_index(const CodeKeyBits& key) {
  return (absl::HashOf(key) >> 52) & (kShards - 1);
}

StoreResult<void> MemoryClaimLog::open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                                StoredDefinition /*stored*/) {
  {
    std::lock_guard lock(stocks_mu_);
    stocks_[spec.id] = &stock;
  }
  for (std::size_t i = 0; i < spec.skus.size(); ++i) {
    const auto sku = static_cast<std::uint32_t>(i);
    if (spec.skus[i].stock > 0) stock.add_units(sku, spec.skus[i].stock);
    stock.set_final(sku, true);
  }
  // Room for the codes not yet issued of the campaigns opened so far (at
  // most limits::kCodesReservedMax), so that no table grows, and rehashes
  // every code by reading its record, during a sale. Codes spread evenly
  // over the shards; the 1/32 covers their spread (over 3 standard
  // deviations from 5,000 codes a shard on, 4 from 12,000). A campaign
  // opened during another's sale may grow the tables once, each under its
  // shard's lock.
  constexpr auto kShardCap = static_cast<std::size_t>(limits::kCodesReservedMax) / kShards;
  const auto codes = static_cast<std::size_t>(
      std::min(spec.stock_total(), limits::kCodesReservedMax) / std::ssize(codes_));
  if (codes > 0) {
    for (CodeShard& shard : codes_) {
      std::lock_guard lock(shard.mu);
      shard.unissued = std::min(shard.unissued + codes, kShardCap);
      shard.by_code.reserve(shard.by_code.size() + shard.unissued + shard.unissued / 32 + 64);
    }
  }
  // One process: its own seed is the campaign's.
  if (has_seed(spec.mode)) stock.set_seed(stock.proposed_seed());
  if (spec.mode == CampaignMode::kApplyThenDraw) {
    std::lock_guard lock(stocks_mu_);
    applications_.try_emplace(spec.id, std::make_unique<ApplicationBook>());
  }
  if (spec.mode == CampaignMode::kLottery) {
    auto book = std::make_unique<LotteryBook>();
    for (const SkuSpec& s : spec.skus) book->remaining.push_back(s.stock);
    book->left = spec.stock_total();
    std::lock_guard lock(stocks_mu_);
    lotteries_.try_emplace(spec.id, std::move(book));
  }
  return {};
}

void MemoryClaimLog::record(const VoucherPtr& voucher) {
  const VoucherRecord& v = *voucher;
  {
    const CodeProbe probe{v.packed_code().key_bits(), v.packed_code()};
    CodeShard& shard = codes_[shard_index(probe.key)];
    std::lock_guard lock(shard.mu);
    bool inserted = false;
    shard.by_code.lazy_emplace(probe, [&](const auto& construct) {
      construct(CodeSlot{CompactVoucherPtr(voucher)});
      inserted = true;
    });
    VOUCHERD_CHECK(inserted,
                   "80 random bits per code never collide (else the random source broke)");
    if (shard.unissued > 0) --shard.unissued;
  }
  voucher_count_.fetch_add(1, std::memory_order_relaxed);  // a statistic only
}

void MemoryClaimLog::append_claim(ClaimLogWrite& write) {
  record(write.voucher);
  write.on_logged(LogStatus::kWritten, nullptr);
}

MemoryClaimLog::LotteryBook* MemoryClaimLog::book_of(std::string_view campaign_id) {
  std::lock_guard lock(stocks_mu_);
  auto it = lotteries_.find(to_absl(campaign_id));
  return it == lotteries_.end() ? nullptr : it->second.get();
}

void MemoryClaimLog::append_draw(DrawLogWrite& write) {
  const DrawRequestView& d = write.draw;
  LotteryBook* book = book_of(d.spec->id);
  if (book == nullptr) {  // not a lottery this log opened: cannot happen through the engine
    write.on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
    return;
  }
  const LotterySpec& rules = d.spec->lottery;
  DrawLogStatus status = DrawLogStatus::kDrawn;
  DrawEntry entry;
  VoucherPtr voucher;
  std::int32_t today = 0;
  {
    std::lock_guard lock(book->mu);
    LotteryBook::Member& m = book->members[std::string(d.member_id)];
    // A day earlier than the member's latest (another replica's clock a
    // little behind) counts as that day.
    const bool same_day = d.day <= m.day;
    if (auto it = m.by_request.find(to_absl(d.request_id)); it != m.by_request.end()) {
      status = DrawLogStatus::kRepeat;
      entry = book->entries[it->second];
      if (auto w = book->wins.find(it->second); w != book->wins.end()) voucher = w->second;
      today = same_day ? m.today : 0;
    } else if (same_day && m.today >= rules.draws_per_day) {
      status = DrawLogStatus::kDailyLimit;
      today = m.today;
    } else {
      const std::int64_t n = m.draws + 1;
      const DrawRandomness r = write.randomness(n);
      const DrawDecision decision =
          decide_draw(*d.spec, m.prizes, book->remaining, is_lucky(rules.win_probability, r.win()),
                      r.pick(), d.released);
      entry = DrawEntry{std::string(d.member_id),
                        n,
                        d.now_us,
                        decision.outcome,
                        decision.sku,
                        d.released,
                        book->left};
      const std::size_t index = book->entries.size();
      if (decision.outcome == DrawOutcome::kWon) {
        voucher = write.mint(decision.sku);
        record(voucher);
        book->wins.emplace(index, voucher);
        --book->remaining[decision.sku];
        --book->left;
        ++m.prizes;
      }
      book->entries.push_back(entry);
      m.by_request.emplace(std::string(d.request_id), index);
      m.draws = n;
      m.today = same_day ? m.today + 1 : 1;
      m.day = std::max(m.day, d.day);
      today = m.today;
    }
  }
  write.on_draw_logged(status, entry, std::move(voucher), today);
}

StoreResult<std::vector<DrawEntry>> MemoryClaimLog::draw_entries(const CampaignSpec& spec) {
  LotteryBook* book = book_of(spec.id);
  if (book == nullptr) return store_unsupported("campaign \"" + spec.id + "\" is not a lottery");
  std::lock_guard lock(book->mu);
  return book->entries;
}

MemoryClaimLog::ApplicationBook* MemoryClaimLog::applications_of(std::string_view campaign_id) {
  std::lock_guard lock(stocks_mu_);
  auto it = applications_.find(to_absl(campaign_id));
  return it == applications_.end() ? nullptr : it->second.get();
}

void MemoryClaimLog::append_application(ApplicationLogWrite& write) {
  const ApplicationRequestView& a = write.application;
  ApplicationBook* book = applications_of(a.spec->id);
  if (book == nullptr) {  // not an application campaign this log opened: not through the engine
    write.on_application_logged(ApplyLogStatus::kUnavailable, ApplicationEntry{});
    return;
  }
  ApplyLogStatus status = ApplyLogStatus::kRecorded;
  ApplicationEntry stored;
  {
    std::lock_guard lock(book->mu);
    auto it = book->by_member.find(to_absl(a.member_id));
    if (book->began) {
      status = ApplyLogStatus::kClosed;  // frozen: even a retry is told so
    } else if (it == book->by_member.end()) {
      if (std::ssize(book->by_member) >= applications_max_) {
        status = ApplyLogStatus::kFull;
      } else {
        it = book->by_member.try_emplace(std::string(a.member_id)).first;
      }
    } else if (it->second.request_id == a.request_id) {
      status = ApplyLogStatus::kRepeat;
    } else {
      status = ApplyLogStatus::kReplaced;
    }
    if (status == ApplyLogStatus::kRecorded || status == ApplyLogStatus::kReplaced) {
      it->second.preferred.assign(a.preferred.begin(), a.preferred.end());
      it->second.applied_at_us = a.now_us;
      it->second.request_id = std::string(a.request_id);
    }
    if (status != ApplyLogStatus::kFull && status != ApplyLogStatus::kClosed) {
      stored = ApplicationEntry{it->first, it->second.preferred, it->second.applied_at_us};
    }
  }
  write.on_application_logged(status, stored);
}

void MemoryClaimLog::find_application(const CampaignSpec& spec, std::string_view member_id,
                                      ApplicationLookup& lookup) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    lookup.on_application_found(LookupStatus::kUnavailable, ApplicationEntry{},
                                ApplicationState::kPending, nullptr);
    return;
  }
  ApplicationEntry found;
  bool applied = false;
  ApplicationState state = ApplicationState::kPending;
  VoucherPtr voucher;
  {
    std::lock_guard lock(book->mu);
    if (auto it = book->by_member.find(to_absl(member_id)); it != book->by_member.end()) {
      applied = true;
      found = ApplicationEntry{it->first, it->second.preferred, it->second.applied_at_us};
      if (auto w = book->won.find(to_absl(member_id)); w != book->won.end()) {
        state = ApplicationState::kSelected;
        voucher = w->second;
      } else if (book->done) {
        state = ApplicationState::kNotSelected;
      }
    }
  }
  // The voucher as it is now (redeemed or cancelled since, perhaps).
  if (voucher) {
    with_record(voucher->code().view(), [&](VoucherPtr& current) { voucher = current; });
  }
  lookup.on_application_found(applied ? LookupStatus::kFound : LookupStatus::kNotFound, found,
                              state, std::move(voucher));
}

AllocationTurn MemoryClaimLog::ApplicationBook::turn(std::string_view replica) const {
  AllocationTurn t;
  t.kind = done ? AllocationTurn::Kind::kDone
                : (owner == replica ? AllocationTurn::Kind::kTaken : AllocationTurn::Kind::kBusy);
  t.owner = owner;
  t.epoch = 1;  // one process: the first turn is the only one
  t.next = next;
  t.total = total;
  t.stock_left = stock_left;
  return t;
}

StoreResult<AllocationTurn> MemoryClaimLog::take_allocation(const CampaignSpec& spec,
                                                            std::string_view replica) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    return store_unsupported("campaign \"" + spec.id + "\" takes no applications");
  }
  std::lock_guard lock(book->mu);
  if (!book->began) {
    book->began = true;
    book->owner = std::string(replica);
    book->total = std::ssize(book->by_member);
    book->stock_left.clear();
    for (const SkuSpec& s : spec.skus) book->stock_left.push_back(s.stock);
  }
  return book->turn(replica);
}

StoreResult<std::vector<ApplicationEntry>> MemoryClaimLog::read_applications(
    const CampaignSpec& spec, const AllocationTurn& /*turn*/) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    return store_unsupported("campaign \"" + spec.id + "\" takes no applications");
  }
  {
    std::lock_guard lock(book->mu);
    if (!book->began) return store_bad_reply("campaign \"" + spec.id + "\": no allocation began");
  }
  // Frozen once the allocation began (appends are refused, look-ups only
  // read), so it is copied without holding up GetApplication meanwhile.
  std::vector<ApplicationEntry> out;
  out.reserve(book->by_member.size());
  for (const auto& [member, stored] : book->by_member) {
    out.push_back(ApplicationEntry{member, stored.preferred, stored.applied_at_us});
  }
  return out;
}

StoreResult<AllocationTurn> MemoryClaimLog::write_allocation(
    const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from, std::int64_t to,
    std::span<const AllocatedVoucher> winners) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    return store_unsupported("campaign \"" + spec.id + "\" takes no applications");
  }
  std::lock_guard lock(book->mu);
  if (!book->began || book->done || book->owner != turn.owner || turn.epoch != 1 ||
      book->next != from || to < from || to > book->total) {
    return book->turn(turn.owner);  // not the caller's step to write: nothing written
  }
  // Checked before anything is written: the step is written whole or not at all.
  std::vector<std::int64_t> left = book->stock_left;
  absl::flat_hash_set<std::string_view> step_members;
  for (const AllocatedVoucher& w : winners) {
    if (w.sku >= left.size() || left[w.sku] <= 0 || !w.voucher ||
        book->won.contains(to_absl(w.voucher->member_id())) ||
        !step_members.insert(w.voucher->member_id()).second) {
      return store_bad_reply("campaign \"" + spec.id +
                             "\": an allocation step gives a voucher the stock or the "
                             "applicant does not allow; nothing written");
    }
    --left[w.sku];
  }
  for (const AllocatedVoucher& w : winners) {
    record(w.voucher);
    book->won.try_emplace(std::string(w.voucher->member_id()), w.voucher);
  }
  book->stock_left = std::move(left);
  book->next = to;
  book->done = to == book->total;
  return book->turn(turn.owner);
}

StoreResult<ApplicationCounts> MemoryClaimLog::application_counts(const CampaignSpec& spec) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    return store_unsupported("campaign \"" + spec.id + "\" takes no applications");
  }
  std::lock_guard lock(book->mu);
  ApplicationCounts out;
  out.applications = std::ssize(book->by_member);
  out.selected = std::ssize(book->won);
  out.allocation = book->done    ? ApplicationCounts::Allocation::kDone
                   : book->began ? ApplicationCounts::Allocation::kRunning
                                 : ApplicationCounts::Allocation::kNotStarted;
  return out;  // the time it was done: the engine's, which wrote it
}

StoreResult<ApplicationOutcomes> MemoryClaimLog::application_outcomes(const CampaignSpec& spec) {
  ApplicationBook* book = applications_of(spec.id);
  if (book == nullptr) {
    return store_unsupported("campaign \"" + spec.id + "\" takes no applications");
  }
  absl::flat_hash_map<std::string_view, std::uint32_t> sku_of;  // SKU id -> index
  for (std::uint32_t i = 0; i < spec.skus.size(); ++i) sku_of.emplace(spec.skus[i].id, i);
  ApplicationOutcomes out;
  absl::flat_hash_map<std::string, std::uint32_t> won;  // member -> SKU index
  {
    std::unique_lock lock(book->mu);
    out.allocation_done = book->done;
    for (const auto& [member, voucher] : book->won) {
      auto i = sku_of.find(voucher->sku_id());
      if (i == sku_of.end()) {
        return store_bad_reply("campaign \"" + spec.id + "\": \"" + member + "\" won SKU \"" +
                               voucher->sku_id() + "\", not one of its own");
      }
      won.emplace(member, i->second);
    }
    // Before the allocation begins applications still come: copied under
    // the lock. Once begun they are frozen (as read_applications relies
    // on), so Apply and GetApplication are not held up meanwhile.
    if (book->began) lock.unlock();
    out.outcomes.reserve(book->by_member.size());
    for (const auto& [member, stored] : book->by_member) {
      out.outcomes.push_back({ApplicationEntry{member, stored.preferred, stored.applied_at_us}});
    }
  }
  for (ApplicationOutcome& o : out.outcomes) {
    if (auto w = won.find(o.application.member_id); w != won.end()) o.sku = w->second;
  }
  std::sort(out.outcomes.begin(), out.outcomes.end(),
            [](const ApplicationOutcome& x, const ApplicationOutcome& y) {
              return x.application.member_id < y.application.member_id;
            });
  return out;
}

void MemoryClaimLog::find_voucher(std::string_view /*campaign_id*/, std::string_view code,
                                  VoucherLookup& lookup) {
  VoucherPtr found;
  with_record(code, [&](VoucherPtr& current) { found = current; });
  if (found) {
    lookup.on_found(LookupStatus::kFound, std::move(found));
  } else {
    lookup.on_found(LookupStatus::kNotFound, nullptr);
  }
}

void MemoryClaimLog::redeem(std::string_view /*campaign_id*/, std::string_view code,
                            const RedeemRequestView& request, VoucherRedemption& done) {
  RedeemStatus status = RedeemStatus::kNotFound;
  VoucherPtr after;
  with_record(code, [&](VoucherPtr& current) {
    // The check and the state change happen under one lock: exactly once.
    status = decide_redeem(*current, request);
    if (status == RedeemStatus::kRedeemed) current = redeemed_copy(*current, request);
    after = current;
  });
  done.on_redeem_logged(status, std::move(after));
}

void MemoryClaimLog::cancel(std::string_view campaign_id, std::string_view code,
                            const CancelRequestView& request, VoucherCancellation& done) {
  CancelStatus status = CancelStatus::kNotFound;
  VoucherPtr after;
  with_record(code, [&](VoucherPtr& current) {
    switch (current->state()) {
      case VoucherState::kRedeemed:
        status = CancelStatus::kRedeemed;
        break;
      case VoucherState::kCancelled:
        status = CancelStatus::kAlreadyCancelled;
        break;
      default: {
        current = current->with_state(VoucherState::kCancelled);
        status = CancelStatus::kCancelled;
      }
    }
    after = current;
  });
  if (status == CancelStatus::kCancelled) {
    std::lock_guard lock(stocks_mu_);
    auto it = stocks_.find(absl::string_view(campaign_id.data(), campaign_id.size()));
    if (it != stocks_.end() && request.return_unit) it->second->add_units(request.sku_index, 1);
  }
  done.on_cancel_logged(status, std::move(after));
}

void MemoryClaimLog::find_member_vouchers(std::string_view /*campaign_id*/,
                                          std::string_view /*member_id*/,
                                          std::span<const std::string> known_codes,
                                          MemberVouchersLookup& done) {
  std::vector<VoucherPtr> found;
  for (const std::string& code : known_codes) {
    with_record(code, [&](VoucherPtr& current) { found.push_back(current); });
  }
  done.on_member_vouchers(LookupStatus::kFound, std::move(found));
}

StoreResult<std::vector<VoucherPtr>> MemoryClaimLog::redeemed_vouchers(
    std::string_view campaign_id) {
  std::vector<VoucherPtr> out;
  for (CodeShard& shard : codes_) {
    std::lock_guard lock(shard.mu);
    for (const CodeSlot& slot : shard.by_code) {
      const VoucherRecord& v = *slot.current.get();
      if (v.state() == VoucherState::kRedeemed && v.campaign_id() == campaign_id) {
        out.push_back(slot.current.share());
      }
    }
  }
  return out;
}

StoreResult<std::vector<std::int64_t>> MemoryClaimLog::expired_counts(const CampaignSpec& spec,
                                                                      UnixMicros now_us) {
  absl::flat_hash_map<std::string, std::size_t> index_of;
  for (std::size_t i = 0; i < spec.skus.size(); ++i) index_of[spec.skus[i].id] = i;
  std::vector<std::int64_t> out(spec.skus.size(), 0);
  for (CodeShard& shard : codes_) {
    std::lock_guard lock(shard.mu);
    for (const CodeSlot& slot : shard.by_code) {
      const VoucherRecord& v = *slot.current.get();
      if (v.campaign_id() != spec.id || visible_state(v, now_us) != VoucherState::kExpired)
        continue;
      if (auto it = index_of.find(v.sku_id()); it != index_of.end()) ++out[it->second];
    }
  }
  return out;
}

}  // namespace voucherd
