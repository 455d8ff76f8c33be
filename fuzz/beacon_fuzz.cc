// libFuzzer target: beacon parsing and validation, and the input accounting of both layers.
//
// The input is split into lines ('\n'; a last unterminated line counts, as at the end of a
// master-dataset file). An oracle classifies every line with beacon::Parser alone — bad row
// (with its reason), valid, or duplicate (a valid line whose id an earlier valid line already
// had) — and then the same lines go through the two runtimes that feed the shared aggregator:
// the speed layer (speed::SpeedLayer over an in-memory log and an in-memory SQLite store, in
// micro-batches of a size taken from the input, with a restart from the checkpoint after every
// other micro-batch) and the batch layer (batch::RunBatch over an in-memory reader). Asserted
// (abort, so libFuzzer reports a crash):
// - lines == valid + duplicates + bad rows, in both layers, and equal to the oracle's counts;
// - every bad row has a known machine-readable reason, the oracle's reason, the right line
//   number, and its original payload byte for byte;
// - a line repeated later is a duplicate when its first copy was valid (the oracle's duplicate
//   count includes every such repeat, and both layers must agree with it).
// The lateness and TTL are wider than the contract's whole ts range, so nothing is late and no
// id is forgotten: the accounting is exact.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "batch/batch.h"
#include "beacon/beacon.h"
#include "beacon/parser.h"
#include "core/bad_row.h"
#include "core/views.h"
#include "fuzz/check.h"
#include "log/log.h"
#include "speed/speed_layer.h"
#include "store/sqlite_store.h"
#include "util/line_reader.h"
#include "util/log.h"

namespace {

using duet::beacon::BadReason;

// Wider than the contract's ts range (2000..2100): nothing is late, no id expires.
constexpr int64_t kForeverMs = 300LL * 366 * 24 * 3600 * 1000;
constexpr size_t kMaxMicroBatches = 4096;

using duet::fuzz::Check;

struct InputLine {
  std::string bytes;  // without '\n'; the first kMaxLineBytes only when truncated
  uint64_t offset = 0;
  uint64_t full_length = 0;
  bool truncated = false;
};

// The lines of the input as LineReader and the file log hand them out.
std::vector<InputLine> SplitLines(std::string_view in) {
  std::vector<InputLine> out;
  size_t start = 0;
  while (start < in.size()) {
    size_t end = in.find('\n', start);
    if (end == std::string_view::npos) end = in.size();
    InputLine l;
    l.offset = start;
    l.full_length = end - start;
    l.truncated = l.full_length > duet::beacon::kMaxLineBytes;
    l.bytes =
        std::string(in.substr(start, l.truncated ? duet::beacon::kMaxLineBytes : end - start));
    out.push_back(std::move(l));
    start = end + 1;
  }
  return out;
}

struct Expected {
  uint64_t valid = 0;
  uint64_t duplicates = 0;
  std::vector<int> reason;  // per line: the BadReason, or -1 for a valid line or a duplicate
};

Expected Classify(const std::vector<InputLine>& lines) {
  Expected e;
  duet::beacon::Parser parser;
  std::unordered_set<std::string> ids;
  std::unordered_set<std::string> valid_lines;  // the bytes of every valid line so far
  for (const InputLine& l : lines) {
    duet::beacon::Beacon b;
    BadReason reason = BadReason::kCount;
    if (l.truncated) {
      e.reason.push_back(static_cast<int>(BadReason::kLineTooLong));
      continue;
    }
    const bool repeat_of_valid = valid_lines.count(l.bytes) != 0;
    if (!parser.Parse(l.bytes, /*padded=*/false, &b, &reason)) {
      Check(!repeat_of_valid, "a line repeating a valid line is valid again");
      Check(static_cast<size_t>(reason) < duet::beacon::kReasonCount, "parser reason is known",
            static_cast<uint64_t>(reason), duet::beacon::kReasonCount);
      e.reason.push_back(static_cast<int>(reason));
      continue;
    }
    e.reason.push_back(-1);
    valid_lines.insert(l.bytes);
    if (ids.insert(std::string(b.id)).second) {
      Check(!repeat_of_valid, "a line repeating a valid line is a duplicate");
      ++e.valid;
    } else {
      ++e.duplicates;
    }
  }
  return e;
}

// Every bad row: a known reason, the oracle's reason, the original bytes.
void CheckBadRow(const duet::core::BadRow& r, const std::vector<InputLine>& lines,
                 const Expected& e) {
  const auto reason = static_cast<size_t>(r.reason);
  Check(reason < duet::beacon::kReasonCount, "bad row reason is a known reason", reason,
        duet::beacon::kReasonCount);
  duet::beacon::BadReason parsed;
  Check(duet::beacon::ReasonFromName(duet::beacon::ReasonName(r.reason), &parsed) &&
            parsed == r.reason,
        "bad row reason has a stable name", reason, 0);
  Check(r.line >= 1 && r.line <= lines.size(), "bad row line number in range", r.line,
        lines.size());
  const InputLine& l = lines[r.line - 1];
  Check(e.reason[r.line - 1] == static_cast<int>(r.reason), "bad row reason equals the parser's",
        reason, static_cast<uint64_t>(e.reason[r.line - 1]));
  Check(r.payload == l.bytes, "bad row payload is the original line byte for byte",
        r.payload.size(), l.bytes.size());
  Check(r.offset == l.offset, "bad row offset", r.offset, l.offset);
  Check(r.length == l.full_length, "bad row length", r.length, l.full_length);
  Check(r.truncated == l.truncated, "bad row truncated flag", r.truncated, l.truncated);
}

void CheckTotals(const duet::core::InputTotals& in, size_t lines, const Expected& e, uint64_t bad) {
  Check(in.Balanced(), "lines == valid + duplicates + bad rows (+ late)",
        static_cast<uint64_t>(in.lines),
        static_cast<uint64_t>(in.valid_beacons + in.duplicates + in.bad_rows + in.late_beacons));
  Check(in.late_beacons == 0, "nothing is late", static_cast<uint64_t>(in.late_beacons), 0);
  Check(static_cast<uint64_t>(in.lines) == lines, "lines counted", in.lines, lines);
  Check(static_cast<uint64_t>(in.valid_beacons) == e.valid, "valid beacons", in.valid_beacons,
        e.valid);
  Check(static_cast<uint64_t>(in.duplicates) == e.duplicates, "duplicates", in.duplicates,
        e.duplicates);
  Check(static_cast<uint64_t>(in.bad_rows) == bad, "bad rows", in.bad_rows, bad);
  int64_t by_reason = 0;
  for (const auto& [name, n] : in.bad_rows_by_reason) {
    BadReason r;
    Check(duet::beacon::ReasonFromName(name, &r), "bad_rows_by_reason names a known reason");
    by_reason += n;
  }
  Check(by_reason == in.bad_rows, "bad rows by reason add up", by_reason, in.bad_rows);
}

// The input as a Log: one source, positions are line indexes. Lines carry kLinePadding bytes.
class MemoryLog final : public duet::log::Log {
 public:
  explicit MemoryLog(const std::vector<InputLine>* lines) : lines_(lines) {}

