// librdkafka glue shared by every Kafka client of Duet (the speed layer's KafkaLog, the
// collector's producer, the archiver): librdkafka's own log lines and error events become Duet's
// structured JSON log lines ("kafka.log", "kafka.error") instead of free text on stderr.
#pragma once

#include <librdkafka/rdkafka.h>

#include "util/log.h"

namespace duet::log {

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

}  // namespace duet::log
