#include "log/file_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <vector>

#include "util/line_reader.h"

namespace duet::log {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPositionsHeader = "duet-file-log v1\n";
constexpr std::string_view kOpenState = "open";
constexpr std::string_view kDoneState = "done";
// Lines are read into blocks of at least this size that never move while their records live.
constexpr size_t kMinBlockSize = 8 << 20;
// The smallest read worth a system call; also the least free space a block must have.
constexpr size_t kMinRead = 64 << 10;
constexpr size_t kZstdInputSize = 1 << 20;
constexpr size_t kMaxLineLimit = size_t{1} << 30;
constexpr double kInitialAverageLine = 256;
// While a backlog remains, Polls continue where the last one stopped without listing the folder;
// it is still listed at least this often, so that no file waits behind a busy one forever.
constexpr std::chrono::seconds kRelistInterval{1};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The input-file name rule of docs/beacon-contract.md ("Framing").
bool IsInputName(std::string_view name) {
  if (name.empty() || name[0] == '.' || name[0] == '_') return false;
  return EndsWith(name, ".ndjson") || EndsWith(name, ".ndjson.zst");
}

std::string ErrnoText() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

// Reads up to n bytes at pos; fewer only at the end of the file.
Result<size_t> PRead(int fd, char* dst, size_t n, uint64_t pos, const std::string& rel) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, dst + done, n - done, static_cast<off_t>(pos + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(rel + ": read failed: " + ErrnoText());
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

// A .zst archive being decompressed, kept open between Polls so that reading continues where
// it stopped instead of decompressing from the start again.
class ZstdStream {
 public:
  static Result<std::unique_ptr<ZstdStream>> Open(const std::string& path, const std::string& rel) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IoError(rel + ": cannot open: " + ErrnoText());
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::make_unique<ZstdStream>(fd, rel);
  }
  ZstdStream(int fd, std::string rel)
      : fd_(fd), rel_(std::move(rel)), stream_(ZSTD_createDStream()), input_(kZstdInputSize) {}
  ~ZstdStream() {
    ::close(fd_);
    ZSTD_freeDStream(stream_);
  }
  ZstdStream(const ZstdStream&) = delete;
  ZstdStream& operator=(const ZstdStream&) = delete;

  // Decompressed bytes handed out so far.
  uint64_t position() const { return position_; }

  // Decompresses up to cap (> 0) bytes into dst; 0 at the end of the archive. Corruption for a
  // damaged or truncated archive.
  Result<size_t> Read(char* dst, size_t cap) {
    ZSTD_outBuffer out{dst, cap, 0};
    while (out.pos == 0) {
      if (in_.pos == in_.size && !input_ended_) {
        ssize_t n;
        do {
          n = ::read(fd_, input_.data(), input_.size());
        } while (n < 0 && errno == EINTR);
        if (n < 0) return Status::IoError(rel_ + ": read failed: " + ErrnoText());
        if (n == 0) {
          input_ended_ = true;
        } else {
          in_ = ZSTD_inBuffer{input_.data(), static_cast<size_t>(n), 0};
        }
      }
      const bool no_input = in_.pos == in_.size;
      // Only a finished frame may end the input; the decoder may still hold output otherwise.
      if (no_input && frame_done_) return size_t{0};
      const size_t r = ZSTD_decompressStream(stream_, &out, &in_);
      if (ZSTD_isError(r)) {
        return Status::Corruption(rel_ + ": damaged zstd archive: " + ZSTD_getErrorName(r));
      }
      frame_done_ = r == 0;
      if (no_input && out.pos == 0) {
        return Status::Corruption(rel_ + ": zstd archive ends in the middle of a frame");
      }
    }
    position_ += out.pos;
    return out.pos;
  }

  // Decompresses and discards up to `offset`, which must be just after a '\n'.
  Status SkipTo(uint64_t offset, char* scratch, size_t cap) {
    char last = '\n';
    while (position_ < offset) {
      const Result<size_t> n = Read(scratch, std::min<uint64_t>(cap, offset - position_));
      if (!n.ok()) return n.status();
      if (*n == 0) {
        return Status::Corruption(rel_ + ": archive is shorter than its stored position " +
                                  std::to_string(offset));
      }
      last = scratch[*n - 1];
    }
    if (last != '\n') {
      return Status::Corruption(rel_ + ": stored position " + std::to_string(offset) +
                                " is not at the start of a line");
    }
    return Status::Ok();
  }

 private:
  const int fd_;
  const std::string rel_;
  ZSTD_DStream* const stream_;
  std::vector<char> input_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  bool input_ended_ = false;
  bool frame_done_ = true;
  uint64_t position_ = 0;
};

struct FileState {
  bool archive = false;
  bool done = false;                 // an archive read to its end
  uint64_t offset = 0;               // of the next unread line, in the (decompressed) file
  uint64_t line = 0;                 // lines before it
  uint64_t seen = 0;                 // the listing generation that last saw the file
  std::unique_ptr<ZstdStream> zstd;  // while an archive is partly read
};

using FileMap = std::map<std::string, FileState>;  // std::less<std::string>: bytewise order

class FileLog final : public Log {
 public:
  FileLog(fs::path root, bool single_file, size_t max_line)
      : root_(std::move(root)),
        single_file_(single_file),
        max_line_(max_line),
        block_size_(std::max(kMinBlockSize, max_line + 2 * kMinRead)) {}

