#include "batch/batch.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "beacon/parser.h"
#include "core/aggregator.h"
#include "core/catalog.h"
#include "core/features.h"
#include "util/flat_map.h"
#include "util/hash.h"
#include "util/line_reader.h"
#include "util/serial.h"
#include "util/slab.h"
#include "util/strong_type.h"

namespace duet::batch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kBucketBits = 8;
constexpr int kBuckets = 1 << kBucketBits;
constexpr size_t kBadRowFlush = 4096;
constexpr int kOffsetBits = 40;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

bool IsInputName(const std::string& name) {
  if (name.empty() || name[0] == '.' || name[0] == '_') return false;
  auto ends = [&](std::string_view s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".ndjson") || ends(".ndjson.zst");
}

// A valid beacon as kept between the phases: 56 bytes plus its id bytes. Visitors are keyed by
// a 128-bit hash (collisions: see docs/beacon-contract.md); ids by their bytes.
struct Record {
  uint64_t visitor_lo;
  uint64_t visitor_hi;
  int64_t ts;
  double value;
  uint64_t pos;    // file index << kOffsetBits | line offset: the contract's read order
  const char* id;  // id bytes in the reading thread's arena
  uint32_t tags;   // tag set id: the reading thread's catalog until the compute phase remaps it
  uint8_t id_len;
  beacon::BeaconType type;
  uint8_t duplicate;
  uint8_t context;  // core::BeaconContext: read by the model's features only
  std::string_view id_view() const { return {id, id_len}; }
};
static_assert(sizeof(Record) == 56);

// Where a record lives, for the dedup pass: 16 bytes.
struct IdEntry {
  uint64_t id_hash;
  Record* record;
};

// One per reading thread. Records, dedup entries and id bytes live in the thread's Slab.
struct ReaderState {
  Slab slab;
  std::array<BlockList<Record>, kBuckets> records;  // by visitor bucket
  std::array<BlockList<IdEntry>, kBuckets> ids;     // by id bucket
  core::Catalog catalog;
  std::array<int64_t, beacon::kReasonCount> bad_by_reason{};
  int64_t lines = 0;
  int64_t max_ts = INT64_MIN;
  std::vector<core::BadRow> bad;
};

// Shared state of one run.
struct Run {
  Run(const BatchOptions& o, const std::vector<InputFile>& f, BadRowSink* s)
      : options(o), files(f), sink(s) {}
  const BatchOptions& options;
  const std::vector<InputFile>& files;
  BadRowSink* sink;
  std::mutex sink_mu;
  std::mutex error_mu;
  Status error;
  std::atomic<bool> failed{false};
  std::atomic<size_t> next_file{0};
  std::atomic<uint64_t> files_done{0};
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<uint64_t> lines{0};

  void Fail(Status s) {
    std::lock_guard<std::mutex> l(error_mu);
    if (error.ok()) error = std::move(s);
    failed.store(true);
  }
  void Flush(std::vector<core::BadRow>* bad) {
    if (bad->empty()) return;
    if (sink != nullptr) {
      Status s;
      {
        std::lock_guard<std::mutex> l(sink_mu);
        s = sink->Put(*bad);
      }
      if (!s.ok()) Fail(std::move(s));
    }
    bad->clear();
  }
};

void ReadFiles(Run* run, ReaderState* st, uint16_t thread) {
  beacon::Parser parser;
  beacon::Beacon b;
  beacon::BadReason reason;
  Line line;
  while (!run->failed.load(std::memory_order_relaxed)) {
    const size_t fi = run->next_file.fetch_add(1);
    if (fi >= run->files.size()) break;
    const InputFile& f = run->files[fi];
    auto reader = f.open ? f.open() : LineReader::Open(f.path, beacon::kMaxLineBytes);
    if (!reader.ok()) {
      run->Fail(reader.status());
      break;
    }
    uint64_t local_lines = 0;
    while (true) {
      const Result<bool> more = (*reader)->Next(&line);
      if (!more.ok()) {
        run->Fail(more.status());
        break;
      }
      if (!*more) break;
      ++local_lines;
      const bool ok = !line.truncated && parser.Parse(line.bytes, true, &b, &reason);
      if (!ok) {
        if (line.truncated) reason = beacon::BadReason::kLineTooLong;
        ++st->bad_by_reason[static_cast<size_t>(reason)];
        st->bad.push_back(core::BadRow{reason, f.relative, line.number, line.offset,
                                       line.full_length, line.truncated, std::string(line.bytes)});
        if (st->bad.size() >= kBadRowFlush) run->Flush(&st->bad);
        continue;
      }
      Record r;
      const Hash128 vh = HashBytes(b.visitor);
      r.visitor_lo = vh.lo;
      r.visitor_hi = vh.hi;
      r.ts = b.ts.value();
      st->max_ts = std::max(st->max_ts, r.ts);
      r.value = b.value;
      r.pos = (static_cast<uint64_t>(fi) << kOffsetBits) | line.offset;
      char* id = static_cast<char*>(st->slab.Allocate(b.id.size(), 1));
      std::memcpy(id, b.id.data(), b.id.size());
      r.id = id;
      r.tags = st->catalog.InternTagSet(b.experiments);
      r.id_len = static_cast<uint8_t>(b.id.size());
      r.type = b.type;
      r.duplicate = 0;
      r.context = run->options.on_visitor ? core::BeaconContext(b) : 0;
      const uint64_t id_hash = Hash64(b.id);
      Record* stored = st->records[r.visitor_lo >> (64 - kBucketBits)].Append(r, &st->slab);
      st->ids[id_hash >> (64 - kBucketBits)].Append(IdEntry{id_hash, stored}, &st->slab);
    }
    st->lines += local_lines;
    run->lines.fetch_add(local_lines, std::memory_order_relaxed);
    run->bytes_done.fetch_add(f.size, std::memory_order_relaxed);
    run->files_done.fetch_add(1, std::memory_order_relaxed);
  }
  run->Flush(&st->bad);
}

