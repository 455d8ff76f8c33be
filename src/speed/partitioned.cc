#include "speed/partitioned.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "log/kafka_log.h"
#include "util/log.h"

namespace duet::speed {

// One partition of the group's topic as a Log for its engine: PartitionedSpeed hands it the
// records the consumer read for the partition; Positions/Seek speak KafkaLog's positions text
// with this one partition in it.
class PartitionLog final : public log::Log {
 public:
  PartitionLog(std::string topic, int partition)
      : topic_(std::move(topic)), partition_(partition) {}

  void Hand(const log::LogRecord& r) { pending_.push_back(r); }

  Status Poll(size_t /*max_records*/, bool /*final*/, std::vector<log::LogRecord>* out) override {
    out->swap(pending_);
    pending_.clear();
    if (!out->empty()) {
      next_ = static_cast<int64_t>(out->back().offset) + 1;
      positioned_ = true;
    }
    return Status::Ok();
  }

  std::string Positions() const override {
    if (!positioned_) return log::KafkaPositions(topic_, {});
    return log::KafkaPositions(topic_, {{partition_, next_}});
  }

  Status Seek(std::string_view positions) override {
    auto parsed = log::ParseKafkaPositions(topic_, positions);
    if (!parsed.ok()) return parsed.status();
    positioned_ = false;
    for (const auto& [p, offset] : *parsed) {
      if (p != partition_) {
        return Status::InvalidArgument("speed checkpoint of " + topic_ + "/" +
                                       std::to_string(partition_) +
                                       " holds a position of partition " + std::to_string(p));
      }
      next_ = offset;
      positioned_ = true;
    }
    pending_.clear();
    return Status::Ok();
  }

  // Where the consumer must read the partition from for this log's position.
  int64_t start() const { return positioned_ ? next_ : log::kFromOldest; }

 private:
  const std::string topic_;
  const int partition_;
  int64_t next_ = 0;
  bool positioned_ = false;
  std::vector<log::LogRecord> pending_;
};

// Serializes a shared BadRowSink for engines stepping on several threads.
class PartitionedSpeed::SerialSink final : public BadRowSink {
 public:
  explicit SerialSink(BadRowSink* sink) : sink_(sink) {}
  Status Put(std::span<const core::BadRow> rows) override {
    std::lock_guard<std::mutex> l(mu_);
    return sink_->Put(rows);
  }

