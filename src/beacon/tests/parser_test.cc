// Unit tests of beacon::Parser against docs/beacon-contract.md: every row of the field table,
// both sides of every bound, every reason name, the check order and the json.syntax edges.
// Every line is parsed twice (padded=true with the next line's bytes behind it, and padded=false)
// and both paths must agree.
#include "beacon/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace duet::beacon {
namespace {

constexpr int64_t kTs = 1700000000000;  // 2023-11-14T22:13:20Z, well inside the valid range
constexpr std::string_view kOmit = "\x01omit";

using Kv = std::pair<std::string, std::string>;  // key as written between quotes, raw JSON value

// A JSON string literal; `s` is inserted as written, so it may carry JSON escapes.
std::string Str(std::string_view s) { return "\"" + std::string(s) + "\""; }
std::string Rep(std::string_view unit, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += unit;
  return s;
}

// An object from key/value pairs in the order given (duplicates kept).
std::string Obj(const std::vector<Kv>& kvs) {
  std::string o = "{";
  for (const auto& [k, v] : kvs) {
    if (o.size() > 1) o += ',';
    o += Str(k) + ":" + v;
  }
  return o + "}";
}

// A valid beacon {id, visitor, ts, type} where `changes` replace a base field's raw value (or
// drop it, with kOmit); keys not in the base are appended in the order given.
std::string Line(const std::vector<Kv>& changes = {}) {
  std::vector<Kv> kvs = {{"id", Str("b1")},
                         {"visitor", Str("v1")},
                         {"ts", std::to_string(kTs)},
                         {"type", Str("pageview")}};
  std::vector<Kv> extra;
  std::vector<bool> replaced(kvs.size(), false);
  for (const auto& c : changes) {
    bool used = false;
    for (size_t i = 0; i < kvs.size() && !used; ++i) {
      if (kvs[i].first == c.first && !replaced[i]) {
        kvs[i].second = c.second;
        replaced[i] = used = true;
      }
    }
    if (!used) extra.push_back(c);  // a second copy of a base key is appended: a duplicate key
  }
  std::vector<Kv> out;
  for (auto& kv : kvs) {
    if (kv.second != kOmit) out.push_back(kv);
  }
  for (auto& kv : extra) out.push_back(kv);
  return Obj(out);
}

// {"e0":"v", "e1":"v", ...} with n entries.
std::string Experiments(size_t n) {
  std::vector<Kv> kvs;
  for (size_t i = 0; i < n; ++i) kvs.push_back({"e" + std::to_string(i), Str("v")});
  return Obj(kvs);
}

class ParserTest : public ::testing::Test {
 protected:
  // "ok" or the reason name. Parses padded and unpadded; a disagreement is reported as such.
  std::string Reason(std::string_view line) {
    // LineReader's padding is the rest of the buffer: make it look like more JSON.
    std::string buf(line);
    buf += "\n{\"id\":\"next\",\"visitor\":\"w\",\"ts\":1700000000000,\"type\":\"x\"}\n";
    buf += std::string(80, ' ');
    BadReason r1 = BadReason::kCount;
    const bool ok1 = parser_.Parse(std::string_view(buf.data(), line.size()), true, &beacon_, &r1);
    BadReason r2 = BadReason::kCount;
    const bool ok2 = parser_.Parse(line, false, &beacon_, &r2);
    const std::string s1 = ok1 ? "ok" : std::string(ReasonName(r1));
    const std::string s2 = ok2 ? "ok" : std::string(ReasonName(r2));
    if (s1 != s2) return "padded:" + s1 + " vs unpadded:" + s2;
    return s2;
  }

  // Parses a line that must be valid; the returned beacon stays valid until the next parse.
  const Beacon& Valid(std::string_view line) {
    EXPECT_EQ(Reason(line), "ok") << line;
    return beacon_;
  }

