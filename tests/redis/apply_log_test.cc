// apply_log_test — proves, against a real redis-server started by the test,
// that the scripts of APPLY_THEN_DRAW campaigns (server/redis/apply_log.*)
// do what the store promises: applications recorded, repeated, replaced,
// refused once the window is over (by Redis's clock), once the allocation
// began, and past the campaign's bound, each stored exactly; a member's
// application read PENDING, SELECTED (with the voucher, after declaring its
// record key) and NOT_SELECTED; the allocation's turn taken too early, begun
// (freezing the applications), renewed, refused to a second replica, handed
// over after a lapse or a release (the old owner fenced by the epoch); its
// steps written by compare-and-set on the cursor, a lost answer recognised
// and not applied twice, and the pair checks refusing a winner who holds a
// voucher or a SKU short of stock while writing nothing; the counts exact to
// the unit; every application read back once over several HSCAN pages; and
// stored values or replies that are not well formed are errors, never a
// crash.
#include "server/redis/apply_log.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "server/redis/link.h"
#include "server/redis/records.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/redis_server.h"

namespace voucherd::testing {
namespace {

using redis::AllocBatchReply;
using redis::ApplicationReply;
using redis::Reply;
using std::chrono::milliseconds;

UnixMicros now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr UnixMicros kHour = INT64_C(3'600'000'000);

// An APPLY_THEN_DRAW campaign "ap" with two SKUs, "spring" (stock 2) and
// "room" (stock 1), open from an hour ago until `ends`, allocated at
// `allocation_at`.
CampaignSpec apply_campaign(UnixMicros ends, UnixMicros allocation_at) {
  return SpecBuilder("ap", "Apply test")
      .window(now_us() - kHour, ends)
      .apply_then_draw(allocation_at)
      .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Hot spring")
      .sku("spring", 2, 19800, "Two tickets")
      .sku("room", 1, 39800, "One night");
}

class Application final : public ApplicationLogWrite {
 public:
  Application(const CampaignSpec& spec, std::string member, std::string request,
              std::vector<std::uint32_t> preferred)
      : member_(std::move(member)), request_(std::move(request)), preferred_(std::move(preferred)) {
    application = ApplicationRequestView{&spec, member_, request_, preferred_, now_us()};
  }
  void on_application_logged(ApplyLogStatus, const ApplicationEntry&) override {}

 private:
  std::string member_;
  std::string request_;
  std::vector<std::uint32_t> preferred_;
};

// A voucher of `sku` for `member`, as the allocation mints it (no request id).
AllocatedVoucher winner(const CampaignSpec& spec, std::uint32_t sku, const std::string& member,
                        char letter) {
  VoucherFields v;
  v.code = std::string(5, letter) + "-00000-00000-00000-00000-0000" + letter;
  v.campaign_id = spec.id;
  v.sku_id = spec.skus[sku].id;
  v.site_id = "site-1";
  v.member_id = member;
  v.sku_kind = SkuKind::kHotSpring;
  v.face_value_cents = spec.skus[sku].face_value_cents;
  v.issued_at_us = now_us();
  v.expires_at_us = v.issued_at_us + 24 * kHour;
  return {sku, VoucherRecord::make(v)};
}

class ApplyLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conn = server_.connect();
    ASSERT_TRUE(conn.has_value()) << conn.error();
    conn_ = std::move(*conn);
    for (const redis::Script* s :
         {&redis::apply_script(), &redis::application_script(), &redis::alloc_take_script(),
          &redis::alloc_release_script(), &redis::alloc_batch_script()}) {
      ASSERT_TRUE(conn_->load(*s).has_value());
    }
  }

  Reply send(const redis::Command& command) {
    auto reply = conn_->command(command);
    EXPECT_TRUE(reply.has_value()) << reply.error();
    return reply.value_or(Reply{});
  }

