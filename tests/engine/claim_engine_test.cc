// claim_engine_test.cc — proves the claim engine end to end over the memory
// claim log with a fake clock and deterministic randomness: vouchers carry the
// right fields; repeat presses get the same voucher; stock, SKU, window, mode
// and argument checks give the right outcomes; per_member_limit > 1 is
// idempotent per request_id; create_campaign is idempotent; get_voucher finds
// issued codes in any spelling, tells mistyped from forged codes (forged ones
// never reach the log) and derives EXPIRED from the clock; stats are exact.
// With a claim log the test completes by hand: presses wait for the member's
// claim in flight, excess waiters are shed, and log refusals give the unit
// back. Under 4 threads with every member pressing 3 times, exactly `stock`
// vouchers are issued, all distinct, at most one per member. A member
// pressing faster than the press limit is refused until its turn.
#include "engine/claim_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/clock.h"
#include "engine/limits.h"
#include "engine/memory_claim_log.h"
#include "engine/model.h"
#include "engine/outcome.h"
#include "engine/random.h"
#include "engine/voucher_code.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/engine/forwarding_claim_log.h"

namespace voucherd {

// Readable outcome names in assertion messages.
inline void PrintTo(Outcome o, std::ostream* os) { *os << outcome_name(o); }

namespace {

using testing::ForwardingClaimLog;
using testing::SpecBuilder;

constexpr UnixMicros kStart = 1'700'000'000LL * kMicrosPerSecond;
constexpr UnixMicros kHour = 3600 * kMicrosPerSecond;
constexpr UnixMicros kEnd = kStart + 7 * kMicrosPerDay;

std::vector<std::uint8_t> test_secret(std::uint8_t seed = 0x5a) {
  std::vector<std::uint8_t> s(limits::kSecretBytesMin);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(seed + 31 * i);
  return s;
}

// A claim whose completion records the result (and how often it ran).
class RecordingClaim final : public ClaimOp {
 public:
  void on_claim_done(const ClaimResult& r) override {
    result = r;
    calls.fetch_add(1, std::memory_order_relaxed);
  }
  ClaimResult result;
  std::atomic<int> calls{0};
};

class RecordingLookup final : public VoucherLookupOp {
 public:
  void on_lookup_done(Outcome o, VoucherPtr v, VoucherState visible) override {
    outcome = o;
    found = std::move(v);
    state = visible;
    ++calls;
  }
  Outcome outcome = Outcome::kInternal;
  VoucherPtr found;
  VoucherState state = VoucherState::kUnspecified;
  int calls = 0;
};

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string without_dashes(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '-'), s.end());
  return s;
}

// Two sites, three SKUs: sku-001 (2 units), sku-002 (1 unit), sku-003 (none).
CampaignSpec small_spec(std::string id = "gd-2024") {
  return SpecBuilder(std::move(id), "Guangdong winter giveaway")
      .window(kStart, kEnd)
      .per_member_limit(1)
      .voucher_valid_days(10)
      .guangdong_sites_and_skus(2, 1, 0, 5'000);
}

class ClaimEngineTest : public ::testing::Test {
 protected:
  ClaimEngineTest() : secret_(test_secret()), engine_(log_, clock_, random_, secret_) {}

  const CampaignRuntime* create(const CampaignSpec& spec) {
    auto r = engine_.create_campaign(spec);
    EXPECT_TRUE(r.has_value()) << (r ? std::string()
                                     : r.error().field.field + ": " + r.error().field.message);
    return r.value_or(nullptr);
  }

  ClaimResult claim(std::string_view campaign, std::string_view member, std::string_view sku = {},
                    std::string_view request = {}) {
    RecordingClaim op;
    op.campaign_id = campaign;
    op.member_id = member;
    op.sku_id = sku;
    op.request_id = request;
    engine_.claim(op);
    // MemoryClaimLog completes inline and nothing else runs: done by now.
    EXPECT_EQ(op.calls.load(), 1) << "on_claim_done must run exactly once";
    return op.result;
  }

  RecordingLookup lookup(std::string_view code) {
    RecordingLookup op;
    op.code = code;
    engine_.get_voucher(op);
    EXPECT_EQ(op.calls, 1) << "on_lookup_done must run exactly once";
    return op;
  }

  struct RecordingRedeem final : RedeemOp {
    std::string code_text, site_text, request_text;
    Outcome outcome = Outcome::kInternal;
    VoucherPtr voucher;
    bool already = false;
    const char* field = nullptr;
    std::atomic<int> calls{0};
    void on_redeem_done(Outcome o, VoucherPtr v, bool a, const char* f) override {
      outcome = o;
      voucher = std::move(v);
      already = a;
      field = f;
      calls.fetch_add(1, std::memory_order_relaxed);
    }
  };
  // Redeems and returns the finished op (MemoryClaimLog completes inline).
  std::unique_ptr<RecordingRedeem> redeem(std::string code, std::string site,
                                          std::string request = {}) {
    auto op = std::make_unique<RecordingRedeem>();
    op->code_text = std::move(code);
    op->site_text = std::move(site);
    op->request_text = std::move(request);
    op->code = op->code_text;
    op->site_id = op->site_text;
    op->request_id = op->request_text;
    engine_.redeem(*op);
    EXPECT_EQ(op->calls.load(), 1) << "on_redeem_done must run exactly once";
    return op;
  }

  struct RecordingCancel final : CancelOp {
    std::string code_text;
    Outcome outcome = Outcome::kInternal;
    VoucherPtr voucher;
    void on_cancel_done(Outcome o, VoucherPtr v) override {
      outcome = o;
      voucher = std::move(v);
    }
  };
  std::pair<Outcome, VoucherPtr> cancel(std::string code) {
    RecordingCancel op;
    op.code_text = std::move(code);
    op.code = op.code_text;
    engine_.cancel(op);
    return {op.outcome, op.voucher};
  }

  struct RecordingList final : MemberVouchersOp {
    Outcome outcome = Outcome::kInternal;
    std::vector<VoucherPtr> vouchers;
    void on_member_vouchers_done(Outcome o, std::vector<VoucherPtr> v, UnixMicros) override {
      outcome = o;
      vouchers = std::move(v);
    }
  };
  std::pair<Outcome, std::vector<VoucherPtr>> list(std::string_view member,
                                                   std::string_view campaign = {}) {
    RecordingList op;
    op.member_id = member;
    op.campaign_id = campaign;
    engine_.list_member_vouchers(op);
    return {op.outcome, op.vouchers};
  }

  // Counts the calls that reach the memory log (forged codes must be turned
  // away before touching storage).
  ForwardingClaimLog log_;
  FakeClock clock_{kStart + kHour};
  DeterministicRandom random_{20240101};
  std::vector<std::uint8_t> secret_;
  ClaimEngine engine_;
};

TEST_F(ClaimEngineTest, ClaimIssuesVoucherWithTheRightFields) {
  ASSERT_NE(create(small_spec()), nullptr);
  const UnixMicros now = kStart + 5 * kHour + 17;
  clock_.set_us(now);

  const ClaimResult r = claim("gd-2024", "member-1", "sku-002");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_EQ(r.field, nullptr);
  ASSERT_NE(r.voucher, nullptr);
  const VoucherRecord& v = *r.voucher;
  EXPECT_EQ(v.campaign_id(), "gd-2024");
  EXPECT_EQ(v.sku_id(), "sku-002");
  EXPECT_EQ(v.site_id(), "site-002");
  EXPECT_EQ(v.member_id(), "member-1");
  EXPECT_EQ(v.request_id(), "");
  EXPECT_EQ(v.sku_kind(), SkuKind::kHomestay);
  EXPECT_EQ(v.face_value_cents(), 39'900);
  EXPECT_EQ(v.issued_at_us(), now);
  EXPECT_EQ(v.expires_at_us(), now + 10 * kMicrosPerDay);
  EXPECT_EQ(v.state(), VoucherState::kIssued);

  // The code is a well-formed display code naming this campaign and SKU.
  ASSERT_EQ(v.code().size(), 35u);
  auto fields = parse_code(v.code().view());
  ASSERT_TRUE(fields.has_value()) << v.code();
  EXPECT_EQ(format_code(*fields), v.code());
  EXPECT_EQ(fields->campaign_tag, campaign_tag("gd-2024"));
  EXPECT_EQ(fields->sku_index, 1u);
  CodeSigner signer(secret_);
  EXPECT_EQ(fields->mac,
            compute_mac(signer.derive_sku_key("gd-2024", "site-002", "sku-002"), *fields));

  // Any SKU: the voucher's fields match the SKU it landed on.
  const ClaimResult any = claim("gd-2024", "member-2");
  ASSERT_EQ(any.outcome, Outcome::kOk);
  EXPECT_EQ(any.voucher->sku_id(), "sku-001");  // the only SKU with stock left
  EXPECT_EQ(any.voucher->site_id(), "site-001");
  EXPECT_EQ(any.voucher->face_value_cents(), 19'900);
  EXPECT_EQ(any.voucher->sku_kind(), SkuKind::kHotSpring);
  EXPECT_NE(any.voucher->code(), v.code());
  EXPECT_EQ(log_.voucher_count(), 2);
}

TEST_F(ClaimEngineTest, ValidDaysDefaultIsThirty) {
  CampaignSpec spec = small_spec();
  spec.voucher_valid_days = 0;
  ASSERT_NE(create(spec), nullptr);
  const ClaimResult r = claim("gd-2024", "m");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  EXPECT_EQ(r.voucher->expires_at_us(), r.voucher->issued_at_us() + 30 * kMicrosPerDay);
}

TEST_F(ClaimEngineTest, RepeatPressReturnsTheSameVoucher) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult first = claim("gd-2024", "member-1");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  for (int i = 0; i < 3; ++i) {
    const ClaimResult again = claim("gd-2024", "member-1");
    ASSERT_EQ(again.outcome, Outcome::kAlreadyClaimed);
    ASSERT_NE(again.voucher, nullptr);
    EXPECT_EQ(again.voucher->code(), first.voucher->code());
  }
  // Also when naming a SKU, and with a request id.
  const ClaimResult sku = claim("gd-2024", "member-1", "sku-002", "req-x");
  ASSERT_EQ(sku.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(sku.voucher->code(), first.voucher->code());
  EXPECT_EQ(log_.voucher_count(), 1);
  EXPECT_EQ(log_.appends(), 1) << "repeat presses are answered without a log write";

  // Still answered with the voucher once everything is gone.
  ASSERT_EQ(claim("gd-2024", "member-2").outcome, Outcome::kOk);
  ASSERT_EQ(claim("gd-2024", "member-3").outcome, Outcome::kOk);
  ASSERT_EQ(claim("gd-2024", "member-4").outcome, Outcome::kSoldOut);
  const ClaimResult late = claim("gd-2024", "member-1");
  ASSERT_EQ(late.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(late.voucher->code(), first.voucher->code());
}

TEST_F(ClaimEngineTest, AMemberPressingFasterThanThePressLimitWaitsItsTurn) {
  ASSERT_NE(create(small_spec()), nullptr);
  // 5 presses a second (one per 200 ms) after a burst of 3.
  engine_.set_member_press_limit({5, 3});
  ASSERT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kOk);
  ASSERT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kAlreadyClaimed);
  ASSERT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kAlreadyClaimed);
  const ClaimResult fourth = claim("gd-2024", "member-1");
  EXPECT_EQ(fourth.outcome, Outcome::kPressRateLimited);
  EXPECT_EQ(fourth.voucher, nullptr);
  EXPECT_EQ(fourth.retry_after_ms, 200u);
  // Another member is not affected.
  EXPECT_EQ(claim("gd-2024", "member-2").outcome, Outcome::kOk);
  // Refused presses move nothing: 10 ms before the turn it is still 10 ms
  // away, at the turn one press goes in, and the next waits a whole interval.
  clock_.advance_us(190'000);
  const ClaimResult early = claim("gd-2024", "member-1");
  EXPECT_EQ(early.outcome, Outcome::kPressRateLimited);
  EXPECT_EQ(early.retry_after_ms, 10u);
  clock_.advance_us(10'000);
  EXPECT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kAlreadyClaimed);
  const ClaimResult next = claim("gd-2024", "member-1");
  EXPECT_EQ(next.outcome, Outcome::kPressRateLimited);
  EXPECT_EQ(next.retry_after_ms, 200u);
  // A pause refills the burst.
  clock_.advance_us(10 * kMicrosPerSecond);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kAlreadyClaimed) << i;
  }
  EXPECT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kPressRateLimited);
  EXPECT_EQ(log_.appends(), 2) << "refused presses never reach the log";
}

