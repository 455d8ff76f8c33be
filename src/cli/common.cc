#include "cli/common.h"

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

}  // namespace duet
