// ViewCache: the served views, read from the store in the background and kept in memory as an
// immutable Snapshot, so that no request waits for the store.
//
// A snapshot holds the merged views (batch up to its boundary, speed after — serve/merge.h; the
// batch layer's whole views when no speed layer has committed; the speed layer's alone before any
// batch run), the last batch run, the speed layer's scopes and its own views (for freshness).
// Refresh replaces the snapshot only when every read succeeded: a store that is down, or a speed
// layer that has not yet applied the last batch run, leaves the previous snapshot served and the
// error recorded.
//
// Thread-safe: Current from any thread while Refresh runs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/views.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::serve {

struct ScopeInfo {
  std::string scope;
  int64_t epoch = 0;
  std::string positions;
};

struct Snapshot {
  core::Views views;  // merged
  bool has_speed = false;
  int64_t speed_max_ts = 0;           // newest event time the speed layer applied (0: none)
  int64_t speed_final_before_ms = 0;  // the speed layer's provisional-hours cut (0: none)
  std::vector<ScopeInfo> scopes;
  std::optional<store::BatchRun> batch_run;  // without its prefix state
  int64_t loaded_ms = 0;                     // wall clock when read

  // Indexes into views.totals / views.hourly by experiment (site rows under "").
  std::map<std::string, std::vector<size_t>, std::less<>> totals_by_experiment;
  std::map<std::string, std::vector<size_t>, std::less<>> hourly_by_experiment;
  std::map<std::string, std::vector<size_t>, std::less<>> uniques_by_experiment;
};

// Reads one snapshot from `store` (loaded_ms = now_ms).
Result<std::shared_ptr<const Snapshot>> ReadSnapshot(store::Store* store, int64_t now_ms);

class ViewCache {
 public:
  // `now_ms`: the wall clock (tests pass a simulated one).
  ViewCache(store::Store* store, std::function<int64_t()> now_ms);

  // Reads the store and, on success, serves the new snapshot.
  Status Refresh();
  // The snapshot served now; null before the first successful Refresh.
  std::shared_ptr<const Snapshot> Current() const;

  struct Health {
    int64_t last_attempt_ms = 0;
    int64_t last_success_ms = 0;
    std::string last_error;  // of the last attempt; empty when it succeeded
    uint64_t refreshes = 0;
    uint64_t failures = 0;
  };
  Health health() const;

 private:
  store::Store* const store_;
  const std::function<int64_t()> now_ms_;
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  Health health_;
};

}  // namespace duet::serve
