#include "gen/render.h"

#include <cassert>
#include <charconv>
#include <cstring>
#include <string_view>

#include "gen/random.h"

namespace duet::gen::internal {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr int64_t kMaxTextBytes = 2048;   // longest valid page
constexpr int64_t kMaxLineBytes = 65536;  // longest valid line
constexpr size_t kTooManyExperiments = 33;

// Output goes straight into the caller's buffer, which Render's contract sizes for any line:
// no bounds checks or reallocation on the hot path.
inline char* Put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
inline char* Put(char* p, char c) {
  *p = c;
  return p + 1;
}
inline char* PutHex16(char* p, uint64_t v) {
  for (int i = 15; i >= 0; --i) {
    p[i] = kHex[v & 15];
    v >>= 4;
  }
  return p + 16;
}
inline char* PutInt(char* p, int64_t v) { return std::to_chars(p, p + 24, v).ptr; }
inline char* PutQuoted(char* p, std::string_view s) { return Put(Put(Put(p, '"'), s), '"'); }
// Money as a decimal with two fraction digits: exact text, no floating point formatting.
char* PutCents(char* p, uint64_t cents) {
  p = PutInt(p, static_cast<int64_t>(cents / 100));
  const uint64_t c = cents % 100;
  p[0] = '.';
  p[1] = static_cast<char>('0' + c / 10);
  p[2] = static_cast<char>('0' + c % 10);
  return p + 3;
}

char* PutPage(char* p, PageKind page, uint32_t arg) {
  switch (page) {
    case PageKind::kHome:
      return Put(p, "/");
    case PageKind::kCategory:
      return Put(Put(p, "/category/"), kCategories[arg % kCategories.size()]);
    case PageKind::kProduct:
      return PutInt(Put(p, "/product/"), arg % kProductCount);
    case PageKind::kSearch:
      return Put(Put(p, "/search?q="), kSearchQueries[arg % kSearchQueries.size()]);
    case PageKind::kCart:
      return Put(p, "/cart");
    case PageKind::kCheckout:
      return Put(p, "/checkout");
    case PageKind::kConfirmation:
      return Put(p, "/checkout/confirmation");
    case PageKind::kPricing:
      return Put(p, "/pricing");
    case PageKind::kAccount:
      return Put(p, "/account");
    case PageKind::kHelp:
      return Put(Put(p, "/help/"), kHelpTopics[arg % kHelpTopics.size()]);
  }
  return p;
}

// Field order of the two client SDKs: the web tag and the mobile app.
enum class Field : uint8_t {
  kId,
  kVisitor,
  kTs,
  kType,
  kPage,
  kDevice,
  kReferrer,
  kExperiments,
  kValue,
  kAppVersion
};
constexpr std::array<Field, 9> kWebOrder = {Field::kId,       Field::kVisitor,     Field::kTs,
                                            Field::kType,     Field::kPage,        Field::kDevice,
                                            Field::kReferrer, Field::kExperiments, Field::kValue};
constexpr std::array<Field, 9> kAppOrder = {
    Field::kType,  Field::kTs,   Field::kId,     Field::kVisitor,   Field::kExperiments,
    Field::kValue, Field::kPage, Field::kDevice, Field::kAppVersion};

}  // namespace

// What a bad kind changes in an otherwise valid beacon object.
struct Renderer::Mutation {
  bool omit_id = false, id_twice = false;
  bool omit_visitor = false, visitor_number = false;
  bool omit_ts = false, ts_string = false, ts_fraction = false, ts_seconds = false;
  bool omit_type = false, type_empty = false;
  bool page_too_long = false, page_invalid_utf8 = false, page_huge = false;
  bool exps_not_object = false, exps_too_many = false, exps_variant_number = false;
  bool value_negative = false, value_boolean = false;
};

Renderer::Renderer(uint64_t seed)
    : id_key_(Mix64(seed ^ 0x1d5a3c7e9b2f4a61ULL)),
      visitor_key_(Mix64(seed ^ 0x7c3e9a1b5d2f8e47ULL)),
      bad_key_(Mix64(seed ^ 0x4b8d2e6f1a3c5d79ULL)) {}

void Renderer::VisitorId(uint32_t visitor, char* buf) const {
  buf[0] = 'v';
  PutHex16(buf + 1, Mix64(visitor ^ visitor_key_));
}

