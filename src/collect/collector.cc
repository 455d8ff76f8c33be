#include "collect/collector.h"

#include <librdkafka/rdkafka.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <simdjson.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "collect/overload.h"
#include "log/kafka_conf.h"
#include "util/log.h"

namespace duet::collect {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

Result<BodyType> ParseContentType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string lower(t);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "application/json") return BodyType::kJson;
  if (lower == "application/x-ndjson" || lower == "application/ndjson") return BodyType::kNdjson;
  return Status::NotSupported("content type '" + std::string(content_type) +
                              "' is not accepted (expected application/json, "
                              "application/x-ndjson or application/ndjson)");
}

namespace {

std::string VisitorOf(const simdjson::dom::element& e) {
  if (!e.is_object()) return {};
  std::string_view v;
  if (e["visitor"].get(v) != simdjson::SUCCESS) return {};
  return std::string(v);
}

void AddLine(std::string_view line, simdjson::dom::parser* parser, std::vector<Message>* out) {
  Message m{std::string(line), {}};
  simdjson::dom::element e;
  if (parser->parse(line).get(e) == simdjson::SUCCESS) m.key = VisitorOf(e);
  out->push_back(std::move(m));
}

}  // namespace

std::vector<Message> SplitBody(std::string_view body, BodyType type) {
  thread_local simdjson::dom::parser parser;
  std::vector<Message> out;
  if (type == BodyType::kJson) {
    simdjson::dom::element doc;
    if (parser.parse(body).get(doc) == simdjson::SUCCESS) {
      simdjson::dom::array array;
      if (doc.get_array().get(array) == simdjson::SUCCESS) {
        for (const simdjson::dom::element e : array) {
          out.push_back(Message{simdjson::minify(e), VisitorOf(e)});
        }
      } else {
        out.push_back(Message{simdjson::minify(doc), VisitorOf(doc)});
      }
      return out;
    }
    // Not valid JSON: each line becomes a message (and a bad row downstream).
  }
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    AddLine(body.substr(start, end - start), &parser, &out);
    start = end + 1;
  }
  return out;
}

