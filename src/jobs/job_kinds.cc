#include "jobs/job_kinds.h"

#include "util/json_writer.h"

namespace duet::jobs {
namespace {

std::string KindList() {
  std::string out;
  const std::vector<std::string>& kinds = JobKinds();
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) out += i + 1 == kinds.size() ? " or " : ", ";
    out += kinds[i];
  }
  return out;
}

// A short rendering of a JSON value for a message.
std::string Shown(simdjson::dom::element v) {
  std::string s = simdjson::minify(v);
  constexpr size_t kMax = 40;
  if (s.size() > kMax) s = s.substr(0, kMax) + "…";
  return s;
}

}  // namespace

const std::vector<std::string>& JobKinds() {
  static const std::vector<std::string> kinds = {std::string(kTrainKind), std::string(kBatchKind)};
  return kinds;
}

Result<std::string> CheckJobParams(std::string_view kind, simdjson::dom::element params) {
  bool known = false;
  for (const std::string& k : JobKinds()) known = known || k == kind;
  if (!known) {
    return Status::InvalidArgument("kind: '" + std::string(kind) +
                                   "' is not a job kind; expected " + KindList());
  }
  simdjson::dom::object obj;
  if (!params.is_null() && params.get_object().get(obj) != simdjson::SUCCESS) {
    return Status::InvalidArgument("params: expected an object, got " + Shown(params));
  }
  if (params.is_null()) return std::string("{}");
  if (kind == kBatchKind) {
    for (const auto field : obj) {
      return Status::InvalidArgument(
          "params." + std::string(field.key) +
          ": batch jobs take no parameters (the input is the worker's configuration)");
    }
    return std::string("{}");
  }
  bool has_force = false, force = false;
  int64_t rounds = 0;
  for (const auto field : obj) {
    const std::string name(field.key);
    if (name == "force") {
      if (field.value.get_bool().get(force) != simdjson::SUCCESS) {
        return Status::InvalidArgument("params.force: expected true or false, got " +
                                       Shown(field.value));
      }
      has_force = true;
    } else if (name == "rounds") {
      int64_t n = 0;
      if (field.value.get_int64().get(n) != simdjson::SUCCESS || n < 1 || n > kMaxRounds) {
        return Status::InvalidArgument("params.rounds: expected an integer from 1 to " +
                                       std::to_string(kMaxRounds) + ", got " + Shown(field.value));
      }
      rounds = n;
    } else {
      return Status::InvalidArgument("params." + name +
                                     ": not a parameter of train jobs; expected force, rounds");
    }
  }
  Json j;
  j.Open();
  if (has_force) j.Key("force").Bool(force);
  if (rounds > 0) j.Key("rounds").Int(rounds);
  j.Close();
  return j.Take();
}

Result<std::string> CheckJobParams(std::string_view kind, std::string_view params_json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (params_json.empty()) params_json = "null";
  if (const auto err = parser.parse(params_json.data(), params_json.size()).get(doc);
      err != simdjson::SUCCESS) {
    return Status::InvalidArgument(std::string("params: not valid JSON (") +
                                   simdjson::error_message(err) + ")");
  }
  return CheckJobParams(kind, doc);
}

Result<TrainParams> ParseTrainParams(std::string_view params_json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(params_json.data(), params_json.size()).get(doc) != simdjson::SUCCESS) {
    return Status::InvalidArgument("train job params are not valid JSON: " +
                                   std::string(params_json));
  }
  auto canonical = CheckJobParams(kTrainKind, doc);
  if (!canonical.ok()) return canonical.status();
  TrainParams p;
  if (auto v = doc["force"].get_bool(); !v.error()) p.force = v.value_unsafe();
  if (auto v = doc["rounds"].get_int64(); !v.error()) p.rounds = v.value_unsafe();
  return p;
}

std::string JobJson(const store::JobInfo& job, bool with_log) {
  auto time_or_null = [](Json& j, const char* key, int64_t ms) {
    j.Key(key);
    if (ms == 0) {
      j.Null();
    } else {
      j.Str(UtcTimeString(ms));
    }
  };
  auto str_or_null = [](Json& j, const char* key, const std::string& s) {
    j.Key(key);
    if (s.empty()) {
      j.Null();
    } else {
      j.Str(s);
    }
  };
  Json j;
  j.Open().Key("id").Int(job.id).Key("kind").Str(job.kind);
  // Written by CheckJobParams; anything else (a damaged store) is shown as a string.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  j.Key("params");
  if (parser.parse(job.params).get(doc) == simdjson::SUCCESS && doc.is_object()) {
    j.Raw(simdjson::minify(doc));
  } else {
    j.Str(job.params);
  }
  j.Key("state").Str(store::JobStateName(job.state));
  time_or_null(j, "created_at", job.created_ms);
  time_or_null(j, "started_at", job.started_ms);
  time_or_null(j, "finished_at", job.finished_ms);
  str_or_null(j, "worker", job.worker);
  time_or_null(j, "lease_until",
               job.state == store::JobState::kRunning ? job.lease_until_ms : int64_t{0});
  str_or_null(j, "message", job.message);
  if (with_log) j.Key("log").Str(job.log);
  j.Close();
  return j.Take();
}

}  // namespace duet::jobs
