#include "batch/batch.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <vector>

namespace duet::batch {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kT0 = 1'793'491'200'000;

class CollectingSink final : public BadRowSink {
 public:
  Status Put(std::span<const core::BadRow> rows) override {
    rows_.insert(rows_.end(), rows.begin(), rows.end());
    return fail_ ? Status::Unavailable("store down") : Status::Ok();
  }
  std::vector<core::BadRow> rows_;
  bool fail_ = false;
};

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("duet_batch_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& rel, const std::string& content, bool zstd = false) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::string bytes = content;
    if (zstd) {
      bytes.resize(ZSTD_compressBound(content.size()));
      bytes.resize(ZSTD_compress(bytes.data(), bytes.size(), content.data(), content.size(), 1));
    }
    std::ofstream(p, std::ios::binary) << bytes;
  }

  // A noisy random workload: valid beacons, re-sends, several kinds of bad rows.
  void WriteRandom(int files, int lines_per_file, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::string> sent;
    for (int f = 0; f < files; ++f) {
      std::string content;
      for (int i = 0; i < lines_per_file; ++i) {
        const int dice = static_cast<int>(rng() % 100);
        if (dice < 3 && !sent.empty()) {
          content += sent[rng() % sent.size()] + "\n";
          continue;
        }
        if (dice < 6) {
          static const char* kBad[] = {
              "not json", "", "[1]", "{\"id\":\"x\"}",
              "{\"id\":\"b\",\"visitor\":\"v\",\"ts\":\"1\",\"type\":\"t\"}"};
          content += std::string(kBad[rng() % 5]) + "\n";
          continue;
        }
        const std::string v = "v" + std::to_string(rng() % 300);
        const std::string variant = (rng() % 2) ? "control" : "treatment";
        const char* type = dice < 60 ? "pageview" : dice < 70 ? "conversion" : "click";
        std::string line =
            "{\"id\":\"" + std::to_string(f) + "-" + std::to_string(i) + "\",\"visitor\":\"" + v +
            "\",\"ts\":" + std::to_string(kT0 + static_cast<int64_t>(rng() % (30LL * 3600'000))) +
            ",\"type\":\"" + type + "\",\"experiments\":{\"exp\":\"" + variant + "\"}";
        if (dice >= 60 && dice < 70) line += ",\"value\":" + std::to_string(rng() % 10000) + ".25";
        line += "}";
        sent.push_back(line);
        content += line + "\n";
      }
      Write("dt=2026-11-01/hr=" + std::to_string(10 + f) + "/part-0.ndjson" + (f % 2 ? ".zst" : ""),
            content, f % 2 == 1);
    }
  }

  BatchOptions Options(int threads) {
    BatchOptions o;
    o.input = dir_.string();
    o.threads = threads;
    return o;
  }

  fs::path dir_;
};

TEST_F(BatchTest, ResultDoesNotDependOnThreadCount) {
  WriteRandom(6, 3000, 1);
  auto one = RunBatch(Options(1), nullptr, nullptr);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  for (int threads : {2, 3, 5}) {
    auto many = RunBatch(Options(threads), nullptr, nullptr);
    ASSERT_TRUE(many.ok());
    EXPECT_EQ(*many, *one) << threads << " threads";
  }
  EXPECT_GT(one->input.duplicates, 0);
  EXPECT_GT(one->input.bad_rows, 0);
}

TEST_F(BatchTest, EveryLineIsAccountedForAndEveryBadRowReachesTheSink) {
  WriteRandom(4, 2000, 2);
  CollectingSink sink;
  auto v = RunBatch(Options(2), &sink, nullptr);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->input.lines, 8000);
  EXPECT_TRUE(v->input.Balanced());
  EXPECT_EQ(static_cast<int64_t>(sink.rows_.size()), v->input.bad_rows);
  int64_t by_reason = 0;
  for (const auto& [r, n] : v->input.bad_rows_by_reason) by_reason += n;
  EXPECT_EQ(by_reason, v->input.bad_rows);
  for (const auto& r : sink.rows_) {
    EXPECT_EQ(r.source.rfind("dt=2026-11-01/hr=1", 0), 0u) << r.source;
    EXPECT_GE(r.line, 1u);
  }
}

TEST_F(BatchTest, FirstReadDuplicateWinsAcrossFilesInPathOrder) {
  // Same id: the copy in a/ is read first (bytewise path order), so its visitor counts.
  Write("b/2.ndjson", "{\"id\":\"same\",\"visitor\":\"late\",\"ts\":" + std::to_string(kT0) +
                          ",\"type\":\"pageview\",\"experiments\":{\"e\":\"B\"}}\n");
  Write("a/1.ndjson", "{\"id\":\"same\",\"visitor\":\"early\",\"ts\":" + std::to_string(kT0 + 5) +
                          ",\"type\":\"pageview\",\"experiments\":{\"e\":\"A\"}}\n");
  auto v = RunBatch(Options(2), nullptr, nullptr);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->input.duplicates, 1);
  EXPECT_EQ(v->input.valid_beacons, 1);
  ASSERT_EQ(v->totals.size(), 2u);  // site + e/A
  EXPECT_EQ(v->totals[1].variant, "A");
  EXPECT_EQ(v->min_ts, kT0 + 5);
}

TEST_F(BatchTest, HiddenAndUnderscoreFilesAndOtherExtensionsAreNotInput) {
  const std::string line =
      "{\"id\":\"1\",\"visitor\":\"v\",\"ts\":" + std::to_string(kT0) + ",\"type\":\"x\"}\n";
  Write("x/part-0.ndjson", line);
  Write("x/.part-1.ndjson", line);
  Write("_manifest.ndjson", line);
  Write("x/notes.txt", "hello\n");
  auto files = ListInputs(dir_.string());
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].relative, "x/part-0.ndjson");
}

TEST_F(BatchTest, SingleFileInputUsesItsNameAsSource) {
  Write("one.ndjson", "nope\n");
  CollectingSink sink;
  BatchOptions o = Options(2);
  o.input = (dir_ / "one.ndjson").string();
  auto v = RunBatch(o, &sink, nullptr);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(sink.rows_.size(), 1u);
  EXPECT_EQ(sink.rows_[0].source, "one.ndjson");
  EXPECT_EQ(sink.rows_[0].payload, "nope");
}

TEST_F(BatchTest, MissingInputIsNotFound) {
  BatchOptions o = Options(2);
  o.input = (dir_ / "nope").string();
  auto v = RunBatch(o, nullptr, nullptr);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
}

TEST_F(BatchTest, SinkFailureAbortsTheRun) {
  WriteRandom(2, 100, 3);
  CollectingSink sink;
  sink.fail_ = true;
  auto v = RunBatch(Options(2), &sink, nullptr);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kUnavailable);
}

TEST_F(BatchTest, DamagedZstdFileFailsTheRunWithItsName) {
  Write("a.ndjson.zst", "this is not zstd at all");
  auto v = RunBatch(Options(1), nullptr, nullptr);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kCorruption);
  EXPECT_NE(v.status().message().find("a.ndjson.zst"), std::string::npos);
}

}  // namespace
}  // namespace duet::batch