namespace {

// The largest beacon produced: below the broker's default message size limit (1,000,012 bytes
// on the wire with headers) and librdkafka's message.max.bytes (1,000,000).
constexpr size_t kMaxMessageBytes = 900'000;

// The discarded body of a request shed at its header is read in chunks of this size.
constexpr size_t kDiscardChunkBytes = 16 * 1024;

std::string InFlightDetail(int64_t max) {
  return "the collector already has " + std::to_string(max) +
         " requests in flight (--max-in-flight); retry after Retry-After seconds";
}

class Metrics {
 public:
  Metrics()
      : registry_(std::make_shared<prometheus::Registry>()),
        requests_(prometheus::BuildCounter()
                      .Name("duet_collect_requests_total")
                      .Help("HTTP requests answered, by status code")
                      .Register(*registry_)),
        beacons_(prometheus::BuildCounter()
                     .Name("duet_collect_beacons_total")
                     .Help("Beacons acknowledged by Kafka")
                     .Register(*registry_)
                     .Add({})),
        rejected_(prometheus::BuildCounter()
                      .Name("duet_collect_beacons_rejected_total")
                      .Help("Beacons of requests answered 503 (the client retries them)")
                      .Register(*registry_)
                      .Add({})),
        shed_(prometheus::BuildCounter()
                  .Name("duet_collect_shed_total")
                  .Help("Requests not accepted, by reason: in_flight (429), queue_full, "
                        "delivery_timeout, kafka_error, shutting_down (503)")
                  .Register(*registry_)),
        in_flight_(prometheus::BuildGauge()
                       .Name("duet_collect_in_flight")
                       .Help("POST /v1/beacons requests received (header read) and not yet "
                             "answered")
                       .Register(*registry_)
                       .Add({})),
        max_in_flight_(prometheus::BuildGauge()
                           .Name("duet_collect_max_in_flight")
                           .Help("The bound on duet_collect_in_flight; beyond it, 429")
                           .Register(*registry_)
                           .Add({})),
        latency_(prometheus::BuildHistogram()
                     .Name("duet_collect_request_duration_seconds")
                     .Help("Time from a request's arrival to its answer")
                     .Register(*registry_)
                     .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01,
                                                                      0.025, 0.05, 0.1, 0.25, 0.5,
                                                                      1, 2.5, 5, 10})),
        queued_(prometheus::BuildGauge()
                    .Name("duet_collect_kafka_queue_messages")
                    .Help("Beacons waiting in the producer queue")
                    .Register(*registry_)
                    .Add({})),
        ready_(prometheus::BuildGauge()
                   .Name("duet_collect_kafka_ready")
                   .Help("1 when a broker answered within the last check")
                   .Register(*registry_)
                   .Add({})) {}

  void Answered(unsigned code, double seconds) {
    requests_.Add({{"code", std::to_string(code)}}).Increment();
    latency_.Observe(seconds);
  }
  // A request not accepted for `reason` (429 or 503).
  void Shed(ShedReason reason) {
    shed_.Add({{"reason", std::string(ShedReasonName(reason))}}).Increment();
  }
  void InFlight(int64_t now, int64_t max) {
    in_flight_.Set(static_cast<double>(now));
    max_in_flight_.Set(static_cast<double>(max));
  }
  prometheus::Counter& beacons() { return beacons_; }
  prometheus::Counter& rejected() { return rejected_; }
  prometheus::Gauge& queued() { return queued_; }
  prometheus::Gauge& ready() { return ready_; }
  std::string Text() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Counter& beacons_;
  prometheus::Counter& rejected_;
  prometheus::Family<prometheus::Counter>& shed_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& max_in_flight_;
  prometheus::Histogram& latency_;
  prometheus::Gauge& queued_;
  prometheus::Gauge& ready_;
};

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
  auto* t = static_cast<RequestTracker*>(m->_private);
  if (t == nullptr) return;
  const bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
  t->Delivered(ok, ShedReasonOfKafkaError(m->err), ok ? "" : rd_kafka_err2str(m->err));
}

class CollectorImpl;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, CollectorImpl* owner) : stream_(std::move(socket)), owner_(owner) {}
  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

 private:
  void Read();
  void OnHeader(beast::error_code ec);
  // A POST /v1/beacons beyond --max-in-flight: its body is read into a small reused buffer and
  // dropped (no parse, no produce), then it is answered 429 on the same connection.
  void ShedAtHeader();
  void DiscardBody();
  void OnRead(beast::error_code ec);
  void Handle();
  void Send(http::response<http::string_body> res);
  void Problem(http::status status, std::string detail, bool close = false);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::buffer_body>> discard_;
  std::unique_ptr<char[]> sink_;  // kDiscardChunkBytes, allocated on the first shed request
  std::optional<InFlightLimit::Permit> permit_;  // held from the header until the answer
  http::request<http::string_body> req_;
  std::shared_ptr<http::response<http::string_body>> res_;
  std::shared_ptr<http::response<http::empty_body>> head_res_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::chrono::steady_clock::time_point started_;
  bool head_ = false;  // the request was HEAD: the response has headers only
  CollectorImpl* owner_;
};

class CollectorImpl final : public Collector {
 public:
  explicit CollectorImpl(CollectorOptions o)
      : options_(std::move(o)),
        threads_(options_.threads > 0 ? options_.threads
                                      : std::max(1u, std::thread::hardware_concurrency())),
        limit_(std::max<int64_t>(1, options_.max_in_flight)),
        ioc_(threads_),
        acceptor_(net::make_strand(ioc_)),
        accept_retry_(acceptor_.get_executor()) {}

  ~CollectorImpl() override {
    Stop();
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
  }

