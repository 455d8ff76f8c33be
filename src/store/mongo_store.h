// MongoStore: the store on MongoDB (or a MongoDB-wire server such as FerretDB), through the
// MongoDB C driver. URI: mongodb://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/DB[?options].
//
// No multi-document transaction is used (FerretDB and a standalone MongoDB have none): every
// commit writes immutable, versioned documents first and then flips one small pointer document,
// and a reader follows the pointer. Replaying a commit after a crash rewrites nothing: documents
// are inserted once under deterministic _ids (a duplicate counts as written). The reasoning, the
// collections and their indexes: docs/mongodb.md.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace duet::store {

// Opens the store at `uri`, checks the server answers (serverSelectionTimeoutMS, default 5 s)
// and creates the indexes (idempotent). InvalidArgument for a malformed URI, one without a
// database, or failed authentication; Unavailable when no server answers; Corruption for a
// database written by another Duet schema version.
Result<std::unique_ptr<Store>> OpenMongoStore(const std::string& uri);

}  // namespace duet::store
