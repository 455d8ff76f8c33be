#include "serve/job_api.h"

#include <simdjson.h>

#include <cctype>
#include <charconv>

#include "jobs/job_kinds.h"

namespace duet::serve {
namespace {

constexpr std::string_view kPrefix = "/v1/jobs";

HttpResponse JsonAnswer(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

// A store failure: 503 when a retry may help, else 500.
HttpResponse StoreProblem(const Status& s) {
  if (s.code() == StatusCode::kUnavailable) {
    HttpResponse r = Problem(503, "the store is unavailable: " + s.message());
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }
  return Problem(500, "the store failed: " + s.ToString());
}

HttpResponse MethodNotAllowed(const std::string& method, std::string_view path,
                              const char* allowed) {
  HttpResponse r = Problem(405, "method " + method + " is not allowed on " + std::string(path) +
                                    "; allowed: " + allowed);
  r.headers.emplace_back("Allow", allowed);
  return r;
}

bool ParsePositive(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && *out > 0;
}

}  // namespace

bool SameSecret(std::string_view given, std::string_view expected) {
  // Every byte of `given` is compared (against a byte of `expected`, or against itself when
  // `expected` is shorter), so the time depends on the length of `given` only.
  unsigned diff = given.size() != expected.size() ? 1u : 0u;
  for (size_t i = 0; i < given.size(); ++i) {
    const unsigned char e = i < expected.size() ? static_cast<unsigned char>(expected[i])
                                                : static_cast<unsigned char>(given[i] ^ 1);
    diff |= static_cast<unsigned char>(given[i]) ^ e;
  }
  return diff == 0;
}

JobApi::JobApi(store::Store* store, JobApiOptions options, std::function<int64_t()> now_ms)
    : store_(store), options_(std::move(options)), now_ms_(std::move(now_ms)) {}

bool JobApi::Authorized(const HttpRequest& req, HttpResponse* refusal) const {
  if (options_.admin_token.empty()) {
    *refusal = Problem(403,
                       "admin routes are disabled: start duet serve with --admin-token or "
                       "DUET_ADMIN_TOKEN");
    return false;
  }
  std::string_view auth = req.authorization;
  constexpr std::string_view kScheme = "bearer ";
  bool bearer = auth.size() > kScheme.size();
  for (size_t i = 0; bearer && i < kScheme.size(); ++i) {
    bearer = std::tolower(static_cast<unsigned char>(auth[i])) == kScheme[i];
  }
  if (bearer) {
    auth.remove_prefix(kScheme.size());
    while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
    while (!auth.empty() && auth.back() == ' ') auth.remove_suffix(1);
    if (SameSecret(auth, options_.admin_token)) return true;
  }
  *refusal = Problem(401, req.authorization.empty()
                              ? std::string("this route needs the admin token: send "
                                            "Authorization: Bearer TOKEN")
                              : std::string("the Authorization header does not carry the admin "
                                            "token (expected Bearer TOKEN)"));
  refusal->headers.emplace_back("WWW-Authenticate", "Bearer realm=\"duet admin\"");
  return false;
}

HttpResponse JobApi::Handle(const HttpRequest& req, std::string_view path) const {
  // Authentication first: without the token nothing about the routes is revealed.
  if (HttpResponse refusal; !Authorized(req, &refusal)) return refusal;
  if (path == kPrefix) {
    if (req.method == "POST") return Submit(req);
    if (req.method == "GET" || req.method == "HEAD") return List(req);
    return MethodNotAllowed(req.method, path, "GET, HEAD, POST");
  }
  if (path.size() > kPrefix.size() + 1 && path.substr(0, kPrefix.size() + 1) == "/v1/jobs/") {
    if (req.method != "GET" && req.method != "HEAD") {
      return MethodNotAllowed(req.method, path, "GET, HEAD");
    }
    return Show(path.substr(kPrefix.size() + 1));
  }
  return Problem(404, "no route " + std::string(path) + "; job routes: /v1/jobs, /v1/jobs/{id}");
}

HttpResponse JobApi::Submit(const HttpRequest& req) const {
  if (req.content_type.rfind("application/json", 0) != 0) {
    return Problem(415, "content type '" + req.content_type +
                            "' is not accepted; send the job as application/json");
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (const auto err = parser.parse(req.body).get(doc); err != simdjson::SUCCESS) {
    return Problem(400, std::string("body: not valid JSON (") + simdjson::error_message(err) + ")");
  }
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) {
    return Problem(422,
                   R"(body: expected an object {"kind": "train" or "batch", "params": {...}})");
  }
  std::string_view kind;
  bool has_kind = false, has_params = false;
  simdjson::dom::element params;
  for (const auto field : obj) {
    if (field.key == "kind") {
      if (field.value.get_string().get(kind) != simdjson::SUCCESS) {
        return Problem(422, "kind: expected a string, train or batch");
      }
      has_kind = true;
    } else if (field.key == "params") {
      params = field.value;
      has_params = true;
    } else {
      return Problem(
          422, "body: unknown field '" + std::string(field.key) + "'; expected kind and params");
    }
  }
  if (!has_kind) return Problem(422, "kind: required (train or batch)");
  auto canonical = has_params ? jobs::CheckJobParams(kind, params)
                              : jobs::CheckJobParams(kind, std::string_view());
  if (!canonical.ok()) return Problem(422, canonical.status().message());
  auto job = store_->EnqueueJob(kind, *canonical, now_ms_(), false);
  if (!job.ok()) return StoreProblem(job.status());
  HttpResponse r = JsonAnswer(202, jobs::JobJson(*job, false));
  r.headers.emplace_back("Location", "/v1/jobs/" + std::to_string(job->id));
  return r;
}

HttpResponse JobApi::List(const HttpRequest& req) const {
  int64_t limit = options_.default_limit;
  std::string_view q = req.query;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string_view key = part.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (key != "limit") {
      return Problem(
          400, "query parameter '" + std::string(key) + "' is not known here; expected limit");
    }
    if (!ParsePositive(value, &limit) || limit > options_.max_limit) {
      return Problem(400, "query parameter 'limit': '" + std::string(value) +
                              "' is not an integer from 1 to " +
                              std::to_string(options_.max_limit));
    }
  }
  auto list = store_->ListJobs(limit);
  if (!list.ok()) return StoreProblem(list.status());
  std::string body = "{\"jobs\":[";
  for (size_t i = 0; i < list->size(); ++i) {
    if (i > 0) body.push_back(',');
    body += jobs::JobJson((*list)[i], false);
  }
  body += "]}";
  return JsonAnswer(200, std::move(body));
}

HttpResponse JobApi::Show(std::string_view id_text) const {
  int64_t id = 0;
  if (!ParsePositive(id_text, &id)) {
    return Problem(404, "no job '" + std::string(id_text) + "': job ids are positive integers");
  }
  auto job = store_->GetJob(id);
  if (!job.ok()) {
    if (job.status().code() == StatusCode::kNotFound) {
      return Problem(404, "no job " + std::to_string(id));
    }
    return StoreProblem(job.status());
  }
  return JsonAnswer(200, jobs::JobJson(*job, true));
}

}  // namespace duet::serve
