// lottery_log_test — proves, against a real redis-server started by the test,
// that the lottery log (server/redis/lottery_log.*) records draws and reads
// them back exactly (member, draw number, time, outcome, SKU, released,
// remaining), that the draw script's answers decode into the right kinds
// (drawn, repeat, daily limit, wrong number), and that the store's counts
// match the draws to the unit; that a draw log or a draw reply that is not
// well formed is an error (naming the line), never a crash; and that every
// script voucherd embeds loads into Redis under the SHA-1 it is sent by.
#include "server/redis/lottery_log.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>

#include "server/redis/link.h"
#include "server/redis/records.h"
#include "server/redis/scripts.h"
#include "tests/support/engine/campaign_spec.h"
#include "tests/support/redis_server.h"

namespace voucherd::testing {
namespace {

using redis::Connection;
using redis::DrawAttempt;
using redis::DrawReply;
using redis::Reply;

constexpr UnixMicros kStartsAtUs = INT64_C(1'700'000'000'000'000);

CampaignSpec lottery(std::int64_t stock) {
  return SpecBuilder("lot-1", "Lottery test")
      .lottery(0.5)
      .draws_per_day(2)
      .prizes_per_member(1)
      .window(kStartsAtUs, kStartsAtUs + INT64_C(86'400'000'000))
      .per_member_limit(1)
      .site("site-1", "Qingyuan", SkuKind::kHotSpring, "Hot spring")
      .sku("sku-a", stock, 19800, "Two tickets");
}

// One draw request; the writer's callbacks are not used by draw_command.
class Draw final : public DrawLogWrite {
 public:
  Draw(const CampaignSpec& spec, std::string member, std::string request, UnixMicros now_us)
      : member_(std::move(member)), request_(std::move(request)) {
    draw = DrawRequestView{&spec,
                           member_,
                           request_,
                           now_us,
                           /*day=*/1,
                           /*released=*/spec.stock_total()};
  }
  DrawRandomness randomness(std::int64_t) override { return {}; }
  VoucherPtr mint(std::uint32_t) override { return nullptr; }
  void on_draw_logged(DrawLogStatus, const DrawEntry&, VoucherPtr, std::int32_t) override {}

 private:
  std::string member_;
  std::string request_;
};

// Codes in display form, as the engine mints them (a record keeps its code
// packed, and stores refuse any other form).
const std::string kCodeA = "AAAAA-00000-00000-00000-00000-0000A";
const std::string kCodeC = "CCCCC-00000-00000-00000-00000-0000C";

// A draw attempt: lucky (win() == 0, below any probability) or not
// (win() at its maximum), with a voucher minted for SKU 0 when `code` is set.
DrawAttempt attempt(Draw& d, std::int64_t number, bool lucky, const std::string& code = "") {
  DrawAttempt a;
  a.write = &d;
  a.draw_number = number;
  a.random.mac.fill(lucky ? 0x00 : 0xff);
  if (!code.empty()) {
    VoucherFields v;
    v.code = code;
    v.campaign_id = d.draw.spec->id;
    v.sku_id = "sku-a";
    v.site_id = "site-1";
    v.member_id = std::string(d.draw.member_id);
    v.request_id = std::string(d.draw.request_id);
    v.sku_kind = SkuKind::kHotSpring;
    v.face_value_cents = 19800;
    v.issued_at_us = d.draw.now_us;
    v.expires_at_us = d.draw.now_us + INT64_C(86'400'000'000);
    v.state = VoucherState::kIssued;
    a.minted = VoucherRecord::make(v);
    a.sku_guess = 0;
  }
  return a;
}

class LotteryLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto conn = server_.connect();
    ASSERT_TRUE(conn.has_value()) << conn.error();
    conn_ = std::move(*conn);
  }

  // Sends one draw script call (loading the script first) and decodes it.
  redis::DrawBatchReply run(const CampaignSpec& spec, const std::vector<DrawAttempt>& draws,
                            std::int64_t drawn_chunk = 0) {
    EXPECT_TRUE(conn_->load(redis::draw_script()).has_value());
    auto reply = conn_->command(redis::draw_command(spec, draws, drawn_chunk));
    EXPECT_TRUE(reply.has_value());
    auto parsed = redis::parse_draw_reply(spec, draws.size(), *reply);
    EXPECT_TRUE(parsed.has_value()) << parsed.error();
    return parsed.value_or(redis::DrawBatchReply{});
  }

  // A link of the store's kind over a connection of its own.
  redis::Link& link() {
    if (!link_) {
      auto conn = server_.connect();
      EXPECT_TRUE(conn.has_value());
      link_ = redis::link_over(std::move(*conn));
    }
    return *link_;
  }

  TempDir dir_;
  RedisServer server_{dir_, /*aof=*/false};
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<redis::Link> link_;
};

TEST_F(LotteryLogTest, RecordsDrawsAndReadsThemBackExactly) {
  const CampaignSpec spec = lottery(2);
  ASSERT_EQ(server_.cli({"HSET", "vd:{lot-1}:stock", "sku-a", "2"}), "1");
  const UnixMicros t1 = kStartsAtUs + 5'000'123;  // the log keeps milliseconds
  const UnixMicros t2 = kStartsAtUs + 9'000'000;
  std::deque<Draw> requests;
  Draw& alice = requests.emplace_back(spec, "alice", "a1", t1);
  Draw& bob = requests.emplace_back(spec, "bob", "b1", t1);
  Draw& carol = requests.emplace_back(spec, "carol", "c1", t1);

  // One batch: two wins and an unlucky draw.
  auto first = run(spec, {attempt(alice, 1, true, kCodeA), attempt(bob, 1, false),
                          attempt(carol, 1, true, kCodeC)});
  ASSERT_EQ(first.draws.size(), 3u);
  EXPECT_EQ(first.draws[0].kind, DrawReply::Kind::kDrawn);
  EXPECT_EQ(first.draws[0].entry.outcome, DrawOutcome::kWon);
  EXPECT_EQ(first.draws[0].entry.sku, 0u);
  EXPECT_EQ(first.draws[0].entry.remaining, 2);
  EXPECT_EQ(first.draws[0].draws_today, 1);
  EXPECT_EQ(first.draws[1].kind, DrawReply::Kind::kDrawn);
  EXPECT_EQ(first.draws[1].entry.outcome, DrawOutcome::kUnlucky);
  EXPECT_EQ(first.draws[1].entry.sku, kNoSku);
  EXPECT_EQ(first.draws[1].entry.remaining, 1);
  EXPECT_EQ(first.draws[2].entry.outcome, DrawOutcome::kWon);
  EXPECT_EQ(first.draws[2].entry.remaining, 1);
  EXPECT_EQ(first.remaining, std::vector<std::int64_t>{0});

  // The next: nothing left; alice's request again is a repeat of a win,
  // whose record key the call did not declare (it names the code, and
  // changes nothing); bob's guess of his draw number is wrong.
  Draw& dave = requests.emplace_back(spec, "dave", "d1", t2);
  Draw& alice_again = requests.emplace_back(spec, "alice", "a1", t2);
  Draw& bob_second = requests.emplace_back(spec, "bob", "b2", t2);
  auto second = run(
      spec, {attempt(dave, 1, true), attempt(alice_again, 2, true), attempt(bob_second, 1, false)});
  ASSERT_EQ(second.draws.size(), 3u);
  EXPECT_EQ(second.drawn, 4);
  EXPECT_EQ(second.draws[0].kind, DrawReply::Kind::kDrawn);
  EXPECT_EQ(second.draws[0].entry.outcome, DrawOutcome::kAllGone);
  EXPECT_EQ(second.draws[0].entry.remaining, 0);
  ASSERT_EQ(second.draws[1].kind, DrawReply::Kind::kRecordKey);
  EXPECT_EQ(second.draws[1].code, kCodeA);
  EXPECT_EQ(second.draws[2].kind, DrawReply::Kind::kWrongNumber);
  EXPECT_EQ(second.draws[2].next_number, 2);

  // Alice's again, declaring her prize's record key: the repeat and its record.
  DrawAttempt declared = attempt(alice_again, 2, true);
  declared.repeat_code = kCodeA;
  auto repeat = run(spec, {declared});
  ASSERT_EQ(repeat.draws.size(), 1u);
  ASSERT_EQ(repeat.draws[0].kind, DrawReply::Kind::kRepeat);
  EXPECT_EQ(repeat.draws[0].entry.draw_number, 1);
  EXPECT_EQ(repeat.draws[0].entry.outcome, DrawOutcome::kWon);
  EXPECT_EQ(repeat.draws[0].entry.at_us, t1 / 1000 * 1000);
  EXPECT_EQ(repeat.draws[0].code, kCodeA);
  const VoucherPtr won = redis::decode_voucher("lot-1", kCodeA, repeat.draws[0].record);
  ASSERT_NE(won, nullptr);
  EXPECT_EQ(won->member_id(), "alice");
  EXPECT_EQ(repeat.drawn, 4);  // a repeat logs nothing

  // Bob's second draw, then a third the same day: past his daily two.
  Draw& bob_third = requests.emplace_back(spec, "bob", "b3", t2);
  auto third = run(spec, {attempt(bob_second, 2, false), attempt(bob_third, 3, false)});
  ASSERT_EQ(third.draws.size(), 2u);
  EXPECT_EQ(third.draws[0].kind, DrawReply::Kind::kDrawn);
  EXPECT_EQ(third.draws[0].draws_today, 2);
  EXPECT_EQ(third.draws[1].kind, DrawReply::Kind::kDailyLimit);
  EXPECT_EQ(third.draws[1].draws_today, 2);

  // The log: every decided draw, in order, and nothing else.
  auto log = redis::read_draw_log(link(), spec);
  ASSERT_TRUE(log.has_value()) << log.error().message;
  const std::int64_t released = spec.stock_total();
  const std::vector<DrawEntry> expected{
      {"alice", 1, t1 / 1000 * 1000, DrawOutcome::kWon, 0, released, 2},
      {"bob", 1, t1 / 1000 * 1000, DrawOutcome::kUnlucky, kNoSku, released, 1},
      {"carol", 1, t1 / 1000 * 1000, DrawOutcome::kWon, 0, released, 1},
      {"dave", 1, t2, DrawOutcome::kAllGone, kNoSku, released, 0},
      {"bob", 2, t2, DrawOutcome::kUnlucky, kNoSku, released, 0},
  };
  EXPECT_EQ(*log, expected);

  // Exact counts: two prizes out of two, two members, five draws.
  EXPECT_EQ(server_.cli({"GET", "vd:{lot-1}:drawn"}), "5");
  EXPECT_EQ(server_.cli({"HGET", "vd:{lot-1}:stock", "sku-a"}), "0");
  EXPECT_EQ(server_.cli({"HGET", "vd:{lot-1}:issued", "sku-a"}), "2");
  EXPECT_EQ(server_.cli({"HGET", "vd:{lot-1}:issued", "_members"}), "2");
  EXPECT_EQ(server_.cli({"GET", "vd:{lot-1}:m:alice"}), kCodeA);
  EXPECT_EQ(server_.cli({"GET", "vd:{lot-1}:m:carol"}), kCodeC);
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{lot-1}:m:bob"}), "0");
  const VoucherPtr stored =
      redis::decode_voucher("lot-1", kCodeC, server_.cli({"GET", "vd:{lot-1}:v:" + kCodeC}));
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->member_id(), "carol");
}

TEST_F(LotteryLogTest, TheScriptAppendsOnlyToTheChunksItDeclares) {
  const CampaignSpec spec = lottery(5);
  ASSERT_EQ(server_.cli({"HSET", "vd:{lot-1}:stock", "sku-a", "5"}), "1");
  std::deque<Draw> requests;
  Draw& alice = requests.emplace_back(spec, "alice", "a1", kStartsAtUs + 1'000'000);
  Draw& bob = requests.emplace_back(spec, "bob", "b1", kStartsAtUs + 1'000'000);

  // A log two chunks long; a replica that guesses chunk 0 is told chunk 2,
  // and nothing changes.
  const std::int64_t drawn = 2 * redis::kDrawLogChunk + 10;
  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", std::to_string(drawn)}), "OK");
  auto wrong = run(spec, {attempt(alice, 1, false)}, /*drawn_chunk=*/0);
  ASSERT_TRUE(wrong.wrong_chunk.has_value());
  EXPECT_EQ(*wrong.wrong_chunk, 2);
  EXPECT_TRUE(wrong.draws.empty());
  EXPECT_EQ(server_.cli({"GET", "vd:{lot-1}:drawn"}), std::to_string(drawn));
  EXPECT_EQ(server_.cli({"EXISTS", "vd:{lot-1}:d:alice"}), "0");

  // The right guess: decided, and logged on chunk 2.
  auto right = run(spec, {attempt(alice, 1, false)}, /*drawn_chunk=*/2);
  ASSERT_FALSE(right.wrong_chunk.has_value());
  ASSERT_EQ(right.draws.size(), 1u);
  EXPECT_EQ(right.draws[0].kind, DrawReply::Kind::kDrawn);
  EXPECT_EQ(right.drawn, drawn + 1);
  EXPECT_EQ(redis::draw_log_chunk(right.drawn), 2);
  EXPECT_NE(server_.cli({"GET", "vd:{lot-1}:drawn:2"}).find("5:alice\t1\t"), std::string::npos);

  // A batch that crosses into the next chunk writes both declared chunks.
  const std::int64_t edge = 3 * redis::kDrawLogChunk - 1;
  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", std::to_string(edge)}), "OK");
  Draw& alice2 = requests.emplace_back(spec, "alice", "a2", kStartsAtUs + 2'000'000);
  auto crossing = run(spec, {attempt(alice2, 2, false), attempt(bob, 1, false)}, 2);
  ASSERT_FALSE(crossing.wrong_chunk.has_value());
  ASSERT_EQ(crossing.draws.size(), 2u);
  EXPECT_EQ(crossing.drawn, edge + 2);
  EXPECT_NE(server_.cli({"GET", "vd:{lot-1}:drawn:2"}).find("5:alice\t2\t"), std::string::npos);
  EXPECT_EQ(server_.cli({"GET", "vd:{lot-1}:drawn:3"}).rfind("3:bob\t1\t", 0), 0u);
}

TEST_F(LotteryLogTest, AnEmptyLogReadsAsNoDraws) {
  auto log = redis::read_draw_log(link(), lottery(1));
  ASSERT_TRUE(log.has_value()) << log.error().message;
  EXPECT_TRUE(log->empty());
}

TEST_F(LotteryLogTest, ALogThatDisagreesWithItsCountIsAnError) {
  const CampaignSpec spec = lottery(1);
  const std::string line = "5:alice\t1\t0\tU\t-1\t1\t1\n";
  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn:0", line}), "OK");

  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", "1"}), "OK");
  auto one = redis::read_draw_log(link(), spec);
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->size(), 1u);

  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", "2"}), "OK");
  auto short_log = redis::read_draw_log(link(), spec);
  ASSERT_FALSE(short_log.has_value());
  EXPECT_EQ(short_log.error().kind, StoreErrorKind::kBadReply);
  EXPECT_NE(short_log.error().message.find("holds 1 lines"), std::string::npos)
      << short_log.error().message;

  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", "many"}), "OK");
  auto not_a_count = redis::read_draw_log(link(), spec);
  ASSERT_FALSE(not_a_count.has_value());
  EXPECT_EQ(not_a_count.error().kind, StoreErrorKind::kBadReply);
  EXPECT_NE(not_a_count.error().message.find("is not a number"), std::string::npos);

  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn", "1"}), "OK");
  ASSERT_EQ(server_.cli({"SET", "vd:{lot-1}:drawn:0", "garbage"}), "OK");
  auto garbage = redis::read_draw_log(link(), spec);
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().kind, StoreErrorKind::kBadReply);
  EXPECT_NE(garbage.error().message.find("draw log line 1"), std::string::npos)
      << garbage.error().message;
}

TEST(DrawLogLines, ParsesWellFormedLines) {
  const CampaignSpec spec = lottery(3);
  std::vector<DrawEntry> out;
  auto ok = redis::parse_draw_lines(
      spec, "5:alice\t1\t250\tW\t0\t3\t3\n7:b\tc\td e\t2\t-40\tG\t-1\t3\t0\n", out);
  ASSERT_TRUE(ok.has_value()) << ok.error();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], (DrawEntry{"alice", 1, kStartsAtUs + 250'000, DrawOutcome::kWon, 0, 3, 3}));
  // A member id may hold tabs and spaces: it is length-prefixed.
  EXPECT_EQ(out[1],
            (DrawEntry{"b\tc\td e", 2, kStartsAtUs - 40'000, DrawOutcome::kAllGone, kNoSku, 3, 0}));
}

TEST(DrawLogLines, RefusesLinesThatAreNotWellFormed) {
  const CampaignSpec spec = lottery(3);
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases{
      {"5:alice\t1\t0\tU\t-1\t3\t3", "line 1: unterminated"},     // no newline
      {"5:alice1\t0\tU\t-1\t3\t3\n", "line 1: unterminated"},     // no tab after the member
      {"alice\t1\t0\tU\t-1\t3\t3\n", "line 1: no member"},        // no length
      {"x:alice\t1\t0\tU\t-1\t3\t3\n", "line 1: no member"},      // a length that is no number
      {"-1:alice\t1\t0\tU\t-1\t3\t3\n", "line 1: no member"},     // a negative length
      {"99:alice\t1\t0\tU\t-1\t3\t3\n", "line 1: no member"},     // a length beyond the end
      {"5:alice\t1\t0\tX\t-1\t3\t3\n", "line 1: unreadable"},     // no such outcome
      {"5:alice\t1\t0\tW\t7\t3\t3\n", "line 1: unreadable"},      // no such SKU
      {"5:alice\t1\t0\tU\t-1\t3\n", "line 1: unreadable"},        // a field short
      {"5:alice\t1\t0\tU\t-1\t3\t3\t9\n", "line 1: unreadable"},  // a field too many
      {"5:alice\tone\t0\tU\t-1\t3\t3\n", "line 1: unreadable"},   // a number that is not one
      // A time that does not fit in µs (found by fuzz/draw_log_fuzzer: the
      // sum and the product overflowed, undefined behaviour).
      {"5:alice\t1\t25372036854775800\tG\t-1\t3\t0\n", "line 1: unreadable"},
      {"5:alice\t1\t-9223372036854775808\tU\t-1\t3\t3\n", "line 1: unreadable"},
      {"5:alice\t1\t0\tU\t-1\t3\t3\n3:bob\t1\n", "line 2: unreadable"},
  };
  for (const Case& c : cases) {
    std::vector<DrawEntry> out;
    auto parsed = redis::parse_draw_lines(spec, c.text, out);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_NE(parsed.error().find(c.error), std::string::npos) << c.text << ": " << parsed.error();
  }
}

Reply integer(long long v) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = v;
  return r;
}

Reply array(std::vector<Reply> elements) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(elements);
  return r;
}

TEST(DrawReplies, AReplyOfAnotherShapeIsAnError) {
  const CampaignSpec spec = lottery(3);
  Reply error;
  error.type = Reply::Type::kError;
  error.str = "ERR something";
  EXPECT_FALSE(redis::parse_draw_reply(spec, 1, error).has_value());
  EXPECT_FALSE(redis::parse_draw_reply(spec, 1, Reply{}).has_value());  // nil
  // One draw asked, but only the stock list and the count answered.
  EXPECT_FALSE(
      redis::parse_draw_reply(spec, 1, array({array({integer(3)}), integer(0)})).has_value());
  // No stock list (or one of another length), or no draw count.
  EXPECT_FALSE(
      redis::parse_draw_reply(spec, 1, array({array({integer(9)}), integer(3), integer(0)}))
          .has_value());
  EXPECT_FALSE(
      redis::parse_draw_reply(spec, 0, array({array({integer(3), integer(1)}), integer(0)}))
          .has_value());
  EXPECT_FALSE(redis::parse_draw_reply(spec, 0, array({array({integer(3)}), Reply{}})).has_value());
  // One integer: the chunk the log is on (a negative one is no chunk).
  auto chunk = redis::parse_draw_reply(spec, 2, integer(3));
  ASSERT_TRUE(chunk.has_value()) << chunk.error();
  EXPECT_EQ(chunk->wrong_chunk, std::optional<std::int64_t>(3));
  EXPECT_FALSE(redis::parse_draw_reply(spec, 2, integer(-1)).has_value());

  // A draw's answer that is not one the script gives is unreadable, alone.
  auto parsed = redis::parse_draw_reply(spec, 3,
                                        array({array({integer(9)}), array({integer(4), integer(5)}),
                                               integer(0), array({integer(3)}), integer(7)}));
  ASSERT_TRUE(parsed.has_value()) << parsed.error();
  ASSERT_EQ(parsed->draws.size(), 3u);
  EXPECT_EQ(parsed->draws[0].kind, DrawReply::Kind::kUnreadable);  // no such kind
  EXPECT_EQ(parsed->draws[1].kind, DrawReply::Kind::kUnreadable);  // no such SKU
  EXPECT_EQ(parsed->draws[2].kind, DrawReply::Kind::kUnreadable);  // not a list
  EXPECT_EQ(parsed->remaining, std::vector<std::int64_t>{3});
  EXPECT_EQ(parsed->drawn, 7);

  // A repeat whose time does not fit in µs is unreadable (found by
  // fuzz/draw_log_fuzzer as an overflow).
  Reply entry;
  entry.type = Reply::Type::kString;
  const char kSep = '\x1f';
  entry.str = std::string("1") + kSep + "9223372036854775807" + kSep + "U" + kSep + "-1" + kSep +
              "3" + kSep + "3" + kSep;
  auto repeat = redis::parse_draw_reply(
      spec, 1,
      array({array({integer(1), entry, Reply{}, integer(1)}), array({integer(3)}), integer(1)}));
  ASSERT_TRUE(repeat.has_value()) << repeat.error();
  EXPECT_EQ(repeat->draws[0].kind, DrawReply::Kind::kUnreadable);
  entry.str =
      std::string("1") + kSep + "250" + kSep + "U" + kSep + "-1" + kSep + "3" + kSep + "3" + kSep;
  repeat = redis::parse_draw_reply(
      spec, 1,
      array({array({integer(1), entry, Reply{}, integer(1)}), array({integer(3)}), integer(1)}));
  ASSERT_TRUE(repeat.has_value()) << repeat.error();
  EXPECT_EQ(repeat->draws[0].kind, DrawReply::Kind::kRepeat);
  EXPECT_EQ(repeat->draws[0].entry.at_us, 250'000);
}

TEST(EmbeddedScripts, EveryScriptLoadsUnderItsSha) {
  TempDir dir;
  RedisServer server(dir, /*aof=*/false);
  auto conn = server.connect();
  ASSERT_TRUE(conn.has_value()) << conn.error();
  ASSERT_EQ(redis::all_scripts().size(), 16u);
  for (const redis::NamedScript& s : redis::all_scripts()) {
    auto r = (*conn)->command({"SCRIPT", "LOAD", s.script->source});
    ASSERT_TRUE(r.has_value()) << s.name;
    EXPECT_EQ(r->type, Reply::Type::kString) << s.name << ": " << r->str;
    EXPECT_EQ(r->str, s.script->sha1) << s.name;
    // Each opens (after any prelude) with its own comment.
    EXPECT_NE(s.script->source.find("-- " + std::string(s.name) + ".lua"), std::string::npos)
        << s.name;
  }
}

}  // namespace
}  // namespace voucherd::testing
