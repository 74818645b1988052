// store_bench — Google Benchmark of the Redis claim log's encoding work,
// which needs no Redis server: a voucher record encoded and decoded, and a
// group-commit batch of 100 claims turned into its EVALSHA command and then
// into RESP bytes (what the writer thread does per batch before the
// socket write).
//
//   build/bin/store_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "server/redis/connection.h"
#include "server/redis/records.h"

namespace {

using namespace voucherd;

VoucherPtr sample_voucher(int i) {
  VoucherFields v;
  v.code = "7K3QM-9XW2A-PB4RT-HN8CZ-D5EJ6-FVY1" + std::to_string(i % 10);  // 35 chars
  v.campaign_id = "guangdong-2024";
  v.sku_id = "gd-sku-0" + std::to_string(100 + i % 307);
  v.site_id = "gd-site-" + std::to_string(100 + i % 139);
  v.member_id = "member-" + std::to_string(1'000'000 + i);
  v.sku_kind = SkuKind::kHotel;
  v.face_value_cents = 39'800;
  v.issued_at_us = 1'790'000'000'123'456 + i;
  v.expires_at_us = v.issued_at_us + 30LL * 86'400 * 1'000'000;
  return VoucherRecord::make(v);
}

void BM_EncodeVoucherRecord(benchmark::State& state) {
  const VoucherPtr p = sample_voucher(1);
  const VoucherRecord& v = *p;
  for (auto _ : state) benchmark::DoNotOptimize(redis::encode_voucher(v));
}
BENCHMARK(BM_EncodeVoucherRecord);

void BM_DecodeVoucherRecord(benchmark::State& state) {
  const VoucherPtr p = sample_voucher(1);
  const VoucherRecord& v = *p;
  const std::string bytes = redis::encode_voucher(v);
  for (auto _ : state) {
    benchmark::DoNotOptimize(redis::decode_voucher(v.campaign_id(), v.code().view(), bytes));
  }
}
BENCHMARK(BM_DecodeVoucherRecord);

// A batch of 100 claims of one campaign, shaped like the claim script's call
// (two keys and three arguments per claim: member key, record key; SKU,
// record, expiry bucket), then formatted as RESP by hiredis.
void BM_ClaimBatchEncode100(benchmark::State& state) {
  constexpr int kClaims = 100;
  std::vector<VoucherPtr> vouchers;
  for (int i = 0; i < kClaims; ++i) vouchers.push_back(sample_voucher(i));
  const redis::Script script{"return 1"};
  std::int64_t bytes = 0;
  for (auto _ : state) {
    std::vector<std::string> keys;
    std::vector<std::string> args{"replica-1", "vd:{guangdong-2024}:v:", "1"};
    keys.reserve(2 * kClaims);
    args.reserve(3 + 3 * kClaims);
    for (const VoucherPtr& p : vouchers) {
      const VoucherRecord& v = *p;
      keys.push_back(redis::campaign_key(redis::kStoreKeyPrefix, v.campaign_id(),
                                         "m:" + std::string(v.member_id())));
      keys.push_back(redis::campaign_key(redis::kStoreKeyPrefix, v.campaign_id(),
                                         "v:" + std::string(v.code())));
      args.push_back(v.sku_id());
      args.push_back(redis::encode_voucher(v));
      args.push_back(redis::expiry_bucket(v.expires_at_us()));
    }
    const redis::Command command = redis::Connection::evalsha(script, keys, args);
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& a : command) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    char* resp = nullptr;
    const int n =
        redisFormatCommandArgv(&resp, static_cast<int>(argv.size()), argv.data(), lengths.data());
    bytes += n;
    redisFreeCommand(resp);
  }
  state.counters["claims/s"] = benchmark::Counter(static_cast<double>(state.iterations() * kClaims),
                                                  benchmark::Counter::kIsRate);
  state.counters["bytes/claim"] =
      static_cast<double>(bytes) / static_cast<double>(state.iterations() * kClaims);
}
BENCHMARK(BM_ClaimBatchEncode100);

}  // namespace

BENCHMARK_MAIN();
