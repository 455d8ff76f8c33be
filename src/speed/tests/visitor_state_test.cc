#include "speed/visitor_state.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

namespace duet::speed {
namespace {

constexpr int64_t kT0 = 1'793'491'200'000;

TEST(VisitorStateTest, EncodeDecodeRoundTrips) {
  core::SessionList done;
  done.sessions.push_back(core::Session{kT0, kT0 + 5000, 3, 2, 1, 0, 1});
  done.sessions.push_back(core::Session{kT0 + 9'000'000, kT0 + 16'300'000, 4, 1, 2, 2, 0});
  done.values = {12.5, -0.0, 1e300};
  done.hours = {kT0 / 3'600'000 + 2, kT0 / 3'600'000 + 4};
  const std::vector<OpenEvent> open = {
      {kT0 + 20'000'000, 0, 1, beacon::BeaconType::kPageview, "id-1"},
      {kT0 + 20'000'000, 3.25, 0, beacon::BeaconType::kConversion, "id-2"},
      {kT0 + 20'500'000, 0, 1, beacon::BeaconType::kInteraction, ""}};
  ByteWriter w;
  EncodeVisitorState(done.View(), open, INT64_MIN, &w);
  core::SessionList done2;
  std::vector<OpenEvent> open2;
  ASSERT_TRUE(DecodeVisitorState(w.buffer(), 2, &done2, &open2));
  ASSERT_EQ(done2.sessions.size(), 2u);
  EXPECT_EQ(done2.sessions[1].start_ts, kT0 + 9'000'000);
  EXPECT_EQ(done2.sessions[1].end_ts, kT0 + 16'300'000);
  EXPECT_EQ(done2.sessions[1].conversions, 2u);
  EXPECT_EQ(done2.sessions[0].attribution, 1u);
  EXPECT_EQ(done2.values.size(), 3u);
  EXPECT_TRUE(std::signbit(done2.values[1]));
  EXPECT_EQ(done2.values[2], 1e300);
  EXPECT_EQ(done2.hours, done.hours);
  ASSERT_EQ(open2.size(), 3u);
  EXPECT_EQ(open2[1].value, 3.25);
  EXPECT_EQ(open2[1].id, "id-2");
  EXPECT_EQ(open2[2].ts, kT0 + 20'500'000);
  EXPECT_EQ(open2[2].type, beacon::BeaconType::kInteraction);
  // A tag set the catalog does not have, and every truncation, are refused.
  EXPECT_FALSE(DecodeVisitorState(w.buffer(), 1, &done2, &open2));
  for (size_t cut = 0; cut < w.buffer().size(); ++cut) {
    EXPECT_FALSE(DecodeVisitorState(std::string_view(w.buffer()).substr(0, cut), 2, &done2, &open2))
        << cut;
  }
}

// Insert, find and erase against a std::set model, with keys forced into long probe chains.
TEST(VisitorTableTest, BehavesLikeASetUnderInsertAndErase) {
  VisitorTable table;
  std::set<std::pair<uint64_t, uint64_t>> model;
  std::mt19937_64 rng(3);
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 2000; ++i) {
      // Few distinct low bits: many keys share a home slot.
      const Hash128 k{(rng() % 64) | (rng() << 20), rng() % 3};
      bool inserted = false;
      VisitorTable::Entry* e = table.Insert(k, &inserted);
      EXPECT_EQ(inserted, model.insert({k.lo, k.hi}).second);
      e->last_ts = static_cast<int64_t>(k.lo % 1000);
      VisitorTable::SetState(e, std::string(1 + k.lo % 50, 'x'));
    }
    const int64_t cut = static_cast<int64_t>(rng() % 1000);
    std::set<std::pair<uint64_t, uint64_t>> erased;
    const size_t n = table.EraseIf([&](const VisitorTable::Entry& e) {
      if (e.last_ts >= cut) return false;
      EXPECT_TRUE(erased.insert({e.key.lo, e.key.hi}).second)
          << "pred called twice for one removal";
      return true;
    });
    EXPECT_EQ(n, erased.size());
    std::erase_if(model, [&](const auto& k) { return static_cast<int64_t>(k.first % 1000) < cut; });
    ASSERT_EQ(table.size(), model.size());
    for (const auto& [lo, hi] : model) {
      const VisitorTable::Entry* e = table.Find(Hash128{lo, hi});
      ASSERT_NE(e, nullptr);
      EXPECT_EQ(VisitorTable::State(*e).size(), 1 + lo % 50);
    }
    for (const auto& [lo, hi] : erased) EXPECT_EQ(table.Find(Hash128{lo, hi}), nullptr);
  }
  EXPECT_GT(table.MemoryBytes(), table.size() * sizeof(VisitorTable::Entry));
}

TEST(VisitorStateTest, IdsOfEventsBelowTheWatermarkAreNotKept) {
  const std::vector<OpenEvent> open = {{kT0, 0, 0, beacon::BeaconType::kPageview, "old-id"},
                                       {kT0 + 1000, 0, 0, beacon::BeaconType::kPageview, "new-id"}};
  ByteWriter w;
  EncodeVisitorState(core::SessionSpan{}, open, kT0 + 1000, &w);
  core::SessionList done;
  std::vector<OpenEvent> back;
  ASSERT_TRUE(DecodeVisitorState(w.buffer(), 1, &done, &back));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].id, "");
  EXPECT_EQ(back[1].id, "new-id");
}

}  // namespace
}  // namespace duet::speed