  Status Poll(size_t max_records, bool final, std::vector<LogRecord>* out) override;
  std::string Positions() const override;
  Status Seek(std::string_view positions) override;

 private:
  struct Touched {
    FileState* file;
    uint64_t offset;
    uint64_t line;
  };

  std::string PathOf(const std::string& rel) const {
    return single_file_ ? root_.string() : (root_ / rel).string();
  }
  char* Block(size_t i);
  Status Relist();
  Status ReadFile(const std::string& rel, FileState* file, size_t max_records, bool final,
                  std::vector<LogRecord>* out);
  template <typename ReadFn>
  Result<bool> ReadLines(const std::string& rel, FileState* file, size_t start, bool emit_tail,
                         size_t max_records, std::vector<LogRecord>* out, ReadFn&& read);
  void Emit(const std::string& rel, FileState* file, const char* bytes, uint64_t full_length,
            bool terminated, std::vector<LogRecord>* out);
  size_t ReadSize(size_t remaining_records) const;
  Result<bool> CheckInputPath(const std::string& rel) const;

  const fs::path root_;
  const bool single_file_;
  const size_t max_line_;
  const size_t block_size_;

  FileMap files_;
  FileMap retired_;  // replaced by Seek; kept until the next Poll for the records' `source`
  uint64_t generation_ = 0;
  std::vector<Touched> touched_;
  // Whether the last Poll returned fewer than max_records; if not, the next one resumes at
  // resume_file_ without listing, until kRelistInterval has passed since listed_at_.
  bool caught_up_ = true;
  std::string resume_file_;
  std::chrono::steady_clock::time_point listed_at_;

  // The read arena: records point into blocks_[0..block_], filled up to fill_ in block_.
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t block_ = 0;
  size_t fill_ = 0;
  // Bytes read past the last returned line of carry_file_ (at its offset), kept for the next
  // Poll so that small Polls do not read the same bytes again.
  std::string carry_file_;
  size_t carry_block_ = 0;
  size_t carry_begin_ = 0;
  size_t carry_len_ = 0;

