// librdkafka glue shared by every Kafka client of Duet (the speed layer's KafkaLog, the
// collector's producer, the archiver): librdkafka's own log lines and error events become Duet's
// structured JSON log lines ("kafka.log", "kafka.error") instead of free text on stderr.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

#include "util/log.h"
#include "util/result.h"

namespace duet::log {

void RouteKafkaLogs(rd_kafka_conf_t* conf);

// A new librdkafka configuration with `settings` applied and the logs routed (RouteKafkaLogs);
// the caller passes it to rd_kafka_new (which takes it on success) or destroys it.
// InvalidArgument naming the setting librdkafka refused, and why.
using KafkaSettings = std::vector<std::pair<const char*, std::string>>;
Result<rd_kafka_conf_t*> NewKafkaConf(const KafkaSettings& settings);

using KafkaSettings = std::vector<std::pair<const char*, std::string>>;

// What every Duet consumer sets: its offsets live with its results, never in Kafka; a start
// offset the topic no longer has is an error, never a silent jump; and it fetches far ahead
// while a micro-batch is processed (per partition up to 1 M messages or 128 MB: librdkafka's
// defaults, 100 k and 64 MB, measured 3.3 s instead of 2.4-2.7 s for 2 M beacons,
// docs/benchmarks.md).
inline KafkaSettings ConsumerSettings(const std::string& brokers, const std::string& group,
                                      const std::string& client_id) {
  return {
      {"bootstrap.servers", brokers},
      {"group.id", group},
      {"client.id", client_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},
      {"max.partition.fetch.bytes", "4194304"},
      {"queued.max.messages.kbytes", "131072"},
      {"queued.min.messages", "1000000"},
      {"log_level", "3"},
  };
}

inline void RouteKafkaLogs(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_log_cb(
      conf, [](const rd_kafka_t* rk, int level, const char* facility, const char* message) {
        ::duet::Log(level <= 3 ? LogLevel::kWarn : LogLevel::kInfo, "kafka.log",
                    {{"client", rd_kafka_name(rk)}, {"facility", facility}, {"message", message}});
      });
  rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t* rk, int err, const char* reason, void*) {
    ::duet::Log(LogLevel::kWarn, "kafka.error",
                {{"client", rd_kafka_name(rk)},
                 {"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))},
                 {"reason", reason}});
  });
}

inline Result<rd_kafka_conf_t*> NewKafkaConf(const KafkaSettings& settings) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument(std::string("kafka setting ") + name + "=" + value + ": " +
                                     err);
    }
  }
  RouteKafkaLogs(conf);
  return conf;
}

}  // namespace duet::log