  Status Init() {
    if (options_.brokers.empty()) return Status::InvalidArgument("--brokers is required");
    if (options_.topic.empty()) return Status::InvalidArgument("--topic is required");
    if (options_.max_in_flight < 1) {
      return Status::InvalidArgument(
          "--max-in-flight is " + std::to_string(options_.max_in_flight) + "; expected at least 1");
    }
    metrics_.InFlight(0, limit_.max());
    char err[512];
    auto made = log::NewKafkaConf({
        {"bootstrap.servers", options_.brokers},
        {"client.id", "duet-collect"},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
        {"compression.type", "lz4"},
        {"queue.buffering.max.messages", std::to_string(options_.max_buffered_messages)},
        {"message.timeout.ms", std::to_string(options_.delivery_timeout_ms)},
        {"log_level", "3"},
    });
    if (!made.ok()) return made.status();
    rd_kafka_conf_t* conf = *made;
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument(std::string("kafka producer: ") + err);
    }
    beast::error_code ec;
    const auto address = net::ip::make_address(options_.host, ec);
    if (ec)
      return Status::InvalidArgument("--listen: '" + options_.host + "' is not an IP address");
    const tcp::endpoint ep(address, options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::IoError("cannot listen on " + options_.host + ":" +
                             std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { ioc_.run(); });
    poller_ = std::thread([this] { PollLoop(); });
    checker_ = std::thread([this] { CheckLoop(); });
    return Status::Ok();
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;  // new requests get 503 from now on
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      accept_retry_.cancel();
    });
    // Requests in flight complete with their delivery reports (the poller keeps serving them)
    // and their answers are written; then the producer is flushed and the threads stop.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(options_.delivery_timeout_ms + 2000);
    while ((inflight_.load() > 0 || writes_.load() > 0) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (rk_ != nullptr) rd_kafka_flush(rk_, 1000);
    stop_poll_ = true;
    if (poller_.joinable()) poller_.join();
    if (checker_.joinable()) checker_.join();
    ioc_.stop();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  bool stopping() const { return stopping_.load(); }
  // A POST being handled, from before the stopping check until its answer is being written.
  void BeginRequest() { ++inflight_; }
  void EndRequest() { --inflight_; }
  void WriteStarted() { ++writes_; }
  void WriteDone() { --writes_; }

  const CollectorOptions& options() const { return options_; }
  Metrics& metrics() { return metrics_; }
  InFlightLimit& limit() { return limit_; }
  bool ready() const { return ready_.load(); }

  // Produces the request's messages; `done` runs (on any thread) once all are acknowledged, or
  // as soon as one failed or could not be queued.
  void Produce(std::vector<Message> messages, RequestTracker::Done done) {
    const auto n = static_cast<int64_t>(messages.size());
    const auto queue_full = [&] {
      return "the producer queue is full (" + std::to_string(options_.max_buffered_messages) +
             " beacons)";
    };
    // A request the queue has no room for is refused whole, before any of it is queued: fewer
    // partly produced requests (each one a retry the consumers deduplicate).
    if (static_cast<int64_t>(rd_kafka_outq_len(rk_)) + n >
        static_cast<int64_t>(options_.max_buffered_messages)) {
      done(RequestTracker::Outcome{false, ShedReason::kQueueFull, queue_full()});
      return;
    }
    RequestTracker* t = RequestTracker::Create(n, std::move(done));
    int64_t produced = 0;
    for (Message& m : messages) {
      const rd_kafka_resp_err_t e = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(options_.topic.c_str()),
          RD_KAFKA_V_VALUE(m.value.data(), m.value.size()),
          RD_KAFKA_V_KEY(m.key.empty() ? nullptr : m.key.data(), m.key.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        t->Fail(ShedReasonOfKafkaError(e),
                e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? queue_full() : rd_kafka_err2str(e));
        break;
      }
      ++produced;
    }
    t->Release(n - produced + 1);  // the ones never queued, and the producing thread's hold
  }

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (!acceptor_.is_open()) return;
      if (ec) {
        // E.g. too many open files: try again shortly instead of spinning.
        Log(LogLevel::kWarn, "collect.accept_failed", {{"error", ec.message()}});
        accept_retry_.expires_after(std::chrono::milliseconds(100));
        accept_retry_.async_wait([this](beast::error_code) {
          if (acceptor_.is_open()) Accept();
        });
        return;
      }
      std::make_shared<Session>(std::move(s), this)->Run();
      Accept();
    });
  }

  // Serves delivery reports and checks that a broker answers, until Stop.
  // Serves delivery reports until Stop.
  void PollLoop() {
    while (!stop_poll_.load()) {
      rd_kafka_poll(rk_, 50);
      metrics_.queued().Set(rd_kafka_outq_len(rk_));
      metrics_.InFlight(limit_.in_flight(), limit_.max());
    }
  }

  // Every 2 s: does a broker answer (within 1 s), and is the producer still usable?
  void CheckLoop() {
    auto next_check = std::chrono::steady_clock::now();
    while (!stop_poll_.load()) {
      if (std::chrono::steady_clock::now() < next_check) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      {
        const rd_kafka_metadata_t* md = nullptr;
        bool ok = rd_kafka_metadata(rk_, 0, nullptr, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (md != nullptr) rd_kafka_metadata_destroy(md);
        char fatal[256];
        if (rd_kafka_fatal_error(rk_, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          // The idempotent producer cannot go on (every produce fails): not ready, and say why.
          if (ready_.load()) Log(LogLevel::kError, "collect.kafka_fatal", {{"error", fatal}});
          ok = false;
        }
        ready_ = ok;
        metrics_.ready().Set(ok ? 1 : 0);
        next_check = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      }
    }
  }

  const CollectorOptions options_;
  const int threads_;
  // Declared before ioc_: the sessions (owned by ioc_'s handlers) hold its permits and are
  // destroyed with ioc_, before it.
  InFlightLimit limit_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  rd_kafka_t* rk_ = nullptr;
  uint16_t port_ = 0;
  std::vector<std::thread> workers_;
  std::thread poller_;
  std::thread checker_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stop_poll_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> inflight_{0};  // POSTs not yet answered (BeginRequest .. EndRequest)
  std::atomic<int64_t> writes_{0};    // answers being written
  net::steady_timer accept_retry_;
  Metrics metrics_;
};

void Session::Read() {
  head_ = false;
  parser_.emplace();
  parser_->body_limit(owner_->options().max_body_bytes);
  stream_.expires_after(std::chrono::seconds(30));
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

// The header is in: a body announced over the limit is refused before it is sent, and a client
// that asked (Expect: 100-continue, as curl does for bodies over 1 KiB) is told to send it —
// otherwise it waits a second before sending anyway.
void Session::OnHeader(beast::error_code ec) {
  if (ec) {
    OnRead(ec);
    return;
  }
  const auto& req = parser_->get();
  const auto length = parser_->content_length();
  if (length.has_value() && *length > owner_->options().max_body_bytes) {
    OnRead(http::error::body_limit);
    return;
  }
  // Admission: a beacon request takes a slot now, before its body is read, and keeps it until it
  // is answered; without one it is shed cheaply.
  const std::string_view target(req.target().data(), req.target().size());
  if (req.method() == http::verb::post && target.substr(0, target.find('?')) == "/v1/beacons" &&
      !owner_->limit().TryAcquire(&permit_)) {
    ShedAtHeader();
    return;
  }
  const auto read_body = [self = shared_from_this()] {
    http::async_read(self->stream_, self->buffer_, *self->parser_,
                     [self](beast::error_code e, size_t) { self->OnRead(e); });
  };
  if (beast::iequals(req[http::field::expect], "100-continue")) {
    continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    http::async_write(stream_, *continue_, [read_body](beast::error_code e, size_t) {
      if (!e) read_body();
    });
    return;
  }
  read_body();
}

void Session::ShedAtHeader() {
  started_ = std::chrono::steady_clock::now();
  owner_->metrics().Shed(ShedReason::kInFlight);
  req_ = {};
  req_.base() = parser_->get().base();  // for keep-alive; the body is never stored
  const std::string detail = InFlightDetail(owner_->limit().max());
  if (beast::iequals(req_[http::field::expect], "100-continue") || parser_->is_done()) {
    // The client waits for our word before sending the body (or there is none): answer now. After
    // a 100-continue refusal the connection is closed, since the client may send the body anyway.
    const bool close = !parser_->is_done();
    Problem(http::status::too_many_requests, detail, close);
    return;
  }
  discard_.emplace(std::move(*parser_));
  if (sink_ == nullptr) sink_ = std::make_unique<char[]>(kDiscardChunkBytes);
  DiscardBody();
}

void Session::DiscardBody() {
  discard_->get().body().data = sink_.get();
  discard_->get().body().size = kDiscardChunkBytes;
  http::async_read(
      stream_, buffer_, *discard_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec == http::error::need_buffer) ec = {};
        if (ec) {  // the client went away, or sent a malformed or oversized body: nothing to answer
          beast::error_code ignored;
          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        if (!self->discard_->is_done()) {
          self->DiscardBody();
          return;
        }
        self->discard_.reset();
        self->Problem(http::status::too_many_requests, InFlightDetail(self->owner_->limit().max()));
      });
}

void Session::OnRead(beast::error_code ec) {
  started_ = std::chrono::steady_clock::now();
  if (ec == http::error::body_limit) {
    Problem(http::status::payload_too_large,
            "the body is larger than " + std::to_string(owner_->options().max_body_bytes) +
                " bytes; send fewer beacons per request",
            /*close=*/true);
    return;
  }
  if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    Problem(http::status::bad_request, "malformed HTTP request: " + ec.message(), /*close=*/true);
    return;
  }
  if (ec) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  req_ = parser_->release();
  head_ = req_.method() == http::verb::head;
  Handle();
}

