// librdkafka glue shared by every Kafka client of Duet (the speed layer's KafkaLog, the
// collector's producer, the archiver): librdkafka's own log lines and error events become Duet's
// structured JSON log lines ("kafka.log", "kafka.error") instead of free text on stderr.
#pragma once

#include <librdkafka/rdkafka.h>

#include <initializer_list>
#include <string>
#include <utility>

#include "util/log.h"
#include "util/result.h"

namespace duet::log {

void RouteKafkaLogs(rd_kafka_conf_t* conf);

// A new librdkafka configuration with `settings` applied and the logs routed (RouteKafkaLogs);
// the caller passes it to rd_kafka_new (which takes it on success) or destroys it.
// InvalidArgument naming the setting librdkafka refused, and why.
Result<rd_kafka_conf_t*> NewKafkaConf(
    std::initializer_list<std::pair<const char*, std::string>> settings);

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

inline Result<rd_kafka_conf_t*> NewKafkaConf(
    std::initializer_list<std::pair<const char*, std::string>> settings) {
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
