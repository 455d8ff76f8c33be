// A small blocking HTTP/1.1 client (Boost.Beast) for the operations commands: `duet probe` (the
// image's health check) and `duet watch` (status probes and webhook alerts). One request per
// connection ("Connection: close"), plain http:// only.
//
// Contract:
// - One deadline covers connect, request and response: a server that accepts the connection
//   and never answers (a frozen process: the kernel still completes the handshake) fails with
//   `timed_out` set, after at most `timeout_ms` (name resolution is not covered; use IP
//   addresses where it matters).
// - Any HTTP answer is a value, whatever its status code; the caller decides what 2xx means.
// - Thread-safe: every call has its own io_context and socket.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace duet {

struct HttpUrl {
  std::string host;    // without brackets for IPv6
  std::string port;    // "80" when the URL has none
  std::string target;  // the path and query, "/" when the URL has none
};

// Parses http://HOST[:PORT][/PATH]. InvalidArgument naming `what` (e.g. "--url"), the text and
// the expected form otherwise.
Result<HttpUrl> ParseHttpUrl(std::string_view what, const std::string& text);

struct HttpCall {
  std::string method = "GET";
  std::string body;          // sent when not empty
  std::string content_type;  // of the body
  std::string user_agent = "duet";
  int64_t timeout_ms = 1000;
  size_t max_response_bytes = 8u << 20;
};

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Sends one request. The reply on any HTTP answer; Unavailable otherwise, its message naming the
// step and the cause ("cannot resolve H: …", "connect failed: …", "response failed: no answer
// within 1000 ms"); `*timed_out` (if given) tells whether the deadline passed.
Result<HttpReply> HttpFetch(const HttpUrl& url, const HttpCall& call, bool* timed_out = nullptr);

}  // namespace duet
