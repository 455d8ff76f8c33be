// Internal to the log module: turning librdkafka messages into LogRecords, shared by KafkaLog
// and KafkaGroupConsumer. Payloads are copied next to each other into blocks that stay put until
// Reset, each followed by kLinePadding zero bytes (for in-place JSON parsing).
#pragma once

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "log/file_log.h"
#include "log/log.h"
#include "util/line_reader.h"
#include "util/result.h"

namespace duet::log {

// The number of partitions of `topic`: NotFound when it does not exist, Unavailable when the
// brokers do not answer within timeout_ms.
inline Result<int> TopicPartitionCount(rd_kafka_t* rk, const std::string& brokers,
                                       const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Status::Unavailable("kafka " + brokers + ": cannot read metadata of topic " + topic +
                               ": " + rd_kafka_err2str(e));
  }
  const bool exists = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                      md->topics[0].partition_cnt > 0;
  const int count = exists ? md->topics[0].partition_cnt : 0;
  Status missing;
  if (!exists) {
    missing = Status::NotFound(
        "kafka " + brokers + ": topic " + topic + " does not exist (" +
        (md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no data") + ")");
  }
  rd_kafka_metadata_destroy(md);
  if (!exists) return missing;
  return count;
}

// A consumer made from `conf` (taken, also on failure) whose messages and error events are read
// from one queue, *queue. InvalidArgument with librdkafka's reason.
inline Status NewConsumer(rd_kafka_conf_t* conf, rd_kafka_t** rk, rd_kafka_queue_t** queue) {
  char err[512];
  *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));  // takes conf on success
  if (*rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(std::string("kafka consumer: ") + err);
  }
  // Error events (broker down, offset out of range) go to the consumer queue too.
  rd_kafka_poll_set_consumer(*rk);
  *queue = rd_kafka_queue_get_consumer(*rk);
  return Status::Ok();
}

class KafkaRecordArena {
 public:
  // Forgets every record added (their bytes may be overwritten from now on).
  void Reset() {
    block_ = 0;
    used_ = 0;
  }

  // Appends message `m` (which must not be an error event) to *out as a record of `source`,
  // truncated to max_line bytes.
  void Add(const rd_kafka_message_t* m, std::string_view source, size_t max_line,
           std::vector<LogRecord>* out) {
    const size_t full = m->len;
    const size_t keep = std::min(full, max_line);
    char* dst = Reserve(keep + kLinePadding);
    if (keep > 0) std::memcpy(dst, m->payload, keep);
    std::memset(dst + keep, 0, kLinePadding);
    LogRecord& r = out->emplace_back();
    r.bytes = std::string_view(dst, keep);
    r.source = source;
    r.line = static_cast<uint64_t>(m->offset) + 1;
    r.offset = static_cast<uint64_t>(m->offset);
    r.full_length = full;
    r.truncated = full > max_line;
    rd_kafka_timestamp_type_t type;
    const int64_t ts = rd_kafka_message_timestamp(m, &type);
    r.timestamp_ms = ts > 0 ? ts : 0;
  }

 private:
  static constexpr size_t kBlockBytes = 4 << 20;

  // `n` bytes that stay put until Reset.
  char* Reserve(size_t n) {
    const size_t size = std::max(kBlockBytes, n);
    while (true) {
      if (block_ == blocks_.size()) {
        blocks_.emplace_back(std::make_unique_for_overwrite<char[]>(size), size);
        used_ = 0;
      }
      auto& [data, cap] = blocks_[block_];
      if (cap - used_ >= n) {
        char* p = data.get() + used_;
        used_ += n;
        return p;
      }
      ++block_;
      used_ = 0;
    }
  }

  std::vector<std::pair<std::unique_ptr<char[]>, size_t>> blocks_;
  size_t block_ = 0;
  size_t used_ = 0;
};

}  // namespace duet::log