TEST_F(ClaimEngineTest, WithoutAPressLimitEveryPressIsAnswered) {
  ASSERT_NE(create(small_spec()), nullptr);
  ASSERT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kOk);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(claim("gd-2024", "member-1").outcome, Outcome::kAlreadyClaimed) << i;
  }
}

TEST_F(ClaimEngineTest, StockRunsOut) {
  ASSERT_NE(create(small_spec()), nullptr);
  EXPECT_EQ(claim("gd-2024", "m0", "sku-003").outcome, Outcome::kSkuSoldOut);  // never had stock
  EXPECT_EQ(claim("gd-2024", "m1", "sku-002").outcome, Outcome::kOk);
  const ClaimResult sku_gone = claim("gd-2024", "m2", "sku-002");
  EXPECT_EQ(sku_gone.outcome, Outcome::kSkuSoldOut);
  EXPECT_EQ(sku_gone.voucher, nullptr);
  EXPECT_EQ(claim("gd-2024", "m3").outcome, Outcome::kOk);
  EXPECT_EQ(claim("gd-2024", "m2").outcome, Outcome::kOk);  // a failed press did not count
  const ClaimResult gone = claim("gd-2024", "m4");
  EXPECT_EQ(gone.outcome, Outcome::kSoldOut);
  EXPECT_EQ(gone.voucher, nullptr);
  EXPECT_EQ(claim("gd-2024", "m5", "sku-001").outcome, Outcome::kSkuSoldOut);
  EXPECT_EQ(claim("gd-2024", "m6").outcome, Outcome::kSoldOut);
  EXPECT_EQ(log_.voucher_count(), 3);
}

TEST_F(ClaimEngineTest, UnknownCampaignAndSku) {
  ASSERT_NE(create(small_spec()), nullptr);
  EXPECT_EQ(claim("no-such-campaign", "m1").outcome, Outcome::kCampaignNotFound);
  EXPECT_EQ(claim("gd-202", "m1").outcome, Outcome::kCampaignNotFound);
  EXPECT_EQ(claim("gd-2024", "m1", "sku-999").outcome, Outcome::kSkuNotFound);
  EXPECT_EQ(log_.appends(), 0);
  EXPECT_EQ(claim("gd-2024", "m1").outcome, Outcome::kOk);  // the failures left no trace
}

TEST_F(ClaimEngineTest, WindowIsHalfOpen) {
  ASSERT_NE(create(small_spec()), nullptr);
  clock_.set_us(kStart - 1);
  EXPECT_EQ(claim("gd-2024", "m1").outcome, Outcome::kNotOpen);
  clock_.set_us(kStart - kMicrosPerDay);
  EXPECT_EQ(claim("gd-2024", "m1").outcome, Outcome::kNotOpen);
  clock_.set_us(kEnd);
  EXPECT_EQ(claim("gd-2024", "m1").outcome, Outcome::kClosed);
  clock_.set_us(kEnd + kMicrosPerDay);
  EXPECT_EQ(claim("gd-2024", "m1").outcome, Outcome::kClosed);
  EXPECT_EQ(log_.appends(), 0);

  clock_.set_us(kStart);
  const ClaimResult at_start = claim("gd-2024", "m1");
  EXPECT_EQ(at_start.outcome, Outcome::kOk);
  clock_.set_us(kEnd - 1);
  const ClaimResult at_end = claim("gd-2024", "m2");
  ASSERT_EQ(at_end.outcome, Outcome::kOk);
  EXPECT_EQ(at_end.voucher->issued_at_us(), kEnd - 1);
}

TEST_F(ClaimEngineTest, LotteryCampaignIsWrongMode) {
  CampaignSpec spec = small_spec("lottery-1");
  spec.mode = CampaignMode::kLottery;
  spec.lottery.win_probability = 0.5;
  ASSERT_NE(create(spec), nullptr);
  EXPECT_EQ(claim("lottery-1", "m1").outcome, Outcome::kWrongMode);
  EXPECT_EQ(log_.appends(), 0);
}

TEST_F(ClaimEngineTest, InvalidArgumentsNameTheField) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult empty_member = claim("gd-2024", "");
  EXPECT_EQ(empty_member.outcome, Outcome::kInvalidArgument);
  ASSERT_NE(empty_member.field, nullptr);
  EXPECT_STREQ(empty_member.field, "member_id");
  EXPECT_EQ(empty_member.voucher, nullptr);

  const std::string long_id(limits::kIdBytesMax + 1, 'x');
  const ClaimResult long_member = claim("gd-2024", long_id);
  EXPECT_EQ(long_member.outcome, Outcome::kInvalidArgument);
  EXPECT_STREQ(long_member.field, "member_id");

  const ClaimResult empty_campaign = claim("", "m1");
  EXPECT_EQ(empty_campaign.outcome, Outcome::kInvalidArgument);
  EXPECT_STREQ(empty_campaign.field, "campaign_id");

  const ClaimResult long_sku = claim("gd-2024", "m1", long_id);
  EXPECT_EQ(long_sku.outcome, Outcome::kInvalidArgument);
  EXPECT_STREQ(long_sku.field, "sku_id");

  const ClaimResult long_request = claim("gd-2024", "m1", "", long_id);
  EXPECT_EQ(long_request.outcome, Outcome::kInvalidArgument);
  EXPECT_STREQ(long_request.field, "request_id");

  // A member id of exactly the limit is fine.
  EXPECT_EQ(claim("gd-2024", std::string(limits::kIdBytesMax, 'm')).outcome, Outcome::kOk);
}

