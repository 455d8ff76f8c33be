#include "serve/worker_metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

#include "serve/api.h"
#include "serve/metrics_merge.h"
#include "serve/view_cache.h"
#include "util/log.h"

namespace duet::serve {
namespace {

// A sibling's metrics are a few tens of KiB; more is not a metrics answer.
constexpr size_t kMaxAnswerBytes = 16u << 20;
constexpr std::string_view kLocalPath = "/metrics/local";

// One connection of FetchLoopback.
struct Exchange {
  int fd = -1;
  size_t written = 0;
  bool connected = false;
  bool done = false;  // the peer closed the connection after its answer
  std::string answer;
  std::optional<Status> error;
};

std::string Where(int port) { return "metrics peer 127.0.0.1:" + std::to_string(port); }

// The body of a complete HTTP/1.1 answer with status 200, or why not.
Result<std::string> Body(int port, const std::string& answer) {
  const size_t head_end = answer.find("\r\n\r\n");
  if (!answer.starts_with("HTTP/1.") || answer.size() < 12 || head_end == std::string::npos) {
    return Status::Unavailable(Where(port) + ": answer is not HTTP (" +
                               std::to_string(answer.size()) + " bytes)");
  }
  const std::string status = answer.substr(9, 3);
  if (status != "200") {
    return Status::Unavailable(Where(port) + ": answered status " + status + ", expected 200");
  }
  std::string head = answer.substr(0, head_end);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string body = answer.substr(head_end + 4);
  const size_t at = head.find("\r\ncontent-length:");
  if (at != std::string::npos) {
    const size_t length = std::strtoull(head.c_str() + at + 17, nullptr, 10);
    if (length != body.size()) {
      return Status::Unavailable(Where(port) +
                                 ": answer truncated: " + std::to_string(body.size()) + " of " +
                                 std::to_string(length) + " body bytes");
    }
  }
  return body;
}

}  // namespace

std::vector<Result<std::string>> FetchLoopback(const std::vector<int>& ports,
                                               const std::string& path, int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::vector<Exchange> ex(ports.size());
  for (size_t i = 0; i < ports.size(); ++i) {
    Exchange& e = ex[i];
    e.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (e.fd < 0) {
      e.error = Status::Unavailable(Where(ports[i]) + ": socket: " + std::strerror(errno));
      continue;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(ports[i]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(e.fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 &&
        errno != EINPROGRESS) {
      e.error = Status::Unavailable(Where(ports[i]) + ": connect: " + std::strerror(errno));
    }
  }
  std::vector<pollfd> pfds;
  std::vector<size_t> which;
  char buffer[16384];
  while (true) {
    pfds.clear();
    which.clear();
    for (size_t i = 0; i < ex.size(); ++i) {
      if (ex[i].error || ex[i].done) continue;
      const bool writing = ex[i].written < request.size();
      pfds.push_back({ex[i].fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0});
      which.push_back(i);
    }
    if (pfds.empty()) break;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    if (::poll(pfds.data(), pfds.size(), static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (size_t k = 0; k < pfds.size(); ++k) {
      if (pfds[k].revents == 0) continue;
      Exchange& e = ex[which[k]];
      const int port = ports[which[k]];
      if (!e.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(e.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          e.error = Status::Unavailable(Where(port) + ": connect: " + std::strerror(err));
          continue;
        }
        e.connected = true;
      }
      if (e.written < request.size()) {
        const ssize_t w =
            ::send(e.fd, request.data() + e.written, request.size() - e.written, MSG_NOSIGNAL);
        if (w > 0) {
          e.written += static_cast<size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          e.error = Status::Unavailable(Where(port) + ": send: " + std::strerror(errno));
        }
        continue;
      }
      const ssize_t r = ::recv(e.fd, buffer, sizeof buffer, 0);
      if (r > 0) {
        e.answer.append(buffer, static_cast<size_t>(r));
        if (e.answer.size() > kMaxAnswerBytes) {
          e.error = Status::Unavailable(Where(port) + ": answer over " +
                                        std::to_string(kMaxAnswerBytes) + " bytes");
        }
      } else if (r == 0) {
        e.done = true;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        e.error = Status::Unavailable(Where(port) + ": recv: " + std::strerror(errno));
      }
    }
  }
  std::vector<Result<std::string>> out;
  out.reserve(ex.size());
  for (size_t i = 0; i < ex.size(); ++i) {
    if (ex[i].fd >= 0) ::close(ex[i].fd);
    if (ex[i].error) {
      out.emplace_back(*ex[i].error);
    } else if (!ex[i].done) {
      out.emplace_back(Status::Unavailable(Where(ports[i]) + ": no answer within " +
                                           std::to_string(timeout_ms) + " ms"));
    } else {
      out.push_back(Body(ports[i], ex[i].answer));
    }
  }
  return out;
}

struct WorkerMetrics::Impl {
  Impl(ServeProbe* p, const ViewCache* c, WorkerMetricsOptions o, std::function<int64_t()> now)
      : probe(p), cache(c), options(std::move(o)), now_ms(std::move(now)) {
    for (size_t i = 0; i < options.peer_ports.size(); ++i) {
      if (static_cast<int>(i) == options.slot) continue;
      sibling_slots.push_back(static_cast<int>(i));
      sibling_ports.push_back(options.peer_ports[i]);
    }
  }

  // This worker's own families: the probe's, then the peer error counter.
  std::vector<prometheus::MetricFamily> Local() const {
    const auto snap = cache->Current();
    std::vector<prometheus::MetricFamily> families =
        probe->Collect(now_ms(), snap != nullptr ? snap->loaded_ms : 0);
    for (prometheus::MetricFamily& f : registry->Collect()) families.push_back(std::move(f));
    return families;
  }

  void PeerFailed(size_t sibling, const Status& error) const {
    peer_errors.Increment();
    const int64_t now = now_ms();
    std::lock_guard<std::mutex> l(log_mu);
    if (last_log_ms && now - *last_log_ms < options.log_interval_ms) {
      ++unlogged;
      return;
    }
    Log(LogLevel::kWarn, "serve.metrics_peer_failed",
        {{"slot", options.slot},
         {"peer_slot", sibling_slots[sibling]},
         {"peer_port", sibling_ports[sibling]},
         {"error", error.ToString()},
         {"failures_not_logged", unlogged}});
    last_log_ms = now;
    unlogged = 0;
  }

  ServeProbe* const probe;
  const ViewCache* const cache;
  const WorkerMetricsOptions options;
  const std::function<int64_t()> now_ms;
  std::vector<int> sibling_slots;  // the other slots, in order
  std::vector<int> sibling_ports;  // their peer ports
  const std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter& peer_errors =
      prometheus::BuildCounter()
          .Name("duet_serve_metrics_peer_errors_total")
          .Help("Sibling workers that did not answer for /metrics in time (left out of it)")
          .Register(*registry)
          .Add({});
  mutable std::mutex log_mu;
  mutable std::optional<int64_t> last_log_ms;  // GUARDED_BY(log_mu)
  mutable int64_t unlogged = 0;                // GUARDED_BY(log_mu)
};

WorkerMetrics::WorkerMetrics(ServeProbe* probe, const ViewCache* cache,
                             WorkerMetricsOptions options, std::function<int64_t()> now_ms)
    : impl_(std::make_unique<Impl>(probe, cache, std::move(options), std::move(now_ms))) {}

WorkerMetrics::~WorkerMetrics() = default;

std::string WorkerMetrics::LocalText() const { return SerializeFamilies(impl_->Local()); }

std::string WorkerMetrics::MergedText() const {
  const std::vector<Result<std::string>> answers =
      FetchLoopback(impl_->sibling_ports, std::string(kLocalPath), impl_->options.timeout_ms);
  std::vector<std::vector<prometheus::MetricFamily>> peers;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!answers[i].ok()) {
      impl_->PeerFailed(i, answers[i].status());
      continue;
    }
    auto parsed = ParsePrometheusText(*answers[i]);
    if (!parsed.ok()) {
      impl_->PeerFailed(i, parsed.status());
      continue;
    }
    peers.push_back(std::move(*parsed));
  }
  // Collected after the siblings answered, so that this scrape's failures are in it.
  std::vector<std::vector<prometheus::MetricFamily>> sources;
  sources.reserve(peers.size() + 1);
  sources.push_back(impl_->Local());
  for (auto& p : peers) sources.push_back(std::move(p));
  std::vector<prometheus::MetricFamily> merged = MergeFamilies(sources);
  prometheus::MetricFamily workers;
  workers.name = "duet_serve_workers";
  workers.help = "Worker processes whose metrics this answer covers (itself included)";
  workers.type = prometheus::MetricType::Gauge;
  workers.metric.emplace_back();
  workers.metric.back().gauge.value = static_cast<double>(sources.size());
  merged.push_back(std::move(workers));
  return SerializeFamilies(merged);
}

HttpResponse WorkerMetrics::HandlePeer(const HttpRequest& request) const {
  if (request.path != kLocalPath) {
    return Problem(404, "no route " + request.path + " on the worker's peer listener; only " +
                            std::string(kLocalPath));
  }
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse r = Problem(405, "method " + request.method + " is not allowed on " +
                                      std::string(kLocalPath) + "; allowed: GET, HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = LocalText();
  return r;
}

}  // namespace duet::serve
