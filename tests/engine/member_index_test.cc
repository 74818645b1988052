// member_index_test — a MemberShard finds each member by the exact id (ids
// that differ in one byte, or only in length, are other members), keeps ids
// of any valid length, and releases a member who holds nothing, reusing the
// record and the id's block.
#include "engine/member_index.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/limits.h"
#include "engine/sharded_map.h"

namespace voucherd {
namespace {

// A code in display form, told apart by n.
std::string code_of(std::uint8_t n) {
  CodeFields f;
  f.random[0] = static_cast<std::uint8_t>(n & 31u);
  return format_code(f);
}

VoucherPtr voucher(std::string code, std::string member) {
  VoucherFields f;
  f.code = std::move(code);
  f.campaign_id = "gd";
  f.member_id = std::move(member);
  f.sku_id = "sku-1";
  return VoucherRecord::make(f);
}

std::size_t hash_of(std::string_view id) { return ShardedMap<int>::hash(id); }

TEST(MemberShardTest, EachMemberIsFoundByTheExactId) {
  MemberShard shard;
  std::vector<std::string> ids = {"a",
                                  "b",
                                  "member-0000001",
                                  "member-0000002",
                                  "exactly-15-byte",
                                  "sixteen-bytes-id",
                                  std::string(limits::kIdBytesMax, 'x'),
                                  std::string(limits::kIdBytesMax - 1, 'x')};
  // Enough further members that the index grows several times: a grown
  // index hashes each record's id again.
  for (int i = 0; i < 5'000; ++i) ids.push_back("m-" + std::to_string(i));
  std::vector<const MemberRecord*> records;
  for (const std::string& id : ids) {
    ASSERT_EQ(shard.find(id, hash_of(id)), nullptr) << id;
    MemberRecord& m = shard.emplace(id, hash_of(id));
    EXPECT_EQ(m.id(), id);
    records.push_back(&m);
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    MemberRecord* m = shard.find(ids[i], hash_of(ids[i]));
    ASSERT_EQ(m, records[i]) << ids[i];
    EXPECT_EQ(m->id(), ids[i]);
  }
  for (const std::string id :
       {"c", "member-0000003", "m-5000", "m-01", "exactly-15-bytf", "sixteen-bytes-i"}) {
    EXPECT_EQ(shard.find(id, hash_of(id)), nullptr) << id;
  }
  const std::string shorter(limits::kIdBytesMax - 2, 'x');
  EXPECT_EQ(shard.find(shorter, hash_of(shorter)), nullptr);
}

TEST(MemberShardTest, MembersComingAndGoingWhileTheIndexGrowsAreFoundExactly) {
  // Thousands live at once, a third released after each round and their
  // records reused by the next round's members, while the index grows: each
  // live member is found at their own record, no released one is found.
  MemberShard shard;
  std::map<std::string, MemberRecord*> live;
  std::set<std::string> gone;
  for (int round = 0; round < 6; ++round) {
    for (int i = 0; i < 2'000; ++i) {
      const std::string id = "r" + std::to_string(round) + "-m" + std::to_string(i);
      ASSERT_EQ(shard.find(id, hash_of(id)), nullptr) << id;
      live[id] = &shard.emplace(id, hash_of(id));
    }
    int n = 0;
    for (auto it = live.begin(); it != live.end();) {
      if (n++ % 3 != 0) {
        ++it;
        continue;
      }
      shard.release_if_inactive(*it->second, hash_of(it->first));
      gone.insert(it->first);
      it = live.erase(it);
    }
    for (const auto& [id, record] : live) {
      ASSERT_EQ(shard.find(id, hash_of(id)), record) << id;
      ASSERT_EQ(record->id(), id);
    }
    for (const std::string& id : gone) ASSERT_EQ(shard.find(id, hash_of(id)), nullptr) << id;
  }
  EXPECT_GT(live.size(), 3'000u);
}

TEST(MemberShardTest, AMemberWhoComesToHoldNothingIsReleasedAndTheRecordReused) {
  MemberShard shard;
  MemberRecord& m = shard.emplace("member-1", hash_of("member-1"));
  MemberRecord& other = shard.emplace("member-2", hash_of("member-2"));
  EXPECT_FALSE(shard.active(m)) << "a new record holds nothing and has no claim in flight";
  EXPECT_EQ(shard.add_held(m, voucher(code_of(1), "member-1")), MemberShard::Added::kFirst);
  EXPECT_EQ(shard.add_held(m, voucher(code_of(1), "member-1")), MemberShard::Added::kKnown);
  EXPECT_EQ(shard.add_held(m, voucher(code_of(2), "member-1")), MemberShard::Added::kMore);
  EXPECT_TRUE(shard.active(m));
  EXPECT_EQ(MemberShard::held_count(m), 2u);
  EXPECT_EQ(shard.last_held(m)->code(), code_of(2));
  EXPECT_FALSE(shard.drop_held(m, code_of(1)));
  EXPECT_EQ(shard.last_held(m)->code(), code_of(2));
  EXPECT_FALSE(shard.drop_held(m, "not a code"));
  EXPECT_FALSE(shard.drop_held(m, code_of(3)));
  EXPECT_EQ(MemberShard::held_count(m), 1u);
  EXPECT_TRUE(shard.drop_held(m, code_of(2)));
  EXPECT_FALSE(shard.active(m));
  EXPECT_EQ(shard.find("member-1", hash_of("member-1")), &m) << "emptied, and not yet released";
  shard.release_if_inactive(other, hash_of("member-2"));  // holds nothing: released too
  EXPECT_EQ(shard.find("member-2", hash_of("member-2")), nullptr);
  shard.release_if_inactive(m, hash_of("member-1"));
  EXPECT_EQ(shard.find("member-1", hash_of("member-1")), nullptr);
  // New members take the released records, the last released first.
  MemberRecord& third = shard.emplace("member-3", hash_of("member-3"));
  EXPECT_EQ(&third, &m);
  EXPECT_EQ(third.id(), "member-3");
  EXPECT_EQ(MemberShard::held_count(third), 0u);
  MemberRecord& fourth = shard.emplace("member-4", hash_of("member-4"));
  EXPECT_EQ(&fourth, &other);
  EXPECT_EQ(shard.find("member-3", hash_of("member-3")), &third);
  EXPECT_EQ(shard.find("member-4", hash_of("member-4")), &fourth);
  EXPECT_EQ(shard.find("member-1", hash_of("member-1")), nullptr);
  EXPECT_EQ(shard.find("member-2", hash_of("member-2")), nullptr);
}

TEST(MemberShardTest, AMemberWhoHoldsAVoucherIsNotReleased) {
  MemberShard shard;
  MemberRecord& m = shard.emplace("member-1", hash_of("member-1"));
  EXPECT_EQ(shard.add_held(m, voucher(code_of(1), "member-1")), MemberShard::Added::kFirst);
  shard.release_if_inactive(m, hash_of("member-1"));
  EXPECT_EQ(shard.find("member-1", hash_of("member-1")), &m);
  EXPECT_EQ(MemberShard::held_count(m), 1u);
}

TEST(MemberShardTest, AVoucherHandedOutOutlivesItsDropAndIsFreedWithItsLastReference) {
  // The first voucher is kept by pool number; find_held and last_held hand
  // out counted references of their own. The pool hands a thread back the
  // slot it freed last, so a record's slot reused by the next record made
  // shows that it was freed then, and not before.
  std::thread([] {
    MemberShard shard;
    MemberRecord& m = shard.emplace("member-1", hash_of("member-1"));
    ASSERT_EQ(shard.add_held(m, voucher(code_of(1), "member-1")), MemberShard::Added::kFirst);
    VoucherPtr found =
        shard.find_held(m, [](const VoucherRecord& v) { return v.member_id() == "member-1"; });
    ASSERT_TRUE(found);
    VoucherPtr last = shard.last_held(m);
    EXPECT_EQ(last.get(), found.get());
    EXPECT_EQ(shard.find_held(m, [](const VoucherRecord&) { return false; }), nullptr);
    const VoucherRecord* record = found.get();
    ASSERT_TRUE(shard.drop_held(m, code_of(1)));
    EXPECT_EQ(MemberShard::held_count(m), 0u);
    EXPECT_EQ(found->code(), code_of(1)) << "alive while a reference handed out holds it";
    last.reset();
    EXPECT_EQ(found->member_id(), "member-1");
    {
      const VoucherPtr other = voucher(code_of(2), "member-2");
      EXPECT_NE(other.get(), record) << "a slot still held is not made again";
    }
    found.reset();
    const VoucherPtr next = voucher(code_of(3), "member-3");
    EXPECT_EQ(next.get(), record) << "freed with its last reference, and no reference left over";
  }).join();
}

TEST(MemberShardTest, LongIdsOfReleasedMembersLeaveNoBytesBehind) {
  // 10,000 members with 100-byte ids come and go, at most 10 at once: the
  // records and the ids' blocks are reused, and every id reads back whole.
  MemberShard shard;
  std::vector<MemberRecord*> now;
  std::set<const MemberRecord*> used;
  for (int i = 0; i < 10'000; ++i) {
    std::string id(100, static_cast<char>('a' + i % 26));
    id += std::to_string(i);
    MemberRecord& m = shard.emplace(id, hash_of(id));
    ASSERT_EQ(m.id(), id);
    used.insert(&m);
    now.push_back(&m);
    if (now.size() == 10) {
      for (MemberRecord* r : now) {
        const std::string kept(r->id());
        ASSERT_EQ(shard.find(kept, hash_of(kept)), r);
        shard.release_if_inactive(*r, hash_of(kept));
        ASSERT_EQ(shard.find(kept, hash_of(kept)), nullptr);
      }
      now.clear();
    }
  }
  EXPECT_EQ(used.size(), 10u) << "records are reused";
}

}  // namespace
}  // namespace voucherd