// Marks every valid beacon whose id was read before as a duplicate. Returns the count.
// Each thread's entries are already in read order (a thread reads files in increasing index),
// so no sort is needed: a hash map keeps, per id, the earliest read position seen so far.
int64_t Dedup(std::vector<std::unique_ptr<ReaderState>>& states, int bucket,
              FlatMap<uint64_t>* first) {
  first->clear();
  // Ids that share a 64-bit hash with a different id: settled by comparing bytes (rare).
  std::vector<Record*> collided;
  int64_t dups = 0;
  for (const auto& st : states) {
    st->ids[bucket].ForEach([&](const IdEntry& e) {
      const uint64_t key = e.id_hash == FlatMap<uint64_t>::kEmpty ? 0 : e.id_hash;
      uint64_t& slot = (*first)[key];
      if (slot == 0) {
        slot = reinterpret_cast<uint64_t>(e.record);
        return;
      }
      Record& r = *e.record;
      Record& kept = *reinterpret_cast<Record*>(slot);
      Record* earlier = &kept;
      if (kept.id_view() != r.id_view()) {
        earlier = nullptr;
        for (Record* c : collided) {
          if (c->id_view() == r.id_view()) earlier = c;
        }
        if (earlier == nullptr) {
          collided.push_back(&r);
          return;
        }
      }
      ++dups;
      if (r.pos < earlier->pos) {  // read before the one kept so far (another thread's file)
        earlier->duplicate = 1;
        if (earlier == &kept) {
          slot = reinterpret_cast<uint64_t>(&r);
        } else {
          *std::find(collided.begin(), collided.end(), earlier) = &r;
        }
      } else {
        r.duplicate = 1;
      }
    });
  }
  return dups;
}

// Gathers the bucket's beacons into one contiguous array (tag sets remapped to the shared
// catalog), sorts it by (visitor, ts, id) and hands each visitor's events to the aggregator.
// Sorting the records themselves keeps the per-visitor pass sequential in memory.
void ComputeBucket(std::vector<std::unique_ptr<ReaderState>>& states,
                   const std::vector<std::vector<core::TagSetId>>& remap, int bucket,
                   core::Aggregator* agg, core::Aggregator* correction, int64_t boundary_ms,
                   int64_t gap_ms, std::vector<Record>* recs, std::vector<core::Event>* events,
                   const core::Catalog& catalog, const BatchOptions& options, int thread) {
  recs->clear();
  for (size_t t = 0; t < states.size(); ++t) {
    states[t]->records[bucket].ForEach([&](const Record& r) {
      if (r.duplicate) return;
      recs->push_back(r);
      recs->back().tags = remap[t][r.tags];
    });
  }
  std::sort(recs->begin(), recs->end(), [](const Record& a, const Record& b) {
    if (a.visitor_lo != b.visitor_lo) return a.visitor_lo < b.visitor_lo;
    if (a.visitor_hi != b.visitor_hi) return a.visitor_hi < b.visitor_hi;
    if (a.ts != b.ts) return a.ts < b.ts;
    return a.id_view() < b.id_view();
  });
  for (size_t i = 0; i < recs->size();) {
    const Record& first = (*recs)[i];
    events->clear();
    size_t j = i;
    for (; j < recs->size() && (*recs)[j].visitor_lo == first.visitor_lo &&
           (*recs)[j].visitor_hi == first.visitor_hi;
         ++j) {
      const Record& r = (*recs)[j];
      events->push_back(core::Event{r.ts, r.id_view(), r.value, r.tags, r.type, r.context});
    }
    agg->AddVisitor(*events);
    if (options.on_visitor) options.on_visitor(thread, catalog, *events);
    if (correction != nullptr) {
      // The prefix view is the full view corrected for the few visitors whose last sessions
      // are not complete yet: minus everything, plus their complete sessions.
      const size_t k = core::SessionPrefixEnd(*events, gap_ms, boundary_ms);
      if (k < events->size()) {
        correction->AddVisitor(*events, -1);
        if (k > 0) correction->AddVisitor(std::span<const core::Event>(*events).first(k));
      }
    }
    i = j;
  }
}