  std::vector<redis::ApplyReply> apply(const CampaignSpec& spec,
                                       std::vector<ApplicationLogWrite*> writes,
                                       std::int64_t bound = 100) {
    auto parsed =
        redis::parse_apply_reply(spec, writes, send(redis::apply_command(spec, writes, bound)));
    EXPECT_TRUE(parsed.has_value()) << parsed.error();
    return parsed.value_or(std::vector<redis::ApplyReply>{});
  }

  ApplicationReply application(const CampaignSpec& spec, const std::string& member,
                               const std::string& code = "") {
    auto parsed = redis::parse_application_reply(
        spec, member, send(redis::application_command(spec, member, code)));
    EXPECT_TRUE(parsed.has_value()) << parsed.error();
    return parsed.value_or(ApplicationReply{});
  }

  AllocationTurn take(const CampaignSpec& spec, const std::string& replica,
                      milliseconds lease = milliseconds(10'000)) {
    auto parsed =
        redis::parse_alloc_take_reply(spec, send(redis::alloc_take_command(spec, replica, lease)));
    EXPECT_TRUE(parsed.has_value()) << parsed.error();
    return parsed.value_or(AllocationTurn{});
  }

  AllocBatchReply write(const CampaignSpec& spec, const AllocationTurn& turn, std::int64_t from,
                        std::int64_t to, const std::vector<AllocatedVoucher>& winners) {
    auto parsed = redis::parse_alloc_batch_reply(
        send(redis::alloc_batch_command(spec, turn, from, to, winners)));
    EXPECT_TRUE(parsed.has_value()) << parsed.error();
    return parsed.value_or(AllocBatchReply{});
  }

  // Every field of the campaign's keys that tells the store's state, for
  // "nothing changed" checks.
  std::string state() const {
    std::string out;
    for (const char* key : {"vd:{ap}:alloc", "vd:{ap}:stock", "vd:{ap}:issued", "vd:{ap}:won",
                            "vd:{ap}:apps", "vd:{ap}:expiring"}) {
      out += std::string(key) + "=" + server_.cli({"HGETALL", key}) + "\n";
    }
    std::istringstream keys(server_.cli({"KEYS", "vd:{ap}:[mv]:*"}));
    std::set<std::string> sorted;
    for (std::string key; std::getline(keys, key);) sorted.insert(key);
    for (const std::string& key : sorted) out += key + "\n";
    return out;
  }

  TempDir dir_;
  RedisServer server_{dir_, /*aof=*/false};
  std::unique_ptr<redis::Connection> conn_;
};

TEST_F(ApplyLogTest, ApplicationsAreRecordedRepeatedReplacedAndBounded) {
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() + 2 * kHour);
  Application ann(spec, "ann", "a-1", {1, 0});
  Application bob(spec, "bob", "b-1", {});
  Application ann_retry(spec, "ann", "a-1", {0});  // the same press, other SKUs
  Application bob_again(spec, "bob", "b-2", {1});
  const UnixMicros before = now_us() / 1000 * 1000;

  auto first = apply(spec, {&ann, &bob, &ann_retry, &bob_again});
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[0].status, ApplyLogStatus::kRecorded);
  EXPECT_EQ(first[0].stored.member_id, "ann");
  EXPECT_EQ(first[0].stored.preferred, (std::vector<std::uint32_t>{1, 0}));
  EXPECT_GE(first[0].stored.applied_at_us, before);
  EXPECT_LE(first[0].stored.applied_at_us, now_us());
  EXPECT_EQ(first[1].status, ApplyLogStatus::kRecorded);
  EXPECT_TRUE(first[1].stored.preferred.empty());
  EXPECT_EQ(first[2].status, ApplyLogStatus::kRepeat);
  EXPECT_EQ(first[2].stored, first[0].stored);  // unchanged, the first SKUs
  EXPECT_EQ(first[3].status, ApplyLogStatus::kReplaced);
  EXPECT_EQ(first[3].stored.preferred, std::vector<std::uint32_t>{1});

