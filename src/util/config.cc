#include "util/config.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>

namespace duet {
namespace {

std::string EnvName(const std::string& option) {
  std::string env = "DUET_";
  for (const char c : option) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
  return env;
}

std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

}  // namespace

void Config::Define(const std::string& name, const std::string& default_value,
                    const std::string& help, bool is_flag) {
  if (!options_.count(name)) order_.push_back(name);
  options_[name] = Option{default_value, help, is_flag, default_value, ""};
}

const Config::Option& Config::Get(const std::string& name) const {
  const auto it = options_.find(name);
  if (it == options_.end()) {
    // Asking for an undeclared option is a programming error, caught in tests.
    std::abort();
  }
  return it->second;
}

Status Config::Parse(const std::vector<std::string>& args) {
  std::map<std::string, std::pair<std::string, std::string>> from_flags;
  std::string config_file;
  if (const char* c = std::getenv("DUET_CONFIG")) config_file = c;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      return Status::InvalidArgument("unexpected argument '" + a + "'; options start with --");
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "config") {
      if (!has_value) {
        if (i + 1 >= args.size()) return Status::InvalidArgument("--config: expected a file name");
        value = args[++i];
      }
      config_file = value;
      continue;
    }
    const auto it = options_.find(name);
    if (it == options_.end()) {
      return Status::InvalidArgument("unknown option --" + name + "; see --help");
    }
    if (!has_value) {
      if (it->second.is_flag) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) {
          return Status::InvalidArgument("--" + name + ": expected a value (" + it->second.help +
                                         ")");
        }
        value = args[++i];
      }
    }
    from_flags[name] = {value, "flag --" + name};
  }
  // Lowest precedence first: config file, then environment, then flags.
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    if (!in) return Status::InvalidArgument("--config: cannot read '" + config_file + "'");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      const std::string t = Trim(line);
      if (t.empty() || t[0] == '#') continue;
      const size_t eq = t.find('=');
      if (eq == std::string::npos) {
        return Status::InvalidArgument(config_file + ":" + std::to_string(n) + ": '" + t +
                                       "' is not 'name = value'");
      }
      std::string key = Trim(t.substr(0, eq));
      for (char& c : key) c = c == '_' ? '-' : c;
      const auto it = options_.find(key);
      if (it == options_.end()) {
        // Keys for other subcommands may share one file: ignore those.
        continue;
      }
      it->second.value = Trim(t.substr(eq + 1));
      it->second.origin = "config " + config_file + ":" + std::to_string(n);
    }
  }
  for (auto& [name, opt] : options_) {
    const std::string env = EnvName(name);
    if (const char* v = std::getenv(env.c_str())) {
      opt.value = v;
      opt.origin = "env " + env;
    }
  }
  for (auto& [name, v] : from_flags) {
    options_[name].value = v.first;
    options_[name].origin = v.second;
  }
  return Status::Ok();
}

bool Config::IsSet(const std::string& name) const { return !Get(name).origin.empty(); }
std::string Config::String(const std::string& name) const { return Get(name).value; }

bool Config::Bool(const std::string& name) const {
  const std::string& v = Get(name).value;
  return v == "true" || v == "1" || v == "yes" || v == "on";
}

Status Config::Require(const std::string& name) const {
  if (Get(name).value.empty()) {
    return Status::InvalidArgument("--" + name + " is required (" + Get(name).help + ")");
  }
  return Status::Ok();
}

Result<int64_t> Config::Int(const std::string& name, int64_t min, int64_t max) const {
  const Option& o = Get(name);
  int64_t v = 0;
  const char* b = o.value.data();
  const char* e = b + o.value.size();
  const auto r = std::from_chars(b, e, v);
  const std::string where =
      o.origin.empty() ? "--" + name : "--" + name + " (from " + o.origin + ")";
  if (r.ec != std::errc() || r.ptr != e) {
    return Status::InvalidArgument(where + ": '" + o.value + "' is not a whole number; expected " +
                                   std::to_string(min) + ".." + std::to_string(max));
  }
  if (v < min || v > max) {
    return Status::InvalidArgument(where + ": " + o.value + " is out of range; expected " +
                                   std::to_string(min) + ".." + std::to_string(max));
  }
  return v;
}

Result<double> Config::Double(const std::string& name, double min, double max) const {
  const Option& o = Get(name);
  char* end = nullptr;
  const double v = std::strtod(o.value.c_str(), &end);
  if (o.value.empty() || end != o.value.c_str() + o.value.size() || !std::isfinite(v) || v < min ||
      v > max) {
    return Status::InvalidArgument("--" + name + ": '" + o.value + "' is not a number in [" +
                                   std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return v;
}

Result<int64_t> ParseDurationMs(const std::string& what, const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  const std::string num = text.substr(0, i), unit = text.substr(i);
  int64_t n = 0;
  const auto r = std::from_chars(num.data(), num.data() + num.size(), n);
  int64_t mult = 0;
  if (unit.empty() || unit == "ms") mult = 1;
  if (unit == "s") mult = 1000;
  if (unit == "m" || unit == "min") mult = 60'000;
  if (unit == "h") mult = 3'600'000;
  if (unit == "d") mult = 86'400'000;
  if (num.empty() || r.ec != std::errc() || mult == 0 || n > INT64_MAX / mult) {
    return Status::InvalidArgument(what + ": '" + text +
                                   "' is not a duration; expected e.g. 250ms, 60s, 30m, 12h, 1d");
  }
  return n * mult;
}

Result<int64_t> Config::DurationMs(const std::string& name) const {
  return ParseDurationMs("--" + name, Get(name).value);
}

std::string Config::Help() const {
  std::string o;
  for (const std::string& name : order_) {
    const Option& opt = options_.at(name);
    o += "  --" + name;
    if (!opt.is_flag) o += " VALUE";
    o += "\n      " + opt.help;
    if (!opt.default_value.empty() && !opt.is_flag) o += " (default: " + opt.default_value + ")";
    o += "  [env " + EnvName(name) + "]\n";
  }
  o += "  --config FILE\n      read 'name = value' lines; flags and DUET_* variables win over it  "
       "[env DUET_CONFIG]\n";
  return o;
}

}  // namespace duet