  duet::Status Poll(size_t max_records, bool final,
                    std::vector<duet::log::LogRecord>* out) override {
    out->clear();
    padded_.clear();
    const size_t end = std::min(lines_->size(), next_ + max_records);
    padded_.reserve(end - next_);
    for (; next_ < end; ++next_) {
      const InputLine& l = (*lines_)[next_];
      padded_.push_back(l.bytes + std::string(duet::kLinePadding, ' '));
      duet::log::LogRecord r;
      r.bytes = std::string_view(padded_.back()).substr(0, l.bytes.size());
      r.source = "fuzz.ndjson";
      r.line = next_ + 1;
      r.offset = l.offset;
      r.full_length = l.full_length;
      r.truncated = l.truncated;
      out->push_back(r);
    }
    return duet::Status::Ok();
  }

  std::string Positions() const override { return std::to_string(next_); }

  duet::Status Seek(std::string_view positions) override {
    const size_t p = std::stoul(std::string(positions));
    if (p > lines_->size()) return duet::Status::InvalidArgument("position past the end");
    next_ = p;
    return duet::Status::Ok();
  }

 private:
  const std::vector<InputLine>* const lines_;
  size_t next_ = 0;
  std::vector<std::string> padded_;
};

class CollectSpeed final : public duet::speed::BadRowSink {
 public:
  duet::Status Put(std::span<const duet::core::BadRow> rows) override {
    rows_.insert(rows_.end(), rows.begin(), rows.end());
    return duet::Status::Ok();
  }
  std::vector<duet::core::BadRow> rows_;
};

class CollectBatch final : public duet::batch::BadRowSink {
 public:
  duet::Status Put(std::span<const duet::core::BadRow> rows) override {
    std::lock_guard<std::mutex> l(mu_);
    rows_.insert(rows_.end(), rows.begin(), rows.end());
    return duet::Status::Ok();
  }
  std::mutex mu_;
  std::vector<duet::core::BadRow> rows_;
};

// The input's lines as a LineReader, for the batch layer.
class MemoryLineReader final : public duet::LineReader {
 public:
  explicit MemoryLineReader(const std::vector<InputLine>* lines) : lines_(lines) {}
  duet::Result<bool> Next(duet::Line* line) override {
    if (next_ == lines_->size()) return false;
    const InputLine& l = (*lines_)[next_];
    buf_ = l.bytes + std::string(duet::kLinePadding, ' ');
    line->bytes = std::string_view(buf_).substr(0, l.bytes.size());
    line->offset = l.offset;
    line->number = ++next_;
    line->full_length = l.full_length;
    line->truncated = l.truncated;
    return true;
  }

