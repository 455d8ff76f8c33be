// What every `duet` subcommand shares: exit codes, the error report for a person plus its
// structured log line, and option parsing with --help.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "serve/http_server.h"
#include "serve/status_page.h"
#include "util/config.h"
#include "util/result.h"
#include "util/status.h"

namespace duet {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints an error for a person and a structured log line; returns the exit code (kExitUsage for
// InvalidArgument, else kExitFailure).
int Fail(std::string_view command, const Status& s);

// Parses args into cfg, handling --help (prints "usage: duet COMMAND [options]", the summary and
// the options). Returns -1 to continue, or an exit code.
int ParseOrHelp(const std::string& command, const std::string& summary, Config* cfg,
                const std::vector<std::string>& args);

// Splits HOST:PORT (an IPv6 host in brackets); InvalidArgument naming the flag otherwise.
Status ParseHostPort(const std::string& flag, const std::string& value, std::string* host,
                     uint16_t* port);

// "http://HOST:PORT/" for a server listening on host:port (0.0.0.0 shown as 127.0.0.1).
std::string ServerUrl(const std::string& host, int port);

// Declares --status-listen on `cfg` (a role without an API of its own: stream, archive, jobs
// worker).
void DefineStatusListen(Config* cfg);

// Serves `page` (/healthz, /readyz, /metrics) on --status-listen; nullptr when it is empty.
// `page` must outlive the server. InvalidArgument / Unavailable as StartHttpServer.
Result<std::unique_ptr<serve::HttpServer>> StartStatusServer(const Config& cfg,
                                                             const serve::StatusPage* page);

// "HOST:PID": names this process among others (job workers, writer-lease holders).
std::string ProcessName();

}  // namespace duet