void Session::Problem(http::status status, std::string detail, bool close) {
  http::response<http::string_body> res{status, 11};
  res.set(http::field::content_type, "application/problem+json");
  std::string body = "{\"type\":\"about:blank\",\"title\":\"";
  body += std::string(http::obsolete_reason(status));
  body += "\",\"status\":" + std::to_string(static_cast<unsigned>(status)) + ",\"detail\":\"";
  for (const char c : detail) {
    if (c == '"' || c == '\\') body.push_back('\\');
    body.push_back(c);
  }
  body += "\"}";
  res.body() = std::move(body);
  if (status == http::status::service_unavailable || status == http::status::too_many_requests) {
    res.set(http::field::retry_after, std::to_string(owner_->options().retry_after_s));
  }
  res.keep_alive(!close && req_.keep_alive());
  Send(std::move(res));
}

void Session::Handle() {
  const std::string_view target(req_.target().data(), req_.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  const auto text = [&](http::status status, std::string body, std::string_view type) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::content_type, std::string(type));
    res.body() = std::move(body);
    res.keep_alive(req_.keep_alive());
    Send(std::move(res));
  };
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (req_.method() != http::verb::get && req_.method() != http::verb::head) {
      Problem(http::status::method_not_allowed, std::string(path) + " accepts GET");
      return;
    }
    if (path == "/healthz")
      return text(http::status::ok, "{\"status\":\"ok\"}\n", "application/json");
    if (path == "/metrics") {
      owner_->metrics().InFlight(owner_->limit().in_flight(), owner_->limit().max());
      return text(http::status::ok, owner_->metrics().Text(),
                  "text/plain; version=0.0.4; charset=utf-8");
    }
    if (owner_->ready() && !owner_->stopping())
      return text(http::status::ok, "{\"status\":\"ready\"}\n", "application/json");
    return Problem(http::status::service_unavailable,
                   "no Kafka broker of " + owner_->options().brokers + " answered");
  }
  if (path != "/v1/beacons") {
    Problem(http::status::not_found, "no resource " + std::string(path) +
                                         " (POST /v1/beacons, GET /healthz, /readyz, /metrics)");
    return;
  }
  if (req_.method() != http::verb::post) {
    Problem(http::status::method_not_allowed, "/v1/beacons accepts POST");
    return;
  }
  const auto ct = req_[http::field::content_type];
  auto type = ParseContentType(std::string_view(ct.data(), ct.size()));
  if (!type.ok()) {
    Problem(http::status::unsupported_media_type, type.status().message());
    return;
  }
  // Counted before the stopping check, so that Stop either sees this request or it sees
  // `stopping`; uncounted only once the answer is being written (Send counts writes).
  owner_->BeginRequest();
  if (owner_->stopping()) {
    owner_->metrics().Shed(ShedReason::kShuttingDown);
    Problem(http::status::service_unavailable, "the collector is shutting down", /*close=*/true);
    owner_->EndRequest();
    return;
  }
  std::vector<Message> messages = SplitBody(req_.body(), *type);
  std::string().swap(req_.body());  // the producer copies the beacons: the body is not needed
  const size_t n = messages.size();
  // Requests that could never succeed get 413, not a 503 the client would retry forever.
  if (n > owner_->options().max_buffered_messages) {
    Problem(http::status::payload_too_large,
            std::to_string(n) + " beacons in one request; at most " +
                std::to_string(owner_->options().max_buffered_messages));
    owner_->EndRequest();
    return;
  }
  for (const Message& m : messages) {
    if (m.value.size() + m.key.size() > kMaxMessageBytes) {  // librdkafka counts both
      Problem(http::status::payload_too_large,
              "a beacon of " + std::to_string(m.value.size() + m.key.size()) +
                  " bytes with its visitor; at most " + std::to_string(kMaxMessageBytes));
      owner_->EndRequest();
      return;
    }
  }
  if (n == 0) {
    text(http::status::accepted, "{\"accepted\":0}\n", "application/json");
    owner_->EndRequest();
    return;
  }
  owner_->Produce(
      std::move(messages), [self = shared_from_this(), n](const RequestTracker::Outcome& outcome) {
        net::post(self->stream_.get_executor(), [self, n, outcome] {
          if (outcome.accepted) {
            self->owner_->metrics().beacons().Increment(static_cast<double>(n));
            http::response<http::string_body> res{http::status::accepted, 11};
            res.set(http::field::content_type, "application/json");
            res.body() = "{\"accepted\":" + std::to_string(n) + "}\n";
            res.keep_alive(self->req_.keep_alive());
            self->Send(std::move(res));
          } else {
            self->owner_->metrics().rejected().Increment(static_cast<double>(n));
            self->owner_->metrics().Shed(outcome.reason);
            self->Problem(http::status::service_unavailable,
                          "Kafka did not acknowledge every beacon (" + outcome.error +
                              "); retry the request");
          }
          self->owner_->EndRequest();  // after Send counted the write: Stop never sees a gap
        });
      });
}

