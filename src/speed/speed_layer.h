// The speed layer: micro-batches over a Log with the same business logic as the batch layer
// (core::Aggregator), committing views, state and log positions together — exactly once.
//
// Model (docs/speed-layer.md): each active visitor keeps its complete sessions summarized and
// the events of the sessions that can still grow (visitor_state.h). When a micro-batch
// touches a visitor, the visitor's previous contribution is retracted from the aggregator and
// the new one added, so the speed views always equal "the batch layer over the applied beacons".
// A beacon is late — counted, not applied — when its ts is below the watermark (greatest ts
// applied so far minus the allowed lateness) as it stood at the start of the micro-batch. A
// visitor (and the ids it sent) is forgotten after `ttl` without activity; its contribution
// stays in the views.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/bad_row.h"
#include "core/views.h"
#include "log/log.h"
#include "model/registry.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::speed {

// Receives each micro-batch's bad rows before its commit, e.g. to copy them to a Kafka topic.
// A failure fails the micro-batch, which is then read again from the last commit: every bad row
// reaches the sink at least once (with its source and offset, which identify it).
class BadRowSink {
 public:
  virtual ~BadRowSink() = default;
  virtual Status Put(std::span<const core::BadRow> rows) = 0;
};

struct SpeedOptions {
  // The part of the input this engine owns, and its checkpoint's scope in the store
  // (store::SpeedCheckpoint): "" for a log read whole, "TOPIC/PARTITION" for one Kafka partition.
  std::string scope;
  BadRowSink* bad_row_sink = nullptr;  // optional; must outlive the SpeedLayer
  int64_t session_gap_ms = 30 * 60 * 1000;
  int64_t lateness_ms = 10 * 60 * 1000;
  int64_t ttl_ms = 12 * 3600 * 1000LL;
  size_t max_batch_lines = 1'000'000;
  // Live scoring: when this returns a model, every micro-batch scores the sessions in progress
  // with it (core::LiveScores in the views). Called once per micro-batch; may be empty.
  std::function<std::shared_ptr<const model::LoadedModel>()> model;
  // Active/passive writers (docs/operations.md): when `lease` is not empty, every commit carries
  // the token `lease_token` points to (read at commit time: the holder renews and may lose the
  // lease between micro-batches), and the store refuses it once the token is not the lease's
  // current one (store::SpeedCheckpoint::lease_token). Must outlive the SpeedLayer.
  std::string lease;
  const std::atomic<int64_t>* lease_token = nullptr;
};

struct MicroBatchStats {
  uint64_t lines = 0;
  uint64_t bad_rows = 0;
  uint64_t duplicates = 0;
  uint64_t applied = 0;
  uint64_t late = 0;
  uint64_t visitors_touched = 0;
  uint64_t visitors_active = 0;
  uint64_t visitors_expired = 0;
  uint64_t visitor_state_bytes = 0;  // memory held by visitor state after the batch
  uint64_t ids_held = 0;             // ids remembered for deduplication after the batch
  uint64_t id_state_bytes = 0;       // memory held by those ids
  uint64_t state_bytes = 0;          // bytes of state written by this commit (before compression)
  bool full_snapshot = false;        // this commit rewrote the whole state, not only what changed
  int64_t watermark_ms = 0;
  int64_t epoch = 0;  // the checkpoint epoch committed (0 if nothing was committed)
};

class SpeedLayer {
 public:
  // `log` and `store` must outlive the SpeedLayer.
  SpeedLayer(log::Log* log, store::Store* store, const SpeedOptions& options);
  ~SpeedLayer();
  SpeedLayer(const SpeedLayer&) = delete;
  SpeedLayer& operator=(const SpeedLayer&) = delete;

  // Loads the store's checkpoint, if any, and moves the log to its positions. Call once, before
  // Step. Corruption for an undecodable checkpoint; InvalidArgument when it was written with
  // another session gap, lateness or TTL (figures would silently change meaning).
  Status Recover();

  // Runs one micro-batch: reads up to max_batch_lines lines (with `final`, an unterminated last
  // line of a source counts as a line), applies them and commits views, bad rows, state and log
  // positions in one store commit. Reading nothing commits nothing (stats.lines == 0). On a
  // non-ok Status the in-memory state may be ahead of the store: discard this object and
  // Recover a new one.
  Result<MicroBatchStats> Step(bool final);

  // The views as of the last Step (or Recover).
  const core::Views& views() const;
  // The checkpoint epoch as of the last Step (or Recover); 0 before any commit.
  int64_t epoch() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace duet::speed
