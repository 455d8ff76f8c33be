// The Log contract (LogContractTest, a TYPED_TEST_SUITE over backend fixtures: add Kafka by
// adding a fixture to Backends), then what is specific to the folder-as-a-log (FileLogTest).
#include "log/file_log.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "log/log.h"

namespace duet::log {
namespace {

namespace fs = std::filesystem;

std::string TestName() { return ::testing::UnitTest::GetInstance()->current_test_info()->name(); }

fs::path FreshDir(const std::string& tag) {
  static int counter = 0;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("duet_log_" + std::to_string(::getpid()) + "_" + tag +
                                        std::to_string(++counter) + "_" + TestName());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string Zstd(const std::string& content) {
  std::string out(ZSTD_compressBound(content.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), content.data(), content.size(), 3));
  return out;
}

void WriteFile(const fs::path& path, const std::string& bytes, bool append = false) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  f << bytes;
}

// What a contract test needs from a backend. Sources are named like relative file paths; a
// backend maps them onto what it has (files, topic partitions).
class LogFixture {
 public:
  virtual ~LogFixture() = default;
  // Appends raw bytes (lines, '\n'-terminated except maybe the last) to `source`.
  virtual void Append(const std::string& source, const std::string& bytes) = 0;
  // A new Log over everything appended so far and later, at its beginning.
  virtual Result<std::unique_ptr<Log>> Open(size_t max_line) = 0;
  // The order in which the log reads whole sources.
  virtual std::vector<std::string> SourceOrder(std::vector<std::string> sources) const = 0;
  // Whether a source can end in an unterminated line (files can, Kafka records cannot).
  virtual bool HasPartialLines() const = 0;
};

class FileLogFixture final : public LogFixture {
 public:
  FileLogFixture() : dir_(FreshDir("contract")) {}
  ~FileLogFixture() override { fs::remove_all(dir_); }
  void Append(const std::string& source, const std::string& bytes) override {
    WriteFile(dir_ / source, bytes, /*append=*/true);
  }
  Result<std::unique_ptr<Log>> Open(size_t max_line) override {
    return OpenFileLog(dir_.string(), max_line);
  }
  std::vector<std::string> SourceOrder(std::vector<std::string> sources) const override {
    std::sort(sources.begin(), sources.end());  // bytewise by relative path
    return sources;
  }
  bool HasPartialLines() const override { return true; }

 private:
  const fs::path dir_;
};

// A record copied out of a Poll, so that it outlives the next one.
struct Got {
  std::string bytes;
  std::string source;
  uint64_t line = 0;
  uint64_t offset = 0;
  uint64_t full_length = 0;
  bool truncated = false;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << g.source << ":" << g.line << "@" << g.offset << " len " << g.full_length
            << (g.truncated ? " truncated " : " ") << "'" << g.bytes.substr(0, 40) << "'";
}

std::vector<Got> Copy(const std::vector<LogRecord>& records) {
  std::vector<Got> out;
  for (const LogRecord& r : records) {
    out.push_back({std::string(r.bytes), std::string(r.source), r.line, r.offset, r.full_length,
                   r.truncated});
  }
  return out;
}

// Polls until an empty result, in chunks of `max`.
std::vector<Got> PollAll(Log* log, size_t max, bool final = false) {
  std::vector<Got> all;
  std::vector<LogRecord> records;
  while (true) {
    const Status s = log->Poll(max, final, &records);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok() || records.empty()) return all;
    EXPECT_LE(records.size(), max);
    const std::vector<Got> got = Copy(records);
    all.insert(all.end(), got.begin(), got.end());
  }
}

// The lines a log must return for one source's bytes, from line `first_line` on.
std::vector<Got> LinesOf(const std::string& source, const std::string& content, size_t max_line,
                         bool final) {
  std::vector<Got> out;
  uint64_t offset = 0;
  uint64_t line = 0;
  while (offset < content.size()) {
    const size_t nl = content.find('\n', offset);
    if (nl == std::string::npos && !final) break;
    const uint64_t end = nl == std::string::npos ? content.size() : nl;
    const uint64_t len = end - offset;
    out.push_back({content.substr(offset, std::min<uint64_t>(len, max_line)), source, ++line,
                   offset, len, len > max_line});
    offset = end + 1;
  }
  return out;
}

