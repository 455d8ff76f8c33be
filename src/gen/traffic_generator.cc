// The traffic simulation. Hours are planned one at a time: each hour gets an exact line budget
// (daytime-weighted), spent on visits whose start times are drawn uniformly in the hour and then
// sorted. Visits are started in time order; a visit renders nothing yet but pushes one compact
// record per line (its beacons and their re-sends) into a min-heap keyed by arrival time. Every
// record not yet created belongs to a visit starting at or after the next visit's start, and
// arrives no earlier than that, so records up to that time can be emitted: output is in arrival
// order while memory holds only the visits in flight and the arrival window.
#include <algorithm>
#include <cassert>
#include <string>
#include <vector>

#include "gen/generator.h"
#include "gen/model.h"
#include "gen/random.h"
#include "gen/render.h"
#include "util/hash.h"

namespace duet::gen {

using internal::Device;
using internal::EventType;
using internal::kExperimentCount;
using internal::kExperiments;
using internal::kMsPerHour;
using internal::kMsPerMinute;
using internal::kMsPerSecond;
using internal::kNotInExperiment;
using internal::PageKind;
using internal::Pending;
using internal::Rng;

namespace {

constexpr int64_t kLateMinMs = 15 * kMsPerMinute;
constexpr int64_t kLateMaxMs = 3 * kMsPerHour;
constexpr int64_t kResendMinMs = 1 * kMsPerSecond;
constexpr int64_t kResendMaxMs = 60 * kMsPerSecond;
constexpr int64_t kMaxDelayLimitMs = kMsPerHour;
constexpr uint64_t kBeaconsPerDefaultHour = 20000;
constexpr int kMinDefaultHours = 2;
constexpr int kMaxDefaultHours = 72;
constexpr uint64_t kBeaconsPerDefaultVisitor = 25;
constexpr uint64_t kMinDefaultVisitors = 10;
constexpr uint64_t kMaxVisitors = 0xffffffffULL;
constexpr uint64_t kMaxBeacons = uint64_t{1} << 40;
constexpr int64_t kContractMinTsMs = 946684800000;   // 2000-01-01
constexpr int64_t kContractMaxTsMs = 4102444800000;  // 2100-01-01

// Traffic by UTC hour of day (a European and American audience), relative.
constexpr std::array<uint32_t, 24> kHourOfDayWeight = {50,  40,  32,  26,  24,  28,  40,  58,
                                                       74,  84,  90,  94,  98,  100, 102, 104,
                                                       106, 108, 110, 108, 100, 88,  74,  60};
constexpr uint32_t kWeekdayWeight = 100;
constexpr uint32_t kWeekendWeight = 88;

// Visit shape.
constexpr double kBounceProbability = 0.35;
constexpr double kExtraEventsMean = 7.0;
constexpr uint64_t kMaxEventsPerVisit = 200;
constexpr double kLongBreakProbability = 0.012;  // a gap > 30 min inside a visit
constexpr double kLoyalShare = 0.2;              // of visitors, who make half of all visits
constexpr double kConversionBase = 0.06;         // per visit of >= 3 events, before factors
constexpr double kValueMissingProbability = 0.03;
constexpr double kNoExperimentsProbability = 0.005;
constexpr double kCrlfProbability = 0.002;
constexpr double kAlteredResendProbability = 0.1;
constexpr double kMedianOrderCents = 4500;
constexpr double kOrderSigma = 0.75;

struct PlannedVisit {
  uint32_t events;
  uint32_t resends;
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

GenerateOptions ResolveOptions(const GenerateOptions& options) {
  GenerateOptions o = options;
  if (o.hours == 0) {
    const uint64_t h = (o.beacons + kBeaconsPerDefaultHour / 2) / kBeaconsPerDefaultHour;
    o.hours = static_cast<int>(std::clamp<uint64_t>(h, kMinDefaultHours, kMaxDefaultHours));
  }
  if (o.visitors == 0) {
    o.visitors = std::max(kMinDefaultVisitors, o.beacons / kBeaconsPerDefaultVisitor);
  }
  return o;
}

Status ValidateOptions(const GenerateOptions& options) {
  const GenerateOptions o = ResolveOptions(options);
  auto fraction_ok = [](double f, double max) { return f >= 0.0 && f <= max; };
  if (o.beacons > kMaxBeacons) return Status::InvalidArgument("beacons must be at most 2^40");
  if (o.hours < 1 || o.hours > internal::kMaxHours) {
    return Status::InvalidArgument("hours must be in [1, " + std::to_string(internal::kMaxHours) +
                                   "] (or 0 to choose)");
  }
  if (o.visitors > kMaxVisitors) return Status::InvalidArgument("visitors must be below 2^32");
  if (!fraction_ok(o.bad_fraction, 1.0)) {
    return Status::InvalidArgument("bad_fraction must be in [0, 1]");
  }
  if (!fraction_ok(o.duplicate_fraction, 0.5)) {
    return Status::InvalidArgument("duplicate_fraction must be in [0, 0.5]");
  }
  if (!fraction_ok(o.late_fraction, 1.0)) {
    return Status::InvalidArgument("late_fraction must be in [0, 1]");
  }
  if (o.max_delay_ms < 0 || o.max_delay_ms > kMaxDelayLimitMs) {
    return Status::InvalidArgument("max_delay_ms must be in [0, 3600000]");
  }
  if (o.lines_per_file < 1) return Status::InvalidArgument("lines_per_file must be at least 1");
  // Visits may run a few hours past the period and arrivals 3 h more; keep all ts in contract.
  const int64_t margin = 24 * kMsPerHour;
  if (o.start_ms < kContractMinTsMs ||
      o.start_ms + o.hours * kMsPerHour + margin > kContractMaxTsMs) {
    return Status::InvalidArgument(
        "start_ms must be at or after 2000-01-01 and the period must end a day before 2100-01-01");
  }
  return Status::Ok();
}

class TrafficGenerator::Impl {
 public:
  explicit Impl(const GenerateOptions& options)
      : options_(ResolveOptions(options)),
        renderer_(options_.seed),
        plan_rng_(options_.seed ^ 0x2545f4914f6cdd1dULL),
        sim_rng_(options_.seed),
        traits_key_(internal::Mix64(options_.seed ^ 0x6a09e667f3bcc909ULL)),
        resend_probability_(options_.duplicate_fraction / (1.0 - options_.duplicate_fraction)),
        loyal_visitors_(std::max<uint64_t>(
            1, static_cast<uint64_t>(static_cast<double>(options_.visitors) * kLoyalShare))) {
    assert(ValidateOptions(options).ok());
    hour_weights_.reserve(options_.hours);
    for (int h = 0; h < options_.hours; ++h) {
      const int64_t t = options_.start_ms + h * kMsPerHour;
      const int64_t day = FloorDiv(t, 24 * kMsPerHour);
      const int hour_of_day = static_cast<int>((t - day * 24 * kMsPerHour) / kMsPerHour);
      const int weekday = static_cast<int>((day + 4) % 7);  // 1970-01-01 was a Thursday; 0 = Sun
      const bool weekend = weekday == 0 || weekday == 6;
      hour_weights_.push_back(kHourOfDayWeight[hour_of_day] *
                              (weekend ? kWeekendWeight : kWeekdayWeight));
      total_weight_ += hour_weights_.back();
    }
    for (size_t x = 0; x < kExperimentCount; ++x) {
      const int64_t hours_in =
          static_cast<int64_t>(options_.hours * kExperiments[x].start_fraction + 0.5);
      experiment_start_ms_[x] = options_.start_ms + hours_in * kMsPerHour;
    }
  }

