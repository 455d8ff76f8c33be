#include "cli/ops_cli.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "batch/batch.h"
#include "cli/common.h"
#include "cli/http_client.h"
#include "log/log.h"
#include "mongoraw/raw_collection.h"
#include "util/config.h"
#include "util/line_reader.h"
#include "util/log.h"

namespace duet {
namespace {

// Exit codes of probe: 0 healthy, 1 not.
int ProbeOnce(const HttpUrl& u, const std::string& url, int64_t timeout_ms) {
  HttpCall call;
  call.user_agent = "duet-probe";
  call.timeout_ms = timeout_ms;
  auto reply = HttpFetch(u, call);
  if (!reply.ok()) {
    std::fprintf(stderr, "duet probe: %s: %s\n", url.c_str(), reply.status().message().c_str());
    return kExitFailure;
  }
  const unsigned status = reply->status;
  if (status >= 200 && status < 300) return kExitOk;
  std::string body = reply->body.substr(0, 300);
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
  auto url = ParseHttpUrl("--url", c.String("url"));
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
