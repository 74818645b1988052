// member_memory_bench — what one member holding one voucher costs in memory:
// a fresh engine with a first-come campaign of 307 SKUs, claimed once by
// each of N distinct members ("member-<n>", as voucher-load names them); the
// process's resident set before the campaign is created (after the
// engine) and after the claims, and the difference per member. One measurement per process: freed
// memory is not always given back to the system, so a second engine in the
// same process would be measured on memory the first one left.
//
// `memory` (the default) uses the memory claim log, which keeps every
// voucher by its code. `shared` measures what a replica of a shared store
// (Redis) keeps in its own memory: the log there acknowledges a claim once
// the store has it and keeps nothing of it, and the store's holders feed
// names every holder to every replica (note_store_holder), this one's own
// included. The stand-in does exactly that, with no Redis.
//
//   build/bin/member_memory_bench              # 1,000,000 members, memory
//   build/bin/member_memory_bench 200000
//   build/bin/member_memory_bench 1000000 shared
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "engine/claim_engine.h"
#include "engine/memory_claim_log.h"

namespace {

using namespace voucherd;

// VmRSS of this process, in bytes (0 when /proc cannot tell).
std::int64_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      std::int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0;
}

struct Claim final : ClaimOp {
  Outcome outcome = Outcome::kInternal;
  void on_claim_done(const ClaimResult& r) override { outcome = r.outcome; }
};

// What a shared store's log keeps in a replica: nothing per claim. Claims
// are acknowledged as written; the whole stock is local and final (as the
// memory log hands it over, with no lease to keep); each holder is fed to
// the engine as the store's holders feed would. The rest is never called
// here: it answers as a store that cannot serve it.
class SharedStoreStandIn final : public ClaimLog {
 public:
  StoreResult<void> open_campaign(const CampaignSpec& spec, CampaignStock& stock,
                                  StoredDefinition /*stored*/) override {
    for (std::size_t i = 0; i < spec.skus.size(); ++i) {
      const auto sku = static_cast<std::uint32_t>(i);
      stock.add_units(sku, spec.skus[i].stock);
      stock.set_final(sku, true);
    }
    stock_ = &stock;
    return {};
  }
  void append_claim(ClaimLogWrite& write) override {
    stock_->note_store_holder(write.voucher->member_id(), {}, /*holds_any=*/true);
    write.on_logged(LogStatus::kWritten, nullptr);
  }
  void find_voucher(std::string_view, std::string_view, VoucherLookup& lookup) override {
    lookup.on_found(LookupStatus::kUnavailable, nullptr);
  }
  void redeem(std::string_view, std::string_view, const RedeemRequestView&,
              VoucherRedemption& done) override {
    done.on_redeem_logged(RedeemStatus::kUnavailable, nullptr);
  }
  void cancel(std::string_view, std::string_view, const CancelRequestView&,
              VoucherCancellation& done) override {
    done.on_cancel_logged(CancelStatus::kUnavailable, nullptr);
  }
  void find_member_vouchers(std::string_view, std::string_view, std::span<const std::string>,
                            MemberVouchersLookup& done) override {
    done.on_member_vouchers(LookupStatus::kUnavailable, {});
  }
  StoreResult<std::vector<VoucherPtr>> redeemed_vouchers(std::string_view) override {
    return store_unsupported("the stand-in keeps no vouchers");
  }
  StoreResult<std::vector<std::int64_t>> expired_counts(const CampaignSpec&, UnixMicros) override {
    return store_unsupported("the stand-in keeps no vouchers");
  }
  void append_draw(DrawLogWrite& write) override {
    write.on_draw_logged(DrawLogStatus::kUnavailable, DrawEntry{}, nullptr, 0);
  }
  StoreResult<std::vector<DrawEntry>> draw_entries(const CampaignSpec&) override {
    return store_unsupported("the stand-in keeps no draws");
  }
  void append_application(ApplicationLogWrite& write) override {
    write.on_application_logged(ApplyLogStatus::kUnavailable, ApplicationEntry{});
  }
  void find_application(const CampaignSpec&, std::string_view, ApplicationLookup& lookup) override {
    lookup.on_application_found(LookupStatus::kUnavailable, ApplicationEntry{},
                                ApplicationState::kPending, nullptr);
  }
  StoreResult<AllocationTurn> take_allocation(const CampaignSpec&, std::string_view) override {
    return store_unsupported("the stand-in keeps no applications");
  }
  StoreResult<std::vector<ApplicationEntry>> read_applications(const CampaignSpec&,
                                                               const AllocationTurn&) override {
    return store_unsupported("the stand-in keeps no applications");
  }
  StoreResult<AllocationTurn> write_allocation(const CampaignSpec&, const AllocationTurn&,
                                               std::int64_t, std::int64_t,
                                               std::span<const AllocatedVoucher>) override {
    return store_unsupported("the stand-in keeps no applications");
  }
  StoreResult<ApplicationCounts> application_counts(const CampaignSpec&) override {
    return store_unsupported("the stand-in keeps no applications");
  }
  StoreResult<ApplicationOutcomes> application_outcomes(const CampaignSpec&) override {
    return store_unsupported("the stand-in keeps no applications");
  }