  // Stored as the header says, by Redis's milliseconds.
  const std::string ann_value = server_.cli({"HGET", "vd:{ap}:apps", "ann"});
  EXPECT_EQ(ann_value, std::to_string(first[0].stored.applied_at_us / 1000) +
                           "\x1f"
                           "a-1\x1f"
                           "1,0");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:apps", "bob"}),
            std::to_string(first[3].stored.applied_at_us / 1000) +
                "\x1f"
                "b-2\x1f"
                "1");
  EXPECT_EQ(server_.cli({"HLEN", "vd:{ap}:apps"}), "2");

  // At the bound (2), a new member is refused and nothing is stored; a
  // member already in may still change their application.
  Application cat(spec, "cat", "c-1", {});
  Application ann_change(spec, "ann", "a-2", {});
  auto bounded = apply(spec, {&cat, &ann_change}, /*bound=*/2);
  ASSERT_EQ(bounded.size(), 2u);
  EXPECT_EQ(bounded[0].status, ApplyLogStatus::kFull);
  EXPECT_EQ(bounded[1].status, ApplyLogStatus::kReplaced);
  EXPECT_EQ(server_.cli({"HEXISTS", "vd:{ap}:apps", "cat"}), "0");
  EXPECT_EQ(server_.cli({"HLEN", "vd:{ap}:apps"}), "2");

  // A store that holds an application it cannot read answers an error.
  ASSERT_EQ(server_.cli({"HSET", "vd:{ap}:apps", "bob",
                         "12\x1f"
                         "b-3\x1f"
                         "7"}),
            "0");
  Application bob_third(spec, "bob", "b-3", {});
  std::vector<ApplicationLogWrite*> one{&bob_third};
  const auto unreadable =
      redis::parse_apply_reply(spec, one, send(redis::apply_command(spec, one, 100)));
  EXPECT_FALSE(unreadable.has_value());  // SKU 7 is not one of the campaign's
}

