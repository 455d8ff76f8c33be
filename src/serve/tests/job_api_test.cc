// The job routes (serve/job_api.h) called directly over a real SQLite store: admin token,
// submitting, listing and showing jobs, and every error they answer with.
#include "serve/job_api.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"

namespace duet::serve {
namespace {

constexpr int64_t kT0 = 1'793'491'200'000;  // 2026-11-01T00:00:00Z
constexpr const char* kToken = "s3cret-token";

class JobApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto dir = std::filesystem::path(::testing::TempDir()) /
                     ("duet_job_api_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto path =
        dir /
        (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".sqlite");
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
    auto s = store::OpenStore("sqlite:" + path.string());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    api_ = std::make_unique<JobApi>(store_.get(), JobApiOptions{kToken}, [] { return kT0; });
  }

  static HttpRequest Req(std::string method, std::string path, std::string body = "",
                         std::string auth = std::string("Bearer ") + kToken) {
    HttpRequest r;
    r.method = std::move(method);
    const size_t q = path.find('?');
    r.path = path.substr(0, q);
    if (q != std::string::npos) r.query = path.substr(q + 1);
    r.body = std::move(body);
    if (!r.body.empty()) r.content_type = "application/json";
    r.authorization = std::move(auth);
    return r;
  }
  HttpResponse Call(const HttpRequest& r) const { return api_->Handle(r, r.path); }
  HttpResponse Post(const std::string& body) const { return Call(Req("POST", "/v1/jobs", body)); }

  static std::string Header(const HttpResponse& r, const std::string& name) {
    for (const auto& [k, v] : r.headers) {
      if (k == name) return v;
    }
    return "";
  }
  // The problem's detail.
  static std::string Detail(const HttpResponse& r) {
    EXPECT_EQ(r.content_type, "application/problem+json");
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(r.body).get(doc) != simdjson::SUCCESS) return "";
    std::string_view d;
    if (doc["detail"].get_string().get(d) != simdjson::SUCCESS) return "";
    return std::string(d);
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<JobApi> api_;
};

TEST_F(JobApiTest, SubmitQueuesAJobAndAnswers202WithItsLocation) {
  const HttpResponse r = Post(R"({"kind":"train","params":{"rounds":20,"force":true}})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Header(r, "Location"), "/v1/jobs/1");
  EXPECT_EQ(r.body,
            R"({"id":1,"kind":"train","params":{"force":true,"rounds":20},"state":"queued",)"
            R"("created_at":"2026-11-01T00:00:00Z","started_at":null,"finished_at":null,)"
            R"("worker":null,"lease_until":null,"message":null})");
  auto stored = store_->GetJob(1);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->kind, "train");
  EXPECT_EQ(stored->params, R"({"force":true,"rounds":20})");
  const HttpResponse batch = Post(R"({"kind":"batch"})");
  ASSERT_EQ(batch.status, 202) << batch.body;
  EXPECT_EQ(store_->GetJob(2)->params, "{}");
}

TEST_F(JobApiTest, ShowReturnsStatusTimestampsMessageAndLog) {
  ASSERT_EQ(Post(R"({"kind":"batch","params":{}})").status, 202);
  auto c = store_->ClaimJob({"batch"}, "host:42", kT0 + 1000, 30'000);
  ASSERT_TRUE(c.ok() && c->has_value());
  ASSERT_TRUE(store_->AppendJobLog(1, (*c)->token, "batch: 10 lines\n").ok());
  HttpResponse r = Call(Req("GET", "/v1/jobs/1"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("state":"running","created_at":"2026-11-01T00:00:00Z",)"
                        R"("started_at":"2026-11-01T00:00:01Z","finished_at":null,)"
                        R"("worker":"host:42","lease_until":"2026-11-01T00:00:31Z",)"
                        R"("message":null,"log":"batch: 10 lines\n"})"),
            std::string::npos)
      << r.body;
  ASSERT_TRUE(
      store_->FinishJob(1, (*c)->token, false, "duet exited with status 1", kT0 + 5000).ok());
  r = Call(Req("GET", "/v1/jobs/1"));
  EXPECT_NE(r.body.find(R"("state":"failed")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("finished_at":"2026-11-01T00:00:05Z")"), std::string::npos);
  EXPECT_NE(r.body.find(R"("lease_until":null,"message":"duet exited with status 1")"),
            std::string::npos);
}

TEST_F(JobApiTest, ListShowsTheNewestFirstWithoutLogsAndHonoursLimit) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Post(R"({"kind":"batch"})").status, 202);
  HttpResponse r = Call(Req("GET", "/v1/jobs"));
  ASSERT_EQ(r.status, 200);
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(r.body).get(doc), simdjson::SUCCESS);
  simdjson::dom::array jobs;
  ASSERT_EQ(doc["jobs"].get_array().get(jobs), simdjson::SUCCESS);
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(int64_t(jobs.at(0)["id"]), 3);
  EXPECT_EQ(jobs.at(0)["log"].error(), simdjson::NO_SUCH_FIELD);
  r = Call(Req("GET", "/v1/jobs?limit=1"));
  ASSERT_EQ(p.parse(r.body).get(doc), simdjson::SUCCESS);
  EXPECT_EQ(doc["jobs"].get_array().value().size(), 1u);
  EXPECT_EQ(Call(Req("GET", "/v1/jobs?limit=0")).status, 400);
  EXPECT_EQ(Detail(Call(Req("GET", "/v1/jobs?state=failed"))),
            "query parameter 'state' is not known here; expected limit");
}