// A backend fixture plus a model of what was appended to it.
template <typename Fixture>
class Harness {
 public:
  static constexpr size_t kMaxLine = 64;

  void Append(const std::string& source, const std::string& bytes) {
    fixture_.Append(source, bytes);
    content_[source] += bytes;
  }
  std::unique_ptr<Log> Open(size_t max_line = kMaxLine) {
    auto log = fixture_.Open(max_line);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(*log) : nullptr;
  }
  std::unique_ptr<Log> Reopen(const std::string& positions, size_t max_line = kMaxLine) {
    std::unique_ptr<Log> log = Open(max_line);
    const Status s = log->Seek(positions);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return log;
  }
  // Everything appended, in log order.
  std::vector<Got> Expected(bool final, size_t max_line = kMaxLine) const {
    std::vector<std::string> sources;
    for (const auto& [source, content] : content_) sources.push_back(source);
    std::vector<Got> out;
    for (const std::string& source : fixture_.SourceOrder(sources)) {
      const std::vector<Got> lines = LinesOf(source, content_.at(source), max_line, final);
      out.insert(out.end(), lines.begin(), lines.end());
    }
    return out;
  }
  static std::map<std::string, std::vector<Got>> BySource(const std::vector<Got>& records) {
    std::map<std::string, std::vector<Got>> out;
    for (const Got& g : records) out[g.source].push_back(g);
    return out;
  }

  Fixture fixture_;
  std::map<std::string, std::string> content_;
};

template <typename Fixture>
class LogContractTest : public ::testing::Test, public Harness<Fixture> {};

using Backends = ::testing::Types<FileLogFixture>;
TYPED_TEST_SUITE(LogContractTest, Backends);

TYPED_TEST(LogContractTest, EmptyLogPollsNothing) {
  auto log = this->Open();
  std::vector<LogRecord> records(3);
  ASSERT_TRUE(log->Poll(100, false, &records).ok());
  EXPECT_TRUE(records.empty());
  ASSERT_TRUE(log->Poll(100, true, &records).ok());
  EXPECT_TRUE(records.empty());
  auto again = this->Reopen(log->Positions());
  ASSERT_TRUE(again->Poll(100, true, &records).ok());
  EXPECT_TRUE(records.empty());
}

TYPED_TEST(LogContractTest, ReadsEverySourceInOrderOnce) {
  this->Append("b/x.ndjson", "{\"b\":1}\n{\"b\":2}\n");
  this->Append("a.ndjson", "a1\na2\n\na4\n");
  this->Append("a/b/c.ndjson", "c1\n");
  this->Append("B.ndjson", "B1\n");
  this->Append("a-z.ndjson", "z1\nz2\n");
  auto log = this->Open();
  const std::vector<Got> got = PollAll(log.get(), 1000);
  EXPECT_EQ(got, this->Expected(false));
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(got[0].source, "B.ndjson");  // bytewise: upper case first
}

TYPED_TEST(LogContractTest, SmallPollsAreConsecutiveChunks) {
  for (int s = 0; s < 3; ++s) {
    std::string lines;
    for (int i = 0; i < 10; ++i) lines += "s" + std::to_string(s) + "-" + std::to_string(i) + "\n";
    this->Append("p/" + std::to_string(s) + ".ndjson", lines);
  }
  auto log = this->Open();
  std::vector<Got> all;
  std::vector<LogRecord> records;
  for (int poll = 0; poll < 10; ++poll) {
    ASSERT_TRUE(log->Poll(3, false, &records).ok());
    const size_t expected_size = std::min<size_t>(3, 30 - all.size());
    ASSERT_EQ(records.size(), expected_size) << "poll " << poll;
    const std::vector<Got> got = Copy(records);
    all.insert(all.end(), got.begin(), got.end());
  }
  ASSERT_TRUE(log->Poll(3, false, &records).ok());
  EXPECT_TRUE(records.empty());
  EXPECT_EQ(all, this->Expected(false));
}