  double average_line_ = kInitialAverageLine;  // sizes reads to what a Poll will consume
  uint64_t poll_bytes_ = 0;
};

char* FileLog::Block(size_t i) {
  while (blocks_.size() <= i) {
    // Padding so that every line is followed by kLinePadding readable bytes.
    blocks_.push_back(std::unique_ptr<char[]>(new char[block_size_ + kLinePadding]));
  }
  return blocks_[i].get();
}

size_t FileLog::ReadSize(size_t remaining_records) const {
  const size_t free = block_size_ - fill_;
  const double want = static_cast<double>(remaining_records) * (average_line_ + 1) * 1.25;
  if (want >= static_cast<double>(free)) return free;
  return std::min(free, std::max(kMinRead, static_cast<size_t>(want)));
}

Status FileLog::Relist() {
  ++generation_;
  if (single_file_) {
    FileState& f = files_[root_.filename().string()];
    f.archive = EndsWith(root_.string(), ".zst");
    f.seen = generation_;
    return Status::Ok();
  }
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const bool regular = it->is_regular_file(ec);
    if (ec) {
      // A dangling symbolic link, or a file renamed away while listing: not an input now.
      if (ec != std::errc::no_such_file_or_directory) break;
      ec.clear();
      continue;
    }
    if (!regular) continue;
    const std::string name = it->path().filename().string();
    if (!IsInputName(name)) continue;
    auto [f, inserted] = files_.try_emplace(it->path().lexically_relative(root_).string());
    if (inserted) f->second.archive = EndsWith(name, ".zst");
    f->second.seen = generation_;
  }
  if (ec) return Status::IoError("file log: cannot list '" + root_.string() + "': " + ec.message());
  for (auto it = files_.begin(); it != files_.end();) {
    if (it->second.seen == generation_) {
      ++it;
    } else if (it->second.offset == 0) {
      it = files_.erase(it);
    } else {
      return Status::Corruption(it->first + ": removed after " + std::to_string(it->second.line) +
                                " lines were read; the log folder must be append-only");
    }
  }
  return Status::Ok();
}

Status FileLog::Poll(size_t max_records, bool final, std::vector<LogRecord>* out) {
  out->clear();
  retired_.clear();
  // The previous Poll's records are invalid now: bring the carried bytes to the front.
  char* const first = Block(0);
  if (carry_len_ > 0 && (carry_block_ != 0 || carry_begin_ != 0)) {
    std::memmove(first, blocks_[carry_block_].get() + carry_begin_, carry_len_);
  }
  block_ = 0;
  fill_ = carry_len_;
  carry_block_ = 0;
  carry_begin_ = 0;
  if (max_records == 0) return Status::Ok();

  auto it = files_.begin();
  const auto now = std::chrono::steady_clock::now();
  if (caught_up_ || now - listed_at_ >= kRelistInterval) {
    caught_up_ = true;  // until this Poll fills up
    DUET_RETURN_IF_ERROR(Relist());
    listed_at_ = now;
    it = files_.begin();
  } else {
    it = files_.lower_bound(resume_file_);
  }
  poll_bytes_ = 0;
  touched_.clear();
  Status status;
  for (; it != files_.end(); ++it) {
    FileState& file = it->second;
    if (file.done) continue;
    touched_.push_back({&file, file.offset, file.line});
    status = ReadFile(it->first, &file, max_records, final, out);
    if (!status.ok()) break;
    if (out->size() >= max_records) {
      resume_file_ = it->first;
      break;
    }
  }
  caught_up_ = !status.ok() || out->size() < max_records;
  if (!status.ok()) {
    // Nothing is returned, so no position may move.
    for (const Touched& t : touched_) {
      t.file->offset = t.offset;
      t.file->line = t.line;
      t.file->done = false;
      t.file->zstd.reset();
    }
    out->clear();
    carry_len_ = 0;
    fill_ = 0;
    return status;
  }
  if (!out->empty()) {
    average_line_ = static_cast<double>(poll_bytes_) / static_cast<double>(out->size());
  }
  return Status::Ok();
}

