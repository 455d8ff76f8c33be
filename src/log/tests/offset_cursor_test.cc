// OffsetCursor (log/offset_cursor.h): what the group consumer returns of a partition is
// contiguous from its start, whatever position librdkafka fetches from.
#include "log/offset_cursor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace duet::log {
namespace {

using V = OffsetCursor::Verdict;

// Feeds fetched batches of offsets through the cursor as the consumer does; returns the offsets
// taken and counts the seeks.
struct Feed {
  OffsetCursor cursor;
  uint64_t batch = 0;
  std::vector<int64_t> taken;
  int seeks = 0;
  int gaps = 0;

  void Batch(const std::vector<int64_t>& offsets) {
    ++batch;
    for (const int64_t o : offsets) {
      switch (cursor.Check(o, batch)) {
        case V::kSkip:
          break;
        case V::kSeek:
          ++seeks;
          cursor.Sought(batch);
          break;
        case V::kTake:
          if (cursor.IsGap(o)) ++gaps;
          taken.push_back(o);
          cursor.Took(o);
          break;
      }
    }
  }
};

TEST(OffsetCursorTest, TakesContiguousRecordsAndSkipsRedeliveries) {
  Feed f;
  f.cursor.Start(10, false);
  f.Batch({8, 9, 10, 11});
  f.Batch({11, 12});
  EXPECT_EQ(f.taken, (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ(f.cursor.next(), 13);
  EXPECT_EQ(f.seeks, 0);
}

TEST(OffsetCursorTest, AFetchAheadOfTheStartSeeksBackAndLosesNothing) {
  // The stale position of an earlier assignment (librdkafka#4686): fetching resumed at 500 while
  // this member must read from 300.
  Feed f;
  f.cursor.Start(300, false);
  f.Batch({500, 501, 502});  // fetched before the seek: all dropped, one seek
  EXPECT_EQ(f.seeks, 1);
  EXPECT_EQ(f.cursor.seek_target(), 300);
  EXPECT_TRUE(f.taken.empty());
  f.Batch({300, 301, 302});
  EXPECT_EQ(f.taken, (std::vector<int64_t>{300, 301, 302}));
  EXPECT_EQ(f.gaps, 0);
}

TEST(OffsetCursorTest, AGapConfirmedBySeekingIsTaken) {
  // After the seek, the first record is past the expected offset: the topic has nothing in
  // between (a transaction marker, compaction); it is taken, once, and reported as a gap.
  Feed f;
  f.cursor.Start(40, false);
  f.Batch({42});
  EXPECT_EQ(f.seeks, 1);
  f.Batch({42, 43, 45});
  EXPECT_EQ(f.seeks, 2);  // 45 after 43: a new gap, seek back to 44
  EXPECT_EQ(f.taken, (std::vector<int64_t>{42, 43}));
  EXPECT_EQ(f.gaps, 1);
  f.Batch({45, 46});
  EXPECT_EQ(f.taken, (std::vector<int64_t>{42, 43, 45, 46}));
  EXPECT_EQ(f.gaps, 2);
}

TEST(OffsetCursorTest, FromTheOldestSeeksToTheOldestAndAcceptsWhereRetentionMovedIt) {
  Feed f;
  f.cursor.Start(5, true);  // the topic's oldest offset at start: 5
  EXPECT_EQ(f.cursor.seek_target(), OffsetCursor::kOldest);
  f.Batch({9, 10});  // fetching started past the oldest: seek to the oldest
  EXPECT_EQ(f.seeks, 1);
  EXPECT_EQ(f.cursor.seek_target(), OffsetCursor::kOldest);
  f.Batch({7, 8});  // retention deleted 5 and 6 meanwhile: not a gap of ours
  EXPECT_EQ(f.taken, (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(f.gaps, 0);
  EXPECT_EQ(f.cursor.seek_target(), 9);  // from now on, a position like any other
}

TEST(OffsetCursorTest, StartingAgainForgetsAPendingSeek) {
  Feed f;
  f.cursor.Start(100, false);
  f.Batch({150});
  EXPECT_EQ(f.seeks, 1);
  f.cursor.Start(120, false);  // held and started again elsewhere (a checkpoint moved on)
  f.Batch({130});
  EXPECT_EQ(f.seeks, 2);  // not taken as "the first record after the seek"
  f.Batch({120});
  EXPECT_EQ(f.taken, (std::vector<int64_t>{120}));
}

}  // namespace
}  // namespace duet::log
