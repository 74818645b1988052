// chunked_test — Chunked and ByteArena keep what they were given where it was
// put, reachable by number, across chunk boundaries.
#include "engine/chunked.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace voucherd {
namespace {

struct Item {
  std::uint64_t value = 0;
  std::string text;
};

TEST(ChunkedTest, ItemsKeepTheirPlaceAndNumberAcrossChunks) {
  // 16, 32, ..., 4096 per chunk (8,176 items), then 4,096 each: 30,000
  // items cross every growing chunk and five full ones.
  Chunked<Item, 16, 4096> items;
  EXPECT_EQ(items.size(), 0u);
  std::vector<const Item*> where;
  for (std::uint32_t n = 0; n < 30'000; ++n) {
    Item& placed = items.push_back(Item{n * 7 + 1, "item-" + std::to_string(n)});
    ASSERT_EQ(placed.value, n * 7 + 1);
    where.push_back(&placed);
  }
  ASSERT_EQ(items.size(), 30'000u);
  for (std::uint32_t n = 0; n < 30'000; ++n) {
    ASSERT_EQ(&items[n], where[n]) << "item " << n << " moved or is numbered wrong";
    ASSERT_EQ(items[n].value, n * 7 + 1);
    ASSERT_EQ(items[n].text, "item-" + std::to_string(n));
  }
  // Neighbours across each chunk boundary are distinct items.
  for (std::uint32_t edge : {16u, 48u, 112u, 8'176u, 12'272u}) {
    EXPECT_NE(&items[edge - 1], &items[edge]);
    EXPECT_EQ(items[edge].value, std::uint64_t{edge} * 7 + 1);
  }
}

TEST(ByteArenaTest, CopiesStayIntactWhateverTheirLength) {
  ByteArena<256, 16384> arena;
  std::vector<std::string> given;
  std::vector<const char*> kept;
  for (int i = 0; i < 5'000; ++i) {
    // Lengths 0 to 200, and now and then one as long as a whole chunk.
    const std::size_t length = i % 997 == 0 ? 16384 : static_cast<std::size_t>((i * 37) % 201);
    given.push_back(std::string(length, static_cast<char>('a' + i % 26)));
    kept.push_back(arena.append(given.back()));
  }
  for (std::size_t i = 0; i < given.size(); ++i) {
    ASSERT_EQ(std::string_view(kept[i], given[i].size()), given[i]) << "string " << i;
  }
}

}  // namespace
}  // namespace voucherd
