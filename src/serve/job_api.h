// The job routes of `duet serve` (docs/jobs.md): POST /v1/jobs queues a training run or a batch
// rerun, GET /v1/jobs lists the newest jobs, GET /v1/jobs/{id} shows one with its log. Workers
// (`duet jobs worker`, jobs::Runner) run the jobs; these routes only read and write the store.
//
// Every route needs the admin token: "Authorization: Bearer TOKEN", compared in constant time.
// Without a configured token the routes answer 403; a missing or wrong token gets 401 with
// "WWW-Authenticate: Bearer". Unlike the view routes, these answer from the store, one store
// call per request (a small read or an insert): keep them for operators, not for traffic.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "serve/http_server.h"
#include "store/store.h"

namespace duet::serve {

struct JobApiOptions {
  std::string admin_token;  // "" disables the routes (403)
  int64_t default_limit = 50;
  int64_t max_limit = 1000;
};

class JobApi {
 public:
  // `store` must outlive the JobApi and be thread-safe (every Store is). `now_ms`: the wall clock.
  JobApi(store::Store* store, JobApiOptions options, std::function<int64_t()> now_ms);
  // `path` is the decoded path: "/v1/jobs" or "/v1/jobs/{id}". Thread-safe.
  HttpResponse Handle(const HttpRequest& request, std::string_view path) const;

 private:
  HttpResponse Submit(const HttpRequest& request) const;
  HttpResponse List(const HttpRequest& request) const;
  HttpResponse Show(std::string_view id) const;
  // True when the request carries the admin token; else *refusal is the answer.
  bool Authorized(const HttpRequest& request, HttpResponse* refusal) const;

  store::Store* const store_;
  const JobApiOptions options_;
  const std::function<int64_t()> now_ms_;
};

// Equal strings, in time that depends only on the length of `given`.
bool SameSecret(std::string_view given, std::string_view expected);

}  // namespace duet::serve
