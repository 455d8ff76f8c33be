// Minimal JSON text building: string escaping and number formatting shared by logs, reports
// and the store. Writes into a caller-owned std::string to avoid allocations on hot paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duet {

// Appends s as a JSON string literal (with quotes). Invalid UTF-8 bytes are written as \u00XX
// escapes of the raw byte so that the output is always valid JSON.
void AppendJsonString(std::string* out, std::string_view s);
// Appends the shortest decimal that reads back as exactly d (JSON has no NaN/Inf: they become
// null).
void AppendJsonDouble(std::string* out, double d);
void AppendJsonInt(std::string* out, int64_t v);
// ms since the epoch as RFC 3339 UTC: "2026-11-24T10:00:00Z", with ".mmmZ" when not a whole second.
std::string UtcTimeString(int64_t ms);

// A JSON text written in order; commas are placed by the writer.
class Json {
 public:
  Json& Open() { return Begin('{'); }
  Json& Close() { return End('}'); }
  Json& OpenArray() { return Begin('['); }
  Json& CloseArray() { return End(']'); }
  Json& Key(std::string_view k) {
    Comma();
    AppendJsonString(&s_, k);
    s_.push_back(':');
    after_key_ = true;
    return *this;
  }
  Json& Str(std::string_view v) {
    Comma();
    AppendJsonString(&s_, v);
    return *this;
  }
  Json& StrOrNull(const std::optional<std::string>& v) { return v ? Str(*v) : Null(); }
  Json& Int(int64_t v) {
    Comma();
    AppendJsonInt(&s_, v);
    return *this;
  }
  Json& Num(double v) {  // NaN and infinities become null
    Comma();
    AppendJsonDouble(&s_, v);
    return *this;
  }
  Json& Bool(bool v) {
    Comma();
    s_ += v ? "true" : "false";
    return *this;
  }
  Json& Null() {
    Comma();
    s_ += "null";
    return *this;
  }
  // Object fields written by another function (`"a":1,"b":2,`, a trailing comma allowed).
  Json& Fields(const std::string& fields) {
    Comma();
    std::string_view f = fields;
    if (!f.empty() && f.back() == ',') f.remove_suffix(1);
    s_ += f;
    return *this;
  }
  // A value that is already JSON text (e.g. a stored document), written as is.
  Json& Raw(std::string_view json) {
    Comma();
    s_ += json;
    return *this;
  }
  std::string Take() { return std::move(s_); }

 private:
  Json& Begin(char c) {
    Comma();
    s_.push_back(c);
    first_ = true;
    return *this;
  }
  Json& End(char c) {
    s_.push_back(c);
    first_ = false;
    return *this;
  }
  void Comma() {
    if (after_key_) {
      after_key_ = false;
      first_ = false;
      return;
    }
    if (!first_ && !s_.empty()) s_.push_back(',');
    first_ = false;
  }

  std::string s_;
  bool first_ = true;
  bool after_key_ = false;
};

}  // namespace duet
