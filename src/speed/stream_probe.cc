#include "speed/stream_probe.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <set>
#include <utility>

namespace duet::speed {
namespace {

prometheus::Family<prometheus::Counter>& Batches(prometheus::Registry* r) {
  return prometheus::BuildCounter()
      .Name("duet_stream_micro_batches_total")
      .Help("Micro-batches by result: committed with their offsets, or failed (retried later)")
      .Register(*r);
}

std::string Seconds(int64_t ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

}  // namespace

StreamProbe::StreamProbe(prometheus::Registry* registry, int64_t interval_ms,
                         StreamThresholds thresholds)
    : interval_ms_(std::max<int64_t>(1, interval_ms)),
      thresholds_(thresholds),
      delay_(prometheus::BuildGauge()
                 .Name("duet_stream_scheduling_delay_seconds")
                 .Help("How late the last round of micro-batches started against its schedule")
                 .Register(*registry)
                 .Add({})),
      processing_(prometheus::BuildHistogram()
                      .Name("duet_stream_processing_seconds")
                      .Help("Time each round of micro-batches took (read, process, commit)")
                      .Register(*registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05,
                                                                       0.1, 0.25, 0.5, 1, 2.5, 5,
                                                                       10, 30, 60, 120, 300})),
      ratio_(prometheus::BuildGauge()
                 .Name("duet_stream_processing_ratio")
                 .Help("The last round's processing time divided by the micro-batch interval")
                 .Register(*registry)
                 .Add({})),
      committed_(Batches(registry).Add({{"result", "committed"}})),
      failed_(Batches(registry).Add({{"result", "failed"}})),
      partition_lag_(prometheus::BuildGauge()
                         .Name("duet_stream_partition_lag_messages")
                         .Help("Messages in the partition after the last committed micro-batch")
                         .Register(*registry)),
      lag_(prometheus::BuildGauge()
               .Name("duet_stream_lag_messages")
               .Help("Messages after the last committed micro-batch, over the owned partitions")
               .Register(*registry)
               .Add({})),
      writer_active_(prometheus::BuildGauge()
                         .Name("duet_stream_writer_active")
                         .Help("1 while this process writes the speed views (holds the writer "
                               "lease, or runs without one)")
                         .Register(*registry)
                         .Add({})),
      lease_token_(prometheus::BuildGauge()
                       .Name("duet_stream_writer_lease_token")
                       .Help("The fencing token of this process's writer lease (0: none)")
                       .Register(*registry)
                       .Add({})),
      takeovers_(prometheus::BuildCounter()
                     .Name("duet_stream_writer_takeovers_total")
                     .Help("Times this process took the writer lease")
                     .Register(*registry)
                     .Add({})) {
  writer_active_.Set(1);
  prometheus::BuildGauge()
      .Name("duet_stream_interval_seconds")
      .Help("The configured micro-batch interval")
      .Register(*registry)
      .Add({})
      .Set(static_cast<double>(interval_ms_) / 1000.0);
}

void StreamProbe::Round(int64_t due_ms, int64_t started_ms, int64_t finished_ms, int64_t committed,
                        int64_t failed) {
  last_delay_ms_ = std::max<int64_t>(0, started_ms - due_ms);
  delay_.Set(static_cast<double>(last_delay_ms_) / 1000.0);
  const int64_t took = std::max<int64_t>(0, finished_ms - started_ms);
  processing_.Observe(static_cast<double>(took) / 1000.0);
  ratio_.Set(static_cast<double>(took) / static_cast<double>(interval_ms_));
  if (committed > 0) committed_.Increment(static_cast<double>(committed));
  if (failed > 0) failed_.Increment(static_cast<double>(failed));
}

void StreamProbe::Lag(std::span<const PartitionLag> lags) {
  std::set<int> seen;
  int64_t total = 0;
  worst_ = PartitionLag{};
  for (const PartitionLag& l : lags) {
    seen.insert(l.partition);
    if (l.messages < 0) continue;  // not known yet: no figure rather than a wrong one
    prometheus::Gauge*& g = lag_gauges_[l.partition];
    if (g == nullptr) g = &partition_lag_.Add({{"partition", std::to_string(l.partition)}});
    g->Set(static_cast<double>(l.messages));
    total += l.messages;
    if (l.messages > worst_.messages) worst_ = l;
  }
  for (auto it = lag_gauges_.begin(); it != lag_gauges_.end();) {
    if (seen.contains(it->first)) {
      ++it;
      continue;
    }
    partition_lag_.Remove(it->second);  // revoked: another member reports it now
    it = lag_gauges_.erase(it);
  }
  lag_.Set(static_cast<double>(total));
}

void StreamProbe::Writer(bool active, int64_t token) {
  writer_active_.Set(active ? 1 : 0);
  lease_token_.Set(static_cast<double>(token));
}

void StreamProbe::TookOver() { takeovers_.Increment(); }

std::map<std::string, std::string> StreamProbe::Problems() const {
  std::map<std::string, std::string> out{{"lag", ""}, {"delay", ""}};
  if (thresholds_.max_lag_messages > 0 && worst_.messages > thresholds_.max_lag_messages) {
    out["lag"] = std::to_string(worst_.messages) + " messages behind on partition " +
                 std::to_string(worst_.partition) + " (--ready-max-lag " +
                 std::to_string(thresholds_.max_lag_messages) + ")";
  }
  if (thresholds_.max_delay_ms > 0 && last_delay_ms_ > thresholds_.max_delay_ms) {
    out["delay"] = "the last micro-batch started " + Seconds(last_delay_ms_) +
                   " after it was due (--ready-max-delay " + Seconds(thresholds_.max_delay_ms) +
                   ")";
  }
  return out;
}

}  // namespace duet::speed
