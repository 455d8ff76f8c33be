// KafkaBadRowSink: copies the speed layer's bad rows to a Kafka topic (by default
// "<beacons topic>.bad"), so that producers of bad data can be told without access to the store.
// One message per bad row: the value is the original payload (as kept: truncated lines are cut
// at the contract's limit), the key "<source>@<offset>" identifies it (a micro-batch read again
// after a crash sends its bad rows again: at least once, deduplicate by key), and headers carry
// "reason" (the stable reason name), "source", "offset", "length" and "truncated".
// Put returns only once the broker acknowledged every message (idempotent producer, acks=all).
#pragma once

#include <memory>
#include <string>

#include "speed/speed_layer.h"
#include "util/result.h"

namespace duet::speed {

Result<std::unique_ptr<BadRowSink>> OpenKafkaBadRowSink(const std::string& brokers,
                                                        const std::string& topic,
                                                        int timeout_ms = 30000);

}  // namespace duet::speed
