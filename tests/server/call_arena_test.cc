// Which requests the gRPC front parses onto a call's arena (fits_call_arena,
// server/grpc/call.h), and the protobuf behaviour that rule rests on: gRPC
// parses the next call into the same request after a parse that failed, so
// a request on an arena must not grow it with every bad request. And the
// storage of call objects, reused on the thread that freed it (CallStorage).
#include <google/protobuf/arena.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "server/grpc/call.h"

namespace voucherd {
namespace {

namespace v1 = voucher::v1;

TEST(CallArena, MembersRequestsFitAndOnesHoldingAMessageOrAMapDoNot) {
  // Ids and repeated ids: the requests members and sites send.
  EXPECT_TRUE(fits_call_arena(*v1::ClaimRequest::descriptor()));
  EXPECT_TRUE(fits_call_arena(*v1::ApplyRequest::descriptor()));
  EXPECT_TRUE(fits_call_arena(*v1::DrawRequest::descriptor()));
  EXPECT_TRUE(fits_call_arena(*v1::RedeemRequest::descriptor()));
  EXPECT_TRUE(fits_call_arena(*v1::GetApplicationRequest::descriptor()));
  // Repeated messages of ids: each element is cleared in place and reused.
  EXPECT_TRUE(fits_call_arena(*v1::ClaimBatchRequest::descriptor()));
  EXPECT_TRUE(fits_call_arena(*google::protobuf::Timestamp::descriptor()));
  // A singular message field, directly or inside repeated elements; a map.
  EXPECT_FALSE(fits_call_arena(*v1::CreateCampaignRequest::descriptor()));
  EXPECT_FALSE(fits_call_arena(*v1::ListCampaignsResponse::descriptor()));
  EXPECT_FALSE(fits_call_arena(*google::protobuf::Struct::descriptor()));
}

// `valid` with, last, a string field that is not UTF-8: protobuf builds the
// whole message, then refuses it.
std::string refused_after(const google::protobuf::Message& valid, int string_field) {
  std::string bytes = valid.SerializeAsString();
  bytes += static_cast<char>((string_field << 3) | 2);
  bytes += '\x01';
  bytes += '\xff';
  return bytes;
}

// Parses `bytes` (each refused) into one arena message 200 times, as gRPC
// does for one posted call that keeps receiving bad requests; the arena's
// bytes in use after the first and after the last parse.
template <class Message>
std::pair<std::uint64_t, std::uint64_t> arena_use_over_refused_parses(const std::string& bytes) {
  const google::protobuf::LogSilencer quiet;  // each refusal would log a line
  google::protobuf::Arena arena;
  auto& m = *google::protobuf::Arena::CreateMessage<Message>(&arena);
  EXPECT_FALSE(m.ParseFromString(bytes));
  const std::uint64_t first = arena.SpaceUsed();
  for (int i = 1; i < 200; ++i) EXPECT_FALSE(m.ParseFromString(bytes));
  return {first, arena.SpaceUsed()};
}

TEST(CallArena, ARequestThatFitsDoesNotGrowItsArenaOverRefusedParses) {
  v1::ApplyRequest apply;
  apply.set_campaign_id("guangdong-apply-2024-with-a-long-id");
  apply.set_member_id("member-123456");
  apply.set_request_id("r-123456-0");
  for (int i = 0; i < 16; ++i) apply.add_preferred_sku_ids("sku-" + std::to_string(i));
  const auto [first, last] = arena_use_over_refused_parses<v1::ApplyRequest>(
      refused_after(apply, v1::ApplyRequest::kPreferredSkuIdsFieldNumber));
  EXPECT_GT(first, 0u);
  EXPECT_EQ(last, first);

  v1::ClaimBatchRequest batch;
  for (int i = 0; i < 100; ++i) {
    v1::ClaimRequest* c = batch.add_claims();
    c->set_campaign_id("guangdong-2024");
    c->set_member_id("member-" + std::to_string(i));
    c->set_request_id("r-" + std::to_string(i));
  }
  // The refusal inside the last claim.
  std::string bytes = batch.SerializeAsString();
  v1::ClaimRequest bad;
  bad.set_campaign_id("guangdong-2024");
  const std::string bad_claim = refused_after(bad, v1::ClaimRequest::kMemberIdFieldNumber);
  bytes += static_cast<char>((v1::ClaimBatchRequest::kClaimsFieldNumber << 3) | 2);
  bytes += static_cast<char>(bad_claim.size());
  bytes += bad_claim;
  const auto [batch_first, batch_last] =
      arena_use_over_refused_parses<v1::ClaimBatchRequest>(bytes);
  EXPECT_EQ(batch_last, batch_first);
}

TEST(CallArena, ARequestHoldingAMessageGrowsAnArenaWithEveryRefusedParse) {
  // Why CreateCampaign's request stays on the heap: on an arena, each
  // refused parse leaves its Campaign behind.
  v1::CreateCampaignRequest create;
  v1::Campaign* c = create.mutable_campaign();
  c->set_id("guangdong-2024");
  for (int i = 0; i < 50; ++i) {
    v1::Sku* sku = c->add_skus();
    sku->set_id("sku-" + std::to_string(i));
    sku->set_name("a room at a site of the Guangdong campaign");
  }
  // The refusal inside the campaign, after its SKUs.
  std::string bytes;
  {
    v1::Campaign bad = *c;
    std::string campaign = refused_after(bad, v1::Campaign::kNameFieldNumber);
    v1::CreateCampaignRequest outer;
    bytes = outer.SerializeAsString();
    bytes += static_cast<char>((v1::CreateCampaignRequest::kCampaignFieldNumber << 3) | 2);
    std::size_t n = campaign.size();
    while (n >= 0x80) {
      bytes += static_cast<char>((n & 0x7f) | 0x80);
      n >>= 7;
    }
    bytes += static_cast<char>(n);
    bytes += campaign;
  }
  const auto [first, last] = arena_use_over_refused_parses<v1::CreateCampaignRequest>(bytes);
  EXPECT_GT(last, first * 50);
}

struct StoredCall {
  std::array<char, 3000> bytes;
};
using Storage = CallStorage<StoredCall>;

TEST(CallStorage, ACallFreedOnAThreadLendsItsStorageToThatThreadsNextCall) {
  std::thread([] {
    void* first = Storage::take();
    Storage::give(first);
    EXPECT_EQ(Storage::kept_count(), 1u);
    EXPECT_EQ(Storage::take(), first);  // the same storage, without malloc
    EXPECT_EQ(Storage::kept_count(), 0u);
    void* second = Storage::take();  // none kept: a new one
    EXPECT_NE(second, first);
    Storage::give(first);
    Storage::give(second);
    EXPECT_EQ(Storage::kept_count(), 2u);
    // Another thread keeps its own: it gets none of these.
    std::thread([first, second] {
      EXPECT_EQ(Storage::kept_count(), 0u);
      void* there = Storage::take();
      EXPECT_NE(there, first);
      EXPECT_NE(there, second);
      Storage::give(there);
      EXPECT_EQ(Storage::kept_count(), 1u);
    }).join();
    EXPECT_EQ(Storage::kept_count(), 2u);
  }).join();
}

TEST(CallStorage, AThreadKeepsAtMostKeptMaxAndTheRestGoBackToMalloc) {
  std::thread([] {
    // A storm: twice as many calls in flight at once as are kept.
    std::vector<void*> in_flight;
    for (std::size_t i = 0; i < 2 * Storage::kKeptMax; ++i) in_flight.push_back(Storage::take());
    for (void* p : in_flight) Storage::give(p);
    EXPECT_EQ(Storage::kept_count(), Storage::kKeptMax);
    // The kept ones serve the next storm, last freed first.
    for (std::size_t i = 0; i < Storage::kKeptMax; ++i) {
      EXPECT_EQ(Storage::take(), in_flight[Storage::kKeptMax - 1 - i]);
    }
    EXPECT_EQ(Storage::kept_count(), 0u);
    for (std::size_t i = 0; i < Storage::kKeptMax; ++i) Storage::give(in_flight[i]);
  }).join();  // the thread's end frees what it kept (LeakSanitizer checks)
}

}  // namespace
}  // namespace voucherd