size_t Renderer::Render(const Pending& e, char* buf) const {
  // The random choices of a bad row depend only on its event, so a re-send of it is identical.
  const uint64_t bad_bits = Mix64(e.id ^ bad_key_);
  Mutation m;
  char* p = buf;
  switch (e.bad_kind) {
    case BadKind::kCount:
      break;
    case BadKind::kNotJson:
      return RenderNotJson(e, bad_bits, buf) - buf;
    case BadKind::kEmptyLine: {
      constexpr std::array<std::string_view, 3> kBlank = {"", " ", "  \t"};
      return Put(buf, kBlank[bad_bits % kBlank.size()]) - buf;
    }
    case BadKind::kTruncatedJson: {
      const size_t size = RenderObject(e, m, bad_bits, buf) - buf;
      // Keep 1 .. size-2 bytes, never cutting a UTF-8 sequence (that would be utf8.invalid).
      size_t cut = 1 + (bad_bits >> 8) % (size - 2);
      while ((static_cast<unsigned char>(buf[cut]) & 0xc0) == 0x80) --cut;
      return cut;
    }
    case BadKind::kJsonArray:
      p = RenderObject(e, m, bad_bits, Put(p, '['));
      return Put(p, ']') - buf;
    case BadKind::kMissingId:
      m.omit_id = true;
      break;
    case BadKind::kIdDuplicateKey:
      m.id_twice = true;
      break;
    case BadKind::kMissingVisitor:
      m.omit_visitor = true;
      break;
    case BadKind::kVisitorNotString:
      m.visitor_number = true;
      break;
    case BadKind::kMissingTs:
      m.omit_ts = true;
      break;
    case BadKind::kTsString:
      m.ts_string = true;
      break;
    case BadKind::kTsFraction:
      m.ts_fraction = true;
      break;
    case BadKind::kTsSeconds:
      m.ts_seconds = true;
      break;
    case BadKind::kMissingType:
      m.omit_type = true;
      break;
    case BadKind::kTypeEmpty:
      m.type_empty = true;
      break;
    case BadKind::kInvalidUtf8:
      m.page_invalid_utf8 = true;
      break;
    case BadKind::kPageTooLong:
      m.page_too_long = true;
      break;
    case BadKind::kExperimentsNotObject:
      m.exps_not_object = true;
      break;
    case BadKind::kTooManyExperiments:
      m.exps_too_many = true;
      break;
    case BadKind::kVariantNotString:
      m.exps_variant_number = true;
      break;
    case BadKind::kValueNegative:
      m.value_negative = true;
      break;
    case BadKind::kValueBoolean:
      m.value_boolean = true;
      break;
    case BadKind::kHugeLine:
      m.page_huge = true;
      break;
  }
  p = RenderObject(e, m, bad_bits, p);
  if (e.bad_kind == BadKind::kCount && (e.flags & kFlagCrlf) != 0) p = Put(p, '\r');
  assert(static_cast<size_t>(p - buf) < kRenderBufferBytes);
  return p - buf;
}

