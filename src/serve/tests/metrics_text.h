// Test helper for Prometheus text: the value of one series.
#pragma once

#include <string>

namespace duet::serve {

// The value on the line of `text` that starts with `head` and a space ("" if none).
inline std::string ValueOf(const std::string& text, const std::string& head) {
  const std::string key = "\n" + head + " ";
  const size_t at = ("\n" + text).find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() - 1;
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace duet::serve
