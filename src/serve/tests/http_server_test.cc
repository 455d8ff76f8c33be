// HttpServer (serve/http_server.h) over real loopback sockets on port 0: keep-alive, limits
// answered by the server, load shedding and graceful shutdown.
#include "serve/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

namespace duet::serve {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// A keep-alive client connection.
class Client {
 public:
  explicit Client(int port) : socket_(ioc_) {
    socket_.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }
  http::response<http::string_body> Send(http::verb method, const std::string& target,
                                         std::string body = "", std::string header_value = "") {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!header_value.empty()) req.set("X-Big", header_value);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    http::response_parser<http::string_body> parser;
    parser.skip(method == http::verb::head);  // a HEAD answer has no body to read
    http::read(socket_, buffer_, parser);
    return parser.release();
  }
  // True when the server closed the connection (a read returns end of stream).
  bool Closed() {
    beast::error_code ec;
    http::response<http::string_body> res;
    http::read(socket_, buffer_, res, ec);
    return ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset;
  }

 private:
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::unique_ptr<HttpServer> Start(HttpServerOptions o, HttpHandler h) {
  o.port = 0;
  auto s = StartHttpServer(o, std::move(h));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(*s);
}

HttpResponse Echo(const HttpRequest& r) {
  HttpResponse out;
  out.content_type = "text/plain";
  out.body = r.method + " " + r.path + " ?" + r.query + " " + std::to_string(r.body.size());
  return out;
}

TEST(HttpServerTest, AnswersSeveralRequestsOnOneKeptAliveConnection) {
  auto server = Start({}, Echo);
  Client c(server->port());
  for (int i = 0; i < 3; ++i) {
    auto res = c.Send(http::verb::get, "/v1/x?a=" + std::to_string(i));
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(), "GET /v1/x ?a=" + std::to_string(i) + " 0");
    EXPECT_TRUE(res.keep_alive());
  }
  server->Stop(1000);
}

TEST(HttpServerTest, HeadAnswersTheHeadersOfGetWithoutTheBody) {
  auto server = Start({}, Echo);
  Client c(server->port());
  auto head = c.Send(http::verb::head, "/x");
  EXPECT_EQ(head.result_int(), 200u);
  // The length of the body the handler produced ("HEAD /x ? 0"), not sent.
  EXPECT_EQ(head[http::field::content_length], "11");
  EXPECT_TRUE(head.body().empty());
  // The connection is still in step: the next answer is the next request's.
  EXPECT_EQ(c.Send(http::verb::get, "/y").body(), "GET /y ? 0");
  server->Stop(1000);
}

TEST(HttpServerTest, ABodyOverTheLimitGets413AndAHugeHeader431) {
  HttpServerOptions o;
  o.max_body_bytes = 100;
  o.max_header_bytes = 1024;
  auto server = Start(o, Echo);
  {
    Client c(server->port());
    auto res = c.Send(http::verb::post, "/", std::string(101, 'x'));
    EXPECT_EQ(res.result_int(), 413u);
    EXPECT_EQ(res[http::field::content_type], "application/problem+json");
    EXPECT_NE(res.body().find("larger than 100 bytes"), std::string::npos);
  }
  {
    Client c(server->port());
    auto res = c.Send(http::verb::post, "/", std::string(100, 'x'));
    EXPECT_EQ(res.result_int(), 200u);
  }
  {
    Client c(server->port());
    auto res = c.Send(http::verb::get, "/", "", std::string(2000, 'h'));
    EXPECT_EQ(res.result_int(), 431u);
  }
  server->Stop(1000);
}

TEST(HttpServerTest, ShedsLoadBeyondTheRequestsInFlight) {
  HttpServerOptions o;
  o.max_in_flight = 1;
  o.threads = 2;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  auto server = Start(o, [&](const HttpRequest& r) {
    if (first.exchange(false)) {
      entered.set_value();
      released.wait();
    }
    return Echo(r);
  });
  auto slow = std::async(std::launch::async, [&] {
    Client c(server->port());
    return c.Send(http::verb::get, "/slow").result_int();
  });
  entered.get_future().wait();
  Client c(server->port());
  auto res = c.Send(http::verb::get, "/fast");
  EXPECT_EQ(res.result_int(), 429u);
  EXPECT_EQ(res[http::field::retry_after], "1");
  release.set_value();
  EXPECT_EQ(slow.get(), 200u);
  server->Stop(1000);
}

TEST(HttpServerTest, StopFinishesTheRequestInProgressAndClosesIdleConnections) {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  HttpServerOptions o;
  o.threads = 2;
  auto server = Start(o, [&](const HttpRequest& r) {
    if (r.path == "/slow" && first.exchange(false)) {
      entered.set_value();
      released.wait();
    }
    return Echo(r);
  });
  Client idle(server->port());
  EXPECT_EQ(idle.Send(http::verb::get, "/warm").result_int(), 200u);
  std::thread release_later;
  auto slow = std::async(std::launch::async, [&] {
    Client c(server->port());
    auto res = c.Send(http::verb::get, "/slow");
    return std::pair<unsigned, bool>(res.result_int(), res.keep_alive());
  });
  entered.get_future().wait();
  release_later = std::thread([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    release.set_value();
  });
  const auto t0 = std::chrono::steady_clock::now();
  server->Stop(5000);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  release_later.join();
  const auto [status, keep_alive] = slow.get();
  EXPECT_EQ(status, 200u);   // answered, not cut
  EXPECT_FALSE(keep_alive);  // with Connection: close
  EXPECT_TRUE(idle.Closed());
  EXPECT_LT(secs, 4.0);  // did not wait for the whole grace period
}

TEST(HttpServerTest, AnAddressInUseIsAClearError) {
  auto first = Start({}, Echo);
  HttpServerOptions o;
  o.port = first->port();
  auto second = StartHttpServer(o, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
  HttpServerOptions bad;
  bad.host = "localhost-ish";
  EXPECT_EQ(StartHttpServer(bad, Echo).status().code(), StatusCode::kInvalidArgument);
  first->Stop(1000);
}

}  // namespace
}  // namespace duet::serve
