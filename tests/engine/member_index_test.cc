// member_index_test — a MemberShard finds each member by the exact id, even
// when ids share a hash, keeps ids of any valid length, and releases a
// member who holds nothing, reusing the record and the id's block.
#include "engine/member_index.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/limits.h"

namespace voucherd {
namespace {

VoucherPtr voucher(std::string code, std::string member) {
  VoucherFields f;
  f.code = std::move(code);
  f.campaign_id = "gd";
  f.member_id = std::move(member);
  f.sku_id = "sku-1";
  return VoucherRecord::make(f);
}

TEST(MemberShardTest, IdsThatShareAHashAreToldApartByTheirBytes) {
  MemberShard shard;
  // Every id here gets the same hash: only the id's bytes tell them apart.
  constexpr std::size_t kSameHash = 0xABCDEF0123456789ULL;
  std::vector<std::string> ids = {"a",
                                  "b",
                                  "member-0000001",
                                  "member-0000002",
                                  "exactly-15-byte",
                                  "sixteen-bytes-id",
                                  std::string(limits::kIdBytesMax, 'x'),
                                  std::string(limits::kIdBytesMax - 1, 'x')};
  for (const std::string& id : ids) {
    ASSERT_EQ(shard.find(id, kSameHash), nullptr) << id;
    MemberRecord& m = shard.emplace(id, kSameHash);
    EXPECT_EQ(m.id(), id);
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    MemberRecord* m = shard.find(ids[i], kSameHash);
    ASSERT_NE(m, nullptr) << ids[i];
    EXPECT_EQ(m->id(), ids[i]);
    EXPECT_EQ(m->number, i) << "numbered in the order they came";
    EXPECT_EQ(&shard.record(m->number), m);
  }
  EXPECT_EQ(shard.find("c", kSameHash), nullptr);
  EXPECT_EQ(shard.find("member-0000003", kSameHash), nullptr);
  EXPECT_EQ(shard.find(std::string(limits::kIdBytesMax - 2, 'x'), kSameHash), nullptr);
  // The same id under another hash is another key (hashes come from ids).
  EXPECT_EQ(shard.find("a", kSameHash + 1), nullptr);
}

TEST(MemberShardTest, AMemberWhoComesToHoldNothingIsReleasedAndTheRecordReused) {
  MemberShard shard;
  MemberRecord& m = shard.emplace("member-1", 42);
  MemberRecord& other = shard.emplace("member-2", 43);
  EXPECT_FALSE(shard.active(m)) << "a new record holds nothing and has no claim in flight";
  EXPECT_EQ(shard.add_held(m, voucher("CODE-1", "member-1")), MemberShard::Added::kFirst);
  EXPECT_EQ(shard.add_held(m, voucher("CODE-1", "member-1")), MemberShard::Added::kKnown);
  EXPECT_EQ(shard.add_held(m, voucher("CODE-2", "member-1")), MemberShard::Added::kMore);
  EXPECT_TRUE(shard.active(m));
  EXPECT_EQ(MemberShard::held_count(m), 2u);
  EXPECT_EQ(shard.last_held(m)->code(), "CODE-2");
  EXPECT_FALSE(shard.drop_held(m, "CODE-1"));
  EXPECT_EQ(shard.last_held(m)->code(), "CODE-2");
  EXPECT_TRUE(shard.drop_held(m, "CODE-2"));
  EXPECT_FALSE(shard.active(m));
  EXPECT_EQ(shard.find("member-1", 42), &m) << "emptied, and not yet released";
  shard.release_if_inactive(other);  // holds nothing: released too
  EXPECT_EQ(shard.find("member-2", 43), nullptr);
  shard.release_if_inactive(m);
  EXPECT_EQ(shard.find("member-1", 42), nullptr);
  // New members take the released records, the last released first.
  MemberRecord& third = shard.emplace("member-3", 44);
  EXPECT_EQ(&third, &m);
  EXPECT_EQ(third.id(), "member-3");
  EXPECT_EQ(third.number, 0u);
  EXPECT_EQ(MemberShard::held_count(third), 0u);
  EXPECT_EQ(shard.find("member-3", 44), &third);
  EXPECT_EQ(shard.find("member-1", 42), nullptr);
}

TEST(MemberShardTest, AMemberWhoHoldsAVoucherIsNotReleased) {
  MemberShard shard;
  MemberRecord& m = shard.emplace("member-1", 42);
  EXPECT_EQ(shard.add_held(m, voucher("CODE-1", "member-1")), MemberShard::Added::kFirst);
  shard.release_if_inactive(m);
  EXPECT_EQ(shard.find("member-1", 42), &m);
  EXPECT_EQ(MemberShard::held_count(m), 1u);
}

TEST(MemberShardTest, LongIdsOfReleasedMembersLeaveNoBytesBehind) {
  // 10,000 members with 100-byte ids come and go, at most 10 at once: the
  // records and the ids' blocks are reused, and every id reads back whole.
  MemberShard shard;
  std::vector<MemberRecord*> now;
  for (int i = 0; i < 10'000; ++i) {
    std::string id(100, static_cast<char>('a' + i % 26));
    id += std::to_string(i);
    const std::size_t hash = std::hash<std::string>{}(id);
    MemberRecord& m = shard.emplace(id, hash);
    ASSERT_EQ(m.id(), id);
    ASSERT_LT(m.number, 10u) << "records are reused";
    now.push_back(&m);
    if (now.size() == 10) {
      for (MemberRecord* r : now) {
        const std::string kept(r->id());
        ASSERT_EQ(shard.find(kept, std::hash<std::string>{}(kept)), r);
        shard.release_if_inactive(*r);
      }
      now.clear();
    }
  }
}

}  // namespace
}  // namespace voucherd