template <typename Fn>
void ParallelFor(int threads, int n, Fn fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(t, i);
    });
  }
  for (auto& th : pool) th.join();
}

// Calls options.progress periodically until stopped.
class ProgressThread {
 public:
  ProgressThread(const BatchOptions& o, const Run& run, uint64_t bytes_total)
      : options_(o), run_(run), bytes_total_(bytes_total) {
    if (o.progress) thread_ = std::thread([this] { Loop(); });
  }
  ~ProgressThread() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, std::chrono::milliseconds(options_.progress_interval_ms),
                         [this] { return stop_; })) {
      options_.progress(Progress{run_.files_done.load(), run_.files.size(), run_.bytes_done.load(),
                                 bytes_total_, run_.lines.load()});
    }
  }
  const BatchOptions& options_;
  const Run& run_;
  const uint64_t bytes_total_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

Result<std::vector<InputFile>> ListInputs(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Status::NotFound("--input: '" + path + "' does not exist");
  std::vector<InputFile> out;
  if (fs::is_regular_file(st)) {
    out.push_back(InputFile{path, fs::path(path).filename().string(), fs::file_size(path, ec)});
    return out;
  }
  if (!fs::is_directory(st)) {
    return Status::InvalidArgument("--input: '" + path + "' is neither a file nor a folder");
  }
  const fs::path root(path);
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (!IsInputName(name)) continue;
    out.push_back(InputFile{it->path().string(), it->path().lexically_relative(root).string(),
                            it->file_size(ec)});
  }
  if (ec) return Status::IoError("--input: cannot list '" + path + "': " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const InputFile& a, const InputFile& b) { return a.relative < b.relative; });
  return out;
}