TEST_F(ApplyLogTest, TheWindowOpensAndClosesByRedisClockAndWhenTheAllocationBegins) {
  // Opens in an hour (a replica whose clock runs ahead would let it
  // through): refused, nothing stored.
  CampaignSpec early = apply_campaign(now_us() + 2 * kHour, now_us() + 3 * kHour);
  early.starts_at_us = now_us() + kHour;
  Application eager(early, "ann", "a-1", {});
  auto not_open = apply(early, {&eager});
  ASSERT_EQ(not_open.size(), 1u);
  EXPECT_EQ(not_open[0].status, ApplyLogStatus::kNotOpen);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:apps"}), "0");

  // Ended a second ago: refused, nothing stored.
  const CampaignSpec ended = apply_campaign(now_us() - 1'000'000, now_us() + kHour);
  Application late(ended, "ann", "a-1", {});
  auto refused = apply(ended, {&late});
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].status, ApplyLogStatus::kClosed);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:apps"}), "0");

  // Open, but the allocation has begun (an allocation_at already passed):
  // the set is frozen, even for a member who applied.
  const CampaignSpec open = apply_campaign(now_us() + kHour, now_us() + kHour);
  Application ann(open, "ann", "a-1", {});
  ASSERT_EQ(apply(open, {&ann})[0].status, ApplyLogStatus::kRecorded);
  const CampaignSpec due = apply_campaign(now_us() + kHour, now_us() - 1'000);
  const AllocationTurn turn = take(due, "r-1");
  ASSERT_EQ(turn.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(turn.total, 1);
  Application ann_change(open, "ann", "a-2", {0});
  Application bob(open, "bob", "b-1", {});
  auto frozen = apply(open, {&ann_change, &bob});
  ASSERT_EQ(frozen.size(), 2u);
  EXPECT_EQ(frozen[0].status, ApplyLogStatus::kClosed);
  EXPECT_EQ(frozen[1].status, ApplyLogStatus::kClosed);
  EXPECT_EQ(server_.cli({"HLEN", "vd:{ap}:apps"}), "1");
}

TEST_F(ApplyLogTest, TheAllocationIsWrittenStepByStepByOneTurnAtATime) {
  const CampaignSpec open = apply_campaign(now_us() + kHour, now_us() + 2 * kHour);
  ASSERT_EQ(server_.cli({"HSET", "vd:{ap}:stock", "spring", "2", "room", "1"}), "2");
  Application ann(open, "ann", "a-1", {1});
  Application bob(open, "bob", "b-1", {});
  Application cat(open, "cat", "c-1", {0});
  Application dan(open, "dan", "d-1", {1});
  ASSERT_EQ(apply(open, {&ann, &bob, &cat, &dan}).size(), 4u);

  // Before allocation_at by Redis's clock: too early, nothing changes.
  EXPECT_EQ(take(open, "r-1").kind, AllocationTurn::Kind::kTooEarly);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:alloc"}), "0");
  EXPECT_EQ(application(open, "ann").state, ApplicationState::kPending);

  // Due: r-1 begins it and has the turn; r-2 is busy; r-1 again renews.
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() - 1'000);
  const AllocationTurn turn = take(spec, "r-1");
  ASSERT_EQ(turn.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(turn.owner, "r-1");
  EXPECT_EQ(turn.epoch, 1);
  EXPECT_EQ(turn.next, 0);
  EXPECT_EQ(turn.total, 4);
  EXPECT_EQ(turn.stock_left, (std::vector<std::int64_t>{2, 1}));
  const AllocationTurn busy = take(spec, "r-2");
  EXPECT_EQ(busy.kind, AllocationTurn::Kind::kBusy);
  EXPECT_EQ(busy.owner, "r-1");
  ASSERT_EQ(server_.cli({"HSET", "vd:{ap}:alloc", "beat", "1"}), "0");
  EXPECT_EQ(take(spec, "r-1").kind, AllocationTurn::Kind::kTaken);
  EXPECT_NE(server_.cli({"HGET", "vd:{ap}:alloc", "beat"}), "1");  // renewed

  // Positions [0, 2): ann wins the room, bob a spring ticket.
  const std::vector<AllocatedVoucher> step1{winner(spec, 1, "ann", 'A'),
                                            winner(spec, 0, "bob", 'B')};
  const AllocBatchReply written = write(spec, turn, 0, 2, step1);
  ASSERT_EQ(written.kind, AllocBatchReply::Kind::kWritten);
  EXPECT_EQ(written.turn.next, 2);
  EXPECT_EQ(written.turn.epoch, 1);
  EXPECT_EQ(written.turn.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:stock", "room"}), "0");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:stock", "spring"}), "1");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:issued", "room"}), "1");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:issued", "spring"}), "1");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:issued", "_members"}), "2");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:won", "ann"}), "1");
  EXPECT_EQ(server_.cli({"GET", "vd:{ap}:m:ann"}), step1[0].voucher->code());
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:alloc", "selected"}), "2");

  // The same step again (its answer lost): moved, with next = to, and
  // nothing written twice.
  const std::string after_step1 = state();
  const AllocBatchReply again = write(spec, turn, 0, 2, step1);
  EXPECT_EQ(again.kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(again.turn.owner, "r-1");
  EXPECT_EQ(again.turn.epoch, 1);
  EXPECT_EQ(again.turn.next, 2);
  EXPECT_EQ(state(), after_step1);

  // ann's application: SELECTED once her record key is declared.
  const ApplicationReply ask = application(spec, "ann");
  ASSERT_EQ(ask.kind, ApplicationReply::Kind::kRecordKey);
  EXPECT_EQ(ask.code, step1[0].voucher->code());
  const ApplicationReply ann_won = application(spec, "ann", ask.code);
  ASSERT_EQ(ann_won.kind, ApplicationReply::Kind::kFound);
  EXPECT_EQ(ann_won.state, ApplicationState::kSelected);
  EXPECT_EQ(ann_won.application.preferred, std::vector<std::uint32_t>{1});
  ASSERT_NE(ann_won.voucher, nullptr);
  EXPECT_EQ(ann_won.voucher->code(), step1[0].voucher->code());
  EXPECT_EQ(ann_won.voucher->sku_id(), "room");
  EXPECT_EQ(ann_won.voucher->member_id(), "ann");
  // cat is past the cursor: PENDING until the allocation is done.
  EXPECT_EQ(application(spec, "cat").state, ApplicationState::kPending);
  EXPECT_EQ(application(spec, "eve").kind, ApplicationReply::Kind::kNotFound);

  // The pair checks: a winner who holds a voucher, or a SKU short of stock,
  // refuses the step and writes nothing.
  const AllocationTurn at2 = written.turn;
  const AllocBatchReply held = write(spec, at2, 2, 3, {winner(spec, 0, "bob", 'C')});
  EXPECT_EQ(held.kind, AllocBatchReply::Kind::kHeld);
  EXPECT_EQ(held.name, "bob");
  const AllocBatchReply short_of =
      write(spec, at2, 2, 4, {winner(spec, 1, "cat", 'C'), winner(spec, 1, "dan", 'D')});
  EXPECT_EQ(short_of.kind, AllocBatchReply::Kind::kShort);
  EXPECT_EQ(short_of.name, "room");
  // A step from the wrong place, or by another replica, is fenced.
  const AllocBatchReply skipped = write(spec, at2, 3, 4, {winner(spec, 0, "dan", 'D')});
  EXPECT_EQ(skipped.kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(skipped.turn.next, 2);
  AllocationTurn stranger = at2;
  stranger.owner = "r-2";
  EXPECT_EQ(write(spec, stranger, 2, 4, {}).kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(state(), after_step1);

  // A step that does not fit the allocation is refused whole.
  const AllocBatchReply past_end = write(spec, at2, 2, 5, {winner(spec, 0, "cat", 'C')});
  EXPECT_EQ(past_end.kind, AllocBatchReply::Kind::kBadStep);
  EXPECT_EQ(past_end.name, "positions 2 to 5 of 4");
  const AllocBatchReply twice =
      write(spec, at2, 2, 4, {winner(spec, 0, "cat", 'C'), winner(spec, 1, "cat", 'D')});
  EXPECT_EQ(twice.kind, AllocBatchReply::Kind::kBadStep);
  EXPECT_EQ(twice.name, "member cat twice");
  EXPECT_EQ(state(), after_step1);

  // The last step: cat takes the spring ticket left, dan nothing; done.
  const AllocBatchReply last = write(spec, at2, 2, 4, {winner(spec, 0, "cat", 'C')});
  ASSERT_EQ(last.kind, AllocBatchReply::Kind::kWritten);
  EXPECT_EQ(last.turn.kind, AllocationTurn::Kind::kDone);
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:alloc", "state"}), "done");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:alloc", "selected"}), "3");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:stock", "spring"}), "0");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:issued", "_members"}), "3");
  EXPECT_EQ(server_.cli({"HLEN", "vd:{ap}:won"}), "3");
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:m:dan"}), "0");
  const ApplicationReply dan_lost = application(spec, "dan");
  EXPECT_EQ(dan_lost.state, ApplicationState::kNotSelected);
  EXPECT_EQ(dan_lost.voucher, nullptr);
  // The last step sent again (its answer lost): done, nothing written twice.
  const std::string after_last = state();
  const AllocBatchReply resent = write(spec, at2, 2, 4, {winner(spec, 0, "cat", 'C')});
  EXPECT_EQ(resent.kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(resent.turn.kind, AllocationTurn::Kind::kDone);
  EXPECT_EQ(resent.turn.next, 4);
  EXPECT_EQ(state(), after_last);
  // Any replica asking now hears it is done; a retry of a press made
  // before the freeze is told the window is closed.
  EXPECT_EQ(take(spec, "r-2").kind, AllocationTurn::Kind::kDone);
  EXPECT_EQ(take(spec, "r-1").kind, AllocationTurn::Kind::kDone);
  Application ann_retry(open, "ann", "a-1", {1});
  EXPECT_EQ(apply(open, {&ann_retry})[0].status, ApplyLogStatus::kClosed);
}

