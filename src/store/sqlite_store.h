// SqliteStore: the embedded default. One file in WAL mode; every commit is one transaction.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace duet::store {

// Opens (creating if needed) the SQLite database at `path`. IoError if the file cannot be
// opened or the schema cannot be created; Corruption for a file that is not a Duet store of a
// known schema version.
// busy_timeout_ms: how long a write waits for another connection's write before Unavailable.
inline constexpr int kDefaultBusyTimeoutMs = 10'000;
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                               int busy_timeout_ms = kDefaultBusyTimeoutMs);

}  // namespace duet::store