Status FileLog::ReadFile(const std::string& rel, FileState* file, size_t max_records, bool final,
                         std::vector<LogRecord>* out) {
  const bool have_carry = carry_len_ > 0 && carry_file_ == rel;
  const std::string path = PathOf(rel);
  const auto removed = [&] {
    return Status::Corruption(rel + ": removed after " + std::to_string(file->line) +
                              " lines were read; the log folder must be append-only");
  };
  const auto shrank = [&](uint64_t size, uint64_t read) {
    return Status::Corruption(rel + ": shrank to " + std::to_string(size) + " bytes after " +
                              std::to_string(read) +
                              " were read; the log folder must be append-only");
  };
  // Carried bytes may hold the whole Poll: then the file is not even opened.
  if (!file->archive && !have_carry) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) return Status::IoError(rel + ": cannot stat: " + ErrnoText());
      if (file->offset == 0) return Status::Ok();  // gone before anything was read
      return removed();
    }
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size < file->offset) return shrank(size, file->offset);
    if (size == file->offset) return Status::Ok();  // nothing new
  }

  // From here on this file is read: carried bytes of another file are dropped.
  size_t start;
  if (have_carry) {
    assert(block_ == 0 && fill_ == carry_len_);
    start = 0;
  } else {
    if (carry_len_ > 0 && block_ == 0 && fill_ == carry_len_) fill_ = 0;
    if (block_size_ - fill_ < kMinRead) {
      Block(++block_);
      fill_ = 0;
    }
    start = fill_;
  }
  const uint64_t buffered = have_carry ? carry_len_ : 0;
  carry_len_ = 0;

  if (!file->archive) {
    std::optional<Fd> fd;
    uint64_t size = 0;  // read up to the size at open: later appends are for the next Poll
    uint64_t pos = file->offset + buffered;
    const auto read = [&](char* dst, size_t cap) -> Result<size_t> {
      if (!fd.has_value()) {
        const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (raw < 0) {
          if (errno == ENOENT && file->offset > 0) return removed();
          return Status::IoError(rel + ": cannot open: " + ErrnoText());
        }
        fd.emplace(raw);
        struct stat st {};
        if (::fstat(raw, &st) != 0) return Status::IoError(rel + ": cannot stat: " + ErrnoText());
        size = static_cast<uint64_t>(st.st_size);
        if (size < pos) return shrank(size, pos);
      }
      const size_t n = static_cast<size_t>(std::min<uint64_t>(cap, size - pos));
      if (n == 0) return size_t{0};
      Result<size_t> r = PRead(fd->get(), dst, n, pos, rel);
      if (r.ok()) pos += *r;
      return r;
    };
    return ReadLines(rel, file, start, final, max_records, out, read).status();
  }

  if (!have_carry && file->zstd != nullptr && file->zstd->position() != file->offset) {
    file->zstd.reset();  // its read-ahead was dropped: start over
  }
  if (file->zstd == nullptr) {
    Result<std::unique_ptr<ZstdStream>> z = ZstdStream::Open(path, rel);
    if (!z.ok()) return z.status();
    file->zstd = std::move(*z);
    DUET_RETURN_IF_ERROR(
        file->zstd->SkipTo(file->offset, blocks_[block_].get() + fill_, block_size_ - fill_));
  }
  ZstdStream* const zstd = file->zstd.get();
  const Result<bool> ended =
      ReadLines(rel, file, start, /*emit_tail=*/true, max_records, out,
                [zstd](char* dst, size_t cap) { return zstd->Read(dst, cap); });
  if (!ended.ok()) return ended.status();
  if (*ended) {
    file->done = true;
    file->zstd.reset();
  }
  return Status::Ok();
}

void FileLog::Emit(const std::string& rel, FileState* file, const char* bytes, uint64_t full_length,
                   bool terminated, std::vector<LogRecord>* out) {
  LogRecord& r = out->emplace_back();
  r.bytes = std::string_view(bytes, std::min<uint64_t>(full_length, max_line_));
  r.source = rel;
  r.line = ++file->line;
  r.offset = file->offset;
  r.full_length = full_length;
  r.truncated = full_length > max_line_;
  const uint64_t consumed = full_length + (terminated ? 1 : 0);
  file->offset += consumed;
  poll_bytes_ += consumed;
}

