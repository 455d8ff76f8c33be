#include "archive/archiver.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "log/kafka_log.h"
#include "util/line_reader.h"

namespace duet::archive {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z

// A stand-in for a KafkaLog over topic "t": records (partition, offset, timestamp, payload) in
// a fixed order; Seek takes KafkaPositions text and skips what is before it.
class ScriptedLog final : public log::Log {
 public:
  struct Msg {
    int partition;
    int64_t offset;
    int64_t ts;
    std::string payload;
  };
  explicit ScriptedLog(std::vector<Msg> msgs) : msgs_(std::move(msgs)) {
    for (int p = 0; p < 4; ++p) names_.push_back("t/" + std::to_string(p));
  }
  Status Poll(size_t max, bool, std::vector<log::LogRecord>* out) override {
    out->clear();
    while (pos_ < msgs_.size() && out->size() < max) {
      const Msg& m = msgs_[pos_++];
      if (m.offset < next_[m.partition]) continue;
      log::LogRecord& r = out->emplace_back();
      r.bytes = m.payload;
      r.source = names_[m.partition];
      r.offset = static_cast<uint64_t>(m.offset);
      r.line = r.offset + 1;
      r.full_length = m.payload.size();
      r.timestamp_ms = m.ts;
    }
    return Status::Ok();
  }
  std::string Positions() const override { return ""; }
  Status Seek(std::string_view positions) override {
    seeks_.emplace_back(positions);
    // Lines after the topic line: "<p>\t<next>".
    size_t at = positions.find('\n', positions.find('\n') + 1) + 1;
    while (at < positions.size()) {
      const size_t tab = positions.find('\t', at);
      const size_t nl = positions.find('\n', at);
      next_[std::stoi(std::string(positions.substr(at, tab - at)))] =
          std::stoll(std::string(positions.substr(tab + 1, nl - tab - 1)));
      at = nl + 1;
    }
    return Status::Ok();
  }
  std::vector<std::string> seeks_;

 private:
  std::vector<Msg> msgs_;
  std::vector<std::string> names_;
  size_t pos_ = 0;
  int64_t next_[4] = {0, 0, 0, 0};
};

class ArchiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("duet_archive_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Every line of every archive file, in file-name order per folder.
  std::vector<std::string> ReadAll(std::vector<std::string>* names = nullptr) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> lines;
    for (const fs::path& f : files) {
      if (names != nullptr) names->push_back(fs::relative(f, dir_).string());
      auto r = LineReader::Open(f.string(), 1 << 20);
      EXPECT_TRUE(r.ok());
      Line line;
      while (true) {
        auto more = (*r)->Next(&line);
        EXPECT_TRUE(more.ok());
        if (!more.ok() || !*more) break;
        lines.emplace_back(line.bytes);
      }
    }
    return lines;
  }

  fs::path dir_;
};

TEST_F(ArchiverTest, WritesHourFoldersNamedByPartitionAndOffsets) {
  ScriptedLog log({{0, 0, kT0 + 1000, "a"},
                   {1, 0, kT0 + 2000, "b"},
                   {0, 1, kT0 + kHour + 5, "c\nwith newline"},
                   {0, 2, kT0 + kHour + 6, ""}});
  ArchiveOptions o;
  o.out_dir = dir_.string();
  Archiver a(&log, "t", o);
  ASSERT_TRUE(a.Recover().ok());
  ASSERT_TRUE(a.Step(true).ok());
  ASSERT_TRUE(a.Flush().ok());
  std::vector<std::string> names;
  const std::vector<std::string> lines = ReadAll(&names);
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "dt=2026-11-01/hr=00/t-p0-00000000000000000000-00000000000000000000.ndjson.zst",
                "dt=2026-11-01/hr=00/t-p1-00000000000000000000-00000000000000000000.ndjson.zst",
                "dt=2026-11-01/hr=01/t-p0-00000000000000000001-00000000000000000002.ndjson.zst"}));
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b", "c\rwith newline", ""}));
}

// What a crash leaves: written files and a temporary one. A new archiver removes the temporary
// file and continues every partition after its last written offset, so nothing is written twice.
TEST_F(ArchiverTest, RecoverContinuesAfterTheLastWrittenOffsets) {
  std::vector<ScriptedLog::Msg> msgs;
  for (int64_t i = 0; i < 10; ++i) {
    msgs.push_back({static_cast<int>(i % 2), i / 2, kT0 + i, "m" + std::to_string(i)});
  }
  {
    ScriptedLog log(msgs);
    ArchiveOptions o;
    o.out_dir = dir_.string();
    o.roll_lines = 2;
    o.max_batch_lines = 5;
    Archiver a(&log, "t", o);
    ASSERT_TRUE(a.Recover().ok());
    ASSERT_TRUE(a.Step(false).ok());  // 5 read: p0 has 3 (one file of 2), p1 has 2 (one file)
    // The third line of p0 is only in memory: "crash" here.
  }
  fs::create_directories(dir_ / "dt=2026-11-01/hr=00");
  const fs::path ours =
      dir_ / "dt=2026-11-01/hr=00/.tmp-t-p0-00000000000000000002-00000000000000000003.ndjson.zst";
  const fs::path other_topic =  // another archiver's file in the same folder: not ours to remove
      dir_ /
      "dt=2026-11-01/hr=00/.tmp-t-prod-p0-00000000000000000000-00000000000000000009.ndjson.zst";
  { std::ofstream(ours) << "partial"; }
  { std::ofstream(other_topic) << "busy"; }
  ScriptedLog log(msgs);
  ArchiveOptions o;
  o.out_dir = dir_.string();
  Archiver a(&log, "t", o);
  ASSERT_TRUE(a.Recover().ok());
  EXPECT_FALSE(fs::exists(ours));
  EXPECT_TRUE(fs::exists(other_topic));
  fs::remove(other_topic);
  ASSERT_EQ(log.seeks_.size(), 1u);
  EXPECT_EQ(log.seeks_[0], log::KafkaPositions("t", {{0, 2}, {1, 2}}));
  ASSERT_TRUE(a.Step(true).ok());
  ASSERT_TRUE(a.Flush().ok());
  std::vector<std::string> lines = ReadAll();
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back("m" + std::to_string(i));
  std::sort(want.begin(), want.end());
  EXPECT_EQ(lines, want);  // each message exactly once, the temporary file gone
}

}  // namespace
}  // namespace duet::archive
