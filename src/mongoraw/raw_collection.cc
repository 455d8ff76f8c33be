#include "mongoraw/raw_collection.h"

#include <mongoc/mongoc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

#include "log/kafka_log.h"
#include "store/mongo_driver.h"
#include "util/line_reader.h"

namespace duet::mongoraw {
namespace {

using store::Bson;
using store::View;

class Collection final : public RawCollection {
 public:
  Collection(mongoc_uri_t* uri, mongoc_client_pool_t* pool, std::string db, std::string coll,
             std::string where)
      : uri_(uri),
        pool_(pool),
        db_(std::move(db)),
        coll_(std::move(coll)),
        where_(std::move(where)) {}
  ~Collection() override {
    mongoc_client_pool_destroy(pool_);
    mongoc_uri_destroy(uri_);
  }

  Status Init() {
    Handle h(this);
    Bson cmd, keys, index, list;
    keys.I64("t", 1).I64("p", 1).I64("o", 1);
    index.Doc("key", keys).Str("name", "topic_partition_offset");
    list.Doc("0", index);
    cmd.Str("createIndexes", coll_);
    bson_append_array(cmd.get(), "indexes", -1, list.get());
    bson_error_t e;
    if (!mongoc_client_command_simple(h.client, db_.c_str(), cmd.get(), nullptr, nullptr, &e)) {
      return store::MongoStatus(e, where_, "create the index on (t, p, o)");
    }
    return Status::Ok();
  }

  Result<std::vector<std::pair<int, int64_t>>> NextOffsets(const std::string& topic) override {
    auto parts = Partitions();
    if (!parts.ok()) return parts.status();
    Handle h(this);
    std::vector<std::pair<int, int64_t>> out;
    for (const auto& [t, p, n] : *parts) {
      if (t != topic) continue;
      // The partition's greatest offset: one document, newest first (the index serves it).
      Bson filter, opts, sort;
      filter.Str("t", topic).I64("p", p);
      sort.I64("o", -1);
      opts.Doc("sort", sort).I64("limit", 1);
      mongoc_cursor_t* cur =
          mongoc_collection_find_with_opts(h.coll, filter.get(), opts.get(), nullptr);
      const bson_t* d = nullptr;
      if (mongoc_cursor_next(cur, &d)) out.emplace_back(static_cast<int>(p), View(d).I64("o") + 1);
      bson_error_t e;
      const bool failed = mongoc_cursor_error(cur, &e);
      mongoc_cursor_destroy(cur);
      if (failed) return store::MongoStatus(e, where_, "find where the archive continues");
    }
    return out;
  }

  Status Put(const std::string& topic, std::span<const log::LogRecord> records) override {
    if (records.empty()) return Status::Ok();
    Handle h(this);
    store::InsertOnce out(h.coll, where_, "write raw beacons");
    for (const log::LogRecord& r : records) {
      const int p = log::KafkaPartitionOf(r.source);
      if (p < 0) {
        return Status::InvalidArgument("raw collection: record source '" + std::string(r.source) +
                                       "' is not TOPIC/PARTITION");
      }
      // A string _id (servers look those up directly): TOPIC/PARTITION/OFFSET, the offset
      // zero-padded so that _id order is offset order within a partition. Written once: a
      // message archived again after a crash is a duplicate _id, which InsertOnce skips.
      char offset[24];
      std::snprintf(offset, sizeof(offset), "%020llu", static_cast<unsigned long long>(r.offset));
      Bson doc;
      doc.Str("_id", topic + "/" + std::to_string(p) + "/" + offset)
          .Str("t", topic)
          .I64("p", p)
          .I64("o", static_cast<int64_t>(r.offset))
          .I64("ts", r.timestamp_ms)
          .Bin("raw", r.bytes);
      DUET_RETURN_IF_ERROR(out.Add(doc));
    }
    return out.Finish();
  }