TYPED_TEST(LogContractTest, PositionsResumeExactlyAfterTheLastLineOnANewLog) {
  this->Append("a.ndjson", "a1\na2\na3\n");
  this->Append("d/b.ndjson", "b1\nb2\nb3\nb4\n");
  const std::vector<Got> expected = this->Expected(false);
  for (size_t cut = 0; cut <= expected.size(); ++cut) {
    auto log = this->Open();
    std::vector<LogRecord> records;
    if (cut > 0) {
      ASSERT_TRUE(log->Poll(cut, false, &records).ok());
      ASSERT_EQ(records.size(), cut);
    }
    auto resumed = this->Reopen(log->Positions());
    const std::vector<Got> rest = PollAll(resumed.get(), 2);
    EXPECT_EQ(rest, std::vector<Got>(expected.begin() + cut, expected.end())) << "cut " << cut;
  }
}

TYPED_TEST(LogContractTest, SeekOnTheSameLogRewinds) {
  this->Append("a.ndjson", "a1\na2\na3\na4\n");
  auto log = this->Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(1, false, &records).ok());
  const std::string after_one = log->Positions();
  ASSERT_TRUE(log->Poll(2, false, &records).ok());
  ASSERT_TRUE(log->Seek(after_one).ok());
  const std::vector<Got> rest = PollAll(log.get(), 10);
  const std::vector<Got> expected = this->Expected(false);
  EXPECT_EQ(rest, std::vector<Got>(expected.begin() + 1, expected.end()));
}

TYPED_TEST(LogContractTest, FailedSeekKeepsThePosition) {
  this->Append("a.ndjson", "a1\na2\na3\n");
  auto log = this->Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(1, false, &records).ok());
  EXPECT_EQ(log->Seek("no such positions").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(log->Poll(10, false, &records).ok());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].bytes, "a2");
}

TYPED_TEST(LogContractTest, AppendedLinesAreReadLater) {
  this->Append("a.ndjson", "a1\n");
  this->Append("b.ndjson", "b1\n");
  auto log = this->Open();
  EXPECT_EQ(PollAll(log.get(), 100).size(), 2u);
  this->Append("a.ndjson", "a2\na3\n");
  const std::vector<Got> more = PollAll(log.get(), 100);
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0], (Got{"a2", "a.ndjson", 2, 3, 2, false}));
  EXPECT_EQ(more[1].bytes, "a3");
  auto resumed = this->Reopen(log->Positions());
  this->Append("b.ndjson", "b2\n");
  const std::vector<Got> last = PollAll(resumed.get(), 100);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0], (Got{"b2", "b.ndjson", 2, 3, 2, false}));
}

TYPED_TEST(LogContractTest, NewSourcesAreReadLater) {
  this->Append("m.ndjson", "m1\nm2\n");
  auto log = this->Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(1, false, &records).ok());
  this->Append("a.ndjson", "a1\n");  // sorts before the source being read
  this->Append("z/z.ndjson", "z1\n");
  const std::vector<Got> rest = PollAll(log.get(), 100);
  const auto by_source = this->BySource(rest);
  EXPECT_EQ(by_source.at("a.ndjson").size(), 1u);
  EXPECT_EQ(by_source.at("z/z.ndjson").size(), 1u);
  ASSERT_EQ(by_source.at("m.ndjson").size(), 1u);
  EXPECT_EQ(by_source.at("m.ndjson")[0].bytes, "m2");
  EXPECT_EQ(rest.size(), 3u);
}