void Session::Send(http::response<http::string_body> res) {
  permit_.reset();  // answered: the slot is free for the next request
  res.set(http::field::server, "duet-collect");
  res.prepare_payload();
  owner_->metrics().Answered(
      res.result_int(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  // A fresh deadline for the write: the one set for reading may have run out while the request
  // waited for Kafka.
  stream_.expires_after(std::chrono::seconds(30));
  owner_->WriteStarted();
  const bool keep_alive = res.keep_alive();
  auto after = [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
    self->owner_->WriteDone();
    if (ec || !keep_alive) {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    self->Read();
  };
  if (head_) {
    // Headers only (with the Content-Length the body would have), as HEAD requires.
    head_res_ = std::make_shared<http::response<http::empty_body>>();
    head_res_->base() = res.base();
    http::async_write(stream_, *head_res_, std::move(after));
    return;
  }
  res_ = std::make_shared<http::response<http::string_body>>(std::move(res));
  http::async_write(stream_, *res_, std::move(after));
}

}  // namespace

Result<std::unique_ptr<Collector>> Collector::Start(const CollectorOptions& options) {
  auto c = std::make_unique<CollectorImpl>(options);
  DUET_RETURN_IF_ERROR(c->Init());
  return std::unique_ptr<Collector>(std::move(c));
}

}  // namespace duet::collect
