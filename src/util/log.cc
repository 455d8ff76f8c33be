#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <string>

#include "util/json_writer.h"

namespace duet {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("DUET_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  const std::string_view v(env);
  if (v == "debug") return LogLevel::kDebug;
  if (v == "warn") return LogLevel::kWarn;
  if (v == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& MinLevel() {
  static std::atomic<LogLevel> level{InitialLevel()};
  return level;
}

std::string_view LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void SetMinLogLevel(LogLevel level) { MinLevel().store(level); }

void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (level < MinLevel().load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char tsbuf[40];
  const size_t n = std::strftime(tsbuf, sizeof(tsbuf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line = "{\"ts\":\"";
  line.append(tsbuf, n);
  char msbuf[8];
  std::snprintf(msbuf, sizeof(msbuf), ".%03dZ", static_cast<int>(ms % 1000));
  line.append(msbuf);
  line.append("\",\"level\":\"");
  line.append(LevelName(level));
  line.append("\",\"event\":");
  AppendJsonString(&line, event);
  for (const LogField& f : fields) {
    line.push_back(',');
    AppendJsonString(&line, f.key);
    line.push_back(':');
    if (const auto* s = std::get_if<std::string>(&f.value)) {
      AppendJsonString(&line, *s);
    } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
      AppendJsonInt(&line, *i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      AppendJsonDouble(&line, *d);
    } else {
      line.append(std::get<bool>(f.value) ? "true" : "false");
    }
  }
  line.append("}\n");
  // One write per line keeps concurrent log lines whole.
  [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace duet
