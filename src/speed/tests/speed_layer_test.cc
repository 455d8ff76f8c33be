#include "speed/speed_layer.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "batch/batch.h"
#include "core/features.h"
#include "gen/generator.h"
#include "log/file_log.h"
#include "model/training.h"
#include "serve/merge.h"
#include "store/store.h"

namespace duet::speed {
namespace {

namespace fs = std::filesystem;

class SpeedLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("duet_speed_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A noisy generated dataset with no beacon later than the allowed lateness.
  std::string Generate(uint64_t seed, uint64_t lines) {
    gen::GenerateOptions o;
    o.out_dir = (dir_ / ("data" + std::to_string(seed))).string();
    o.beacons = lines;
    o.seed = seed;
    o.hours = 4;
    o.late_fraction = 0;
    o.bad_fraction = 0.03;
    o.duplicate_fraction = 0.05;
    o.lines_per_file = lines / 7 + 1;
    EXPECT_TRUE(gen::WriteDataset(o, nullptr).ok());
    return o.out_dir;
  }

  core::Views Batch(const std::string& input) {
    batch::BatchOptions o;
    o.input = input;
    o.threads = 2;
    auto v = batch::RunBatch(o, nullptr, nullptr);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : core::Views();
  }

  std::unique_ptr<store::Store> Store(const std::string& name) {
    auto s = store::OpenStore("sqlite:" + (dir_ / (name + ".sqlite")).string());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(*s);
  }

  static std::unique_ptr<log::Log> OpenLog(const std::string& input) {
    auto l = log::OpenFileLog(input);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(*l) : nullptr;
  }

  // Runs the speed layer to the end of the log. Every micro-batch (of random size) runs in a
  // fresh SpeedLayer recovered from the store, so each one starts from the last checkpoint; every
  // `reopen_log_every` micro-batches the log object is reopened too.
  core::Views Drain(const std::string& input, store::Store* store, std::mt19937_64* rng,
                    int reopen_log_every, SpeedOptions options = {}, size_t max_lines = 5000) {
    std::unique_ptr<log::Log> log = OpenLog(input);
    core::Views views;
    for (int step = 1; step < 100000; ++step) {
      options.max_batch_lines = 1 + (*rng)() % max_lines;
      SpeedLayer speed(log.get(), store, options);
      const Status recovered = speed.Recover();
      EXPECT_TRUE(recovered.ok()) << recovered.ToString();
      if (!recovered.ok()) break;
      auto st = speed.Step(true);
      EXPECT_TRUE(st.ok()) << st.status().ToString();
      views = speed.views();
      if (!st.ok() || st->lines == 0) break;
      ++(st->full_snapshot ? full_snapshots_ : incremental_commits_);
      if (reopen_log_every > 0 && step % reopen_log_every == 0) log = OpenLog(input);
    }
    return views;
  }

  // One micro-batch from the store's checkpoint (e.g. to apply a new batch boundary).
  static void StepOnce(const std::string& input, store::Store* store) {
    std::unique_ptr<log::Log> log = OpenLog(input);
    SpeedLayer speed(log.get(), store, SpeedOptions{});
    ASSERT_TRUE(speed.Recover().ok());
    ASSERT_TRUE(speed.Step(true).ok());
  }

  static void ExpectSameFigures(const core::Views& speed, const core::Views& batch) {
    EXPECT_EQ(speed.totals, batch.totals);
    EXPECT_EQ(speed.hourly, batch.hourly);
    EXPECT_EQ(speed.uniques, batch.uniques);
    EXPECT_EQ(speed.experiments, batch.experiments);
    EXPECT_EQ(speed.input.lines, batch.input.lines);
    EXPECT_EQ(speed.input.bad_rows_by_reason, batch.input.bad_rows_by_reason);
    EXPECT_EQ(speed.input.duplicates, batch.input.duplicates);
    EXPECT_EQ(speed.input.valid_beacons, batch.input.valid_beacons);
    EXPECT_EQ(speed.input.late_beacons, 0);
    EXPECT_TRUE(speed.input.Balanced());
  }

  fs::path dir_;
  int full_snapshots_ = 0;
  int incremental_commits_ = 0;
};

TEST_F(SpeedLayerTest, DrainEqualsBatchWhateverTheMicroBatchSplit) {
  const std::string input = Generate(1, 30000);
  const core::Views batch = Batch(input);
  ASSERT_GT(batch.input.duplicates, 0);
  ASSERT_GT(batch.input.bad_rows, 0);
  for (uint64_t seed : {1, 2, 3}) {
    std::mt19937_64 rng(seed);
    auto store = Store("s" + std::to_string(seed));
    ExpectSameFigures(Drain(input, store.get(), &rng, 0), batch);
  }
}

TEST_F(SpeedLayerTest, RecoveringFromTheStoreMidwayChangesNothing) {
  const std::string input = Generate(4, 20000);
  std::mt19937_64 rng(4);
  auto store = Store("recover");
  // Small micro-batches touch few visitors, so most commits are incremental.
  ExpectSameFigures(Drain(input, store.get(), &rng, 3, SpeedOptions{}, 300), Batch(input));
  // Both kinds of commit happened, and recoveries read mixtures of them.
  EXPECT_GT(full_snapshots_, 0);
  EXPECT_GT(incremental_commits_, 0);
  // The committed views are the same as the in-memory ones.
  auto scopes = store->ReadSpeedScopes();
  ASSERT_TRUE(scopes.ok());
  auto stored = serve::SpeedViews(*scopes);
  ASSERT_TRUE(stored.ok());
  ExpectSameFigures(*stored, Batch(input));
}

// A consumer group runs one engine per partition, each with its own scope in the store. With
// the input split by visitor (as Kafka keys it), the merge of the scopes' views is the batch
// layer's figures over all of it, and so is the serving merge.
TEST_F(SpeedLayerTest, ScopesSplitByVisitorMergeToTheBatchFigures) {
  const std::string input = Generate(5, 30000);
  constexpr int kParts = 3;
  std::vector<std::ofstream> parts;
  for (int p = 0; p < kParts; ++p) {
    fs::create_directories(dir_ / ("part" + std::to_string(p)));
    parts.emplace_back(dir_ / ("part" + std::to_string(p)) / "lines.ndjson", std::ios::binary);
  }
  std::vector<fs::path> files;  // in the log's order: by path
  for (const auto& f : fs::recursive_directory_iterator(input)) {
    if (f.is_regular_file() && f.path().filename().string()[0] != '_') files.push_back(f.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      // The visitor's value as the partitioner's key (a line without one goes to part 0).
      const size_t at = line.find("\"visitor\":\"");
      const std::string key =
          at == std::string::npos ? "" : line.substr(at + 11, line.find('"', at + 11) - at - 11);
      parts[std::hash<std::string>()(key) % kParts] << line << '\n';
    }
  }
  for (auto& p : parts) p.close();
  auto store = Store("scopes");
  std::mt19937_64 rng(5);
  for (int p = 0; p < kParts; ++p) {
    SpeedOptions o;
    o.scope = "beacons/" + std::to_string(p);
    Drain((dir_ / ("part" + std::to_string(p))).string(), store.get(), &rng, 2, o, 3000);
  }
  auto scopes = store->ReadSpeedScopes();
  ASSERT_TRUE(scopes.ok());
  ASSERT_EQ(scopes->size(), static_cast<size_t>(kParts));
  auto merged = serve::SpeedViews(*scopes);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  const core::Views batch = Batch(input);
  ExpectSameFigures(*merged, batch);
  auto serving = serve::MergeViews(*store->ReadMergeInputs());
  ASSERT_TRUE(serving.ok()) << serving.status().ToString();
  ExpectSameFigures(*serving, batch);
}

// The equivalence property: any arrival order within the allowed lateness, any micro-batch
// boundaries, gives the batch layer's figures over the same files.
TEST_F(SpeedLayerTest, AnyArrivalOrderWithinLatenessGivesBatchFigures) {
  for (uint64_t seed = 10; seed < 22; ++seed) {
    const std::string src = Generate(seed, 8000);
    // Read every line, give each an arrival time = ts + a delay of at most half the lateness,
    // and write them out in arrival order over several files.
    std::vector<std::pair<int64_t, std::string>> lines;
    std::mt19937_64 rng(seed);
    for (const auto& f : fs::recursive_directory_iterator(src)) {
      if (!f.is_regular_file() || f.path().filename().string()[0] == '_') continue;
      std::ifstream in(f.path(), std::ios::binary);
      std::string line;
      while (std::getline(in, line)) {
        int64_t ts = 0;
        const size_t p = line.find("\"ts\":");
        if (p != std::string::npos) ts = std::atoll(line.c_str() + p + 5);
        lines.emplace_back(ts + static_cast<int64_t>(rng() % (5 * 60'000)), line);
      }
    }
    std::stable_sort(lines.begin(), lines.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    const fs::path shuffled = dir_ / ("shuffled" + std::to_string(seed));
    fs::create_directories(shuffled);
    for (size_t i = 0, part = 0; i < lines.size(); ++part) {
      char name[32];
      std::snprintf(name, sizeof(name), "part-%05zu.ndjson", part);
      std::ofstream out(shuffled / name, std::ios::binary);
      for (size_t k = 0; k < 997 && i < lines.size(); ++k, ++i) out << lines[i].second << '\n';
    }
    auto store = Store("eq" + std::to_string(seed));
    SCOPED_TRACE("seed " + std::to_string(seed));
    ExpectSameFigures(Drain(shuffled.string(), store.get(), &rng, 5), Batch(shuffled.string()));
  }
}

TEST_F(SpeedLayerTest, BeaconsLaterThanTheLatenessAreCountedNotApplied) {
  const fs::path in = dir_ / "late";
  fs::create_directories(in);
  const int64_t t0 = 1'793'491'200'000;
  auto line = [](const std::string& id, int64_t ts) {
    return "{\"id\":\"" + id + "\",\"visitor\":\"v\",\"ts\":" + std::to_string(ts) +
           ",\"type\":\"pageview\"}\n";
  };
  std::ofstream(in / "a.ndjson") << line("1", t0 + 3600'000);
  std::ofstream(in / "b.ndjson") << line("2", t0) << line("3", t0 + 3600'000 - 60'000)
                                 << line("2", t0);
  auto store = Store("late");
  auto log = log::OpenFileLog(in.string());
  ASSERT_TRUE(log.ok());
  SpeedOptions o;
  o.max_batch_lines = 1;  // a.ndjson alone first: the watermark moves to t0 + 50 min
  SpeedLayer speed(log->get(), store.get(), o);
  ASSERT_TRUE(speed.Recover().ok());
  while (true) {
    auto st = speed.Step(true);
    ASSERT_TRUE(st.ok());
    if (st->lines == 0) break;
  }
  const core::InputTotals& i = speed.views().input;
  EXPECT_EQ(i.lines, 4);
  EXPECT_EQ(i.late_beacons, 1);   // "2" is an hour behind
  EXPECT_EQ(i.valid_beacons, 2);  // "1" and "3" (one minute of disorder is allowed)
  EXPECT_EQ(i.duplicates, 1);     // the re-sent "2" is still recognised
  EXPECT_TRUE(i.Balanced());
  // Watermark t0 + 50 min (max ts − 10 min lateness); hours ending 30 min before it are final.
  EXPECT_EQ(speed.views().final_before_ms, t0 + 50 * 60'000 - 30 * 60'000);
}

TEST_F(SpeedLayerTest, StateIsForgottenAfterTheTtl) {
  const fs::path in = dir_ / "ttl";
  fs::create_directories(in);
  const int64_t t0 = 1'793'491'200'000;
  {
    std::ofstream out(in / "a.ndjson");
    // 200 visitors, each active for one minute, one new visitor every 10 minutes.
    for (int v = 0; v < 200; ++v) {
      for (int k = 0; k < 3; ++k) {
        out << "{\"id\":\"" << v << "-" << k << "\",\"visitor\":\"v" << v
            << "\",\"ts\":" << t0 + v * 600'000LL + k * 20'000 << ",\"type\":\"pageview\"}\n";
      }
    }
  }
  auto store = Store("ttl");
  auto log = log::OpenFileLog(in.string());
  ASSERT_TRUE(log.ok());
  SpeedOptions o;
  o.ttl_ms = 3600'000;
  o.max_batch_lines = 30;
  SpeedLayer speed(log->get(), store.get(), o);
  ASSERT_TRUE(speed.Recover().ok());
  uint64_t most_active = 0;
  while (true) {
    auto st = speed.Step(true);
    ASSERT_TRUE(st.ok());
    if (st->lines == 0) break;
    most_active = std::max(most_active, st->visitors_active);
  }
  // One hour of TTL plus ten minutes of lateness at one visitor per ten minutes: a handful.
  EXPECT_LE(most_active, 12u);
  EXPECT_EQ(speed.views().totals.at(0).v.visitors, 200);  // forgotten visitors still count
}

// Commits a batch run over `input` into `store`, as `duet batch` does.
void CommitBatchRun(const std::string& input, store::Store* store) {
  batch::BatchOptions o;
  o.input = input;
  o.threads = 2;
  batch::PrefixView prefix;
  auto gen = store->BeginBatch();
  ASSERT_TRUE(gen.ok());
  auto v = batch::RunBatch(o, nullptr, nullptr, &prefix);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  store::BatchRun run{
      *gen, 0, 0, input, v->max_ts, v->input.lines, prefix.boundary_ms, std::move(prefix.state)};
  ASSERT_TRUE(store->CommitBatch(*gen, *v, run).ok());
}

core::Views Merged(store::Store* store) {
  auto in = store->ReadMergeInputs();
  EXPECT_TRUE(in.ok()) << in.status().ToString();
  auto v = serve::MergeViews(*in);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : core::Views();
}

void ExpectSameMergedFigures(const core::Views& merged, const core::Views& batch) {
  EXPECT_EQ(merged.totals, batch.totals);
  EXPECT_EQ(merged.hourly, batch.hourly);
  EXPECT_EQ(merged.uniques, batch.uniques);
  EXPECT_EQ(merged.experiments, batch.experiments);
}

// The serving merge: a batch run over the first part of the log, the speed layer over all of it;
// the merged figures equal the batch layer over all of it — distinct visitors, contamination and
// per-visitor moments across the boundary included. A later batch run moves the boundary.
TEST_F(SpeedLayerTest, MergedViewEqualsBatchOverEverything) {
  const std::string full = Generate(30, 30000);
  const fs::path early = dir_ / "early";
  std::vector<fs::path> files;
  for (const auto& f : fs::recursive_directory_iterator(full)) {
    if (f.is_regular_file() && f.path().filename().string()[0] != '_') files.push_back(f.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 4u);
  for (size_t i = 0; i < files.size() / 2; ++i) {
    const fs::path to = early / fs::relative(files[i], full);
    fs::create_directories(to.parent_path());
    fs::copy_file(files[i], to);
  }
  const core::Views everything = Batch(full);
  auto store = Store("merge");
  // Before any batch run, the merged view is the speed layer's.
  std::mt19937_64 rng(30);
  CommitBatchRun(early.string(), store.get());
  const core::Views speed = Drain(full, store.get(), &rng, 4);
  ExpectSameFigures(speed, everything);
  ExpectSameMergedFigures(Merged(store.get()), everything);
  auto in = store->ReadMergeInputs();
  ASSERT_TRUE(in.ok());
  EXPECT_GT(in->batch_boundary_ms, everything.min_ts);  // the boundary splits the data
  EXPECT_LT(in->batch_boundary_ms, everything.max_ts);

  // A batch run over everything moves the boundary; the merge is pending until the speed layer's
  // next micro-batch, then exact again.
  CommitBatchRun(full, store.get());
  auto pending = serve::MergeViews(*store->ReadMergeInputs());
  ASSERT_FALSE(pending.ok());
  EXPECT_EQ(pending.status().code(), StatusCode::kUnavailable);
  StepOnce(full, store.get());
  ExpectSameMergedFigures(Merged(store.get()), everything);
}

TEST_F(SpeedLayerTest, WithoutABatchRunTheMergedViewIsTheSpeedView) {
  const std::string input = Generate(32, 10000);
  auto store = Store("nobatch");
  std::mt19937_64 rng(32);
  const core::Views speed = Drain(input, store.get(), &rng, 2);
  ExpectSameMergedFigures(Merged(store.get()), speed);
  ExpectSameMergedFigures(Merged(store.get()), Batch(input));
}

// Beacons later than the lateness: counted by the speed layer, included by the next batch run,
// and the merged view is then exact.
TEST_F(SpeedLayerTest, LateBeaconsAreExactInTheMergeAfterTheNextBatchRun) {
  const std::string full = Generate(31, 20000);
  const core::Views on_time = Batch(full);
  {
    // Appended last: 20 beacons of new visitors, dated to the start of the period.
    std::ofstream late(fs::path(full) / "zz-late.ndjson");
    for (int i = 0; i < 20; ++i) {
      late << "{\"id\":\"late-" << i << "\",\"visitor\":\"late-v" << i
           << "\",\"ts\":" << on_time.min_ts + 60'000 * i
           << ",\"type\":\"conversion\",\"value\":2.5,\"experiments\":{\"checkout_button\":"
              "\"control\"}}\n";
    }
  }
  auto store = Store("late-merge");
  std::mt19937_64 rng(31);
  const core::Views speed = Drain(full, store.get(), &rng, 0);
  EXPECT_EQ(speed.input.late_beacons, 20);
  const core::Views everything = Batch(full);
  EXPECT_NE(speed.totals, everything.totals);  // the speed layer alone misses them
  CommitBatchRun(full, store.get());
  StepOnce(full, store.get());
  ExpectSameMergedFigures(Merged(store.get()), everything);
}

// Ids only order events with equal ts. The speed layer keeps them only for events at or above
// the watermark (older ones can never tie with a new event); equal-ts events arriving in
// different micro-batches, in reverse id order, must still be attributed as the batch does.
TEST_F(SpeedLayerTest, EqualTimestampsAcrossMicroBatchesAreOrderedById) {
  const int64_t t = 1'793'491'200'000 + 3'600'000;
  const auto line = [](const char* id, const char* visitor, int64_t ts, const char* exp) {
    std::string l = std::string("{\"id\":\"") + id + "\",\"visitor\":\"" + visitor +
                    "\",\"ts\":" + std::to_string(ts) + ",\"type\":\"pageview\"";
    if (exp[0] != '\0') l += std::string(",\"experiments\":{\"e\":\"") + exp + "\"}";
    return l + "}\n";
  };
  fs::create_directories(dir_ / "tie");
  std::ofstream(dir_ / "tie" / "part.ndjson")
      << line("v-early", "v", t - 20 * 60'000, "")  // id dropped once below the watermark
      << line("w-1", "w", t + 9 * 60'000, "")       // watermark: t - 1 min
      << line("v-b", "v", t, "B")                   // same ts as the next line, later id
      << line("v-a", "v", t, "A")                   // so A is attributed
      << line("v-c", "v", t + 60'000, "C") << line("w-2", "w", t + 40 * 60'000, "")
      << line("v-d", "v", t + 41 * 60'000, "A");
  const std::string input = (dir_ / "tie").string();
  const core::Views batch = Batch(input);
  auto store = Store("tie");
  std::mt19937_64 rng(1);
  const core::Views speed = Drain(input, store.get(), &rng, 1, SpeedOptions{}, 1);
  ExpectSameFigures(speed, batch);
  bool a_counted = false;
  for (const auto& r : batch.totals) a_counted |= r.variant == "A" && r.v.sessions == 2;
  EXPECT_TRUE(a_counted) << "the case does not test what it claims";
}

TEST_F(SpeedLayerTest, CheckpointWithOtherSettingsIsRefused) {
  const std::string input = Generate(20, 2000);
  auto store = Store("settings");
  {
    auto log = log::OpenFileLog(input);
    SpeedLayer speed(log->get(), store.get(), SpeedOptions{});
    ASSERT_TRUE(speed.Recover().ok());
    ASSERT_TRUE(speed.Step(true).ok());
  }
  auto log = log::OpenFileLog(input);
  SpeedOptions other;
  other.lateness_ms = 60'000;
  SpeedLayer speed(log->get(), store.get(), other);
  const Status s = speed.Recover();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--lateness"), std::string::npos);
}

// A checkpoint in a format this build does not know (written by a newer Duet, or an older one
// whose format was retired) is refused with a message saying which and what to do — never read.
TEST_F(SpeedLayerTest, CheckpointOfAnotherFormatVersionIsRefusedClearly) {
  const std::string input = Generate(22, 2000);
  for (const uint64_t version : {uint64_t{2}, uint64_t{4}}) {
    auto store = Store("format" + std::to_string(version));
    {
      auto log = log::OpenFileLog(input);
      SpeedLayer speed(log->get(), store.get(), SpeedOptions{});
      ASSERT_TRUE(speed.Recover().ok());
      ASSERT_TRUE(speed.Step(true).ok());
    }
    // Rewrite the stored state with another format version (the varint after the magic).
    auto cp = store->LoadSpeedCheckpoint("");
    ASSERT_TRUE(cp.ok() && cp->has_value());
    store::SpeedCheckpoint c = **cp;
    std::string plain(ZSTD_getFrameContentSize(c.state.data(), c.state.size()), '\0');
    ASSERT_EQ(ZSTD_decompress(plain.data(), plain.size(), c.state.data(), c.state.size()),
              plain.size());
    const std::string magic = "duet-speed-checkpoint";
    ASSERT_EQ(plain.substr(1, magic.size()), magic);
    ASSERT_EQ(plain[1 + magic.size()], 3) << "the current format version moved: update this test";
    plain[1 + magic.size()] = static_cast<char>(version);
    std::string packed(ZSTD_compressBound(plain.size()), '\0');
    packed.resize(ZSTD_compress(packed.data(), packed.size(), plain.data(), plain.size(), 1));
    c.state = packed;
    c.epoch += 1;
    c.put_records = std::move(c.records);
    c.records.clear();
    ASSERT_TRUE(store->CommitSpeed({}, c).ok());

    auto log = log::OpenFileLog(input);
    SpeedLayer speed(log->get(), store.get(), SpeedOptions{});
    const Status s = speed.Recover();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
    EXPECT_NE(s.message().find("format version " + std::to_string(version)), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find(version > 3 ? "newer Duet" : "older Duet"), std::string::npos)
        << s.message();
    EXPECT_NE(s.message().find("reads version 3"), std::string::npos) << s.message();
  }
}

TEST_F(SpeedLayerTest, SecondWriterIsFencedOff) {
  const std::string input = Generate(21, 4000);
  auto store = Store("fence");
  auto log1 = log::OpenFileLog(input);
  auto log2 = log::OpenFileLog(input);
  SpeedOptions o;
  o.max_batch_lines = 100;
  SpeedLayer a(log1->get(), store.get(), o);
  SpeedLayer b(log2->get(), store.get(), o);
  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(b.Recover().ok());
  {
    auto first = a.Step(true);
    ASSERT_TRUE(first.ok()) << first.status().message();
  }
  auto st = b.Step(true);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kAborted);
}

}  // namespace
}  // namespace duet::speed

namespace duet::speed {
namespace {

// Live scoring: the speed layer's sum over the sessions in progress equals the model's
// predictions for those sessions computed from the batch layer's view of the same beacons.
TEST(LiveScoringTest, ExpectedConversionsOfSessionsInProgress) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("duet_live_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  gen::GenerateOptions g;
  g.out_dir = (dir / "data").string();
  g.beacons = 40000;
  g.hours = 4;
  g.late_fraction = 0;
  ASSERT_TRUE(gen::WriteDataset(g, nullptr).ok());
  // The first 60 % of the lines in read order: the stream cut mid-traffic, with many sessions in
  // progress at its end.
  auto inputs = batch::ListInputs(g.out_dir);
  ASSERT_TRUE(inputs.ok());
  std::vector<std::string> lines;
  for (const batch::InputFile& f : *inputs) {
    std::ifstream in(f.path);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  fs::create_directories(dir / "cut");
  {
    std::ofstream out(dir / "cut" / "part.ndjson");
    for (size_t i = 0; i < lines.size() * 6 / 10; ++i) out << lines[i] << '\n';
  }
  g.out_dir = (dir / "cut").string();

  // A real model, trained on the same data.
  model::ExampleCollector collector(2, core::kDefaultSessionGapMs);
  batch::BatchOptions bo;
  bo.input = g.out_dir;
  bo.threads = 2;
  bo.on_visitor = [&](int t, const core::Catalog& c, std::span<const core::Event> ev) {
    collector.Visitor(t, c, ev);
  };
  ASSERT_TRUE(batch::RunBatch(bo, nullptr, nullptr).ok());
  auto set = model::BuildTrainingSet(collector.Rows(), 0.2);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  model::TrainOptions to;
  to.rounds = 10;
  auto booster = model::Booster::Train(set->train, to);
  ASSERT_TRUE(booster.ok());
  auto m = std::make_shared<model::LoadedModel>(
      model::LoadedModel{{7, 0, "{}"}, set->encoder, std::move(*booster)});

  auto store = store::OpenStore("sqlite:" + (dir / "live.sqlite").string());
  ASSERT_TRUE(store.ok());
  auto log = log::OpenFileLog(g.out_dir);
  ASSERT_TRUE(log.ok());
  SpeedOptions so;
  so.model = [m]() -> std::shared_ptr<const model::LoadedModel> { return m; };
  SpeedLayer speed(log->get(), store->get(), so);
  ASSERT_TRUE(speed.Recover().ok());
  auto st = speed.Step(true);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  const int64_t watermark = st->watermark_ms;
  const core::LiveScores& live = speed.views().live;
  EXPECT_EQ(live.model_version, 7);
  ASSERT_FALSE(live.rows.empty());
  ASSERT_EQ(live.rows[0].experiment, "");  // the site row first

  // The same from the batch layer's visitors: each one's last session, if it is in progress.
  std::mutex mu;
  int64_t sessions = 0;
  std::vector<float> rows;
  bo.on_visitor = [&](int, const core::Catalog& c, std::span<const core::Event> ev) {
    std::vector<core::SessionBounds> b;
    core::Sessionize(ev, core::kDefaultSessionGapMs, &b);
    const std::span<const core::Event> last =
        ev.subspan(b.back().begin, b.back().end - b.back().begin);
    if (last.back().ts + core::kDefaultSessionGapMs < watermark) return;
    for (const core::Event& e : last) {
      if (e.type == beacon::BeaconType::kConversion) return;
    }
    core::SessionHistory h;
    for (size_t i = 0; i + 1 < b.size(); ++i) {
      bool converted = false;
      for (uint32_t k = b[i].begin; k < b[i].end; ++k) {
        converted |= ev[k].type == beacon::BeaconType::kConversion;
      }
      h.Add(ev[b[i].end - 1].ts, converted);
    }
    std::array<float, core::kBaseFeatures> base{};
    core::SessionFeatures(last, h, base.data());
    std::vector<model::VariantPair> variants;
    for (const beacon::ExperimentTag& t : c.TagSetNames(last.front().tags)) {
      variants.emplace_back(std::string(t.experiment), std::string(t.variant));
    }
    std::vector<float> row(m->encoder.size());
    m->encoder.EncodeExample(base, variants, row.data());
    std::lock_guard<std::mutex> l(mu);
    ++sessions;
    rows.insert(rows.end(), row.begin(), row.end());
  };
  ASSERT_TRUE(batch::RunBatch(bo, nullptr, nullptr).ok());
  std::vector<float> p;
  ASSERT_TRUE(m->booster->Predict(rows, &p).ok());
  double expected = 0;
  for (const float x : p) expected += x;
  ASSERT_GT(sessions, 20);
  EXPECT_EQ(live.rows[0].sessions, sessions);
  EXPECT_NEAR(live.rows[0].expected_conversions, expected, 1e-9 * expected);
  // Every experiment's variants split (at most) the site's sessions.
  std::map<std::string, int64_t> per_experiment;
  for (const core::LiveRow& r : live.rows) {
    if (!r.experiment.empty()) per_experiment[r.experiment] += r.sessions;
  }
  EXPECT_FALSE(per_experiment.empty());
  for (const auto& [x, n] : per_experiment) EXPECT_LE(n, sessions) << x;

  // The store's views state carries the scores to readers (the serving merge).
  auto scopes = (*store)->ReadSpeedScopes();
  ASSERT_TRUE(scopes.ok());
  auto merged = serve::SpeedViews(*scopes);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(merged->live, live);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace duet::speed
