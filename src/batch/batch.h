// The batch layer: recomputes every view from the master dataset (a folder of NDJSON files, plain
// or .zst, read recursively) with the shared business logic in core/. Deterministic: the same
// files give the same Views, whatever the number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/bad_row.h"
#include "core/event.h"
#include "core/views.h"
#include "util/line_reader.h"
#include "util/result.h"

namespace duet::batch {

// Receives bad rows as they are found. Called from one thread at a time. A non-ok Status
// aborts the run with that Status.
class BadRowSink {
 public:
  virtual ~BadRowSink() = default;
  virtual Status Put(std::span<const core::BadRow> rows) = 0;
};

struct InputFile {
  std::string path;      // as opened
  std::string relative;  // relative to the input root: the bad rows' "source" and the read order
  uint64_t size = 0;     // bytes (or, for an input that is not a file, its lines), for progress
  // For an input that is not a file (e.g. the raw beacons of one Kafka partition in a MongoDB
  // collection): opens its lines. Lines must carry kLinePadding readable bytes after them.
  // Empty: LineReader::Open(path).
  std::function<Result<std::unique_ptr<LineReader>>()> open;
};

// Lists the input: `path` itself if it is a file, else every regular file below it whose name
// ends in ".ndjson" or ".ndjson.zst" and does not start with '.' or '_' (files being written, the
// generator's manifest), sorted bytewise by relative path — the "read order" of the contract.
// NotFound if `path` does not exist.
Result<std::vector<InputFile>> ListInputs(const std::string& path);

struct Progress {
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  uint64_t lines = 0;
};

struct BatchOptions {
  std::string input;
  // When not empty, read instead of listing `input`, in this order (the read order that decides
  // which of two beacons with the same id is the duplicate).
  std::vector<InputFile> inputs;
  int threads = 2;
  int64_t session_gap_ms = core::kDefaultSessionGapMs;
  // The speed layer's allowed lateness; sets the prefix view's boundary (see PrefixView).
  int64_t lateness_ms = 10 * 60 * 1000;
  // Called about every progress_interval_ms from a helper thread while files are read.
  std::function<void(const Progress&)> progress;
  int64_t progress_interval_ms = 2000;
  // When set, called once per visitor in the compute phase, from worker thread `thread` (in
  // [0, threads)), with the visitor's valid, non-duplicate events sorted by EventBefore, their
  // `context` filled in (core/features.h; 0 when this is not set), and the run's catalog, which
  // holds every tag set of the events. `duet train` builds its examples here.
  std::function<void(int thread, const core::Catalog& catalog, std::span<const core::Event> events)>
      on_visitor;
};

struct BatchStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
  double read_seconds = 0;  // read + parse + validate
  double dedup_seconds = 0;
  double compute_seconds = 0;      // sessionize + attribute + aggregate
  uint64_t working_set_bytes = 0;  // memory held for records between the phases
};

// The batch layer's side of the serving merge (docs/speed-layer.md): the exact aggregator state
// of every visitor's sessions that are complete at `boundary_ms` = greatest ts − lateness (no
// older beacon can still arrive, so a session that ended more than a gap before it is final).
struct PrefixView {
  int64_t boundary_ms = INT64_MIN;  // INT64_MIN: no valid beacon, empty prefix
  std::string state;                // Catalog::Save then Aggregator::Save
};

// Runs the batch layer over options.input. Bad rows go to `sink` (may be null to drop them, for
// benchmarks). Returns the finished Views, including input accounting. Fails on unreadable or
// damaged files (IoError, Corruption), or when the sink fails.
// When `prefix` is not null it is filled too.
Result<core::Views> RunBatch(const BatchOptions& options, BadRowSink* sink, BatchStats* stats,
                             PrefixView* prefix = nullptr);

struct ParseOnlyCounts {
  uint64_t lines = 0;
  uint64_t json_values = 0;  // lines that parsed as one JSON value
};

// Benchmark baseline: reads every input line and JSON-parses it (simdjson DOM), nothing else,
// with the same threads and file reading as RunBatch.
Result<ParseOnlyCounts> ParseOnly(const BatchOptions& options);

}  // namespace duet::batch
