// ModelCache: the model version a process serves, following the registry's current version.
// Refresh (called by the owner on a timer, off any request or hot path) loads a newly promoted
// version, checks it with one prediction and only then swaps it in; readers take a shared_ptr
// and keep the version they got for as long as they need it; the old version is freed when its
// last reader is done. Used by `duet serve` (predictions) and `duet stream` (live scoring).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/registry.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::model {

class ModelCache {
 public:
  // `store` must outlive the cache. `on_load` (may be empty) is told of every load of a newly
  // promoted version: whether it worked and the version served after it (0: none).
  ModelCache(store::Store* store, std::function<void(bool ok, int64_t version)> on_load,
             std::function<int64_t()> now_ms);

  // Reads the current version and loads it if it is not the one served. On failure the served
  // model stays and the error is kept (health()). Not to be called concurrently with itself.
  Status Refresh();

  // The model served now; null when none was ever promoted (or none could be loaded yet).
  std::shared_ptr<const model::LoadedModel> Current() const;
  // The registry's versions as of the last successful Refresh.
  std::vector<store::ModelInfo> Versions() const;

  struct Health {
    int64_t current_version = 0;  // the registry's current version at the last Refresh
    int64_t served_version = 0;
    int64_t last_success_ms = 0;
    std::string last_error;
  };
  Health health() const;

 private:
  store::Store* const store_;
  const std::function<void(bool, int64_t)> on_load_;
  const std::function<int64_t()> now_ms_;
  mutable std::mutex mu_;
  std::shared_ptr<const LoadedModel> current_;
  std::vector<store::ModelInfo> versions_;
  Health health_;
};

}  // namespace duet::model
