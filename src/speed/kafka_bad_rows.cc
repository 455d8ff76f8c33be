#include "speed/kafka_bad_rows.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <string>

#include "beacon/beacon.h"
#include "log/kafka_conf.h"

namespace duet::speed {
namespace {

struct Deliveries {
  std::atomic<int64_t> failed{0};
  // Written by delivery reports, which run in Put's thread (rd_kafka_flush / rd_kafka_poll).
  rd_kafka_resp_err_t first_code = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string first_error;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<Deliveries*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && d->failed.fetch_add(1) == 0) {
    d->first_code = m->err;
    d->first_error = rd_kafka_err2str(m->err);
  }
}

// Failures that retrying the micro-batch can cure (the broker is slow or away).
bool Transient(rd_kafka_resp_err_t e) {
  switch (e) {
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
      return true;
    default:
      return false;
  }
}

class KafkaBadRowSink final : public BadRowSink {
 public:
  KafkaBadRowSink(std::string topic, int timeout_ms)
      : topic_(std::move(topic)), timeout_ms_(timeout_ms) {}
  ~KafkaBadRowSink() override {
    if (rk_ != nullptr) {
      rd_kafka_flush(rk_, timeout_ms_);
      rd_kafka_destroy(rk_);
    }
  }

  Status Open(const std::string& brokers) {
    char err[512];
    auto made = log::NewKafkaConf({
        {"bootstrap.servers", brokers},
        {"client.id", "duet-stream-bad-rows"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"message.timeout.ms", std::to_string(timeout_ms_)},
        {"log_level", "3"},
    });
    if (!made.ok()) return made.status();
    rd_kafka_conf_t* conf = *made;
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_conf_set_opaque(conf, &deliveries_);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument(std::string("kafka producer: ") + err);
    }
    // Warm up: connect and learn the topic now, while the consumer joins its group, instead of
    // in the first micro-batch's Put (measured: ~0.9 s there). A failure is not an error here:
    // Put reports what matters.
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk_, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return Status::Ok();
  }

  Status Put(std::span<const core::BadRow> rows) override {
    deliveries_.failed = 0;
    deliveries_.first_code = RD_KAFKA_RESP_ERR_NO_ERROR;
    deliveries_.first_error.clear();
    char fatal[256];
    if (rd_kafka_fatal_error(rk_, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not retried: every produce would fail the same way. Restarting the process recovers.
      return Status::IoError("kafka topic " + topic_ + ": the bad-row producer failed for good (" +
                             fatal + "); restart duet stream");
    }
    for (const core::BadRow& r : rows) {
      const std::string key = r.source + "@" + std::to_string(r.offset);
      const std::string_view reason = beacon::ReasonName(r.reason);
      const std::string offset = std::to_string(r.offset);
      const std::string length = std::to_string(r.length);
      const char* truncated = r.truncated ? "true" : "false";
      rd_kafka_resp_err_t e;
      while (true) {
        e = rd_kafka_producev(
            rk_, RD_KAFKA_V_TOPIC(topic_.c_str()),
            RD_KAFKA_V_VALUE(const_cast<char*>(r.payload.data()), r.payload.size()),
            RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("reason", reason.data(), static_cast<ssize_t>(reason.size())),
            RD_KAFKA_V_HEADER("source", r.source.data(), static_cast<ssize_t>(r.source.size())),
            RD_KAFKA_V_HEADER("offset", offset.data(), static_cast<ssize_t>(offset.size())),
            RD_KAFKA_V_HEADER("length", length.data(), static_cast<ssize_t>(length.size())),
            RD_KAFKA_V_HEADER("truncated", truncated, -1), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk_, 100);  // the queue drains as the broker acknowledges
      }
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return Status::Unavailable("kafka topic " + topic_ +
                                   ": cannot queue a bad row: " + rd_kafka_err2str(e));
      }
    }
    if (rd_kafka_flush(rk_, timeout_ms_) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Status::Unavailable("kafka topic " + topic_ + ": bad rows not acknowledged within " +
                                 std::to_string(timeout_ms_) + " ms");
    }
    if (deliveries_.failed.load() > 0) {
      const std::string what = "kafka topic " + topic_ + ": " +
                               std::to_string(deliveries_.failed.load()) +
                               " bad rows were not delivered (" + deliveries_.first_error + ")";
      if (Transient(deliveries_.first_code)) return Status::Unavailable(what);
      // E.g. the topic does not exist and the brokers do not create topics, or access is
      // denied: retrying would stop the stream for ever, so say what to do instead.
      return Status::InvalidArgument(what + "; create the topic, or run with --bad-topic none");
    }
    return Status::Ok();
  }

 private:
  const std::string topic_;
  const int timeout_ms_;
  rd_kafka_t* rk_ = nullptr;
  Deliveries deliveries_;
};

}  // namespace

Result<std::unique_ptr<BadRowSink>> OpenKafkaBadRowSink(const std::string& brokers,
                                                        const std::string& topic, int timeout_ms) {
  auto sink = std::make_unique<KafkaBadRowSink>(topic, timeout_ms);
  DUET_RETURN_IF_ERROR(sink->Open(brokers));
  return std::unique_ptr<BadRowSink>(std::move(sink));
}

}  // namespace duet::speed
