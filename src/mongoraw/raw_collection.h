// Raw beacons in a MongoDB collection — the master dataset kept in MongoDB instead of a folder:
// `duet archive --out mongodb://HOST:PORT/DB.COLLECTION` writes it, `duet batch --input
// mongodb://HOST:PORT/DB.COLLECTION` reads it.
//
// One document per Kafka message, keyed by where it came from:
//   {_id: "TOPIC/PARTITION/OFFSET" (offset zero-padded to 20 digits), t: TOPIC, p: PARTITION,
//    o: OFFSET, ts: arrival (ms since the epoch), raw}
// `raw` is the payload as bytes (BSON binary: a payload need not be valid UTF-8 or JSON, and a
// bad row keeps it exactly). Writing inserts once by _id (a duplicate _id counts as written), so
// writing a message again (after a crash) leaves one identical document: exactly once without
// transactions. An index on (t, p, o) serves both the archiver's restart point and the batch
// layer's read order.
//
// The batch layer reads one input per (topic, partition), in offset order, inputs ordered by
// topic then partition number; a bad row's source is "TOPIC/PARTITION" and its offset the Kafka
// offset — the same names the speed layer gives the same message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "archive/archiver.h"
#include "batch/batch.h"
#include "log/log.h"
#include "util/result.h"

namespace duet::mongoraw {

class RawCollection {
 public:
  virtual ~RawCollection() = default;

  // Per partition of `topic` present in the collection: the offset after the last one stored.
  virtual Result<std::vector<std::pair<int, int64_t>>> NextOffsets(const std::string& topic) = 0;

  // Stores the records of a KafkaLog over `topic` (idempotent per topic, partition, offset).
  // Unavailable when the server cannot be reached (retry: nothing is half-written that a retry
  // would not rewrite identically).
  virtual Status Put(const std::string& topic, std::span<const log::LogRecord> records) = 0;

  // The batch layer's inputs: one per (topic, partition). The RawCollection must outlive them.
  virtual Result<std::vector<batch::InputFile>> Inputs(size_t max_line) = 0;
};

// Opens mongodb://[USER:PASSWORD@]HOST:PORT/DB.COLLECTION[?options] and creates its index.
// InvalidArgument for a URI without DB.COLLECTION; Unavailable when no server answers.
Result<std::unique_ptr<RawCollection>> OpenRawCollection(const std::string& uri);

// `duet archive --out mongodb://…/DB.COLLECTION`: copies a KafkaLog over `topic` into
// `collection`. Recover continues each partition after the last offset stored.
std::unique_ptr<archive::ArchiveSink> NewCollectionArchiver(log::Log* log, std::string topic,
                                                            RawCollection* collection,
                                                            size_t max_batch_lines);

}  // namespace duet::mongoraw
