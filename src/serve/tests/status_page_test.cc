// StatusPage (serve/status_page.h): readiness follows the role's steps, liveness does not, and
// the metrics count what was reported. Simulated time.
#include "serve/status_page.h"

#include <gtest/gtest.h>

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