TEST_F(ClaimEngineTest, PerMemberLimitThreeIsIdempotentPerRequest) {
  CampaignSpec spec = small_spec("multi");
  spec.per_member_limit = 3;
  // Stock for every claim below on both SKUs: "any SKU" starts at a SKU
  // derived from the member's hash, which is seeded per process, so the
  // first two claims may take sku-002 and the third, which names it, must
  // still find a unit.
  spec.skus[0].stock = 10;
  spec.skus[1].stock = 10;
  ASSERT_NE(create(spec), nullptr);

  const ClaimResult no_request = claim("multi", "m1");
  EXPECT_EQ(no_request.outcome, Outcome::kRequestIdRequired);
  EXPECT_EQ(no_request.voucher, nullptr);

  const ClaimResult r1 = claim("multi", "m1", "", "req-1");
  const ClaimResult r2 = claim("multi", "m1", "", "req-2");
  const ClaimResult r3 = claim("multi", "m1", "sku-002", "req-3");
  ASSERT_EQ(r1.outcome, Outcome::kOk);
  ASSERT_EQ(r2.outcome, Outcome::kOk);
  ASSERT_EQ(r3.outcome, Outcome::kOk);
  EXPECT_EQ(r1.voucher->request_id(), "req-1");
  EXPECT_EQ(r2.voucher->request_id(), "req-2");
  EXPECT_EQ(r3.voucher->request_id(), "req-3");
  EXPECT_EQ(r3.voucher->sku_id(), "sku-002");
  const std::set<std::string> codes{std::string(r1.voucher->code()),
                                    std::string(r2.voucher->code()),
                                    std::string(r3.voucher->code())};
  EXPECT_EQ(codes.size(), 3u);

  // Retries of each request return that request's voucher.
  const ClaimResult again1 = claim("multi", "m1", "", "req-1");
  ASSERT_EQ(again1.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(again1.voucher->code(), r1.voucher->code());
  const ClaimResult again2 = claim("multi", "m1", "sku-001", "req-2");
  ASSERT_EQ(again2.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(again2.voucher->code(), r2.voucher->code());

  // A fourth request id: the member is at their limit.
  const ClaimResult fourth = claim("multi", "m1", "", "req-4");
  ASSERT_EQ(fourth.outcome, Outcome::kAlreadyClaimed);
  ASSERT_NE(fourth.voucher, nullptr);
  EXPECT_EQ(fourth.voucher->code(), r3.voucher->code()) << "the newest voucher held";
  EXPECT_EQ(log_.voucher_count(), 3);

  // Another member is not affected, and request ids are per member.
  const ClaimResult other = claim("multi", "m2", "", "req-1");
  ASSERT_EQ(other.outcome, Outcome::kOk);
  EXPECT_FALSE(codes.contains(std::string(other.voucher->code())));

  auto stats = engine_.campaign_stats("multi");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 4);
  EXPECT_EQ(stats->members, 2);
}

TEST_F(ClaimEngineTest, CreateCampaignIsIdempotent) {
  const CampaignRuntime* c = create(small_spec());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->spec().id, "gd-2024");
  EXPECT_EQ(engine_.find_campaign("gd-2024"), c);
  EXPECT_EQ(engine_.find_campaign("gd-2025"), nullptr);

  auto same = engine_.create_campaign(small_spec());
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(*same, c);

  // Same after normalization (valid_days 0 means 30) is the same definition.
  CampaignSpec defaults = small_spec("defaults");
  defaults.voucher_valid_days = 0;
  defaults.per_member_limit = 0;
  const CampaignRuntime* d = create(defaults);
  ASSERT_NE(d, nullptr);
  defaults.voucher_valid_days = 30;
  defaults.per_member_limit = 1;
  auto d_again = engine_.create_campaign(defaults);
  ASSERT_TRUE(d_again.has_value());
  EXPECT_EQ(*d_again, d);

  CampaignSpec different = small_spec();
  different.skus[0].stock = 3;
  auto clash = engine_.create_campaign(different);
  ASSERT_FALSE(clash.has_value());
  EXPECT_EQ(clash.error().outcome, Outcome::kCampaignExists);
  EXPECT_EQ(engine_.find_campaign("gd-2024"), c);
  EXPECT_EQ(c->spec().skus[0].stock, 2);  // the original stays

  CampaignSpec invalid = small_spec("bad");
  invalid.skus[1].site_id = "nowhere";
  auto bad = engine_.create_campaign(invalid);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().outcome, Outcome::kInvalidArgument);
  EXPECT_EQ(bad.error().field.field, "campaign.skus[1].site_id");
  EXPECT_EQ(engine_.find_campaign("bad"), nullptr);

  EXPECT_EQ(engine_.campaigns().size(), 2u);
}

TEST_F(ClaimEngineTest, GetVoucherFindsIssuedCodesInAnySpelling) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  const std::string code = std::string(r.voucher->code());

  for (const std::string& text :
       {code, lowercase(code), without_dashes(code), lowercase(without_dashes(code))}) {
    const RecordingLookup l = lookup(text);
    ASSERT_EQ(l.outcome, Outcome::kOk) << text;
    ASSERT_NE(l.found, nullptr);
    EXPECT_EQ(l.found->code(), code);
    EXPECT_EQ(l.found->member_id(), "member-1");
    EXPECT_EQ(l.state, VoucherState::kIssued);
  }
}

TEST_F(ClaimEngineTest, GetVoucherTellsMistypedFromForged) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1", "sku-001");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  const std::string code = std::string(r.voucher->code());

  // One character changed (every position): the check character catches it.
  for (std::size_t pos = 0; pos < code.size(); ++pos) {
    if (code[pos] == '-') continue;
    std::string typo = code;
    typo[pos] = code[pos] == 'A' ? 'B' : 'A';
    const RecordingLookup l = lookup(typo);
    EXPECT_EQ(l.outcome, Outcome::kMistypedCode) << typo;
    EXPECT_EQ(l.found, nullptr);
  }
  EXPECT_EQ(lookup("").outcome, Outcome::kMistypedCode);
  EXPECT_EQ(lookup("hello").outcome, Outcome::kMistypedCode);

  EXPECT_EQ(log_.finds(), 0) << "mistyped codes must not reach the claim log";

  // Well-formed codes whose MAC does not verify: not found, whatever else is
  // right, and turned away without touching the claim log.
  auto fields = parse_code(code);
  ASSERT_TRUE(fields.has_value());
  DeterministicRandom other(99);
  for (int i = 0; i < 50; ++i) {
    CodeFields forged = *fields;
    std::array<std::uint8_t, 8> b{};
    other.fill(b);
    std::uint64_t mac = 0;
    for (std::uint8_t x : b) mac = (mac << 8) | x;
    forged.mac = mac & ((std::uint64_t{1} << limits::kCodeMacBits) - 1);
    if (forged.mac == fields->mac) continue;
    const RecordingLookup l = lookup(format_code(forged));
    EXPECT_EQ(l.outcome, Outcome::kVoucherNotFound) << format_code(forged);
    EXPECT_EQ(l.found, nullptr);
  }
  // The real code's fields moved to another SKU index (MAC then names the wrong key).
  CodeFields moved = *fields;
  moved.sku_index = 1;
  EXPECT_EQ(lookup(format_code(moved)).outcome, Outcome::kVoucherNotFound);
  moved.sku_index = 900;  // no such SKU at all
  EXPECT_EQ(lookup(format_code(moved)).outcome, Outcome::kVoucherNotFound);

  // A code made with a different secret.
  CodeSigner wrong_signer(test_secret(0x11));
  CodeFields foreign = *fields;
  foreign.random[0] ^= 1;
  foreign.mac = compute_mac(wrong_signer.derive_sku_key("gd-2024", "site-001", "sku-001"), foreign);
  EXPECT_EQ(lookup(format_code(foreign)).outcome, Outcome::kVoucherNotFound);

  EXPECT_EQ(log_.finds(), 0) << "codes with a wrong MAC must not reach the claim log";

  // A genuine code (right secret and MAC) that was never issued: the log says no.
  CodeSigner signer(secret_);
  CodeFields unissued = *fields;
  unissued.random[0] ^= 1;
  unissued.mac = compute_mac(signer.derive_sku_key("gd-2024", "site-001", "sku-001"), unissued);
  EXPECT_EQ(lookup(format_code(unissued)).outcome, Outcome::kVoucherNotFound);

  EXPECT_EQ(log_.finds(), 1);

  // The real one is still found.
  EXPECT_EQ(lookup(code).outcome, Outcome::kOk);
  EXPECT_EQ(log_.finds(), 2);
}

