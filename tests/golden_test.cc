// Golden cases: every tests/golden/<name>.ndjson is run
// through the batch layer (2 threads, bad rows dropped) and rendered with
// report::ReportJson(views, {.full = true}); <name>.expected.json holds
//   {"description": "<the edge this case covers>", "expected": <a subset of that document>}.
// Only keys present in "expected" are checked: objects recursively, arrays element by element in
// order and with the same length, numbers exactly (3 == 3.0), strings/bools/null exactly.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "batch/batch.h"
#include "report/report.h"

namespace duet {
namespace {

namespace fs = std::filesystem;
namespace dom = simdjson::dom;

constexpr std::string_view kInputSuffix = ".ndjson";
constexpr std::string_view kExpectedSuffix = ".expected.json";

fs::path GoldenDir() {
  const char* env = std::getenv("DUET_SOURCE_DIR");
  const fs::path root =
      env != nullptr && *env != '\0' ? fs::path(env) : fs::path(DUET_GOLDEN_FALLBACK_SOURCE_DIR);
  return root / "tests" / "golden";
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Case names: the .ndjson file stems, sorted.
std::vector<std::string> DiscoverCases() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(GoldenDir(), ec)) {
    const std::string file = entry.path().filename().string();
    if (entry.is_regular_file() && EndsWith(file, kInputSuffix)) {
      names.push_back(file.substr(0, file.size() - kInputSuffix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Render(dom::element e) { return simdjson::minify(e); }

bool IsNumber(dom::element e) {
  const auto t = e.type();
  return t == dom::element_type::INT64 || t == dom::element_type::UINT64 ||
         t == dom::element_type::DOUBLE;
}

bool SameNumber(dom::element a, dom::element b) {
  const auto ta = a.type();
  const auto tb = b.type();
  if (ta != dom::element_type::DOUBLE && tb != dom::element_type::DOUBLE) {
    // Both integers: compare without going through double.
    const bool neg_a = ta == dom::element_type::INT64 && int64_t(a) < 0;
    const bool neg_b = tb == dom::element_type::INT64 && int64_t(b) < 0;
    if (neg_a || neg_b) return neg_a && neg_b && int64_t(a) == int64_t(b);
    const uint64_t ua = ta == dom::element_type::INT64 ? uint64_t(int64_t(a)) : uint64_t(a);
    const uint64_t ub = tb == dom::element_type::INT64 ? uint64_t(int64_t(b)) : uint64_t(b);
    return ua == ub;
  }
  return double(a) == double(b);
}

// Appends one line per difference between `want` (a subset) and `got`.
void Compare(dom::element want, dom::element got, const std::string& path,
             std::vector<std::string>* diffs) {
  auto differ = [&](const std::string& why) {
    diffs->push_back(path + ": " + why + " (want " + Render(want) + ", got " + Render(got) + ")");
  };
  if (IsNumber(want)) {
    if (!IsNumber(got) || !SameNumber(want, got)) differ("number differs");
    return;
  }
  if (want.type() != got.type()) return differ("type differs");
  switch (want.type()) {
    case dom::element_type::OBJECT: {
      const dom::object g = got;
      for (const auto kv : dom::object(want)) {
        dom::element child;
        const std::string child_path = path + "." + std::string(kv.key);
        if (g.at_key(kv.key).get(child) != simdjson::SUCCESS) {
          diffs->push_back(child_path + ": missing (want " + Render(kv.value) + ")");
          continue;
        }
        Compare(kv.value, child, child_path, diffs);
      }
      return;
    }
    case dom::element_type::ARRAY: {
      const dom::array w = want;
      const dom::array g = got;
      if (w.size() != g.size()) {
        diffs->push_back(path + ": array of " + std::to_string(g.size()) + " elements, want " +
                         std::to_string(w.size()) + " (got " + Render(got) + ")");
        return;
      }
      size_t i = 0;
      auto gi = g.begin();
      for (const dom::element we : w) {
        Compare(we, *gi, path + "[" + std::to_string(i) + "]", diffs);
        ++gi;
        ++i;
      }
      return;
    }
    case dom::element_type::STRING:
      if (std::string_view(want) != std::string_view(got)) differ("string differs");
      return;
    case dom::element_type::BOOL:
      if (bool(want) != bool(got)) differ("bool differs");
      return;
    default:  // null
      return;
  }
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, ReportMatchesExpected) {
  const fs::path input = GoldenDir() / (GetParam() + std::string(kInputSuffix));
  const fs::path expected_path = GoldenDir() / (GetParam() + std::string(kExpectedSuffix));
  ASSERT_TRUE(fs::exists(expected_path))
      << "golden case " << GetParam() << " has no expected file " << expected_path;

  dom::parser expected_parser;
  dom::element expected_doc;
  const std::string expected_text = ReadFile(expected_path);
  ASSERT_EQ(expected_parser.parse(expected_text).get(expected_doc), simdjson::SUCCESS)
      << expected_path << " is not valid JSON";
  std::string_view description;
  ASSERT_EQ(expected_doc["description"].get(description), simdjson::SUCCESS)
      << expected_path << " lacks a \"description\" string";
  dom::element expected;
  ASSERT_EQ(expected_doc["expected"].get(expected), simdjson::SUCCESS)
      << expected_path << " lacks \"expected\"";
  SCOPED_TRACE("golden case " + GetParam() + ": " + std::string(description));

  batch::BatchOptions options;
  options.input = input.string();
  options.threads = 2;
  auto views = batch::RunBatch(options, nullptr, nullptr);
  ASSERT_TRUE(views.ok()) << views.status().ToString();
  report::ReportOptions report_options;
  report_options.full = true;
  const std::string report = report::ReportJson(*views, report_options);

  dom::parser actual_parser;
  dom::element actual;
  ASSERT_EQ(actual_parser.parse(report).get(actual), simdjson::SUCCESS) << report;

  std::vector<std::string> diffs;
  Compare(expected, actual, "$", &diffs);
  std::string all;
  for (const auto& d : diffs) all += "  " + d + "\n";
  EXPECT_TRUE(diffs.empty()) << diffs.size() << " difference(s):\n" << all << "report: " << report;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, ::testing::ValuesIn(DiscoverCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

// A golden directory that cannot be found, or an expected file without its input, must not
// pass silently.
TEST(GoldenDiscoveryTest, EveryExpectedFileHasAnInputAndCasesExist) {
  EXPECT_GE(DiscoverCases().size(), 12u) << "golden cases not found in " << GoldenDir();
  for (const auto& entry : fs::directory_iterator(GoldenDir())) {
    const std::string file = entry.path().filename().string();
    if (!EndsWith(file, kExpectedSuffix)) continue;
    const std::string stem = file.substr(0, file.size() - kExpectedSuffix.size());
    EXPECT_TRUE(fs::exists(GoldenDir() / (stem + std::string(kInputSuffix))))
        << file << " has no " << stem << kInputSuffix;
  }
}

}  // namespace
}  // namespace duet
