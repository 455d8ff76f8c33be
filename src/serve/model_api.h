// The model routes of `duet serve`: POST /v1/predict and GET /v1/models (docs/api.md,
// docs/model.md), answered from the model version the model::ModelCache holds. A request takes
// the model once and keeps it for its whole answer, so a swap never fails or mixes versions
// within a request.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model/cache.h"
#include "model/registry.h"
#include "serve/http_server.h"
#include "store/store.h"
#include "util/result.h"

namespace duet::serve {

class ServeProbe;
using model::ModelCache;

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
