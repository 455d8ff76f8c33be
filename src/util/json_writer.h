// Minimal JSON text building: string escaping and number formatting shared by logs, reports
// and the store. Writes into a caller-owned std::string to avoid allocations on hot paths.
#pragma once

#include <cstdint>
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

}  // namespace duet
