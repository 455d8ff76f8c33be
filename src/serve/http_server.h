// HttpServer: an HTTP/1.1 server on Boost.Beast/Asio for `duet serve` — keep-alive, a pool of
// threads running one io_context, request size and time limits, load shedding and graceful
// shutdown. It knows nothing of Duet's API: every request goes to a Handler.
//
// Contract:
// - The handler runs on a server thread, possibly on several at once: it must be thread-safe and
//   quick (it answers from memory; nothing blocks on the network or the store).
// - Limits are answered by the server itself with application/problem+json bodies: a request
//   whose header exceeds max_header_bytes gets 431, a body over max_body_bytes 413, more than
//   max_in_flight requests received and not yet answered 429 (with Retry-After); a connection
//   that does not deliver its first request within request_timeout_ms is closed, and a kept-alive
//   one that does not deliver its next request within idle_timeout_ms too.
// - HEAD is answered like GET without the body (Content-Length as for GET).
// - Stop: stops accepting, lets requests in progress finish (each answered with
//   "Connection: close"), closes idle connections (after options.drain_ms, answering a request
//   that arrives meanwhile with "Connection: close"), and returns when every thread has finished
//   or `grace_ms` has passed (then remaining connections are cut).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "util/result.h"

namespace duet::serve {

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string path;    // the target before '?', not decoded
  std::string query;   // the target after '?', not decoded ("" if none)
  std::string content_type;
  std::string accept_encoding;
  std::string authorization;  // the Authorization header ("" if none)
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;     // 0: any free port (see HttpServer::port)
  size_t threads = 0;  // 0: one per core
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  int request_timeout_ms = 10'000;
  int idle_timeout_ms = 60'000;
  // Requests received and not yet fully answered (a slow reader's response counts until it
  // is written); more get 429.
  size_t max_in_flight = 4096;
  // Open connections; a connection beyond is closed at once after accept.
  size_t max_connections = 10'000;
  // A socket already bound and listening to accept on (the prefork master's, inherited by a
  // worker) instead of binding host:port; -1: bind. The server takes ownership.
  int listen_fd = -1;
  // On Stop, a kept-alive connection may still send one request (answered with
  // "Connection: close") for this long before it is closed: a client that wrote a request just
  // as the server began to stop gets an answer, not a reset. 0: close idle connections at once.
  int drain_ms = 0;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // The port it listens on (the chosen one when options.port was 0).
  virtual int port() const = 0;
  // See the contract above. Idempotent.
  virtual void Stop(int grace_ms) = 0;
};

// Binds, listens and starts the threads. InvalidArgument for a host that is not an IP address;
// Unavailable when the address cannot be bound (in use, no permission), naming it.
Result<std::unique_ptr<HttpServer>> StartHttpServer(const HttpServerOptions& options,
                                                    HttpHandler handler);

// An application/problem+json response (RFC 9457) with `title` taken from the status. `detail`
// may quote request bytes: invalid UTF-8 in it is replaced by U+FFFD.
HttpResponse Problem(int status, std::string detail);

// `s` with every byte that is not part of a valid UTF-8 sequence replaced by U+FFFD.
std::string ValidUtf8(std::string_view s);

}  // namespace duet::serve
