// slots_test — proves, with no network, that the cluster slot of a key is
// CRC16-XMODEM mod 16384 over the right bytes (hash tags: the first '{', the
// first '}' after it, non-empty only), that redirections and seed lists are
// parsed strictly, and that a slot map is built from a CLUSTER SLOTS answer
// exactly (or refused whole). cluster_test checks key_slot against a real
// server's CLUSTER KEYSLOT.
#include "server/redis/slots.h"

#include <gtest/gtest.h>

#include "server/redis/keys.h"

namespace voucherd::redis {
namespace {

TEST(KeySlot, Crc16IsXmodem) {
  // The catalogue's check value for CRC-16/XMODEM.
  EXPECT_EQ(crc16_xmodem("123456789"), 0x31c3);
  EXPECT_EQ(crc16_xmodem(""), 0);
}

TEST(KeySlot, KnownSlotsOfWholeKeys) {
  // Values from the Redis Cluster specification and documentation.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("hello"), 866);
  EXPECT_EQ(key_slot("123456789"), 0x31c3 % 16384);
  EXPECT_EQ(key_slot(""), 0);
}

TEST(KeySlot, HashTags) {
  EXPECT_EQ(hashed_part("{user1000}.following"), "user1000");
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("{user1000}.followers"), key_slot("{user1000}.following"));
  // Only the first tag counts.
  EXPECT_EQ(hashed_part("foo{bar}{zap}"), "bar");
  // An empty first tag: the whole key is hashed, later braces do not count.
  EXPECT_EQ(hashed_part("foo{}{bar}"), "foo{}{bar}");
  EXPECT_EQ(hashed_part("{}"), "{}");
  // The tag ends at the first '}' after the first '{'.
  EXPECT_EQ(hashed_part("foo{{bar}}zap"), "{bar");
  EXPECT_EQ(hashed_part("{a}b}"), "a");
  // No closing brace: the whole key.
  EXPECT_EQ(hashed_part("foo{bar"), "foo{bar");
  EXPECT_EQ(hashed_part("{"), "{");
  EXPECT_EQ(hashed_part("}{"), "}{");
  EXPECT_EQ(hashed_part("}{x}"), "x");
}

TEST(KeySlot, EveryKeyOfACampaignSharesItsSlot) {
  const CampaignKeys keys("guangdong-2024");
  const Slot slot = key_slot("guangdong-2024");
  for (const std::string& key :
       {keys.def(), keys.stock(), keys.leases(), keys.issued(), keys.holders(), keys.drawn_chunk(7),
        keys.member("alice"), keys.voucher("ABCDE"), keys.draws("bob")}) {
    EXPECT_EQ(key_slot(key), slot) << key;
  }
  const CampaignKeys baseline("guangdong-2024", kBaselineKeyPrefix);
  EXPECT_EQ(key_slot(baseline.members()), slot);
  EXPECT_EQ(key_slot(kRegistryKey), key_slot(kRegistryVersionKey));
  EXPECT_EQ(key_slot(kRegistryKey), key_slot("registry"));
}

TEST(Redirects, ParsesMovedAndAsk) {
  Reply moved{Reply::Type::kError, "MOVED 3999 127.0.0.1:6381", 0, {}};
  auto r = parse_redirect(moved, "10.0.0.1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Redirect::Kind::kMoved);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->node, (NodeAddress{"127.0.0.1", 6381}));

  Reply ask{Reply::Type::kError, "ASK 16383 ::1:7000", 0, {}};
  r = parse_redirect(ask, "10.0.0.1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, Redirect::Kind::kAsk);
  EXPECT_EQ(r->slot, 16383);
  EXPECT_EQ(r->node, (NodeAddress{"::1", 7000}));

  // No host: the node that answered.
  Reply no_host{Reply::Type::kError, "MOVED 1 :7001", 0, {}};
  r = parse_redirect(no_host, "10.0.0.1");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->node, (NodeAddress{"10.0.0.1", 7001}));

  for (const char* bad : {"MOVED", "MOVED 3999", "MOVED 16384 h:1", "MOVED x h:1", "MOVED 1 h",
                          "MOVED 1 h:0", "ASK 1 h:65536", "MOVEDX 1 h:1", "ERR MOVED 1 h:1",
                          "TRYAGAIN", "CLUSTERDOWN The cluster is down"}) {
    EXPECT_FALSE(parse_redirect(Reply{Reply::Type::kError, bad, 0, {}}, "h").has_value()) << bad;
  }
  // Only error replies redirect.
  EXPECT_FALSE(parse_redirect(Reply{Reply::Type::kString, "MOVED 1 h:1", 0, {}}, "h").has_value());
}

TEST(SeedList, ParsesHostPortPairs) {
  auto seeds = parse_seed_list("10.0.0.5:7000,redis-b:7001,::1:7002");
  ASSERT_TRUE(seeds.has_value()) << seeds.error();
  ASSERT_EQ(seeds->size(), 3u);
  EXPECT_EQ((*seeds)[0], (NodeAddress{"10.0.0.5", 7000}));
  EXPECT_EQ((*seeds)[1], (NodeAddress{"redis-b", 7001}));
  EXPECT_EQ((*seeds)[2], (NodeAddress{"::1", 7002}));
  for (const char* bad : {"", "h", "h:", ":7000", "h:0", "h:65536", "h:1,", "h:1,,h:2", "h:x"}) {
    EXPECT_FALSE(parse_seed_list(bad).has_value()) << bad;
  }
}

Reply integer(long long v) { return Reply{Reply::Type::kInteger, "", v, {}}; }
Reply string(std::string s) { return Reply{Reply::Type::kString, std::move(s), 0, {}}; }
Reply array(std::vector<Reply> elements) {
  return Reply{Reply::Type::kArray, "", 0, std::move(elements)};
}

TEST(SlotMap, ReadsClusterSlots) {
  // Two primaries (one with a replica, one with no preferred endpoint) and a
  // range whose primary's endpoint is unknown.
  const Reply answer = array({
      array({integer(0), integer(5460), array({string("10.0.0.1"), integer(7000), string("id-a")}),
             array({string("10.0.0.4"), integer(7003), string("id-d")})}),
      array({integer(5461), integer(10922), array({string(""), integer(7001), string("id-b")})}),
      array({integer(10923), integer(16000), array({string("10.0.0.1"), integer(7000)})}),
      array({integer(16001), integer(16383), array({string("?"), integer(7002)})}),
  });
  auto map = SlotMap::from_cluster_slots(answer, "10.0.0.9");
  ASSERT_TRUE(map.has_value()) << map.error();
  EXPECT_EQ(map->slots_served(), 16001u);
  EXPECT_EQ(*map->primary(0), (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ(*map->primary(5460), (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ(*map->primary(5461), (NodeAddress{"10.0.0.9", 7001}));
  EXPECT_EQ(*map->primary(16000), (NodeAddress{"10.0.0.1", 7000}));
  EXPECT_EQ(map->primary(16001), nullptr);
  EXPECT_EQ(map->primary(16383), nullptr);
  EXPECT_EQ(map->primaries(), (std::vector<NodeAddress>{{"10.0.0.1", 7000}, {"10.0.0.9", 7001}}));

  // A MOVED answer moves one slot.
  map->assign(5461, NodeAddress{"10.0.0.3", 7002});
  EXPECT_EQ(*map->primary(5461), (NodeAddress{"10.0.0.3", 7002}));
  EXPECT_EQ(*map->primary(5462), (NodeAddress{"10.0.0.9", 7001}));
  EXPECT_EQ(map->primaries().size(), 3u);
  EXPECT_EQ(map->slots_served(), 16001u);

  EXPECT_EQ(SlotMap().slots_served(), 0u);
  EXPECT_TRUE(SlotMap().primaries().empty());
}

TEST(SlotMap, RefusesAnAnswerOfTheWrongShape) {
  const Reply node = array({string("h"), integer(7000)});
  const std::vector<Reply> bad = {
      Reply{Reply::Type::kError, "ERR This instance has cluster support disabled", 0, {}},
      string("no"),
      array({integer(1)}),
      array({array({integer(0), integer(10)})}),
      array({array({integer(10), integer(0), node})}),
      array({array({integer(0), integer(16384), node})}),
      array({array({integer(-1), integer(3), node})}),
      array({array({string("0"), integer(3), node})}),
      array({array({integer(0), integer(3), array({string("h")})})}),
      array({array({integer(0), integer(3), array({string("h"), string("7000")})})}),
      array({array({integer(0), integer(3), array({string("h"), integer(0)})})}),
      array({array({integer(0), integer(3), array({integer(1), integer(7000)})})}),
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    EXPECT_FALSE(SlotMap::from_cluster_slots(bad[i], "h").has_value()) << i;
  }
  // An empty answer (a node in no cluster yet) is a map of no slots.
  auto empty = SlotMap::from_cluster_slots(array({}), "h");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->slots_served(), 0u);
}

}  // namespace
}  // namespace voucherd::redis
