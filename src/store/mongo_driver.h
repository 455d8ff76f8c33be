// MongoDB C driver glue shared by every MongoDB client of Duet (the store, the raw-beacon
// collection reader and writer): one-time driver set-up with its log lines routed into Duet's
// JSON log, and driver errors as Status values.
#pragma once

#include <mongoc/mongoc.h>

#include <cstring>
#include <string>
#include <string_view>

#include "util/result.h"

namespace duet::store {

// mongoc_init() once per process; the driver's warnings and errors become "mongodb.log" lines.
void InitMongoDriver();

// A driver error as a Status naming `where` (a URI without credentials) and `what` was being
// done: Unavailable when a retry may help (no server answered, a connection dropped, the primary
// stepped down), InvalidArgument for failed authentication, IoError otherwise.
Status MongoStatus(const bson_error_t& e, const std::string& where, std::string_view what);

// An owned BSON document with chained appends.
class Bson {
 public:
  Bson() { bson_init(&b_); }
  ~Bson() { bson_destroy(&b_); }
  Bson(const Bson&) = delete;
  Bson& operator=(const Bson&) = delete;
  bson_t* get() { return &b_; }
  const bson_t* get() const { return &b_; }
  Bson& I64(const char* k, int64_t v) {
    BSON_APPEND_INT64(&b_, k, v);
    return *this;
  }
  Bson& F64(const char* k, double v) {
    BSON_APPEND_DOUBLE(&b_, k, v);
    return *this;
  }
  Bson& Bool(const char* k, bool v) {
    BSON_APPEND_BOOL(&b_, k, v);
    return *this;
  }
  Bson& Str(const char* k, std::string_view v) {
    bson_append_utf8(&b_, k, -1, v.data(), static_cast<int>(v.size()));
    return *this;
  }
  Bson& Bin(const char* k, std::string_view v) {
    bson_append_binary(&b_, k, -1, BSON_SUBTYPE_BINARY, reinterpret_cast<const uint8_t*>(v.data()),
                       static_cast<uint32_t>(v.size()));
    return *this;
  }
  Bson& Doc(const char* k, const Bson& d) {
    BSON_APPEND_DOCUMENT(&b_, k, d.get());
    return *this;
  }

 private:
  bson_t b_;
};

// Read access to a document's fields; missing or mistyped fields read as the default.
class View {
 public:
  explicit View(const bson_t* d) : d_(d) {}
  const bson_t* raw() const { return d_; }
  bool Has(const char* k) const {
    bson_iter_t it;
    return bson_iter_init_find(&it, d_, k);
  }
  int64_t I64(const char* k, int64_t def = 0) const {
    bson_iter_t it;
    if (!Find(k, &it) || !BSON_ITER_HOLDS_NUMBER(&it)) return def;
    return bson_iter_as_int64(&it);
  }
  double F64(const char* k) const {
    bson_iter_t it;
    if (!Find(k, &it) || !BSON_ITER_HOLDS_DOUBLE(&it)) return 0;
    return bson_iter_double(&it);
  }
  bool Bool(const char* k) const {
    bson_iter_t it;
    return Find(k, &it) && bson_iter_as_bool(&it);
  }
  std::string Str(const char* k) const {
    bson_iter_t it;
    if (!Find(k, &it) || !BSON_ITER_HOLDS_UTF8(&it)) return {};
    uint32_t n = 0;
    const char* s = bson_iter_utf8(&it, &n);
    return std::string(s, n);
  }
  std::string Bin(const char* k) const {
    bson_iter_t it;
    if (!Find(k, &it) || !BSON_ITER_HOLDS_BINARY(&it)) return {};
    bson_subtype_t sub;
    uint32_t n = 0;
    const uint8_t* data = nullptr;
    bson_iter_binary(&it, &sub, &n, &data);
    return std::string(reinterpret_cast<const char*>(data), n);
  }

 private:
  bool Find(const char* k, bson_iter_t* out) const {
    bson_iter_t it;
    if (!bson_iter_init(&it, d_)) return false;
    if (std::strchr(k, '.') != nullptr) return bson_iter_find_descendant(&it, k, out);
    if (!bson_iter_find(&it, k)) return false;
    *out = it;
    return true;
  }
  const bson_t* d_;
};

// Writes documents whose _id determines their content (every versioned document Duet writes)
// exactly once: unordered inserts in bulks of at most 1,000, a duplicate _id counting as already
// written — so a write replayed after a crash is a no-op. Inserts, not upserts: a server finds a
// duplicate through the _id index, while an upsert is a query per document (FerretDB's SQLite
// backend, measured: ~70 upserts/s against thousands of inserts/s).
class InsertOnce {
 public:
  InsertOnce(mongoc_collection_t* coll, std::string where, std::string what)
      : coll_(coll), where_(std::move(where)), what_(std::move(what)) {}
  ~InsertOnce();
  InsertOnce(const InsertOnce&) = delete;
  InsertOnce& operator=(const InsertOnce&) = delete;
  // Queues `doc` (copied); sends a full bulk.
  Status Add(const Bson& doc);
  // Sends what is queued.
  Status Finish();

 private:
  mongoc_collection_t* const coll_;
  const std::string where_;
  const std::string what_;
  mongoc_bulk_operation_t* bulk_ = nullptr;
  size_t queued_ = 0;
};

// Parses a mongodb:// URI with the defaults Duet uses (serverSelectionTimeoutMS 5000 unless
// given, appname "duet"). *where is set to the URI without credentials, for messages. The
// caller owns the result (mongoc_uri_destroy). InvalidArgument naming the expected form.
Result<mongoc_uri_t*> ParseMongoUri(const std::string& text, std::string* where);

}  // namespace duet::store
