#include "gen/generator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "util/line_reader.h"

namespace duet::gen {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMsPerHour = 3600000;

GenerateOptions SmallOptions() {
  GenerateOptions o;
  o.beacons = 20000;
  o.seed = 42;
  o.hours = 3;
  o.lines_per_file = 2500;  // several parts per hour
  o.bad_fraction = 0.05;
  o.duplicate_fraction = 0.05;
  o.late_fraction = 0.01;
  return o;
}

struct Collected {
  std::string text;
  GeneratedLine meta;  // text view not valid: use `text`
};

std::vector<Collected> Collect(const GenerateOptions& o) {
  TrafficGenerator gen(o);
  std::vector<Collected> out;
  GeneratedLine line;
  while (gen.Next(&line)) out.push_back({std::string(line.text), line});
  return out;
}

// The id of a line that has one ("id":"..." anywhere), or "".
std::string IdOf(std::string_view text) {
  const size_t at = text.find("\"id\":\"");
  if (at == std::string_view::npos) return "";
  const size_t start = at + 6;
  return std::string(text.substr(start, text.find('"', start) - start));
}

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) /
            ("duet_gen_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Dir(const std::string& name) const { return (root_ / name).string(); }

  // Data files relative to `dir`, in the batch layer's read order (bytewise by path).
  static std::vector<std::string> DataFiles(const std::string& dir) {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      const std::string rel = fs::relative(e.path(), dir).string();
      if (rel.rfind("dt=", 0) == 0) files.push_back(rel);
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  static std::vector<std::string> ReadLines(const std::string& path) {
    auto reader = LineReader::Open(path, 1 << 20);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    std::vector<std::string> lines;
    Line line;
    while (true) {
      const Result<bool> r = (*reader)->Next(&line);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok() || !*r) break;
      lines.emplace_back(line.bytes);
    }
    return lines;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The integer after the first `"key":` following `after` in a JSON text.
  static int64_t JsonInt(const std::string& json, const std::string& key,
                         const std::string& after = "") {
    const size_t from = after.empty() ? 0 : json.find(after);
    EXPECT_NE(from, std::string::npos) << after;
    const size_t at = json.find("\"" + key + "\":", from);
    EXPECT_NE(at, std::string::npos) << key;
    return std::stoll(json.substr(at + key.size() + 3));
  }

  fs::path root_;
};

TEST_F(GeneratorTest, SameSeedGivesByteIdenticalFiles) {
  GenerateOptions a = SmallOptions();
  a.out_dir = Dir("a");
  GenerateOptions b = a;
  b.out_dir = Dir("b");
  ASSERT_TRUE(WriteDataset(a, nullptr).ok());
  ASSERT_TRUE(WriteDataset(b, nullptr).ok());
  const std::vector<std::string> files = DataFiles(a.out_dir);
  ASSERT_GT(files.size(), 3u);
  EXPECT_EQ(files, DataFiles(b.out_dir));
  for (const std::string& f : files) {
    EXPECT_EQ(ReadFile(a.out_dir + "/" + f), ReadFile(b.out_dir + "/" + f)) << f;
  }
  EXPECT_EQ(ReadFile(a.out_dir + "/_manifest.json"), ReadFile(b.out_dir + "/_manifest.json"));
}

TEST_F(GeneratorTest, DifferentSeedsGiveDifferentLines) {
  GenerateOptions a = SmallOptions();
  GenerateOptions b = a;
  b.seed = 43;
  const auto la = Collect(a);
  const auto lb = Collect(b);
  ASSERT_EQ(la.size(), lb.size());
  size_t same = 0;
  for (size_t i = 0; i < la.size(); ++i) same += la[i].text == lb[i].text;
  EXPECT_LT(same, la.size() / 100);  // only blank bad rows may coincide
}

TEST_F(GeneratorTest, ProducesExactlyTheRequestedNumberOfLines) {
  for (const uint64_t n : {0ULL, 1ULL, 7ULL, 12345ULL}) {
    GenerateOptions o = SmallOptions();
    o.beacons = n;
    EXPECT_EQ(Collect(o).size(), n);
  }
}

TEST_F(GeneratorTest, LinesComeInNonDecreasingArrivalOrder) {
  const auto lines = Collect(SmallOptions());
  for (size_t i = 1; i < lines.size(); ++i) {
    ASSERT_LE(lines[i - 1].meta.arrival_ms, lines[i].meta.arrival_ms) << "line " << i;
  }
}

TEST_F(GeneratorTest, EventTimeDisorderIsBoundedByMaxDelayExceptLateBeacons) {
  GenerateOptions o = SmallOptions();
  o.max_delay_ms = 30000;
  const auto lines = Collect(o);
  int64_t max_ts = 0;
  uint64_t late = 0, disordered = 0;
  for (const Collected& c : lines) {
    const GeneratedLine& l = c.meta;
    if (l.kind != LineKind::kValid) continue;
    const int64_t lag = l.arrival_ms - l.event_ms;
    if (l.late) {
      ++late;
      EXPECT_GE(lag, 15 * 60 * 1000);
      EXPECT_LE(lag, 3 * kMsPerHour);
    } else {
      EXPECT_GE(lag, 0);
      EXPECT_LE(lag, o.max_delay_ms);
      // Follows from the two bounds and arrival order; this is what a watermark relies on.
      EXPECT_GE(l.event_ms, max_ts - o.max_delay_ms);
    }
    if (l.event_ms < max_ts - o.max_delay_ms) ++disordered;
    max_ts = std::max(max_ts, l.event_ms);
  }
  EXPECT_GT(late, 0u);
  EXPECT_LE(disordered, late);
}

TEST_F(GeneratorTest, DuplicatesResendAnEarlierIdOneToSixtySecondsLater) {
  const auto lines = Collect(SmallOptions());
  std::unordered_map<std::string, std::pair<int64_t, std::string>> first;  // id -> arrival, text
  uint64_t dups = 0, altered = 0;
  for (const Collected& c : lines) {
    if (c.meta.kind == LineKind::kBad) continue;
    const std::string id = IdOf(c.text);
    ASSERT_FALSE(id.empty()) << c.text;
    if (c.meta.kind == LineKind::kValid) {
      EXPECT_TRUE(first.emplace(id, std::make_pair(c.meta.arrival_ms, c.text)).second) << id;
      continue;
    }
    ++dups;
    const auto it = first.find(id);
    ASSERT_NE(it, first.end()) << "re-send before its original: " << c.text;
    const int64_t after = c.meta.arrival_ms - it->second.first;
    EXPECT_GE(after, 1000);
    EXPECT_LE(after, 60000);
    if (c.meta.altered) {
      ++altered;
      EXPECT_NE(c.text, it->second.second);
    } else {
      EXPECT_EQ(c.text, it->second.second);
    }
  }
  EXPECT_GT(dups, 500u);
  EXPECT_GT(altered, 0u);
  EXPECT_LT(altered, dups / 4);
}

TEST_F(GeneratorTest, EveryBadKindAppearsAndValidLinesLookLikeBeacons) {
  GenerateOptions o = SmallOptions();
  o.beacons = 40000;
  o.bad_fraction = 0.3;
  std::array<uint64_t, kBadKindCount> per_kind{};
  for (const Collected& c : Collect(o)) {
    if (c.meta.kind == LineKind::kBad) {
      ++per_kind[static_cast<size_t>(c.meta.bad_kind)];
      if (c.meta.bad_kind == BadKind::kHugeLine) {
        EXPECT_GT(c.text.size(), 65536u);
      }
      if (c.meta.bad_kind == BadKind::kEmptyLine) {
        EXPECT_EQ(c.text.find_first_not_of(" \t"), std::string::npos);
      }
      continue;
    }
    EXPECT_EQ(c.text.front(), '{');
    EXPECT_LT(c.text.size(), 1024u);
    for (const char* field : {"\"id\":\"", "\"visitor\":\"v", "\"ts\":1", "\"type\":\""}) {
      EXPECT_NE(c.text.find(field), std::string::npos) << field << " in " << c.text;
    }
  }
  for (size_t k = 0; k < kBadKindCount; ++k) {
    EXPECT_GT(per_kind[k], 0u) << BadKindName(static_cast<BadKind>(k));
    EXPECT_NE(BadKindReason(static_cast<BadKind>(k)), "none");
  }
}

TEST_F(GeneratorTest, FilesHoldTheStreamInOrderEachInItsArrivalHour) {
  GenerateOptions o = SmallOptions();
  o.out_dir = Dir("out");
  GenerateStats stats;
  ASSERT_TRUE(WriteDataset(o, &stats).ok());
  const auto expected = Collect(o);
  size_t next = 0;
  std::set<std::string> hours;
  for (const std::string& f : DataFiles(o.out_dir)) {
    // dt=YYYY-MM-DD/hr=HH/part-NNNNN.ndjson
    ASSERT_EQ(f.size(), std::string("dt=2026-11-01/hr=00/part-00000.ndjson").size()) << f;
    hours.insert(f.substr(0, 19));
    const std::vector<std::string> lines = ReadLines(o.out_dir + "/" + f);
    EXPECT_LE(lines.size(), o.lines_per_file);
    EXPECT_GT(lines.size(), 0u);
    for (const std::string& line : lines) {
      ASSERT_LT(next, expected.size());
      EXPECT_EQ(line, expected[next].text) << f;
      const int64_t arrival = expected[next].meta.arrival_ms;
      const int64_t day = arrival / (24 * kMsPerHour);
      char want[32];
      std::snprintf(want, sizeof(want), "hr=%02d/",
                    static_cast<int>((arrival - day * 24 * kMsPerHour) / kMsPerHour));
      EXPECT_EQ(f.substr(14, 6), want) << "arrival " << arrival;
      ++next;
    }
  }
  EXPECT_EQ(next, expected.size());
  EXPECT_TRUE(hours.count("dt=2026-11-01/hr=00"));
  EXPECT_TRUE(hours.count("dt=2026-11-01/hr=03"));  // visits and late beacons spill over
  EXPECT_EQ(stats.files, DataFiles(o.out_dir).size());
  // No temporary files are left behind.
  for (const auto& e : fs::recursive_directory_iterator(o.out_dir)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST_F(GeneratorTest, ManifestCountsEqualWhatIsInTheFiles) {
  GenerateOptions o = SmallOptions();
  o.out_dir = Dir("out");
  GenerateStats stats;
  ASSERT_TRUE(WriteDataset(o, &stats).ok());
  const std::string manifest = ReadFile(o.out_dir + "/_manifest.json");

  // Count the files' lines by kind: kinds from replaying the generator (checked line by line
  // against the files above), distinct ids straight from the text.
  const auto expected = Collect(o);
  uint64_t lines = 0, valid = 0, dups = 0, bad = 0;
  std::array<uint64_t, kBadKindCount> per_kind{};
  std::unordered_set<std::string> ids;
  for (const std::string& f : DataFiles(o.out_dir)) {
    for (const std::string& line : ReadLines(o.out_dir + "/" + f)) {
      ASSERT_LT(lines, expected.size());
      const GeneratedLine& meta = expected[lines].meta;
      ASSERT_EQ(line, expected[lines].text);
      ++lines;
      if (meta.kind == LineKind::kBad) {
        ++bad;
        ++per_kind[static_cast<size_t>(meta.bad_kind)];
      } else {
        ids.insert(IdOf(line));
        (meta.kind == LineKind::kValid ? valid : dups)++;
      }
    }
  }
  EXPECT_EQ(lines, o.beacons);
  EXPECT_EQ(ids.size(), valid);
  EXPECT_EQ(JsonInt(manifest, "lines", "\"counts\""), static_cast<int64_t>(lines));
  EXPECT_EQ(JsonInt(manifest, "valid_unique", "\"counts\""), static_cast<int64_t>(valid));
  EXPECT_EQ(JsonInt(manifest, "duplicate_resends", "\"counts\""), static_cast<int64_t>(dups));
  EXPECT_EQ(JsonInt(manifest, "bad_rows", "\"counts\""), static_cast<int64_t>(bad));
  EXPECT_EQ(lines, valid + dups + bad);
  for (size_t k = 0; k < kBadKindCount; ++k) {
    const std::string name(BadKindName(static_cast<BadKind>(k)));
    EXPECT_EQ(JsonInt(manifest, "count", "\"" + name + "\":{"), static_cast<int64_t>(per_kind[k]))
        << name;
  }
  EXPECT_EQ(stats.lines, lines);
  EXPECT_EQ(stats.valid_unique, valid);
  EXPECT_NE(manifest.find("\"complete\":true"), std::string::npos);
  EXPECT_EQ(JsonInt(manifest, "seed", "\"options\""), 42);
  // Per-file line counts in the manifest.
  for (const std::string& f : DataFiles(o.out_dir)) {
    EXPECT_EQ(JsonInt(manifest, "lines", "\"" + f + "\""),
              static_cast<int64_t>(ReadLines(o.out_dir + "/" + f).size()));
  }
}

TEST_F(GeneratorTest, ZstdOutputDecompressesToTheSameLinesAsPlain) {
  GenerateOptions plain = SmallOptions();
  plain.out_dir = Dir("plain");
  GenerateOptions zst = plain;
  zst.out_dir = Dir("zst");
  zst.zstd = true;
  GenerateStats zstats;
  ASSERT_TRUE(WriteDataset(plain, nullptr).ok());
  ASSERT_TRUE(WriteDataset(zst, &zstats).ok());
  const auto pf = DataFiles(plain.out_dir);
  const auto zf = DataFiles(zst.out_dir);
  ASSERT_EQ(pf.size(), zf.size());
  for (size_t i = 0; i < pf.size(); ++i) {
    EXPECT_EQ(zf[i], pf[i] + ".zst");
    EXPECT_EQ(ReadLines(zst.out_dir + "/" + zf[i]), ReadLines(plain.out_dir + "/" + pf[i]));
  }
  EXPECT_LT(zstats.bytes_on_disk * 3, zstats.bytes);
}

TEST_F(GeneratorTest, RefusesANonEmptyDirectoryThatIsNotAPreviousOutput) {
  const std::string dir = Dir("foreign");
  fs::create_directories(dir);
  std::ofstream(dir + "/important.txt") << "keep me";
  GenerateOptions o = SmallOptions();
  o.out_dir = dir;
  const Status s = WriteDataset(o, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("important.txt"), std::string::npos) << s.message();
  EXPECT_EQ(ReadFile(dir + "/important.txt"), "keep me");
  EXPECT_FALSE(fs::exists(dir + "/_manifest.json"));

  // A dt= tree without our manifest is refused too.
  const std::string bare = Dir("bare");
  fs::create_directories(bare + "/dt=2026-11-01/hr=00");
  o.out_dir = bare;
  EXPECT_EQ(WriteDataset(o, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(fs::exists(bare + "/dt=2026-11-01/hr=00"));
}

TEST_F(GeneratorTest, ReplacesAPreviousOutputCompletely) {
  GenerateOptions big = SmallOptions();
  big.out_dir = Dir("out");
  big.hours = 6;
  ASSERT_TRUE(WriteDataset(big, nullptr).ok());
  GenerateOptions small = SmallOptions();
  small.out_dir = big.out_dir;
  ASSERT_TRUE(WriteDataset(small, nullptr).ok());
  GenerateOptions fresh = SmallOptions();
  fresh.out_dir = Dir("fresh");
  ASSERT_TRUE(WriteDataset(fresh, nullptr).ok());
  EXPECT_EQ(DataFiles(small.out_dir), DataFiles(fresh.out_dir));  // no stale hours left
}

TEST_F(GeneratorTest, ValidatesOptions) {
  EXPECT_TRUE(ValidateOptions(GenerateOptions{}).ok());
  GenerateOptions o;
  o.bad_fraction = 1.5;
  EXPECT_EQ(ValidateOptions(o).code(), StatusCode::kInvalidArgument);
  o = GenerateOptions{};
  o.duplicate_fraction = -0.1;
  EXPECT_FALSE(ValidateOptions(o).ok());
  o = GenerateOptions{};
  o.hours = -1;
  EXPECT_FALSE(ValidateOptions(o).ok());
  o = GenerateOptions{};
  o.lines_per_file = 0;
  EXPECT_FALSE(ValidateOptions(o).ok());
  o = GenerateOptions{};
  o.start_ms = 0;
  EXPECT_FALSE(ValidateOptions(o).ok());
  o = GenerateOptions{};
  o.out_dir = Dir("never");
  o.max_delay_ms = -5;
  EXPECT_EQ(WriteDataset(o, nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(o.out_dir));
}

TEST_F(GeneratorTest, ResolvesDefaults) {
  GenerateOptions o;
  o.beacons = 10000000;
  EXPECT_EQ(ResolveOptions(o).hours, 72);
  EXPECT_EQ(ResolveOptions(o).visitors, 400000u);
  o.beacons = 100;
  EXPECT_EQ(ResolveOptions(o).hours, 2);
  EXPECT_EQ(ResolveOptions(o).visitors, 10u);
  o.beacons = 200000;
  EXPECT_EQ(ResolveOptions(o).hours, 10);
}

TEST_F(GeneratorTest, ExperimentsAreStickyPerVisitorApartFromRareContamination) {
  GenerateOptions o = SmallOptions();
  o.bad_fraction = 0;
  std::map<std::string, std::set<std::string>> variants;  // visitor -> checkout variants
  uint64_t without = 0, search = 0;
  const auto lines = Collect(o);
  for (const Collected& c : lines) {
    const size_t v = c.text.find("\"visitor\":\"");
    const std::string visitor = c.text.substr(v + 11, 17);
    const size_t x = c.text.find("\"checkout_button\":\"");
    if (x == std::string::npos) {
      ++without;
      continue;
    }
    variants[visitor].insert(c.text.substr(x + 19, c.text.find('"', x + 19) - x - 19));
    search += c.text.find("\"search_ranking\"") != std::string::npos;
  }
  size_t multi = 0;
  for (const auto& [visitor, vs] : variants) multi += vs.size() > 1;
  EXPECT_LT(multi, variants.size() / 50);
  EXPECT_LT(without, lines.size() / 50);  // occasionally a beacon lacks `experiments`
  EXPECT_GT(without, 0u);
  EXPECT_GT(search, 0u);
  EXPECT_LT(search, lines.size() / 2);  // 30 % of visitors, not from the start
}

}  // namespace
}  // namespace duet::gen
