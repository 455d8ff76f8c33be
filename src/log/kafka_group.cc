#include "log/kafka_group.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <string_view>

#include "log/kafka_conf.h"
#include "log/kafka_records.h"
#include "log/offset_cursor.h"
#include "util/log.h"

namespace duet::log {
namespace {

class GroupConsumer final : public KafkaGroupConsumer {
 public:
  GroupConsumer(KafkaSource source, KafkaGroupOptions options, PartitionListener* listener)
      : source_(std::move(source)), options_(std::move(options)), listener_(listener) {}

  ~GroupConsumer() override {
    Close();
    if (queue_ != nullptr) rd_kafka_queue_destroy(queue_);
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  Status Open() {
    const int session = options_.session_timeout_ms;
    KafkaSettings settings = ConsumerSettings(source_.brokers, options_.group, options_.client_id);
    settings.emplace_back("partition.assignment.strategy", "cooperative-sticky");
    settings.emplace_back("session.timeout.ms", std::to_string(session));
    settings.emplace_back("heartbeat.interval.ms", std::to_string(std::max(100, session / 4)));
    auto made = NewKafkaConf(settings);
    if (!made.ok()) return made.status();
    rd_kafka_conf_t* conf = *made;
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_rebalance_cb(
        conf, [](rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                 void* self) { static_cast<GroupConsumer*>(self)->Rebalance(err, parts); });
    DUET_RETURN_IF_ERROR(NewConsumer(conf, &rk_, &queue_));
    batch_.resize(4096);
    names_.clear();
    auto n = TopicPartitionCount(rk_, source_.brokers, source_.topic, options_.metadata_timeout_ms);
    if (!n.ok()) return n.status();
    for (int p = 0; p < *n; ++p) names_.push_back(source_.topic + "/" + std::to_string(p));
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, source_.topic.c_str(), RD_KAFKA_PARTITION_UA);
    const rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("kafka topic " + source_.topic +
                                 ": subscribe failed: " + rd_kafka_err2str(e));
    }
    return Status::Ok();
  }

  Status Poll(size_t max_records, std::vector<LogRecord>* out) override {
    out->clear();
    arena_.Reset();
    out_ = out;
    fatal_ = Status::Ok();
    bool first = true;
    while (out->size() < max_records && fatal_.ok()) {
      // Wait once for the first messages, then take only what has arrived.
      const int wait = first ? options_.poll_wait_ms : 0;
      first = false;
      const size_t want = std::min(max_records - out->size(), batch_.size());
      const ssize_t n = rd_kafka_consume_batch_queue(queue_, wait, batch_.data(), want);
      if (n < 0) {
        // Not returned by librdkafka 2.0 for a consumer queue. Were it to happen, the records
        // taken so far have moved positions: fatal, so that a restart reads from the store.
        out_ = nullptr;
        out->clear();
        return Status::IoError("kafka topic " + source_.topic + ": reading failed (" +
                               rd_kafka_err2str(rd_kafka_last_error()) + "); restart duet stream");
      }
      if (n == 0) break;
      ++batch_number_;
      for (ssize_t i = 0; i < n; ++i) {
        if (fatal_.ok()) Take(batch_[i], out);
        rd_kafka_message_destroy(batch_[i]);
      }
    }
    out_ = nullptr;
    if (!fatal_.ok()) out->clear();
    return fatal_;
  }

