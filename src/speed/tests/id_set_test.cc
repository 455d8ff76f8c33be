#include "speed/id_set.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace duet::speed {
namespace {

TEST(IdSetTest, SecondInsertOfAnIdIsRefused) {
  IdSet s;
  EXPECT_TRUE(s.Insert("a", 1));
  EXPECT_FALSE(s.Insert("a", 2));
  EXPECT_TRUE(s.Insert("b", 1));
  EXPECT_EQ(s.size(), 2u);
}

TEST(IdSetTest, GrowsAndExpiresByTs) {
  IdSet s;
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(s.Insert("id" + std::to_string(i), i));
  EXPECT_EQ(s.size(), 100000u);
  s.ExpireBefore(90000);
  EXPECT_EQ(s.size(), 10000u);
  EXPECT_TRUE(s.Insert("id5", 0));       // forgotten
  EXPECT_FALSE(s.Insert("id95000", 0));  // still known
  int64_t min_ts = INT64_MAX;
  s.ForEach([&](const Hash128&, int64_t ts) { min_ts = std::min(min_ts, ts); });
  EXPECT_EQ(min_ts, 0);  // the re-inserted id5
}

TEST(IdSetTest, ExpiringNothingKeepsEverything) {
  IdSet s;
  for (int i = 0; i < 1000; ++i) s.Insert(std::to_string(i), 100);
  s.ExpireBefore(50);
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_FALSE(s.Insert("999", 1));
}

// Expiry deletes in place: ids in long probe chains (few distinct home slots) must stay findable
// whatever is removed around them, across rounds of inserts and expiries.
TEST(IdSetTest, InPlaceExpiryKeepsCollidingIdsFindable) {
  IdSet s;
  std::vector<std::pair<Hash128, int64_t>> all;
  uint64_t next = 1;
  for (int64_t round = 0; round < 10; ++round) {
    for (int i = 0; i < 3000; ++i, ++next) {
      const Hash128 h{(next % 37) | (next << 32), next};
      const int64_t ts = round * 100 + static_cast<int64_t>(next % 100);
      ASSERT_TRUE(s.InsertHash(h, ts));
      all.emplace_back(h, ts);
    }
    const int64_t horizon = round * 100 - 50;
    s.ExpireBefore(horizon);
    size_t live = 0;
    for (const auto& [h, ts] : all) {
      if (ts < horizon) continue;
      ++live;
      ASSERT_FALSE(s.InsertHash(h, ts)) << "a live id was lost in round " << round;
    }
    ASSERT_EQ(s.size(), live);
    std::erase_if(all, [&](const auto& e) { return e.second < horizon; });
  }
}

}  // namespace
}  // namespace duet::speed