TEST(ClaimEngineSecrets, TheFirstSecretMintsAndEveryOneVerifies) {
  ForwardingClaimLog log;
  FakeClock clock{kStart + kHour};
  DeterministicRandom random{7};
  const std::vector<std::vector<std::uint8_t>> secrets{test_secret(0x21), test_secret(0x5a)};
  ClaimEngine engine(log, clock, random, secrets);
  ASSERT_EQ(engine.secret_count(), 2u);
  ASSERT_TRUE(engine.create_campaign(small_spec()).has_value());
  RecordingClaim op;
  op.campaign_id = "gd-2024";
  op.member_id = "member-1";
  op.sku_id = "sku-001";
  engine.claim(op);
  ASSERT_EQ(op.result.outcome, Outcome::kOk);
  auto minted = parse_code(op.result.voucher->code().view());
  ASSERT_TRUE(minted.has_value());
  // Minted under the first secret.
  const CodeSigner first(secrets[0]), second(secrets[1]), other(test_secret(0x77));
  EXPECT_EQ(minted->mac,
            compute_mac(first.derive_sku_key("gd-2024", "site-001", "sku-001"), *minted));
  auto lookup = [&](const CodeFields& f) {
    RecordingLookup l;
    const std::string text = format_code(f);
    l.code = text;
    engine.get_voucher(l);
    return l.outcome;
  };
  EXPECT_EQ(lookup(*minted), Outcome::kOk);
  EXPECT_EQ(engine.verified_by_secret(0), 1u);
  // A code of the second (older) secret verifies and reaches the log.
  CodeFields older = *minted;
  older.random[0] ^= 1;
  older.mac = compute_mac(second.derive_sku_key("gd-2024", "site-001", "sku-001"), older);
  const std::int64_t finds_before = log.finds();
  EXPECT_EQ(lookup(older), Outcome::kVoucherNotFound);  // never issued
  EXPECT_EQ(log.finds(), finds_before + 1);
  EXPECT_EQ(engine.verified_by_secret(1), 1u);
  // A code of a secret the engine does not hold stops at the MAC.
  CodeFields foreign = older;
  foreign.mac = compute_mac(other.derive_sku_key("gd-2024", "site-001", "sku-001"), foreign);
  EXPECT_EQ(lookup(foreign), Outcome::kVoucherNotFound);
  EXPECT_EQ(log.finds(), finds_before + 1);
  EXPECT_EQ(engine.verified_by_secret(0) + engine.verified_by_secret(1), 2u);
}

TEST_F(ClaimEngineTest, VoucherExpiresByTheClock) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  const UnixMicros expires = r.voucher->expires_at_us();
  ASSERT_EQ(expires, kStart + kHour + 10 * kMicrosPerDay);

  clock_.set_us(expires - 1);
  RecordingLookup before = lookup(r.voucher->code().view());
  ASSERT_EQ(before.outcome, Outcome::kOk);
  EXPECT_EQ(before.state, VoucherState::kIssued);

  clock_.set_us(expires);
  RecordingLookup at = lookup(r.voucher->code().view());
  ASSERT_EQ(at.outcome, Outcome::kOk);
  EXPECT_EQ(at.state, VoucherState::kExpired);

  clock_.advance_us(kMicrosPerDay);
  RecordingLookup after = lookup(r.voucher->code().view());
  ASSERT_EQ(after.outcome, Outcome::kOk);
  EXPECT_EQ(after.state, VoucherState::kExpired);
  EXPECT_EQ(after.found->state(), VoucherState::kIssued);  // the stored state is unchanged
}

TEST_F(ClaimEngineTest, CampaignsSharingATagAreToldApart) {
  // Find two campaign ids with the same 10-bit tag (birthday bound: a few dozen tries).
  std::unordered_map<std::uint16_t, std::string> by_tag;
  std::string a;
  std::string b;
  for (int i = 0; a.empty(); ++i) {
    std::string id = "tag-probe-" + std::to_string(i);
    auto [it, fresh] = by_tag.try_emplace(campaign_tag(id), id);
    if (!fresh) {
      a = it->second;
      b = id;
    }
  }
  ASSERT_EQ(campaign_tag(a), campaign_tag(b));
  ASSERT_NE(create(small_spec(a)), nullptr);
  ASSERT_NE(create(small_spec(b)), nullptr);
  const ClaimResult ra = claim(a, "m1", "sku-001");
  const ClaimResult rb = claim(b, "m1", "sku-001");
  ASSERT_EQ(ra.outcome, Outcome::kOk);
  ASSERT_EQ(rb.outcome, Outcome::kOk);
  const RecordingLookup la = lookup(ra.voucher->code().view());
  const RecordingLookup lb = lookup(rb.voucher->code().view());
  ASSERT_EQ(la.outcome, Outcome::kOk);
  ASSERT_EQ(lb.outcome, Outcome::kOk);
  EXPECT_EQ(la.found->campaign_id(), a);
  EXPECT_EQ(lb.found->campaign_id(), b);
}

TEST_F(ClaimEngineTest, CampaignStatsAreExact) {
  CampaignSpec spec = small_spec("stats");
  spec.per_member_limit = 2;
  spec.skus[0].stock = 5;
  spec.skus[1].stock = 3;
  ASSERT_NE(create(spec), nullptr);
  EXPECT_EQ(engine_.campaign_stats("nope").error(), Outcome::kCampaignNotFound);

  auto empty = engine_.campaign_stats("stats");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->campaign_id, "stats");
  EXPECT_EQ(empty->stock_total, 8);
  EXPECT_EQ(empty->issued, 0);
  EXPECT_EQ(empty->remaining, 8);
  EXPECT_EQ(empty->members, 0);
  ASSERT_EQ(empty->skus.size(), 3u);

  ASSERT_EQ(claim("stats", "a", "sku-001", "1").outcome, Outcome::kOk);
  ASSERT_EQ(claim("stats", "a", "sku-001", "2").outcome, Outcome::kOk);
  ASSERT_EQ(claim("stats", "a", "sku-001", "3").outcome, Outcome::kAlreadyClaimed);
  ASSERT_EQ(claim("stats", "a", "sku-001", "1").outcome, Outcome::kAlreadyClaimed);
  ASSERT_EQ(claim("stats", "b", "sku-002", "1").outcome, Outcome::kOk);
  ASSERT_EQ(claim("stats", "c", "sku-003", "1").outcome, Outcome::kSkuSoldOut);
  ASSERT_EQ(claim("stats", "d", "sku-404", "1").outcome, Outcome::kSkuNotFound);

  auto s = engine_.campaign_stats("stats");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->stock_total, 8);
  EXPECT_EQ(s->issued, 3);
  EXPECT_EQ(s->redeemed, 0);
  EXPECT_EQ(s->remaining, 5);
  EXPECT_EQ(s->members, 2);
  ASSERT_EQ(s->skus.size(), 3u);
  EXPECT_EQ(s->skus[0].sku_id, "sku-001");
  EXPECT_EQ(s->skus[0].stock, 5);
  EXPECT_EQ(s->skus[0].issued, 2);
  EXPECT_EQ(s->skus[0].remaining, 3);
  EXPECT_EQ(s->skus[1].sku_id, "sku-002");
  EXPECT_EQ(s->skus[1].issued, 1);
  EXPECT_EQ(s->skus[1].remaining, 2);
  EXPECT_EQ(s->skus[2].sku_id, "sku-003");
  EXPECT_EQ(s->skus[2].stock, 0);
  EXPECT_EQ(s->skus[2].issued, 0);
  EXPECT_EQ(s->skus[2].remaining, 0);
}

// ---------------------------------------------------------------- asynchronous log

class DeferredLogTest : public ::testing::Test {
 protected:
  DeferredLogTest() : secret_(test_secret()), engine_(log_, clock_, random_, secret_) {}

  void start(RecordingClaim& op, std::string_view campaign, std::string_view member,
             std::string_view sku = {}, std::string_view request = {}) {
    op.campaign_id = campaign;
    op.member_id = member;
    op.sku_id = sku;
    op.request_id = request;
    engine_.claim(op);
  }

  // Holds every append until the test completes it with the status it picks,
  // so the engine's asynchronous paths (presses waiting on a member's claim in
  // flight, log refusals) run deterministically; kWritten appends go through
  // to the memory log, so they can be looked up.
  ForwardingClaimLog log_{ForwardingClaimLog::Appends::kHold};
  FakeClock clock_{kStart + kHour};
  DeterministicRandom random_{31337};
  std::vector<std::uint8_t> secret_;
  ClaimEngine engine_;
};

TEST_F(DeferredLogTest, PressesWaitForTheMembersClaimInFlight) {
  ASSERT_TRUE(engine_.create_campaign(small_spec()).has_value());
  RecordingClaim first, second, third, other;
  start(first, "gd-2024", "m1");
  EXPECT_EQ(first.calls.load(), 0);
  EXPECT_EQ(log_.queued(), 1u);
  start(second, "gd-2024", "m1");
  start(third, "gd-2024", "m1", "sku-002");
  EXPECT_EQ(second.calls.load(), 0) << "a repeat press must wait, not claim again";
  EXPECT_EQ(third.calls.load(), 0);
  EXPECT_EQ(log_.queued(), 1u);
  start(other, "gd-2024", "m2");  // another member is not held up
  EXPECT_EQ(log_.queued(), 2u);

  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(first.calls.load(), 1);
  ASSERT_EQ(first.result.outcome, Outcome::kOk);
  for (RecordingClaim* waiter : {&second, &third}) {
    ASSERT_EQ(waiter->calls.load(), 1);
    EXPECT_EQ(waiter->result.outcome, Outcome::kAlreadyClaimed);
    ASSERT_NE(waiter->result.voucher, nullptr);
    EXPECT_EQ(waiter->result.voucher->code(), first.result.voucher->code());
  }
  EXPECT_EQ(log_.queued(), 1u) << "waiters are answered from the index, not re-logged";
  EXPECT_EQ(other.calls.load(), 0);
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(other.calls.load(), 1);
  EXPECT_EQ(other.result.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("gd-2024")->issued, 2);
}

