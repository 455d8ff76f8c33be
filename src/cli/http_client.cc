#include "cli/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace duet {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<HttpUrl> ParseHttpUrl(std::string_view what, const std::string& text) {
  const std::string scheme = "http://";
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(std::string(what) + " '" + text + "': " + why +
                                   "; expected http://HOST:PORT/PATH, e.g. "
                                   "http://127.0.0.1:8080/healthz");
  };
  if (!text.starts_with(scheme)) return bad("not an http:// URL");
  const std::string rest = text.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  HttpUrl u;
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.empty()) return bad("no host");
  u.port = "80";
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    u.port = authority.substr(colon + 1);
    authority = authority.substr(0, colon);
    if (u.port.empty() || u.port.size() > 5 ||
        u.port.find_first_not_of("0123456789") != std::string::npos) {
      return bad("port '" + u.port + "' is not a number");
    }
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  if (authority.empty()) return bad("no host");
  u.host = authority;
  return u;
}

Result<HttpReply> HttpFetch(const HttpUrl& url, const HttpCall& call, bool* timed_out) {
  if (timed_out != nullptr) *timed_out = false;
  asio::io_context io;
  beast::tcp_stream stream(io);
  asio::ip::tcp::resolver resolver(io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) return Status::Unavailable("cannot resolve " + url.host + ": " + ec.message());
  http::request<http::string_body> req{http::string_to_verb(call.method), url.target, 11};
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, call.user_agent);
  req.set(http::field::connection, "close");
  if (!call.body.empty() || call.method == "POST" || call.method == "PUT") {
    if (!call.content_type.empty()) req.set(http::field::content_type, call.content_type);
    req.body() = call.body;
    req.prepare_payload();
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(call.max_response_bytes);
  beast::flat_buffer buffer;
  const auto fail = [&](const char* step) -> Status {
    const bool late = ec == beast::error::timeout;
    if (timed_out != nullptr) *timed_out = late;
    return Status::Unavailable(
        std::string(step) + " failed: " +
        (late ? "no answer within " + std::to_string(call.timeout_ms) + " ms" : ec.message()));
  };
  // One deadline for the whole exchange: a server that accepts and never answers fails too.
  stream.expires_after(std::chrono::milliseconds(call.timeout_ms));
  stream.async_connect(endpoints, [&](beast::error_code e, const auto&) { ec = e; });
  io.run();
  if (ec) return fail("connect");
  io.restart();
  http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
  io.run();
  if (ec) return fail("request");
  io.restart();
  http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
  io.run();
  if (ec) return fail("response");
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  HttpReply reply;
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
  return reply;
}

}  // namespace duet