  Parser parser_;
  Beacon beacon_;
};

// ---- reason names ----

TEST(ReasonNameTest, EveryContractReasonHasItsNameAndRoundTrips) {
  const std::vector<std::string_view> contract = {"line.too_long",
                                                  "utf8.invalid",
                                                  "line.empty",
                                                  "json.syntax",
                                                  "json.not_object",
                                                  "id.missing",
                                                  "id.not_string",
                                                  "id.empty",
                                                  "id.too_long",
                                                  "id.duplicate_key",
                                                  "visitor.missing",
                                                  "visitor.not_string",
                                                  "visitor.empty",
                                                  "visitor.too_long",
                                                  "visitor.duplicate_key",
                                                  "ts.missing",
                                                  "ts.not_integer",
                                                  "ts.out_of_range",
                                                  "ts.duplicate_key",
                                                  "type.missing",
                                                  "type.not_string",
                                                  "type.empty",
                                                  "type.too_long",
                                                  "type.duplicate_key",
                                                  "experiments.not_object",
                                                  "experiments.too_many",
                                                  "experiments.name_empty",
                                                  "experiments.name_too_long",
                                                  "experiments.name_duplicate",
                                                  "experiments.variant_not_string",
                                                  "experiments.variant_empty",
                                                  "experiments.variant_too_long",
                                                  "experiments.duplicate_key",
                                                  "value.not_number",
                                                  "value.negative",
                                                  "value.duplicate_key",
                                                  "page.not_string",
                                                  "page.too_long",
                                                  "page.duplicate_key",
                                                  "device.not_string",
                                                  "device.too_long",
                                                  "device.duplicate_key",
                                                  "referrer.not_string",
                                                  "referrer.too_long",
                                                  "referrer.duplicate_key"};
  ASSERT_EQ(contract.size(), kReasonCount);
  for (size_t i = 0; i < kReasonCount; ++i) {
    const auto r = static_cast<BadReason>(i);
    EXPECT_EQ(ReasonName(r), contract[i]);
    BadReason back = BadReason::kCount;
    ASSERT_TRUE(ReasonFromName(contract[i], &back)) << contract[i];
    EXPECT_EQ(back, r);
  }
  BadReason unused;
  EXPECT_FALSE(ReasonFromName("id", &unused));
  EXPECT_FALSE(ReasonFromName("", &unused));
}

// ---- valid beacons ----

TEST_F(ParserTest, MinimalBeaconParsesWithDefaults) {
  const Beacon& b = Valid(Line());
  EXPECT_EQ(b.id, "b1");
  EXPECT_EQ(b.visitor, "v1");
  EXPECT_EQ(b.ts.value(), kTs);
  EXPECT_EQ(b.type_name, "pageview");
  EXPECT_EQ(b.type, BeaconType::kPageview);
  EXPECT_FALSE(b.has_value);
  EXPECT_EQ(b.value, 0.0);
  EXPECT_TRUE(b.experiments.empty());
  EXPECT_TRUE(b.page.empty());
  EXPECT_TRUE(b.device.empty());
  EXPECT_TRUE(b.referrer.empty());
}

TEST_F(ParserTest, AllOptionalFieldsAreReturned) {
  const Beacon& b = Valid(Line({{"type", Str("conversion")},
                                {"experiments", Obj({{"zeta", Str("B")}, {"alpha", Str("A")}})},
                                {"value", "12.5"},
                                {"page", Str("/p")},
                                {"device", Str("mobile")},
                                {"referrer", Str("https://r.example/")}}));
  EXPECT_EQ(b.type, BeaconType::kConversion);
  EXPECT_TRUE(b.has_value);
  EXPECT_EQ(b.value, 12.5);
  ASSERT_EQ(b.experiments.size(), 2u);  // in written order
  EXPECT_EQ(b.experiments[0].experiment, "zeta");
  EXPECT_EQ(b.experiments[0].variant, "B");
  EXPECT_EQ(b.experiments[1].experiment, "alpha");
  EXPECT_EQ(b.experiments[1].variant, "A");
  EXPECT_EQ(b.page, "/p");
  EXPECT_EQ(b.device, "mobile");
  EXPECT_EQ(b.referrer, "https://r.example/");
}

TEST_F(ParserTest, FieldsMayBeWrittenInAnyOrder) {
  const Beacon& b = Valid(R"({"type":"click","ts":1700000000000,"visitor":"v","id":"i"})");
  EXPECT_EQ(b.id, "i");
  EXPECT_EQ(b.visitor, "v");
}

TEST_F(ParserTest, StringsAreReturnedUnescaped) {
  const Beacon& b = Valid(Line({{"id", Str(R"(a\"b\\c\u00e9\n)")},
                                {"experiments", Obj({{R"(e\u0031)", Str(R"(v\u00e9)")}})}}));
  EXPECT_EQ(b.id, "a\"b\\c\xc3\xa9\n");
  ASSERT_EQ(b.experiments.size(), 1u);
  EXPECT_EQ(b.experiments[0].experiment, "e1");
  EXPECT_EQ(b.experiments[0].variant, "v\xc3\xa9");
}

TEST_F(ParserTest, StateDoesNotLeakFromOneLineToTheNext) {
  Valid(Line({{"experiments", Obj({{"e", Str("A")}})}, {"value", "3"}, {"page", Str("/x")}}));
  const Beacon& b = Valid(Line({{"type", Str("click")}}));
  EXPECT_TRUE(b.experiments.empty());
  EXPECT_FALSE(b.has_value);
  EXPECT_EQ(b.value, 0.0);
  EXPECT_TRUE(b.page.empty());
  EXPECT_EQ(b.type, BeaconType::kInteraction);
}

TEST_F(ParserTest, UnknownFieldsAreIgnoredEvenWhenRepeated) {
  EXPECT_EQ(Reason(Line({{"x", "1"}, {"x", Str("two")}, {"extra", R"({"id":"z","ts":"no"})"}})),
            "ok");
  EXPECT_EQ(Reason(Line({{"", "1"}, {"", "[1,{}]"}})), "ok");
  // Keys are compared exactly: these are unknown fields, not id.
  EXPECT_EQ(Reason(Line({{"ID", "1"}, {"id ", "2"}})), "ok");
}

TEST_F(ParserTest, CrLfLineIsAccepted) {
  EXPECT_EQ(Reason(Line() + "\r"), "ok");
  EXPECT_EQ(Reason(" \t" + Line() + " \r"), "ok");
}

TEST_F(ParserTest, LineOf65536BytesIsAccepted) {
  const std::string base = Line({{"pad", Str("")}});
  const std::string line = Line({{"pad", Str(std::string(kMaxLineBytes - base.size(), 'x'))}});
  ASSERT_EQ(line.size(), 65536u);
  EXPECT_EQ(Reason(line), "ok");
}

// ---- framing reasons ----

TEST_F(ParserTest, LineOf65537BytesIsTooLong) {
  const std::string base = Line({{"pad", Str("")}});
  const std::string line = Line({{"pad", Str(std::string(kMaxLineBytes + 1 - base.size(), 'x'))}});
  ASSERT_EQ(line.size(), 65537u);
  EXPECT_EQ(Reason(line), "line.too_long");
  // Checked first: it wins over invalid UTF-8 and over an empty line.
  EXPECT_EQ(Reason(std::string(65537, '\xff')), "line.too_long");
  EXPECT_EQ(Reason(std::string(65537, ' ')), "line.too_long");
}

TEST_F(ParserTest, InvalidUtf8IsUtf8Invalid) {
  EXPECT_EQ(Reason("\xff"), "utf8.invalid");
  EXPECT_EQ(Reason(Line({{"id", Str("a\xc3")}})), "utf8.invalid");             // truncated sequence
  EXPECT_EQ(Reason(Line({{"id", Str("\xc0\xaf")}})), "utf8.invalid");          // overlong '/'
  EXPECT_EQ(Reason(Line({{"id", Str("\xed\xa0\x80")}})), "utf8.invalid");      // encoded surrogate
  EXPECT_EQ(Reason(Line({{"id", Str("\xf4\x90\x80\x80")}})), "utf8.invalid");  // > U+10FFFF
  EXPECT_EQ(Reason(Line({{"x", Str("\x80")}})), "utf8.invalid");  // even in an unknown field
  // Checked before line.empty and json.syntax.
  EXPECT_EQ(Reason("  \xfe  "), "utf8.invalid");
  EXPECT_EQ(Reason("{\xff"), "utf8.invalid");
}

TEST_F(ParserTest, ValidMultibyteUtf8IsAccepted) {
  EXPECT_EQ(Reason(Line({{"id", Str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")}})), "ok");
}

TEST_F(ParserTest, EmptyOrWhitespaceOnlyLineIsLineEmpty) {
  EXPECT_EQ(Reason(""), "line.empty");
  EXPECT_EQ(Reason(" "), "line.empty");
  EXPECT_EQ(Reason("\r"), "line.empty");
  EXPECT_EQ(Reason(" \t \r\t"), "line.empty");
}

TEST_F(ParserTest, NonJsonWhitespaceIsSyntaxNotEmpty) {
  EXPECT_EQ(Reason("\f"), "json.syntax");
  EXPECT_EQ(Reason("\v"), "json.syntax");
  EXPECT_EQ(Reason("\xc2\xa0"), "json.syntax");  // U+00A0 no-break space
  EXPECT_EQ(Reason(std::string_view("\0", 1)), "json.syntax");
}

TEST_F(ParserTest, TrailingContentAfterTheObjectIsSyntax) {
  EXPECT_EQ(Reason(Line() + " x"), "json.syntax");
  EXPECT_EQ(Reason(Line() + Line()), "json.syntax");
  EXPECT_EQ(Reason(Line() + ","), "json.syntax");
  EXPECT_EQ(Reason(Line() + "}"), "json.syntax");
  EXPECT_EQ(Reason(Line() + " 1"), "json.syntax");
}

TEST_F(ParserTest, TruncatedObjectIsSyntax) {
  const std::string full = Line();
  EXPECT_EQ(Reason(full.substr(0, full.size() - 1)), "json.syntax");
  EXPECT_EQ(Reason(R"({"id":"b1)"), "json.syntax");
  EXPECT_EQ(Reason(R"({"id":)"), "json.syntax");
  EXPECT_EQ(Reason("{"), "json.syntax");
}

TEST_F(ParserTest, MalformedJsonIsSyntax) {
  EXPECT_EQ(Reason(R"({'id':'b1'})"), "json.syntax");
  EXPECT_EQ(Reason(R"({"id":"b1",})"), "json.syntax");              // trailing comma
  EXPECT_EQ(Reason(R"({id:"b1"})"), "json.syntax");                 // bare key
  EXPECT_EQ(Reason(Line({{"x", Str("a\tb")}})), "json.syntax");     // raw control character
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\x41)")}})), "json.syntax");  // invalid escape
  EXPECT_EQ(Reason(Line({{"x", "tru"}})), "json.syntax");
}

TEST_F(ParserTest, LeadingZeroIsSyntax) {
  EXPECT_EQ(Reason(Line({{"x", "01"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"value", "01"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"value", "-01"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"ts", "01700000000000"}})), "json.syntax");
}

TEST_F(ParserTest, MalformedNumbersAreSyntax) {
  for (const char* n : {"+1", ".5", "1.", "-", "1e", "1e+", "0x10", "1_000"}) {
    EXPECT_EQ(Reason(Line({{"x", n}})), "json.syntax") << n;
  }
}

TEST_F(ParserTest, NumberOverflowingADoubleIsSyntaxWhereverItStands) {
  EXPECT_EQ(Reason(Line({{"x", "1e400"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", "-1e400"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"value", "1e400"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"ts", "1e400"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", "[1,{\"y\":1e309}]"}})), "json.syntax");
  // Checked before the fields: a bad id does not hide it.
  EXPECT_EQ(Reason(Line({{"id", "1"}, {"x", "1e400"}})), "json.syntax");
}

TEST_F(ParserTest, IntegerOutside64BitsIsSyntaxWhereverItStands) {
  EXPECT_EQ(Reason(Line({{"x", "18446744073709551616"}})), "json.syntax");  // 2^64
  EXPECT_EQ(Reason(Line({{"x", "-9223372036854775809"}})), "json.syntax");  // -2^63 - 1
  EXPECT_EQ(Reason(Line({{"x", "100000000000000000000000"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"ts", "18446744073709551616"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"value", "18446744073709551616"}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"value", "-9223372036854775809"}})), "json.syntax");
}

TEST_F(ParserTest, IntegersAtThe64BitLimitsAreValid) {
  EXPECT_EQ(Reason(Line({{"x", "18446744073709551615"}})), "ok");    // 2^64 - 1
  EXPECT_EQ(Reason(Line({{"x", "-9223372036854775808"}})), "ok");    // -2^63
  EXPECT_EQ(Reason(Line({{"x", "18446744073709551616.0"}})), "ok");  // not an integer literal
}

TEST_F(ParserTest, LoneSurrogateEscapeIsSyntax) {
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\ud800)")}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\udc00)")}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\ud800\u0041)")}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\ud800x)")}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{"x", Str(R"(\ude00\ud83d)")}})), "json.syntax");  // reversed pair
  EXPECT_EQ(Reason(Line({{"id", Str(R"(a\udbff)")}})), "json.syntax");
  EXPECT_EQ(Reason(Line({{R"(k\ud800)", "1"}})), "json.syntax");  // in a key
}