TEST_F(DeferredLogTest, PressesThatWaitedOnTheMembersClaimAreCountedOnce) {
  ASSERT_TRUE(engine_.create_campaign(small_spec()).has_value());
  engine_.set_member_press_limit({1, 3});
  RecordingClaim first, second, third, fourth;
  start(first, "gd-2024", "m1");
  start(second, "gd-2024", "m1");
  start(third, "gd-2024", "m1");
  ASSERT_EQ(second.calls.load(), 0);
  ASSERT_EQ(third.calls.load(), 0);
  start(fourth, "gd-2024", "m1");  // the burst is spent
  ASSERT_EQ(fourth.calls.load(), 1);
  EXPECT_EQ(fourth.result.outcome, Outcome::kPressRateLimited);
  EXPECT_EQ(fourth.result.retry_after_ms, 1000u);
  // The waiters run again when the claim completes, and are not refused.
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(first.result.outcome, Outcome::kOk);
  for (RecordingClaim* waiter : {&second, &third}) {
    ASSERT_EQ(waiter->calls.load(), 1);
    EXPECT_EQ(waiter->result.outcome, Outcome::kAlreadyClaimed);
  }
}

TEST_F(DeferredLogTest, TooManyWaitersAreShed) {
  ASSERT_TRUE(engine_.create_campaign(small_spec()).has_value());
  RecordingClaim first;
  start(first, "gd-2024", "m1");
  std::vector<std::unique_ptr<RecordingClaim>> waiters;
  for (std::size_t i = 0; i < limits::kWaitersPerMemberMax; ++i) {
    waiters.push_back(std::make_unique<RecordingClaim>());
    start(*waiters.back(), "gd-2024", "m1");
    ASSERT_EQ(waiters.back()->calls.load(), 0) << "waiter " << i;
  }
  RecordingClaim shed;
  start(shed, "gd-2024", "m1");
  ASSERT_EQ(shed.calls.load(), 1);
  EXPECT_EQ(shed.result.outcome, Outcome::kTooManyWaiters);
  EXPECT_EQ(shed.result.voucher, nullptr);

  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(first.result.outcome, Outcome::kOk);
  for (const auto& w : waiters) {
    ASSERT_EQ(w->calls.load(), 1);
    EXPECT_EQ(w->result.outcome, Outcome::kAlreadyClaimed);
    EXPECT_EQ(w->result.voucher->code(), first.result.voucher->code());
  }
  // The waiter count starts again from zero for the member's next claim.
  RecordingClaim later;
  start(later, "gd-2024", "m1");
  EXPECT_EQ(later.result.outcome, Outcome::kAlreadyClaimed);
}

TEST_F(DeferredLogTest, UnconfirmedWriteKeepsTheUnitOut) {
  // kUnavailable: the write may have landed, so the unit must not be handed
  // out again here (the log settles it with the store).
  CampaignSpec spec = small_spec();
  spec.skus[0].stock = 0;
  spec.skus[1].stock = 1;
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());
  RecordingClaim op;
  start(op, "gd-2024", "m1");
  log_.complete(LogStatus::kUnavailable);
  ASSERT_EQ(op.calls.load(), 1);
  EXPECT_EQ(op.result.outcome, Outcome::kLogUnavailable);
  RecordingClaim newcomer;
  start(newcomer, "gd-2024", "m2");
  EXPECT_EQ(newcomer.result.outcome, Outcome::kSoldOut);
  EXPECT_EQ(log_.queued(), 0u);
}

TEST_F(DeferredLogTest, LogOverloadGivesTheUnitBack) {
  CampaignSpec spec = small_spec();
  spec.skus[0].stock = 0;
  spec.skus[1].stock = 1;  // one unit in all
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());

  struct Case {
    LogStatus status;
    Outcome outcome;
  };
  for (const Case c : {Case{LogStatus::kOverloaded, Outcome::kOverloaded}}) {
    RecordingClaim op;
    start(op, "gd-2024", "m1");
    ASSERT_EQ(op.calls.load(), 0);
    // The only unit is taken while the write is in flight.
    RecordingClaim newcomer;
    start(newcomer, "gd-2024", "m2");
    EXPECT_EQ(newcomer.result.outcome, Outcome::kSoldOut);
    log_.complete(c.status);
    ASSERT_EQ(op.calls.load(), 1);
    EXPECT_EQ(op.result.outcome, c.outcome) << outcome_name(c.outcome);
    EXPECT_EQ(op.result.voucher, nullptr);
    auto stats = engine_.campaign_stats("gd-2024");
    EXPECT_EQ(stats->issued, 0);
    EXPECT_EQ(stats->members, 0);
  }
  // The unit came back each time and the member may try again.
  RecordingClaim retry;
  start(retry, "gd-2024", "m1");
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(retry.calls.load(), 1);
  EXPECT_EQ(retry.result.outcome, Outcome::kOk);
  EXPECT_EQ(retry.result.voucher->sku_id(), "sku-002");
  EXPECT_EQ(engine_.campaign_stats("gd-2024")->remaining, 0);
  EXPECT_EQ(log_.voucher_count(), 1);
}

TEST_F(DeferredLogTest, WaitersRetryWhenTheClaimInFlightFails) {
  ASSERT_TRUE(engine_.create_campaign(small_spec()).has_value());
  RecordingClaim first, second;
  start(first, "gd-2024", "m1");
  start(second, "gd-2024", "m1");
  ASSERT_EQ(second.calls.load(), 0);
  log_.complete(LogStatus::kUnavailable);
  ASSERT_EQ(first.calls.load(), 1);
  EXPECT_EQ(first.result.outcome, Outcome::kLogUnavailable);
  // The waiting press ran again and is now the member's claim in flight.
  EXPECT_EQ(second.calls.load(), 0);
  ASSERT_EQ(log_.queued(), 1u);
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(second.calls.load(), 1);
  EXPECT_EQ(second.result.outcome, Outcome::kOk);
}

TEST_F(DeferredLogTest, LogDuplicateAnswersWithTheHeldVoucher) {
  // Another replica already recorded a voucher for this member: the log says
  // kDuplicate and hands it back.
  CampaignSpec spec = small_spec();
  spec.skus[0].stock = 0;
  spec.skus[1].stock = 1;
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());
  VoucherFields fields;
  fields.code = "E1SEW-HERE0-00000-00000-00000-00000";  // in display form, as stores keep
  fields.campaign_id = "gd-2024";
  fields.member_id = "m1";
  fields.sku_id = "sku-002";
  const auto elsewhere = VoucherRecord::make(fields);

  RecordingClaim op;
  start(op, "gd-2024", "m1");
  log_.complete(LogStatus::kDuplicate, elsewhere);
  ASSERT_EQ(op.calls.load(), 1);
  EXPECT_EQ(op.result.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(op.result.voucher, elsewhere);

  // The member's next press is answered from the index, without the log.
  RecordingClaim again;
  start(again, "gd-2024", "m1");
  ASSERT_EQ(again.calls.load(), 1);
  EXPECT_EQ(again.result.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(again.result.voucher, elsewhere);
  EXPECT_EQ(log_.queued(), 0u);

  // The unit this replica took went back to stock.
  RecordingClaim next;
  start(next, "gd-2024", "m2");
  ASSERT_EQ(log_.queued(), 1u);
  log_.complete(LogStatus::kWritten);
  EXPECT_EQ(next.result.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("gd-2024")->issued, 1);
}

TEST_F(DeferredLogTest, LimitAboveOneWaitsOnlyForTheSameRequest) {
  CampaignSpec spec = small_spec("multi");
  spec.per_member_limit = 3;
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());
  RecordingClaim r1, r1_retry, r2;
  start(r1, "multi", "m1", "", "req-1");
  start(r1_retry, "multi", "m1", "", "req-1");
  start(r2, "multi", "m1", "", "req-2");
  EXPECT_EQ(r1_retry.calls.load(), 0) << "a retry of a request in flight waits for it";
  EXPECT_EQ(r2.calls.load(), 0);
  EXPECT_EQ(log_.queued(), 2u) << "a different request id proceeds at once";

  log_.complete(LogStatus::kWritten);  // req-1
  ASSERT_EQ(r1.calls.load(), 1);
  EXPECT_EQ(r1.result.outcome, Outcome::kOk);
  log_.complete(LogStatus::kWritten);  // req-2
  ASSERT_EQ(r2.calls.load(), 1);
  EXPECT_EQ(r2.result.outcome, Outcome::kOk);
  ASSERT_EQ(r1_retry.calls.load(), 1);
  EXPECT_EQ(r1_retry.result.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(r1_retry.result.voucher->code(), r1.result.voucher->code());
  EXPECT_EQ(log_.voucher_count(), 2);
}

TEST_F(DeferredLogTest, ClaimsInFlightOutliveTheIdOfTheOneThatEndedFirst) {
  // Each call keeps its member id in a buffer of its own, gone once the call
  // is answered. The member's list of claims in flight must not depend on
  // the bytes of a claim that ended while others are still in flight.
  CampaignSpec spec = small_spec("multi");
  spec.per_member_limit = 3;
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());
  auto id1 = std::make_unique<std::string>("member-with-a-long-id-1");
  auto id2 = std::make_unique<std::string>(*id1);
  auto id3 = std::make_unique<std::string>(*id1);
  RecordingClaim r1, r2, r2_retry;
  start(r1, "multi", *id1, "", "req-1");
  start(r2, "multi", *id2, "", "req-2");
  ASSERT_EQ(log_.queued(), 2u);
  log_.complete(LogStatus::kWritten);  // req-1
  ASSERT_EQ(r1.calls.load(), 1);
  ASSERT_EQ(r1.result.outcome, Outcome::kOk);
  id1->assign(id1->size(), '#');  // the first call's buffer is reused
  id1.reset();

  // A retry of req-2 still finds it in flight and waits for it.
  start(r2_retry, "multi", *id3, "", "req-2");
  EXPECT_EQ(r2_retry.calls.load(), 0);
  EXPECT_EQ(log_.queued(), 1u);
  log_.complete(LogStatus::kWritten);  // req-2
  ASSERT_EQ(r2.calls.load(), 1);
  ASSERT_EQ(r2.result.outcome, Outcome::kOk);
  ASSERT_EQ(r2_retry.calls.load(), 1);
  EXPECT_EQ(r2_retry.result.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(r2_retry.result.voucher->code(), r2.result.voucher->code());
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 1);
  EXPECT_EQ(log_.voucher_count(), 2);
}

