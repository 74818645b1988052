// member_memory_bench — what one member holding one voucher costs in memory
// with the memory claim log: a fresh engine with a first-come campaign of
// 307 SKUs, claimed once by each of N distinct members ("member-<n>", as
// voucher-load names them); the process's resident set before and after,
// and the difference per member. One measurement per process: freed memory
// is not always given back to the system, so a second engine in the same
// process would be measured on memory the first one left.
//
//   build/bin/member_memory_bench              # 1,000,000 members
//   build/bin/member_memory_bench 200000
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

}  // namespace

int main(int argc, char** argv) {
  std::int64_t members = 1'000'000;
  if (argc > 1) {
    const std::string_view arg(argv[1]);
    if (std::from_chars(arg.data(), arg.data() + arg.size(), members).ec != std::errc() ||
        members < 1 || members > 100'000'000) {
      std::fprintf(stderr, "usage: member_memory_bench [members, 1 to 100000000]\n");
      return 2;
    }
  }
  constexpr int kSkus = 307;
  MemoryClaimLog log;
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
  if (!engine.create_campaign(c)) {
    std::fprintf(stderr, "member_memory_bench: the campaign was refused\n");
    return 1;
  }

  const std::int64_t before = resident_bytes();
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
      "members holding a voucher: %lld (claimed in %.2f s)\n"
      "resident before: %.1f MB, after: %.1f MB, grown by %.1f MB\n"
      "bytes per member: %.0f\n",
      static_cast<long long>(members), seconds, before / 1e6, after / 1e6, (after - before) / 1e6,
      static_cast<double>(after - before) / static_cast<double>(members));
  return 0;
}
