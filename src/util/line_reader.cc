#include "util/line_reader.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace duet {
namespace {

constexpr size_t kBufferSize = 4 << 20;

class FileLineReader final : public LineReader {
 public:
  FileLineReader(int fd, std::string path, bool zstd, size_t max_line)
      : fd_(fd), path_(std::move(path)), max_line_(max_line) {
    // Room for one whole maximal line plus padding, whatever the buffer size.
    buf_.resize(std::max(kBufferSize, 2 * max_line + 2) + kLinePadding);
    if (zstd) {
      dstream_ = ZSTD_createDStream();
      in_.resize(ZSTD_DStreamInSize());
    }
  }
  ~FileLineReader() override {
    ::close(fd_);
    if (dstream_ != nullptr) ZSTD_freeDStream(dstream_);
  }

  Result<bool> Next(Line* line) override {
    while (true) {
      // Look for the end of the current line in what is buffered.
      const size_t avail = end_ - begin_;
      const char* start = buf_.data() + begin_;
      const char* nl =
          avail > 0
              ? static_cast<const char*>(std::memchr(start + scanned_, '\n', avail - scanned_))
              : nullptr;
      if (skipping_) {
        if (nl == nullptr) {
          skipped_ += avail;
          begin_ = end_ = 0;
          scanned_ = 0;
        } else {
          const size_t n = nl - start;
          skipped_ += n;
          long_line_.full_length += skipped_;
          begin_ += n + 1;
          stream_pos_ += skipped_ + 1;
          scanned_ = 0;
          skipping_ = false;
          *line = long_line_;
          line->bytes = std::string_view(long_payload_);
          return true;
        }
      } else if (nl != nullptr) {
        const size_t n = nl - start;
        if (n > max_line_) {
          EmitLong(start, n);
          begin_ += n + 1;
          stream_pos_ += n + 1;
          scanned_ = 0;
          *line = long_line_;
          line->bytes = std::string_view(long_payload_);
          return true;
        }
        Fill(line, start, n);
        begin_ += n + 1;
        stream_pos_ += n + 1;
        scanned_ = 0;
        return true;
      } else if (avail > max_line_) {
        // No newline within max_line bytes: keep the prefix, skip to the next newline.
        EmitLong(start, avail);
        long_line_.full_length = 0;
        skipped_ = avail;
        skipping_ = true;
        begin_ = end_ = 0;
        scanned_ = 0;
      } else {
        scanned_ = avail;
      }
      if (eof_) {
        if (skipping_) {
          long_line_.full_length += skipped_;
          stream_pos_ += skipped_;
          skipping_ = false;
          *line = long_line_;
          line->bytes = std::string_view(long_payload_);
          return true;
        }
        if (end_ > begin_) {  // last line without a trailing newline
          const size_t n = end_ - begin_;
          std::memset(buf_.data() + end_, 0, kLinePadding);
          Fill(line, buf_.data() + begin_, n);
          stream_pos_ += n;
          begin_ = end_;
          return true;
        }
        return false;
      }
      const Status s = Refill();
      if (!s.ok()) return s;
    }
  }

 private:
  void Fill(Line* line, const char* start, size_t n) {
    line->bytes = std::string_view(start, n);
    line->offset = stream_pos_;
    line->number = ++line_no_;
    line->full_length = n;
    line->truncated = false;
  }
  void EmitLong(const char* start, size_t n) {
    long_payload_.assign(start, max_line_);
    long_payload_.append(kLinePadding, '\0');
    long_payload_.resize(max_line_);
    long_line_.offset = stream_pos_;
    long_line_.number = ++line_no_;
    long_line_.full_length = n;
    long_line_.truncated = true;
  }

  // Moves unread bytes to the front and reads more; sets eof_ at the end of input.
  Status Refill() {
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    const size_t cap = buf_.size() - kLinePadding;
    while (end_ < cap) {
      const Result<size_t> n = dstream_ != nullptr ? ReadZstd(cap) : ReadPlain(cap);
      if (!n.ok()) return n.status();
      if (*n == 0) {
        if (dstream_ != nullptr && !frame_done_) {
          return Status::Corruption(path_ + ": zstd stream ends in the middle of a frame");
        }
        eof_ = true;
        break;
      }
      end_ += *n;
      if (*n > 0 && end_ - begin_ > max_line_ + 1) break;  // enough to find a line
    }
    return Status::Ok();
  }

  Result<size_t> ReadPlain(size_t cap) {
    while (true) {
      const ssize_t n = ::read(fd_, buf_.data() + end_, cap - end_);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      return Status::IoError(path_ + ": read failed: " + std::strerror(errno));
    }
  }

  Result<size_t> ReadZstd(size_t cap) {
    ZSTD_outBuffer out{buf_.data() + end_, cap - end_, 0};
    while (out.pos == 0) {
      if (in_buf_.pos == in_buf_.size) {
        ssize_t n;
        do {
          n = ::read(fd_, in_.data(), in_.size());
        } while (n < 0 && errno == EINTR);
        if (n < 0) return Status::IoError(path_ + ": read failed: " + std::strerror(errno));
        if (n == 0) return size_t{0};
        in_buf_ = ZSTD_inBuffer{in_.data(), static_cast<size_t>(n), 0};
      }
      const size_t r = ZSTD_decompressStream(dstream_, &out, &in_buf_);
      if (ZSTD_isError(r)) {
        return Status::Corruption(path_ + ": zstd: " + ZSTD_getErrorName(r));
      }
      frame_done_ = (r == 0);
    }
    return out.pos;
  }

  const int fd_;
  const std::string path_;
  const size_t max_line_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0, scanned_ = 0;
  bool eof_ = false;
  uint64_t stream_pos_ = 0;
  uint64_t line_no_ = 0;
  // Long-line handling.
  bool skipping_ = false;
  uint64_t skipped_ = 0;
  Line long_line_;
  std::string long_payload_;
  // zstd
  ZSTD_DStream* dstream_ = nullptr;
  std::vector<char> in_;
  ZSTD_inBuffer in_buf_{nullptr, 0, 0};
  bool frame_done_ = true;
};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path, size_t max_line) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(path + ": cannot open: " + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::unique_ptr<LineReader> r =
      std::make_unique<FileLineReader>(fd, path, EndsWith(path, ".zst"), max_line);
  return r;
}

}  // namespace duet
