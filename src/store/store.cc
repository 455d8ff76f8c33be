#include "store/store.h"

#include <algorithm>
#include <cstdlib>

#include "store/mongo_store.h"
#include "store/sqlite_store.h"

namespace duet::store {

std::string_view LayerName(Layer l) { return l == Layer::kBatch ? "batch" : "speed"; }

Status LeaseHeldElsewhere(const WriterLease& current, int64_t now_ms) {
  return Status::Aborted("writer lease '" + current.name + "' is held by '" + current.holder +
                         "' (token " + std::to_string(current.token) + ") for " +
                         std::to_string(std::max<int64_t>(0, current.expires_ms - now_ms)) +
                         " ms more");
}

Status FencedOff(const SpeedCheckpoint& cp, const std::optional<WriterLease>& current) {
  return Status::Aborted(
      "speed checkpoint of scope '" + cp.scope + "': fenced off: written under token " +
      std::to_string(cp.lease_token) + " of writer lease '" + cp.lease + "', whose token is " +
      (current ? std::to_string(current->token) + " (holder '" + current->holder + "')"
               : std::string("not taken")) +
      " now; this process is no longer the active writer");
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& uri) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (uri.rfind(kSqlite, 0) == 0) {
    std::string path = uri.substr(kSqlite.size());
    int busy_timeout_ms = kDefaultBusyTimeoutMs;
    if (const size_t q = path.find('?'); q != std::string::npos) {
      // The one option: sqlite:PATH?busy_timeout_ms=N (how long to wait for another writer).
      const std::string opt = path.substr(q + 1);
      path.resize(q);
      constexpr std::string_view kBusy = "busy_timeout_ms=";
      char* end = nullptr;
      const long v =
          opt.rfind(kBusy, 0) == 0 ? std::strtol(opt.c_str() + kBusy.size(), &end, 10) : -1;
      if (v < 0 || v > 3'600'000 || end == nullptr || *end != '\0') {
        return Status::InvalidArgument("--store: '" + uri + "': unknown option '" + opt +
                                       "'; expected sqlite:PATH or sqlite:PATH?busy_timeout_ms=N");
      }
      busy_timeout_ms = static_cast<int>(v);
    }
    if (path.empty()) {
      return Status::InvalidArgument("--store: '" + uri + "' has no path; expected sqlite:PATH");
    }
    return OpenSqliteStore(path, busy_timeout_ms);
  }
  if (uri.rfind("mongodb://", 0) == 0 || uri.rfind("mongodb+srv://", 0) == 0) {
    return OpenMongoStore(uri);
  }
  return Status::InvalidArgument("--store: '" + uri +
                                 "' is not a store URI; expected sqlite:PATH or "
                                 "mongodb://HOST:PORT/DB");
}

}  // namespace duet::store