TEST_F(ApplyLogTest, ALapsedOrReleasedTurnPassesOnAndFencesTheOldOwner) {
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() - 1'000);
  ASSERT_EQ(server_.cli({"HSET", "vd:{ap}:stock", "spring", "2", "room", "1"}), "2");
  Application ann(spec, "ann", "a-1", {});
  Application bob(spec, "bob", "b-1", {});
  ASSERT_EQ(apply(spec, {&ann, &bob}).size(), 2u);
  const AllocationTurn first = take(spec, "r-1");
  ASSERT_EQ(first.kind, AllocationTurn::Kind::kTaken);

  // r-1 stops beating: after the lease (5 ms here), r-2 takes over with
  // epoch 2, and r-1's step is refused.
  std::this_thread::sleep_for(milliseconds(20));
  const AllocationTurn second = take(spec, "r-2", milliseconds(5));
  ASSERT_EQ(second.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(second.owner, "r-2");
  EXPECT_EQ(second.epoch, 2);
  EXPECT_EQ(second.next, 0);
  EXPECT_EQ(second.total, 2);
  const AllocBatchReply fenced = write(spec, first, 0, 1, {winner(spec, 0, "ann", 'A')});
  EXPECT_EQ(fenced.kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(fenced.turn.owner, "r-2");
  EXPECT_EQ(fenced.turn.epoch, 2);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:m:ann"}), "0");

  // r-2 lapses in turn and r-1 takes the turn back, with epoch 3: a step
  // r-1 sent under its first turn (epoch 1) is still refused, and so is
  // r-2's.
  std::this_thread::sleep_for(milliseconds(20));
  const AllocationTurn back = take(spec, "r-1", milliseconds(5));
  ASSERT_EQ(back.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(back.owner, "r-1");
  EXPECT_EQ(back.epoch, 3);
  const AllocBatchReply stale = write(spec, first, 0, 1, {winner(spec, 0, "ann", 'A')});
  EXPECT_EQ(stale.kind, AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(stale.turn.epoch, 3);
  EXPECT_EQ(write(spec, second, 0, 1, {winner(spec, 0, "ann", 'A')}).kind,
            AllocBatchReply::Kind::kMoved);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{ap}:m:ann"}), "0");

  // r-1 writes a step, then hands its turn on as it stops: r-3 takes it at
  // once, with a lease of an hour, from where r-1 left it.
  ASSERT_EQ(write(spec, back, 0, 1, {winner(spec, 0, "ann", 'A')}).kind,
            AllocBatchReply::Kind::kWritten);
  const Reply not_its_turn = send(redis::alloc_release_command(spec, "r-2"));
  ASSERT_EQ(not_its_turn.type, Reply::Type::kInteger);
  EXPECT_EQ(not_its_turn.integer, 0);
  const Reply released = send(redis::alloc_release_command(spec, "r-1"));
  ASSERT_EQ(released.type, Reply::Type::kInteger);
  EXPECT_EQ(released.integer, 1);
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:alloc", "beat"}), "0");
  const AllocationTurn third = take(spec, "r-3", milliseconds(3'600'000));
  ASSERT_EQ(third.kind, AllocationTurn::Kind::kTaken);
  EXPECT_EQ(third.epoch, 4);
  EXPECT_EQ(third.next, 1);
  EXPECT_EQ(third.stock_left, (std::vector<std::int64_t>{1, 1}));
  const AllocBatchReply done = write(spec, third, 1, 2, {winner(spec, 1, "bob", 'B')});
  ASSERT_EQ(done.kind, AllocBatchReply::Kind::kWritten);
  EXPECT_EQ(done.turn.kind, AllocationTurn::Kind::kDone);
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:alloc", "selected"}), "2");
  EXPECT_EQ(server_.cli({"HGET", "vd:{ap}:issued", "_members"}), "2");
}

TEST_F(ApplyLogTest, EveryApplicationIsReadBackOnceOverManyPages) {
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() + 2 * kHour);
  std::vector<std::unique_ptr<Application>> all;
  std::map<std::string, std::vector<std::uint32_t>> expected;
  std::vector<ApplicationLogWrite*> batch;
  constexpr int kMembers = 2'600;  // three HSCAN pages and some
  for (int i = 0; i < kMembers; ++i) {
    std::vector<std::uint32_t> preferred;
    if (i % 3 == 1) preferred = {1};
    if (i % 3 == 2) preferred = {0, 1};
    const std::string member = "m-" + std::to_string(i);
    expected[member] = preferred;
    all.push_back(std::make_unique<Application>(spec, member, "r", preferred));
    batch.push_back(all.back().get());
    if (batch.size() == 500 || i + 1 == kMembers) {
      ASSERT_EQ(apply(spec, batch, 1'000'000).size(), batch.size());
      batch.clear();
    }
  }
  auto link = redis::link_over(std::move(conn_));
  auto read = redis::read_applications(*link, spec);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  ASSERT_EQ(read->size(), static_cast<std::size_t>(kMembers));
  std::map<std::string, std::vector<std::uint32_t>> got;
  for (const ApplicationEntry& e : *read) {
    EXPECT_GT(e.applied_at_us, 0);
    got[e.member_id] = e.preferred;
  }
  EXPECT_EQ(got, expected);

  // One unreadable value makes the read an error naming the member.
  ASSERT_EQ(server_.cli({"HSET", "vd:{ap}:apps", "m-7", "not an application"}), "0");
  auto bad = redis::read_applications(*link, spec);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("\"m-7\""), std::string::npos) << bad.error().message;
}

TEST(StoredApplications, OnlyWellFormedValuesAreRead) {
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() + 2 * kHour);
  std::string request;
  const auto good = redis::decode_application(spec, "ann",
                                              "1700000000123\x1f"
                                              "a-1\x1f"
                                              "1,0",
                                              &request);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->member_id, "ann");
  EXPECT_EQ(good->applied_at_us, INT64_C(1'700'000'000'123'000));
  EXPECT_EQ(good->preferred, (std::vector<std::uint32_t>{1, 0}));
  EXPECT_EQ(request, "a-1");
  const auto none = redis::decode_application(spec, "ann",
                                              "5\x1f"
                                              "a-1\x1f");
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->preferred.empty());
  EXPECT_EQ(redis::encode_preferences(std::vector<std::uint32_t>{1, 0}), "1,0");
  EXPECT_EQ(redis::encode_preferences({}), "");

  for (const char* bad : {"", "5",
                          "5\x1f"
                          "a-1",
                          "x\x1f"
                          "a\x1f",
                          "-5\x1f"
                          "a\x1f",
                          "99999999999999999\x1f"
                          "a\x1f",
                          "5\x1f"
                          "a\x1f"
                          "2",
                          "5\x1f"
                          "a\x1f"
                          "0,0",
                          "5\x1f"
                          "a\x1f"
                          "0,",
                          "5\x1f"
                          "a\x1f"
                          ",0",
                          "5\x1f"
                          "a\x1f"
                          "0;1",
                          "5\x1f"
                          "a\x1f"
                          "-1",
                          "5\x1f"
                          "a\x1f"
                          "1 "}) {
    EXPECT_FALSE(redis::decode_application(spec, "ann", bad).has_value()) << bad;
  }
}

TEST(AllocationReplies, RepliesOfAnotherShapeAreErrors) {
  const CampaignSpec spec = apply_campaign(now_us() + kHour, now_us() + 2 * kHour);
  auto integer = [](long long v) {
    Reply r;
    r.type = Reply::Type::kInteger;
    r.integer = v;
    return r;
  };
  auto text = [](std::string s) {
    Reply r;
    r.type = Reply::Type::kString;
    r.str = std::move(s);
    return r;
  };
  auto array = [](std::vector<Reply> e) {
    Reply r;
    r.type = Reply::Type::kArray;
    r.elements = std::move(e);
    return r;
  };
  Reply error;
  error.type = Reply::Type::kError;
  error.str = "ERR oops";

  // alloc_take: {kind, owner, epoch, next, total, stock per SKU}.
  const Reply taken =
      array({integer(2), text("r-1"), integer(1), integer(0), integer(3), integer(2), integer(1)});
  ASSERT_TRUE(redis::parse_alloc_take_reply(spec, taken).has_value());
  for (const Reply& bad :
       {error, integer(2),
        array({integer(2), text("r-1"), integer(1), integer(0), integer(3), integer(2)}),
        array(
            {integer(9), text("r-1"), integer(1), integer(0), integer(3), integer(2), integer(1)}),
        array(
            {integer(2), text("r-1"), integer(1), integer(4), integer(3), integer(2), integer(1)}),
        array(
            {integer(2), text("r-1"), integer(1), integer(0), integer(3), integer(-2), integer(1)}),
        array({integer(2), integer(1), integer(1), integer(0), integer(3), integer(2),
               integer(1)})}) {
    EXPECT_FALSE(redis::parse_alloc_take_reply(spec, bad).has_value());
  }
  // alloc_batch.
  const auto done = redis::parse_alloc_batch_reply(
      array({integer(1), text("r-1"), integer(1), integer(3), integer(3), integer(1)}));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->turn.kind, AllocationTurn::Kind::kDone);
  for (const Reply& bad :
       {error, array({integer(2)}), array({integer(3), integer(1)}),
        array({integer(0), text("r-1"), integer(1), integer(3), integer(3)}),
        array({integer(7), text("r-1"), integer(1), integer(3), integer(3), integer(0)}),
        array({integer(0), text("r-1"), integer(1), integer(2), integer(3), integer(1)}),
        array({integer(0), text("r-1"), integer(1), integer(3), integer(3), integer(2)})}) {
    EXPECT_FALSE(redis::parse_alloc_batch_reply(bad).has_value());
  }
  // application.
  const std::string value =
      "5\x1f"
      "a\x1f"
      "0";
  EXPECT_TRUE(
      redis::parse_application_reply(spec, "ann", array({integer(1), text(value)})).has_value());
  for (const Reply& bad :
       {error, array({}), array({integer(0), text(value)}), array({integer(1)}),
        array({integer(1), text("junk")}), array({integer(4)}),
        array({integer(2), text(value), integer(0), text("AAAAA-00000-00000-00000-00000-0000A")}),
        array({integer(2), text(value), integer(5), text("AAAAA-00000-00000-00000-00000-0000A"),
               text("record")}),
        array({integer(2), text(value), integer(0), text("AAAAA-00000-00000-00000-00000-0000A"),
               text("not a record")}),
        array({integer(8), text(value)})}) {
    EXPECT_FALSE(redis::parse_application_reply(spec, "ann", bad).has_value());
  }
  // apply: one answer per application asked.
  Application ann(spec, "ann", "a-1", {});
  std::vector<ApplicationLogWrite*> one{&ann};
  EXPECT_TRUE(redis::parse_apply_reply(spec, one, array({array({integer(3)})})).has_value());
  for (const Reply& bad : {error, array({}), array({array({integer(3)}), array({integer(3)})}),
                           array({array({integer(0)})}), array({array({integer(9)})}),
                           array({array({integer(0), text("junk")})}), array({integer(0)})}) {
    EXPECT_FALSE(redis::parse_apply_reply(spec, one, bad).has_value());
  }
}

}  // namespace
}  // namespace voucherd::testing
