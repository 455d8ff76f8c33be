#include "core/aggregator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/mergeable.h"

namespace duet::core {
namespace {

using beacon::BeaconType;
constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z
constexpr int64_t kMin = 60'000;

class AggregatorTest : public ::testing::Test {
 protected:
  TagSetId Tags(std::vector<std::pair<std::string, std::string>> kv) {
    names_.push_back(kv);
    std::vector<beacon::ExperimentTag> tags;
    for (const auto& [e, v] : names_.back()) tags.push_back({e, v});
    return catalog_.InternTagSet(tags);
  }
  Event Ev(int64_t ts, const char* id, TagSetId tags = kEmptyTagSet,
           BeaconType type = BeaconType::kPageview, double value = 0) {
    return Event{ts, id, value, tags, type};
  }
  const FigureRow* Total(const Views& v, const std::string& e, const std::string& var) {
    for (const auto& r : v.totals) {
      if (r.experiment == e && r.variant == var) return &r;
    }
    return nullptr;
  }

  Catalog catalog_;
  std::vector<std::vector<std::pair<std::string, std::string>>> names_;
};

TEST_F(AggregatorTest, GapOfExactlyThirtyMinutesKeepsSession) {
  std::vector<Event> ev = {Ev(kT0, "a"), Ev(kT0 + 30 * kMin, "b")};
  std::vector<SessionBounds> s;
  Sessionize(ev, kDefaultSessionGapMs, &s);
  EXPECT_EQ(s.size(), 1u);
}

TEST_F(AggregatorTest, GapOneMillisecondOverThirtyMinutesSplitsSession) {
  std::vector<Event> ev = {Ev(kT0, "a"), Ev(kT0 + 30 * kMin + 1, "b")};
  std::vector<SessionBounds> s;
  Sessionize(ev, kDefaultSessionGapMs, &s);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].begin, 1u);
}

TEST_F(AggregatorTest, PrefixEndsBeforeTheFirstSessionThatCanStillGrow) {
  // Sessions: [0, 10 min], [50 min], [100 min, 110 min].
  std::vector<Event> ev = {Ev(kT0, "a"), Ev(kT0 + 10 * kMin, "b"), Ev(kT0 + 50 * kMin, "c"),
                           Ev(kT0 + 100 * kMin, "d"), Ev(kT0 + 110 * kMin, "e")};
  const int64_t gap = kDefaultSessionGapMs;
  EXPECT_EQ(SessionPrefixEnd(ev, gap, kT0), 0u);
  // The first session ended at 10 min: complete once the horizon is past 40 min.
  EXPECT_EQ(SessionPrefixEnd(ev, gap, kT0 + 40 * kMin), 0u);
  EXPECT_EQ(SessionPrefixEnd(ev, gap, kT0 + 40 * kMin + 1), 2u);
  EXPECT_EQ(SessionPrefixEnd(ev, gap, kT0 + 80 * kMin + 1), 3u);
  EXPECT_EQ(SessionPrefixEnd(ev, gap, kT0 + 140 * kMin + 1), 5u);
  EXPECT_EQ(SessionPrefixEnd(std::vector<Event>{}, gap, kT0), 0u);
}

TEST_F(AggregatorTest, SessionGapIsConfigurable) {
  std::vector<Event> ev = {Ev(kT0, "a"), Ev(kT0 + 6 * kMin, "b")};
  std::vector<SessionBounds> s;
  Sessionize(ev, 5 * kMin, &s);
  EXPECT_EQ(s.size(), 2u);
}

TEST_F(AggregatorTest, AttributionTakesTheEarliestBeaconMentioningTheExperiment) {
  const TagSetId a = Tags({{"exp", "A"}});
  const TagSetId b = Tags({{"exp", "B"}, {"other", "x"}});
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  // First beacon has no experiments, second says A, third says B and mentions "other".
  std::vector<Event> ev = {Ev(kT0, "1"), Ev(kT0 + kMin, "2", a), Ev(kT0 + 2 * kMin, "3", b)};
  agg.AddVisitor(ev);
  const Views v = agg.Finalize();
  ASSERT_NE(Total(v, "exp", "A"), nullptr);
  EXPECT_EQ(Total(v, "exp", "A")->v.sessions, 1);
  EXPECT_EQ(Total(v, "exp", "A")->v.events, 3);  // all beacons of the attributed session
  EXPECT_EQ(Total(v, "exp", "B"), nullptr);
  ASSERT_NE(Total(v, "other", "x"), nullptr);
  EXPECT_EQ(Total(v, "other", "x")->v.sessions, 1);
}