TEST_F(ParserTest, SurrogatePairEscapeIsFourBytes) {
  const Beacon& b = Valid(Line({{"id", Str(R"(\ud83d\ude00)")}}));
  EXPECT_EQ(b.id, "\xf0\x9f\x98\x80");
  EXPECT_EQ(Reason(Line({{"id", Str(Rep(R"(\ud83d\ude00)", 16))}})), "ok");  // 64 bytes
  EXPECT_EQ(Reason(Line({{"id", Str(Rep(R"(\ud83d\ude00)", 16) + "a")}})), "id.too_long");
}

TEST_F(ParserTest, NanAndInfinityLiteralsAreSyntax) {
  for (const char* n : {"NaN", "nan", "Infinity", "-Infinity", "inf"}) {
    EXPECT_EQ(Reason(Line({{"value", n}})), "json.syntax") << n;
    EXPECT_EQ(Reason(Line({{"x", n}})), "json.syntax") << n;
  }
}

TEST_F(ParserTest, ByteOrderMarkIsSyntax) {
  EXPECT_EQ(Reason("\xef\xbb\xbf" + Line()), "json.syntax");
  EXPECT_EQ(Reason(" \xef\xbb\xbf" + Line()), "json.syntax");
  EXPECT_EQ(Reason("\xef\xbb\xbf"), "json.syntax");
  EXPECT_EQ(Reason(Line() + "\xef\xbb\xbf"), "json.syntax");
}