char* Renderer::RenderNotJson(const Pending& e, uint64_t bad_bits, char* p) const {
  const std::string_view type = kEventTypeNames[static_cast<size_t>(e.type)];
  switch (bad_bits % 4) {
    case 0:  // a client that sent the query string instead of the body
      p = PutHex16(Put(p, "id="), Mix64(e.id + id_key_));
      p = Put(p, "&visitor=");
      VisitorId(e.visitor, p);
      p += kVisitorIdLength;
      p = PutInt(Put(p, "&ts="), e.ts);
      return Put(Put(p, "&type="), type);
    case 1:  // a proxy error page logged as a beacon
      return Put(p, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>");
    case 2:  // a JavaScript object literal, not JSON
      p = PutHex16(Put(p, "{id:'"), Mix64(e.id + id_key_));
      p = PutInt(Put(p, "',ts:"), e.ts);
      return Put(Put(Put(p, ",type:'"), type), "'}");
    default:
      return Put(p, "undefined");
  }
}

char* Renderer::RenderObject(const Pending& e, const Mutation& m, uint64_t bad_bits,
                             char* p) const {
  const bool app = (e.flags & kFlagApp) != 0;
  char sep = '{';
  // Opens the next member: `{"name":` for the first, `,"name":` after.
  auto key = [&](std::string_view name) {
    p[0] = sep;
    p[1] = '"';
    p = Put(p + 2, name);
    p[0] = '"';
    p[1] = ':';
    p += 2;
    sep = ',';
  };
  for (const Field f : app ? kAppOrder : kWebOrder) {
    switch (f) {
      case Field::kId:
        if (m.omit_id) break;
        for (int i = 0; i < (m.id_twice ? 2 : 1); ++i) {
          key("id");
          p = Put(PutHex16(Put(p, '"'), Mix64(e.id + id_key_)), '"');
        }
        break;
      case Field::kVisitor:
        if (m.omit_visitor) break;
        key("visitor");
        if (m.visitor_number) {
          p = PutInt(p, e.visitor);
          break;
        }
        *p++ = '"';
        VisitorId(e.visitor, p);
        p += kVisitorIdLength;
        *p++ = '"';
        break;
      case Field::kTs:
        if (m.omit_ts) break;
        key("ts");
        if (m.ts_string) {
          p = Put(PutInt(Put(p, '"'), e.ts), '"');
        } else if (m.ts_seconds) {
          p = PutInt(p, e.ts / 1000);
        } else if (m.ts_fraction && (bad_bits & 1) != 0) {
          p = Put(PutInt(p, e.ts), ".5");
        } else if (m.ts_fraction) {  // 1.793491200123e12: whole, but written with an exponent
          char digits[24];
          const size_t n = std::to_chars(digits, digits + sizeof(digits), e.ts).ptr - digits;
          p = Put(Put(p, digits[0]), '.');
          p = Put(p, std::string_view(digits + 1, n - 1));
          p = PutInt(Put(p, 'e'), static_cast<int64_t>(n - 1));
        } else {
          p = PutInt(p, e.ts);
        }
        break;
      case Field::kType:
        if (m.omit_type) break;
        key("type");
        if (m.type_empty) {
          p = Put(p, "\"\"");
        } else if (m.value_negative) {
          p = Put(p, "\"refund\"");
        } else {
          p = PutQuoted(p, kEventTypeNames[static_cast<size_t>(e.type)]);
        }
        break;
      case Field::kPage: {
        key("page");
        *p++ = '"';
        char* const page_start = p;
        p = PutPage(p, e.page, e.page_arg);
        if (m.page_invalid_utf8) {
          p = Put(p, "&ref=caf\xe9");  // Latin-1, not UTF-8
        } else if (m.page_too_long || m.page_huge) {
          // A tracking parameter gone wrong.
          const int64_t target = m.page_huge
                                     ? kMaxLineBytes + 1 + static_cast<int64_t>(bad_bits % 20000)
                                     : kMaxTextBytes + 1 + static_cast<int64_t>(bad_bits % 4000);
          p = Put(p, "?utm_content=");
          for (int64_t i = p - page_start; i < target; ++i) {
            *p++ = static_cast<char>('a' + (i * 7 + static_cast<int64_t>(bad_bits % 26)) % 26);
          }
        }
        *p++ = '"';
        break;
      }
      case Field::kDevice:
        key("device");
        p = PutQuoted(p, kDeviceNames[static_cast<size_t>(e.device)]);
        break;
      case Field::kReferrer:
        if (e.referrer == kReferrerAbsent) break;
        key("referrer");
        p = PutQuoted(p, kReferrers[e.referrer]);
        break;
      case Field::kExperiments: {
        const bool mutated = m.exps_not_object || m.exps_too_many || m.exps_variant_number;
        if (!mutated && (e.flags & kFlagNoExperiments) != 0) break;
        if (m.exps_not_object) {
          key("experiments");
          constexpr std::array<std::string_view, 3> kNotObject = {
              "\"checkout_button:treatment\"", "[\"checkout_button\",\"control\"]", "null"};
          p = Put(p, kNotObject[(bad_bits >> 4) % kNotObject.size()]);
          break;
        }
        size_t entries = 0;
        for (size_t x = 0; x < kExperimentCount; ++x) {
          const uint8_t v = e.variants[x];
          if (v == kNotInExperiment) continue;
          if (entries == 0) key("experiments");
          p = Put(p, entries == 0 ? "{\"" : ",\"");
          p = Put(Put(p, kExperiments[x].name), "\":");
          if (m.exps_variant_number && entries == 0) {
            p = PutInt(p, v);
          } else {
            p = PutQuoted(p, kExperiments[x].variants[v]);
          }
          ++entries;
        }
        if (entries == 0 && !mutated) break;
        if (entries == 0) {
          key("experiments");
          p = Put(p, m.exps_variant_number ? "{\"checkout_button\":1" : "{\"flag_0\":\"on\"");
          entries = 1;
        }
        for (; m.exps_too_many && entries < kTooManyExperiments; ++entries) {
          p = Put(PutInt(Put(p, ",\"flag_"), static_cast<int64_t>(entries)), "\":\"on\"");
        }
        *p++ = '}';
        break;
      }
      case Field::kValue:
        if (m.value_boolean) {
          key("value");
          p = Put(p, "true");
        } else if (m.value_negative) {
          key("value");
          p = PutCents(Put(p, '-'), e.value_cents == 0 ? 1999 : e.value_cents);
        } else if (e.type == EventType::kConversion && (e.flags & kFlagValueMissing) == 0) {
          key("value");
          p = PutCents(p, e.value_cents);
        }
        break;
      case Field::kAppVersion:
        key("app_version");
        p = Put(p, "\"5.12.0\"");
        break;
    }
  }
  if (sep == '{') *p++ = '{';
  *p++ = '}';
  return p;
}

}  // namespace duet::gen::internal
