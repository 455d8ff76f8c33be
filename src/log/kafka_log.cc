#include "log/kafka_log.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "log/kafka_conf.h"
#include "log/kafka_records.h"
#include "util/line_reader.h"

namespace duet::log {
namespace {

constexpr std::string_view kHeader = "duet-kafka-log v1\n";

Status InvalidUri(std::string_view uri, std::string_view why) {
  return Status::InvalidArgument("kafka source '" + std::string(uri) + "': " + std::string(why) +
                                 " (expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC)");
}

bool ValidTopic(std::string_view t) {
  if (t.empty() || t.size() > 249 || t == "." || t == "..") return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

class KafkaLog final : public Log {
 public:
  KafkaLog(KafkaSource source, KafkaLogOptions options)
      : source_(std::move(source)), options_(std::move(options)) {}

  ~KafkaLog() override {
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    if (rk_ != nullptr) {
      rd_kafka_consumer_close(rk_);
      rd_kafka_destroy(rk_);
    }
  }

  Status Open() {
    KafkaSettings settings = ConsumerSettings(source_.brokers, options_.group, "duet-stream");
    // A stored position the topic no longer has is reported by Take as Corruption.
    settings.emplace_back("enable.partition.eof", "true");
    auto made = NewKafkaConf(settings);
    if (!made.ok()) return made.status();
    rd_kafka_conf_t* conf = *made;
    DUET_RETURN_IF_ERROR(NewConsumer(conf, &rk_, &queue_));
    batch_.resize(4096);
    DUET_RETURN_IF_ERROR(LoadPartitions());
    next_.assign(partitions_, 0);
    positioned_.assign(partitions_, false);
    caught_up_.assign(partitions_, false);
    names_.clear();
    for (int p = 0; p < partitions_; ++p) names_.push_back(source_.topic + "/" + std::to_string(p));
    return Assign();
  }

  Status Poll(size_t max_records, bool final, std::vector<LogRecord>* out) override {
    out->clear();
    arena_.Reset();
    if (broken_ && !Assign().ok()) {
      return Status::Unavailable("kafka topic " + source_.topic + ": cannot assign its partitions");
    }
    if (final && end_.empty()) DUET_RETURN_IF_ERROR(FixEnd());
    const auto deadline_without_progress = std::chrono::milliseconds(options_.drain_timeout_ms);
    auto last_progress = std::chrono::steady_clock::now();
    bool first = true;
    while (out->size() < max_records) {
      if (final && Drained()) break;
      // Without `final`: wait once for the first messages, then take only what has arrived.
      const int wait = final ? 100 : (first ? options_.poll_wait_ms : 0);
      first = false;
      const size_t want = std::min(max_records - out->size(), batch_.size());
      const ssize_t n = rd_kafka_consume_batch_queue(queue_, wait, batch_.data(), want);
      if (n < 0) {
        return Failed(out, Status::Unavailable("kafka topic " + source_.topic + ": " +
                                               rd_kafka_err2str(rd_kafka_last_error())));
      }
      if (n == 0) {
        if (!final) break;
        if (std::chrono::steady_clock::now() - last_progress > deadline_without_progress) {
          return Failed(out,
                        Status::Unavailable("kafka " + source_.brokers +
                                            ": no progress towards the end "
                                            "offsets of topic " +
                                            source_.topic + " for " +
                                            std::to_string(options_.drain_timeout_ms) + " ms"));
        }
        continue;
      }
      Status failed = Status::Ok();
      const size_t before = out->size();
      for (ssize_t i = 0; i < n; ++i) {
        rd_kafka_message_t* m = batch_[i];
        if (failed.ok()) failed = Take(m, final, out);
        rd_kafka_message_destroy(m);
      }
      if (!failed.ok()) return Failed(out, failed);
      if (out->size() > before) last_progress = std::chrono::steady_clock::now();
    }
    return Status::Ok();
  }

  // One consumed message or event: a record appended to *out, or an event noted.
  Status Take(const rd_kafka_message_t* m, bool final, std::vector<LogRecord>* out) {
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Caught up on one partition; others may have more.
      if (m->partition >= 0 && m->partition < partitions_ && m->offset >= next_[m->partition]) {
        caught_up_[m->partition] = true;
      }
      return Status::Ok();
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string what = rd_kafka_message_errstr(m);
      // A dropped broker connection: librdkafka reconnects by itself (with
      // rd_kafka_poll_set_consumer these normally reach the error callback, not this queue).
      if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT || m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        return Status::Ok();
      }
      // Only for a partition we hold a position in: a topic created a moment ago can answer
      // "unknown partition" to the first offset lookup, which librdkafka also reports so.
      if ((m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
           m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) &&
          m->partition >= 0 && m->partition < partitions_ && positioned_[m->partition]) {
        return Status::Corruption(
            "kafka topic " + source_.topic + " partition " + std::to_string(m->partition) +
            ": the stored position is no longer in the topic (" + what +
            "); messages were deleted by retention before they were processed, or the topic "
            "was recreated. Start from an empty store to read it from its beginning.");
      }
      if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        return Status::NotFound("kafka topic " + source_.topic + ": " + what);
      }
      return Status::Unavailable("kafka topic " + source_.topic + ": " + what);
    }
    const int p = m->partition;
    if (p < 0 || p >= partitions_ || m->offset < next_[p]) return Status::Ok();  // a re-delivery
    if (final && m->offset >= end_[p]) return Status::Ok();  // after the end fixed for the drain
    Emit(m, out);
    return Status::Ok();
  }

