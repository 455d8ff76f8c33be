// libFuzzer target: the collector's request handling without the network —
// collect::ParseContentType and collect::SplitBody, the two pure functions every POST goes
// through before anything reaches Kafka.
//
// The input is "CONTENT-TYPE\nBODY" (no '\n': the whole input is the header and the body is
// empty). Asserted (abort, so libFuzzer reports a crash):
// - ParseContentType accepts exactly application/json, application/x-ndjson and
//   application/ndjson (any case, parameters after ';' and trailing blanks ignored), and its
//   NotSupported message names the value it got;
// - SplitBody, for both body types: every message is a single line (no '\n'); a message's key is
//   empty or the string "visitor" of the message's JSON object;
// - kNdjson (and kJson when the body is not valid JSON): the messages are exactly the lines —
//   joining them with '\n' gives the body back, modulo its final '\n'; nothing is dropped;
// - kJson with a valid body: an array gives one message per element, another value one message;
//   every message is valid JSON already without whitespace (minify leaves it unchanged).
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "collect/collector.h"
#include "fuzz/check.h"

namespace {

using duet::collect::BodyType;
using duet::collect::Message;

using duet::fuzz::Check;

// The media type as the contract defines it: before ';', trailing blanks dropped, lower case.
std::string MediaType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string lower(t);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

void CheckContentType(std::string_view content_type) {
  const auto got = duet::collect::ParseContentType(content_type);
  const std::string media = MediaType(content_type);
  if (media == "application/json") {
    Check(got.ok() && *got == BodyType::kJson, "application/json is kJson");
  } else if (media == "application/x-ndjson" || media == "application/ndjson") {
    Check(got.ok() && *got == BodyType::kNdjson, "NDJSON types are kNdjson");
  } else {
    Check(!got.ok(), "any other content type is refused");
    Check(got.status().code() == duet::StatusCode::kNotSupported, "refusal is NotSupported");
    Check(got.status().message().find(content_type) != std::string::npos,
          "the refusal names the value it got");
  }
}

// The lines of `body` as the collector's contract defines them: '\n' ends a line, the final
// '\n' ends the last line (no empty line after it).
std::vector<std::string_view> Lines(std::string_view body) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    out.push_back(body.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

void CheckCommon(const std::vector<Message>& messages) {
  simdjson::dom::parser parser;
  for (const Message& m : messages) {
    Check(m.value.find('\n') == std::string::npos, "every message is a single line", m.value.size(),
          0);
    if (m.key.empty()) continue;
    simdjson::dom::element e;
    std::string_view visitor;
    Check(parser.parse(m.value).get(e) == simdjson::SUCCESS && e.is_object() &&
              e["visitor"].get(visitor) == simdjson::SUCCESS && visitor == m.key,
          "a message's key is its visitor", m.key.size(), visitor.size());
  }
}

void CheckLines(std::string_view body, const std::vector<Message>& messages) {
  const std::vector<std::string_view> lines = Lines(body);
  Check(messages.size() == lines.size(), "one message per line", messages.size(), lines.size());
  std::string joined;
  for (size_t i = 0; i < messages.size(); ++i) {
    Check(messages[i].value == lines[i], "each message is its line, byte for byte", i,
          messages[i].value.size());
    if (i > 0) joined += '\n';
    joined += messages[i].value;
  }
  if (!body.empty() && body.back() == '\n') joined += '\n';
  Check(joined == body, "joining the messages gives the body back", joined.size(), body.size());
}

void CheckJson(std::string_view body, const std::vector<Message>& messages) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc) != simdjson::SUCCESS) {
    CheckLines(body, messages);  // not valid JSON: split like NDJSON
    return;
  }
  simdjson::dom::array array;
  const size_t expected = doc.get_array().get(array) == simdjson::SUCCESS ? array.size() : 1;
  Check(messages.size() == expected, "a JSON array gives one message per element, a value one",
        messages.size(), expected);
  simdjson::dom::parser again;
  for (const Message& m : messages) {
    simdjson::dom::element e;
    Check(again.parse(m.value).get(e) == simdjson::SUCCESS, "every message is valid JSON",
          m.value.size(), 0);
    Check(simdjson::minify(e) == m.value, "every message is minified", m.value.size(), 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string_view content_type = in.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : in.substr(nl + 1);
  CheckContentType(content_type);

  const std::vector<Message> ndjson = duet::collect::SplitBody(body, BodyType::kNdjson);
  CheckCommon(ndjson);
  CheckLines(body, ndjson);

  const std::vector<Message> json = duet::collect::SplitBody(body, BodyType::kJson);
  CheckCommon(json);
  CheckJson(body, json);
  return 0;
}
