// The collector: an HTTP/1.1 server (Boost.Beast, keep-alive, all cores) that accepts beacons
// and produces them to Kafka, keyed by visitor — the first hop of the pipeline.
//
// POST /v1/beacons with one JSON beacon, a JSON array of beacons (application/json) or NDJSON
// (application/x-ndjson or application/ndjson). Envelope checks only: a body over the limit is
// 413, another content type 415; a line that is not valid JSON is produced as it is and becomes a
// bad row downstream (with its reason and payload), never a rejected request. The answer is 202
// only once the broker acknowledged every beacon of the request (idempotent producer,
// acks=all); when Kafka cannot take them (the bounded producer queue is full, or delivery times
// out) it is 503 with Retry-After — an acknowledged beacon is never lost, and a retried request
// is deduplicated downstream by id. Beyond max_in_flight requests received and not yet answered,
// a request is answered 429 with Retry-After from its header, its body dropped unparsed and
// nothing produced (overload control: collect/overload.h, docs/overload.md). A 429 or 503 never
// means "accepted"; after a 503 some of the request's beacons may be in Kafka anyway.
//
// GET /healthz (the process serves), /readyz (a broker answered within the last few seconds; not
// turned 503 by shedding, see docs/overload.md), /metrics (Prometheus text).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace duet::collect {

enum class BodyType {
  kJson,    // one JSON value; an array is split into its elements
  kNdjson,  // one beacon per line
};

// The body's type from a Content-Type header value (parameters such as charset are ignored);
// NotSupported naming the accepted types otherwise.
Result<BodyType> ParseContentType(std::string_view content_type);

// One beacon to produce: its bytes (one line, no '\n') and its Kafka key (the visitor, or empty
// when the line has no readable visitor).
struct Message {
  std::string value;
  std::string key;
};

// Splits a request body into messages. kJson: a valid array gives one message per element
// (re-serialized without whitespace), any other valid value one message (likewise); a body that
// is not valid JSON is split like NDJSON. kNdjson: one message per line, the final '\n' ending
// the last line (no empty line after it); a trailing '\r' is kept (the parser treats it as
// whitespace), and an empty line is a message too (a line.empty bad row downstream, as in a
// master-dataset file). Never fails: what cannot be parsed is produced as it is, for the speed
// and batch layers to count as a bad row.
std::vector<Message> SplitBody(std::string_view body, BodyType type);

struct CollectorOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port (see Collector::port)
  std::string brokers;
  std::string topic;
  int threads = 0;                         // HTTP threads; 0 = number of cores
  size_t max_body_bytes = 1 << 20;         // larger bodies get 413
  size_t max_buffered_messages = 100'000;  // producer queue bound; beyond it, 503
  int delivery_timeout_ms = 10'000;        // a beacon not acknowledged by then: 503
  // POST /v1/beacons requests received (header read) and not yet answered; beyond it, 429 with
  // Retry-After before the body is parsed. Memory held by requests is at most about
  // max_in_flight × 3 × max_body_bytes (body, split beacons, producer copy).
  int64_t max_in_flight = 256;
  int retry_after_s = 5;
};

class Collector {
 public:
  // Binds, connects the producer and starts serving on background threads. InvalidArgument for
  // bad options, IoError when the address cannot be bound.
  static Result<std::unique_ptr<Collector>> Start(const CollectorOptions& options);
  virtual ~Collector() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting, answers what is in flight, flushes the producer (up to the delivery
  // timeout) and returns.
  virtual void Stop() = 0;
};

}  // namespace duet::collect
