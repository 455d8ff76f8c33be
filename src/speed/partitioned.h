// PartitionedSpeed: the speed layer as a member of a Kafka consumer group — one SpeedLayer engine
// per partition this member owns, each with its own scope ("TOPIC/PARTITION") in the store.
//
// The collector keys beacons by visitor, so a visitor's beacons (and a duplicate's original) are
// all in one partition: each engine's sessions, dedup and figures are complete for its visitors,
// and the speed views are the exact merge of the scopes' (serve::SpeedViews). Nothing is merged
// in memory, and no process writes another's scope.
//
// - Assigned a partition: an engine is built from the scope's checkpoint (SpeedLayer::Recover)
//   and the partition is read from the stored offset.
// - Revoked: the engine is dropped. Its last micro-batch was committed at the end of the previous
//   round (rounds never span a rebalance), so the next owner continues exactly there.
// - A micro-batch that fails (the store is unavailable, the bad-row topic is slow): the partition
//   is held (not read), and its engine is rebuilt from the checkpoint at a later round, which
//   reads it again from the stored offset. Aborted (another member committed the scope: this
//   member lost the partition without hearing of it yet) is handled the same way.
//
// Threads: Round and the listener calls (from inside Round's Poll) run on the caller's thread;
// Round runs the engines' micro-batches on up to `threads` threads (the caller's included).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "log/kafka_group.h"
#include "speed/speed_layer.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::speed {

class PartitionLog;

struct PartitionBatch {
  int partition = 0;
  MicroBatchStats stats;
};

struct RoundResult {
  std::vector<PartitionBatch> batches;           // micro-batches committed (lines > 0)
  std::vector<std::pair<int, Status>> failures;  // partitions held after a failure
  uint64_t lines = 0;                            // lines committed this round
  size_t resumed = 0;  // held partitions rebuilt from their checkpoint this round (not read yet)
};

class PartitionedSpeed final : public log::PartitionListener {
 public:
  // `store` (and options.bad_row_sink, if set) must outlive this object. options.scope is
  // ignored (each engine gets its own). Up to `threads` engines run their micro-batches at the
  // same time (each engine on one thread at a time).
  PartitionedSpeed(store::Store* store, const SpeedOptions& options, std::string topic,
                   size_t threads = 1);
  ~PartitionedSpeed() override;
  PartitionedSpeed(const PartitionedSpeed&) = delete;
  PartitionedSpeed& operator=(const PartitionedSpeed&) = delete;

  // The consumer this member reads (opened with this object as its listener). Call once, before
  // Round.
  void Attach(log::KafkaGroupConsumer* consumer);

  // FailedPrecondition-style InvalidArgument when the store already holds speed-layer state of
  // another input (a folder read as a log, or another topic): one store, one speed layer.
  Status CheckStore();

  // One round: rebuilds the engines of held partitions, reads what has arrived and runs one
  // micro-batch per owned partition. A failure of one partition is reported in `failures` and
  // retried at a later round; an error that retrying cannot fix (a damaged checkpoint, settings
  // that differ from the checkpoint's, a position no longer in the topic) is returned.
  Result<RoundResult> Round();

  // Standby — the passive one of active/passive writers (docs/operations.md): owned partitions
  // are not read and nothing is committed; each round rebuilds the engine of every partition
  // whose checkpoint the active writer moved on since, so that the state stays warm. Leaving
  // standby reads every partition from its checkpoint: engines still at the stored epoch go on
  // at once, the others are rebuilt first (at the next round). Call between rounds.
  void SetStandby(bool standby);
  bool standby() const { return standby_; }

  // This member owns at least one partition and has read each to the end offset it had when it
  // was assigned (what `duet stream --drain` waits for).
  bool Drained() const;
  // The partitions this member owns now.
  std::vector<int> Owned() const;

  Result<int64_t> OnAssigned(int partition) override;
  void OnRevoked(int partition) override;

 private:
  struct Engine {
    std::unique_ptr<PartitionLog> log;
    std::unique_ptr<SpeedLayer> speed;  // null while the partition is held
  };
  // Builds the partition's engine from its checkpoint; where to read it from.
  Result<int64_t> Build(int partition, Engine* e);

  class SerialSink;
  static SpeedOptions WithSink(SpeedOptions o, BadRowSink* sink);

  store::Store* const store_;
  const std::unique_ptr<SerialSink> sink_;  // the caller's sink, one Put at a time
  const SpeedOptions options_;
  const std::string topic_;
  const size_t threads_;
  log::KafkaGroupConsumer* consumer_ = nullptr;
  std::map<int, Engine> engines_;
  std::vector<log::LogRecord> records_;
  Status fatal_;  // an error found inside a listener call, returned by the next Round
  bool standby_ = false;
  // A standby round: the partitions held, the engines brought to the stored epochs.
  Result<RoundResult> StandbyRound();
  // Every scope's stored epoch, by partition.
  Result<std::map<int, int64_t>> StoredEpochs();
};

}  // namespace duet::speed