  const GenerateOptions& options() const { return options_; }

  bool Next(GeneratedLine* out) {
    while (true) {
      const bool more_visits = HasNextVisit();
      if (!heap_.empty() && (!more_visits || heap_.front().arrival_ms <= NextVisitStart())) {
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        const uint32_t slot = heap_.back().slot;
        heap_.pop_back();
        Emit(slab_[slot], out);
        free_slots_.push_back(slot);
        return true;
      }
      if (!more_visits) return false;
      StartVisit();
    }
  }

 private:
  // The heap holds small keys; records stay put in a slab. Slots are reused in a deterministic
  // order, so ordering equal arrivals by slot keeps the output reproducible.
  struct HeapKey {
    int64_t arrival_ms;
    uint32_t slot;
  };
  struct Later {
    bool operator()(const HeapKey& a, const HeapKey& b) const {
      return a.arrival_ms != b.arrival_ms ? a.arrival_ms > b.arrival_ms : a.slot > b.slot;
    }
  };

  void Push(const Pending& p) {
    uint32_t slot;
    if (free_slots_.empty()) {
      slot = static_cast<uint32_t>(slab_.size());
      slab_.push_back(p);
    } else {
      slot = free_slots_.back();
      free_slots_.pop_back();
      slab_[slot] = p;
    }
    heap_.push_back({p.arrival_ms, slot});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
  }

