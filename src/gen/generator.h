// Synthetic A/B clickstream traffic: a seeded, reproducible stream of beacon lines (contract v1,
// docs/beacon-contract.md) with known ground truth — valid beacons, duplicate re-sends and bad rows
// of every kind — produced in arrival order, and a writer that lays it out as a Hive-partitioned
// dataset. The traffic model is described in src/gen/README.md.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace duet::gen {

inline constexpr int64_t kDefaultStartMs = 1793491200000;  // 2026-11-01T00:00:00Z

struct GenerateOptions {
  // Output directory for WriteDataset (unused by TrafficGenerator).
  std::string out_dir;
  // Number of lines produced, exactly: valid beacons + duplicate re-sends + bad rows.
  uint64_t beacons = 100000;
  // Everything random derives from the seed: equal options give byte-identical output.
  uint64_t seed = 1;
  // Sessions start in [start_ms, start_ms + hours h); arrivals may run up to ~3 h past the end.
  int64_t start_ms = kDefaultStartMs;
  // Length of the period in hours; 0 = about beacons/20000, clamped to [2, 72].
  int hours = 0;
  // Size of the visitor population; 0 = beacons/25, at least 10.
  uint64_t visitors = 0;
  // WriteDataset: write .ndjson.zst (zstd level 3) instead of .ndjson.
  bool zstd = false;
  // Fraction of lines that are bad rows (including re-sends of bad lines).
  double bad_fraction = 0.01;
  // Fraction of lines that are re-sends of an earlier line, arriving 1-60 s after it.
  double duplicate_fraction = 0.02;
  // For every beacon that is not late, 0 <= arrival - event time <= max_delay_ms.
  int64_t max_delay_ms = 120000;
  // Fraction of beacons arriving 15 min - 3 h after their event time.
  double late_fraction = 0.001;
  // WriteDataset: a new part file is started within an hour after this many lines.
  uint64_t lines_per_file = 1000000;
};

// Resolves the 0 = "choose" defaults (hours, visitors); other fields are copied.
GenerateOptions ResolveOptions(const GenerateOptions& options);
// Ok, or InvalidArgument naming the first option out of range. out_dir is not checked.
Status ValidateOptions(const GenerateOptions& options);

enum class LineKind : uint8_t {
  kValid,            // the first line carrying its id: a beacon
  kDuplicateResend,  // a valid line whose id an earlier line already carried
  kBad,              // a line that breaks the contract (see BadKind)
};

// How a bad row is broken. Each kind is meant to be rejected with one contract reason
// (BadKindReason); several kinds may share a reason.
enum class BadKind : uint8_t {
  kNotJson,               // json.syntax: a query string, HTML error page or JS literal
  kTruncatedJson,         // json.syntax: a beacon cut short
  kEmptyLine,             // line.empty: "" or whitespace only
  kJsonArray,             // json.not_object: a beacon wrapped in [ ]
  kMissingId,             // id.missing
  kIdDuplicateKey,        // id.duplicate_key: "id" written twice
  kMissingVisitor,        // visitor.missing
  kVisitorNotString,      // visitor.not_string: a number
  kMissingTs,             // ts.missing
  kTsString,              // ts.not_integer: "ts":"1793491200123"
  kTsFraction,            // ts.not_integer: "ts":1793491200123.5
  kTsSeconds,             // ts.out_of_range: seconds instead of milliseconds
  kMissingType,           // type.missing
  kTypeEmpty,             // type.empty
  kInvalidUtf8,           // utf8.invalid: raw non-UTF-8 bytes in the page
  kPageTooLong,           // page.too_long: a page of 2049-6000 bytes
  kExperimentsNotObject,  // experiments.not_object: a string or an array
  kTooManyExperiments,    // experiments.too_many: 33 entries
  kVariantNotString,      // experiments.variant_not_string: a number
  kValueNegative,         // value.negative: a refund
  kValueBoolean,          // value.not_number: true
  kHugeLine,              // line.too_long: > 64 KiB (rare)
  kCount                  // not a kind: the number of kinds
};
inline constexpr size_t kBadKindCount = static_cast<size_t>(BadKind::kCount);
// Stable name of a kind, e.g. "ts_fraction".
std::string_view BadKindName(BadKind kind);
// The contract reason the kind is rejected with, e.g. "ts.not_integer".
std::string_view BadKindReason(BadKind kind);

