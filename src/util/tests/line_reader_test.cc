#include "util/line_reader.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace duet {
namespace {

class LineReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("duet_lr_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content, bool zstd = false) {
    const std::string path = (dir_ / name).string();
    std::string bytes = content;
    if (zstd) {
      bytes.resize(ZSTD_compressBound(content.size()));
      bytes.resize(ZSTD_compress(bytes.data(), bytes.size(), content.data(), content.size(), 3));
    }
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::vector<Line> ReadAll(const std::string& path, size_t max_line,
                            std::vector<std::string>* texts) {
    auto r = LineReader::Open(path, max_line);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::vector<Line> out;
    Line l;
    while (true) {
      auto more = (*r)->Next(&l);
      EXPECT_TRUE(more.ok()) << more.status().ToString();
      if (!more.ok() || !*more) break;
      out.push_back(l);
      texts->emplace_back(l.bytes);
    }
    return out;
  }

  std::filesystem::path dir_;
};

TEST_F(LineReaderTest, SplitsLinesAndReportsOffsets) {
  std::vector<std::string> t;
  const auto lines = ReadAll(Write("a.ndjson", "ab\n\ncde\nf"), 100, &t);
  ASSERT_EQ(t, (std::vector<std::string>{"ab", "", "cde", "f"}));
  EXPECT_EQ(lines[0].offset, 0u);
  EXPECT_EQ(lines[1].offset, 3u);
  EXPECT_EQ(lines[2].offset, 4u);
  EXPECT_EQ(lines[3].offset, 8u);
  EXPECT_EQ(lines[3].number, 4u);
}

TEST_F(LineReaderTest, TrailingNewlineMakesNoExtraLine) {
  std::vector<std::string> t;
  ReadAll(Write("a.ndjson", "x\ny\n"), 100, &t);
  EXPECT_EQ(t.size(), 2u);
}

TEST_F(LineReaderTest, ZstdGivesTheSameLines) {
  std::string content;
  for (int i = 0; i < 100000; ++i) content += "{\"n\":" + std::to_string(i) + "}\n";
  std::vector<std::string> plain, packed;
  ReadAll(Write("a.ndjson", content), 1000, &plain);
  ReadAll(Write("a.ndjson.zst", content, true), 1000, &packed);
  EXPECT_EQ(plain.size(), 100000u);
  EXPECT_EQ(plain, packed);
}

TEST_F(LineReaderTest, LongLineIsTruncatedWithFullLengthAndNextLineSurvives) {
  std::string big;
  big.resize(10'000'000, 'x');  // larger than the internal 4 MiB buffer
  std::vector<std::string> t;
  const auto lines =
      ReadAll(Write("a.ndjson", "a\n" + big + "\nb\n" + std::string(50, 'y')), 16, &t);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(t[0], "a");
  EXPECT_TRUE(lines[1].truncated);
  EXPECT_EQ(lines[1].full_length, big.size());
  EXPECT_EQ(t[1], std::string(16, 'x'));
  EXPECT_EQ(lines[1].offset, 2u);
  EXPECT_EQ(t[2], "b");
  EXPECT_EQ(lines[2].offset, 2u + big.size() + 1);
  EXPECT_TRUE(lines[3].truncated);
  EXPECT_EQ(lines[3].full_length, 50u);
}

TEST_F(LineReaderTest, DamagedZstdIsCorruption) {
  std::string content(100000, 'z');
  content += "\n";
  std::string path = Write("a.ndjson.zst", content, true);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes.resize(bytes.size() / 2);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  auto r = LineReader::Open(path, 1000);
  ASSERT_TRUE(r.ok());
  Line l;
  Result<bool> more = true;
  for (int i = 0; i < 10 && more.ok() && *more; ++i) more = (*r)->Next(&l);
  ASSERT_FALSE(more.ok());
  EXPECT_EQ(more.status().code(), StatusCode::kCorruption);
}

TEST_F(LineReaderTest, MissingFileIsIoError) {
  auto r = LineReader::Open((dir_ / "nope.ndjson").string(), 10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
}

}  // namespace
}  // namespace duet