TEST_F(ParserTest, DeeplyNestedUnknownFieldIsValidJson) {
  // Any nesting that fits in a line is one valid JSON value.
  const std::string deep = std::string(2000, '[') + std::string(2000, ']');
  EXPECT_EQ(Reason(Line({{"x", deep}})), "ok");
}

TEST_F(ParserTest, ValidJsonThatIsNotAnObjectIsNotObject) {
  for (const char* v :
       {"[]", "[{\"id\":\"a\"}]", "\"beacon\"", "1", "-2.5", "true", "null", " [1] \r"}) {
    EXPECT_EQ(Reason(v), "json.not_object") << v;
  }
}

// ---- id ----

TEST_F(ParserTest, IdMissingIsIdMissing) {
  EXPECT_EQ(Reason(Line({{"id", std::string(kOmit)}})), "id.missing");
  EXPECT_EQ(Reason("{}"), "id.missing");
}

TEST_F(ParserTest, IdNotStringIsIdNotString) {
  for (const char* v : {"1", "null", "true", "[\"a\"]", "{}"}) {
    EXPECT_EQ(Reason(Line({{"id", v}})), "id.not_string") << v;
  }
}

TEST_F(ParserTest, IdOf0BytesIsEmpty) { EXPECT_EQ(Reason(Line({{"id", Str("")}})), "id.empty"); }

TEST_F(ParserTest, IdOf1And64BytesIsValid) {
  EXPECT_EQ(Valid(Line({{"id", Str("a")}})).id, "a");
  EXPECT_EQ(Valid(Line({{"id", Str(std::string(64, 'a'))}})).id.size(), 64u);
}

TEST_F(ParserTest, IdOf65BytesIsTooLong) {
  EXPECT_EQ(Reason(Line({{"id", Str(std::string(65, 'a'))}})), "id.too_long");
}

TEST_F(ParserTest, IdLengthIsCountedInUtf8BytesAfterUnescaping) {
  // 32 x "\u00e9" is 192 characters written but 64 bytes of UTF-8.
  const Beacon& b = Valid(Line({{"id", Str(Rep(R"(\u00e9)", 32))}}));
  EXPECT_EQ(b.id, Rep("\xc3\xa9", 32));
  EXPECT_EQ(Reason(Line({{"id", Str(Rep(R"(\u00e9)", 32) + "a")}})), "id.too_long");
  EXPECT_EQ(Reason(Line({{"id", Str(Rep("\xc3\xa9", 32))}})), "ok");
  EXPECT_EQ(Reason(Line({{"id", Str(Rep("\xc3\xa9", 33))}})), "id.too_long");  // 33 chars, 66 bytes
  EXPECT_EQ(Reason(Line({{"id", Str(Rep("\xe2\x82\xac", 21) + "a")}})), "ok");  // 64 bytes
  EXPECT_EQ(Reason(Line({{"id", Str(Rep(R"(\\)", 64))}})), "ok");  // 128 written, 64 bytes
  EXPECT_EQ(Reason(Line({{"id", Str(Rep(R"(\\)", 65))}})), "id.too_long");
  EXPECT_EQ(Reason(Line({{"id", Str(R"(\u0000)")}})), "ok");  // one byte
}