TEST_F(DeferredLogTest, AMemberWhoseClaimCameToNothingIsANewcomerAgain) {
  // A member whose claim came to nothing holds nothing here (their record
  // is released), so their next press is decided as a newcomer's: when the
  // store says another replica has given them a voucher meanwhile, they are
  // looked up instead of taking stock.
  ASSERT_TRUE(engine_.create_campaign(small_spec()).has_value());
  RecordingClaim first;
  start(first, "gd-2024", "m1");
  ASSERT_EQ(log_.queued(), 1u);
  log_.complete(LogStatus::kUnavailable);
  ASSERT_EQ(first.calls.load(), 1);
  ASSERT_EQ(first.result.outcome, Outcome::kLogUnavailable);
  ASSERT_EQ(log_.member_lookups(), 0);

  ASSERT_NE(log_.stock(), nullptr);
  log_.stock()->note_store_holder("m1", "", true);
  RecordingClaim again;
  start(again, "gd-2024", "m1");
  EXPECT_EQ(log_.member_lookups(), 1) << "the store names m1 a holder: looked up first";
  // The store holds nothing for m1 here (the feed ran ahead): the press
  // then claims.
  ASSERT_EQ(log_.queued(), 1u);
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(again.calls.load(), 1);
  EXPECT_EQ(again.result.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("gd-2024")->members, 1);
}

TEST_F(DeferredLogTest, ACancelWhileTheMembersNextClaimIsInFlightKeepsTheirRecord) {
  // The member's only voucher is cancelled while their next claim is in
  // flight: for a moment they hold nothing here, but the claim in flight
  // keeps their record, and the claim finds it again when it ends.
  CampaignSpec spec = small_spec("multi");
  spec.per_member_limit = 2;
  ASSERT_TRUE(engine_.create_campaign(spec).has_value());
  RecordingClaim r1, r2, r2_retry;
  start(r1, "multi", "m1", "", "req-1");
  log_.complete(LogStatus::kWritten);
  ASSERT_EQ(r1.result.outcome, Outcome::kOk);
  start(r2, "multi", "m1", "", "req-2");
  ASSERT_EQ(log_.queued(), 1u);

  struct Cancel final : CancelOp {
    Outcome outcome = Outcome::kInternal;
    void on_cancel_done(Outcome o, VoucherPtr) override { outcome = o; }
  } cancel;
  const CodeString first_code = r1.result.voucher->code();
  cancel.code = first_code.view();
  engine_.cancel(cancel);
  ASSERT_EQ(cancel.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 0) << "m1 holds nothing here now";

  log_.complete(LogStatus::kWritten);  // req-2
  ASSERT_EQ(r2.calls.load(), 1);
  ASSERT_EQ(r2.result.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 1);
  // The record the claim ended on is m1's: a retry of req-2 is answered
  // from it, with the same voucher and no new claim.
  start(r2_retry, "multi", "m1", "", "req-2");
  ASSERT_EQ(r2_retry.calls.load(), 1);
  EXPECT_EQ(r2_retry.result.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(r2_retry.result.voucher, r2.result.voucher);
  EXPECT_EQ(log_.queued(), 0u);
  EXPECT_EQ(log_.voucher_count(), 2);
}

// ---------------------------------------------------------------- concurrency

TEST(ClaimEngineConcurrencyTest, NoOversellNoDoubleVoucherUnderContention) {
  constexpr int kThreads = 4;
  constexpr int kMembers = 20'000;
  constexpr int kPresses = 3;
  constexpr std::int64_t kStock = 5'000;
  constexpr int kSkus = 7;

  MemoryClaimLog log;
  FakeClock clock(kStart + kHour);
  DeterministicRandom random(777);
  const std::vector<std::uint8_t> secret = test_secret();
  ClaimEngine engine(log, clock, random, secret);

  CampaignSpec spec = small_spec("rush");
  spec.skus.clear();
  std::int64_t assigned = 0;
  for (int i = 0; i < kSkus; ++i) {
    const std::int64_t units = (i == kSkus - 1) ? kStock - assigned : kStock / kSkus + (i % 3) - 1;
    assigned += units;
    spec.skus.push_back({"sku-" + std::to_string(i), i % 2 ? "site-002" : "site-001",
                         SkuKind::kHotel, "Room " + std::to_string(i), 10'000 + i, units});
  }
  ASSERT_EQ(assigned, kStock);
  ASSERT_TRUE(engine.create_campaign(spec).has_value());

  std::vector<std::string> members;
  members.reserve(kMembers);
  for (int m = 0; m < kMembers; ++m) members.push_back("member-" + std::to_string(m));
  const auto ops = std::make_unique<RecordingClaim[]>(kMembers * kPresses);
  for (int m = 0; m < kMembers; ++m) {
    for (int k = 0; k < kPresses; ++k) {
      RecordingClaim& op = ops[m * kPresses + k];
      op.campaign_id = "rush";
      op.member_id = members[m];
    }
  }

  // Press k of member m runs on thread (m + k) % 4, and all threads walk the
  // members in the same order, so one member's presses race on different threads.
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int m = 0; m < kMembers; ++m) {
        for (int k = 0; k < kPresses; ++k) {
          if ((m + k) % kThreads == t) engine.claim(ops[m * kPresses + k]);
        }
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();

  std::int64_t ok = 0;
  std::int64_t already = 0;
  std::int64_t sold_out = 0;
  std::set<std::string> codes;
  std::vector<std::int64_t> per_sku(kSkus, 0);
  int members_with_voucher = 0;
  for (int m = 0; m < kMembers; ++m) {
    std::string member_code;
    int member_ok = 0;
    for (int k = 0; k < kPresses; ++k) {
      const RecordingClaim& op = ops[m * kPresses + k];
      ASSERT_EQ(op.calls.load(), 1) << members[m] << " press " << k;
      const ClaimResult& r = op.result;
      switch (r.outcome) {
        case Outcome::kOk:
          ++ok;
          ++member_ok;
          ASSERT_NE(r.voucher, nullptr);
          EXPECT_TRUE(codes.insert(std::string(r.voucher->code())).second)
              << "duplicate code " << r.voucher->code();
          ++per_sku[std::stoi(r.voucher->sku_id().substr(4))];
          break;
        case Outcome::kAlreadyClaimed:
          ++already;
          ASSERT_NE(r.voucher, nullptr);
          break;
        case Outcome::kSoldOut:
          ++sold_out;
          ASSERT_EQ(r.voucher, nullptr);
          break;
        default:
          FAIL() << members[m] << " press " << k << ": unexpected " << outcome_name(r.outcome);
      }
      if (r.voucher) {
        ASSERT_EQ(r.voucher->member_id(), members[m]);
        if (member_code.empty()) member_code = r.voucher->code();
        ASSERT_EQ(r.voucher->code(), member_code)
            << members[m] << " got two different codes; press " << k << " was "
            << outcome_name(r.outcome) << ", press 0 was "
            << outcome_name(ops[m * kPresses].result.outcome);
      }
    }
    ASSERT_LE(member_ok, 1) << members[m];
    if (!member_code.empty()) {
      ++members_with_voucher;
      ASSERT_EQ(member_ok, 1) << members[m] << " was answered ALREADY_CLAIMED without a claim";
    }
  }
  EXPECT_EQ(ok, kStock);
  EXPECT_EQ(codes.size(), static_cast<std::size_t>(kStock));
  EXPECT_EQ(members_with_voucher, kStock);
  EXPECT_EQ(ok + already + sold_out, kMembers * kPresses);
  EXPECT_EQ(log.voucher_count(), kStock);
  for (int i = 0; i < kSkus; ++i) EXPECT_EQ(per_sku[i], spec.skus[i].stock) << "sku " << i;

  auto stats = engine.campaign_stats("rush");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, kStock);
  EXPECT_EQ(stats->remaining, 0);
  EXPECT_EQ(stats->stock_total, kStock);
  EXPECT_EQ(stats->members, kStock);

  // Every issued code is found again.
  int found = 0;
  for (const std::string& code : codes) {
    RecordingLookup l;
    l.code = code;
    engine.get_voucher(l);
    if (l.calls == 1 && l.outcome == Outcome::kOk && l.found->code() == code) ++found;
  }
  EXPECT_EQ(found, kStock);

  // Sold out for a newcomer; a winner still gets their voucher.
  RecordingClaim late;
  late.campaign_id = "rush";
  late.member_id = "member-late";
  engine.claim(late);
  EXPECT_EQ(late.result.outcome, Outcome::kSoldOut);
}

// Many presses of one member with per_member_limit 3 and a handful of request
// ids, from 4 threads at once: each member ends with exactly 3 vouchers, one
// per distinct winning request id, and retries of a request id agree.
TEST(ClaimEngineConcurrencyTest, PerMemberLimitHoldsUnderContention) {
  constexpr int kThreads = 4;
  constexpr int kMembers = 1'000;
  constexpr int kRequestIds = 5;
  constexpr int kRepeats = 2;  // each request id is pressed twice
  constexpr int kOpsPerMember = kRequestIds * kRepeats;

  MemoryClaimLog log;
  FakeClock clock(kStart + kHour);
  DeterministicRandom random(4242);
  const std::vector<std::uint8_t> secret = test_secret();
  ClaimEngine engine(log, clock, random, secret);
  CampaignSpec spec = small_spec("limit3");
  spec.per_member_limit = 3;
  spec.skus[0].stock = 10 * kMembers;  // plenty
  ASSERT_TRUE(engine.create_campaign(spec).has_value());

  std::vector<std::string> members;
  // (Not "m" + std::to_string(m): g++ 12 -O3 raises a false -Wrestrict on a 1-char literal.)
  for (int m = 0; m < kMembers; ++m) members.push_back("member-" + std::to_string(m));
  std::vector<std::string> request_ids;
  for (int r = 0; r < kRequestIds; ++r) request_ids.push_back("req-" + std::to_string(r));
  const auto ops = std::make_unique<RecordingClaim[]>(kMembers * kOpsPerMember);
  for (int m = 0; m < kMembers; ++m) {
    for (int j = 0; j < kOpsPerMember; ++j) {
      RecordingClaim& op = ops[m * kOpsPerMember + j];
      op.campaign_id = "limit3";
      op.member_id = members[m];
      op.request_id = request_ids[j % kRequestIds];
    }
  }
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int m = 0; m < kMembers; ++m) {
        for (int j = 0; j < kOpsPerMember; ++j) {
          if ((m + j) % kThreads == t) engine.claim(ops[m * kOpsPerMember + j]);
        }
      }
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();

  std::int64_t total_ok = 0;
  for (int m = 0; m < kMembers; ++m) {
    std::set<std::string> member_codes;
    std::vector<std::string> code_of_request(kRequestIds);
    int ok = 0;
    for (int j = 0; j < kOpsPerMember; ++j) {
      const RecordingClaim& op = ops[m * kOpsPerMember + j];
      ASSERT_EQ(op.calls.load(), 1);
      const ClaimResult& r = op.result;
      ASSERT_TRUE(r.outcome == Outcome::kOk || r.outcome == Outcome::kAlreadyClaimed)
          << members[m] << ": " << outcome_name(r.outcome);
      ASSERT_NE(r.voucher, nullptr);
      ASSERT_EQ(r.voucher->member_id(), members[m]);
      member_codes.insert(std::string(r.voucher->code()));
      if (r.outcome == Outcome::kOk) {
        ++ok;
        ASSERT_EQ(r.voucher->request_id(), request_ids[j % kRequestIds]);
      }
      // A request id whose voucher exists always gets that voucher back.
      if (r.voucher->request_id() == request_ids[j % kRequestIds]) {
        std::string& known = code_of_request[j % kRequestIds];
        if (known.empty()) known = r.voucher->code();
        ASSERT_EQ(known, r.voucher->code()) << members[m] << " request " << j % kRequestIds;
      }
    }
    ASSERT_EQ(ok, 3) << members[m];
    ASSERT_EQ(member_codes.size(), 3u) << members[m];
    total_ok += ok;
  }
  EXPECT_EQ(log.voucher_count(), 3 * kMembers);
  EXPECT_EQ(total_ok, 3 * kMembers);
  auto stats = engine.campaign_stats("limit3");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->issued, 3 * kMembers);
  EXPECT_EQ(stats->members, kMembers);
}

