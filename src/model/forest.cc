#include "model/forest.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace duet::model {
namespace {

namespace dom = simdjson::dom;

Status Unsupported(const std::string& what) {
  return Status::NotSupported("native evaluation: " + what + "; XGBoost's predictor is used");
}

// A number XGBoost wrote as a JSON string ("5E-1") or number.
bool ReadNumber(dom::element el, double* out) {
  if (el.get_double().get(*out) == simdjson::SUCCESS) return true;
  std::string_view s;
  if (el.get_string().get(s) != simdjson::SUCCESS) return false;
  const std::string text(s);
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return !text.empty() && *end == '\0';
}

// A small deterministic generator for the check rows.
struct SplitMix {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

}  // namespace

Result<Forest> Forest::FromBooster(const Booster& booster) {
  auto json = booster.SaveJson();
  if (!json.ok()) return json.status();
  dom::parser parser;
  dom::element doc;
  if (parser.parse(*json).get(doc) != simdjson::SUCCESS) return Unsupported("unreadable dump");
  dom::element learner;
  if (doc["learner"].get(learner) != simdjson::SUCCESS) return Unsupported("no learner");
  std::string_view objective, booster_name;
  if (learner["objective"]["name"].get_string().get(objective) != simdjson::SUCCESS ||
      objective != "binary:logistic") {
    return Unsupported("objective '" + std::string(objective) + "'");
  }
  if (learner["gradient_booster"]["name"].get_string().get(booster_name) != simdjson::SUCCESS ||
      booster_name != "gbtree") {
    return Unsupported("booster '" + std::string(booster_name) + "'");
  }
  double base_score = 0, num_feature = 0, num_target = 1;
  const dom::element mp = learner["learner_model_param"];
  if (!ReadNumber(mp["base_score"], &base_score) || !ReadNumber(mp["num_feature"], &num_feature)) {
    return Unsupported("no base_score or num_feature");
  }
  if (dom::element t; mp["num_target"].get(t) == simdjson::SUCCESS) {
    if (!ReadNumber(t, &num_target)) return Unsupported("unreadable num_target");
  }
  if (num_target != 1 || num_feature != static_cast<double>(booster.features())) {
    return Unsupported("several targets or another feature count");
  }
  Forest f;
  f.features_ = booster.features();
  // XGBoost's ProbToMargin for binary:logistic, in float as it computes it.
  const float base = static_cast<float>(base_score);
  f.base_margin_ = -std::log(1.0F / base - 1.0F);
  dom::array trees, tree_info;
  if (learner["gradient_booster"]["model"]["trees"].get_array().get(trees) != simdjson::SUCCESS) {
    return Unsupported("no trees");
  }
  for (const dom::element t : trees) {
    dom::array left, right, index, cond, dleft, type;
    if (t["left_children"].get_array().get(left) != simdjson::SUCCESS ||
        t["right_children"].get_array().get(right) != simdjson::SUCCESS ||
        t["split_indices"].get_array().get(index) != simdjson::SUCCESS ||
        t["split_conditions"].get_array().get(cond) != simdjson::SUCCESS ||
        t["default_left"].get_array().get(dleft) != simdjson::SUCCESS) {
      return Unsupported("a tree without its arrays");
    }
    const size_t n = left.size();
    if (right.size() != n || index.size() != n || cond.size() != n || dleft.size() != n || n == 0) {
      return Unsupported("a tree with arrays of different lengths");
    }
    if (t["split_type"].get_array().get(type) == simdjson::SUCCESS) {
      for (const dom::element st : type) {
        int64_t v = 0;
        if (st.get_int64().get(v) != simdjson::SUCCESS || v != 0) {
          return Unsupported("categorical splits");
        }
      }
    }
    const auto first = static_cast<uint32_t>(f.nodes_.size());
    f.roots_.push_back(first);
    auto l = left.begin(), r = right.begin(), ix = index.begin(), c = cond.begin(),
         d = dleft.begin();
    for (size_t i = 0; i < n; ++i, ++l, ++r, ++ix, ++c, ++d) {
      int64_t li = 0, ri = 0, fi = 0, di = 0;
      double value = 0;
      if ((*l).get_int64().get(li) != simdjson::SUCCESS ||
          (*r).get_int64().get(ri) != simdjson::SUCCESS ||
          (*ix).get_int64().get(fi) != simdjson::SUCCESS || !ReadNumber(*c, &value) ||
          (*d).get_int64().get(di) != simdjson::SUCCESS) {
        return Unsupported("a node that does not read");
      }
      const bool leaf = li == -1;
      if (!leaf &&
          (li <= 0 || ri <= 0 || static_cast<size_t>(li) >= n || static_cast<size_t>(ri) >= n ||
           fi < 0 || static_cast<size_t>(fi) >= f.features_)) {
        return Unsupported("a node out of range");
      }
      f.nodes_.push_back(Node{leaf ? -1 : static_cast<int32_t>(first + li),
                              leaf ? -1 : static_cast<int32_t>(first + ri),
                              static_cast<uint32_t>(leaf ? 0 : fi), di != 0,
                              static_cast<float>(value)});
    }
  }
  if (f.roots_.empty()) return Unsupported("no trees");

  // The check: rows around every threshold of every feature, and missing values, scored by both.
  std::vector<std::vector<float>> thresholds(f.features_);
  for (const Node& node : f.nodes_) {
    if (node.left >= 0) thresholds[node.feature].push_back(node.value);
  }
  constexpr size_t kRows = 2048;
  std::vector<float> rows(kRows * f.features_);
  SplitMix rng{0x5eed};
  for (size_t i = 0; i < kRows; ++i) {
    for (size_t c = 0; c < f.features_; ++c) {
      float& v = rows[i * f.features_ + c];
      const std::vector<float>& th = thresholds[c];
      const uint64_t pick = rng.Next();
      if (pick % 8 == 0 || th.empty()) {
        v = pick % 16 == 0 ? std::numeric_limits<float>::quiet_NaN()
                           : static_cast<float>(rng.Next() % 64);
        continue;
      }
      const float t = th[rng.Next() % th.size()];
      switch (pick % 3) {
        case 0:
          v = std::nextafter(t, -std::numeric_limits<float>::infinity());
          break;
        case 1:
          v = t;
          break;
        default:
          v = std::nextafter(t, std::numeric_limits<float>::infinity());
      }
    }
  }
  std::vector<float> want;
  DUET_RETURN_IF_ERROR(booster.Predict(rows, &want));
  for (size_t i = 0; i < kRows; ++i) {
    const float got = f.PredictRow(&rows[i * f.features_]);
    if (std::memcmp(&got, &want[i], sizeof got) != 0) {
      return Unsupported("check row " + std::to_string(i) + " gives " + std::to_string(got) +
                         " where XGBoost gives " + std::to_string(want[i]));
    }
  }
  f.checked_rows_ = kRows;
  return f;
}

float Forest::PredictRow(const float* row) const {
  float margin = base_margin_;
  for (const uint32_t root : roots_) {
    const Node* n = &nodes_[root];
    while (n->left >= 0) {
      const float v = row[n->feature];
      const int32_t next = std::isnan(v) ? (n->default_left ? n->left : n->right)
                                         : (v < n->value ? n->left : n->right);
      n = &nodes_[static_cast<size_t>(next)];
    }
    margin += n->value;
  }
  return 1.0F / (1.0F + std::exp(-margin));
}

void Forest::Predict(std::span<const float> x, std::vector<float>* out) const {
  out->clear();
  const size_t rows = features_ == 0 ? 0 : x.size() / features_;
  out->reserve(rows);
  for (size_t i = 0; i < rows; ++i) out->push_back(PredictRow(&x[i * features_]));
}

}  // namespace duet::model
