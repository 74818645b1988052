// member_index_test — a MemberShard finds each member by the exact id, even
// when ids share a hash, keeps ids of any valid length, and keeps a
// member's record (emptied) once they hold nothing.
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
  return std::make_shared<const VoucherRecord>(std::move(f));
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

TEST(MemberShardTest, AMemberWhoHoldsNothingKeepsTheRecordButIsNotActive) {
  MemberShard shard;
  MemberRecord& m = shard.emplace("member-1", 42);
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
  EXPECT_EQ(shard.find("member-1", 42), &m) << "the emptied record stays for the next press";
}

}  // namespace
}  // namespace voucherd