TYPED_TEST(LogContractTest, UnterminatedLastLineWaitsForFinal) {
  if (!this->fixture_.HasPartialLines()) GTEST_SKIP() << "records are always whole";
  this->Append("a.ndjson", "a1\na2-part");
  auto log = this->Open();
  std::vector<Got> got = PollAll(log.get(), 100);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(PollAll(log.get(), 100).empty());
  this->Append("a.ndjson", "-rest\na3");  // the writer finishes the line
  got = PollAll(log.get(), 100);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (Got{"a2-part-rest", "a.ndjson", 2, 3, 12, false}));
  auto resumed = this->Reopen(log->Positions());
  got = PollAll(resumed.get(), 100, /*final=*/true);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (Got{"a3", "a.ndjson", 3, 16, 2, false}));
  EXPECT_TRUE(PollAll(resumed.get(), 100, true).empty());
  EXPECT_TRUE(PollAll(this->Reopen(resumed->Positions()).get(), 100, true).empty());
}

TYPED_TEST(LogContractTest, LongLinesAreTruncatedWithTheirFullLength) {
  const size_t max_line = 10;
  const std::vector<size_t> lengths = {0, 9, 10, 11, 100000, 3};
  for (const size_t n : lengths) this->Append("a.ndjson", std::string(n, 'x') + "\n");
  this->Append("b.ndjson", std::string(100000, 'y'));  // unterminated and long
  for (const size_t max : {size_t{1}, size_t{1000}}) {
    auto log = this->Open(max_line);
    const std::vector<Got> got = PollAll(log.get(), max, /*final=*/true);
    EXPECT_EQ(got, this->Expected(true, max_line)) << "max " << max;
    ASSERT_EQ(got.size(), lengths.size() + 1);
    EXPECT_TRUE(got[4].truncated);
    EXPECT_EQ(got[4].full_length, 100000u);
    EXPECT_EQ(got[4].bytes, std::string(10, 'x'));
  }
}

TYPED_TEST(LogContractTest, CrlfLinesKeepTheirCarriageReturn) {
  this->Append("a.ndjson", "{\"a\":1}\r\n\r\n{\"b\":2}\n");
  auto log = this->Open();
  const std::vector<Got> got = PollAll(log.get(), 100);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].bytes, "{\"a\":1}\r");
  EXPECT_EQ(got[1].bytes, "\r");
  EXPECT_EQ(got[2].offset, 11u);
}

TYPED_TEST(LogContractTest, SeekRejectsPositionsItCannotDecode) {
  this->Append("a.ndjson", "a1\n");
  auto log = this->Open();
  for (const std::string bad : {"", "garbage", "duet-file-log v1\nnot a position\n",
                                "duet-file-log v1\n3\t1\topen\ta.ndjson"}) {
    EXPECT_EQ(log->Seek(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

TYPED_TEST(LogContractTest, SeekRejectsPositionsOfAnotherLog) {
  this->Append("a.ndjson", "a1\n");
  TypeParam other;
  other.Append("other.ndjson", "o1\n");
  auto other_log = other.Open(64);
  ASSERT_TRUE(other_log.ok());
  EXPECT_EQ(PollAll(other_log->get(), 10).size(), 1u);
  auto log = this->Open();
  const Status s = log->Seek((*other_log)->Positions());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
}

// Writes lines of random lengths (some empty, long, CRLF) across sources, then reads them in
// random chunks, sometimes restarting from Positions() on a new log, with `appends` rounds of
// new lines and sources in between.
template <typename Fixture>
void RandomizedRun(Harness<Fixture>* test, uint32_t seed, int appends) {
  std::mt19937 rng(seed);
  const std::vector<std::string> sources = {"a.ndjson",
                                            "a/a.ndjson",
                                            "a/b/c.ndjson",
                                            "b.ndjson",
                                            "dt=1/hr=00/part-0.ndjson",
                                            "dt=1/hr=01/part-0.ndjson",
                                            "z.ndjson"};
  const auto append_lines = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const std::string& source = sources[rng() % sources.size()];
      const int kind = static_cast<int>(rng() % 20);
      const size_t len = kind == 0 ? 0 : kind == 1 ? 200 + rng() % 300 : rng() % 60;
      std::string line(len, static_cast<char>('a' + rng() % 26));
      if (len > 0 && kind == 2) line.back() = '\r';
      test->Append(source, line + "\n");
    }
  };
  append_lines(1000);
  auto log = test->Open();
  std::vector<Got> all;
  std::vector<LogRecord> records;
  for (int round = 0; round <= appends; ++round) {
    if (round > 0) append_lines(300);
    for (int polls = 0; polls < 10000; ++polls) {
      if (rng() % 5 == 0) log = test->Reopen(log->Positions());
      ASSERT_TRUE(log->Poll(1 + rng() % 40, false, &records).ok());
      if (records.empty()) break;
      const std::vector<Got> got = Copy(records);
      all.insert(all.end(), got.begin(), got.end());
    }
  }
  if (appends == 0) {
    EXPECT_EQ(all, test->Expected(false));  // one pass: the exact log order
  } else {
    EXPECT_EQ(test->BySource(all), test->BySource(test->Expected(false)));
  }
}

TYPED_TEST(LogContractTest, RandomPollsAndRestartsReadEveryLineOnceInOrder) {
  for (const uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Harness<TypeParam> fresh;
    RandomizedRun(&fresh, seed, /*appends=*/0);
  }
}

TYPED_TEST(LogContractTest, RandomPollsWithAppendsReadEveryLineOnce) {
  RandomizedRun(this, 42, /*appends=*/5);
}

// ---- What is specific to the folder-as-a-log ----

class FileLogTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = FreshDir("file"); }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Log> Open(size_t max_line = kDefaultMaxLine) {
    auto log = OpenFileLog(dir_.string(), max_line);
    EXPECT_TRUE(log.ok()) << log.status().ToString();
    return log.ok() ? std::move(*log) : nullptr;
  }
  void Write(const std::string& rel, const std::string& bytes) { WriteFile(dir_ / rel, bytes); }
  std::vector<std::string> Sources(const std::vector<Got>& got) {
    std::vector<std::string> out;
    for (const Got& g : got) {
      if (out.empty() || out.back() != g.source) out.push_back(g.source);
    }
    return out;
  }

  fs::path dir_;
};

