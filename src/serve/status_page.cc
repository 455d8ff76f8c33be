#include "serve/status_page.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <utility>

namespace duet::serve {

struct StatusPage::Impl {
  Impl(const std::string& role, std::function<int64_t()> clock)
      : now_ms(std::move(clock)),
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
        ready(prometheus::BuildGauge()
                  .Name("duet_" + role + "_ready")
                  .Help("1 while /readyz answers 200")
                  .Register(*registry)
                  .Add({})) {}

  std::function<int64_t()> now_ms;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& steps;
  prometheus::Counter& ok;
  prometheus::Counter& failed;
  prometheus::Counter& lines;
  prometheus::Gauge& last_success;
  prometheus::Gauge& ready;

  mutable std::mutex mu;
  bool started = false;  // a step succeeded once
  std::string error;     // the failure since the last success ("" if none)
  int64_t last_ok_ms = 0;
};

StatusPage::StatusPage(std::string role, std::function<int64_t()> now_ms)
    : impl_(std::make_unique<Impl>(role, std::move(now_ms))) {}
StatusPage::~StatusPage() = default;

void StatusPage::StepOk(int64_t lines) {
  const int64_t now = impl_->now_ms();
  const std::lock_guard<std::mutex> l(impl_->mu);
  impl_->started = true;
  impl_->error.clear();
  impl_->last_ok_ms = now;
  impl_->ok.Increment();
  if (lines > 0) impl_->lines.Increment(static_cast<double>(lines));
  impl_->last_success.Set(static_cast<double>(now) / 1000.0);
  impl_->ready.Set(1);
}

void StatusPage::StepFailed(const Status& error) {
  const std::lock_guard<std::mutex> l(impl_->mu);
  impl_->error = error.ToString();
  impl_->failed.Increment();
  impl_->ready.Set(0);
}

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
  if (!impl_->started) {
    return Problem(
        503, impl_->error.empty()
                 ? "starting: no step has succeeded yet"
                 : "starting: no step has succeeded yet; the last one failed: " + impl_->error);
  }
  if (!impl_->error.empty()) {
    return Problem(503, "the last step failed: " + impl_->error + " (last success " +
                            std::to_string((now - impl_->last_ok_ms) / 1000) + " s ago)");
  }
  r.body = "{\"status\":\"ready\"}\n";
  return r;
}

}  // namespace duet::serve
