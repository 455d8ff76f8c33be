// KafkaLog: a Kafka topic used as a Log — how the speed layer reads the beacons the collector
// produced. Built on librdkafka's consumer.
//
// Source URI: kafka://HOST:PORT[,HOST:PORT...]/TOPIC. Records: one Kafka message is one line;
// `source` is "TOPIC/PARTITION", `offset` the message's offset, `line` offset + 1. Payloads are
// copied next to each other with kLinePadding bytes after each (for in-place JSON parsing);
// payloads longer than max_line are truncated as FileLog does.
//
// Assignment: this Log assigns itself every partition of the topic (one consumer owns them all;
// consumer-group rebalancing is not built yet). Offsets are never committed to Kafka: they live
// in Positions(), which the speed layer stores with its results, and Seek() re-assigns from
// them — so "commit results with Positions(), Seek on restart" is exactly once.
//
// Order: per partition, in offset order; partitions interleave as the broker delivers them.
//
// Poll(max, final): without `final`, waits up to `poll_wait_ms` for messages (librdkafka's batch
// read returns early only once it has a full batch), then takes what has arrived, up to max. With
// `final`, the first such Poll fixes the end: the high-water mark of every partition at that
// moment; Polls return every message before it (waiting for it as needed, up to `drain_timeout_ms`
// without progress) and then nothing — what `duet stream
// --drain` needs.
//
// Errors: NotFound when the topic does not exist; Unavailable when the brokers cannot be reached
// at open, or a fetch fails (the caller backs off, reopens and Seeks); while the brokers are down
// later, Poll returns nothing (librdkafka reconnects by itself) and the errors are logged;
// Corruption when a stored position is no longer in the topic (retention deleted messages before
// they were processed, or the topic was recreated) — never a silent jump; InvalidArgument for a
// malformed URI or positions of another topic. New partitions added to the topic are read after
// a restart.
//
// Positions() text (version 1):
//   duet-kafka-log v1\n<topic>\n then one line per partition read from: <partition>\t<next
//   offset>\n
// A partition not named starts at the oldest message the topic still has.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "log/file_log.h"
#include "log/log.h"
#include "util/result.h"

namespace duet::log {

struct KafkaSource {
  std::string brokers;  // HOST:PORT[,HOST:PORT...]
  std::string topic;
};

// Parses kafka://HOST:PORT[,HOST:PORT...]/TOPIC. InvalidArgument naming the expected form.
Result<KafkaSource> ParseKafkaUri(std::string_view uri);

struct KafkaLogOptions {
  std::string group = "duet-stream";  // the consumer's group.id (offsets are not committed)
  size_t max_line = kDefaultMaxLine;
  int poll_wait_ms = 100;
  int drain_timeout_ms = 30000;
  int metadata_timeout_ms = 10000;
};

Result<std::unique_ptr<Log>> OpenKafkaLog(const KafkaSource& source,
                                          const KafkaLogOptions& options = {});

// The Positions() text of a KafkaLog over `topic` that continues at next[p] in each partition p
// listed (0 for the others): for a consumer that derives its positions from its own output,
// such as the archiver.
std::string KafkaPositions(const std::string& topic,
                           const std::vector<std::pair<int, int64_t>>& next);

// The (partition, next offset) pairs of a Positions() text of a KafkaLog over `topic`.
// InvalidArgument naming what is wrong (another topic, a malformed line).
Result<std::vector<std::pair<int, int64_t>>> ParseKafkaPositions(std::string_view topic,
                                                                 std::string_view positions);

// The partition of a KafkaLog record's source ("TOPIC/PARTITION"), or -1.
int KafkaPartitionOf(std::string_view source);

}  // namespace duet::log