Result<core::Views> RunBatch(const BatchOptions& options, BadRowSink* sink, BatchStats* stats,
                             PrefixView* prefix) {
  if (options.threads < 1 || options.threads > 256) {
    return Status::InvalidArgument("threads: " + std::to_string(options.threads) +
                                   " is out of range; expected 1..256");
  }
  auto files = options.inputs.empty() ? ListInputs(options.input)
                                      : Result<std::vector<InputFile>>(options.inputs);
  if (!files.ok()) return files.status();
  if (files->size() >= (1ULL << (64 - kOffsetBits))) {
    return Status::InvalidArgument("--input: too many files (" + std::to_string(files->size()) +
                                   ")");
  }
  uint64_t bytes_total = 0;
  for (const InputFile& f : *files) bytes_total += f.size;
  BatchStats local_stats;
  BatchStats& s = stats != nullptr ? *stats : local_stats;
  s.files = files->size();
  s.bytes = bytes_total;

  const int threads = options.threads;
  std::vector<std::unique_ptr<ReaderState>> states;
  for (int t = 0; t < threads; ++t) states.push_back(std::make_unique<ReaderState>());
  Run run(options, *files, sink);

  // Phase 1: read, parse, validate; files are handed out one at a time.
  const auto t0 = Clock::now();
  {
    ProgressThread progress(options, run, bytes_total);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back(ReadFiles, &run, states[t].get(), static_cast<uint16_t>(t));
    }
    for (auto& th : pool) th.join();
  }
  if (run.failed.load()) return run.error;
  const auto t1 = Clock::now();

  // Phase 2: duplicates, by id bucket.
  std::vector<int64_t> dups(kBuckets, 0);
  {
    std::vector<FlatMap<uint64_t>> maps(threads);
    ParallelFor(threads, kBuckets, [&](int t, int b) { dups[b] = Dedup(states, b, &maps[t]); });
  }
  const auto t2 = Clock::now();

  // One catalog for all threads, so aggregators can be merged.
  core::Catalog catalog;
  std::vector<std::vector<core::TagSetId>> remap(threads);
  for (int t = 0; t < threads; ++t) {
    for (core::TagSetId id = 0; id < states[t]->catalog.tag_set_count(); ++id) {
      remap[t].push_back(catalog.InternTagSet(states[t]->catalog.TagSetNames(id)));
    }
  }

  // Phase 3: per visitor bucket, sessionize, attribute and aggregate.
  int64_t max_ts = INT64_MIN;
  for (const auto& st : states) max_ts = std::max(max_ts, st->max_ts);
  // No beacon older than this can still arrive within the allowed lateness, so sessions that
  // ended more than a gap before it are complete (the prefix view's horizon).
  const int64_t boundary = max_ts == INT64_MIN ? INT64_MIN : max_ts - options.lateness_ms;
  std::vector<std::unique_ptr<core::Aggregator>> aggs, corrections;
  std::vector<std::vector<Record>> scratch(threads);
  std::vector<std::vector<core::Event>> events(threads);
  for (int t = 0; t < threads; ++t) {
    aggs.push_back(std::make_unique<core::Aggregator>(&catalog, options.session_gap_ms));
    corrections.push_back(std::make_unique<core::Aggregator>(&catalog, options.session_gap_ms));
  }
  ParallelFor(threads, kBuckets, [&](int t, int b) {
    ComputeBucket(states, remap, b, aggs[t].get(),
                  prefix != nullptr ? corrections[t].get() : nullptr, boundary,
                  options.session_gap_ms, &scratch[t], &events[t], catalog, options, t);
  });
  for (int t = 1; t < threads; ++t) aggs[0]->Merge(*aggs[t]);
  core::Views views = aggs[0]->Finalize();
  if (prefix != nullptr) {
    core::Aggregator prefix_view = *aggs[0];
    for (int t = 0; t < threads; ++t) prefix_view.Merge(*corrections[t]);
    ByteWriter w;
    catalog.Save(&w);
    prefix_view.Save(&w);
    prefix->boundary_ms = boundary;
    prefix->state = std::move(w.buffer());
  }
  const auto t3 = Clock::now();

  core::InputTotals& in = views.input;
  std::array<int64_t, beacon::kReasonCount> bad{};
  int64_t valid_read = 0;
  uint64_t stats_slab_bytes = 0;
  for (const auto& st : states) {
    in.lines += st->lines;
    for (size_t r = 0; r < bad.size(); ++r) bad[r] += st->bad_by_reason[r];
    for (const auto& ids : st->ids) valid_read += static_cast<int64_t>(ids.size());
    stats_slab_bytes += st->slab.reserved_bytes();
  }
  for (size_t r = 0; r < bad.size(); ++r) {
    if (bad[r] == 0) continue;
    in.bad_rows += bad[r];
    in.bad_rows_by_reason[std::string(beacon::ReasonName(static_cast<beacon::BadReason>(r)))] =
        bad[r];
  }
  for (const int64_t d : dups) in.duplicates += d;
  in.valid_beacons = valid_read - in.duplicates;
  if (!in.Balanced()) {
    return Status::Corruption("input accounting does not balance: lines " +
                              std::to_string(in.lines) + " != bad " + std::to_string(in.bad_rows) +
                              " + duplicates " + std::to_string(in.duplicates) + " + valid " +
                              std::to_string(in.valid_beacons));
  }
  s.working_set_bytes = stats_slab_bytes;
  s.read_seconds = Seconds(t0, t1);
  s.dedup_seconds = Seconds(t1, t2);
  s.compute_seconds = Seconds(t2, t3);
  return views;
}

Result<ParseOnlyCounts> ParseOnly(const BatchOptions& options) {
  auto files = options.inputs.empty() ? ListInputs(options.input)
                                      : Result<std::vector<InputFile>>(options.inputs);
  if (!files.ok()) return files.status();
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> lines{0};
  std::atomic<uint64_t> json_values{0};
  std::mutex mu;
  Status error;
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> l(mu);
    if (error.ok()) error = std::move(s);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < options.threads; ++t) {
    pool.emplace_back([&] {
      simdjson::dom::parser parser;
      if (parser.allocate(beacon::kMaxLineBytes + 1) != simdjson::SUCCESS) {
        return fail(Status::IoError("simdjson: cannot allocate the parser"));
      }
      Line line;
      uint64_t n = 0, parsed = 0;
      for (size_t fi = next.fetch_add(1); fi < files->size(); fi = next.fetch_add(1)) {
        const InputFile& f = (*files)[fi];
        auto reader = f.open ? f.open() : LineReader::Open(f.path, beacon::kMaxLineBytes);
        if (!reader.ok()) return fail(reader.status());
        while (true) {
          const Result<bool> more = (*reader)->Next(&line);
          if (!more.ok()) return fail(more.status());
          if (!*more) break;
          ++n;
          simdjson::dom::element el;
          parsed += parser.parse(line.bytes.data(), line.bytes.size(), false).get(el) ==
                    simdjson::SUCCESS;
        }
      }
      lines.fetch_add(n);
      json_values.fetch_add(parsed);
    });
  }
  for (auto& th : pool) th.join();
  if (!error.ok()) return error;
  return ParseOnlyCounts{lines.load(), json_values.load()};
}

}  // namespace duet::batch
