#include "speed/id_set.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace duet::speed
