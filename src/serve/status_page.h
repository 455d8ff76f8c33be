// StatusPage: /healthz, /readyz and /metrics for a role that serves no API of its own (duet
// stream, duet archive, duet jobs worker), so that a container platform probes every role the
// same way (`--status-listen`, port 8080 in the image).
//
// Contract:
// - GET /healthz: 200 while the process answers (shallow: a liveness probe restarts a process
//   that no longer answers, not one whose dependencies are away).
// - GET /readyz: 503 until the role reports its first successful step (start-up, recovery from
//   the checkpoint); while `failures_before_unready` or more steps in a row have failed (naming
//   the last error and how long ago the last success was); and while a condition set by the role
//   (SetCondition: e.g. the speed layer's lag over its threshold) holds, naming it; 200 otherwise.
// - GET /metrics: the Prometheus text of duet_<role>_steps_total{result="ok|error"},
//   duet_<role>_lines_total, duet_<role>_last_success_timestamp_seconds,
//   duet_<role>_consecutive_failures and duet_<role>_ready, then whatever the role registered in
//   registry().
// - Other paths 404, other methods 405 (problem+json). HEAD is answered by the HttpServer.
// Thread-safe: the role's loop reports steps while server threads answer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "serve/http_server.h"
#include "util/status.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace duet::serve {

class StatusPage {
 public:
  // `role` names the metrics (duet_<role>_…): lower case letters and '_' only.
  // `now_ms`: the wall clock (simulated in tests). `failures_before_unready` >= 1.
  StatusPage(std::string role, std::function<int64_t()> now_ms, int failures_before_unready = 1);
  ~StatusPage();
  StatusPage(const StatusPage&) = delete;
  StatusPage& operator=(const StatusPage&) = delete;

  // A step that succeeded (a micro-batch committed, messages archived, a queue poll) and the
  // input lines it handled.
  void StepOk(int64_t lines);
  // A step that failed; `error` is shown by /readyz until the next StepOk.
  void StepFailed(const Status& error);

  // Sets (non-empty `problem`) or clears (empty) the readiness condition `name`: while any is
  // set, /readyz answers 503 with "<name>: <problem>" for each, in name order.
  void SetCondition(const std::string& name, std::string problem);

  // The registry /metrics serves: the role registers its own metrics here (thread-safe).
  prometheus::Registry& registry();

  HttpResponse Handle(const HttpRequest& request) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace duet::serve