  std::vector<SourceState> Sources() const override {
    std::vector<SourceState> out;
    for (int p = 0; p < partitions_; ++p) {
      // While draining, a partition is caught up once it reached the end fixed for the drain.
      const bool done = caught_up_[p] || (!end_.empty() && next_[p] >= end_[p]);
      out.push_back(SourceState{names_[p], done});
    }
    return out;
  }

  std::string Positions() const override {
    std::string s(kHeader);
    s.append(source_.topic).push_back('\n');
    for (int p = 0; p < partitions_; ++p) {
      if (!positioned_[p]) continue;  // nothing read yet: a restart starts it at the beginning
      s.append(std::to_string(p)).push_back('\t');
      s.append(std::to_string(next_[p])).push_back('\n');
    }
    return s;
  }

  Status Seek(std::string_view positions) override {
    auto parsed = ParseKafkaPositions(source_.topic, positions);
    if (!parsed.ok()) return parsed.status();
    std::vector<int64_t> next(partitions_, 0);
    std::vector<bool> positioned(partitions_, false);
    for (const auto& [p, off] : *parsed) {
      if (p >= partitions_) {
        return Status::InvalidArgument("kafka log positions: partition " + std::to_string(p) +
                                       " but topic " + source_.topic + " has " +
                                       std::to_string(partitions_) + " (partitions were removed?)");
      }
      next[p] = off;
      positioned[p] = true;
    }
    next_ = std::move(next);
    positioned_ = std::move(positioned);
    end_.clear();
    caught_up_.assign(partitions_, false);
    return Assign();
  }

 private:
  Status LoadPartitions() {
    auto n = TopicPartitionCount(rk_, source_.brokers, source_.topic, options_.metadata_timeout_ms);
    if (!n.ok()) return n.status();
    partitions_ = *n;
    return Status::Ok();
  }

  Status Assign() {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions_);
    for (int p = 0; p < partitions_; ++p) {
      // A partition no position names starts at the oldest message the topic still has.
      rd_kafka_topic_partition_list_add(list, source_.topic.c_str(), p)->offset =
          positioned_[p] ? next_[p] : RD_KAFKA_OFFSET_BEGINNING;
    }
    const rd_kafka_resp_err_t e = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    broken_ = e != RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("kafka topic " + source_.topic +
                                 ": assign failed: " + rd_kafka_err2str(e));
    }
    return Status::Ok();
  }

  // The drain's end: every partition's high-water mark now.
  Status FixEnd() {
    std::vector<int64_t> end(partitions_, 0);
    for (int p = 0; p < partitions_; ++p) {
      int64_t low = 0, high = 0;
      const rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
          rk_, source_.topic.c_str(), p, &low, &high, options_.metadata_timeout_ms);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return Status::Unavailable("kafka topic " + source_.topic + " partition " +
                                   std::to_string(p) +
                                   ": cannot read its end offset: " + rd_kafka_err2str(e));
      }
      end[p] = high;
      // Never read and emptied by retention: nothing before `high` is left to wait for.
      if (!positioned_[p] && next_[p] < low) next_[p] = low;
    }
    end_ = std::move(end);
    return Status::Ok();
  }

  bool Drained() const {
    for (int p = 0; p < partitions_; ++p) {
      if (next_[p] < end_[p]) return false;
    }
    return true;
  }

  void Emit(const rd_kafka_message_t* m, std::vector<LogRecord>* out) {
    arena_.Add(m, names_[m->partition], options_.max_line, out);
    next_[m->partition] = m->offset + 1;
    positioned_[m->partition] = true;
    caught_up_[m->partition] = false;
  }

  Status Failed(std::vector<LogRecord>* out, Status s) {
    // Nothing is returned, so no position may move: re-assign from the last returned offsets.
    for (const LogRecord& r : *out) {
      const int p = PartitionOf(r.source);
      if (p >= 0 && static_cast<int64_t>(r.offset) < next_[p]) {
        next_[p] = static_cast<int64_t>(r.offset);
        caught_up_[p] = false;
      }
    }
    out->clear();
    (void)Assign();
    return s;
  }

  int PartitionOf(std::string_view source) const {
    for (int p = 0; p < partitions_; ++p) {
      if (names_[p] == source) return p;
    }
    return -1;
  }

  const KafkaSource source_;
  const KafkaLogOptions options_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;  // the consumer queue, read in batches
  std::vector<rd_kafka_message_t*> batch_;
  int partitions_ = 0;
  std::vector<int64_t> next_;     // per partition: the offset of the next message to return
  std::vector<int64_t> end_;      // per partition: the drain's end (empty until a final Poll)
  std::vector<bool> caught_up_;   // per partition: at its end when last polled
  std::vector<bool> positioned_;  // per partition: next_ is a real position (else: beginning)
  bool broken_ = false;           // the last assign failed: positions are unknown
  std::vector<std::string> names_;
  KafkaRecordArena arena_;
};

}  // namespace