  void Emit(const Pending& e, GeneratedLine* out) {
    const size_t n = renderer_.Render(e, text_.get());
    out->arrival_ms = e.arrival_ms;
    out->event_ms = e.ts;
    out->text = std::string_view(text_.get(), n);
    out->late = (e.flags & internal::kFlagLate) != 0;
    out->altered = (e.flags & internal::kFlagAltered) != 0;
    out->bad_kind = e.bad_kind;
    if (e.bad_kind != BadKind::kCount) {
      out->kind = LineKind::kBad;
    } else if ((e.flags & internal::kFlagResend) != 0) {
      out->kind = LineKind::kDuplicateResend;
    } else {
      out->kind = LineKind::kValid;
    }
  }

  // Loads the plans of the next hours until one has a visit; false when all are spent.
  bool HasNextVisit() {
    while (cursor_ == visits_.size()) {
      if (next_hour_ == options_.hours) return false;
      PlanHour(next_hour_++);
    }
    return true;
  }
  int64_t NextVisitStart() const { return hour_start_ms_ + offsets_[cursor_]; }

  void PlanHour(int hour) {
    // Exact integer split of the line budget: sum over hours is options_.beacons.
    const auto share = [&](unsigned __int128 w) {
      return static_cast<uint64_t>(w * options_.beacons / total_weight_);
    };
    cum_weight_ += hour_weights_[hour];
    const uint64_t budget = share(cum_weight_) - share(cum_weight_ - hour_weights_[hour]);
    visits_.clear();
    offsets_.clear();
    cursor_ = 0;
    hour_start_ms_ = options_.start_ms + hour * kMsPerHour;
    uint64_t used = 0;
    while (used < budget) {
      uint64_t events = 1;
      if (!plan_rng_.Chance(kBounceProbability)) {
        events = std::min(kMaxEventsPerVisit, 2 + plan_rng_.Geometric(kExtraEventsMean));
      }
      uint64_t resends = 0;
      for (uint64_t i = 0; i < events; ++i) resends += plan_rng_.Chance(resend_probability_);
      const uint64_t left = budget - used;
      events = std::min(events, left);
      resends = std::min(resends, left - events);
      used += events + resends;
      visits_.push_back({static_cast<uint32_t>(events), static_cast<uint32_t>(resends)});
    }
    for (size_t i = 0; i < visits_.size(); ++i) {
      offsets_.push_back(static_cast<uint32_t>(plan_rng_.Below(kMsPerHour)));
    }
    std::sort(offsets_.begin(), offsets_.end());
  }

  // Variant of `visitor` in experiment x, or kNotInExperiment: sticky, a hash of the public
  // visitor id, so anyone can recompute it.
  uint8_t Assign(size_t x, std::string_view vid) const {
    const internal::ExperimentDesign& d = kExperiments[x];
    char buf[96];
    const size_t n = d.name.size();
    std::copy(d.name.begin(), d.name.end(), buf);
    buf[n] = ':';
    std::copy(vid.begin(), vid.end(), buf + n + 1);
    const uint64_t h = Hash64(std::string_view(buf, n + 1 + vid.size()));
    if ((h >> 32) % internal::kBasisPoints >= d.coverage_bp) return kNotInExperiment;
    uint64_t bucket = h % internal::kBasisPoints;
    for (size_t v = 0; v < d.variant_count; ++v) {
      if (bucket < d.weights_bp[v]) return static_cast<uint8_t>(v);
      bucket -= d.weights_bp[v];
    }
    return static_cast<uint8_t>(d.variant_count - 1);
  }