// Emits the lines of one file from the arena, refilling it with `read`, until max_records or
// the end of what is readable now. The unread bytes [start, fill_) in block_ are the file's
// bytes from file->offset on. Returns whether the input ended (rather than max_records).
template <typename ReadFn>
Result<bool> FileLog::ReadLines(const std::string& rel, FileState* file, size_t start,
                                bool emit_tail, size_t max_records, std::vector<LogRecord>* out,
                                ReadFn&& read) {
  char* base = blocks_[block_].get();
  size_t scan = start;   // bytes before this have no '\n' of the current line
  uint64_t dropped = 0;  // bytes of an over-long line dropped after its kept prefix
  while (true) {
    while (out->size() < max_records && scan < fill_) {
      const void* nl = std::memchr(base + scan, '\n', fill_ - scan);
      if (nl == nullptr) break;
      const size_t end = static_cast<const char*>(nl) - base;
      Emit(rel, file, base + start, end - start + dropped, /*terminated=*/true, out);
      start = scan = end + 1;
      dropped = 0;
    }
    if (out->size() >= max_records) {
      carry_file_ = rel;
      carry_block_ = block_;
      carry_begin_ = start;
      carry_len_ = fill_ - start;
      return false;
    }
    if (fill_ - start > max_line_) {  // over-long line: keep its first max_line_ bytes only
      dropped += fill_ - (start + max_line_);
      fill_ = start + max_line_;
    }
    scan = fill_;
    if (block_size_ - fill_ < kMinRead) {
      // The partial line moves to the next block; earlier records keep pointing into this one.
      char* const next = Block(block_ + 1);
      std::memcpy(next, base + start, fill_ - start);
      ++block_;
      base = next;
      fill_ -= start;
      scan -= start;
      start = 0;
    }
    const Result<size_t> n = read(base + fill_, ReadSize(max_records - out->size()));
    if (!n.ok()) return n.status();
    if (*n == 0) {
      if (emit_tail && (fill_ > start || dropped > 0)) {
        Emit(rel, file, base + start, fill_ - start + dropped, /*terminated=*/false, out);
      } else {
        fill_ = start;  // a withheld partial line is read again next time
      }
      return true;
    }
    fill_ += *n;
  }
}

std::string FileLog::Positions() const {
  std::string s(kPositionsHeader);
  for (const auto& [rel, file] : files_) {
    if (file.offset == 0) continue;
    s += std::to_string(file.offset);
    s += '\t';
    s += std::to_string(file.line);
    s += '\t';
    s += file.done ? kDoneState : kOpenState;
    s += '\t';
    for (const char c : rel) {
      if (c == '\\') {
        s += "\\\\";
      } else if (c == '\n') {
        s += "\\n";
      } else {
        s += c;
      }
    }
    s += '\n';
  }
  return s;
}

// Whether `rel` names an input file of this log that exists now (InvalidArgument if not);
// true for an archive.
Result<bool> FileLog::CheckInputPath(const std::string& rel) const {
  const auto not_ours = [&](const std::string& why) {
    return Status::InvalidArgument("positions name '" + rel + "', which " + why + " of the log '" +
                                   root_.string() + "'");
  };
  struct stat st {};
  if (single_file_) {
    if (rel != root_.filename().string()) return not_ours("is not the file");
    if (::stat(root_.c_str(), &st) != 0) return not_ours("no longer exists: it was the file");
    return EndsWith(rel, ".zst");
  }
  if (rel.empty() || rel.front() == '/') return not_ours("is not a file");
  size_t begin = 0;
  while (true) {
    const size_t slash = rel.find('/', begin);
    const std::string_view part =
        std::string_view(rel).substr(begin, slash == std::string::npos ? slash : slash - begin);
    if (part.empty() || part == "." || part == "..") return not_ours("is not a file");
    if (slash == std::string::npos) {
      if (!IsInputName(part)) return not_ours("is not an input file");
      break;
    }
    // Folders on the way must be real folders: the listing does not follow symbolic links.
    if (::lstat(PathOf(rel.substr(0, slash)).c_str(), &st) != 0) {
      return not_ours("no longer exists: it is not a file");
    }
    if (!S_ISDIR(st.st_mode)) return not_ours("is not an input file");
    begin = slash + 1;
  }
  if (::stat(PathOf(rel).c_str(), &st) != 0) return not_ours("no longer exists: it is not a file");
  if (!S_ISREG(st.st_mode)) return not_ours("is not a regular file");
  return EndsWith(rel, ".zst");
}

