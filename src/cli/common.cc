#include "cli/common.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "util/log.h"

namespace duet {

int Fail(std::string_view command, const Status& s) {
  Log(LogLevel::kError, std::string(command) + ".failed", {{"error", s.ToString()}});
  std::fprintf(stderr, "duet %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               s.ToString().c_str());
  return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

int ParseOrHelp(const std::string& command, const std::string& summary, Config* cfg,
                const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::printf("usage: duet %s [options]\n%s\n\noptions:\n%s", command.c_str(), summary.c_str(),
                  cfg->Help().c_str());
      return kExitOk;
    }
  }
  const Status s = cfg->Parse(args);
  if (!s.ok()) return Fail(command, s);
  return -1;
}

// Splits HOST:PORT (an IPv6 host in brackets); InvalidArgument naming the flag otherwise.
Status ParseHostPort(const std::string& flag, const std::string& value, std::string* host,
                     uint16_t* port) {
  const size_t colon = value.rfind(':');
  const auto bad = [&] {
    return Status::InvalidArgument(
        "--" + flag + " '" + value +
        "': expected HOST:PORT, e.g. 127.0.0.1:8080 (port 0 = any free)");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) return bad();
  std::string h = value.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  const std::string p = value.substr(colon + 1);
  if (p.size() > 5 || !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return bad();
  const int n = std::stoi(p);
  if (n > 65535) return bad();
  *host = h;
  *port = static_cast<uint16_t>(n);
  return Status::Ok();
}

std::string ServerUrl(const std::string& host, int port) {
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "http://" + (host == "0.0.0.0" ? std::string("127.0.0.1") : h) + ":" +
         std::to_string(port) + "/";
}

void DefineStatusListen(Config* cfg) {
  cfg->Define("status-listen", "",
              "HOST:PORT serving /healthz, /readyz and /metrics for probes and Prometheus (port "
              "0: any free port; empty: none)");
}

Result<std::unique_ptr<serve::HttpServer>> StartStatusServer(const Config& cfg,
                                                             const serve::StatusPage* page) {
  const std::string listen = cfg.String("status-listen");
  if (listen.empty()) return std::unique_ptr<serve::HttpServer>();
  serve::HttpServerOptions o;
  uint16_t port = 0;
  DUET_RETURN_IF_ERROR(ParseHostPort("status-listen", listen, &o.host, &port));
  o.port = port;
  o.threads = 1;
  o.max_in_flight = 64;
  o.max_connections = 256;
  o.max_body_bytes = 4096;
  auto server =
      serve::StartHttpServer(o, [page](const serve::HttpRequest& r) { return page->Handle(r); });
  if (!server.ok()) return server.status();
  Log(LogLevel::kInfo, "status.listen", {{"url", ServerUrl(o.host, (*server)->port())}});
  return std::move(*server);
}

std::string ProcessName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "localhost");
  return std::string(host) + ":" + std::to_string(::getpid());
}

}  // namespace duet
