// Config: command-line options with the precedence flags > DUET_* environment variables >
// config file > defaults. An option "session-gap" is set by `--session-gap 30m`,
// `--session-gap=30m`, DUET_SESSION_GAP=30m, or a line `session-gap = 30m` in the file named by
// --config (or DUET_CONFIG). Values are validated when read, with messages that name the
// option, the value and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "util/result.h"

namespace duet {

class Config {
 public:
  // Declares an option. `is_flag` options take no value on the command line (`--json`).
  void Define(const std::string& name, const std::string& default_value, const std::string& help,
              bool is_flag = false);

  // Parses the arguments after the subcommand. InvalidArgument for unknown options, missing
  // values, stray positional arguments or an unreadable config file.
  Status Parse(const std::vector<std::string>& args);

  // True when the option got a value from a flag, the environment or the config file.
  bool IsSet(const std::string& name) const;
  std::string String(const std::string& name) const;
  bool Bool(const std::string& name) const;
  Result<int64_t> Int(const std::string& name, int64_t min, int64_t max) const;
  Result<double> Double(const std::string& name, double min, double max) const;
  // Durations: "250ms", "60s", "30m", "12h", "1d" or a plain number of milliseconds.
  Result<int64_t> DurationMs(const std::string& name) const;
  // Fails with a clear message when a required option is empty.
  Status Require(const std::string& name) const;

  std::string Help() const;

 private:
  struct Option {
    std::string default_value;
    std::string help;
    bool is_flag = false;
    std::string value;
    std::string origin;  // "flag", "env DUET_X", "config FILE:LINE", or "" for the default
  };
  const Option& Get(const std::string& name) const;
  std::map<std::string, Option> options_;
  std::vector<std::string> order_;
};

// Parses a duration as Config::DurationMs does; `what` names it in the error.
Result<int64_t> ParseDurationMs(const std::string& what, const std::string& text);

}  // namespace duet