  void Hold(int partition) override {
    auto it = owned_.find(partition);
    if (it == owned_.end() || it->second.held) return;
    it->second.held = true;
    rd_kafka_topic_partition_list_t* list = List(partition, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_pause_partitions(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    DropFromOut(partition);
  }

  Status Start(int partition, int64_t offset) override {
    auto it = owned_.find(partition);
    if (it == owned_.end()) {
      return Status::InvalidArgument("kafka topic " + source_.topic + ": partition " +
                                     std::to_string(partition) + " is not owned by this member");
    }
    rd_kafka_topic_partition_list_t* list =
        List(partition, offset == kFromOldest ? RD_KAFKA_OFFSET_BEGINNING : offset);
    rd_kafka_error_t* error = rd_kafka_seek_partitions(rk_, list, SeekTimeoutMs());
    rd_kafka_resp_err_t e = error != nullptr ? rd_kafka_error_code(error) : list->elems[0].err;
    if (error != nullptr) rd_kafka_error_destroy(error);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = rd_kafka_resume_partitions(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("kafka topic " + source_.topic + " partition " +
                                 std::to_string(partition) + ": cannot seek to " +
                                 (offset == kFromOldest ? std::string("its oldest offset")
                                                        : "offset " + std::to_string(offset)) +
                                 ": " + rd_kafka_err2str(e));
    }
    it->second.held = false;
    it->second.cursor.Start(offset == kFromOldest ? it->second.low : offset, offset == kFromOldest);
    DropFromOut(partition);
    return Status::Ok();
  }

  std::vector<Owned> Assignment() const override {
    std::vector<Owned> out;
    for (const auto& [p, s] : owned_) {
      int64_t low = -1, high = -1;
      if (rd_kafka_get_watermark_offsets(rk_, source_.topic.c_str(), p, &low, &high) !=
              RD_KAFKA_RESP_ERR_NO_ERROR ||
          high < 0) {
        high = -1;
      }
      out.push_back(Owned{p, s.cursor.next(), s.end, s.held, high});
    }
    return out;
  }

  void Close() override {
    if (rk_ == nullptr || closed_) return;
    closed_ = true;
    // Revokes the assignment through the rebalance callback, then leaves the group.
    rd_kafka_consumer_close(rk_);
    for (const auto& [p, s] : owned_) listener_->OnRevoked(p);
    owned_.clear();
  }

 private:
  struct State {
    OffsetCursor cursor;  // the next record to return
    int64_t low = 0;      // the oldest offset when assigned
    int64_t end = 0;      // the end offset when assigned
    bool held = false;
  };

  rd_kafka_topic_partition_list_t* List(int partition, int64_t offset) const {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, source_.topic.c_str(), partition)->offset = offset;
    return list;
  }

  // Records of `partition` already in the Poll's output are dropped: it was revoked, held or
  // moved, and whoever reads it next reads them again from its own position.
  void DropFromOut(int partition) {
    if (out_ == nullptr || partition < 0 || static_cast<size_t>(partition) >= names_.size()) return;
    const std::string_view name = names_[partition];
    std::erase_if(*out_, [&](const LogRecord& r) { return r.source == name; });
  }

  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
    const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk_), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      std::vector<int> held;
      for (int i = 0; i < parts->cnt; ++i) {
        rd_kafka_topic_partition_t& tp = parts->elems[i];
        const int p = tp.partition;
        if (p < 0) continue;
        if (static_cast<size_t>(p) >= names_.size()) {
          // A partition added to the topic since start.
          while (names_.size() <= static_cast<size_t>(p)) {
            names_.push_back(source_.topic + "/" + std::to_string(names_.size()));
          }
        }
        State s;
        int64_t low = 0, high = 0;
        const rd_kafka_resp_err_t we = rd_kafka_query_watermark_offsets(
            rk_, source_.topic.c_str(), p, &low, &high, options_.metadata_timeout_ms);
        if (we != RD_KAFKA_RESP_ERR_NO_ERROR) {
          ::duet::Log(
              LogLevel::kWarn, "kafka.watermarks",
              {{"topic", source_.topic}, {"partition", p}, {"error", rd_kafka_err2str(we)}});
          high = INT64_MAX;  // unknown: a drain waits for its timeout
        }
        s.low = low;
        s.end = high;
        Result<int64_t> start = listener_->OnAssigned(p);
        if (start.ok()) {
          tp.offset = *start == kFromOldest ? RD_KAFKA_OFFSET_BEGINNING : *start;
          s.cursor.Start(*start == kFromOldest ? low : *start, *start == kFromOldest);
        } else {
          ::duet::Log(
              LogLevel::kWarn, "kafka.partition_held",
              {{"topic", source_.topic}, {"partition", p}, {"error", start.status().ToString()}});
          tp.offset = RD_KAFKA_OFFSET_BEGINNING;  // replaced by Start's seek
          s.held = true;
          held.push_back(p);
        }
        owned_[p] = s;
      }
      rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
      if (cooperative) {
        rd_kafka_error_t* error = rd_kafka_incremental_assign(rk_, parts);
        if (error != nullptr) {
          e = rd_kafka_error_code(error);
          rd_kafka_error_destroy(error);
        }
      } else {
        e = rd_kafka_assign(rk_, parts);
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // The group believes this member owns partitions librdkafka does not read: nothing
        // would ever arrive for them. Undo and stop; a restart joins the group afresh.
        for (int i = 0; i < parts->cnt; ++i) {
          if (owned_.erase(parts->elems[i].partition) > 0) {
            listener_->OnRevoked(parts->elems[i].partition);
          }
        }
        fatal_ = Status::IoError("kafka topic " + source_.topic +
                                 ": cannot take the partitions the group assigned (" +
                                 rd_kafka_err2str(e) + "); restart duet stream");
        return;
      }
      // Only the held partitions are touched: resuming a partition that was never paused
      // moves its fetch position in librdkafka 2.0 (measured: messages skipped).
      for (const int p : held) {
        rd_kafka_topic_partition_list_t* list = List(p, RD_KAFKA_OFFSET_INVALID);
        rd_kafka_pause_partitions(rk_, list);
        rd_kafka_topic_partition_list_destroy(list);
      }
      return;
    }
    // Revoked, lost (the member was thrown out of the group), or an error: stop using them.
    const bool lost = rd_kafka_assignment_lost(rk_) != 0;
    for (int i = 0; i < parts->cnt; ++i) {
      const int p = parts->elems[i].partition;
      auto it = owned_.find(p);
      if (it == owned_.end()) continue;
      if (it->second.held) {
        // An application pause may outlive the revocation (librdkafka#1849): lift it, so that
        // a later assignment of the partition is read.
        rd_kafka_topic_partition_list_t* list = List(p, RD_KAFKA_OFFSET_INVALID);
        rd_kafka_resume_partitions(rk_, list);
        rd_kafka_topic_partition_list_destroy(list);
      }
      owned_.erase(it);
      DropFromOut(p);
      listener_->OnRevoked(p);
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      ::duet::Log(LogLevel::kWarn, "kafka.rebalance_error",
                  {{"topic", source_.topic}, {"error", rd_kafka_err2str(err)}});
    }
    if (lost) ::duet::Log(LogLevel::kWarn, "kafka.assignment_lost", {{"topic", source_.topic}});
    if (cooperative) {
      rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_, parts);
      if (error != nullptr) {
        ::duet::Log(LogLevel::kWarn, "kafka.unassign_failed",
                    {{"topic", source_.topic}, {"error", rd_kafka_error_string(error)}});
        rd_kafka_error_destroy(error);
      }
    } else {
      rd_kafka_assign(rk_, nullptr);
      for (const auto& [p, s] : owned_) listener_->OnRevoked(p);
      owned_.clear();
    }
  }

  // One consumed message or event.
  void Take(const rd_kafka_message_t* m, std::vector<LogRecord>* out) {
    const int p = m->partition;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
      const std::string what = rd_kafka_message_errstr(m);
      if ((m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
           m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) &&
          owned_.count(p) > 0) {
        fatal_ = Status::Corruption(
            "kafka topic " + source_.topic + " partition " + std::to_string(p) +
            ": the stored position is no longer in the topic (" + what +
            "); messages were deleted by retention before they were processed, or the topic "
            "was recreated. Start from an empty store to read it from its beginning.");
        return;
      }
      if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
          m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        fatal_ = Status::NotFound("kafka topic " + source_.topic + ": " + what);
        return;
      }
      if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
          m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        fatal_ = Status::InvalidArgument("kafka topic " + source_.topic + ", group " +
                                         options_.group + ": access denied (" + what + ")");
        return;
      }
      if (m->err == RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT) {
        fatal_ = Status::InvalidArgument("kafka group " + options_.group +
                                         ": the broker refuses --session-timeout " +
                                         std::to_string(options_.session_timeout_ms) +
                                         " ms (outside its group.min/max.session.timeout.ms)");
        return;
      }
      // Broker trouble: librdkafka reconnects by itself.
      ::duet::Log(LogLevel::kWarn, "kafka.consume_error",
                  {{"topic", source_.topic}, {"partition", p}, {"error", what}});
      return;
    }
    auto it = owned_.find(p);
    if (it == owned_.end() || it->second.held) return;  // not ours (any more), or held
    OffsetCursor& cursor = it->second.cursor;
    switch (cursor.Check(m->offset, batch_number_)) {
      case OffsetCursor::Verdict::kSkip:  // a re-delivery, or fetched before our seek
        return;
      case OffsetCursor::Verdict::kSeek:
        SeekBack(p, m->offset, &cursor);
        return;
      case OffsetCursor::Verdict::kTake:
        break;
    }
    if (cursor.IsGap(m->offset)) {
      ::duet::Log(
          LogLevel::kWarn, "kafka.offset_gap",
          {{"topic", source_.topic},
           {"partition", p},
           {"expected", cursor.next()},
           {"got", m->offset},
           {"why", "the topic has no record in between (transaction markers, compaction)"}});
    }
    arena_.Add(m, names_[p], options_.max_line, out);
    cursor.Took(m->offset);
  }

  // librdkafka fetched `partition` past the record this member must return next (a stale fetch
  // position after a rebalance, log/offset_cursor.h): seek back to it. When the seek fails, the
  // next record fetched tries again; nothing is returned past the gap meanwhile.
  void SeekBack(int partition, int64_t got, OffsetCursor* cursor) {
    const int64_t target = cursor->seek_target();
    rd_kafka_topic_partition_list_t* list =
        List(partition, target == OffsetCursor::kOldest ? RD_KAFKA_OFFSET_BEGINNING : target);
    rd_kafka_error_t* error = rd_kafka_seek_partitions(rk_, list, SeekTimeoutMs());
    rd_kafka_resp_err_t e = error != nullptr ? rd_kafka_error_code(error) : list->elems[0].err;
    if (error != nullptr) rd_kafka_error_destroy(error);
    rd_kafka_topic_partition_list_destroy(list);
    ::duet::Log(LogLevel::kWarn, "kafka.fetch_position_ahead",
                {{"topic", source_.topic},
                 {"partition", partition},
                 {"expected", cursor->next()},
                 {"got", got},
                 {"seek", e == RD_KAFKA_RESP_ERR_NO_ERROR ? "done" : rd_kafka_err2str(e)}});
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) cursor->Sought(batch_number_);
  }

  // librdkafka before 2.1.0 reads the seek timeout as microseconds (librdkafka#4230): scaled, or
  // a 10 s wait becomes 10 ms and a seek on a busy broker thread times out.
  int SeekTimeoutMs() const {
    return rd_kafka_version() < 0x020100ff ? options_.metadata_timeout_ms * 1000
                                           : options_.metadata_timeout_ms;
  }

  const KafkaSource source_;
  const KafkaGroupOptions options_;
  PartitionListener* const listener_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::vector<rd_kafka_message_t*> batch_;
  std::deque<std::string> names_;  // "TOPIC/P" by partition (stable: records point into it)
  std::map<int, State> owned_;
  std::vector<LogRecord>* out_ = nullptr;  // the output of the Poll in progress
  Status fatal_;
  bool closed_ = false;
  uint64_t batch_number_ = 0;  // reads from librdkafka so far (OffsetCursor's batches)
  KafkaRecordArena arena_;
};

}  // namespace

Result<std::unique_ptr<KafkaGroupConsumer>> OpenKafkaGroupConsumer(const KafkaSource& source,
                                                                   const KafkaGroupOptions& options,
                                                                   PartitionListener* listener) {
  if (options.max_line == 0) return Status::InvalidArgument("max_line must be positive");
  if (listener == nullptr) return Status::InvalidArgument("a PartitionListener is required");
  auto c = std::make_unique<GroupConsumer>(source, options, listener);
  DUET_RETURN_IF_ERROR(c->Open());
  return std::unique_ptr<KafkaGroupConsumer>(std::move(c));
}

}  // namespace duet::log
