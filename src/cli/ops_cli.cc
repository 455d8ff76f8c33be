#include "cli/ops_cli.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "batch/batch.h"
#include "cli/common.h"
#include "log/log.h"
#include "mongoraw/raw_collection.h"
#include "util/config.h"
#include "util/line_reader.h"
#include "util/log.h"

namespace duet {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Url {
  std::string host;
  std::string port;
  std::string target;
};

// http://HOST[:PORT][/PATH]; InvalidArgument naming the flag otherwise.
Result<Url> ParseHttpUrl(const std::string& text) {
  const std::string scheme = "http://";
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--url '" + text + "': " + why +
                                   "; expected http://HOST:PORT/PATH, e.g. "
                                   "http://127.0.0.1:8080/healthz");
  };
  if (!text.starts_with(scheme)) return bad("not an http:// URL");
  const std::string rest = text.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url u;
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
  u.host = authority;
  return u;
}

// Exit codes of probe: 0 healthy, 1 not.
int ProbeOnce(const Url& u, const std::string& url, int64_t timeout_ms) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  asio::ip::tcp::resolver resolver(io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(u.host, u.port, ec);
  if (ec) {
    std::fprintf(stderr, "duet probe: %s: cannot resolve %s: %s\n", url.c_str(), u.host.c_str(),
                 ec.message().c_str());
    return kExitFailure;
  }
  http::request<http::empty_body> req{http::verb::get, u.target, 11};
  req.set(http::field::host, u.host);
  req.set(http::field::user_agent, "duet-probe");
  req.set(http::field::connection, "close");
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  const auto fail = [&](const char* step) {
    std::fprintf(stderr, "duet probe: %s: %s failed: %s\n", url.c_str(), step,
                 ec == beast::error::timeout
                     ? ("no answer within " + std::to_string(timeout_ms) + " ms").c_str()
                     : ec.message().c_str());
    return kExitFailure;
  };
  // One deadline for the whole exchange: a server that accepts and never answers fails too.
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  stream.async_connect(endpoints, [&](beast::error_code e, const auto&) { ec = e; });
  io.run();
  if (ec) return fail("connect");
  io.restart();
  http::async_write(stream, req, [&](beast::error_code e, size_t) { ec = e; });
  io.run();
  if (ec) return fail("request");
  io.restart();
  http::async_read(stream, buffer, res, [&](beast::error_code e, size_t) { ec = e; });
  io.run();
  if (ec) return fail("response");
  const unsigned status = res.result_int();
  if (status >= 200 && status < 300) return kExitOk;
  std::string body = res.body().substr(0, 300);
  for (char& c : body) c = c == '\n' ? ' ' : c;
  std::fprintf(stderr, "duet probe: %s answered %u: %s\n", url.c_str(), status, body.c_str());
  return kExitFailure;
}

}  // namespace