Result<KafkaSource> ParseKafkaUri(std::string_view uri) {
  constexpr std::string_view kScheme = "kafka://";
  if (uri.substr(0, kScheme.size()) != kScheme) return InvalidUri(uri, "not a kafka:// URI");
  const std::string_view rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return InvalidUri(uri, "no topic");
  KafkaSource s{std::string(rest.substr(0, slash)), std::string(rest.substr(slash + 1))};
  if (s.brokers.empty()) return InvalidUri(uri, "no broker");
  size_t start = 0;
  while (start <= s.brokers.size()) {
    const size_t comma = std::min(s.brokers.find(',', start), s.brokers.size());
    const std::string_view b = std::string_view(s.brokers).substr(start, comma - start);
    const size_t colon = b.rfind(':');
    if (b.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == b.size() ||
        !std::all_of(b.begin() + colon + 1, b.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidUri(uri, "broker '" + std::string(b) + "' is not HOST:PORT");
    }
    start = comma + 1;
  }
  if (!ValidTopic(s.topic)) {
    return InvalidUri(
        uri, "topic '" + s.topic + "' is not a Kafka topic name (1-249 of [a-zA-Z0-9._-])");
  }
  return s;
}

std::string KafkaPositions(const std::string& topic,
                           const std::vector<std::pair<int, int64_t>>& next) {
  std::string s(kHeader);
  s.append(topic).push_back('\n');
  for (const auto& [p, offset] : next) {
    s.append(std::to_string(p)).push_back('\t');
    s.append(std::to_string(offset)).push_back('\n');
  }
  return s;
}

Result<std::vector<std::pair<int, int64_t>>> ParseKafkaPositions(std::string_view topic,
                                                                 std::string_view positions) {
  const auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("kafka log positions: " + std::string(why));
  };
  if (positions.substr(0, kHeader.size()) != kHeader) return bad("not a duet-kafka-log v1 text");
  std::string_view rest = positions.substr(kHeader.size());
  const size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return bad("no topic line");
  if (rest.substr(0, nl) != topic) {
    return bad("they belong to topic '" + std::string(rest.substr(0, nl)) + "', not '" +
               std::string(topic) + "'");
  }
  rest.remove_prefix(nl + 1);
  std::vector<std::pair<int, int64_t>> out;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    if (end == std::string_view::npos) return bad("unterminated line");
    const std::string line(rest.substr(0, end));
    rest.remove_prefix(end + 1);
    long long p = -1, off = -1;
    char tail = 0;
    if (std::sscanf(line.c_str(), "%lld\t%lld%c", &p, &off, &tail) != 2 || p < 0 || off < 0 ||
        p > 1'000'000) {
      return bad("cannot read '" + line + "'");
    }
    out.emplace_back(static_cast<int>(p), off);
  }
  return out;
}

int KafkaPartitionOf(std::string_view source) {
  const size_t slash = source.rfind('/');
  if (slash == std::string_view::npos || slash + 1 == source.size()) return -1;
  int p = 0;
  for (const char c : source.substr(slash + 1)) {
    if (c < '0' || c > '9' || p > 100'000'000) return -1;
    p = p * 10 + (c - '0');
  }
  return p;
}

Result<std::unique_ptr<Log>> OpenKafkaLog(const KafkaSource& source,
                                          const KafkaLogOptions& options) {
  if (options.max_line == 0) return Status::InvalidArgument("max_line must be positive");
  auto log = std::make_unique<KafkaLog>(source, options);
  DUET_RETURN_IF_ERROR(log->Open());
  return std::unique_ptr<Log>(std::move(log));
}

}  // namespace duet::log
