#include "archive/archiver.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "gen/generator.h"
#include "log/kafka_log.h"
#include "util/file_io.h"

namespace duet::archive {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kMsPerHour = 3'600'000;
constexpr std::string_view kSuffix = ".ndjson.zst";

std::string Padded(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020lld", static_cast<long long>(v));
  return buf;
}

// "<topic>-p<P>-<first>-<last>.ndjson.zst" -> partition and last offset.
bool ParseName(const std::string& topic, const std::string& name, int* partition, int64_t* last) {
  const std::string prefix = topic + "-p";
  if (name.size() <= prefix.size() + kSuffix.size() ||
      name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return false;
  }
  const std::string mid = name.substr(prefix.size(), name.size() - prefix.size() - kSuffix.size());
  long long p = -1, first = -1, l = -1;
  char extra = 0;
  if (std::sscanf(mid.c_str(), "%lld-%lld-%lld%c", &p, &first, &l, &extra) != 3 || p < 0 ||
      first < 0 || l < first) {
    return false;
  }
  *partition = static_cast<int>(p);
  *last = l;
  return true;
}

}  // namespace

Archiver::Archiver(log::Log* log, std::string topic, ArchiveOptions options)
    : log_(log), topic_(std::move(topic)), options_(std::move(options)) {}

Status Archiver::Recover() {
  std::error_code ec;
  fs::create_directories(options_.out_dir, ec);
  if (ec) return Status::IoError("cannot create " + options_.out_dir + ": " + ec.message());
  std::map<int, int64_t> next;
  for (auto it = fs::recursive_directory_iterator(options_.out_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    int p = 0;
    int64_t last = 0;
    // Only this topic's temporary files: another archiver may be writing its own here.
    if (name.starts_with(".tmp-") && ParseName(topic_, name.substr(5), &p, &last)) {
      fs::remove(it->path(), ec);  // a file a crash left unfinished: its messages are read again
      continue;
    }
    if (ParseName(topic_, name, &p, &last)) next[p] = std::max(next[p], last + 1);
  }
  if (ec) return Status::IoError("cannot list " + options_.out_dir + ": " + ec.message());
  std::vector<std::pair<int, int64_t>> positions(next.begin(), next.end());
  return log_->Seek(log::KafkaPositions(topic_, positions));
}

Result<ArchiveStats> Archiver::Step(bool final) {
  ArchiveStats st;
  DUET_RETURN_IF_ERROR(log_->Poll(options_.max_batch_lines, final, &records_));
  const auto now = std::chrono::steady_clock::now();
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  for (const log::LogRecord& r : records_) {
    ++st.lines;
    const int p = log::KafkaPartitionOf(r.source);
    if (p < 0)
      return Status::InvalidArgument("archive: record source '" + std::string(r.source) +
                                     "' is not a Kafka partition");
    const int64_t hour = (r.timestamp_ms > 0 ? r.timestamp_ms : now_ms) / kMsPerHour;
    Open& o = open_[p];
    if (o.lines > 0 && o.hour != hour) DUET_RETURN_IF_ERROR(Write(p, &o, &st));
    if (o.lines == 0) {
      o.hour = hour;
      o.first = static_cast<int64_t>(r.offset);
      o.since = now;
    }
    const size_t at = o.data.size();
    o.data.append(r.bytes);
    for (size_t i = at; i < o.data.size(); ++i) {
      if (o.data[i] == '\n') o.data[i] = '\r';
    }
    o.data.push_back('\n');
    o.last = static_cast<int64_t>(r.offset);
    ++o.lines;
    if (o.lines >= options_.roll_lines) DUET_RETURN_IF_ERROR(Write(p, &o, &st));
  }
  for (auto& [p, o] : open_) {
    if (o.lines > 0 && now - o.since >= std::chrono::milliseconds(options_.roll_interval_ms)) {
      DUET_RETURN_IF_ERROR(Write(p, &o, &st));
    }
  }
  return st;
}

Result<ArchiveStats> Archiver::Flush() {
  ArchiveStats st;
  for (auto& [p, o] : open_) {
    if (o.lines > 0) DUET_RETURN_IF_ERROR(Write(p, &o, &st));
  }
  return st;
}

Status Archiver::Write(int partition, Open* o, ArchiveStats* st) {
  const fs::path dir = fs::path(options_.out_dir) / gen::HivePartition(o->hour);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  const std::string name = topic_ + "-p" + std::to_string(partition) + "-" + Padded(o->first) +
                           "-" + Padded(o->last) + std::string(kSuffix);
  const fs::path final_path = dir / name;
  const fs::path tmp = dir / (".tmp-" + name);
  std::string packed(ZSTD_compressBound(o->data.size()), '\0');
  const size_t n = ZSTD_compress(packed.data(), packed.size(), o->data.data(), o->data.size(),
                                 options_.zstd_level);
  if (ZSTD_isError(n)) return Status::IoError(std::string("zstd: ") + ZSTD_getErrorName(n));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp.string());
  Status s = WriteAll(fd, packed.data(), n, tmp.string());
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoError("cannot fsync", tmp.string());
  if (::close(fd) != 0 && s.ok()) s = ErrnoError("cannot close", tmp.string());
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    s = ErrnoError("cannot rename into place", final_path.string());
  }
  if (s.ok()) s = SyncDir(dir.string());
  if (!s.ok()) return s;
  ++st->files_written;
  st->lines_written += o->lines;
  *o = Open();
  return Status::Ok();
}

}  // namespace duet::archive