 private:
  BadRowSink* const sink_;
  std::mutex mu_;
};

PartitionedSpeed::PartitionedSpeed(store::Store* store, const SpeedOptions& options,
                                   std::string topic, size_t threads)
    : store_(store),
      sink_(options.bad_row_sink != nullptr ? std::make_unique<SerialSink>(options.bad_row_sink)
                                            : nullptr),
      options_(WithSink(options, sink_.get())),
      topic_(std::move(topic)),
      threads_(std::max<size_t>(1, threads)) {}

SpeedOptions PartitionedSpeed::WithSink(SpeedOptions o, BadRowSink* sink) {
  o.bad_row_sink = sink;
  return o;
}

PartitionedSpeed::~PartitionedSpeed() = default;

void PartitionedSpeed::Attach(log::KafkaGroupConsumer* consumer) { consumer_ = consumer; }

Status PartitionedSpeed::CheckStore() {
  auto scopes = store_->ReadSpeedScopes();
  if (!scopes.ok()) return scopes.status();
  const std::string prefix = topic_ + "/";
  for (const store::SpeedScope& s : *scopes) {
    if (s.scope.rfind(prefix, 0) == 0 && log::KafkaPartitionOf(s.scope) >= 0) continue;
    return Status::InvalidArgument(
        "the store already holds speed-layer state of another input (scope '" +
        (s.scope.empty() ? std::string("a folder read as a log") : s.scope) + "'), not of topic " +
        topic_ + "; one store keeps one speed layer: use another store for this one");
  }
  return Status::Ok();
}

Result<int64_t> PartitionedSpeed::Build(int partition, Engine* e) {
  SpeedOptions o = options_;
  o.scope = topic_ + "/" + std::to_string(partition);
  e->speed.reset();  // before the log it reads
  e->log = std::make_unique<PartitionLog>(topic_, partition);
  auto speed = std::make_unique<SpeedLayer>(e->log.get(), store_, o);
  const Status s = speed->Recover();
  if (!s.ok()) {
    // Unavailable: the store is down; the partition is held and rebuilt later. Anything else
    // (a damaged checkpoint, other settings) cannot be fixed by retrying.
    if (s.code() != StatusCode::kUnavailable && fatal_.ok()) fatal_ = s;
    return s;
  }
  e->speed = std::move(speed);
  return e->log->start();
}

Result<int64_t> PartitionedSpeed::OnAssigned(int partition) {
  Engine& e = engines_[partition];
  auto start = Build(partition, &e);
  Log(LogLevel::kInfo, "stream.partition_assigned",
      {{"scope", topic_ + "/" + std::to_string(partition)},
       {"start", start.ok() ? *start : int64_t{-2}},
       {"held", !start.ok()}});
  return start;
}

void PartitionedSpeed::OnRevoked(int partition) {
  if (engines_.erase(partition) > 0) {
    Log(LogLevel::kInfo, "stream.partition_revoked",
        {{"scope", topic_ + "/" + std::to_string(partition)}});
  }
}

Result<std::map<int, int64_t>> PartitionedSpeed::StoredEpochs() {
  auto scopes = store_->ReadSpeedScopes();
  if (!scopes.ok()) return scopes.status();
  std::map<int, int64_t> out;
  const std::string prefix = topic_ + "/";
  for (const store::SpeedScope& s : *scopes) {
    if (s.scope.rfind(prefix, 0) == 0) out[log::KafkaPartitionOf(s.scope)] = s.epoch;
  }
  return out;
}

void PartitionedSpeed::SetStandby(bool standby) {
  if (standby == standby_) return;
  standby_ = standby;
  if (standby) {
    for (auto& [p, e] : engines_) consumer_->Hold(p);
    return;
  }
  // Taking over: engines at the stored epoch read on from their checkpoint's offsets; the others
  // (or all, if the epochs cannot be read now) are rebuilt by the next round.
  auto epochs = StoredEpochs();
  for (auto& [p, e] : engines_) {
    if (e.speed == nullptr) continue;
    if (epochs.ok()) {
      const auto it = epochs->find(p);
      const int64_t stored = it == epochs->end() ? 0 : it->second;
      if (stored == e.speed->epoch() && consumer_->Start(p, e.log->start()).ok()) continue;
    }
    e.speed.reset();
  }
}

Result<RoundResult> PartitionedSpeed::StandbyRound() {
  RoundResult result;
  for (auto& [p, e] : engines_) consumer_->Hold(p);
  auto epochs = StoredEpochs();
  if (!epochs.ok()) {
    result.failures.emplace_back(-1, epochs.status());
    return result;
  }
  for (auto& [p, e] : engines_) {
    const auto it = epochs->find(p);
    const int64_t stored = it == epochs->end() ? 0 : it->second;
    if (e.speed != nullptr && e.speed->epoch() == stored) continue;
    auto start = Build(p, &e);  // the active writer moved on: follow it
    if (!start.ok()) {
      e.speed.reset();
      result.failures.emplace_back(p, start.status());
    }
  }
  if (!fatal_.ok()) return fatal_;
  // Keeps the group membership alive (rebalances happen inside Poll); whatever a partition
  // assigned meanwhile returned is dropped by holding it.
  DUET_RETURN_IF_ERROR(consumer_->Poll(options_.max_batch_lines, &records_));
  if (!fatal_.ok()) return fatal_;
  for (auto& [p, e] : engines_) consumer_->Hold(p);
  records_.clear();
  return result;
}

Result<RoundResult> PartitionedSpeed::Round() {
  if (standby_) return StandbyRound();
  RoundResult result;
  if (!fatal_.ok()) return fatal_;
  // Held partitions: rebuild their engines from the checkpoint and read them from there.
  for (auto& [p, e] : engines_) {
    if (e.speed != nullptr) continue;
    auto start = Build(p, &e);
    Status s = start.ok() ? consumer_->Start(p, *start) : start.status();
    if (!s.ok()) {
      e.speed.reset();
      result.failures.emplace_back(p, std::move(s));
      continue;
    }
    Log(LogLevel::kInfo, "stream.partition_resumed",
        {{"scope", topic_ + "/" + std::to_string(p)}, {"start", *start}});
    ++result.resumed;
  }
  if (!fatal_.ok()) return fatal_;
  DUET_RETURN_IF_ERROR(consumer_->Poll(options_.max_batch_lines, &records_));
  if (!fatal_.ok()) return fatal_;  // found while (re)assigning partitions inside Poll
  // Each record to its partition's engine (the consumer returns only owned, started ones).
  int last = -1;
  Engine* engine = nullptr;
  for (const log::LogRecord& r : records_) {
    const int p = log::KafkaPartitionOf(r.source);
    if (p != last) {
      auto it = engines_.find(p);
      engine = it != engines_.end() && it->second.speed != nullptr ? &it->second : nullptr;
      last = p;
    }
    if (engine != nullptr) engine->log->Hand(r);
  }
  // Every engine steps, also without records: a new batch boundary is applied at once. Engines
  // share nothing but the store (thread-safe) and the bad-row sink (serialized by its owner),
  // so up to `threads` of them step at the same time.
  std::vector<std::pair<int, Engine*>> ready;
  for (auto& [p, e] : engines_) {
    if (e.speed != nullptr) ready.emplace_back(p, &e);
  }
  std::vector<Result<MicroBatchStats>> outcomes(ready.size(), Status::Aborted("not run"));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < ready.size(); i = next.fetch_add(1)) {
      outcomes[i] = ready[i].second->speed->Step(false);
    }
  };
  const size_t helpers = std::min(threads_, ready.size()) - (ready.empty() ? 0 : 1);
  std::vector<std::thread> pool;
  pool.reserve(helpers);
  for (size_t t = 0; t < helpers; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  Status fatal = Status::Ok();
  for (size_t i = 0; i < ready.size(); ++i) {
    const auto& [p, e] = ready[i];
    Result<MicroBatchStats>& st = outcomes[i];
    if (st.ok()) {
      if (st->lines > 0) {
        result.lines += st->lines;
        result.batches.push_back(PartitionBatch{p, *st});
      }
      continue;
    }
    const StatusCode code = st.status().code();
    if (code != StatusCode::kUnavailable && code != StatusCode::kAborted && fatal.ok()) {
      fatal = st.status();
    }
    // The engine's memory may be ahead of the store: drop it, hold the partition, rebuild later.
    consumer_->Hold(p);
    e->speed.reset();
    result.failures.emplace_back(p, st.status());
  }
  if (!fatal.ok()) return fatal;
  return result;
}

bool PartitionedSpeed::Drained() const {
  const std::vector<log::KafkaGroupConsumer::Owned> owned = consumer_->Assignment();
  if (owned.empty()) return false;
  return std::all_of(owned.begin(), owned.end(), [](const log::KafkaGroupConsumer::Owned& o) {
    return !o.held && o.next >= o.end;
  });
}

std::vector<int> PartitionedSpeed::Owned() const {
  std::vector<int> out;
  for (const auto& [p, e] : engines_) out.push_back(p);
  return out;
}

}  // namespace duet::speed