  Result<std::vector<batch::InputFile>> Inputs(size_t max_line) override {
    auto listed = Partitions();
    if (!listed.ok()) return listed.status();
    const auto& parts = *listed;
    std::vector<batch::InputFile> out;
    for (const auto& [topic, partition, n] : parts) {
      batch::InputFile f;
      f.relative = topic + "/" + std::to_string(partition);
      f.path = where_ + "." + coll_ + " " + f.relative;
      f.size = static_cast<uint64_t>(n);
      f.open = [this, topic = topic, partition = partition,
                max_line]() -> Result<std::unique_ptr<LineReader>> {
        return std::unique_ptr<LineReader>(
            std::make_unique<PartitionReader>(this, topic, partition, max_line));
      };
      out.push_back(std::move(f));
    }
    return out;
  }

 private:
  // Every (topic, partition) in the collection with its message count, sorted. ($group with
  // $sum: FerretDB has no $max accumulator.)
  Result<std::vector<std::tuple<std::string, int64_t, int64_t>>> Partitions() const {
    Handle h(this);
    Bson pipeline, group, group_stage, id, count;
    id.Str("t", "$t").Str("p", "$p");
    count.I64("$sum", 1);
    group.Doc("_id", id).Doc("n", count);
    group_stage.Doc("$group", group);
    pipeline.Doc("0", group_stage);
    mongoc_cursor_t* cur =
        mongoc_collection_aggregate(h.coll, MONGOC_QUERY_NONE, pipeline.get(), nullptr, nullptr);
    std::vector<std::tuple<std::string, int64_t, int64_t>> parts;  // topic, partition, count
    const bson_t* d = nullptr;
    while (mongoc_cursor_next(cur, &d)) {
      const View v(d);
      parts.emplace_back(v.Str("_id.t"), v.I64("_id.p"), v.I64("n"));
    }
    bson_error_t e;
    const bool failed = mongoc_cursor_error(cur, &e);
    mongoc_cursor_destroy(cur);
    if (failed) return store::MongoStatus(e, where_, "list the partitions of the raw beacons");
    std::sort(parts.begin(), parts.end());
    return parts;
  }

  // A client and the collection for one operation.
  struct Handle {
    explicit Handle(const Collection* c)
        : pool(c->pool_),
          client(mongoc_client_pool_pop(pool)),
          coll(mongoc_client_get_collection(client, c->db_.c_str(), c->coll_.c_str())) {}
    ~Handle() {
      mongoc_collection_destroy(coll);
      mongoc_client_pool_push(pool, client);
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    mongoc_client_pool_t* pool;
    mongoc_client_t* client;
    mongoc_collection_t* coll;
  };

  // One partition's messages in offset order, as lines (padded for in-place parsing).
  class PartitionReader final : public LineReader {
   public:
    PartitionReader(const Collection* c, const std::string& topic, int64_t partition,
                    size_t max_line)
        : c_(c), h_(c), max_line_(max_line) {
      Bson filter, opts, sort;
      filter.Str("t", topic).I64("p", partition);
      sort.I64("o", 1);
      opts.Doc("sort", sort);
      cur_ = mongoc_collection_find_with_opts(h_.coll, filter.get(), opts.get(), nullptr);
    }
    ~PartitionReader() override { mongoc_cursor_destroy(cur_); }

    Result<bool> Next(Line* line) override {
      const bson_t* d = nullptr;
      if (!mongoc_cursor_next(cur_, &d)) {
        bson_error_t e;
        if (mongoc_cursor_error(cur_, &e)) {
          return store::MongoStatus(e, c_->where_, "read raw beacons");
        }
        return false;
      }
      const View v(d);
      bson_iter_t it;
      const uint8_t* data = nullptr;
      uint32_t n = 0;
      if (bson_iter_init_find(&it, d, "raw") && BSON_ITER_HOLDS_BINARY(&it)) {
        bson_subtype_t sub;
        bson_iter_binary(&it, &sub, &n, &data);
      } else if (bson_iter_init_find(&it, d, "raw") && BSON_ITER_HOLDS_UTF8(&it)) {
        data = reinterpret_cast<const uint8_t*>(bson_iter_utf8(&it, &n));
      }
      const size_t keep = std::min<size_t>(n, max_line_);
      buffer_.resize(keep + kLinePadding);
      if (keep > 0) std::memcpy(buffer_.data(), data, keep);
      std::memset(buffer_.data() + keep, 0, kLinePadding);
      const int64_t offset = v.I64("o");
      line->bytes = std::string_view(buffer_.data(), keep);
      line->offset = static_cast<uint64_t>(offset);
      line->number = static_cast<uint64_t>(offset) + 1;
      line->full_length = n;
      line->truncated = n > max_line_;
      return true;
    }

