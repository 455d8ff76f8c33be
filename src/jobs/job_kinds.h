// The kinds of job Duet runs and what a request for one may carry (docs/jobs.md):
//   train  {"force": bool, "rounds": 1..100000}   duet train over the worker's input
//   batch  {}                                     duet batch over the worker's input
// The input paths and the store are the worker's configuration, never a request's. Shared by
// the HTTP API (serve/job_api) and `duet jobs submit`, so both refuse the same requests with the
// same messages.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"
#include "util/result.h"

namespace duet::jobs {

inline constexpr std::string_view kTrainKind = "train";
inline constexpr std::string_view kBatchKind = "batch";
inline constexpr int64_t kMaxRounds = 100'000;

// Every kind, in the order messages name them.
const std::vector<std::string>& JobKinds();

// Checks a request's kind and params (a JSON object; null for none) and returns the params as
// canonical JSON text: known keys only, in a fixed order ({"force":true,"rounds":50}). On a bad
// request, InvalidArgument naming the field, e.g. "kind: 'x' is not a job kind; expected train
// or batch" or "params.rounds: expected an integer from 1 to 100000, got 0".
Result<std::string> CheckJobParams(std::string_view kind, simdjson::dom::element params);
// The same from JSON text ("" for none).
Result<std::string> CheckJobParams(std::string_view kind, std::string_view params_json);

struct TrainParams {
  bool force = false;
  int64_t rounds = 0;  // 0: duet train's default
};
// The params of a train job as stored (checked by CheckJobParams).
Result<TrainParams> ParseTrainParams(std::string_view params_json);

// A job as the API and `duet jobs show/list --json` print it: id, kind, params, state,
// created_at, started_at, finished_at, worker, lease_until, message (null when not set) and,
// with `with_log`, log.
std::string JobJson(const store::JobInfo& job, bool with_log);

}  // namespace duet::jobs