TEST_F(ParserTest, IdGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"id", Str("a")}, {"id", Str("b")}})), "id.duplicate_key");
  EXPECT_EQ(Reason(R"({"id":"a","visitor":"v","ts":1700000000000,"type":"t","id":"a"})"),
            "id.duplicate_key");  // same value still counts
  // The duplicate is found before the type check of either copy.
  EXPECT_EQ(Reason(R"({"id":1,"visitor":"v","ts":1700000000000,"type":"t","id":null})"),
            "id.duplicate_key");
}

TEST_F(ParserTest, EscapedKeyIsComparedAfterUnescaping) {
  const Beacon& b = Valid(R"({"\u0069d":"esc","visitor":"v","ts":1700000000000,"type":"t"})");
  EXPECT_EQ(b.id, "esc");
  EXPECT_EQ(Reason(R"({"\u0069d":"a","visitor":"v","ts":1700000000000,"type":"t","id":"a"})"),
            "id.duplicate_key");
  EXPECT_EQ(Reason(R"({"id":"a","vis\u0069tor":"v","ts":1700000000000,"type":"t","visitor":"v"})"),
            "visitor.duplicate_key");
}

// ---- visitor ----

TEST_F(ParserTest, VisitorMissingIsVisitorMissing) {
  EXPECT_EQ(Reason(Line({{"visitor", std::string(kOmit)}})), "visitor.missing");
}

TEST_F(ParserTest, VisitorNotStringIsVisitorNotString) {
  for (const char* v : {"7", "null", "false", "[]"}) {
    EXPECT_EQ(Reason(Line({{"visitor", v}})), "visitor.not_string") << v;
  }
}

TEST_F(ParserTest, VisitorOf0BytesIsEmpty) {
  EXPECT_EQ(Reason(Line({{"visitor", Str("")}})), "visitor.empty");
}

TEST_F(ParserTest, VisitorOf1And128BytesIsValid) {
  EXPECT_EQ(Valid(Line({{"visitor", Str("v")}})).visitor, "v");
  EXPECT_EQ(Valid(Line({{"visitor", Str(std::string(128, 'v'))}})).visitor.size(), 128u);
  EXPECT_EQ(Reason(Line({{"visitor", Str(Rep(R"(\u00e9)", 64))}})), "ok");
}

TEST_F(ParserTest, VisitorOf129BytesIsTooLong) {
  EXPECT_EQ(Reason(Line({{"visitor", Str(std::string(129, 'v'))}})), "visitor.too_long");
  EXPECT_EQ(Reason(Line({{"visitor", Str(Rep(R"(\u00e9)", 64) + "x")}})), "visitor.too_long");
}

TEST_F(ParserTest, VisitorGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"visitor", Str("a")}, {"visitor", Str("a")}})), "visitor.duplicate_key");
}

// ---- ts ----

TEST_F(ParserTest, TsMissingIsTsMissing) {
  EXPECT_EQ(Reason(Line({{"ts", std::string(kOmit)}})), "ts.missing");
}

TEST_F(ParserTest, TsThatIsNotAJsonIntegerIsNotInteger) {
  for (const char* v : {"\"1700000000000\"", "true", "null", "1.7e12", "1700000000000.0",
                        "17000000000000e-1", "1700000000000E0", "[1700000000000]", "{}"}) {
    EXPECT_EQ(Reason(Line({{"ts", v}})), "ts.not_integer") << v;
  }
}

TEST_F(ParserTest, TsAtTheBoundsIsValid) {
  EXPECT_EQ(Valid(Line({{"ts", "946684800000"}})).ts.value(), 946684800000);
  EXPECT_EQ(Valid(Line({{"ts", "4102444800000"}})).ts.value(), 4102444800000);
}

TEST_F(ParserTest, TsOutsideTheBoundsIsOutOfRange) {
  for (const char* v :
       {"946684799999", "4102444800001", "0", "-0", "-1", "-1700000000000", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "-9223372036854775808"}) {
    EXPECT_EQ(Reason(Line({{"ts", v}})), "ts.out_of_range") << v;
  }
}

TEST_F(ParserTest, TsGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"ts", "1700000000000"}, {"ts", "1700000000000"}})), "ts.duplicate_key");
  EXPECT_EQ(Reason(Line({{"ts", "\"x\""}, {"ts", "1"}})), "ts.duplicate_key");
}

// ---- type ----

TEST_F(ParserTest, TypeMissingIsTypeMissing) {
  EXPECT_EQ(Reason(Line({{"type", std::string(kOmit)}})), "type.missing");
}

TEST_F(ParserTest, TypeNotStringIsTypeNotString) {
  for (const char* v : {"1", "null", "true", "[\"pageview\"]"}) {
    EXPECT_EQ(Reason(Line({{"type", v}})), "type.not_string") << v;
  }
}