TEST_F(AggregatorTest, VisitorInTwoVariantsIsCountedAsContamination) {
  const TagSetId a = Tags({{"exp", "A"}});
  const TagSetId b = Tags({{"exp", "B"}});
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  agg.AddVisitor(std::vector<Event>{Ev(kT0, "1", a), Ev(kT0 + 2 * 3600'000, "2", b)});
  agg.AddVisitor(std::vector<Event>{Ev(kT0, "3", a)});
  const Views v = agg.Finalize();
  ASSERT_EQ(v.experiments.size(), 1u);
  EXPECT_EQ(v.experiments[0].visitors_in_multiple_variants, 1);
  EXPECT_EQ(Total(v, "exp", "A")->v.visitors, 2);
  EXPECT_EQ(Total(v, "exp", "A")->v.visitors_in_multiple_variants, 1);
  EXPECT_EQ(Total(v, "exp", "B")->v.visitors_in_multiple_variants, 1);
}

TEST_F(AggregatorTest, FiguresOfOneSession) {
  const TagSetId a = Tags({{"exp", "A"}});
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  agg.AddVisitor(std::vector<Event>{Ev(kT0, "1", a),
                                    Ev(kT0 + kMin, "2", a, BeaconType::kInteraction, 99.0),
                                    Ev(kT0 + 2 * kMin, "3", a, BeaconType::kConversion, 10.5),
                                    Ev(kT0 + 3 * kMin, "4", a, BeaconType::kConversion)});
  const Views v = agg.Finalize();
  const FigureValues& f = Total(v, "exp", "A")->v;
  EXPECT_EQ(f.visitors, 1);
  EXPECT_EQ(f.sessions, 1);
  EXPECT_EQ(f.events, 4);
  EXPECT_EQ(f.pageviews, 1);
  EXPECT_EQ(f.conversions, 1);
  EXPECT_EQ(f.revenue, 10.5);  // the interaction's value is ignored
  EXPECT_EQ(f.bounces, 0);
  EXPECT_EQ(f.duration_ms, 3 * kMin);
  EXPECT_EQ(f.converted_visitors, 1);
  EXPECT_EQ(f.revenue_sq, 10.5 * 10.5);
}

TEST_F(AggregatorTest, RollingUniquesCoverTwentyFourHours) {
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  agg.AddVisitor(std::vector<Event>{Ev(kT0, "1")});
  const Views v = agg.Finalize();
  ASSERT_EQ(v.uniques.size(), 24u);
  EXPECT_EQ(v.uniques.front().uniques_1h, 1);
  EXPECT_EQ(v.uniques.front().uniques_24h, 1);
  EXPECT_EQ(v.uniques.back().hour, kT0 / 3600'000 + 23);
  EXPECT_EQ(v.uniques.back().uniques_1h, 0);
  EXPECT_EQ(v.uniques.back().uniques_24h, 1);
}

TEST_F(AggregatorTest, OneHourUniquesCountEveryActiveHour) {
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  // One session spanning three consecutive hours, so the 24 h windows merge into one range.
  agg.AddVisitor(
      std::vector<Event>{Ev(kT0, "1"), Ev(kT0 + 3600'000, "2"), Ev(kT0 + 7200'000, "3")});
  const Views v = agg.Finalize();
  ASSERT_EQ(v.uniques.size(), 26u);
  for (int h = 0; h < 3; ++h) EXPECT_EQ(v.uniques[h].uniques_1h, 1) << h;
  EXPECT_EQ(v.uniques[3].uniques_1h, 0);
  for (const auto& u : v.uniques) EXPECT_EQ(u.uniques_24h, 1);
}

// The speed layer relies on this: retracting a visitor's old contribution and adding the new
// one gives the same figures as adding only the new one.
TEST_F(AggregatorTest, RetractThenAddEqualsAddingOnlyTheNewEvents) {
  const TagSetId a = Tags({{"exp", "A"}});
  const TagSetId b = Tags({{"exp", "B"}});
  std::mt19937_64 rng(42);
  Aggregator incremental(&catalog_, kDefaultSessionGapMs);
  Aggregator direct(&catalog_, kDefaultSessionGapMs);
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back("id" + std::to_string(i));
  for (int visitor = 0; visitor < 50; ++visitor) {
    std::vector<Event> ev;
    for (int i = 0; i < 6; ++i) {
      const auto type = static_cast<BeaconType>(rng() % 3);
      ev.push_back(Ev(kT0 + static_cast<int64_t>(rng() % (6 * 3600'000)),
                      ids[visitor * 4 + i % 4].c_str(), rng() % 2 ? a : b, type,
                      static_cast<double>(rng() % 1000) / 7));
    }
    std::sort(ev.begin(), ev.end(), EventBefore);
    std::vector<Event> partial(ev.begin(), ev.begin() + 3);
    incremental.AddVisitor(partial);
    incremental.AddVisitor(partial, -1);
    incremental.AddVisitor(ev);
    direct.AddVisitor(ev);
  }
  EXPECT_EQ(incremental.Finalize(), direct.Finalize());
}

// The speed layer keeps complete sessions summarized; the figures must not notice. Random
// visitors (several experiments, conversions, equal timestamps, gaps around the session gap),
// with a session gap of 30 min (hours always contiguous) and of 2 h (hours with holes), and
// every session prefix (what the serving merge subtracts).
TEST_F(AggregatorTest, SummarizedSessionsGiveTheFiguresOfTheirEvents) {
  const std::vector<TagSetId> tags = {kEmptyTagSet, Tags({{"exp", "A"}}), Tags({{"exp", "B"}}),
                                      Tags({{"exp", "A"}, {"other", "x"}}),
                                      Tags({{"other", "y"}, {"third", "z"}})};
  std::mt19937_64 rng(7);
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i)
    ids.push_back("id" + std::to_string(i % 13) + "-" + std::to_string(i));
  for (const int64_t gap : {kDefaultSessionGapMs, int64_t{2 * 3600'000}}) {
    Aggregator from_events(&catalog_, gap);
    Aggregator from_sessions(&catalog_, gap);
    Aggregator prefix_events(&catalog_, gap);
    Aggregator prefix_sessions(&catalog_, gap);
    for (int visitor = 0; visitor < 300; ++visitor) {
      std::vector<Event> ev;
      int64_t ts = kT0 + static_cast<int64_t>(rng() % (3 * 3600'000));
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int i = 0; i < n; ++i) {
        const int64_t step[] = {0, 1, 20 * kMin, gap, gap + 1, 50 * kMin, 3 * 3600'000};
        ts += step[rng() % 7];
        ev.push_back(Ev(ts, ids[rng() % ids.size()].c_str(), tags[rng() % tags.size()],
                        static_cast<BeaconType>(rng() % 3), static_cast<double>(rng() % 997) / 3));
      }
      std::sort(ev.begin(), ev.end(), EventBefore);
      SessionList list;
      Summarize(ev, gap, &catalog_, &list);
      from_events.AddVisitor(ev);
      from_sessions.AddSessions(list.View());
      const int64_t horizon = ev[rng() % ev.size()].ts + gap + static_cast<int64_t>(rng() % 3);
      const size_t k_events = SessionPrefixEnd(std::span<const Event>(ev), gap, horizon);
      const size_t k_sessions =
          SessionPrefixEnd(std::span<const Session>(list.sessions), gap, horizon);
      const SessionSpan first = list.View().First(k_sessions);
      uint64_t first_events = 0;
      for (const Session& s : first.sessions) first_events += s.events;
      ASSERT_EQ(first_events, k_events);
      prefix_events.AddVisitor(std::span<const Event>(ev).first(k_events));
      prefix_sessions.AddSessions(first);
    }
    EXPECT_EQ(from_sessions.Finalize(), from_events.Finalize()) << "gap " << gap;
    EXPECT_EQ(prefix_sessions.Finalize(), prefix_events.Finalize()) << "gap " << gap;
  }
}

// What the speed layer does when a visitor's open session grows: retract and add back with the
// complete sessions "settled" (their own figures left in place) equals adding the new state.
TEST_F(AggregatorTest, SettledSessionsMayBeLeftOutOfARetractAndAdd) {
  const TagSetId a = Tags({{"exp", "A"}});
  const TagSetId b = Tags({{"exp", "B"}});
  Aggregator incremental(&catalog_, kDefaultSessionGapMs);
  Aggregator direct(&catalog_, kDefaultSessionGapMs);
  const std::vector<Event> before = {Ev(kT0, "1", a, BeaconType::kConversion, 2.5),
                                     Ev(kT0 + 5 * kMin, "2", b), Ev(kT0 + 3 * 60 * kMin, "3", b)};
  std::vector<Event> after = before;
  after.push_back(Ev(kT0 + 3 * 60 * kMin + 10 * kMin, "4", a, BeaconType::kConversion, 1.25));
  SessionList old_list, new_list;
  Summarize(before, kDefaultSessionGapMs, &catalog_, &old_list);
  Summarize(after, kDefaultSessionGapMs, &catalog_, &new_list);
  ASSERT_EQ(old_list.sessions.size(), 2u);
  incremental.AddSessions(old_list.View());
  incremental.AddSessions(old_list.View(), -1, /*settled=*/1);
  incremental.AddSessions(new_list.View(), +1, /*settled=*/1);
  direct.AddSessions(new_list.View());
  EXPECT_EQ(incremental.Finalize(), direct.Finalize());
}

TEST_F(AggregatorTest, SummarizeKeepsHolesInTheHoursOnlyWhenThereAreSome) {
  const int64_t gap = 2 * 3600'000;
  SessionList list;
  // 00:10 and 01:50: one session, a beacon in each of its two hours.
  Summarize(std::vector<Event>{Ev(kT0 + 10 * kMin, "a"), Ev(kT0 + 110 * kMin, "b")}, gap, &catalog_,
            &list);
  ASSERT_EQ(list.sessions.size(), 1u);
  EXPECT_EQ(list.sessions[0].hours, 0u);
  EXPECT_TRUE(list.hours.empty());
  // 00:10 and 02:05 (gap 1 h 55 min): one session with no beacon in hour 1.
  list.Clear();
  Summarize(std::vector<Event>{Ev(kT0 + 10 * kMin, "a"), Ev(kT0 + 125 * kMin, "b")}, gap, &catalog_,
            &list);
  ASSERT_EQ(list.sessions.size(), 1u);
  EXPECT_EQ(list.sessions[0].hours, 2u);
  EXPECT_EQ(list.hours, (std::vector<int64_t>{kT0 / 3600'000, kT0 / 3600'000 + 2}));
}

TEST_F(AggregatorTest, SaveAndLoadRestoreExactState) {
  const TagSetId a = Tags({{"exp", "A"}});
  const TagSetId b = Tags({{"exp", "B"}, {"other", "x"}});
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  for (int visitor = 0; visitor < 30; ++visitor) {
    agg.AddVisitor(std::vector<Event>{
        Ev(kT0 + visitor * kMin, "1", visitor % 2 ? a : b, BeaconType::kConversion, 0.1 * visitor),
        Ev(kT0 + visitor * 7 * kMin, "2", a)});
  }
  ByteWriter w;
  catalog_.Save(&w);
  agg.Save(&w);
  Catalog catalog2;
  ByteReader r(w.buffer());
  ASSERT_TRUE(catalog2.Load(&r));
  Aggregator agg2(&catalog2, kDefaultSessionGapMs);
  ASSERT_TRUE(agg2.Load(&r));
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(agg2.Finalize(), agg.Finalize());
  // Exactness survives: retracting a visitor from the restored state equals never adding it.
  const std::vector<Event> extra = {Ev(kT0, "z", a, BeaconType::kConversion, 1e-9)};
  agg.AddVisitor(extra);
  ByteWriter w2;
  agg.Save(&w2);
  Aggregator agg3(&catalog_, kDefaultSessionGapMs);
  ByteReader r2(w2.buffer());
  ASSERT_TRUE(agg3.Load(&r2));
  agg3.AddVisitor(extra, -1);
  EXPECT_EQ(agg3.Finalize(), agg2.Finalize());
}

TEST_F(AggregatorTest, LoadRejectsTruncatedInput) {
  Aggregator agg(&catalog_, kDefaultSessionGapMs);
  agg.AddVisitor(std::vector<Event>{Ev(kT0, "1", Tags({{"exp", "A"}}))});
  ByteWriter w;
  agg.Save(&w);
  const std::string cut = w.buffer().substr(0, w.buffer().size() / 2);
  ByteReader r(cut);
  Aggregator other(&catalog_, kDefaultSessionGapMs);
  EXPECT_FALSE(other.Load(&r));
}

TEST_F(AggregatorTest, MergedAggregatorsEqualOne) {
  const TagSetId a = Tags({{"exp", "A"}});
  Aggregator one(&catalog_, kDefaultSessionGapMs);
  Aggregator left(&catalog_, kDefaultSessionGapMs);
  Aggregator right(&catalog_, kDefaultSessionGapMs);
  for (int visitor = 0; visitor < 20; ++visitor) {
    std::vector<Event> ev = {
        Ev(kT0 + visitor * kMin, "x", a, BeaconType::kConversion, 0.1 * visitor)};
    one.AddVisitor(ev);
    (visitor % 2 ? left : right).AddVisitor(ev);
  }
  left.Merge(right);
  EXPECT_EQ(left.Finalize(), one.Finalize());
}

// Parts saved with their own catalogs (as the speed layer's scopes are) merge to the figures of
// one aggregator fed every visitor; input accounting is summed, final_before is the least.
TEST_F(AggregatorTest, ViewsMergerSumsPartsSavedWithTheirOwnCatalogs) {
  Aggregator one(&catalog_, kDefaultSessionGapMs);
  std::vector<std::string> states;
  for (int part = 0; part < 3; ++part) {
    Catalog part_catalog;
    Aggregator agg(&part_catalog, kDefaultSessionGapMs);
    for (int visitor = part; visitor < 30; visitor += 3) {
      const std::string variant = visitor % 2 ? "B" : "A";
      std::vector<beacon::ExperimentTag> tags = {{"exp", variant}};
      // Interned in a different order per part: ids differ across the parts' catalogs.
      const std::vector<beacon::ExperimentTag> other = {{"other", "x"}};
      if (part == 1) part_catalog.InternTagSet(other);
      std::vector<Event> ev = {Event{kT0 + visitor * kMin, "x", 0.37 * visitor,
                                     part_catalog.InternTagSet(tags), BeaconType::kConversion}};
      agg.AddVisitor(ev);
      std::vector<Event> mine = {Event{kT0 + visitor * kMin, "x", 0.37 * visitor,
                                       catalog_.InternTagSet(tags), BeaconType::kConversion}};
      one.AddVisitor(mine);
    }
    InputTotals in;
    in.lines = 10 + part;
    in.valid_beacons = 10;
    in.bad_rows = part;
    if (part > 0) in.bad_rows_by_reason["bad_json"] = part;
    ByteWriter w;
    SaveViewsState(in, kT0 + part * kMin, part_catalog, agg, &w);
    states.push_back(w.buffer());
  }
  ViewsMerger merger;
  for (const std::string& s : states) ASSERT_TRUE(merger.AddViews(s, "part").ok());
  const Views merged = merger.Finish();
  const Views want = one.Finalize();
  EXPECT_EQ(merged.totals, want.totals);
  EXPECT_EQ(merged.hourly, want.hourly);
  EXPECT_EQ(merged.uniques, want.uniques);
  EXPECT_EQ(merged.input.lines, 33);
  EXPECT_EQ(merged.input.bad_rows, 3);
  EXPECT_EQ(merged.input.bad_rows_by_reason.at("bad_json"), 3);
  EXPECT_EQ(merged.final_before_ms, kT0);
  // Input only: the figures stay empty.
  ViewsMerger inputs;
  ASSERT_TRUE(inputs.AddInput(states[2], "part").ok());
  EXPECT_TRUE(inputs.Finish().totals.empty());
  EXPECT_EQ(inputs.Finish().input.lines, 12);
  // A damaged state is Corruption naming the part.
  ViewsMerger damaged;
  const Status s = damaged.AddViews(states[0].substr(0, states[0].size() - 3), "scope 'b/0'");
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("scope 'b/0'"), std::string::npos);
}

}  // namespace
}  // namespace duet::core