// The contract's listing rule, restated independently of the implementation.
std::vector<std::string> ListByRule(const fs::path& root) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string name = it->path().filename().string();
    const bool input = name[0] != '.' && name[0] != '_' &&
                       (name.ends_with(".ndjson") || name.ends_with(".ndjson.zst"));
    if (it->is_regular_file() && input) {
      out.push_back(it->path().lexically_relative(root).string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(FileLogTest, ReadsOnlyInputFilesInTheListingOrder) {
  Write("b.ndjson", "1\n");
  Write("a.ndjson", "1\n");
  Write("a/z.ndjson", "1\n");
  Write("a.b.ndjson", "1\n");
  Write("a-b.ndjson", "1\n");
  Write("\xc3\xa9t\xc3\xa9.ndjson", "1\n");  // bytes above 0x7f sort last
  Write("d.ndjson/in.ndjson", "1\n");        // a folder with an input-like name is a folder
  Write("c.ndjson.zst", Zstd("1\n"));
  Write(".hidden.ndjson", "1\n");
  Write("_manifest.ndjson", "1\n");
  Write("notes.txt", "1\n");
  Write("x.ndjson.gz", "1\n");
  Write("x.json", "1\n");
  Write(".cache/in.ndjson", "1\n");  // only file names are filtered
  auto log = Open();
  const std::vector<std::string> sources = Sources(PollAll(log.get(), 100));
  EXPECT_EQ(sources, ListByRule(dir_));
  EXPECT_EQ(sources, (std::vector<std::string>{".cache/in.ndjson", "a-b.ndjson", "a.b.ndjson",
                                               "a.ndjson", "a/z.ndjson", "b.ndjson", "c.ndjson.zst",
                                               "d.ndjson/in.ndjson", "\xc3\xa9t\xc3\xa9.ndjson"}));
}

TEST_F(FileLogTest, DoesNotFollowSymlinkedFolders) {
  const fs::path outside = FreshDir("outside");
  WriteFile(outside / "o.ndjson", "o1\n");
  fs::create_directory_symlink(outside, dir_ / "linked");
  Write("a.ndjson", "a1\n");
  auto log = Open();
  const std::vector<Got> got = PollAll(log.get(), 100);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].source, "a.ndjson");
  EXPECT_EQ(Sources(got), ListByRule(dir_));
  // Positions cannot reach through the link either.
  EXPECT_EQ(log->Seek("duet-file-log v1\n3\t1\topen\tlinked/o.ndjson\n").code(),
            StatusCode::kInvalidArgument);
  fs::remove_all(outside);
}

