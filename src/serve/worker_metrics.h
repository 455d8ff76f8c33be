// WorkerMetrics: /metrics of a prefork worker of `duet serve` covering every live worker.
//
// Each worker slot has a private loopback listener (127.0.0.1, bound by the master before it
// forks, kept open across worker restarts and reloads). A worker answers GET /metrics/local on
// its slot's listener with its own metrics, from a server of its own (HandlePeer, on a thread
// that never waits for a sibling, so two workers asking each other at once cannot deadlock). On
// GET /metrics, a worker asks every other slot's listener at the same time, waits at most
// `timeout_ms` in all, and merges its own metrics with every answer (serve/metrics_merge.h), plus
// duet_serve_workers (gauge: the workers merged, itself included). A sibling that does not
// answer in time, answers with an error or with text that does not parse is left out, counted in
// duet_serve_metrics_peer_errors_total and logged (serve.metrics_peer_failed) at most once per
// `log_interval_ms`, with the number of failures not logged since.
//
// The request for /metrics waits for the siblings on the HTTP thread that handles it: at most
// `timeout_ms`, usually a millisecond over loopback. During a reload (SIGHUP), a slot's old and
// new worker share its listener, so either may answer for the slot.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "serve/http_server.h"
#include "util/result.h"

namespace duet::serve {

class ServeProbe;
class ViewCache;

struct WorkerMetricsOptions {
  int slot = 0;                 // this worker's slot, an index into peer_ports
  std::vector<int> peer_ports;  // every slot's loopback peer port, this worker's own included
  int timeout_ms = 500;         // for all siblings together
  int64_t log_interval_ms = 60'000;
};

class WorkerMetrics {
 public:
  // `probe` and `cache` (the served views, for the age gauge) must outlive this object.
  // `now_ms`: the wall clock (simulated in tests).
  WorkerMetrics(ServeProbe* probe, const ViewCache* cache, WorkerMetricsOptions options,
                std::function<int64_t()> now_ms);
  ~WorkerMetrics();
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // This worker's own metrics as Prometheus text: the probe's and the peer error counter.
  std::string LocalText() const;
  // Every answering worker's metrics merged (see above), as Prometheus text.
  std::string MergedText() const;
  // The handler of the slot's peer listener: GET (or HEAD) /metrics/local answers LocalText;
  // other paths 404, other methods 405.
  HttpResponse HandlePeer(const HttpRequest& request) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GETs `path` from 127.0.0.1 on every port at once over HTTP/1.1 (one connection each, closed
// after the answer), waiting at most `timeout_ms` in all. One result per port, in order: the
// body of a 200 answer, or Unavailable naming the port and what went wrong (refused, no answer
// in time, another status, a truncated answer).
std::vector<Result<std::string>> FetchLoopback(const std::vector<int>& ports,
                                               const std::string& path, int timeout_ms);

}  // namespace duet::serve