TEST_F(ClaimEngineTest, RedeemOnceAtItsSiteAndRetriesGetTheSameAnswer) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1", "sku-001");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  const std::string code = std::string(r.voucher->code());

  // Another site: refused, and nothing changes.
  EXPECT_EQ(redeem(code, "site-002", "desk-9")->outcome, Outcome::kWrongSite);
  EXPECT_EQ(lookup(code).state, VoucherState::kIssued);

  const auto first = redeem(lowercase(code), "site-001", "desk-1");
  ASSERT_EQ(first->outcome, Outcome::kOk);
  EXPECT_FALSE(first->already);
  EXPECT_EQ(first->voucher->state(), VoucherState::kRedeemed);
  EXPECT_EQ(first->voucher->redeemed_site_id(), "site-001");
  EXPECT_EQ(first->voucher->redeemed_at_us(), clock_.now_us());
  EXPECT_EQ(first->voucher->redeem_request_id(), "desk-1");

  clock_.advance_us(kMicrosPerSecond);
  // The same request again (its answer was lost): OK, already redeemed.
  const auto retry = redeem(code, "site-001", "desk-1");
  EXPECT_EQ(retry->outcome, Outcome::kOk);
  EXPECT_TRUE(retry->already);
  EXPECT_EQ(retry->voucher->redeemed_at_us(), first->voucher->redeemed_at_us());
  // Another request: refused, naming when and where.
  const auto other = redeem(code, "site-001", "desk-2");
  EXPECT_EQ(other->outcome, Outcome::kAlreadyRedeemed);
  ASSERT_NE(other->voucher, nullptr);
  EXPECT_EQ(other->voucher->redeemed_site_id(), "site-001");
  EXPECT_EQ(other->voucher->redeemed_at_us(), first->voucher->redeemed_at_us());
  // Without a request id there is no idempotency: a second one is refused.
  EXPECT_EQ(redeem(code, "site-001")->outcome, Outcome::kAlreadyRedeemed);

  const RecordingLookup seen = lookup(code);
  EXPECT_EQ(seen.state, VoucherState::kRedeemed);
  EXPECT_EQ(seen.found->redeemed_site_id(), "site-001");
  auto stats = engine_.campaign_stats("gd-2024");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->redeemed, 1);
  EXPECT_EQ(stats->skus[0].redeemed, 1);
}

TEST_F(ClaimEngineTest, RedeemRefusesBadInputBeforeTheClaimLog) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1", "sku-001");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  const std::string code = std::string(r.voucher->code());

  const auto no_site = redeem(code, "");
  EXPECT_EQ(no_site->outcome, Outcome::kInvalidArgument);
  EXPECT_STREQ(no_site->field, "site_id");
  EXPECT_EQ(redeem(code, "site-001", std::string(limits::kIdBytesMax + 1, 'r'))->outcome,
            Outcome::kInvalidArgument);
  std::string typo = code;
  typo[3] = code[3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(redeem(typo, "site-001")->outcome, Outcome::kMistypedCode);
  EXPECT_EQ(redeem("not-a-code", "site-001")->outcome, Outcome::kMistypedCode);
  // A well-formed code whose MAC does not verify.
  auto fields = parse_code(code);
  ASSERT_TRUE(fields.has_value());
  CodeFields forged = *fields;
  forged.random[0] ^= 1;
  EXPECT_EQ(redeem(format_code(forged), "site-001")->outcome, Outcome::kVoucherNotFound);
  EXPECT_EQ(log_.redeems(), 0) << "bad input must not reach the claim log";
  EXPECT_EQ(lookup(code).state, VoucherState::kIssued);
}

