// StreamProbe: the speed layer's operational metrics and readiness thresholds (docs/operations.md).
//
// Metrics, registered in the given registry (served by `duet stream --status-listen` /metrics):
//   duet_stream_interval_seconds               the configured micro-batch interval
//   duet_stream_scheduling_delay_seconds       how late the last round started against its
//                                              schedule (its previous start + the interval when
//                                              caught up, the previous end when behind)
//   duet_stream_processing_seconds             histogram: the time each round took
//   duet_stream_processing_ratio               the last round's time / the interval (> 1: the
//                                              layer cannot keep its interval)
//   duet_stream_micro_batches_total{result}    micro-batches committed / failed
//   duet_stream_partition_lag_messages{partition}  messages in the partition after what this
//                                              process has committed (Kafka source only)
//   duet_stream_lag_messages                   their sum over the owned partitions
//   duet_stream_writer_active                  active/passive writers: 1 while this process
//                                              holds the writer lease (always 1 without one)
//   duet_stream_writer_lease_token             the fencing token of its holding (0: none)
//   duet_stream_writer_takeovers_total         times this process took the lease over
// Readiness: Problems() names each crossed threshold (for StatusPage::SetCondition).
// Not thread-safe: the stream loop calls it; prometheus-cpp makes the reads safe.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

namespace prometheus {
class Registry;
class Gauge;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace duet::speed {

struct StreamThresholds {
  int64_t max_lag_messages = 0;  // unready while a partition is further behind; 0: no threshold
  int64_t max_delay_ms = 0;      // unready while the last round started later; 0: no threshold
};

struct PartitionLag {
  int partition = 0;
  int64_t messages = -1;  // -1: not known yet (the broker has not reported the end offset)
};

class StreamProbe {
 public:
  // `registry` must outlive the probe. interval_ms > 0.
  StreamProbe(prometheus::Registry* registry, int64_t interval_ms, StreamThresholds thresholds);
  StreamProbe(const StreamProbe&) = delete;
  StreamProbe& operator=(const StreamProbe&) = delete;

  // A round of micro-batches that was due at `due_ms`, started at `started_ms` and ended at
  // `finished_ms` (wall clock, ms), committing `committed` micro-batches and failing `failed`.
  void Round(int64_t due_ms, int64_t started_ms, int64_t finished_ms, int64_t committed,
             int64_t failed);
  // The lag of every partition owned now; partitions not listed are no longer reported.
  void Lag(std::span<const PartitionLag> lags);

  // Active/passive writers: whether this process writes, under which token.
  void Writer(bool active, int64_t token);
  void TookOver();

  // The readiness conditions, by name: "lag" and "delay", each "" while within its threshold.
  std::map<std::string, std::string> Problems() const;

 private:
  const int64_t interval_ms_;
  const StreamThresholds thresholds_;
  prometheus::Gauge& delay_;
  prometheus::Histogram& processing_;
  prometheus::Gauge& ratio_;
  prometheus::Counter& committed_;
  prometheus::Counter& failed_;
  prometheus::Family<prometheus::Gauge>& partition_lag_;
  prometheus::Gauge& lag_;
  prometheus::Gauge& writer_active_;
  prometheus::Gauge& lease_token_;
  prometheus::Counter& takeovers_;
  std::map<int, prometheus::Gauge*> lag_gauges_;
  int64_t last_delay_ms_ = 0;
  PartitionLag worst_;  // the partition furthest behind now
};

}  // namespace duet::speed