 private:
  const std::vector<InputLine>* const lines_;
  size_t next_ = 0;
  std::string buf_;
};

uint64_t Bad(const Expected& e) {
  uint64_t n = 0;
  for (const int r : e.reason) n += r >= 0 ? 1 : 0;
  return n;
}

void RunSpeed(const std::vector<InputLine>& lines, const Expected& e, size_t batch_lines,
              bool restart) {
  auto store = duet::store::OpenSqliteStore(":memory:");
  Check(store.ok(), "in-memory SQLite store opens");
  CollectSpeed sink;
  duet::speed::SpeedOptions o;
  o.bad_row_sink = &sink;
  o.lateness_ms = kForeverMs;
  o.ttl_ms = kForeverMs;
  o.max_batch_lines = batch_lines;
  MemoryLog log(&lines);
  auto speed = std::make_unique<duet::speed::SpeedLayer>(&log, store->get(), o);
  Check(speed->Recover().ok(), "speed layer recovers from an empty store");
  uint64_t lines_seen = 0;
  for (size_t i = 0; i < kMaxMicroBatches; ++i) {
    auto st = speed->Step(/*final=*/true);
    Check(st.ok(), "speed layer micro-batch succeeds");
    if (st->lines == 0) break;
    lines_seen += st->lines;
    Check(st->lines == st->applied + st->duplicates + st->bad_rows + st->late,
          "micro-batch: lines == applied + duplicates + bad rows + late", st->lines,
          st->applied + st->duplicates + st->bad_rows + st->late);
    if (restart && i % 2 == 1) {
      // A fresh engine from the checkpoint, as after a crash: counts carry on exactly.
      speed = std::make_unique<duet::speed::SpeedLayer>(&log, store->get(), o);
      Check(speed->Recover().ok(), "speed layer recovers from its checkpoint");
    }
  }
  Check(lines_seen == lines.size(), "speed layer read every line once", lines_seen, lines.size());
  CheckTotals(speed->views().input, lines.size(), e, Bad(e));
  Check(sink.rows_.size() == Bad(e), "speed bad rows reach the sink", sink.rows_.size(), Bad(e));
  for (const auto& r : sink.rows_) CheckBadRow(r, lines, e);
}

void RunBatch(const std::vector<InputLine>& lines, const Expected& e) {
  duet::batch::BatchOptions o;
  o.threads = 1;
  o.lateness_ms = kForeverMs;
  duet::batch::InputFile f;
  f.path = "fuzz.ndjson";
  f.relative = "fuzz.ndjson";
  f.size = lines.size();
  f.open = [&lines]() -> duet::Result<std::unique_ptr<duet::LineReader>> {
    return std::unique_ptr<duet::LineReader>(std::make_unique<MemoryLineReader>(&lines));
  };
  o.inputs.push_back(std::move(f));
  CollectBatch sink;
  auto views = duet::batch::RunBatch(o, &sink, nullptr);
  Check(views.ok(), "batch layer run succeeds");
  CheckTotals(views->input, lines.size(), e, Bad(e));
  Check(sink.rows_.size() == Bad(e), "batch bad rows reach the sink", sink.rows_.size(), Bad(e));
  for (const auto& r : sink.rows_) CheckBadRow(r, lines, e);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  duet::SetMinLogLevel(duet::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses the micro-batch size (1..64 lines) and whether the speed layer
  // restarts from its checkpoint; the rest is the NDJSON input.
  const size_t batch_lines = (data[0] & 0x3f) + 1;
  const bool restart = (data[0] & 0x40) != 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<InputLine> lines = SplitLines(in);
  const Expected e = Classify(lines);
  Check(e.valid + e.duplicates + Bad(e) == lines.size(), "oracle: every line classified once",
        e.valid + e.duplicates + Bad(e), lines.size());
  RunSpeed(lines, e, batch_lines, restart);
  RunBatch(lines, e);
  return 0;
}