struct GeneratedLine {
  // Simulated arrival time at the collector, ms since the epoch. Non-decreasing along the stream.
  int64_t arrival_ms = 0;
  // The event time the line was generated for (for bad rows it may not appear in the text).
  int64_t event_ms = 0;
  // The line without its '\n'; valid until the next call to Next.
  std::string_view text;
  LineKind kind = LineKind::kValid;
  BadKind bad_kind = BadKind::kCount;  // set only for kBad
  bool late = false;     // arrival - event time is in [15 min, 3 h] instead of [0, max_delay]
  bool altered = false;  // a duplicate re-send whose content differs from the first line
};

// Produces the lines of a dataset one at a time in arrival order. Memory is bounded by the
// sessions active at once plus the arrival window (max delay, 3 h of late beacons), not by the
// number of lines. Equal options give the same sequence. Not thread-safe.
class TrafficGenerator {
 public:
  // `options` must pass ValidateOptions (asserted); 0 defaults are resolved here.
  explicit TrafficGenerator(const GenerateOptions& options);
  ~TrafficGenerator();
  TrafficGenerator(const TrafficGenerator&) = delete;
  TrafficGenerator& operator=(const TrafficGenerator&) = delete;

  // Sets *out to the next line and returns true, or returns false once options.beacons lines
  // have been produced (and on every call after that).
  bool Next(GeneratedLine* out);

  // The options with defaults resolved.
  const GenerateOptions& options() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

struct GenerateStats {
  uint64_t lines = 0;
  uint64_t valid_unique = 0;               // kValid lines: distinct beacons
  uint64_t duplicate_resends = 0;          // kDuplicateResend lines
  uint64_t duplicate_resends_altered = 0;  // of which with content differing from the first
  uint64_t bad_rows = 0;
  std::array<uint64_t, kBadKindCount> bad_by_kind{};
  uint64_t late = 0;  // kValid lines that arrived late
  uint64_t files = 0;
  uint64_t bytes = 0;          // uncompressed bytes written, newlines included
  uint64_t bytes_on_disk = 0;  // equal to bytes unless zstd
  double seconds = 0;          // wall time of WriteDataset
};

// Writes the dataset of `options` under options.out_dir:
//   dt=YYYY-MM-DD/hr=HH/part-NNNNN.ndjson[.zst]   partitioned by UTC arrival hour
//   _manifest.json                                 options, experiment design, ground truth
// Each file is written under a hidden temporary name and renamed when complete. out_dir is
// created if missing; if it is not empty it must hold a previous output of this generator (its
// part files and manifest are then replaced), otherwise InvalidArgument and nothing is touched.
// Logs progress on stderr about every 1M lines. On success fills *stats (may be null). Returns
// InvalidArgument for bad options or out_dir, IoError if a write fails.
Status WriteDataset(const GenerateOptions& options, GenerateStats* stats);

// "dt=YYYY-MM-DD/hr=HH" of an hour since the epoch (UTC): the master dataset's partition.
std::string HivePartition(int64_t hour);

// LiveWriter: appends generated lines to a master dataset as they "arrive", for the live demo.
// Lines are buffered and written by Flush as a new complete file per arrival hour,
// dt=…/hr=…/live-NNNNNNNN.ndjson (hidden name, then renamed), so readers — the batch layer and
// the speed layer's file log — only ever see whole files, in arrival order. Not thread-safe.
class LiveWriter {
 public:
  explicit LiveWriter(std::string out_dir) : out_dir_(std::move(out_dir)) {}
  void Append(const GeneratedLine& line);
  // Writes what was appended since the last Flush. IoError if a file cannot be written.
  Status Flush();
  uint64_t lines() const { return lines_; }
  uint64_t files() const { return files_; }

 private:
  const std::string out_dir_;
  std::vector<std::pair<int64_t, std::string>> pending_;  // (arrival hour, lines) to write
  std::string buffer_;
  int64_t buffer_hour_ = -1;
  uint64_t seq_ = 0;
  uint64_t lines_ = 0;
  uint64_t files_ = 0;
  Status WriteFile(int64_t hour, const std::string& bytes);
};

}  // namespace duet::gen