TEST_F(ParserTest, TypeOf0BytesIsEmpty) {
  EXPECT_EQ(Reason(Line({{"type", Str("")}})), "type.empty");
}

TEST_F(ParserTest, TypeOf1And32BytesIsValid) {
  EXPECT_EQ(Valid(Line({{"type", Str("t")}})).type_name, "t");
  EXPECT_EQ(Valid(Line({{"type", Str(std::string(32, 't'))}})).type_name.size(), 32u);
}

TEST_F(ParserTest, TypeOf33BytesIsTooLong) {
  EXPECT_EQ(Reason(Line({{"type", Str(std::string(33, 't'))}})), "type.too_long");
  EXPECT_EQ(Reason(Line({{"type", Str(Rep(R"(\u00e9)", 16) + "x")}})), "type.too_long");
}

TEST_F(ParserTest, TypeGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"type", Str("pageview")}, {"type", Str("pageview")}})),
            "type.duplicate_key");
}

TEST_F(ParserTest, PageviewAndConversionAreTheOnlyTypesWithMeaning) {
  const Beacon& p = Valid(Line({{"type", Str("pageview")}}));
  EXPECT_EQ(p.type, BeaconType::kPageview);
  const Beacon& c = Valid(Line({{"type", Str("conversion")}}));
  EXPECT_EQ(c.type, BeaconType::kConversion);
  EXPECT_EQ(Valid(Line({{"type", Str(R"(pagevi\u0065w)")}})).type, BeaconType::kPageview);
  for (const char* t : {"PageView", "Pageview", "CONVERSION", "Conversion", "pageview ",
                        " conversion", "click", "pageviews", "conversion\\u0000"}) {
    const Beacon& b = Valid(Line({{"type", Str(t)}}));
    EXPECT_EQ(b.type, BeaconType::kInteraction) << t;
  }
  EXPECT_EQ(Valid(Line({{"type", Str("PageView")}})).type_name, "PageView");
}

// ---- experiments ----

TEST_F(ParserTest, ExperimentsAbsentOrEmptyObjectIsValid) {
  EXPECT_TRUE(Valid(Line()).experiments.empty());
  EXPECT_TRUE(Valid(Line({{"experiments", "{}"}})).experiments.empty());
}

TEST_F(ParserTest, ExperimentsNotAnObjectIsNotObject) {
  for (const char* v : {"null", "[]", "[[\"e\",\"A\"]]", "\"e\"", "1", "true"}) {
    EXPECT_EQ(Reason(Line({{"experiments", v}})), "experiments.not_object") << v;
  }
}

TEST_F(ParserTest, ThirtyTwoExperimentsAreValid) {
  const Beacon& b = Valid(Line({{"experiments", Experiments(32)}}));
  ASSERT_EQ(b.experiments.size(), 32u);
  EXPECT_EQ(b.experiments[31].experiment, "e31");
}

TEST_F(ParserTest, ThirtyThreeExperimentsAreTooMany) {
  EXPECT_EQ(Reason(Line({{"experiments", Experiments(33)}})), "experiments.too_many");
  // Counted before any entry is checked, and as written (a repeated name still counts).
  std::vector<Kv> kvs = {{"", "1"}};
  for (int i = 0; i < 32; ++i) kvs.push_back({"e" + std::to_string(i), Str("v")});
  EXPECT_EQ(Reason(Line({{"experiments", Obj(kvs)}})), "experiments.too_many");
  std::vector<Kv> repeated;
  for (int i = 0; i < 33; ++i) repeated.push_back({"same", Str("v")});
  EXPECT_EQ(Reason(Line({{"experiments", Obj(repeated)}})), "experiments.too_many");
}

TEST_F(ParserTest, ExperimentNameOf0BytesIsNameEmpty) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"", Str("A")}})}})), "experiments.name_empty");
}

TEST_F(ParserTest, ExperimentNameOf1And64BytesIsValid) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", Str("A")}})}})), "ok");
  const Beacon& b = Valid(Line({{"experiments", Obj({{std::string(64, 'e'), Str("A")}})}}));
  ASSERT_EQ(b.experiments.size(), 1u);
  EXPECT_EQ(b.experiments[0].experiment.size(), 64u);
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{Rep(R"(\u00e9)", 32), Str("A")}})}})), "ok");
}

TEST_F(ParserTest, ExperimentNameOf65BytesIsNameTooLong) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{std::string(65, 'e'), Str("A")}})}})),
            "experiments.name_too_long");
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{Rep(R"(\u00e9)", 32) + "x", Str("A")}})}})),
            "experiments.name_too_long");
}

TEST_F(ParserTest, ExperimentNameGivenTwiceIsNameDuplicate) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", Str("A")}, {"e", Str("A")}})}})),
            "experiments.name_duplicate");
  EXPECT_EQ(
      Reason(Line({{"experiments", Obj({{"e", Str("A")}, {"f", Str("B")}, {"e", Str("C")}})}})),
      "experiments.name_duplicate");
  // Compared after unescaping.
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{R"(\u0065)", Str("A")}, {"e", Str("B")}})}})),
            "experiments.name_duplicate");
}

TEST_F(ParserTest, VariantNotStringIsVariantNotString) {
  for (const char* v : {"1", "null", "true", "[\"A\"]", "{}"}) {
    EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", v}})}})), "experiments.variant_not_string")
        << v;
  }
}