  PageKind RandomPage(uint32_t* arg) {
    constexpr std::array<uint32_t, 7> kWeights = {10, 20, 42, 8, 8, 5, 7};
    constexpr std::array<PageKind, 7> kPages = {
        PageKind::kHome,    PageKind::kCategory, PageKind::kProduct, PageKind::kCart,
        PageKind::kPricing, PageKind::kAccount,  PageKind::kHelp};
    *arg = static_cast<uint32_t>(sim_rng_.Next() >> 32);
    return kPages[internal::PickWeighted(&sim_rng_, kWeights)];
  }

  int64_t Delay(Device device) {
    const int64_t max_delay = options_.max_delay_ms;
    if (max_delay == 0) return 0;
    // Phones batch beacons while offline.
    if (device == Device::kMobile && sim_rng_.Chance(0.04)) {
      return sim_rng_.Range(std::min<int64_t>(5 * kMsPerSecond, max_delay), max_delay);
    }
    const double d = sim_rng_.LogNormal(300.0, 1.0);
    return std::min(max_delay, static_cast<int64_t>(d));
  }

  void StartVisit() {
    const PlannedVisit plan = visits_[cursor_];
    const int64_t start = NextVisitStart();
    ++cursor_;
    Rng& r = sim_rng_;

    const uint32_t visitor = static_cast<uint32_t>(r.Chance(0.5) ? r.Below(loyal_visitors_)
                                                                 : r.Below(options_.visitors));
    char vid_buf[internal::kVisitorIdLength];
    renderer_.VisitorId(visitor, vid_buf);
    const std::string_view vid(vid_buf, internal::kVisitorIdLength);
    const uint64_t traits = internal::Mix64(visitor ^ traits_key_);

    // Device: most visits from the visitor's usual one.
    const uint64_t usual = traits % 100;
    Device device = usual < 48 ? Device::kDesktop : usual < 90 ? Device::kMobile : Device::kTablet;
    if (r.Chance(0.15)) device = static_cast<Device>(r.Below(3));
    const bool app = device == Device::kMobile && (traits >> 16) % 100 < 60;
    const uint8_t referrer =
        app ? static_cast<uint8_t>(internal::kReferrerAbsent)
            : static_cast<uint8_t>(internal::PickWeighted(&r, internal::kReferrerWeights));

    std::array<uint8_t, kExperimentCount> variants;
    for (size_t x = 0; x < kExperimentCount; ++x) {
      variants[x] = start >= experiment_start_ms_[x] ? Assign(x, vid) : kNotInExperiment;
    }
    // Contamination: from a visitor-specific moment on, one experiment shows another variant.
    if ((traits >> 32) % internal::kBasisPoints < internal::kContaminatedVisitorsBp) {
      const double at = 0.2 + 0.6 * static_cast<double>((traits >> 48) % 1000) / 1000.0;
      const int64_t switch_ms =
          options_.start_ms + static_cast<int64_t>(at * options_.hours * kMsPerHour);
      if (start >= switch_ms) {
        for (size_t i = 0; i < kExperimentCount; ++i) {
          const size_t x = (i + (traits >> 40)) % kExperimentCount;
          if (variants[x] == kNotInExperiment) continue;
          variants[x] = static_cast<uint8_t>((variants[x] + 1) % kExperiments[x].variant_count);
          break;
        }
      }
    }

    double p_convert = kConversionBase *
                       internal::kDeviceConversionFactor[static_cast<int>(device)] *
                       internal::kReferrerConversionFactor[referrer];
    if (variants[internal::kCheckoutButton] == 1) {
      p_convert *= internal::kCheckoutTreatmentConversionLift;
    }
    const bool converts = plan.events >= 3 && r.Chance(p_convert);

    Pending e{};
    e.visitor = visitor;
    e.device = device;
    e.referrer = referrer;
    e.variants = variants;
    uint32_t page_arg = 0;
    PageKind page = RandomPage(&page_arg);
    if (r.Chance(0.3)) page = PageKind::kHome;
    int64_t ts = start;
    scratch_.clear();
    for (uint32_t i = 0; i < plan.events; ++i) {
      EventType type = EventType::kPageview;
      if (converts && i + 3 >= plan.events) {
        // The checkout funnel ends the visit: add to cart, checkout page, conversion.
        const uint32_t step = i + 3 - plan.events;
        if (step == 0) {
          type = EventType::kAddToCart;
          page = PageKind::kProduct;
        } else if (step == 1) {
          page = PageKind::kCheckout;
        } else {
          type = EventType::kConversion;
          page = PageKind::kConfirmation;
        }
      } else if (i > 0) {
        const uint64_t roll = r.Below(100);
        if (roll < 45) {
          page = RandomPage(&page_arg);
        } else if (roll < 67) {
          type = EventType::kClick;
        } else if (roll < 82) {
          type = EventType::kScroll;
        } else if (roll < 88) {
          type = EventType::kSearch;
          page = PageKind::kSearch;
          page_arg = static_cast<uint32_t>(r.Next() >> 32);
        } else if (roll < 94) {
          type = page == PageKind::kProduct ? EventType::kAddToCart : EventType::kClick;
        } else if (roll < 97) {
          type = EventType::kVideoPlay;
        } else {
          type = EventType::kFormSubmit;
        }
      }
      if (i > 0) {
        int64_t gap;
        if (r.Chance(kLongBreakProbability)) {
          gap = r.Range(31 * kMsPerMinute, 150 * kMsPerMinute);
        } else {
          const double median = type == EventType::kPageview ? 15000.0 : 8000.0;
          gap = std::clamp<int64_t>(static_cast<int64_t>(r.LogNormal(median, 1.1)), 300,
                                    20 * kMsPerMinute);
        }
        ts += gap;
      }
      e.ts = ts;
      e.type = type;
      e.page = page;
      e.page_arg = page_arg;
      e.id = next_id_++;
      e.flags = app ? internal::kFlagApp : 0;
      e.value_cents = 0;
      if (type == EventType::kConversion) {
        double cents = r.LogNormal(kMedianOrderCents, kOrderSigma);
        if (variants[internal::kPricingPage] == 2) cents *= internal::kPricingV2RevenueFactor;
        e.value_cents = static_cast<uint32_t>(std::clamp(cents + 0.5, 99.0, 2000000.0));
        if (r.Chance(kValueMissingProbability)) e.flags |= internal::kFlagValueMissing;
      }
      if (r.Chance(kNoExperimentsProbability)) e.flags |= internal::kFlagNoExperiments;
      e.bad_kind = BadKind::kCount;
      if (r.Chance(options_.bad_fraction)) {
        e.bad_kind = static_cast<BadKind>(internal::PickWeighted(&r, internal::kBadKindWeights));
      } else if (r.Chance(kCrlfProbability)) {
        e.flags |= internal::kFlagCrlf;
      }
      if (r.Chance(options_.late_fraction)) {
        e.flags |= internal::kFlagLate;
        e.arrival_ms = ts + r.Range(kLateMinMs, kLateMaxMs);
      } else {
        e.arrival_ms = ts + Delay(device);
      }
      scratch_.push_back(e);
    }
    // Re-sends of `plan.resends` distinct beacons (selection sampling).
    uint32_t need = plan.resends;
    const size_t originals = scratch_.size();
    for (size_t i = 0; i < originals && need > 0; ++i) {
      if (r.Below(originals - i) >= need) continue;
      --need;
      Pending d = scratch_[i];
      d.flags |= internal::kFlagResend;
      d.arrival_ms += r.Range(kResendMinMs, kResendMaxMs);
      if (d.bad_kind == BadKind::kCount && r.Chance(kAlteredResendProbability)) {
        // Same id, different content: the client re-stamped the event.
        d.flags |= internal::kFlagAltered;
        d.ts += r.Range(1, 2000);
      }
      scratch_.push_back(d);
    }
    for (const Pending& p : scratch_) Push(p);
  }

