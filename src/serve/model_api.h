// The model routes of `duet serve`: POST /v1/predict and GET /v1/models (docs/api.md,
// docs/model.md), answered from the model version the ModelCache holds.
//
// ModelCache follows the registry's current version: Refresh (called by the owner on a timer,
// off the request threads) loads a newly promoted version, checks it with one prediction and
// only then swaps it in. A request takes the model once and keeps it for its whole answer, so a
// swap never fails or mixes versions within a request; the old version is freed when its last
// request is done.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model/registry.h"
#include "serve/http_server.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::serve {

class ServeProbe;

class ModelCache {
 public:
  // `store` and `probe` (may be null) must outlive the cache.
  ModelCache(store::Store* store, ServeProbe* probe, std::function<int64_t()> now_ms);

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
  ServeProbe* const probe_;
  const std::function<int64_t()> now_ms_;
  mutable std::mutex mu_;
  std::shared_ptr<const model::LoadedModel> current_;
  std::vector<store::ModelInfo> versions_;
  Health health_;
};

struct ModelApiOptions {
  size_t max_instances = 1000;  // rows in one batch request
};

class ModelApi {
 public:
  ModelApi(const ModelCache* cache, ServeProbe* probe, ModelApiOptions options);
  // `path` is the decoded path: "/v1/predict" or "/v1/models". Thread-safe.
  HttpResponse Handle(const HttpRequest& request, std::string_view path) const;

 private:
  HttpResponse Predict(const HttpRequest& request) const;
  HttpResponse Models() const;

  const ModelCache* const cache_;
  ServeProbe* const probe_;
  const ModelApiOptions options_;
};

}  // namespace duet::serve