TEST_F(ParserTest, VariantOf0BytesIsVariantEmpty) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", Str("")}})}})), "experiments.variant_empty");
}

TEST_F(ParserTest, VariantOf1And64BytesIsValid) {
  const Beacon& b = Valid(Line({{"experiments", Obj({{"e", Str(std::string(64, 'v'))}})}}));
  ASSERT_EQ(b.experiments.size(), 1u);
  EXPECT_EQ(b.experiments[0].variant.size(), 64u);
  EXPECT_EQ(Valid(Line({{"experiments", Obj({{"e", Str("v")}})}})).experiments[0].variant, "v");
}

TEST_F(ParserTest, VariantOf65BytesIsVariantTooLong) {
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", Str(std::string(65, 'v'))}})}})),
            "experiments.variant_too_long");
  EXPECT_EQ(Reason(Line({{"experiments", Obj({{"e", Str(Rep(R"(\u00e9)", 32) + "v")}})}})),
            "experiments.variant_too_long");
}

TEST_F(ParserTest, ExperimentsGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"experiments", "{}"}, {"experiments", "{}"}})),
            "experiments.duplicate_key");
  EXPECT_EQ(Reason(Line({{"experiments", "1"}, {"experiments", Obj({{"", "2"}})}})),
            "experiments.duplicate_key");  // before the type check
}

TEST_F(ParserTest, FirstBadExperimentEntryInWrittenOrderWins) {
  auto exp = [&](const std::vector<Kv>& kvs) { return Reason(Line({{"experiments", Obj(kvs)}})); };
  EXPECT_EQ(exp({{"a", "1"}, {"", Str("x")}}), "experiments.variant_not_string");
  EXPECT_EQ(exp({{"", Str("x")}, {"a", "1"}}), "experiments.name_empty");
  EXPECT_EQ(exp({{"a", Str("")}, {std::string(65, 'n'), Str("x")}}), "experiments.variant_empty");
  EXPECT_EQ(exp({{std::string(65, 'n'), Str("x")}, {"a", Str("")}}), "experiments.name_too_long");
  EXPECT_EQ(exp({{"ok", Str("A")}, {"b", Str(std::string(65, 'v'))}, {"ok", Str("A")}}),
            "experiments.variant_too_long");
  EXPECT_EQ(exp({{"ok", Str("A")}, {"ok", Str("B")}, {"c", "1"}}), "experiments.name_duplicate");
  // Within one entry the name checks come before the variant checks.
  EXPECT_EQ(exp({{"", "1"}}), "experiments.name_empty");
  EXPECT_EQ(exp({{std::string(65, 'n'), Str("")}}), "experiments.name_too_long");
  EXPECT_EQ(exp({{"e", Str("A")}, {"e", "1"}}), "experiments.name_duplicate");
  EXPECT_EQ(exp({{"e", "1"}, {"e", Str("A")}}), "experiments.variant_not_string");
}

// ---- value ----

TEST_F(ParserTest, ValueAbsentIsNotSet) {
  const Beacon& b = Valid(Line({{"type", Str("conversion")}}));
  EXPECT_FALSE(b.has_value);
  EXPECT_EQ(b.value, 0.0);
}

TEST_F(ParserTest, NonNegativeFiniteValueIsValid) {
  const std::vector<std::pair<const char*, double>> cases = {
      {"0", 0.0},     {"-0", 0.0},      {"-0.0", 0.0},
      {"1.5", 1.5},   {"1e300", 1e300}, {"12", 12.0},
      {"0.1", 0.1},   {"1E2", 100.0},   {"18446744073709551615", 18446744073709551615.0},
      {"1e-400", 0.0}};  // underflows to 0: not an overflow
  for (const auto& [text, want] : cases) {
    const Beacon& b = Valid(Line({{"type", Str("conversion")}, {"value", text}}));
    EXPECT_TRUE(b.has_value) << text;
    EXPECT_EQ(b.value, want) << text;
  }
}

TEST_F(ParserTest, ValueOnANonConversionIsStillValidated) {
  EXPECT_EQ(Reason(Line({{"type", Str("pageview")}, {"value", "2"}})), "ok");
  EXPECT_EQ(Reason(Line({{"type", Str("pageview")}, {"value", "-2"}})), "value.negative");
  EXPECT_EQ(Reason(Line({{"type", Str("click")}, {"value", "\"2\""}})), "value.not_number");
}

TEST_F(ParserTest, NegativeValueIsNegative) {
  for (const char* v : {"-0.01", "-1", "-1e300", "-9223372036854775808", "-5e-324"}) {
    EXPECT_EQ(Reason(Line({{"value", v}})), "value.negative") << v;
  }
}

TEST_F(ParserTest, ValueThatIsNotANumberIsNotNumber) {
  for (const char* v : {"true", "false", "\"1\"", "null", "[1]", "{}"}) {
    EXPECT_EQ(Reason(Line({{"value", v}})), "value.not_number") << v;
  }
}

TEST_F(ParserTest, ValueGivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{"value", "1"}, {"value", "1"}})), "value.duplicate_key");
  EXPECT_EQ(Reason(Line({{"value", "true"}, {"value", "-1"}})), "value.duplicate_key");
}

// ---- page, device, referrer ----

class TextFieldTest : public ParserTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(TextFieldTest, AbsentOrEmptyIsValid) {
  EXPECT_EQ(Reason(Line()), "ok");
  EXPECT_EQ(Reason(Line({{GetParam(), Str("")}})), "ok");
}

