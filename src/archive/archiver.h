// The archiver: copies the beacons topic into the immutable master dataset that the batch layer
// reads — Hive-style folders by arrival hour, zstd NDJSON files — exactly once across crashes.
//
// Files: OUT/dt=YYYY-MM-DD/hr=HH/<topic>-p<partition>-<first offset>-<last offset>.ndjson.zst,
// offsets zero-padded to 20 digits. The hour is the message's Kafka timestamp (its arrival at the
// collector), or the archiver's clock for a message without one. One line per message, in offset
// order; a '\n' inside a payload (which no Duet collector produces) is written as '\r', which
// every JSON reader treats the same way, so one message stays one line.
//
// Exactly once: a file is written under a hidden temporary name (".tmp-…", which the batch layer
// and the file log skip), fsync'ed and renamed into place; the file names are the only record of
// progress. On start the archiver removes leftover temporary files and continues each partition
// after the last offset a file holds. A crash at any point therefore writes every message to
// exactly one file.
//
// A partition's open file is written out when the hour of its messages changes, when it holds
// roll_lines lines, when roll_interval has passed since its first line, and on Flush.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "log/log.h"
#include "util/result.h"

namespace duet::archive {

struct ArchiveOptions {
  std::string out_dir;
  size_t roll_lines = 200'000;
  int64_t roll_interval_ms = 60'000;
  int zstd_level = 3;
  size_t max_batch_lines = 100'000;
};

struct ArchiveStats {
  uint64_t lines = 0;          // read from the log by this call
  uint64_t files_written = 0;  // renamed into place by this call
  uint64_t lines_written = 0;
};

// Where `duet archive` copies the topic to: the master-dataset folder (Archiver, below) or a
// MongoDB collection (mongoraw/raw_collection.h). The same contract for both: Recover finds
// where each partition continues and seeks the log there; Step copies what the log has; Flush
// makes everything read durable. Exactly once across crashes.
class ArchiveSink {
 public:
  virtual ~ArchiveSink() = default;
  virtual Status Recover() = 0;
  // Reads up to max_batch_lines messages (with `final`, up to the end of the log).
  virtual Result<ArchiveStats> Step(bool final) = 0;
  virtual Result<ArchiveStats> Flush() = 0;
};

class Archiver final : public ArchiveSink {
 public:
  // `log` (a KafkaLog over `topic`) must outlive the Archiver.
  Archiver(log::Log* log, std::string topic, ArchiveOptions options);

  // Removes leftover temporary files, finds where each partition continues from the names of
  // the files written so far and seeks the log there. IoError when the folder cannot be read.
  Status Recover() override;

  // Reads up to max_batch_lines messages and writes out every file that must roll.
  Result<ArchiveStats> Step(bool final) override;

  // Writes out every open file.
  Result<ArchiveStats> Flush() override;

 private:
  struct Open {
    int64_t hour = 0;
    int64_t first = -1;
    int64_t last = -1;
    uint64_t lines = 0;
    std::string data;
    std::chrono::steady_clock::time_point since;
  };
  Status Write(int partition, Open* open, ArchiveStats* stats);

  log::Log* const log_;
  const std::string topic_;
  const ArchiveOptions options_;
  std::map<int, Open> open_;
  std::vector<log::LogRecord> records_;
};

}  // namespace duet::archive
