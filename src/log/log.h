// Log: an ordered source of raw beacon lines that a consumer reads in micro-batches and can
// resume exactly where a checkpoint says — the seam between the speed layer and its input.
// Implementations: a folder of NDJSON files used as a log (file_log.h); Kafka next.
//
// Contract for every implementation:
// - Poll returns lines in log order, each exactly once between two Seek/Open calls.
// - Positions() after a Poll is the position just past the last line returned; Seek(p) then
//   makes the next Poll return the line that followed, so "commit results with Positions() and
//   Seek to them on restart" gives exactly-once processing.
// - Not thread-safe; one consumer per Log.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace duet::log {

struct LogRecord {
  std::string_view bytes;    // the line without '\n'; valid until the next Poll
  std::string_view source;   // e.g. the file's path relative to the log root; valid likewise
  uint64_t line = 0;         // 1-based line number within the source
  uint64_t offset = 0;       // byte offset of the line within the (decompressed) source
  uint64_t full_length = 0;  // the whole line's length, also when truncated
  bool truncated = false;    // bytes holds only the first max_line bytes
  int64_t timestamp_ms = 0;  // arrival time when the log records one (Kafka: the message
                             // timestamp), else 0
};

class Log {
 public:
  virtual ~Log() = default;

  // Appends up to max_records lines after the current position to *out (which is cleared
  // first). An empty result means nothing is available now. When `final` is true, an
  // unterminated last line of a source is returned as a line (the input has ended); otherwise it
  // is left for a later Poll, because a writer may still be appending to it. IoError/Corruption
  // when a source cannot be read.
  virtual Status Poll(size_t max_records, bool final, std::vector<LogRecord>* out) = 0;

  // The position after the last line returned, as an opaque string (stable across versions of
  // one implementation).
  virtual std::string Positions() const = 0;

  // Continues from a position returned by Positions(). InvalidArgument if it cannot be decoded
  // or does not belong to this log.
  virtual Status Seek(std::string_view positions) = 0;

  // For a log whose sources are independent ordered streams read concurrently (Kafka
  // partitions): every source, and whether this reader has read all it holds now. Event time
  // then advances per source, and a consumer's watermark must not pass a source that is still
  // behind. Empty (the default) for a log read as one sequence (the file log).
  struct SourceState {
    std::string name;  // as in LogRecord::source
    bool caught_up = false;
  };
  virtual std::vector<SourceState> Sources() const { return {}; }
};

}  // namespace duet::log
