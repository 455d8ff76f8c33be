#include "core/aggregator.h"

#include <algorithm>
#include <cassert>
#include <tuple>

namespace duet::core {
namespace {

constexpr int64_t kWindow24h = 24;

uint64_t Slot(KeyId k, int64_t hour) {
  return (static_cast<uint64_t>(k) << 32) | static_cast<uint32_t>(hour);
}
KeyId SlotKey(uint64_t s) { return static_cast<KeyId>(s >> 32); }
int64_t SlotHour(uint64_t s) { return static_cast<int64_t>(s & 0xffffffffULL); }
int64_t HourOfMs(int64_t ts) { return ts / kMsPerHour; }

// What AddVisitor and Summarize both read from one session's events: appends to *keys, after
// index `keys_begin`, the (experiment, key) of each experiment's earliest mention (attribution);
// to *values the conversion values; to *hours the session's distinct hours with a beacon,
// ascending.
void ScanSession(std::span<const Event> events, const Catalog& catalog, std::vector<KeyTag>* keys,
                 size_t keys_begin, std::vector<double>* values, std::vector<int64_t>* hours,
                 uint32_t* pageviews, uint32_t* conversions) {
  const size_t hours_begin = hours->size();
  *pageviews = 0;
  *conversions = 0;
  for (const Event& e : events) {
    for (const KeyTag& t : catalog.Tags(e.tags)) {
      bool seen = false;
      for (size_t i = keys_begin; i < keys->size(); ++i)
        seen |= ((*keys)[i].experiment == t.experiment);
      if (!seen) keys->push_back(t);
    }
    *pageviews += e.type == beacon::BeaconType::kPageview;
    if (e.type == beacon::BeaconType::kConversion) {
      ++*conversions;
      values->push_back(e.value);
    }
    const int64_t h = HourOfMs(e.ts);
    if (hours->size() == hours_begin || hours->back() != h) hours->push_back(h);
  }
}

}  // namespace

SessionSpan SessionSpan::First(size_t k) const {
  size_t nv = 0;
  size_t nh = 0;
  for (size_t i = 0; i < k; ++i) {
    nv += sessions[i].conversions;
    nh += sessions[i].hours;
  }
  return SessionSpan{sessions.first(k), values.first(nv), hours.first(nh)};
}

void SessionList::Append(const SessionSpan& s) {
  sessions.insert(sessions.end(), s.sessions.begin(), s.sessions.end());
  values.insert(values.end(), s.values.begin(), s.values.end());
  hours.insert(hours.end(), s.hours.begin(), s.hours.end());
}

size_t SessionPrefixEnd(std::span<const Session> sessions, int64_t gap_ms, int64_t horizon_ms) {
  size_t k = 0;
  while (k < sessions.size() && sessions[k].end_ts + gap_ms < horizon_ms) ++k;
  return k;
}

void Summarize(std::span<const Event> events, int64_t gap_ms, Catalog* catalog, SessionList* out) {
  thread_local std::vector<KeyTag> keys;
  thread_local std::vector<int64_t> hours;
  size_t begin = 0;
  for (size_t i = 1; i <= events.size(); ++i) {
    if (i < events.size() && events[i].ts - events[i - 1].ts <= gap_ms) continue;
    Session s;
    s.start_ts = events[begin].ts;
    s.end_ts = events[i - 1].ts;
    s.events = static_cast<uint32_t>(i - begin);
    keys.clear();
    hours.clear();
    ScanSession(events.subspan(begin, i - begin), *catalog, &keys, 0, &out->values, &hours,
                &s.pageviews, &s.conversions);
    const int64_t span = HourOfMs(s.end_ts) - HourOfMs(s.start_ts) + 1;
    if (static_cast<int64_t>(hours.size()) != span) {
      s.hours = static_cast<uint32_t>(hours.size());
      out->hours.insert(out->hours.end(), hours.begin(), hours.end());
    }
    s.attribution = catalog->InternKeys(keys);
    out->sessions.push_back(s);
    begin = i;
  }
}

void Sessionize(std::span<const Event> events, int64_t gap_ms, std::vector<SessionBounds>* out) {
  out->clear();
  if (events.empty()) return;
  uint32_t begin = 0;
  for (uint32_t i = 1; i < events.size(); ++i) {
    if (events[i].ts - events[i - 1].ts > gap_ms) {
      out->push_back(SessionBounds{begin, i});
      begin = i;
    }
  }
  out->push_back(SessionBounds{begin, static_cast<uint32_t>(events.size())});
}

size_t SessionPrefixEnd(std::span<const Event> events, int64_t gap_ms, int64_t horizon_ms) {
  size_t begin = 0;  // first event of the current session
  for (size_t i = 1; i <= events.size(); ++i) {
    if (i < events.size() && events[i].ts - events[i - 1].ts <= gap_ms) continue;
    // events[begin, i) is one session; it is complete if it ended more than a gap before.
    if (events[i - 1].ts + gap_ms >= horizon_ms) return begin;
    begin = i;
  }
  return events.size();
}

void Aggregator::Acc::Merge(const Acc& o) {
  visitors += o.visitors;
  sessions += o.sessions;
  events += o.events;
  pageviews += o.pageviews;
  conversions += o.conversions;
  bounces += o.bounces;
  duration_ms += o.duration_ms;
  converted_visitors += o.converted_visitors;
  sessions_sq += o.sessions_sq;
  conversions_sq += o.conversions_sq;
  sessions_x_conversions += o.sessions_x_conversions;
  multi += o.multi;
  revenue.Merge(o.revenue);
  revenue_sq.Merge(o.revenue_sq);
}

FigureValues Aggregator::Acc::Values() const {
  FigureValues v;
  v.visitors = visitors;
  v.sessions = sessions;
  v.events = events;
  v.pageviews = pageviews;
  v.conversions = conversions;
  v.bounces = bounces;
  v.duration_ms = duration_ms;
  v.converted_visitors = converted_visitors;
  v.sessions_sq = sessions_sq;
  v.conversions_sq = conversions_sq;
  v.sessions_x_conversions = sessions_x_conversions;
  v.visitors_in_multiple_variants = multi;
  v.revenue = revenue.Value();
  v.revenue_sq = revenue_sq.Value();
  return v;
}

void Aggregator::Acc::Save(ByteWriter* w) const {
  for (const int64_t v :
       {visitors, sessions, events, pageviews, conversions, bounces, duration_ms,
        converted_visitors, sessions_sq, conversions_sq, sessions_x_conversions, multi}) {
    w->I64(v);
  }
  revenue.Save(w);
  revenue_sq.Save(w);
}

bool Aggregator::Acc::Load(ByteReader* r) {
  for (int64_t* v :
       {&visitors, &sessions, &events, &pageviews, &conversions, &bounces, &duration_ms,
        &converted_visitors, &sessions_sq, &conversions_sq, &sessions_x_conversions, &multi}) {
    *v = r->I64();
  }
  return revenue.Load(r) && revenue_sq.Load(r) && r->ok();
}

void Aggregator::Save(ByteWriter* w) const {
  w->U64(totals_.size());
  for (const Acc& a : totals_) a.Save(w);
  w->U64(hourly_.size());
  for (const auto& [slot, acc] : hourly_.entries()) {
    w->U64(slot);
    acc.Save(w);
  }
  for (const FlatMap<int64_t>* m : {&uniques_1h_, &uniques_24h_diff_}) {
    w->U64(m->size());
    for (const auto& [slot, n] : m->entries()) {
      w->U64(slot);
      w->I64(n);
    }
  }
  w->U64(multi_.size());
  for (const int64_t m : multi_) w->I64(m);
  w->I64(min_ts_);
  w->I64(max_ts_);
}

bool Aggregator::Load(ByteReader* r) {
  const uint64_t totals = r->U64();
  if (!r->ok() || totals > catalog_->key_count()) return false;
  totals_.assign(totals, Acc());
  for (Acc& a : totals_) {
    if (!a.Load(r)) return false;
  }
  const uint64_t hourly = r->U64();
  for (uint64_t i = 0; r->ok() && i < hourly; ++i) {
    const uint64_t slot = r->U64();
    if (!hourly_[slot].Load(r)) return false;
  }
  for (FlatMap<int64_t>* m : {&uniques_1h_, &uniques_24h_diff_}) {
    const uint64_t n = r->U64();
    for (uint64_t i = 0; r->ok() && i < n; ++i) {
      const uint64_t slot = r->U64();
      (*m)[slot] = r->I64();
    }
  }
  const uint64_t multi = r->U64();
  if (!r->ok() || multi > catalog_->experiment_count()) return false;
  multi_.assign(multi, 0);
  for (int64_t& m : multi_) m = r->I64();
  min_ts_ = r->I64();
  max_ts_ = r->I64();
  return r->ok();
}

Aggregator::Aggregator(const Catalog* catalog, int64_t session_gap_ms)
    : catalog_(catalog), gap_ms_(session_gap_ms) {}

Aggregator::Acc& Aggregator::Total(KeyId k) {
  if (k >= totals_.size()) totals_.resize(k + 1);
  return totals_[k];
}

Aggregator::VisitorCell& Aggregator::Cell(std::vector<VisitorCell>* cells, uint64_t slot) {
  // A visitor touches few keys and hours: a linear scan beats hashing here.
  for (VisitorCell& c : *cells) {
    if (c.slot == slot) return c;
  }
  cells->push_back(VisitorCell{slot, 0, 0, 0, 0.0, 0});
  return cells->back();
}

void Aggregator::AddValue(VisitorCell* c, double v) {
  if (c->nvalues == 0) {
    c->first_value = v;
  } else {
    if (c->nvalues == 1) {
      if (sums_used_ == sums_.size()) sums_.emplace_back();
      c->sum = sums_used_++;
      sums_[c->sum] = ExactSum();
      sums_[c->sum].Add(c->first_value);
    }
    sums_[c->sum].Add(v);
  }
  ++c->nvalues;
}

double Aggregator::CellRevenue(const VisitorCell& c) const {
  if (c.nvalues == 0) return 0.0;
  if (c.nvalues == 1) return c.first_value;
  return sums_[c.sum].Value();
}

void Aggregator::CloseCell(const VisitorCell& c, Acc* acc, int sign) const {
  acc->visitors += sign;
  acc->converted_visitors += sign * (c.conversions > 0 ? 1 : 0);
  acc->sessions_sq += sign * c.sessions * c.sessions;
  acc->conversions_sq += sign * c.conversions * c.conversions;
  acc->sessions_x_conversions += sign * c.sessions * c.conversions;
  const double r = CellRevenue(c);
  if (r != 0.0) acc->revenue_sq.Add(sign * (r * r));
}

void Aggregator::ClearPools() {
  session_data_.clear();
  keys_pool_.clear();
  values_pool_.clear();
  hours_pool_.clear();
}

void Aggregator::AddVisitor(std::span<const Event> events, int sign) {
  if (events.empty()) return;
  Sessionize(events, gap_ms_, &sessions_);
  ClearPools();
  for (const SessionBounds& b : sessions_) {
    SessionData d{};
    d.start_ts = events[b.begin].ts;
    d.end_ts = events[b.end - 1].ts;
    d.events = b.end - b.begin;
    d.keys_begin = static_cast<uint32_t>(keys_pool_.size());
    d.values_begin = static_cast<uint32_t>(values_pool_.size());
    d.hours_begin = static_cast<uint32_t>(hours_pool_.size());
    keys_pool_.push_back(KeyTag{Catalog::kNoExperiment, kSiteKey});
    ScanSession(events.subspan(b.begin, d.events), *catalog_, &keys_pool_, d.keys_begin,
                &values_pool_, &hours_pool_, &d.pageviews, &d.conversions);
    d.keys_count = static_cast<uint32_t>(keys_pool_.size()) - d.keys_begin;
    d.hours_count = static_cast<uint32_t>(hours_pool_.size()) - d.hours_begin;
    session_data_.push_back(d);
  }
  Contribute(sign);
}

void Aggregator::AddSessions(const SessionSpan& span, int sign, size_t settled) {
  if (span.sessions.empty()) return;
  ClearPools();
  size_t value = 0;
  size_t hour = 0;
  for (const Session& s : span.sessions) {
    SessionData d{};
    d.settled = session_data_.size() < settled;
    d.start_ts = s.start_ts;
    d.end_ts = s.end_ts;
    d.events = s.events;
    d.pageviews = s.pageviews;
    d.conversions = s.conversions;
    d.keys_begin = static_cast<uint32_t>(keys_pool_.size());
    keys_pool_.push_back(KeyTag{Catalog::kNoExperiment, kSiteKey});
    for (const KeyTag& t : catalog_->Tags(s.attribution)) keys_pool_.push_back(t);
    d.keys_count = static_cast<uint32_t>(keys_pool_.size()) - d.keys_begin;
    d.values_begin = static_cast<uint32_t>(values_pool_.size());
    values_pool_.insert(values_pool_.end(), span.values.begin() + value,
                        span.values.begin() + value + s.conversions);
    value += s.conversions;
    d.hours_begin = static_cast<uint32_t>(hours_pool_.size());
    if (s.hours == 0) {
      for (int64_t h = HourOfMs(s.start_ts); h <= HourOfMs(s.end_ts); ++h) hours_pool_.push_back(h);
    } else {
      hours_pool_.insert(hours_pool_.end(), span.hours.begin() + hour,
                         span.hours.begin() + hour + s.hours);
      hour += s.hours;
    }
    d.hours_count = static_cast<uint32_t>(hours_pool_.size()) - d.hours_begin;
    session_data_.push_back(d);
  }
  Contribute(sign);
}

void Aggregator::Contribute(int sign) {
  assert(sign == 1 || sign == -1);
  min_ts_ = std::min(min_ts_, session_data_.front().start_ts);
  max_ts_ = std::max(max_ts_, session_data_.back().end_ts);
  key_cells_.clear();
  hour_cells_.clear();
  active_.clear();
  sums_used_ = 0;

  for (const SessionData& d : session_data_) {
    const int64_t n = d.events;
    const int64_t pageviews = d.pageviews;
    const bool converted = d.conversions > 0;
    const int64_t hour = HourOfMs(d.start_ts);
    const int64_t duration = d.end_ts - d.start_ts;
    const std::span<const KeyTag> keys(keys_pool_.data() + d.keys_begin, d.keys_count);
    const std::span<const double> values(values_pool_.data() + d.values_begin, d.conversions);
    const std::span<const int64_t> hours(hours_pool_.data() + d.hours_begin, d.hours_count);
    for (const KeyTag& a : keys) {
      if (!d.settled) {
        for (Acc* acc : {&Total(a.key), &hourly_[Slot(a.key, hour)]}) {
          acc->sessions += sign;
          acc->events += sign * n;
          acc->pageviews += sign * pageviews;
          acc->conversions += sign * (converted ? 1 : 0);
          acc->bounces += sign * (n == 1 ? 1 : 0);
          acc->duration_ms += sign * duration;
        }
      }
      // The Total() reference may move when hourly_ grows, so look both up again for values.
      VisitorCell& kc = Cell(&key_cells_, a.key);
      kc.sessions += 1;
      kc.conversions += converted ? 1 : 0;
      VisitorCell& hc = Cell(&hour_cells_, Slot(a.key, hour));
      hc.sessions += 1;
      hc.conversions += converted ? 1 : 0;
      if (converted) {
        const size_t kci = &kc - key_cells_.data();
        const size_t hci = &hc - hour_cells_.data();
        if (!d.settled) {
          Acc& total = Total(a.key);
          Acc& hourly = hourly_[Slot(a.key, hour)];
          for (const double value : values) {
            total.revenue.Add(sign * value);
            hourly.revenue.Add(sign * value);
          }
        }
        for (const double value : values) {
          AddValue(&key_cells_[kci], value);
          AddValue(&hour_cells_[hci], value);
        }
      }
      for (const int64_t h : hours) active_.push_back(Slot(a.key, h));
    }
  }

  // Visitor-level figures.
  for (const VisitorCell& c : key_cells_) CloseCell(c, &Total(static_cast<KeyId>(c.slot)), sign);
  for (const VisitorCell& c : hour_cells_) CloseCell(c, &hourly_[c.slot], sign);

  // Contamination: key cells of one experiment with two or more variants.
  std::sort(key_cells_.begin(), key_cells_.end(),
            [this](const VisitorCell& a, const VisitorCell& b) {
              return catalog_->KeyExperiment(static_cast<KeyId>(a.slot)) <
                     catalog_->KeyExperiment(static_cast<KeyId>(b.slot));
            });
  for (size_t i = 0; i < key_cells_.size();) {
    const ExperimentId e = catalog_->KeyExperiment(static_cast<KeyId>(key_cells_[i].slot));
    size_t j = i;
    while (j < key_cells_.size() &&
           catalog_->KeyExperiment(static_cast<KeyId>(key_cells_[j].slot)) == e) {
      ++j;
    }
    if (j - i >= 2 && e != Catalog::kNoExperiment) {
      if (e >= multi_.size()) multi_.resize(e + 1);
      multi_[e] += sign;
      for (size_t k = i; k < j; ++k) Total(static_cast<KeyId>(key_cells_[k].slot)).multi += sign;
    }
    i = j;
  }

  // Rolling uniques: distinct (key, hour) of the visitor's beacons.
  std::sort(active_.begin(), active_.end());
  active_.erase(std::unique(active_.begin(), active_.end()), active_.end());
  for (const uint64_t slot : active_) uniques_1h_[slot] += sign;
  for (size_t i = 0; i < active_.size(); ++i) {
    // 24 h windows ending at hours [h, h + 23] contain hour h; merge overlapping ranges of one key.
    const KeyId k = SlotKey(active_[i]);
    const int64_t from = SlotHour(active_[i]);
    int64_t to = from + kWindow24h;  // exclusive
    while (i + 1 < active_.size() && SlotKey(active_[i + 1]) == k &&
           SlotHour(active_[i + 1]) <= to) {
      ++i;
      to = SlotHour(active_[i]) + kWindow24h;
    }
    uniques_24h_diff_[Slot(k, from)] += sign;
    uniques_24h_diff_[Slot(k, to)] -= sign;
  }
}

void Aggregator::Merge(const Aggregator& other) {
  for (KeyId k = 0; k < other.totals_.size(); ++k) Total(k).Merge(other.totals_[k]);
  for (const auto& [slot, acc] : other.hourly_.entries()) hourly_[slot].Merge(acc);
  for (const auto& [slot, n] : other.uniques_1h_.entries()) uniques_1h_[slot] += n;
  for (const auto& [slot, n] : other.uniques_24h_diff_.entries()) uniques_24h_diff_[slot] += n;
  if (other.multi_.size() > multi_.size()) multi_.resize(other.multi_.size());
  for (size_t e = 0; e < other.multi_.size(); ++e) multi_[e] += other.multi_[e];
  min_ts_ = std::min(min_ts_, other.min_ts_);
  max_ts_ = std::max(max_ts_, other.max_ts_);
}

void Aggregator::MergeFrom(const Aggregator& other, const Catalog& other_catalog,
                           Catalog* catalog) {
  assert(catalog == catalog_);
  std::vector<KeyId> keys(other_catalog.key_count());
  for (KeyId k = 0; k < keys.size(); ++k) {
    keys[k] = k == kSiteKey
                  ? kSiteKey
                  : catalog->InternKey(other_catalog.ExperimentName(other_catalog.KeyExperiment(k)),
                                       other_catalog.KeyVariant(k));
  }
  for (KeyId k = 0; k < other.totals_.size(); ++k) Total(keys[k]).Merge(other.totals_[k]);
  for (const auto& [slot, acc] : other.hourly_.entries()) {
    hourly_[Slot(keys[SlotKey(slot)], SlotHour(slot))].Merge(acc);
  }
  for (const auto& [slot, n] : other.uniques_1h_.entries()) {
    uniques_1h_[Slot(keys[SlotKey(slot)], SlotHour(slot))] += n;
  }
  for (const auto& [slot, n] : other.uniques_24h_diff_.entries()) {
    uniques_24h_diff_[Slot(keys[SlotKey(slot)], SlotHour(slot))] += n;
  }
  for (ExperimentId e = 0; e < other.multi_.size(); ++e) {
    const ExperimentId mine = catalog->InternExperiment(other_catalog.ExperimentName(e));
    if (mine >= multi_.size()) multi_.resize(mine + 1);
    multi_[mine] += other.multi_[e];
  }
  min_ts_ = std::min(min_ts_, other.min_ts_);
  max_ts_ = std::max(max_ts_, other.max_ts_);
}

Views Aggregator::Finalize() const {
  Views v;
  auto names = [this](KeyId k) -> std::pair<std::string, std::string> {
    if (k == kSiteKey) return {"", ""};
    return {catalog_->ExperimentName(catalog_->KeyExperiment(k)), catalog_->KeyVariant(k)};
  };
  for (KeyId k = 0; k < totals_.size(); ++k) {
    if (totals_[k].sessions == 0 && totals_[k].visitors == 0) continue;
    auto [e, var] = names(k);
    v.totals.push_back(FigureRow{std::move(e), std::move(var), 0, totals_[k].Values()});
  }
  for (const auto& [slot, acc] : hourly_.entries()) {
    if (acc.sessions == 0 && acc.visitors == 0) continue;
    auto [e, var] = names(SlotKey(slot));
    FigureValues fv = acc.Values();
    fv.visitors_in_multiple_variants = 0;
    v.hourly.push_back(FigureRow{std::move(e), std::move(var), SlotHour(slot), fv});
  }
  // 24 h uniques: prefix sums of the per-key changes.
  std::vector<std::pair<uint64_t, int64_t>> diffs(uniques_24h_diff_.entries().begin(),
                                                  uniques_24h_diff_.entries().end());
  std::sort(diffs.begin(), diffs.end());
  for (size_t i = 0; i < diffs.size();) {
    const KeyId k = SlotKey(diffs[i].first);
    auto [e, var] = names(k);
    int64_t running = 0;
    size_t j = i;
    while (j < diffs.size() && SlotKey(diffs[j].first) == k) {
      running += diffs[j].second;
      const int64_t h = SlotHour(diffs[j].first);
      const int64_t next = (j + 1 < diffs.size() && SlotKey(diffs[j + 1].first) == k)
                               ? SlotHour(diffs[j + 1].first)
                               : h;
      if (running > 0) {
        for (int64_t hh = h; hh < next; ++hh) {
          const int64_t* u1 = uniques_1h_.Find(Slot(k, hh));
          v.uniques.push_back(UniquesRow{e, var, hh, u1 != nullptr ? *u1 : 0, running});
        }
      }
      ++j;
    }
    i = j;
  }
  for (ExperimentId e = 0; e < multi_.size(); ++e) {
    if (multi_[e] != 0)
      v.experiments.push_back(ExperimentRow{catalog_->ExperimentName(e), multi_[e]});
  }
  // Experiments without contamination still get a row.
  for (const FigureRow& r : v.totals) {
    if (r.experiment.empty()) continue;
    const bool have =
        std::any_of(v.experiments.begin(), v.experiments.end(),
                    [&](const ExperimentRow& x) { return x.experiment == r.experiment; });
    if (!have) v.experiments.push_back(ExperimentRow{r.experiment, 0});
  }
  auto by_key = [](const FigureRow& a, const FigureRow& b) {
    return std::tie(a.experiment, a.variant, a.hour) < std::tie(b.experiment, b.variant, b.hour);
  };
  std::sort(v.totals.begin(), v.totals.end(), by_key);
  std::sort(v.hourly.begin(), v.hourly.end(), by_key);
  std::sort(v.uniques.begin(), v.uniques.end(), [](const UniquesRow& a, const UniquesRow& b) {
    return std::tie(a.experiment, a.variant, a.hour) < std::tie(b.experiment, b.variant, b.hour);
  });
  std::sort(
      v.experiments.begin(), v.experiments.end(),
      [](const ExperimentRow& a, const ExperimentRow& b) { return a.experiment < b.experiment; });
  if (min_ts_ <= max_ts_) {
    v.min_ts = min_ts_;
    v.max_ts = max_ts_;
  }
  return v;
}

}  // namespace duet::core