TEST_P(TextFieldTest, Of2048BytesIsValid) {
  EXPECT_EQ(Reason(Line({{GetParam(), Str(std::string(2048, 'p'))}})), "ok");
  EXPECT_EQ(Reason(Line({{GetParam(), Str(Rep(R"(\u00e9)", 1024))}})), "ok");
  const Beacon& b = Valid(Line({{GetParam(), Str(std::string(2048, 'p'))}}));
  const std::string_view got = GetParam() == "page"     ? b.page
                               : GetParam() == "device" ? b.device
                                                        : b.referrer;
  EXPECT_EQ(got.size(), 2048u);
}

TEST_P(TextFieldTest, Of2049BytesIsTooLong) {
  EXPECT_EQ(Reason(Line({{GetParam(), Str(std::string(2049, 'p'))}})), GetParam() + ".too_long");
  EXPECT_EQ(Reason(Line({{GetParam(), Str(Rep(R"(\u00e9)", 1024) + "p")}})),
            GetParam() + ".too_long");
}

TEST_P(TextFieldTest, NonStringIsNotString) {
  for (const char* v : {"null", "1", "true", "[]", "{}"}) {
    EXPECT_EQ(Reason(Line({{GetParam(), v}})), GetParam() + ".not_string") << v;
  }
}

TEST_P(TextFieldTest, GivenTwiceIsDuplicateKey) {
  EXPECT_EQ(Reason(Line({{GetParam(), Str("a")}, {GetParam(), Str("a")}})),
            GetParam() + ".duplicate_key");
  EXPECT_EQ(Reason(Line({{GetParam(), "1"}, {GetParam(), Str(std::string(3000, 'x'))}})),
            GetParam() + ".duplicate_key");
}

INSTANTIATE_TEST_SUITE_P(PageDeviceReferrer, TextFieldTest,
                         ::testing::Values("page", "device", "referrer"),
                         [](const auto& info) { return info.param; });

// ---- check order ----

TEST_F(ParserTest, BadIdWinsOverBadTs) {
  EXPECT_EQ(Reason(Line({{"id", Str("")}, {"ts", "\"x\""}})), "id.empty");
  EXPECT_EQ(Reason(Line({{"id", std::string(kOmit)}, {"ts", "1"}})), "id.missing");
  // Table order, not written order.
  EXPECT_EQ(Reason(R"({"ts":"x","type":1,"visitor":2,"id":3})"), "id.not_string");
}

TEST_F(ParserTest, FieldsAreCheckedInTableOrder) {
  const std::string bad_id = Str("");
  const std::string bad_ts = "1.5";
  EXPECT_EQ(Reason(Line({{"visitor", "1"}, {"ts", bad_ts}})), "visitor.not_string");
  EXPECT_EQ(Reason(Line({{"ts", bad_ts}, {"type", "1"}})), "ts.not_integer");
  EXPECT_EQ(Reason(Line({{"type", Str("")}, {"experiments", "1"}})), "type.empty");
  EXPECT_EQ(Reason(Line({{"experiments", "1"}, {"value", "-1"}})), "experiments.not_object");
  EXPECT_EQ(Reason(Line({{"value", "-1"}, {"page", "1"}})), "value.negative");
  EXPECT_EQ(Reason(Line({{"referrer", "1"}, {"device", "1"}, {"page", "1"}})), "page.not_string");
  EXPECT_EQ(Reason(Line({{"referrer", "1"}, {"device", "1"}})), "device.not_string");
  EXPECT_EQ(Reason(Line({{"referrer", "1"}})), "referrer.not_string");
  // A later field's duplicate key does not hide an earlier field's broken rule.
  EXPECT_EQ(Reason(Line({{"id", bad_id}, {"visitor", Str("a")}, {"visitor", Str("b")}})),
            "id.empty");
  EXPECT_EQ(Reason(Line({{"type", Str("")}, {"value", "1"}, {"value", "1"}})), "type.empty");
  // ... and an earlier field's duplicate key wins over a later field's rule.
  EXPECT_EQ(Reason(Line({{"ts", "1"}, {"id", Str("x")}, {"id", Str("x")}})), "id.duplicate_key");
}

TEST_F(ParserTest, WithinAFieldDuplicateThenMissingThenTypeThenBounds) {
  EXPECT_EQ(Reason(Line({{"visitor", "1"}, {"visitor", Str("")}})), "visitor.duplicate_key");
  EXPECT_EQ(Reason(Line({{"visitor", std::string(kOmit)}, {"ts", std::string(kOmit)}})),
            "visitor.missing");
  EXPECT_EQ(Reason(Line({{"ts", "1.5e20"}})), "ts.not_integer");  // type before bounds
  EXPECT_EQ(Reason(Line({{"experiments", Experiments(33)}, {"experiments", "1"}})),
            "experiments.duplicate_key");
}

TEST_F(ParserTest, FramingChecksComeBeforeFieldChecks) {
  EXPECT_EQ(Reason(R"({"id":"")" + std::string("\xff") + R"("})"), "utf8.invalid");
  EXPECT_EQ(Reason(R"({"id":""} trailing)"), "json.syntax");
  EXPECT_EQ(Reason(R"([{"id":""}])"), "json.not_object");
}

}  // namespace
}  // namespace duet::beacon
