// memory_claim_log_test.cc — proves MemoryClaimLog's contract
// (engine/memory_claim_log.h): every append completes inline exactly once as
// kWritten (allowances are the engine's job in one process, so it never
// answers kDuplicate), voucher_count() counts the appends, and find_voucher()
// finds exactly the recorded codes — also when 4 threads append at once.
#include "engine/memory_claim_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/voucher_code.h"

namespace voucherd {
namespace {

class RecordingWrite final : public ClaimLogWrite {
 public:
  void on_logged(LogStatus s, VoucherPtr h) override {
    status = s;
    held = std::move(h);
    ++calls;
  }
  LogStatus status = LogStatus::kUnavailable;
  VoucherPtr held;
  int calls = 0;
};

class RecordingFind final : public VoucherLookup {
 public:
  void on_found(LookupStatus s, VoucherPtr v) override {
    status = s;
    found = std::move(v);
    ++calls;
  }
  LookupStatus status = LookupStatus::kUnavailable;
  VoucherPtr found;
  int calls = 0;
};

// A canonical code whose random part spells `n`: the log keys codes by the
// bits of their canonical form (engine/voucher_code.h), as the engine mints them.
std::string code_of(std::uint32_t n) {
  CodeFields f{.campaign_tag = 7, .sku_index = 1, .random = {}, .mac = 12345};
  // The last 7 symbols (35 bits) hold n's 32 bits; the others stay 0.
  for (std::size_t i = 0; i < 7; ++i) {
    f.random[f.random.size() - 1 - i] = static_cast<std::uint8_t>((n >> (5 * i)) & 31u);
  }
  return format_code(f);
}

VoucherPtr make_voucher(std::string code, std::string member) {
  VoucherFields v;
  v.code = std::move(code);
  v.campaign_id = "campaign-1";  // (a 1-char literal here trips a false g++ 12 -Wrestrict)
  v.member_id = std::move(member);
  return VoucherRecord::make(v);
}

TEST(MemoryClaimLogTest, AppendsCompleteInlineAsWritten) {
  MemoryClaimLog log;
  EXPECT_EQ(log.voucher_count(), 0);
  RecordingWrite w;
  w.voucher = make_voucher(code_of(1), "m");
  w.per_member_limit = 1;
  log.append_claim(w);
  EXPECT_EQ(w.calls, 1);
  EXPECT_EQ(w.status, LogStatus::kWritten);
  EXPECT_EQ(w.held, nullptr);
  EXPECT_EQ(log.voucher_count(), 1);
}

TEST(MemoryClaimLogTest, FindsExactlyTheRecordedCodes) {
  MemoryClaimLog log;
  const std::string code = code_of(1);
  const VoucherPtr v = make_voucher(code, "m");
  RecordingWrite w;
  w.voucher = v;
  log.append_claim(w);
  ASSERT_EQ(w.status, LogStatus::kWritten);

  RecordingFind hit;
  log.find_voucher("campaign", code, hit);
  EXPECT_EQ(hit.calls, 1);
  EXPECT_EQ(hit.status, LookupStatus::kFound);
  EXPECT_EQ(hit.found, v);  // the very record, shared

  // Another code; the same key bits under another MAC or check symbol; the
  // same code in another case, with a space, cut short; not a code at all.
  std::string other_mac = code;
  other_mac[other_mac.size() - 2] = other_mac[other_mac.size() - 2] == '0' ? '1' : '0';
  std::string lower = code;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const std::string& other : {code_of(2), other_mac, lower, code + " ", code.substr(0, 24),
                                   std::string("CODE-1"), std::string()}) {
    RecordingFind miss;
    log.find_voucher("campaign", other, miss);
    EXPECT_EQ(miss.calls, 1);
    EXPECT_EQ(miss.status, LookupStatus::kNotFound) << '"' << other << '"';
    EXPECT_EQ(miss.found, nullptr);
  }
}

TEST(MemoryClaimLogConcurrencyTest, ConcurrentAppendsAreAllRecorded) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5'000;
  MemoryClaimLog log;
  std::vector<std::vector<VoucherPtr>> vouchers(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      vouchers[t].push_back(make_voucher(code_of(static_cast<std::uint32_t>(t * kPerThread + i)),
                                         "member-" + std::to_string(i)));
    }
  }
  std::atomic<int> written{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (const VoucherPtr& v : vouchers[t]) {
        RecordingWrite w;
        w.voucher = v;
        log.append_claim(w);
        if (w.calls == 1 && w.status == LogStatus::kWritten) {
          written.fetch_add(1, std::memory_order_relaxed);
        }
        RecordingFind f;  // readers and writers interleave
        log.find_voucher(v->campaign_id(), v->code().view(), f);
        if (f.status != LookupStatus::kFound) written.fetch_sub(1000, std::memory_order_relaxed);
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  EXPECT_EQ(written.load(), kThreads * kPerThread);
  EXPECT_EQ(log.voucher_count(), kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) {
    for (const VoucherPtr& v : vouchers[t]) {
      RecordingFind f;
      log.find_voucher(v->campaign_id(), v->code().view(), f);
      ASSERT_EQ(f.status, LookupStatus::kFound) << v->code();
      ASSERT_EQ(f.found, v);
    }
  }
}

}  // namespace
}  // namespace voucherd