Result<uint64_t> ParseNumber(std::string_view field, size_t row) {
  uint64_t v = 0;
  const auto [p, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  if (field.empty() || ec != std::errc() || p != field.data() + field.size()) {
    return Status::InvalidArgument("positions line " + std::to_string(row) + ": '" +
                                   std::string(field) + "' is not a number");
  }
  return v;
}

Status FileLog::Seek(std::string_view text) {
  if (!text.starts_with(kPositionsHeader)) {
    return Status::InvalidArgument("positions: expected the header 'duet-file-log v1'");
  }
  text.remove_prefix(kPositionsHeader.size());
  FileMap files;
  size_t row = 1;
  while (!text.empty()) {
    ++row;
    const auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("positions line " + std::to_string(row) + ": " + why);
    };
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("does not end with a newline");
    std::string_view rest = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    std::string_view fields[3];
    for (std::string_view& f : fields) {
      const size_t tab = rest.find('\t');
      if (tab == std::string_view::npos) return bad("expected offset, lines, state and path");
      f = rest.substr(0, tab);
      rest.remove_prefix(tab + 1);
    }
    const Result<uint64_t> offset = ParseNumber(fields[0], row);
    if (!offset.ok()) return offset.status();
    const Result<uint64_t> lines = ParseNumber(fields[1], row);
    if (!lines.ok()) return lines.status();
    if (*offset == 0 || *lines == 0 || *lines > *offset) {
      return bad("offset " + std::to_string(*offset) + " and " + std::to_string(*lines) +
                 " lines are inconsistent");
    }
    if (fields[2] != kOpenState && fields[2] != kDoneState) {
      return bad("state '" + std::string(fields[2]) + "' is neither open nor done");
    }
    std::string rel;
    for (size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] != '\\') {
        rel += rest[i];
      } else if (i + 1 < rest.size() && (rest[i + 1] == '\\' || rest[i + 1] == 'n')) {
        rel += rest[++i] == 'n' ? '\n' : '\\';
      } else {
        return bad("bad escape in the path");
      }
    }
    const Result<bool> archive = CheckInputPath(rel);
    if (!archive.ok()) return archive.status();
    const bool done = fields[2] == kDoneState;
    if (done && !*archive) return bad("only a .zst archive can be done");
    auto [f, inserted] = files.try_emplace(rel);
    if (!inserted) return bad("names '" + rel + "' twice");
    f->second.archive = *archive;
    f->second.done = done;
    f->second.offset = *offset;
    f->second.line = *lines;
  }

  // A plain file must still hold every byte before its position, ending in a '\n' unless an
  // unterminated last line was returned (by a final Poll).
  for (const auto& [rel, file] : files) {
    if (file.archive) continue;  // checked when the archive is next decompressed
    const std::string path = PathOf(rel);
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) return Status::IoError(rel + ": cannot open: " + ErrnoText());
    const Fd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Status::IoError(rel + ": cannot stat: " + ErrnoText());
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size < file.offset) {
      return Status::Corruption(
          rel + ": has " + std::to_string(size) + " bytes, fewer than its stored position " +
          std::to_string(file.offset) + "; the log folder must be append-only");
    }
    char last = 0;
    const Result<size_t> n = PRead(fd.get(), &last, 1, file.offset - 1, rel);
    if (!n.ok()) return n.status();
    if (*n != 1 || (last != '\n' && size != file.offset)) {
      return Status::Corruption(rel + ": stored position " + std::to_string(file.offset) +
                                " is not at the start of a line; was the file rewritten?");
    }
  }

  for (auto& [rel, file] : files_) file.zstd.reset();
  if (retired_.empty()) retired_ = std::move(files_);  // the last Poll's records point into it
  files_ = std::move(files);
  carry_len_ = 0;
  caught_up_ = true;
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Log>> OpenFileLog(const std::string& root, size_t max_line) {
  if (max_line == 0 || max_line > kMaxLineLimit) {
    return Status::InvalidArgument("file log: max_line " + std::to_string(max_line) +
                                   " is out of range; expected 1.." +
                                   std::to_string(kMaxLineLimit));
  }
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (!fs::exists(st)) return Status::NotFound("file log: '" + root + "' does not exist");
  if (ec) return Status::IoError("file log: cannot stat '" + root + "': " + ec.message());
  if (!fs::is_regular_file(st) && !fs::is_directory(st)) {
    return Status::InvalidArgument("file log: '" + root + "' is neither a file nor a folder");
  }
  std::unique_ptr<Log> log =
      std::make_unique<FileLog>(fs::path(root), fs::is_regular_file(st), max_line);
  return log;
}

}  // namespace duet::log
