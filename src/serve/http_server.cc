#include "serve/http_server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "util/json_writer.h"
#include "util/log.h"

namespace duet::serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string_view Title(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

class Server;

// One connection: read a request, answer it, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server* server) : stream_(std::move(socket)), server_(server) {}
  void Start();
  void Close();

 private:
  void Read();
  void OnRead(beast::error_code ec);
  void Write(HttpResponse response, bool keep_alive, bool counted);

  beast::tcp_stream stream_;
  Server* const server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  bool first_ = true;
  bool head_ = false;  // the request being answered is a HEAD
};

class Server final : public HttpServer {
 public:
  Server(HttpServerOptions options, HttpHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        ioc_(static_cast<int>(options_.threads)),
        acceptor_(asio::make_strand(ioc_)),
        retry_(acceptor_.get_executor()) {}

  ~Server() override { Stop(0); }

  Status Listen() {
    beast::error_code ec;
    const asio::ip::address address = asio::ip::make_address(options_.host, ec);
    if (ec) {
      return Status::InvalidArgument("--listen: host '" + options_.host +
                                     "' is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)");
    }
    const tcp::endpoint endpoint(address, static_cast<uint16_t>(options_.port));
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    if (options_.listen_fd >= 0) {
      acceptor_.assign(endpoint.protocol(), options_.listen_fd, ec);
      if (ec) return Status::Unavailable("cannot accept on the inherited socket: " + ec.message());
    } else {
      acceptor_.open(endpoint.protocol(), ec);
      if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) acceptor_.bind(endpoint, ec);
      if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return Status::Unavailable("cannot listen on " + where + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    asio::post(acceptor_.get_executor(), [this] { Accept(); });
    for (size_t i = 0; i < options_.threads; ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
    return Status::Ok();
  }

  int port() const override { return port_; }

  void Stop(int grace_ms) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    stopping_.store(true);
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ec;
      acceptor_.close(ec);
      retry_.cancel();
      // Idle connections (waiting for a next request) are closed — after the drain time, during
      // which a request that arrives is still answered (with Connection: close); a request in
      // progress is answered first.
      auto close_idle = [this] {
        std::lock_guard<std::mutex> l(sessions_mu_);
        for (const auto& weak : sessions_) {
          if (auto s = weak.lock()) s->Close();
        }
      };
      if (options_.drain_ms <= 0) return close_idle();
      retry_.expires_after(std::chrono::milliseconds(options_.drain_ms));
      retry_.async_wait([close_idle](beast::error_code) { close_idle(); });
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    while (std::chrono::steady_clock::now() < deadline && open_.load() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  const HttpServerOptions& options() const { return options_; }
  bool stopping() const { return stopping_.load(); }

  // Counts requests being handled; false (and nothing counted) when over the limit.
  bool Admit() {
    if (in_flight_.fetch_add(1) >= options_.max_in_flight) {
      in_flight_.fetch_sub(1);
      return false;
    }
    return true;
  }
  void Done() { in_flight_.fetch_sub(1); }

  HttpResponse Handle(const HttpRequest& r) { return handler_(r); }

  void Track(const std::shared_ptr<Session>& s) {
    open_.fetch_add(1);
    std::lock_guard<std::mutex> l(sessions_mu_);
    sessions_.insert(s);
  }
  void Untrack(const std::weak_ptr<Session>& s) {
    open_.fetch_sub(1);
    std::lock_guard<std::mutex> l(sessions_mu_);
    sessions_.erase(s);
  }

 private:
  // Runs on the acceptor's strand (as does everything that touches the acceptor).
  void Accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket s) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        // Out of file descriptors, say: wait before the next accept instead of spinning.
        Log(LogLevel::kWarn, "serve.accept_failed", {{"error", ec.message()}});
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](beast::error_code e) {
          if (!e && acceptor_.is_open()) Accept();
        });
        return;
      }
      if (static_cast<size_t>(open_.load()) >= options_.max_connections) {
        beast::error_code ignored;
        s.close(ignored);  // over the connection limit
      } else {
        auto session = std::make_shared<Session>(std::move(s), this);
        Track(session);
        session->Start();
      }
      if (acceptor_.is_open()) Accept();
    });
  }

  const HttpServerOptions options_;
  const HttpHandler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  int port_ = 0;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> in_flight_{0};
  std::atomic<int64_t> open_{0};
  std::mutex sessions_mu_;
  std::set<std::weak_ptr<Session>, std::owner_less<std::weak_ptr<Session>>> sessions_;
};

void Session::Start() {
  // Run on the connection's strand.
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
}

void Session::Close() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    // Only between requests: a request being read or answered finishes first.
    if (!self->parser_.has_value() || !self->parser_->got_some()) {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    }
  });
}