TEST_F(FileLogTest, ArchivesAreReadWholeAndResumeMidArchive) {
  Write("a.ndjson.zst", Zstd("z1\nz2\nz3\nz4-unterminated"));
  Write("b.ndjson", "b1\n");
  auto log = Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(2, false, &records).ok());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(log->Positions(), "duet-file-log v1\n6\t2\topen\ta.ndjson.zst\n");
  auto resumed = Open();
  ASSERT_TRUE(resumed->Seek(log->Positions()).ok());
  const std::vector<Got> rest = PollAll(resumed.get(), 100);  // not final: archives are whole
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0], (Got{"z3", "a.ndjson.zst", 3, 6, 2, false}));
  EXPECT_EQ(rest[1], (Got{"z4-unterminated", "a.ndjson.zst", 4, 9, 15, false}));
  EXPECT_EQ(rest[2].source, "b.ndjson");
  EXPECT_EQ(resumed->Positions(),
            "duet-file-log v1\n24\t4\tdone\ta.ndjson.zst\n3\t1\topen\tb.ndjson\n");
  auto again = Open();
  ASSERT_TRUE(again->Seek(resumed->Positions()).ok());
  EXPECT_TRUE(PollAll(again.get(), 100, true).empty());
}

TEST_F(FileLogTest, ReadAheadIsDroppedWhenAnEarlierFileAppears) {
  std::string zlines;
  std::string plines;
  for (int i = 0; i < 50; ++i) {
    zlines += "z" + std::to_string(i) + "\n";
    plines += "p" + std::to_string(i) + "\n";
  }
  Write("m.ndjson.zst", Zstd(zlines));
  Write("n.ndjson", plines);
  auto log = Open();
  std::vector<Got> all;
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(3, false, &records).ok());
  for (const Got& g : Copy(records)) all.push_back(g);
  Write("a.ndjson", "a1\n");
  ASSERT_TRUE(log->Poll(60, false, &records).ok());  // a, the rest of m, part of n
  for (const Got& g : Copy(records)) all.push_back(g);
  Write("b.ndjson", "b1\n");
  for (const Got& g : PollAll(log.get(), 7)) all.push_back(g);
  std::map<std::string, std::vector<std::string>> by_source;
  for (const Got& g : all) by_source[g.source].push_back(g.bytes);
  EXPECT_EQ(by_source["m.ndjson.zst"].size(), 50u);
  EXPECT_EQ(by_source["n.ndjson"].size(), 50u);
  EXPECT_EQ(by_source["n.ndjson"].back(), "p49");
  EXPECT_EQ(by_source["m.ndjson.zst"].back(), "z49");
  EXPECT_EQ(all.size(), 102u);
}

