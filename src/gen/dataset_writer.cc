// WriteDataset: lays the TrafficGenerator's stream out as Hive-partitioned NDJSON files plus a
// manifest. Files appear only complete (written under a hidden name, then renamed), so a reader
// listing the tree while the generator runs never sees half a file. No fsync: a crash leaves a
// manifest marked incomplete, and the next run over the same directory replaces everything.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gen/generator.h"
#include "gen/model.h"
#include "util/file_io.h"
#include "util/json_writer.h"
#include "util/log.h"

namespace duet::gen {
namespace {

namespace fs = std::filesystem;

constexpr size_t kWriteBufferBytes = 1 << 20;
constexpr int kZstdLevel = 3;
constexpr uint64_t kProgressEveryLines = 1000000;
constexpr std::string_view kManifestName = "_manifest.json";
constexpr std::string_view kManifestTmpName = "_manifest.json.tmp";
// Present in every manifest this generator writes; how a previous output is recognised.
constexpr std::string_view kGeneratorMarker = "\"generator\":\"duet-gen\"";

// One output file: buffered, optionally zstd-compressed, renamed into place on Close.
class PartWriter {
 public:
  explicit PartWriter(bool zstd) : zstd_(zstd) {
    buf_.reserve(kWriteBufferBytes + 4096);
    if (zstd_) {
      cctx_ = ZSTD_createCCtx();
      out_.resize(ZSTD_CStreamOutSize());
    }
  }
  ~PartWriter() {
    Abandon();
    if (cctx_ != nullptr) ZSTD_freeCCtx(cctx_);
  }
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;

  bool is_open() const { return fd_ >= 0; }
  uint64_t bytes_on_disk() const { return on_disk_; }

  Status Open(std::string final_path, std::string tmp_path) {
    final_path_ = std::move(final_path);
    tmp_path_ = std::move(tmp_path);
    fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return ErrnoError("cannot create", tmp_path_);
    buf_.clear();
    on_disk_ = 0;
    if (zstd_) {
      ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, kZstdLevel);
    }
    return Status::Ok();
  }

  Status Append(std::string_view line) {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() >= kWriteBufferBytes) return Flush(false);
    return Status::Ok();
  }

  // Flushes, closes and renames the file into place.
  Status Close() {
    DUET_RETURN_IF_ERROR(Flush(true));
    if (::close(fd_) != 0) {
      fd_ = -1;
      return ErrnoError("cannot close", tmp_path_);
    }
    fd_ = -1;
    if (::rename(tmp_path_.c_str(), final_path_.c_str()) != 0) {
      return ErrnoError("cannot rename into place", final_path_);
    }
    return Status::Ok();
  }

  // Drops an unfinished file (after an error).
  void Abandon() {
    if (fd_ < 0) return;
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
    fd_ = -1;
  }

 private:
  Status Flush(bool end) {
    if (!zstd_) {
      DUET_RETURN_IF_ERROR(WriteAll(fd_, buf_.data(), buf_.size(), tmp_path_));
      on_disk_ += buf_.size();
      buf_.clear();
      return Status::Ok();
    }
    ZSTD_inBuffer in{buf_.data(), buf_.size(), 0};
    const ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    while (true) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx_, &out, &in, mode);
      if (ZSTD_isError(left)) {
        return Status::IoError(tmp_path_ + ": zstd: " + ZSTD_getErrorName(left));
      }
      DUET_RETURN_IF_ERROR(WriteAll(fd_, out_.data(), out.pos, tmp_path_));
      on_disk_ += out.pos;
      if (end ? left == 0 : in.pos == in.size) break;
    }
    buf_.clear();
    return Status::Ok();
  }

  const bool zstd_;
  ZSTD_CCtx* cctx_ = nullptr;
  std::vector<char> out_;
  std::string buf_;
  int fd_ = -1;
  std::string final_path_, tmp_path_;
  uint64_t on_disk_ = 0;
};

struct FileEntry {
  std::string path;  // relative to out_dir
  uint64_t lines = 0;
  uint64_t bytes = 0;
  uint64_t bytes_on_disk = 0;
};

void AppendKey(std::string* out, std::string_view key) {
  AppendJsonString(out, key);
  out->push_back(':');
}

