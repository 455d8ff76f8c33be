#include "serve/status_page.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

namespace duet::serve {

struct StatusPage::Impl {
  Impl(const std::string& role, std::function<int64_t()> clock, int failures_threshold)
      : now_ms(std::move(clock)),
        failures_before_unready(std::max(1, failures_threshold)),
        steps(prometheus::BuildCounter()
                  .Name("duet_" + role + "_steps_total")
                  .Help("Steps of the " + role + " loop, by result")
                  .Register(*registry)),
        ok(steps.Add({{"result", "ok"}})),
        failed(steps.Add({{"result", "error"}})),
        lines(prometheus::BuildCounter()
                  .Name("duet_" + role + "_lines_total")
                  .Help("Input lines handled by successful steps")
                  .Register(*registry)
                  .Add({})),
        last_success(prometheus::BuildGauge()
                         .Name("duet_" + role + "_last_success_timestamp_seconds")
                         .Help("When the last step succeeded (0: none yet)")
                         .Register(*registry)
                         .Add({})),
        consecutive_failures(prometheus::BuildGauge()
                                 .Name("duet_" + role + "_consecutive_failures")
                                 .Help("Steps failed in a row since the last success")
                                 .Register(*registry)
                                 .Add({})),
        ready(prometheus::BuildGauge()
                  .Name("duet_" + role + "_ready")
                  .Help("1 while /readyz answers 200")
                  .Register(*registry)
                  .Add({})) {}

  // Why /readyz answers 503 now ("" when ready). Called with mu held.
  std::string Unready(int64_t now) const {
    std::string why;
    if (!started) {
      why = error.empty() ? "starting: no step has succeeded yet"
                          : "starting: no step has succeeded yet; the last one failed: " + error;
    } else if (failures >= failures_before_unready) {
      why = (failures == 1 ? std::string("the last step failed: ")
                           : std::to_string(failures) + " steps in a row failed, the last: ") +
            error + " (last success " + std::to_string((now - last_ok_ms) / 1000) + " s ago)";
    }
    for (const auto& [name, problem] : conditions) {
      if (!why.empty()) why += "; ";
      why += name + ": " + problem;
    }
    return why;
  }

  std::function<int64_t()> now_ms;
  const int failures_before_unready;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& steps;
  prometheus::Counter& ok;
  prometheus::Counter& failed;
  prometheus::Counter& lines;
  prometheus::Gauge& last_success;
  prometheus::Gauge& consecutive_failures;
  prometheus::Gauge& ready;

  mutable std::mutex mu;
  bool started = false;  // a step succeeded once
  std::string error;     // the last failure since the last success ("" if none)
  int failures = 0;      // steps failed in a row
  int64_t last_ok_ms = 0;
  std::map<std::string, std::string> conditions;  // set by the role: name -> problem
};

StatusPage::StatusPage(std::string role, std::function<int64_t()> now_ms,
                       int failures_before_unready)
    : impl_(std::make_unique<Impl>(role, std::move(now_ms), failures_before_unready)) {}
StatusPage::~StatusPage() = default;

void StatusPage::StepOk(int64_t lines) {
  const int64_t now = impl_->now_ms();
  const std::lock_guard<std::mutex> l(impl_->mu);
  impl_->started = true;
  impl_->error.clear();
  impl_->failures = 0;
  impl_->last_ok_ms = now;
  impl_->ok.Increment();
  if (lines > 0) impl_->lines.Increment(static_cast<double>(lines));
  impl_->last_success.Set(static_cast<double>(now) / 1000.0);
  impl_->consecutive_failures.Set(0);
  impl_->ready.Set(impl_->Unready(now).empty() ? 1 : 0);
}

void StatusPage::StepFailed(const Status& error) {
  const int64_t now = impl_->now_ms();
  const std::lock_guard<std::mutex> l(impl_->mu);
  impl_->error = error.ToString();
  ++impl_->failures;
  impl_->failed.Increment();
  impl_->consecutive_failures.Set(impl_->failures);
  impl_->ready.Set(impl_->Unready(now).empty() ? 1 : 0);
}

void StatusPage::SetCondition(const std::string& name, std::string problem) {
  const int64_t now = impl_->now_ms();
  const std::lock_guard<std::mutex> l(impl_->mu);
  if (problem.empty()) {
    impl_->conditions.erase(name);
  } else {
    impl_->conditions[name] = std::move(problem);
  }
  impl_->ready.Set(impl_->Unready(now).empty() ? 1 : 0);
}

prometheus::Registry& StatusPage::registry() { return *impl_->registry; }

HttpResponse StatusPage::Handle(const HttpRequest& request) const {
  const std::string& path = request.path;
  if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
    return Problem(404, "no resource " + path + " (GET /healthz, /readyz, /metrics)");
  }
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse r = Problem(405, path + " accepts GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  HttpResponse r;
  if (path == "/healthz") {
    r.body = "{\"status\":\"ok\"}\n";
    return r;
  }
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    const std::lock_guard<std::mutex> l(impl_->mu);
    r.body = prometheus::TextSerializer().Serialize(impl_->registry->Collect());
    return r;
  }
  const int64_t now = impl_->now_ms();
  const std::lock_guard<std::mutex> l(impl_->mu);
  if (std::string why = impl_->Unready(now); !why.empty()) return Problem(503, why);
  r.body = "{\"status\":\"ready\"}\n";
  return r;
}

}  // namespace duet::serve