TEST_F(FileLogTest, RandomPollsOverArchivesAndPlainFilesReadEveryLineOnce) {
  constexpr size_t kMaxLine = 32;
  std::mt19937 rng(7);
  std::map<std::string, std::string> content;
  const std::vector<std::string> names = {"a.ndjson.zst", "b/c.ndjson",   "b/d.ndjson.zst",
                                          "e.ndjson",     "f.ndjson.zst", "g/h/i.ndjson"};
  for (const std::string& name : names) {
    std::string& c = content[name];
    const int lines = static_cast<int>(rng() % 400);
    for (int i = 0; i < lines; ++i) {
      c += std::string(rng() % 8 == 0 ? 40 + rng() % 100 : rng() % 30, 'a' + rng() % 26) + "\n";
    }
    if (rng() % 2 == 0) c += "tail";  // withheld in plain files until final
    Write(name, name.ends_with(".zst") ? Zstd(c) : c);
  }
  std::vector<Got> expected;
  for (const auto& [name, c] : content) {
    for (const Got& g : LinesOf(name, c, kMaxLine, name.ends_with(".zst"))) expected.push_back(g);
  }
  auto log = Open(kMaxLine);
  std::vector<Got> all;
  std::vector<LogRecord> records;
  while (true) {
    if (rng() % 4 == 0) {
      auto resumed = Open(kMaxLine);
      ASSERT_TRUE(resumed->Seek(log->Positions()).ok());
      log = std::move(resumed);
    }
    ASSERT_TRUE(log->Poll(1 + rng() % 50, false, &records).ok());
    if (records.empty()) break;
    for (const Got& g : Copy(records)) all.push_back(g);
  }
  EXPECT_EQ(all, expected);
}

TEST_F(FileLogTest, DamagedArchiveIsCorruptionAndNothingMoves) {
  Write("a.ndjson", "a1\n");
  std::string z = Zstd(std::string(1000, 'x') + "\n");
  z[z.size() / 2] ^= 0x5a;
  z[z.size() / 2 + 1] ^= 0x5a;
  Write("b.ndjson.zst", z);
  auto log = Open();
  std::vector<LogRecord> records;
  const Status s = log->Poll(100, false, &records);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("b.ndjson.zst"), std::string::npos);
  EXPECT_TRUE(records.empty());
  EXPECT_EQ(log->Positions(), "duet-file-log v1\n");
}

TEST_F(FileLogTest, TruncatedArchiveIsCorruption) {
  const std::string z = Zstd(std::string(5000, 'x') + "\n");
  Write("b.ndjson.zst", z.substr(0, z.size() - 4));
  auto log = Open();
  std::vector<LogRecord> records;
  EXPECT_EQ(log->Poll(100, false, &records).code(), StatusCode::kCorruption);
}

TEST_F(FileLogTest, LineLongerThanTheReadBufferIsTruncated) {
  const std::string huge(20 << 20, 'h');
  Write("a.ndjson", "a1\n" + huge + "\na3\n");
  for (const size_t max : {size_t{1}, size_t{1000}}) {
    auto log = Open(1000);
    const std::vector<Got> got = PollAll(log.get(), max);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[1], (Got{huge.substr(0, 1000), "a.ndjson", 2, 3, huge.size(), true}));
    EXPECT_EQ(got[2], (Got{"a3", "a.ndjson", 3, 4 + huge.size(), 2, false}));
  }
}

TEST_F(FileLogTest, PositionsEscapeBackslashesAndNewlinesInPaths) {
  const std::string name = "we\\ird\nname.ndjson";
  Write(name, "w1\nw2\n");
  auto log = Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(1, false, &records).ok());
  EXPECT_EQ(log->Positions(), "duet-file-log v1\n3\t1\topen\twe\\\\ird\\nname.ndjson\n");
  auto resumed = Open();
  ASSERT_TRUE(resumed->Seek(log->Positions()).ok());
  const std::vector<Got> rest = PollAll(resumed.get(), 10);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].source, name);
}

TEST_F(FileLogTest, SeekNamingAMissingFileIsInvalidArgument) {
  Write("a.ndjson", "a1\na2\n");
  Write("sub/b.ndjson", "b1\n");
  auto log = Open();
  EXPECT_EQ(PollAll(log.get(), 100).size(), 3u);
  const std::string positions = log->Positions();
  fs::remove(dir_ / "sub/b.ndjson");
  const Status s = Open()->Seek(positions);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("sub/b.ndjson"), std::string::npos) << s.message();
  fs::remove_all(dir_ / "sub");
  EXPECT_EQ(Open()->Seek(positions).code(), StatusCode::kInvalidArgument);
}

