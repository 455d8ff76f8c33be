// Api: the routes of `duet serve` (docs/api.md, src/serve/openapi.json) as a function from a
// request to a response, answered from the ViewCache's snapshot — no socket, no store access, so
// tests call it directly.
//
// ServeProbe owns the Prometheus metrics of the process (requests, latency, freshness of the
// served views, pipeline figures) and renders them for /metrics. With prefork workers, /metrics
// merges every worker's (serve/worker_metrics.h).
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "serve/http_server.h"
#include "serve/view_cache.h"

namespace duet::serve {

// A file served as is (the dashboard, the OpenAPI document).
struct Asset {
  std::string_view path;  // "/", "/assets/app.js", …
  std::string_view content_type;
  std::string_view bytes;
};
// The files built into the binary (serve_assets.cc, generated from web/ and openapi.json).
const std::vector<Asset>& EmbeddedAssets();

class ServeProbe {
 public:
  ServeProbe();
  ~ServeProbe();
  ServeProbe(const ServeProbe&) = delete;
  ServeProbe& operator=(const ServeProbe&) = delete;

  // One answered request; `route` is the route's template ("/v1/experiments/{id}/report"), never
  // a value from the request.
  void Request(std::string_view route, int status, double seconds);
  // A refresh of the served views; `snapshot` is the one served after it.
  void Refreshed(bool ok, const Snapshot* snapshot, int64_t now_ms);
  // Rows scored by POST /v1/predict.
  void Predicted(int64_t rows);
  // A model load by the ModelCache; `version` is the one served after it (0: none).
  void ModelLoaded(bool ok, int64_t version);
  // Every metric, collected; the views' age is set from `loaded_ms` (the served snapshot's load
  // time) when it is > 0.
  std::vector<prometheus::MetricFamily> Collect(int64_t now_ms, int64_t loaded_ms);
  // The Prometheus text exposition of Collect.
  std::string Text(int64_t now_ms, int64_t loaded_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ApiOptions {
  int64_t refresh_ms = 2000;     // how often the owner refreshes the ViewCache
  double srm_threshold = 0.001;  // p-value below which a sample-ratio mismatch is reported
  // /readyz is ready while the last successful refresh is at most this old.
  int64_t max_staleness_ms = 6000;
};

class ModelApi;
class JobApi;
class WorkerMetrics;

class Api {
 public:
  // `cache`, `probe` must outlive the Api. `now_ms`: the wall clock (simulated in tests).
  // `models` (may be null: no model routes) answers /v1/predict and /v1/models; `jobs` (may be
  // null) the admin routes /v1/jobs and /v1/jobs/{id}. `workers` (may be null: this process
  // alone) answers /metrics with the metrics of every prefork worker merged.
  Api(const ViewCache* cache, ServeProbe* probe, ApiOptions options,
      std::function<int64_t()> now_ms, const std::vector<Asset>* assets,
      const ModelApi* models = nullptr, const JobApi* jobs = nullptr,
      const WorkerMetrics* workers = nullptr);

  // Thread-safe.
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse Route(const HttpRequest& request, std::string* route) const;

  const ViewCache* const cache_;
  ServeProbe* const probe_;
  const ApiOptions options_;
  const std::function<int64_t()> now_ms_;
  const std::vector<Asset>* const assets_;
  const ModelApi* const models_;
  const JobApi* const jobs_;
  const WorkerMetrics* const workers_;
};

}  // namespace duet::serve
