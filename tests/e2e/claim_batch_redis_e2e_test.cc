// claim_batch_redis_e2e_test — proves, with real voucherd processes on a
// real redis-server (AOF, appendfsync always), that ClaimBatch keeps Claim's
// guarantees on the shared store: two replicas taking batches from
// overlapping crowds sell exactly the stock, no member holding two codes and
// no code held by two members; the store-wide count agrees; a member's
// repeat in a later batch gets the voucher they hold;
// and every acknowledged voucher is in Redis under its member.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "bench/load/load.h"
#include "tests/support/campaigns.h"
#include "tests/support/client.h"
#include "tests/support/redis_server.h"
#include "tests/support/replicas.h"
#include "tests/support/voucherd_process.h"
#include "voucher/v1/voucher.grpc.pb.h"

namespace voucherd::testing {
namespace {

namespace v1 = voucher::v1;

constexpr std::int64_t kStock = 5'000;

std::string campaign_file(const TempDir& dir) {
  return dir.write("rb.json", first_come_campaign_json("rb", kStock, 10)).string();
}

TEST(ClaimBatchRedisEndToEnd, TwoReplicasSellExactlyTheStockInBatches) {
  TempDir dir;
  RedisServer redis(dir);
  const std::string secret = dir.write("secret.hex", test_secret_hex()).string();
  const std::string campaigns = campaign_file(dir);
  std::vector<std::unique_ptr<VoucherdProcess>> replicas;
  for (int i = 0; i < 2; ++i) {
    replicas.push_back(
        std::make_unique<VoucherdProcess>(dir, replica_args(redis, secret, campaigns)));
    ASSERT_GT(replicas.back()->port(), 0);
  }
  // Overlapping crowds: members 0..5,999 on replica 0, 3,000..8,999 on
  // replica 1, batches of 100, with repeats.
  std::vector<load::LoadReport> reports(2);
  std::vector<std::thread> crowds;
  for (int i = 0; i < 2; ++i) {
    crowds.emplace_back([&, i] {
      load::LoadOptions o;
      o.target = replicas[static_cast<std::size_t>(i)]->target();
      o.campaign_id = "rb";
      o.members = 6'000;
      o.member_first = i * 3'000;
      o.repeat_share = 0.2;
      o.seed = static_cast<std::uint64_t>(i + 1);
      o.batch = 100;
      o.concurrency = 4;
      o.duration_s = 120;
      o.max_retries = 400;
      o.retry_delay = std::chrono::milliseconds(10);
      o.skip_stats = true;
      reports[static_cast<std::size_t>(i)] = load::run_load(o);
    });
  }
  for (auto& t : crowds) t.join();

  Acknowledged ack;
  std::int64_t issued = 0;
  for (const auto& r : reports) {
    ASSERT_EQ(r.phases.size(), 1u) << r.error;
    const load::PhaseReport& p = r.phases[0];
    EXPECT_FALSE(p.timed_out);
    EXPECT_TRUE(r.check.ok()) << load::format_text(r);
    // Every claim is answered OK or SOLD_OUT in the end.
    EXPECT_EQ(p.answers, p.issued + p.already_claimed + p.sold_out) << load::format_text(r);
    issued += p.issued;
    for (const auto& [member, code] : r.code_by_member) ack.add(member, code);
  }
  EXPECT_EQ(ack.members_with_two, 0) << "members holding two codes";
  EXPECT_EQ(ack.codes_with_two, 0) << "codes that went to two members";
  EXPECT_EQ(issued, kStock);
  EXPECT_EQ(static_cast<std::int64_t>(ack.member_by_code.size()), kStock);

  // Store-wide stats agree, on either replica.
  const auto stats = Client(replicas[1]->target()).stats("rb");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats.response.issued(), kStock);
  EXPECT_EQ(stats.response.remaining(), 0);
  EXPECT_EQ(stats.response.members(), kStock);

  // A member who got a voucher through replica 0 asks again, in a later
  // batch: the same voucher, already_claimed. (Asked on the replica that
  // answered them: after the sell-out, a replica refuses members it has
  // never seen as SOLD_OUT without asking Redis, by design.)
  const auto& [member, code] = *reports[0].code_by_member.begin();
  v1::ClaimBatchRequest batch;
  v1::ClaimRequest* c = batch.add_claims();
  c->set_campaign_id("rb");
  c->set_member_id(member);
  const auto again = Client(replicas[0]->target()).claim_batch(batch);
  ASSERT_TRUE(again.ok());
  const v1::ClaimBatchResponse& out = again.response;
  ASSERT_EQ(out.results_size(), 1);
  EXPECT_EQ(out.results(0).code(), 0) << out.results(0).message();
  EXPECT_TRUE(out.results(0).response().already_claimed());
  EXPECT_EQ(out.results(0).response().voucher().code(), code);

  // Every acknowledged voucher is in Redis, under its member.
  EXPECT_EQ(missing_in_redis(redis, "rb", ack), 0);

  for (auto& r : replicas) EXPECT_EQ(r->stop(SIGTERM), std::optional<int>(0)) << r->stderr_text();
}

}  // namespace
}  // namespace voucherd::testing