   private:
    const Collection* c_;
    Handle h_;
    const size_t max_line_;
    mongoc_cursor_t* cur_ = nullptr;
    std::string buffer_;
  };

  mongoc_uri_t* const uri_;
  mongoc_client_pool_t* const pool_;
  const std::string db_;
  const std::string coll_;
  const std::string where_;
};

// `duet archive` into a collection: read, insert once, done — the documents are the progress.
class CollectionArchiver final : public archive::ArchiveSink {
 public:
  CollectionArchiver(log::Log* log, std::string topic, RawCollection* collection, size_t max)
      : log_(log), topic_(std::move(topic)), collection_(collection), max_(max) {}

  Status Recover() override {
    auto next = collection_->NextOffsets(topic_);
    if (!next.ok()) return next.status();
    return log_->Seek(log::KafkaPositions(topic_, *next));
  }

  Result<archive::ArchiveStats> Step(bool final) override {
    archive::ArchiveStats st;
    DUET_RETURN_IF_ERROR(log_->Poll(max_, final, &records_));
    st.lines = records_.size();
    if (records_.empty()) return st;
    DUET_RETURN_IF_ERROR(collection_->Put(topic_, records_));
    st.lines_written = records_.size();
    st.files_written = 1;  // one bulk write
    return st;
  }

  Result<archive::ArchiveStats> Flush() override { return archive::ArchiveStats{}; }

 private:
  log::Log* const log_;
  const std::string topic_;
  RawCollection* const collection_;
  const size_t max_;
  std::vector<log::LogRecord> records_;
};

}  // namespace

Result<std::unique_ptr<RawCollection>> OpenRawCollection(const std::string& text) {
  store::InitMongoDriver();
  // mongodb://AUTHORITY/DB.COLLECTION[?options]: the driver takes mongodb://AUTHORITY/DB[?…].
  const std::string expected = "expected mongodb://HOST:PORT/DB.COLLECTION";
  const size_t scheme = text.find("://");
  const size_t slash = scheme == std::string::npos ? std::string::npos : text.find('/', scheme + 3);
  if (slash == std::string::npos) {
    return Status::InvalidArgument("'" + text + "' names no DB.COLLECTION; " + expected);
  }
  const size_t query = text.find('?', slash);
  const std::string path =
      text.substr(slash + 1, query == std::string::npos ? std::string::npos : query - slash - 1);
  const size_t dot = path.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == path.size()) {
    return Status::InvalidArgument("'" + text + "': '" + path + "' is not DB.COLLECTION; " +
                                   expected);
  }
  const std::string db = path.substr(0, dot), coll = path.substr(dot + 1);
  const std::string driver_uri =
      text.substr(0, slash + 1) + db + (query == std::string::npos ? "" : text.substr(query));
  std::string where;
  auto uri = store::ParseMongoUri(driver_uri, &where);
  if (!uri.ok()) return uri.status();
  mongoc_client_pool_t* pool = mongoc_client_pool_new(*uri);
  if (pool == nullptr) {
    mongoc_uri_destroy(*uri);
    return Status::InvalidArgument("cannot use '" + where + "' (unsupported options?)");
  }
  mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
  auto c = std::make_unique<Collection>(*uri, pool, db, coll, where);
  DUET_RETURN_IF_ERROR(c->Init());
  return std::unique_ptr<RawCollection>(std::move(c));
}

std::unique_ptr<archive::ArchiveSink> NewCollectionArchiver(log::Log* log, std::string topic,
                                                            RawCollection* collection,
                                                            size_t max_batch_lines) {
  return std::make_unique<CollectionArchiver>(log, std::move(topic), collection, max_batch_lines);
}

}  // namespace duet::mongoraw