TEST_F(JobApiTest, WithoutAConfiguredTokenTheRoutesAreDisabled) {
  JobApi off(store_.get(), JobApiOptions{}, [] { return kT0; });
  const HttpRequest r = Req("GET", "/v1/jobs");
  const HttpResponse a = off.Handle(r, r.path);
  EXPECT_EQ(a.status, 403);
  EXPECT_EQ(Detail(a),
            "admin routes are disabled: start duet serve with --admin-token or DUET_ADMIN_TOKEN");
}

TEST_F(JobApiTest, MissingOrWrongTokenIs401WithAChallengeAndQueuesNothing) {
  for (const std::string& auth :
       std::vector<std::string>{"", "Bearer wrong", "Bearer s3cret-toke", "Bearer s3cret-tokenX",
                                "Basic czNjcmV0LXRva2Vu", std::string(kToken)}) {
    const HttpResponse r = Call(Req("POST", "/v1/jobs", R"({"kind":"batch"})", auth));
    EXPECT_EQ(r.status, 401) << "'" << auth << "'";
    EXPECT_EQ(Header(r, "WWW-Authenticate"), "Bearer realm=\"duet admin\"");
  }
  EXPECT_EQ(store_->ListJobs(10)->size(), 0u);
  // The scheme is case-insensitive.
  EXPECT_EQ(Call(Req("GET", "/v1/jobs", "", std::string("bearer ") + kToken)).status, 200);
}

TEST_F(JobApiTest, BadSubmissionsGetPreciseErrors) {
  auto detail = [&](const std::string& body, int status) {
    const HttpResponse r = Post(body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    return Detail(r);
  };
  EXPECT_EQ(detail(R"({"kind":"deploy"})", 422),
            "kind: 'deploy' is not a job kind; expected train or batch");
  EXPECT_EQ(detail(R"({"params":{}})", 422), "kind: required (train or batch)");
  EXPECT_EQ(detail(R"({"kind":5})", 422), "kind: expected a string, train or batch");
  EXPECT_EQ(detail(R"({"kind":"train","params":{"rounds":0}})", 422),
            "params.rounds: expected an integer from 1 to 100000, got 0");
  EXPECT_EQ(detail(R"({"kind":"train","params":{"force":"yes"}})", 422),
            "params.force: expected true or false, got \"yes\"");
  EXPECT_EQ(detail(R"({"kind":"batch","params":{"input":"/etc"}})", 422),
            "params.input: batch jobs take no parameters (the input is the worker's "
            "configuration)");
  EXPECT_EQ(detail(R"({"kind":"batch","input":"/etc"})", 422),
            "body: unknown field 'input'; expected kind and params");
  EXPECT_EQ(detail(R"({"kind":"batch","params":[]})", 422), "params: expected an object, got []");
  EXPECT_EQ(detail("[]", 422).rfind("body: expected an object", 0), 0u);
  EXPECT_EQ(detail("{", 400).rfind("body: not valid JSON", 0), 0u);
  HttpRequest text = Req("POST", "/v1/jobs", R"({"kind":"batch"})");
  text.content_type = "text/plain";
  EXPECT_EQ(Call(text).status, 415);
  EXPECT_EQ(store_->ListJobs(10)->size(), 0u);
}

TEST_F(JobApiTest, UnknownJobsMethodsAndPathsAreRefused) {
  EXPECT_EQ(Detail(Call(Req("GET", "/v1/jobs/7"))), "no job 7");
  EXPECT_EQ(Call(Req("GET", "/v1/jobs/abc")).status, 404);
  EXPECT_EQ(Call(Req("GET", "/v1/jobs/-1")).status, 404);
  const HttpResponse del = Call(Req("DELETE", "/v1/jobs/1"));
  EXPECT_EQ(del.status, 405);
  EXPECT_EQ(Header(del, "Allow"), "GET, HEAD");
  const HttpResponse put = Call(Req("PUT", "/v1/jobs"));
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(Header(put, "Allow"), "GET, HEAD, POST");
}

TEST(SameSecretTest, ComparesWholeStrings) {
  EXPECT_TRUE(SameSecret("abc", "abc"));
  EXPECT_FALSE(SameSecret("abc", "abd"));
  EXPECT_FALSE(SameSecret("ab", "abc"));
  EXPECT_FALSE(SameSecret("abcd", "abc"));
  EXPECT_FALSE(SameSecret("", "abc"));
  EXPECT_TRUE(SameSecret("", ""));
}

}  // namespace
}  // namespace duet::serve