void Session::Read() {
  if (server_->stopping() && server_->options().drain_ms <= 0) {
    stream_.close();
    server_->Untrack(weak_from_this());
    return;
  }
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(server_->options().max_header_bytes));
  parser_->body_limit(server_->options().max_body_bytes);
  // The first request of a connection must arrive within the request timeout; a next one within
  // the idle timeout (then the request timeout applies to the rest of it — simplified: the whole
  // read is bounded by the idle timeout for keep-alive requests).
  const int wait_ms = server_->stopping() ? std::min(server_->options().drain_ms,
                                                     server_->options().idle_timeout_ms)
                      : first_            ? server_->options().request_timeout_ms
                                          : server_->options().idle_timeout_ms;
  stream_.expires_after(std::chrono::milliseconds(wait_ms));
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
}

void Session::OnRead(beast::error_code ec) {
  first_ = false;
  if (ec == http::error::body_limit) {
    return Write(Problem(413, "request body larger than " +
                                  std::to_string(server_->options().max_body_bytes) + " bytes"),
                 false, false);
  }
  if (ec == http::error::header_limit) {
    return Write(Problem(431, "request header larger than " +
                                  std::to_string(server_->options().max_header_bytes) + " bytes"),
                 false, false);
  }
  if (ec) {
    // A request Beast could not parse gets 400; the end of the connection, a timeout or a reset
    // just closes it.
    const bool malformed =
        &ec.category() == &http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message;
    if (malformed) {
      return Write(Problem(400, "malformed HTTP request: " + ec.message()), false, false);
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
    server_->Untrack(weak_from_this());
    return;
  }
  const http::request<http::string_body>& req = parser_->get();
  head_ = req.method() == http::verb::head;
  if (!server_->Admit()) {
    HttpResponse r = Problem(429, "too many requests in progress; retry shortly");
    r.headers.emplace_back("Retry-After", "1");
    return Write(std::move(r), req.keep_alive() && !server_->stopping(), false);
  }
  HttpRequest r;
  r.method = std::string(req.method_string());
  const std::string_view target(req.target().data(), req.target().size());
  const size_t q = target.find('?');
  r.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
  if (auto it = req.find(http::field::content_type); it != req.end()) {
    r.content_type = std::string(it->value());
  }
  if (auto it = req.find(http::field::accept_encoding); it != req.end()) {
    r.accept_encoding = std::string(it->value());
  }
  if (auto it = req.find(http::field::authorization); it != req.end()) {
    r.authorization = std::string(it->value());
  }
  r.body = req.body();
  HttpResponse response;
  try {
    response = server_->Handle(r);
  } catch (const std::exception& e) {  // never expected: the handler returns errors as values
    Log(LogLevel::kError, "serve.handler_failed", {{"path", r.path}, {"error", e.what()}});
    response = Problem(500, "internal error");
  }
  // Decided after the handler: a server stopping meanwhile closes the connection after this.
  Write(std::move(response), req.keep_alive() && !server_->stopping(), true);
}

void Session::Write(HttpResponse response, bool keep_alive, bool counted) {
  response_ = {};
  response_.version(11);
  response_.result(static_cast<unsigned>(response.status));
  response_.set(http::field::server, "duet");
  response_.set(http::field::content_type, response.content_type);
  for (auto& [name, value] : response.headers) response_.set(name, value);
  response_.keep_alive(keep_alive);
  if (head_) {
    response_.content_length(response.body.size());  // as for GET, without the body
  } else {
    response_.body() = std::move(response.body);
    response_.prepare_payload();
  }
  head_ = false;
  stream_.expires_after(std::chrono::milliseconds(server_->options().request_timeout_ms));
  http::async_write(stream_, response_,
                    [self = shared_from_this(), keep_alive, counted](beast::error_code ec, size_t) {
                      if (counted) self->server_->Done();
                      if (!ec && keep_alive) return self->Read();
                      beast::error_code ignored;
                      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      self->stream_.close();
                      self->server_->Untrack(self->weak_from_this());
                    });
}

}  // namespace

std::string ValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;  // length of a valid sequence starting here (0: invalid)
    auto cont = [&](size_t k, unsigned char lo, unsigned char hi) {
      if (i + k >= s.size()) return false;
      const auto b = static_cast<unsigned char>(s[i + k]);
      return b >= lo && b <= hi;
    };
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = cont(1, 0x80, 0xBF) ? 2 : 0;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
      n = cont(1, lo, hi) && cont(2, 0x80, 0xBF) ? 3 : 0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
      n = cont(1, lo, hi) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
    }
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

HttpResponse Problem(int status, std::string detail) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = "{\"type\":\"about:blank\",\"title\":";
  AppendJsonString(&r.body, Title(status));
  r.body += ",\"status\":";
  AppendJsonInt(&r.body, status);
  r.body += ",\"detail\":";
  AppendJsonString(&r.body, ValidUtf8(detail));
  r.body += "}";
  return r;
}

Result<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options,
                                                    HttpHandler handler) {
  HttpServerOptions o = options;
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.port < 0 || o.port > 65535) {
    return Status::InvalidArgument("--listen: port " + std::to_string(o.port) +
                                   " is not in 0..65535");
  }
  auto server = std::make_unique<Server>(std::move(o), std::move(handler));
  DUET_RETURN_IF_ERROR(server->Listen());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace duet::serve