std::string ManifestJson(const GenerateOptions& o, bool complete, const GenerateStats& st,
                         const std::vector<FileEntry>& files) {
  using internal::kExperiments;
  std::string j = "{";
  j.append(kGeneratorMarker);
  j.append(",\"format_version\":1,\"complete\":");
  j.append(complete ? "true" : "false");
  j.append(",\"contract\":\"beacon contract v1\",\"options\":{");
  AppendKey(&j, "beacons");
  AppendJsonInt(&j, static_cast<int64_t>(o.beacons));
  j.append(",\"seed\":");
  j.append(std::to_string(o.seed));
  j.append(",\"start_ms\":");
  AppendJsonInt(&j, o.start_ms);
  j.append(",\"hours\":");
  AppendJsonInt(&j, o.hours);
  j.append(",\"visitors\":");
  AppendJsonInt(&j, static_cast<int64_t>(o.visitors));
  j.append(",\"zstd\":");
  j.append(o.zstd ? "true" : "false");
  j.append(",\"bad_fraction\":");
  AppendJsonDouble(&j, o.bad_fraction);
  j.append(",\"duplicate_fraction\":");
  AppendJsonDouble(&j, o.duplicate_fraction);
  j.append(",\"max_delay_ms\":");
  AppendJsonInt(&j, o.max_delay_ms);
  j.append(",\"late_fraction\":");
  AppendJsonDouble(&j, o.late_fraction);
  j.append(",\"lines_per_file\":");
  AppendJsonInt(&j, static_cast<int64_t>(o.lines_per_file));
  j.append("},\"period\":{\"start_ms\":");
  AppendJsonInt(&j, o.start_ms);
  j.append(",\"end_ms\":");
  AppendJsonInt(&j, o.start_ms + o.hours * internal::kMsPerHour);
  j.append("},\"experiments\":[");
  for (size_t x = 0; x < kExperiments.size(); ++x) {
    const internal::ExperimentDesign& d = kExperiments[x];
    if (x > 0) j.push_back(',');
    j.append("{\"name\":");
    AppendJsonString(&j, d.name);
    j.append(",\"variants\":[");
    for (size_t v = 0; v < d.variant_count; ++v) {
      if (v > 0) j.push_back(',');
      AppendJsonString(&j, d.variants[v]);
    }
    j.append("],\"weights\":[");
    for (size_t v = 0; v < d.variant_count; ++v) {
      if (v > 0) j.push_back(',');
      AppendJsonDouble(&j, d.weights_bp[v] / 10000.0);
    }
    j.append("],\"coverage\":");
    AppendJsonDouble(&j, d.coverage_bp / 10000.0);
    const int64_t hours_in = static_cast<int64_t>(o.hours * d.start_fraction + 0.5);
    j.append(",\"start_ms\":");
    AppendJsonInt(&j, o.start_ms + hours_in * internal::kMsPerHour);
    j.append(",\"effect\":");
    AppendJsonString(&j, d.effect);
    j.push_back('}');
  }
  j.append("],\"contaminated_visitor_share\":");
  AppendJsonDouble(&j, internal::kContaminatedVisitorsBp / 10000.0);
  j.append(",\"counts\":{\"lines\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.lines));
  j.append(",\"valid_unique\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.valid_unique));
  j.append(",\"duplicate_resends\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.duplicate_resends));
  j.append(",\"duplicate_resends_altered\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.duplicate_resends_altered));
  j.append(",\"bad_rows\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.bad_rows));
  j.append(",\"late\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.late));
  j.append(",\"files\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.files));
  j.append(",\"bytes\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.bytes));
  j.append(",\"bytes_on_disk\":");
  AppendJsonInt(&j, static_cast<int64_t>(st.bytes_on_disk));
  j.append("},\"bad_rows_by_kind\":{");
  for (size_t k = 0; k < kBadKindCount; ++k) {
    if (k > 0) j.push_back(',');
    AppendKey(&j, BadKindName(static_cast<BadKind>(k)));
    j.append("{\"reason\":");
    AppendJsonString(&j, BadKindReason(static_cast<BadKind>(k)));
    j.append(",\"count\":");
    AppendJsonInt(&j, static_cast<int64_t>(st.bad_by_kind[k]));
    j.push_back('}');
  }
  // The same counts summed by contract reason, in first-kind order.
  j.append("},\"bad_rows_by_reason\":{");
  std::vector<std::string_view> reasons;
  for (size_t k = 0; k < kBadKindCount; ++k) {
    const std::string_view r = BadKindReason(static_cast<BadKind>(k));
    if (std::find(reasons.begin(), reasons.end(), r) == reasons.end()) reasons.push_back(r);
  }
  for (size_t i = 0; i < reasons.size(); ++i) {
    uint64_t n = 0;
    for (size_t k = 0; k < kBadKindCount; ++k) {
      if (BadKindReason(static_cast<BadKind>(k)) == reasons[i]) n += st.bad_by_kind[k];
    }
    if (i > 0) j.push_back(',');
    AppendKey(&j, reasons[i]);
    AppendJsonInt(&j, static_cast<int64_t>(n));
  }
  j.append("},\"files\":[");
  for (size_t i = 0; i < files.size(); ++i) {
    if (i > 0) j.push_back(',');
    j.append("\n{\"path\":");
    AppendJsonString(&j, files[i].path);
    j.append(",\"lines\":");
    AppendJsonInt(&j, static_cast<int64_t>(files[i].lines));
    j.append(",\"bytes\":");
    AppendJsonInt(&j, static_cast<int64_t>(files[i].bytes));
    j.append(",\"bytes_on_disk\":");
    AppendJsonInt(&j, static_cast<int64_t>(files[i].bytes_on_disk));
    j.push_back('}');
  }
  j.append("]}\n");
  return j;
}

Status WriteManifest(const std::string& dir, const std::string& json) {
  const std::string tmp = dir + "/" + std::string(kManifestTmpName);
  const std::string final_path = dir + "/" + std::string(kManifestName);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  const Status s = WriteAll(fd, json.data(), json.size(), tmp);
  if (::close(fd) != 0 && s.ok()) return ErrnoError("cannot close", tmp);
  DUET_RETURN_IF_ERROR(s);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoError("cannot rename into place", final_path);
  }
  return Status::Ok();
}

bool IsGeneratorManifest(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string head(256, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head.find(kGeneratorMarker) != std::string::npos;
}

// Makes `dir` ready for a new dataset: created if missing; if it holds a previous output of this
// generator, that output is removed; anything else in it is refused before touching anything.
Status PrepareOutDir(const GenerateOptions& o) {
  const std::string& dir = o.out_dir;
  if (dir.empty()) return Status::InvalidArgument("out_dir is required");
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st) && !fs::is_directory(st)) {
    return Status::InvalidArgument("out_dir '" + dir + "' exists and is not a directory");
  }
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) return Status::IoError("cannot create out_dir '" + dir + "': " + ec.message());
    return Status::Ok();
  }
  bool has_manifest = false;
  bool empty = true;
  std::vector<fs::path> ours;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    empty = false;
    const std::string name = it->path().filename().string();
    if (name == kManifestName) {
      has_manifest = IsGeneratorManifest(it->path());
    } else if (name == kManifestTmpName || (name.rfind("dt=", 0) == 0 && it->is_directory())) {
      ours.push_back(it->path());
    } else {
      return Status::InvalidArgument(
          "out_dir '" + dir + "' is not empty and is not a previous duet gen output (it holds '" +
          name + "'); refusing to overwrite it: choose an empty or new directory");
    }
  }
  if (ec) return Status::IoError("cannot list out_dir '" + dir + "': " + ec.message());
  if (empty) return Status::Ok();
  if (!has_manifest) {
    return Status::InvalidArgument("out_dir '" + dir +
                                   "' is not empty and has no _manifest.json written by duet gen; "
                                   "refusing to overwrite it: choose an empty or new directory");
  }
  // Mark the directory as ours-in-progress before deleting, so an interrupted run can be redone.
  DUET_RETURN_IF_ERROR(WriteManifest(dir, ManifestJson(o, false, GenerateStats{}, {})));
  for (const fs::path& p : ours) {
    fs::remove_all(p, ec);
    if (ec) return Status::IoError("cannot remove '" + p.string() + "': " + ec.message());
  }
  return Status::Ok();
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// "dt=YYYY-MM-DD/hr=HH" of an hour since the epoch (civil-from-days, proleptic Gregorian).
std::string HivePartition(int64_t hour) {
  const int64_t z = hour / 24 + 719468;
  const int hh = static_cast<int>(hour % 24);
  const int64_t era = z / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "dt=%04d-%02d-%02d/hr=%02d", static_cast<int>(y),
                static_cast<int>(m), static_cast<int>(d), hh);
  return buf;
}

Status WriteDataset(const GenerateOptions& options, GenerateStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  DUET_RETURN_IF_ERROR(ValidateOptions(options));
  const GenerateOptions o = ResolveOptions(options);
  DUET_RETURN_IF_ERROR(PrepareOutDir(o));
  DUET_RETURN_IF_ERROR(WriteManifest(o.out_dir, ManifestJson(o, false, GenerateStats{}, {})));
  Log(LogLevel::kInfo, "gen.start",
      {{"out_dir", o.out_dir},
       {"beacons", o.beacons},
       {"seed", o.seed},
       {"hours", o.hours},
       {"visitors", o.visitors},
       {"zstd", o.zstd}});

  const std::string suffix = o.zstd ? ".ndjson.zst" : ".ndjson";
  TrafficGenerator gen(o);
  PartWriter writer(o.zstd);
  GenerateStats st;
  std::vector<FileEntry> files;
  int64_t hour = 0;
  uint32_t part = 0;
  std::string partition;
  GeneratedLine line;

  auto close_file = [&]() -> Status {
    DUET_RETURN_IF_ERROR(writer.Close());
    files.back().bytes_on_disk = writer.bytes_on_disk();
    st.bytes_on_disk += writer.bytes_on_disk();
    return Status::Ok();
  };

  while (gen.Next(&line)) {
    const int64_t line_hour = line.arrival_ms / internal::kMsPerHour;
    if (!writer.is_open() || line_hour != hour || files.back().lines == o.lines_per_file) {
      if (writer.is_open()) DUET_RETURN_IF_ERROR(close_file());
      if (files.empty() || line_hour != hour) {
        hour = line_hour;
        part = 0;
        partition = HivePartition(hour);
        std::error_code ec;
        fs::create_directories(o.out_dir + "/" + partition, ec);
        if (ec) {
          return Status::IoError("cannot create '" + o.out_dir + "/" + partition +
                                 "': " + ec.message());
        }
      } else {
        ++part;
      }
      char name[32];
      std::snprintf(name, sizeof(name), "part-%05u", part);
      const std::string rel = partition + "/" + name + suffix;
      DUET_RETURN_IF_ERROR(writer.Open(
          o.out_dir + "/" + rel, o.out_dir + "/" + partition + "/." + name + suffix + ".tmp"));
      files.push_back({rel});
      ++st.files;
    }
    DUET_RETURN_IF_ERROR(writer.Append(line.text));
    FileEntry& f = files.back();
    ++f.lines;
    f.bytes += line.text.size() + 1;
    st.bytes += line.text.size() + 1;
    ++st.lines;
    switch (line.kind) {
      case LineKind::kValid:
        ++st.valid_unique;
        st.late += line.late;
        break;
      case LineKind::kDuplicateResend:
        ++st.duplicate_resends;
        st.duplicate_resends_altered += line.altered;
        break;
      case LineKind::kBad:
        ++st.bad_rows;
        ++st.bad_by_kind[static_cast<size_t>(line.bad_kind)];
        break;
    }
    if (st.lines % kProgressEveryLines == 0) {
      const double secs = SecondsSince(t0);
      Log(LogLevel::kInfo, "gen.progress",
          {{"lines", st.lines},
           {"of", o.beacons},
           {"partition", partition},
           {"lines_per_s", secs > 0 ? static_cast<double>(st.lines) / secs : 0.0}});
    }
  }
  if (writer.is_open()) DUET_RETURN_IF_ERROR(close_file());
  st.seconds = SecondsSince(t0);
  DUET_RETURN_IF_ERROR(WriteManifest(o.out_dir, ManifestJson(o, true, st, files)));
  Log(LogLevel::kInfo, "gen.done",
      {{"lines", st.lines},
       {"valid_unique", st.valid_unique},
       {"duplicate_resends", st.duplicate_resends},
       {"bad_rows", st.bad_rows},
       {"files", st.files},
       {"bytes", st.bytes},
       {"bytes_on_disk", st.bytes_on_disk},
       {"seconds", st.seconds},
       {"lines_per_s", st.seconds > 0 ? static_cast<double>(st.lines) / st.seconds : 0.0}});
  if (stats != nullptr) *stats = st;
  return Status::Ok();
}

}  // namespace duet::gen