int CmdProbe(const std::vector<std::string>& args) {
  Config c;
  c.Define("url", "http://127.0.0.1:8080/healthz", "the URL to GET (http:// only)");
  c.Define("timeout", "2s", "the whole exchange must finish within this long");
  if (int rc = ParseOrHelp("probe",
                           "GETs a URL and exits 0 on a 2xx answer, 1 otherwise (the reason on "
                           "stderr): the image's HEALTHCHECK, without curl.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  auto url = ParseHttpUrl(c.String("url"));
  if (!url.ok()) return Fail("probe", url.status());
  auto timeout = c.DurationMs("timeout");
  if (!timeout.ok()) return Fail("probe", timeout.status());
  if (*timeout < 1) return Fail("probe", Status::InvalidArgument("--timeout: expected > 0"));
  return ProbeOnce(*url, c.String("url"), *timeout);
}

int CmdImport(const std::vector<std::string>& args) {
  Config c;
  c.Define("input", "",
           "historical beacons: a folder (every *.ndjson and *.ndjson.zst below it) or one file");
  c.Define("out", "", "the master dataset in MongoDB: mongodb://HOST:PORT/DB.COLLECTION");
  c.Define("shards", "1", "the files are split into this many shards");
  c.Define("shard-index", "0",
           "the shard this run imports, 0 to shards-1: every shards-th file of the sorted list "
           "from this index on (an Indexed Job passes $(JOB_COMPLETION_INDEX))");
  c.Define("batch-lines", "10000", "lines written to MongoDB per bulk insert");
  if (int rc = ParseOrHelp("import",
                           "Loads historical NDJSON files into the master dataset in MongoDB "
                           "(a backfill; run duet batch afterwards). Idempotent: each line is "
                           "stored once, under an _id naming its file and line.",
                           &c, args);
      rc >= 0) {
    return rc;
  }
  for (const char* name : {"input", "out"}) {
    if (Status s = c.Require(name); !s.ok()) return Fail("import", s);
  }
  const std::string out = c.String("out");
  if (!out.starts_with("mongodb://") && !out.starts_with("mongodb+srv://")) {
    return Fail("import", Status::InvalidArgument(
                              "--out '" + out +
                              "': expected mongodb://HOST:PORT/DB.COLLECTION (a folder master "
                              "dataset needs no import: copy the files into it)"));
  }
  auto shards = c.Int("shards", 1, 100'000);
  if (!shards.ok()) return Fail("import", shards.status());
  auto index = c.Int("shard-index", 0, *shards - 1);
  if (!index.ok()) return Fail("import", index.status());
  auto batch_lines = c.Int("batch-lines", 1, 1'000'000);
  if (!batch_lines.ok()) return Fail("import", batch_lines.status());
  auto listed = batch::ListInputs(c.String("input"));
  if (!listed.ok()) return Fail("import", listed.status());
  std::vector<batch::InputFile> mine;
  uint64_t bytes = 0;
  for (size_t i = static_cast<size_t>(*index); i < listed->size();
       i += static_cast<size_t>(*shards)) {
    bytes += (*listed)[i].size;
    mine.push_back((*listed)[i]);
  }
  auto raw = mongoraw::OpenRawCollection(out);
  if (!raw.ok()) return Fail("import", raw.status());
  Log(LogLevel::kInfo, "import.start",
      {{"input", c.String("input")},
       {"out", out},
       {"shard", *index},
       {"shards", *shards},
       {"files", static_cast<int64_t>(mine.size())},
       {"files_all_shards", static_cast<int64_t>(listed->size())},
       {"bytes", bytes}});
  // Lines up to 8 MiB are kept whole (a document holds at most 16 MiB); a longer one stops the
  // import rather than store it cut.
  constexpr size_t kMaxLine = 8u << 20;
  const auto start = std::chrono::steady_clock::now();
  uint64_t lines = 0;
  uint64_t done_bytes = 0;
  std::vector<std::string> held;  // the batch's bytes (LogRecord points into them)
  std::vector<log::LogRecord> records;
  for (size_t f = 0; f < mine.size(); ++f) {
    const batch::InputFile& file = mine[f];
    // One "topic" per file, partition 0, offset = line number - 1: the _id names the file and
    // the line, and the batch layer reads the files in the same order as from the folder.
    const std::string topic = "import:" + file.relative;
    const std::string source = topic + "/0";
    auto reader = LineReader::Open(file.path, kMaxLine);
    if (!reader.ok()) return Fail("import", reader.status());
    uint64_t file_lines = 0;
    const auto flush = [&]() -> Status {
      records.clear();
      for (size_t i = 0; i < held.size(); ++i) {
        log::LogRecord r;
        r.bytes = held[i];
        r.source = source;
        r.line = file_lines - held.size() + i + 1;
        r.offset = r.line - 1;
        r.full_length = held[i].size();
        records.push_back(r);
      }
      Status s = (*raw)->Put(topic, records);
      held.clear();
      return s;
    };
    Line line;
    while (true) {
      auto more = (*reader)->Next(&line);
      if (!more.ok()) return Fail("import", more.status());
      if (!*more) break;
      if (line.truncated) {
        return Fail("import",
                    Status::InvalidArgument(file.path + ":" + std::to_string(line.number) +
                                            ": a line of " + std::to_string(line.full_length) +
                                            " bytes; the import keeps lines up to 8 MiB"));
      }
      held.emplace_back(line.bytes);
      ++file_lines;
      if (held.size() >= static_cast<size_t>(*batch_lines)) {
        if (Status s = flush(); !s.ok()) return Fail("import", s);
      }
    }
    if (Status s = flush(); !s.ok()) return Fail("import", s);
    lines += file_lines;
    done_bytes += file.size;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    Log(LogLevel::kInfo, "import.file",
        {{"file", file.relative},
         {"lines", file_lines},
         {"files_done", static_cast<int64_t>(f + 1)},
         {"files", static_cast<int64_t>(mine.size())},
         {"percent", bytes > 0 ? 100.0 * static_cast<double>(done_bytes) / bytes : 100.0},
         {"seconds", secs}});
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("import: shard %" PRId64 " of %" PRId64 ": %zu files, %" PRIu64
              " lines -> %s in %.1f s\n",
              *index, *shards, mine.size(), lines, out.c_str(), secs);
  return kExitOk;
}

}  // namespace duet
