// KafkaGroupConsumer: a member of a Kafka consumer group reading one topic — how several
// `duet stream` processes share a topic's partitions. Built on librdkafka's consumer with the
// cooperative-sticky assignor: a rebalance moves only the partitions that must move.
//
// Positions are the caller's, never Kafka's: offsets are not committed to Kafka. When the group
// gives this member a partition, the PartitionListener says where to start it (the offset stored
// with the caller's results); when it takes one away, the listener hears of it before any other
// member can be given it. So "store results with their offsets, start each assigned partition
// there" is exactly once across crashes and rebalances (docs/kafka.md, "Consumer groups").
//
// Records: as KafkaLog's (log/kafka_log.h): source "TOPIC/PARTITION", offset, line = offset + 1,
// payload copied with kLinePadding bytes after it, truncated to max_line.
//
// Threading: not thread-safe; the listener is called from inside Poll and Close, on the caller's
// thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "log/file_log.h"
#include "log/kafka_log.h"
#include "log/log.h"
#include "util/result.h"

namespace duet::log {

// Where an assigned partition starts when nothing is stored for it: the oldest message the topic
// still has.
inline constexpr int64_t kFromOldest = -1;

class PartitionListener {
 public:
  virtual ~PartitionListener() = default;
  // This member now owns `partition`: return the offset to read it from (or kFromOldest). An
  // error (the store is down, say) leaves the partition held: assigned but not read until the
  // caller Starts it.
  virtual Result<int64_t> OnAssigned(int partition) = 0;
  // This member no longer owns `partition` (a rebalance, or Close). No record of it is returned
  // after this call, unless it is assigned again.
  virtual void OnRevoked(int partition) = 0;
};

struct KafkaGroupOptions {
  std::string group = "duet-stream";
  std::string client_id = "duet-stream";
  size_t max_line = kDefaultMaxLine;
  int poll_wait_ms = 100;
  int metadata_timeout_ms = 10000;
  // How long the group waits for a member that stopped answering (a SIGKILLed process) before
  // giving its partitions to the others.
  int session_timeout_ms = 10000;
};

class KafkaGroupConsumer {
 public:
  virtual ~KafkaGroupConsumer() = default;

  // Appends what has arrived from the owned partitions that are not held, up to max_records, to
  // *out (cleared first; records valid until the next Poll), waiting up to poll_wait_ms for the
  // first. Joining the group, assignments and revocations happen inside Poll, through the
  // listener. Unavailable when reading fails (the caller backs off and polls again); Corruption
  // when a partition's start offset is no longer in the topic (never a silent jump).
  virtual Status Poll(size_t max_records, std::vector<LogRecord>* out) = 0;

  // Stops reading `partition` until Start (e.g. while its results cannot be stored). Records of
  // it already read but not yet returned are dropped.
  virtual void Hold(int partition) = 0;
  // Reads `partition` from `offset` (kFromOldest: the oldest message) from now on, also after a
  // Hold. Unavailable if librdkafka refused the seek.
  virtual Status Start(int partition, int64_t offset) = 0;

  struct Owned {
    int partition = 0;
    int64_t next = 0;  // the offset of the next record to return (-1: not known yet)
    int64_t end = 0;   // the partition's end offset when it was assigned
    bool held = false;
    // The partition's end offset now, as last reported by the broker to this consumer's
    // background fetches (librdkafka's cached high watermark: no request is made); -1 while not
    // known yet. The lag of the member is high - next.
    int64_t high = -1;
  };
  // The partitions this member owns now, by partition.
  virtual std::vector<Owned> Assignment() const = 0;

  // Leaves the group: every owned partition is revoked through the listener first.
  virtual void Close() = 0;
};

// Joins the group on the first Poll. NotFound when the topic does not exist; Unavailable when
// the brokers cannot be reached; InvalidArgument for a setting librdkafka refuses. `listener`
// must outlive the consumer.
Result<std::unique_ptr<KafkaGroupConsumer>> OpenKafkaGroupConsumer(const KafkaSource& source,
                                                                   const KafkaGroupOptions& options,
                                                                   PartitionListener* listener);

}  // namespace duet::log