  const GenerateOptions options_;
  const internal::Renderer renderer_;
  Rng plan_rng_;
  Rng sim_rng_;
  const uint64_t traits_key_;
  const double resend_probability_;
  const uint64_t loyal_visitors_;
  std::vector<uint64_t> hour_weights_;
  unsigned __int128 total_weight_ = 0;
  unsigned __int128 cum_weight_ = 0;
  std::array<int64_t, kExperimentCount> experiment_start_ms_{};

  // The current hour's plan: visits and their sorted start offsets.
  int next_hour_ = 0;
  int64_t hour_start_ms_ = 0;
  std::vector<PlannedVisit> visits_;
  std::vector<uint32_t> offsets_;
  size_t cursor_ = 0;

  std::vector<HeapKey> heap_;  // min-heap by (arrival, slot)
  std::vector<Pending> slab_;
  std::vector<uint32_t> free_slots_;
  std::vector<Pending> scratch_;  // the lines of the visit being started
  uint64_t next_id_ = 0;
  const std::unique_ptr<char[]> text_{new char[internal::kRenderBufferBytes]};
};

TrafficGenerator::TrafficGenerator(const GenerateOptions& options)
    : impl_(std::make_unique<Impl>(options)) {}
TrafficGenerator::~TrafficGenerator() = default;
bool TrafficGenerator::Next(GeneratedLine* out) { return impl_->Next(out); }
const GenerateOptions& TrafficGenerator::options() const { return impl_->options(); }

std::string_view BadKindName(BadKind kind) {
  switch (kind) {
    case BadKind::kNotJson:
      return "not_json";
    case BadKind::kTruncatedJson:
      return "truncated_json";
    case BadKind::kEmptyLine:
      return "empty_line";
    case BadKind::kJsonArray:
      return "json_array";
    case BadKind::kMissingId:
      return "missing_id";
    case BadKind::kIdDuplicateKey:
      return "id_duplicate_key";
    case BadKind::kMissingVisitor:
      return "missing_visitor";
    case BadKind::kVisitorNotString:
      return "visitor_not_string";
    case BadKind::kMissingTs:
      return "missing_ts";
    case BadKind::kTsString:
      return "ts_string";
    case BadKind::kTsFraction:
      return "ts_fraction";
    case BadKind::kTsSeconds:
      return "ts_seconds";
    case BadKind::kMissingType:
      return "missing_type";
    case BadKind::kTypeEmpty:
      return "type_empty";
    case BadKind::kInvalidUtf8:
      return "invalid_utf8";
    case BadKind::kPageTooLong:
      return "page_too_long";
    case BadKind::kExperimentsNotObject:
      return "experiments_not_object";
    case BadKind::kTooManyExperiments:
      return "too_many_experiments";
    case BadKind::kVariantNotString:
      return "variant_not_string";
    case BadKind::kValueNegative:
      return "value_negative";
    case BadKind::kValueBoolean:
      return "value_boolean";
    case BadKind::kHugeLine:
      return "huge_line";
    case BadKind::kCount:
      break;
  }
  return "none";
}

std::string_view BadKindReason(BadKind kind) {
  switch (kind) {
    case BadKind::kNotJson:
      return "json.syntax";
    case BadKind::kTruncatedJson:
      return "json.syntax";
    case BadKind::kEmptyLine:
      return "line.empty";
    case BadKind::kJsonArray:
      return "json.not_object";
    case BadKind::kMissingId:
      return "id.missing";
    case BadKind::kIdDuplicateKey:
      return "id.duplicate_key";
    case BadKind::kMissingVisitor:
      return "visitor.missing";
    case BadKind::kVisitorNotString:
      return "visitor.not_string";
    case BadKind::kMissingTs:
      return "ts.missing";
    case BadKind::kTsString:
      return "ts.not_integer";
    case BadKind::kTsFraction:
      return "ts.not_integer";
    case BadKind::kTsSeconds:
      return "ts.out_of_range";
    case BadKind::kMissingType:
      return "type.missing";
    case BadKind::kTypeEmpty:
      return "type.empty";
    case BadKind::kInvalidUtf8:
      return "utf8.invalid";
    case BadKind::kPageTooLong:
      return "page.too_long";
    case BadKind::kExperimentsNotObject:
      return "experiments.not_object";
    case BadKind::kTooManyExperiments:
      return "experiments.too_many";
    case BadKind::kVariantNotString:
      return "experiments.variant_not_string";
    case BadKind::kValueNegative:
      return "value.negative";
    case BadKind::kValueBoolean:
      return "value.not_number";
    case BadKind::kHugeLine:
      return "line.too_long";
    case BadKind::kCount:
      break;
  }
  return "none";
}

}  // namespace duet::gen
