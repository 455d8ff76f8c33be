// WorkerMetrics and FetchLoopback (serve/worker_metrics.h) over real loopback sockets on port 0:
// /metrics of one worker covers its siblings', a sibling that is away or silent is left out and
// counted, and two workers asking each other at once both get their answer.
#include "serve/worker_metrics.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "serve/api.h"
#include "serve/tests/metrics_text.h"
#include "serve/view_cache.h"

namespace duet::serve {
namespace {

// A loopback port nothing listens on: bound, then closed.
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A loopback socket that listens and never accepts: connections succeed, nothing answers.
struct SilentPeer {
  SilentPeer() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~SilentPeer() { ::close(fd); }
  int fd = -1;
  int port = 0;
};

std::unique_ptr<HttpServer> Serve(HttpHandler h) {
  HttpServerOptions o;
  o.port = 0;
  o.threads = 1;
  auto s = StartHttpServer(o, std::move(h));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

HttpResponse Text(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

TEST(FetchLoopbackTest, GetsEveryPeerAtOnceAndNamesEachFailure) {
  auto ok = Serve([](const HttpRequest& r) { return Text("body of " + r.path); });
  auto failing = Serve([](const HttpRequest&) { return Text("no", 500); });
  const SilentPeer silent;
  const int closed = ClosedPort();
  const auto start = std::chrono::steady_clock::now();
  const auto got =
      FetchLoopback({ok->port(), failing->port(), silent.port, closed}, "/metrics/local", 300);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(got.size(), 4u);
  ASSERT_TRUE(got[0].ok()) << got[0].status().ToString();
  EXPECT_EQ(*got[0], "body of /metrics/local");
  ASSERT_FALSE(got[1].ok());
  EXPECT_NE(got[1].status().ToString().find("answered status 500, expected 200"), std::string::npos)
      << got[1].status().ToString();
  ASSERT_FALSE(got[2].ok());
  EXPECT_NE(
      got[2].status().ToString().find(std::to_string(silent.port) + ": no answer within 300 ms"),
      std::string::npos)
      << got[2].status().ToString();
  ASSERT_FALSE(got[3].ok());
  EXPECT_NE(got[3].status().ToString().find("connect"), std::string::npos)
      << got[3].status().ToString();
  // One timeout for all, not one per peer.
  EXPECT_GE(took, std::chrono::milliseconds(290));
  EXPECT_LT(took, std::chrono::milliseconds(2000));
}

// Two workers (and optionally a third slot), each with its probe and peer server.
class WorkerMetricsTest : public ::testing::Test {
 protected:
  void StartWorkers(std::vector<int> extra_ports) {
    for (int i = 0; i < 2; ++i) {
      servers_[i] = Serve([this, i](const HttpRequest& r) { return metrics_[i]->HandlePeer(r); });
    }
    std::vector<int> ports = {servers_[0]->port(), servers_[1]->port()};
    for (int p : extra_ports) ports.push_back(p);
    for (int i = 0; i < 2; ++i) {
      WorkerMetricsOptions o;
      o.slot = i;
      o.peer_ports = ports;
      o.timeout_ms = 300;
      metrics_[i] =
          std::make_unique<WorkerMetrics>(&probes_[i], &cache_, o, [this] { return now_; });
    }
  }
  void TearDown() override {
    for (auto& s : servers_) {
      if (s) s->Stop(1000);
    }
  }

  int64_t now_ = 1'800'000'000'000;
  ViewCache cache_{nullptr, [this] { return now_; }};  // never refreshed: no views
  ServeProbe probes_[2];
  std::unique_ptr<WorkerMetrics> metrics_[2];
  std::unique_ptr<HttpServer> servers_[2];
};

TEST_F(WorkerMetricsTest, MetricsOfEitherWorkerCountTheRequestsOfBoth) {
  StartWorkers({});
  for (int i = 0; i < 3; ++i) probes_[0].Request("/v1/experiments", 200, 0.001);
  for (int i = 0; i < 4; ++i) probes_[1].Request("/v1/experiments", 200, 0.002);
  probes_[1].Request("/v1/status", 503, 0.0001);
  for (int w = 0; w < 2; ++w) {
    const std::string text = metrics_[w]->MergedText();
    EXPECT_EQ(ValueOf(text, "duet_http_requests_total{code=\"200\",route=\"/v1/experiments\"}"),
              "7")
        << "worker " << w << ":\n"
        << text;
    EXPECT_EQ(ValueOf(text, "duet_http_requests_total{code=\"503\",route=\"/v1/status\"}"), "1");
    EXPECT_EQ(ValueOf(text, "duet_http_request_duration_seconds_count{route=\"/v1/experiments\"}"),
              "7");
    EXPECT_EQ(ValueOf(text, "duet_serve_workers"), "2") << text;
    EXPECT_EQ(ValueOf(text, "duet_serve_metrics_peer_errors_total"), "0") << text;
  }
  // The local text is the worker's own alone.
  EXPECT_EQ(ValueOf(metrics_[0]->LocalText(),
                    "duet_http_requests_total{code=\"200\",route=\"/v1/experiments\"}"),
            "3");
}

TEST_F(WorkerMetricsTest, GaugesAreTheLargestOfTheWorkers) {
  StartWorkers({});
  probes_[0].ModelLoaded(true, 3);
  probes_[1].ModelLoaded(true, 4);
  const std::string text = metrics_[0]->MergedText();
  EXPECT_EQ(ValueOf(text, "duet_model_version"), "4") << text;
  EXPECT_EQ(ValueOf(text, "duet_model_loads_total{result=\"ok\"}"), "2") << text;
}

TEST_F(WorkerMetricsTest, ASiblingThatIsAwayIsLeftOutAndCounted) {
  const SilentPeer silent;
  StartWorkers({ClosedPort(), silent.port});
  probes_[0].Request("/healthz", 200, 0.001);
  probes_[1].Request("/healthz", 200, 0.001);
  std::string text = metrics_[0]->MergedText();
  EXPECT_EQ(ValueOf(text, "duet_http_requests_total{code=\"200\",route=\"/healthz\"}"), "2")
      << text;
  EXPECT_EQ(ValueOf(text, "duet_serve_workers"), "2") << text;
  EXPECT_EQ(ValueOf(text, "duet_serve_metrics_peer_errors_total"), "2") << text;
  text = metrics_[0]->MergedText();
  EXPECT_EQ(ValueOf(text, "duet_serve_metrics_peer_errors_total"), "4") << text;
  // Worker 1's failures are its own, summed in.
  text = metrics_[1]->MergedText();
  EXPECT_EQ(ValueOf(text, "duet_serve_metrics_peer_errors_total"), "6") << text;
}

TEST_F(WorkerMetricsTest, TwoWorkersAskingEachOtherAtOnceBothGetAnswers) {
  StartWorkers({});
  probes_[0].Request("/x", 200, 0.001);
  for (int round = 0; round < 20; ++round) {
    auto a = std::async(std::launch::async, [this] { return metrics_[0]->MergedText(); });
    auto b = std::async(std::launch::async, [this] { return metrics_[1]->MergedText(); });
    for (std::string text : {a.get(), b.get()}) {
      ASSERT_EQ(ValueOf(text, "duet_serve_workers"), "2") << "round " << round << ":\n" << text;
    }
  }
}

TEST_F(WorkerMetricsTest, TheApisMetricsRouteAnswersForEveryWorkerOnlyWhenGivenThem) {
  StartWorkers({});
  probes_[1].Request("/v1/experiments", 200, 0.001);
  HttpRequest r;
  r.method = "GET";
  r.path = "/metrics";
  const Api merged(
      &cache_, &probes_[0], ApiOptions{}, [this] { return now_; }, nullptr, nullptr, nullptr,
      metrics_[0].get());
  const HttpResponse res = merged.Handle(r);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(ValueOf(res.body, "duet_http_requests_total{code=\"200\",route=\"/v1/experiments\"}"),
            "1")
      << res.body;
  EXPECT_EQ(ValueOf(res.body, "duet_serve_workers"), "2");
  // A lone process (--workers 0 or 1): its own metrics, exactly as before.
  const Api alone(
      &cache_, &probes_[0], ApiOptions{}, [this] { return now_; }, nullptr);
  const std::string own = probes_[0].Text(now_, 0);
  const HttpResponse lone = alone.Handle(r);
  EXPECT_EQ(lone.body, own);
  EXPECT_EQ(lone.body.find("duet_serve_workers"), std::string::npos);
}

TEST_F(WorkerMetricsTest, ThePeerListenerAnswersOnlyMetricsLocal) {
  StartWorkers({});
  HttpRequest r;
  r.method = "GET";
  r.path = "/metrics/local";
  EXPECT_EQ(metrics_[0]->HandlePeer(r).status, 200);
  r.path = "/v1/experiments";
  EXPECT_EQ(metrics_[0]->HandlePeer(r).status, 404);
  r.path = "/metrics/local";
  r.method = "POST";
  const HttpResponse post = metrics_[0]->HandlePeer(r);
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.body.find("allowed: GET, HEAD"), std::string::npos);
}

}  // namespace
}  // namespace duet::serve