TEST_F(FileLogTest, SeekNamingANonInputFileIsInvalidArgument) {
  Write("a.ndjson", "a1\n");
  Write("_m.ndjson", "m1\n");
  Write("a.txt", "t1\n");
  WriteFile(dir_.parent_path() / "up.ndjson", "u1\n");
  auto log = Open();
  for (const std::string path : {"_m.ndjson", "a.txt", "../up.ndjson", "./a.ndjson", "/a.ndjson",
                                 "a.ndjson/", "a.ndjson.zst"}) {
    const Status s = log->Seek("duet-file-log v1\n3\t1\topen\t" + path + "\n");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << path << ": " << s.ToString();
  }
  EXPECT_EQ(log->Seek("duet-file-log v1\n3\t1\tdone\ta.ndjson\n").code(),
            StatusCode::kInvalidArgument);  // only archives can be done
  EXPECT_EQ(log->Seek("duet-file-log v1\n3\t4\topen\ta.ndjson\n").code(),
            StatusCode::kInvalidArgument);  // more lines than bytes
  EXPECT_EQ(log->Seek("duet-file-log v1\n3\t1\topen\ta.ndjson\n3\t1\topen\ta.ndjson\n").code(),
            StatusCode::kInvalidArgument);
  fs::remove(dir_.parent_path() / "up.ndjson");
}

TEST_F(FileLogTest, ShrunkFileIsCorruption) {
  Write("a.ndjson", "a1\na2\na3\n");
  auto log = Open();
  EXPECT_EQ(PollAll(log.get(), 100).size(), 3u);
  Write("a.ndjson", "a1\n");
  std::vector<LogRecord> records;
  const Status polled = log->Poll(100, false, &records);
  EXPECT_EQ(polled.code(), StatusCode::kCorruption) << polled.ToString();
  const Status s = Open()->Seek(log->Positions());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("a.ndjson"), std::string::npos);
}

TEST_F(FileLogTest, RewrittenFileIsCorruption) {
  Write("a.ndjson", "a1\na2\n");
  auto log = Open();
  std::vector<LogRecord> records;
  ASSERT_TRUE(log->Poll(1, false, &records).ok());
  Write("a.ndjson", "abcdef\n");  // position 3 is now mid-line
  EXPECT_EQ(Open()->Seek(log->Positions()).code(), StatusCode::kCorruption);
}

TEST_F(FileLogTest, RemovedFileIsCorruption) {
  Write("a.ndjson", "a1\n");
  Write("b.ndjson", "b1\n");
  auto log = Open();
  EXPECT_EQ(PollAll(log.get(), 100).size(), 2u);
  fs::remove(dir_ / "a.ndjson");
  std::vector<LogRecord> records;
  const Status s = log->Poll(100, false, &records);
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("a.ndjson"), std::string::npos);
}

TEST_F(FileLogTest, FilesBeingWrittenAreIgnoredUntilRenamed) {
  Write("_tmp.ndjson", "t1\n");
  auto log = Open();
  EXPECT_TRUE(PollAll(log.get(), 100).empty());
  fs::rename(dir_ / "_tmp.ndjson", dir_ / "part-0.ndjson");
  const std::vector<Got> got = PollAll(log.get(), 100);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].source, "part-0.ndjson");
}

TEST_F(FileLogTest, ASingleFileIsALogWhateverItsName) {
  Write("input.txt", "i1\ni2\n");
  auto log = OpenFileLog((dir_ / "input.txt").string());
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  std::vector<LogRecord> records;
  ASSERT_TRUE((*log)->Poll(1, false, &records).ok());
  EXPECT_EQ((*log)->Positions(), "duet-file-log v1\n3\t1\topen\tinput.txt\n");
  auto resumed = OpenFileLog((dir_ / "input.txt").string());
  ASSERT_TRUE((*resumed)->Seek((*log)->Positions()).ok());
  const std::vector<Got> rest = PollAll(resumed->get(), 10);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], (Got{"i2", "input.txt", 2, 3, 2, false}));
}

TEST_F(FileLogTest, OpenFailsForAMissingRootOrBadMaxLine) {
  EXPECT_EQ(OpenFileLog((dir_ / "missing").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(OpenFileLog(dir_.string(), 0).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace duet::log
