// StatusPage (serve/status_page.h): readiness follows the role's steps, liveness does not, and
// the metrics count what was reported. Simulated time.
#include "serve/status_page.h"

#include <gtest/gtest.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <string>

namespace duet::serve {
namespace {

constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z

HttpRequest Get(const std::string& path, const std::string& method = "GET") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  return r;
}

TEST(StatusPageTest, ReadyOnlyAfterASuccessAndUntilTheNextFailure) {
  int64_t now = kT0;
  StatusPage page("stream", [&now] { return now; });
  HttpResponse r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("starting: no step has succeeded yet"), std::string::npos) << r.body;
  EXPECT_EQ(page.Handle(Get("/healthz")).status, 200);

  page.StepFailed(Status::Unavailable("mongodb://db:27017: no server answered"));
  r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("the last one failed: unavailable: mongodb://db:27017: no server answered"),
            std::string::npos)
      << r.body;

  page.StepOk(1200);
  EXPECT_EQ(page.Handle(Get("/readyz")).status, 200);
  EXPECT_EQ(page.Handle(Get("/readyz")).body, "{\"status\":\"ready\"}\n");

  now += 42'000;
  page.StepFailed(Status::Unavailable("broker down"));
  r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("the last step failed: unavailable: broker down (last success 42 s ago)"),
            std::string::npos)
      << r.body;
  // Liveness stays shallow: a dependency away is not a reason to restart the process.
  EXPECT_EQ(page.Handle(Get("/healthz")).status, 200);

  page.StepOk(0);
  EXPECT_EQ(page.Handle(Get("/readyz")).status, 200);
}

TEST(StatusPageTest, MetricsCountStepsLinesAndReadiness) {
  int64_t now = kT0;
  StatusPage page("archive", [&now] { return now; });
  page.StepOk(100);
  page.StepOk(23);
  page.StepFailed(Status::Unavailable("x"));
  const HttpResponse r = page.Handle(Get("/metrics"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("duet_archive_steps_total{result=\"ok\"} 2"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("duet_archive_steps_total{result=\"error\"} 1"), std::string::npos);
  EXPECT_NE(r.body.find("duet_archive_lines_total 123"), std::string::npos);
  EXPECT_NE(r.body.find("duet_archive_last_success_timestamp_seconds 1793491200"),
            std::string::npos);
  EXPECT_NE(r.body.find("duet_archive_ready 0"), std::string::npos);
}

TEST(StatusPageTest, FailuresTurnUnreadyOnlyFromTheThreshold) {
  int64_t now = kT0;
  StatusPage page(
      "stream", [&now] { return now; }, /*failures_before_unready=*/3);
  page.StepOk(10);
  now += 5'000;
  page.StepFailed(Status::Unavailable("store away"));
  page.StepFailed(Status::Unavailable("store away"));
  EXPECT_EQ(page.Handle(Get("/readyz")).status, 200);
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_consecutive_failures 2"),
            std::string::npos);
  page.StepFailed(Status::Unavailable("store still away"));
  const HttpResponse r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("3 steps in a row failed, the last: unavailable: store still away (last "
                        "success 5 s ago)"),
            std::string::npos)
      << r.body;
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_ready 0"), std::string::npos);
  page.StepOk(0);  // a success resets the count
  EXPECT_EQ(page.Handle(Get("/readyz")).status, 200);
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_consecutive_failures 0"),
            std::string::npos);
}

TEST(StatusPageTest, ConditionsSetByTheRoleTurnUnreadyAndNameThemselves) {
  StatusPage page("stream", [] { return kT0; });
  page.StepOk(1);
  page.SetCondition("lag", "12000 messages behind on partition 3 (--ready-max-lag 10000)");
  page.SetCondition("delay", "started 95 s late (--ready-max-delay 60s)");
  HttpResponse r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("delay: started 95 s late (--ready-max-delay 60s); lag: 12000 messages "
                        "behind on partition 3 (--ready-max-lag 10000)"),
            std::string::npos)
      << r.body;
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_ready 0"), std::string::npos);
  page.SetCondition("delay", "");
  r = page.Handle(Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body.find("delay:"), std::string::npos) << r.body;
  page.SetCondition("lag", "");
  EXPECT_EQ(page.Handle(Get("/readyz")).status, 200);
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_ready 1"), std::string::npos);
}

TEST(StatusPageTest, MetricsTheRoleRegistersAreServed) {
  StatusPage page("stream", [] { return kT0; });
  prometheus::BuildGauge()
      .Name("duet_stream_lag_messages")
      .Help("test")
      .Register(page.registry())
      .Add({})
      .Set(7);
  EXPECT_NE(page.Handle(Get("/metrics")).body.find("duet_stream_lag_messages 7"),
            std::string::npos);
}

TEST(StatusPageTest, UnknownPathsAndMethodsAreRefused) {
  StatusPage page("jobs_worker", [] { return kT0; });
  HttpResponse r = page.Handle(Get("/v1/views"));
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no resource /v1/views (GET /healthz, /readyz, /metrics)"),
            std::string::npos);
  r = page.Handle(Get("/healthz", "POST"));
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "GET, HEAD");
  EXPECT_EQ(page.Handle(Get("/healthz", "HEAD")).status, 200);
}

}  // namespace
}  // namespace duet::serve