 private:
  CampaignStock* stock_ = nullptr;
};

}  // namespace

int main(int argc, char** argv) {
  std::int64_t members = 1'000'000;
  const std::string_view store = argc > 2 ? argv[2] : "memory";
  if (argc > 1) {
    const std::string_view arg(argv[1]);
    if (std::from_chars(arg.data(), arg.data() + arg.size(), members).ec != std::errc() ||
        members < 1 || members > 100'000'000 || argc > 3 ||
        (store != "memory" && store != "shared")) {
      std::fprintf(stderr,
                   "usage: member_memory_bench [members, 1 to 100000000] [memory|shared]\n");
      return 2;
    }
  }
  constexpr int kSkus = 307;
  MemoryClaimLog memory_log;
  SharedStoreStandIn shared_log;
  ClaimLog& log = store == "shared" ? static_cast<ClaimLog&>(shared_log) : memory_log;
  SystemClock clock;
  SecureRandom random;
  ClaimEngine engine(log, clock, random, std::vector<std::uint8_t>(32, 7));
  CampaignSpec c;
  c.id = "gd";
  c.name = "gd";
  c.mode = CampaignMode::kFirstCome;
  c.starts_at_us = 1;
  c.ends_at_us = INT64_C(4'000'000'000'000'000);
  c.per_member_limit = 1;
  c.sites.push_back(SiteSpec{"site-1", "Site", "Guangzhou", SkuKind::kHotel});
  for (int i = 0; i < kSkus; ++i) {
    c.skus.push_back(SkuSpec{"sku-" + std::to_string(i), "site-1", SkuKind::kHotel, "Room", 38800,
                             members / kSkus + 1});
  }
  // The campaign's own memory counts (the memory log sizes its code table
  // for the stock when it opens the campaign); the engine's does not.
  const std::int64_t before = resident_bytes();
  if (!engine.create_campaign(c)) {
    std::fprintf(stderr, "member_memory_bench: the campaign was refused\n");
    return 1;
  }

  const auto started = std::chrono::steady_clock::now();
  Claim op;
  std::string member = "member-";
  std::int64_t ok = 0;
  for (std::int64_t i = 0; i < members; ++i) {
    member.resize(7);
    member += std::to_string(i);
    op.campaign_id = "gd";
    op.member_id = member;
    engine.claim(op);
    ok += op.outcome == Outcome::kOk;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::int64_t after = resident_bytes();
  if (ok != members) {
    std::fprintf(stderr, "member_memory_bench: %lld of %lld claims succeeded\n",
                 static_cast<long long>(ok), static_cast<long long>(members));
    return 1;
  }
  std::printf(
      "store: %.*s\n"
      "members holding a voucher: %lld (claimed in %.2f s)\n"
      "resident before: %.1f MB, after: %.1f MB, grown by %.1f MB\n"
      "bytes per member: %.0f\n",
      static_cast<int>(store.size()), store.data(), static_cast<long long>(members), seconds,
      before / 1e6, after / 1e6, (after - before) / 1e6,
      static_cast<double>(after - before) / static_cast<double>(members));
  return 0;
}
