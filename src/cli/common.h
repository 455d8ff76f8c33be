// What every `duet` subcommand shares: exit codes, the error report for a person plus its
// structured log line, and option parsing with --help.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/config.h"
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

}  // namespace duet
