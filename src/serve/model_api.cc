#include "serve/model_api.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>

#include "serve/api.h"
#include "util/json_writer.h"

namespace duet::serve {
namespace {

// The shortest decimal that reads back as exactly `v` as a float32.
void AppendFloat(std::string* out, float v) {
  if (!std::isfinite(v)) {
    *out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

HttpResponse Json200(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace

ModelApi::ModelApi(const ModelCache* cache, ServeProbe* probe, ModelApiOptions options)
    : cache_(cache), probe_(probe), options_(options) {}

HttpResponse ModelApi::Handle(const HttpRequest& req, std::string_view path) const {
  if (path == "/v1/predict") {
    if (req.method != "POST") {
      HttpResponse r =
          Problem(405, "method " + req.method + " is not allowed on /v1/predict; allowed: POST");
      r.headers.emplace_back("Allow", "POST");
      return r;
    }
    return Predict(req);
  }
  if (req.method != "GET" && req.method != "HEAD") {
    HttpResponse r =
        Problem(405, "method " + req.method + " is not allowed on /v1/models; allowed: GET, HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  return Models();
}

HttpResponse ModelApi::Predict(const HttpRequest& req) const {
  if (req.content_type.rfind("application/json", 0) != 0) {
    return Problem(415, "content type '" + req.content_type +
                            "' is not accepted; send the features as application/json");
  }
  const std::shared_ptr<const model::LoadedModel> m = cache_->Current();
  if (m == nullptr) {
    const ModelCache::Health h = cache_->health();
    HttpResponse r =
        Problem(503, h.last_error.empty()
                         ? std::string("no model is promoted yet; train one with duet train")
                         : "no model could be loaded: " + h.last_error);
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }
  // Per thread: the parser and the rows are reused, so a request allocates only its answer.
  thread_local simdjson::dom::parser parser;
  thread_local std::vector<float> rows;
  thread_local std::vector<float> out;
  simdjson::dom::element doc;
  if (const auto err = parser.parse(req.body).get(doc); err != simdjson::SUCCESS) {
    return Problem(400, std::string("body: not valid JSON (") + simdjson::error_message(err) + ")");
  }
  const size_t width = m->encoder.size();
  simdjson::dom::object obj;
  simdjson::dom::array instances;
  bool batch = false;
  if (doc.get_object().get(obj) == simdjson::SUCCESS) {
    simdjson::dom::element inst;
    if (obj["instances"].get(inst) == simdjson::SUCCESS) {
      if (obj.size() != 1) {
        return Problem(422, "body: an object with \"instances\" must have no other field");
      }
      if (inst.get_array().get(instances) != simdjson::SUCCESS) {
        return Problem(422, "instances: expected an array of feature objects");
      }
      batch = true;
    }
  }
  size_t n = 1;
  if (batch) {
    n = instances.size();
    if (n == 0 || n > options_.max_instances) {
      return Problem(422, "instances: " + std::to_string(n) + " feature objects; expected 1 to " +
                              std::to_string(options_.max_instances));
    }
  }
  rows.resize(n * width);
  if (batch) {
    size_t i = 0;
    for (const simdjson::dom::element el : instances) {
      if (Status s = m->encoder.EncodeJson(el, &rows[i * width]); !s.ok()) {
        return Problem(422, "instances[" + std::to_string(i) + "]." + s.message());
      }
      ++i;
    }
  } else if (Status s = m->encoder.EncodeJson(doc, rows.data()); !s.ok()) {
    return Problem(422, s.message());
  }
  if (Status s = m->Predict(rows, &out); !s.ok()) {
    return Problem(500, "prediction failed: " + s.message());
  }
  if (probe_ != nullptr) probe_->Predicted(static_cast<int64_t>(n));
  std::string body = "{\"model_version\":";
  AppendJsonInt(&body, m->info.version);
  if (batch) {
    body += ",\"probabilities\":[";
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) body.push_back(',');
      AppendFloat(&body, out[i]);
    }
    body += "]}";
  } else {
    body += ",\"probability\":";
    AppendFloat(&body, out[0]);
    body += "}";
  }
  return Json200(std::move(body));
}

HttpResponse ModelApi::Models() const {
  const std::vector<store::ModelInfo> versions = cache_->Versions();
  const ModelCache::Health h = cache_->health();
  Json j;
  j.Open();
  j.Key("current");
  if (h.current_version == 0) {
    j.Null();
  } else {
    j.Int(h.current_version);
  }
  j.Key("served");
  if (h.served_version == 0) {
    j.Null();
  } else {
    j.Int(h.served_version);
  }
  j.Key("last_error");
  if (h.last_error.empty()) {
    j.Null();
  } else {
    j.Str(h.last_error);
  }
  j.Key("versions").OpenArray();
  for (const store::ModelInfo& v : versions) {
    j.Open().Key("version").Int(v.version).Key("created_at").Str(UtcTimeString(v.created_ms));
    j.Key("current").Bool(v.version == h.current_version);
    j.Key("metadata").Raw(v.metadata);  // the JSON object `duet train` registered
    j.Close();
  }
  j.CloseArray().Close();
  std::string body = j.Take();
  return Json200(std::move(body));
}

}  // namespace duet::serve
