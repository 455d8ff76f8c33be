// The routes of `duet serve` (serve/api.h) over views committed to a real SQLite store, with a
// simulated clock: what each endpoint returns, and every error it answers with.
#include "serve/api.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "store/store.h"

namespace duet::serve {
namespace {

constexpr int64_t kHour = 3'600'000;
constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z

core::FigureValues Figures(int64_t visitors, int64_t sessions, int64_t conversions,
                           int64_t converted, double revenue) {
  core::FigureValues v;
  v.visitors = visitors;
  v.sessions = sessions;
  v.events = sessions * 5;
  v.pageviews = sessions * 3;
  v.conversions = conversions;
  v.bounces = sessions / 4;
  v.duration_ms = sessions * 60'000;
  v.converted_visitors = converted;
  v.sessions_sq = sessions * 3;
  v.conversions_sq = conversions + 10;
  v.sessions_x_conversions = conversions * 2;
  v.revenue = revenue;
  v.revenue_sq = revenue * 40;
  return v;
}

// One experiment "checkout" (control, treatment) over hours 0 and 2 (hour 1 has no sessions).
core::Views SampleViews() {
  core::Views v;
  const int64_t h0 = kT0 / kHour;
  v.totals.push_back({"", "", 0, Figures(2000, 5000, 300, 280, 9000)});
  v.totals.push_back({"checkout", "control", 0, Figures(1000, 2500, 140, 130, 4000)});
  v.totals.push_back({"checkout", "treatment", 0, Figures(1000, 2500, 160, 150, 5000)});
  v.totals[1].v.visitors_in_multiple_variants = 3;
  v.totals[2].v.visitors_in_multiple_variants = 3;
  v.hourly.push_back({"", "", h0, Figures(1200, 3000, 180, 170, 5000)});
  v.hourly.push_back({"", "", h0 + 2, Figures(900, 2000, 120, 110, 4000)});
  v.hourly.push_back({"checkout", "control", h0, Figures(600, 1500, 80, 75, 2000)});
  v.hourly.push_back({"checkout", "control", h0 + 2, Figures(450, 1000, 60, 55, 2000)});
  v.hourly.push_back({"checkout", "treatment", h0, Figures(600, 1500, 100, 95, 3000)});
  v.hourly.push_back({"checkout", "treatment", h0 + 2, Figures(450, 1000, 60, 55, 2000)});
  v.uniques.push_back({"", "", h0, 1200, 1200});
  v.uniques.push_back({"", "", h0 + 1, 0, 1200});
  v.uniques.push_back({"", "", h0 + 2, 900, 1900});
  v.uniques.push_back({"checkout", "control", h0, 600, 600});
  v.uniques.push_back({"checkout", "treatment", h0, 600, 600});
  v.experiments.push_back({"checkout", 3});
  v.input.lines = 10'000;
  v.input.valid_beacons = 9'000;
  v.input.duplicates = 700;
  v.input.bad_rows = 300;
  v.input.bad_rows_by_reason = {{"json.syntax", 200}, {"field.missing", 100}};
  v.min_ts = kT0;
  v.max_ts = kT0 + 3 * kHour - 1;
  return v;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("duet_api_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = store::OpenStore("sqlite:" + (dir_ / "s.sqlite").string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    cache_ = std::make_unique<ViewCache>(store_.get(), [this] { return now_; });
    ApiOptions o;
    o.refresh_ms = 2000;
    o.max_staleness_ms = 6000;
    api_ = std::make_unique<Api>(
        cache_.get(), &probe_, o, [this] { return now_; }, &EmbeddedAssets());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Commit(const core::Views& v) {
    auto gen = store_->BeginBatch();
    ASSERT_TRUE(gen.ok());
    store::BatchRun run;
    run.generation = *gen;
    run.started_ms = now_ - 1500;
    run.finished_ms = now_ - 500;
    run.input = "master";
    run.high_water_mark_ms = v.max_ts;
    run.lines = v.input.lines;
    ASSERT_TRUE(store_->CommitBatch(*gen, v, run).ok());
    ASSERT_TRUE(cache_->Refresh().ok());
  }

  HttpResponse Get(const std::string& target, const std::string& method = "GET") {
    HttpRequest r;
    r.method = method;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    return api_->Handle(r);
  }

  // Parses a JSON body (kept alive in the test object).
  simdjson::dom::element Json(const HttpResponse& r) {
    docs_.push_back(std::make_unique<std::string>(r.body));
    auto parsed =
        parser_.emplace_back(std::make_unique<simdjson::dom::parser>())->parse(*docs_.back());
    EXPECT_FALSE(parsed.error()) << r.body;
    return parsed.value_unsafe();
  }

  std::filesystem::path dir_;
  int64_t now_ = kT0 + 5 * kHour;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ViewCache> cache_;
  ServeProbe probe_;
  std::unique_ptr<Api> api_;
  std::vector<std::unique_ptr<std::string>> docs_;
  std::vector<std::unique_ptr<simdjson::dom::parser>> parser_;
};

TEST_F(ApiTest, BeforeAnyViewsTheApiSays503AndHealthIsStillOk) {
  EXPECT_EQ(Get("/healthz").status, 200);
  const HttpResponse r = Get("/v1/experiments");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_EQ(Get("/readyz").status, 503);
}

TEST_F(ApiTest, ExperimentsListVariantsTrafficAndFirstLastSeen) {
  Commit(SampleViews());
  const HttpResponse r = Get("/v1/experiments");
  ASSERT_EQ(r.status, 200) << r.body;
  auto e = Json(r)["experiments"].at(0);
  EXPECT_EQ(std::string_view(e["id"]), "checkout");
  EXPECT_EQ(std::string_view(e["control"]), "control");
  EXPECT_EQ(int64_t(e["visitors"]), 2000);
  EXPECT_EQ(int64_t(e["variants"].at(1)["sessions"]), 2500);
  EXPECT_EQ(int64_t(e["visitors_in_multiple_variants"]), 3);
  EXPECT_EQ(std::string_view(e["first_seen"]), "2026-11-01T00:00:00Z");
  EXPECT_EQ(std::string_view(e["last_seen"]), "2026-11-01T02:00:00Z");
}

TEST_F(ApiTest, ReportCarriesTheFiguresOfTheReportJsonAndTheTests) {
  Commit(SampleViews());
  const HttpResponse r = Get("/v1/experiments/checkout/report");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json(r);
  EXPECT_EQ(std::string_view(j["unit"]), "visitor");
  EXPECT_EQ(std::string_view(j["control"]), "control");
  auto control = j["variants"].at(0);
  auto treatment = j["variants"].at(1);
  EXPECT_EQ(int64_t(control["conversions"]), 140);
  EXPECT_EQ(int64_t(control["sessions_sq"]), 7500);
  EXPECT_DOUBLE_EQ(double(control["revenue"]), 4000);
  EXPECT_DOUBLE_EQ(double(control["conversion_rate_visitor"]), 0.13);
  EXPECT_DOUBLE_EQ(double(treatment["conversion_rate_session"]), 160.0 / 2500);
  EXPECT_TRUE(control["vs_control"].is_null());
  auto lift = treatment["vs_control"]["conversion_rate_visitor"];
  EXPECT_EQ(std::string_view(lift["test"]), "two_proportion_z");
  EXPECT_NEAR(double(lift["absolute_lift"]), 0.02, 1e-12);
  EXPECT_EQ(std::string_view(treatment["vs_control"]["conversion_rate_session"]["test"]),
            "delta_method_z");
  EXPECT_EQ(std::string_view(treatment["vs_control"]["revenue_per_visitor"]["test"]), "welch_t");
  EXPECT_FALSE(bool(j["srm"]["mismatch"]));  // 1000 vs 1000
  EXPECT_TRUE(j["srm"]["warning"].is_null());
}

TEST_F(ApiTest, ReportWarnsOfASampleRatioMismatch) {
  core::Views v = SampleViews();
  v.totals[2].v.visitors = 1300;  // 1000 vs 1300 of an intended 50/50 split
  Commit(v);
  auto j = Json(Get("/v1/experiments/checkout/report"));
  EXPECT_TRUE(bool(j["srm"]["mismatch"]));
  EXPECT_NE(std::string_view(j["srm"]["warning"]).find("sample ratio mismatch"),
            std::string_view::npos);
}

TEST_F(ApiTest, ReportOverAnHourRangeSumsHourlyRowsPerVisitorHour) {
  Commit(SampleViews());
  const HttpResponse r = Get("/v1/experiments/checkout/report?from=2026-11-01T01:00:00Z&to=" +
                             std::to_string(kT0 + 3 * kHour));
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json(r);
  EXPECT_EQ(std::string_view(j["unit"]), "visitor_hour");
  EXPECT_EQ(std::string_view(j["from"]), "2026-11-01T01:00:00Z");
  EXPECT_EQ(int64_t(j["variants"].at(0)["visitors"]), 450);  // hour 2 only
  EXPECT_EQ(int64_t(j["variants"].at(1)["conversions"]), 60);
}

TEST_F(ApiTest, ReportRejectsWhatItCannotAnswerNamingTheParameter) {
  Commit(SampleViews());
  struct Case {
    std::string target;
    int status;
    std::string detail;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/experiments/nope/report", 404, "experiment 'nope'"},
           {"/v1/experiments/checkout/report?control=v9", 422, "no variant 'v9'"},
           {"/v1/experiments/checkout/report?confidence=1.5", 400, "'confidence'"},
           {"/v1/experiments/checkout/report?colour=red", 400, "'colour' is not known"},
           {"/v1/experiments/checkout/report?from=yesterday", 400, "'from': 'yesterday'"},
           {"/v1/experiments/checkout/report?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            422, "'from' must be before 'to'"},
           {"/v1/experiments/checkout/report?to=1&to=2", 400, "more than once"},
           {"/v1/experiments/checkout/report?from=%zz", 400, "percent-encoding"},
           {"/v1/nothing", 404, "no route"},
           {"/v1/experiments/checkout/report?from=2026-11-01T05:10:00Z&to=2026-11-01T05:50:00Z",
            422, "select no whole hour"},
       }) {
    const HttpResponse r = Get(c.target);
    EXPECT_EQ(r.status, c.status) << c.target << " " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << c.target;
    EXPECT_NE(r.body.find(c.detail), std::string::npos) << c.target << " " << r.body;
  }
  const HttpResponse post = Get("/v1/experiments", "POST");
  EXPECT_EQ(post.status, 405);
  ASSERT_FALSE(post.headers.empty());
  EXPECT_EQ(post.headers[0].first, "Allow");
}

TEST_F(ApiTest, TimesAcceptAnUnencodedUtcOffsetAndEchoedBytesStayValidUtf8) {
  Commit(SampleViews());
  // '+' in a query is a space unless percent-encoded; "+00:00" is still understood.
  auto j = Json(Get("/v1/experiments/checkout/report?from=2026-11-01T01:00:00+00:00"));
  EXPECT_EQ(std::string_view(j["from"]), "2026-11-01T01:00:00Z");
  const HttpResponse r = Get("/v1/experiments/%FF%FE/report");
  EXPECT_EQ(r.status, 404);
  auto problem = Json(r);  // simdjson rejects invalid UTF-8
  EXPECT_NE(std::string_view(problem["detail"]).find("\xEF\xBF\xBD"), std::string_view::npos);
}

TEST_F(ApiTest, ASeriesSpanningYearsNeedsARange) {
  core::Views v = SampleViews();
  // A device whose clock said 2000-01-01: one stray hour far before the others.
  core::FigureRow stray = v.hourly[2];
  stray.hour = 946'684'800'000 / kHour;
  v.hourly.insert(v.hourly.begin() + 2, stray);
  Commit(v);
  const HttpResponse r = Get("/v1/experiments/checkout/timeseries?metric=sessions");
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("give 'from' and 'to'"), std::string::npos) << r.body;
  EXPECT_EQ(
      Get("/v1/experiments/checkout/timeseries?metric=sessions&from=2026-10-01T00:00:00Z").status,
      200);
}

TEST_F(ApiTest, ControlCanBeChosen) {
  Commit(SampleViews());
  auto j = Json(Get("/v1/experiments/checkout/report?control=treatment&confidence=0.9"));
  EXPECT_EQ(std::string_view(j["control"]), "treatment");
  EXPECT_TRUE(j["variants"].at(1)["vs_control"].is_null());
  EXPECT_NEAR(double(j["variants"].at(0)["vs_control"]["conversion_rate_visitor"]["absolute_lift"]),
              -0.02, 1e-12);
}

TEST_F(ApiTest, TimeseriesFillsHoursWithoutSessions) {
  Commit(SampleViews());
  const HttpResponse r = Get("/v1/experiments/checkout/timeseries?metric=conversions");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = Json(r);
  EXPECT_EQ(j["hours"].get_array().size(), 3u);
  auto values = j["series"].at(1)["values"];
  EXPECT_EQ(double(values.at(0)), 100);
  EXPECT_EQ(double(values.at(1)), 0);  // hour 1: no sessions
  auto rate = Json(Get("/v1/experiments/checkout/timeseries?metric=conversion_rate_session"));
  EXPECT_TRUE(rate["series"].at(0)["values"].at(1).is_null());  // 0 / 0
  EXPECT_DOUBLE_EQ(double(rate["series"].at(0)["values"].at(0)), 80.0 / 1500);
  EXPECT_EQ(Get("/v1/experiments/checkout/timeseries").status, 400);
  const HttpResponse bad = Get("/v1/experiments/checkout/timeseries?metric=happiness");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("conversion_rate_visitor"), std::string::npos);  // lists the metrics
}

TEST_F(ApiTest, UniquesForTheSiteAndPerVariant) {
  Commit(SampleViews());
  auto site = Json(Get("/v1/uniques?window=24h"));
  EXPECT_TRUE(site["experiment"].is_null());
  EXPECT_EQ(int64_t(site["series"].at(0)["values"].at(2)), 1900);
  auto exp = Json(Get("/v1/uniques?window=1h&experiment=checkout"));
  EXPECT_EQ(exp["series"].get_array().size(), 2u);
  EXPECT_EQ(Get("/v1/uniques?window=7d").status, 400);
  EXPECT_EQ(Get("/v1/uniques?experiment=nope").status, 404);
}

TEST_F(ApiTest, StatusReportsFreshnessAndBadRows) {
  Commit(SampleViews());
  now_ += 1000;
  auto j = Json(Get("/v1/status"));
  EXPECT_EQ(std::string_view(j["batch"]["high_water_mark"]), "2026-11-01T02:59:59.999Z");
  EXPECT_DOUBLE_EQ(double(j["batch"]["last_run"]["duration_s"]), 1.0);
  EXPECT_DOUBLE_EQ(double(j["refresh"]["age_s"]), 1.0);
  EXPECT_EQ(int64_t(j["input"]["bad_rows_by_reason"]["json.syntax"]), 200);
  EXPECT_TRUE(j["speed"]["max_event_time"].is_null());
}

TEST_F(ApiTest, ReadinessFollowsTheAgeOfTheViews) {
  Commit(SampleViews());
  EXPECT_EQ(Get("/readyz").status, 200);
  now_ += 7000;  // more than max_staleness_ms without a successful refresh
  const HttpResponse r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("7 s old"), std::string::npos) << r.body;
}

TEST_F(ApiTest, MetricsCountRequestsByRouteTemplate) {
  Commit(SampleViews());
  Get("/v1/experiments/checkout/report");
  Get("/v1/experiments/nope/report");
  const HttpResponse m = Get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(
      m.body.find("duet_http_requests_total{code=\"200\",route=\"/v1/experiments/{id}/report\"} 1"),
      std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("code=\"404\",route=\"/v1/experiments/{id}/report\""), std::string::npos);
  EXPECT_NE(m.body.find("duet_http_request_duration_seconds_bucket"), std::string::npos);
  EXPECT_EQ(m.body.find("checkout"), std::string::npos);  // no value from a request as a label
}

TEST_F(ApiTest, TheDashboardAndTheOpenApiDocumentAreBuiltIn) {
  const HttpResponse page = Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<html"), std::string::npos);
  const HttpResponse spec = Get("/openapi.json");
  EXPECT_EQ(spec.status, 200);
  EXPECT_NE(spec.body.find("\"openapi\""), std::string::npos);
  EXPECT_EQ(Get("/assets/uplot.js").status, 200);
}

}  // namespace
}  // namespace duet::serve