TEST_F(ClaimEngineTest, RedeemAfterExpiryIsRefusedAndTheVoucherShowsExpired) {
  ASSERT_NE(create(small_spec()), nullptr);  // vouchers valid 10 days
  const ClaimResult r = claim("gd-2024", "member-1", "sku-002");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  clock_.set_us(r.voucher->expires_at_us());
  const auto late = redeem(std::string(r.voucher->code()), "site-002", "desk-1");
  EXPECT_EQ(late->outcome, Outcome::kVoucherExpired);
  EXPECT_EQ(lookup(r.voucher->code().view()).state, VoucherState::kExpired);
  // Stats count it as expired; a redeemed voucher is not.
  const CampaignSpec& spec = engine_.find_campaign("gd-2024")->spec();
  auto expired = engine_.expired_counts(spec);
  ASSERT_TRUE(expired.has_value());
  EXPECT_EQ((*expired)[1], 1);
  clock_.set_us(r.voucher->expires_at_us() - 1);  // one microsecond before: still fine
  EXPECT_EQ(engine_.expired_counts(spec).value()[1], 0);
  EXPECT_EQ(redeem(std::string(r.voucher->code()), "site-002", "desk-1")->outcome, Outcome::kOk);
  clock_.set_us(r.voucher->expires_at_us() + 1);
  EXPECT_EQ(engine_.expired_counts(spec).value()[1], 0);
}

TEST_F(ClaimEngineTest, SimultaneousRedemptionsOfOneCodeSucceedExactlyOnce) {
  ASSERT_NE(create(small_spec()), nullptr);
  const ClaimResult r = claim("gd-2024", "member-1", "sku-001");
  ASSERT_EQ(r.outcome, Outcome::kOk);
  std::atomic<int> ok{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        const auto op =
            redeem(std::string(r.voucher->code()), "site-001", "desk-" + std::to_string(t * 8 + i));
        if (op->outcome == Outcome::kOk && !op->already) {
          ++ok;
        } else if (op->outcome == Outcome::kAlreadyRedeemed) {
          ++refused;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(refused.load(), 63);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(ClaimEngineTest, CancelReturnsTheUnitAndFreesTheAllowance) {
  ASSERT_NE(create(small_spec()), nullptr);  // sku-002 has one unit
  const ClaimResult first = claim("gd-2024", "member-1", "sku-002");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  EXPECT_EQ(claim("gd-2024", "member-2", "sku-002").outcome, Outcome::kSkuSoldOut);

  auto [outcome, cancelled] = cancel(std::string(first.voucher->code()));
  ASSERT_EQ(outcome, Outcome::kOk);
  EXPECT_EQ(cancelled->state(), VoucherState::kCancelled);
  EXPECT_EQ(lookup(first.voucher->code().view()).state, VoucherState::kCancelled);
  EXPECT_EQ(cancel(std::string(first.voucher->code())).first, Outcome::kOk);  // again: unchanged
  EXPECT_EQ(redeem(std::string(first.voucher->code()), "site-002", "desk")->outcome,
            Outcome::kVoucherCancelled);

  // The unit is back: someone else can have it; the member's allowance is
  // free: they could claim again (here the one unit went to member-2).
  const ClaimResult second = claim("gd-2024", "member-2", "sku-002");
  ASSERT_EQ(second.outcome, Outcome::kOk);
  EXPECT_NE(second.voucher->code(), first.voucher->code());
  const ClaimResult again = claim("gd-2024", "member-1", "sku-001");
  EXPECT_EQ(again.outcome, Outcome::kOk);
  auto stats = engine_.campaign_stats("gd-2024");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->skus[1].issued, 1);
  EXPECT_EQ(stats->skus[1].remaining, 0);

  // A redeemed voucher is not cancelled.
  ASSERT_EQ(redeem(std::string(second.voucher->code()), "site-002", "desk")->outcome, Outcome::kOk);
  EXPECT_EQ(cancel(std::string(second.voucher->code())).first, Outcome::kAlreadyRedeemed);
  EXPECT_EQ(cancel("mistyped").first, Outcome::kMistypedCode);
}

TEST_F(ClaimEngineTest, CancelsAmongSeveralVouchersKeepTheRestInOrder) {
  CampaignSpec spec = small_spec("multi");
  spec.per_member_limit = 3;
  spec.skus[0].stock = 10;
  spec.skus[1].stock = 10;
  ASSERT_NE(create(spec), nullptr);
  std::vector<ClaimResult> got;
  for (const char* request : {"req-1", "req-2", "req-3"}) {
    got.push_back(claim("multi", "m1", "", request));
    ASSERT_EQ(got.back().outcome, Outcome::kOk) << request;
  }
  const auto code = [](const ClaimResult& r) { return std::string(r.voucher->code()); };

  // The oldest goes: the other two are still the member's, each under its request.
  ASSERT_EQ(cancel(code(got[0])).first, Outcome::kOk);
  EXPECT_EQ(code(claim("multi", "m1", "", "req-2")), code(got[1]));
  EXPECT_EQ(code(claim("multi", "m1", "", "req-3")), code(got[2]));
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 1);
  // The allowance it freed takes one more claim, and then the member is at
  // the limit again; the answer shows the newest voucher.
  const ClaimResult r4 = claim("multi", "m1", "", "req-4");
  ASSERT_EQ(r4.outcome, Outcome::kOk);
  const ClaimResult full = claim("multi", "m1", "", "req-5");
  ASSERT_EQ(full.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(code(full), code(r4));

  // One from the middle goes, then the rest: the member holds nothing and
  // is no longer counted, and may claim again.
  ASSERT_EQ(cancel(code(got[2])).first, Outcome::kOk);
  EXPECT_EQ(code(claim("multi", "m1", "", "req-2")), code(got[1]));
  EXPECT_EQ(code(claim("multi", "m1", "", "req-4")), code(r4));
  ASSERT_EQ(cancel(code(got[1])).first, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 1);
  ASSERT_EQ(cancel(code(r4)).first, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 0);
  const ClaimResult fresh = claim("multi", "m1", "", "req-6");
  ASSERT_EQ(fresh.outcome, Outcome::kOk);
  EXPECT_EQ(engine_.campaign_stats("multi")->members, 1);
  EXPECT_EQ(engine_.campaign_stats("multi")->issued, 1);
}

TEST_F(ClaimEngineTest, CancelKeepsTheAllowanceWhenTheCampaignSaysSo) {
  CampaignSpec spec = small_spec();
  spec.cancel_keeps_allowance = true;
  ASSERT_NE(create(spec), nullptr);
  const ClaimResult first = claim("gd-2024", "member-1", "sku-001");
  ASSERT_EQ(first.outcome, Outcome::kOk);
  ASSERT_EQ(cancel(std::string(first.voucher->code())).first, Outcome::kOk);
  const ClaimResult again = claim("gd-2024", "member-1", "sku-001");
  EXPECT_EQ(again.outcome, Outcome::kAlreadyClaimed);
  EXPECT_EQ(claim("gd-2024", "member-2", "sku-001").outcome, Outcome::kOk);
  EXPECT_EQ(claim("gd-2024", "member-3", "sku-001").outcome, Outcome::kOk);  // the unit came back
}

TEST_F(ClaimEngineTest, ListMemberVouchersAcrossCampaignsWithTheirStates) {
  ASSERT_NE(create(small_spec("gd-2024")), nullptr);
  CampaignSpec two = small_spec("sz-2024");
  two.per_member_limit = 2;
  ASSERT_NE(create(two), nullptr);
  const ClaimResult a = claim("gd-2024", "member-1", "sku-001");
  clock_.advance_us(kMicrosPerSecond);
  const ClaimResult b = claim("sz-2024", "member-1", "sku-001", "req-1");
  clock_.advance_us(kMicrosPerSecond);
  const ClaimResult c = claim("sz-2024", "member-1", "sku-002", "req-2");
  ASSERT_EQ(a.outcome, Outcome::kOk);
  ASSERT_EQ(b.outcome, Outcome::kOk);
  ASSERT_EQ(c.outcome, Outcome::kOk);
  ASSERT_EQ(claim("gd-2024", "member-2", "sku-001").outcome, Outcome::kOk);
  ASSERT_EQ(redeem(std::string(b.voucher->code()), "site-001", "desk")->outcome, Outcome::kOk);

  auto [outcome, all] = list("member-1");
  ASSERT_EQ(outcome, Outcome::kOk);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]->code(), a.voucher->code());  // campaign by campaign, oldest first
  EXPECT_EQ(all[1]->code(), b.voucher->code());
  EXPECT_EQ(all[1]->state(), VoucherState::kRedeemed);
  EXPECT_EQ(all[2]->code(), c.voucher->code());
  EXPECT_EQ(all[2]->state(), VoucherState::kIssued);

  auto [one_outcome, one] = list("member-1", "sz-2024");
  EXPECT_EQ(one_outcome, Outcome::kOk);
  EXPECT_EQ(one.size(), 2u);
  EXPECT_TRUE(list("member-9").second.empty());
  EXPECT_EQ(list("").first, Outcome::kInvalidArgument);
  EXPECT_EQ(list("member-1", "no-such").first, Outcome::kCampaignNotFound);
}

}  // namespace
}  // namespace voucherd
