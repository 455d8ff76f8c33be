#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gen/generator.h"

namespace duet::gen {

void LiveWriter::Append(const GeneratedLine& line) {
  const int64_t hour = line.arrival_ms / 3'600'000;
  if (buffer_hour_ != hour && !buffer_.empty()) {
    // A new arrival hour starts a new partition; keep files within one hour.
    pending_.emplace_back(buffer_hour_, std::move(buffer_));
    buffer_.clear();
  }
  buffer_hour_ = hour;
  buffer_.append(line.text);
  buffer_.push_back('\n');
  ++lines_;
}

Status LiveWriter::Flush() {
  if (!buffer_.empty()) {
    pending_.emplace_back(buffer_hour_, std::move(buffer_));
    buffer_.clear();
  }
  for (const auto& [hour, bytes] : pending_) DUET_RETURN_IF_ERROR(WriteFile(hour, bytes));
  pending_.clear();
  return Status::Ok();
}

Status LiveWriter::WriteFile(int64_t hour, const std::string& bytes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(out_dir_) / HivePartition(hour);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("cannot create " + dir.string() + ": " + ec.message());
  char name[40];
  std::snprintf(name, sizeof(name), "live-%08llu.ndjson", static_cast<unsigned long long>(seq_++));
  const fs::path tmp = dir / (std::string(".") + name + ".tmp");
  const fs::path final_path = dir / name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IoError("cannot create " + tmp.string() + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const Status s =
          Status::IoError("cannot write " + tmp.string() + ": " + std::strerror(errno));
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(w);
  }
  ::close(fd);
  fs::rename(tmp, final_path, ec);
  if (ec) return Status::IoError("cannot rename " + tmp.string() + ": " + ec.message());
  ++files_;
  return Status::Ok();
}

}  // namespace duet::gen
