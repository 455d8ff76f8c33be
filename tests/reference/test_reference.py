"""Hand-checked cases for the reference implementation (reference.py) and compare.py.

Run from the repository root:
    python3 -m unittest tests/reference/test_reference.py
"""

import base64
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import compare  # noqa: E402
import reference  # noqa: E402

T0 = 1700000000000  # 2023-11-14T22:13:20Z
GAP = 1_800_000


def obj(**fields) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()


BASE = '"id":"i","visitor":"v","ts":1700000000000,"type":"pageview"'


def line(extra: str = "", base: str = BASE) -> bytes:
    """A beacon line: BASE plus `extra` (already JSON, starting with a comma)."""
    return ("{" + base + extra + "}").encode("utf-8")


def write_files(root, files):
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if rel.endswith(".zst"):
            subprocess.run(["zstd", "-q", "-f", "-o", path], input=data, check=True)
        else:
            with open(path, "wb") as f:
                f.write(data)


def run_files(files, gap=GAP):
    with tempfile.TemporaryDirectory() as d:
        write_files(d, files)
        bad = io.StringIO()
        doc = reference.run(d, gap, bad, progress=False)
        return doc, [json.loads(x) for x in bad.getvalue().splitlines()]


def run_lines(lines, gap=GAP):
    return run_files({"in.ndjson": b"".join(l + b"\n" for l in lines)}, gap)


class ClassifyTest(unittest.TestCase):
    def check(self, cases):
        for raw, want in cases:
            with self.subTest(line=raw[:120]):
                reason, _ = reference.classify(raw)
                self.assertEqual(reason, want)

    def test_valid_lines(self):
        self.check([
            (line(), None),
            (line() + b"\r", None),                      # CR before LF is whitespace
            (b" \t" + line() + b" \r", None),
            (line(',"extra":1,"extra":2'), None),        # unknown duplicated field ignored
            (line(',"x":{"a":1,"a":2}'), None),          # nested duplicate keys ignored
            (line(',"x":18446744073709551615'), None),   # 2^64-1 fits
            (line(',"x":-9223372036854775808'), None),   # -2^63 fits
            (line(',"x":1.7976931348623157e308'), None),
            (line(',"x":1e-400'), None),                 # underflow is not overflow
            (line(',"x":"\\ud83d\\ude00"'), None),       # paired surrogates
            (line(',"x":"\\\\ud800"'), None),            # escaped backslash, not an escape
            (line(',"value":0'), None),
            (line(',"value":-0'), None),
            (line(',"value":-0.0'), None),
            (line(',"value":1e3'), None),
            (line(',"page":"","device":"","referrer":""'), None),
            (line(',"page":"' + "p" * 2048 + '"'), None),
            (line('', base='"id":"' + "i" * 64 + '","visitor":"' + "v" * 128
                  + '","ts":946684800000,"type":"' + "t" * 32 + '"'), None),
            (line('', base='"id":"i","visitor":"v","ts":4102444800000,"type":"PageView"'), None),
            (line('', base='"id":"' + "\\u00e9" * 32 + '","visitor":"v","ts":1700000000000,"type":"x"'), None),
            (line(',"experiments":{}'), None),
            (line(',"experiments":{' + ",".join('"e%d":"v"' % i for i in range(32)) + "}"), None),
            (line(',"experiments":{"' + "n" * 64 + '":"' + "v" * 64 + '"}'), None),
            (b'{"\\u0069d":"i","visitor":"v","ts":1700000000000,"type":"pageview"}', None),
        ])

    def test_line_level(self):
        valid = line()
        exactly = valid[:-1] + b" " * (65536 - len(valid)) + b"}"
        self.assertEqual(len(exactly), 65536)
        self.check([
            (exactly, None),
            (exactly + b" ", "line.too_long"),
            (b"\xff" * 70000, "line.too_long"),          # too_long checked before utf8
            (b'{"id":"\xff","visitor":"v","ts":1700000000000,"type":"p"}', "utf8.invalid"),
            (b'{"x":"\xc0\xaf"}', "utf8.invalid"),       # overlong
            (b'{"x":"\xed\xa0\x80"}', "utf8.invalid"),   # encoded surrogate
            (b"\xff", "utf8.invalid"),
            (b"", "line.empty"),
            (b" \t\r ", "line.empty"),
            (b"\x0c", "json.syntax"),                    # form feed is not JSON whitespace
        ])

    def test_json_syntax(self):
        self.check([
            (b"{", "json.syntax"),
            (b'{"id":"a",}', "json.syntax"),
            (line() + b" x", "json.syntax"),
            (line() + line(), "json.syntax"),
            (b"\xef\xbb\xbf" + line(), "json.syntax"),  # BOM
            (line(',"x":NaN'), "json.syntax"),
            (line(',"x":Infinity'), "json.syntax"),
            (line(',"x":-Infinity'), "json.syntax"),
            (line(',"x":1e400'), "json.syntax"),
            (line(',"value":-1e400'), "json.syntax"),    # syntax before value.negative
            (line(',"x":[18446744073709551616]'), "json.syntax"),
            (line(',"x":-9223372036854775809'), "json.syntax"),
            (line(',"x":1' + "0" * 5000), "json.syntax"),
            (line(',"x":"\\ud800"'), "json.syntax"),
            (line(',"x":"\\udc00\\ud800"'), "json.syntax"),
            (line(',"\\ud800":1'), "json.syntax"),      # lone surrogate in a key
            (line(',"x":{"y":["\\uDBFF"]}'), "json.syntax"),
            (b"{'id':'a'}", "json.syntax"),
            (b'{"x":"\x01"}', "json.syntax"),            # raw control character
            (b'{"x":01}', "json.syntax"),
            (b'{"x":1.}', "json.syntax"),
            (b'{"x":+1}', "json.syntax"),
            (b'{"x":tru}', "json.syntax"),
            (b'{"x":"\\x"}', "json.syntax"),
            ('{"x":\u0661}'.encode(), "json.syntax"),    # non-ASCII digit
            (b"[1e400]", "json.syntax"),                  # syntax before not_object
        ])

    def test_deep_nesting_is_valid_json(self):
        deep = line(',"x":' + "[" * 20000 + "]" * 20000)
        self.assertEqual(reference.run_with_deep_stack(reference.classify, deep)[0], None)
        self.assertEqual(reference.run_with_deep_stack(reference.classify, b"[" * 65536)[0],
                         "json.syntax")

    def test_not_object(self):
        self.check([(b"[]", "json.not_object"), (b'"x"', "json.not_object"),
                    (b"null", "json.not_object"), (b" 1 ", "json.not_object"),
                    (b"true", "json.not_object")])

    def test_id_visitor_type(self):
        ts = '"ts":1700000000000'
        self.check([
            (b'{"visitor":"v","ts":1700000000000,"type":"p"}', "id.missing"),
            (b'{"id":5,"visitor":"v","ts":1700000000000,"type":"p"}', "id.not_string"),
            (b'{"id":null,"visitor":"v","ts":1700000000000,"type":"p"}', "id.not_string"),
            (b'{"id":"","visitor":"v","ts":1700000000000,"type":"p"}', "id.empty"),
            (('{"id":"' + "i" * 65 + '","visitor":"v",' + ts + ',"type":"p"}').encode(), "id.too_long"),
            (('{"id":"' + "\\u00e9" * 33 + '","visitor":"v",' + ts + ',"type":"p"}').encode(), "id.too_long"),
            (('{"id":"' + "é" * 33 + '","visitor":"v",' + ts + ',"type":"p"}').encode(), "id.too_long"),
            (b'{"id":"a","id":"a","visitor":"v","ts":1700000000000,"type":"p"}', "id.duplicate_key"),
            (b'{"id":"a","\\u0069d":"b","visitor":"v","ts":1700000000000,"type":"p"}', "id.duplicate_key"),
            (b'{"id":"a","ts":1700000000000,"type":"p"}', "visitor.missing"),
            (b'{"id":"a","visitor":1,"ts":1700000000000,"type":"p"}', "visitor.not_string"),
            (b'{"id":"a","visitor":"","ts":1700000000000,"type":"p"}', "visitor.empty"),
            (('{"id":"a","visitor":"' + "v" * 129 + '",' + ts + ',"type":"p"}').encode(), "visitor.too_long"),
            (b'{"id":"a","visitor":"v","visitor":"w","ts":1700000000000,"type":"p"}', "visitor.duplicate_key"),
            (b'{"id":"a","visitor":"v","ts":1700000000000}', "type.missing"),
            (b'{"id":"a","visitor":"v","ts":1700000000000,"type":["p"]}', "type.not_string"),
            (b'{"id":"a","visitor":"v","ts":1700000000000,"type":""}', "type.empty"),
            (('{"id":"a","visitor":"v",' + ts + ',"type":"' + "t" * 33 + '"}').encode(), "type.too_long"),
            (b'{"id":"a","visitor":"v","ts":1700000000000,"type":"p","type":"p"}', "type.duplicate_key"),
        ])

    def test_ts(self):
        b = '{"id":"a","visitor":"v","type":"p",%s}'
        self.check([
            (b'{"id":"a","visitor":"v","type":"p"}', "ts.missing"),
            ((b % '"ts":"1700000000000"').encode(), "ts.not_integer"),
            ((b % '"ts":1.7e12').encode(), "ts.not_integer"),
            ((b % '"ts":1700000000000.0').encode(), "ts.not_integer"),
            ((b % '"ts":17E11').encode(), "ts.not_integer"),
            ((b % '"ts":true').encode(), "ts.not_integer"),
            ((b % '"ts":null').encode(), "ts.not_integer"),
            ((b % '"ts":946684799999').encode(), "ts.out_of_range"),
            ((b % '"ts":4102444800001').encode(), "ts.out_of_range"),
            ((b % '"ts":-0').encode(), "ts.out_of_range"),
            ((b % '"ts":946684800000').encode(), None),
            ((b % '"ts":1,"ts":1700000000000').encode(), "ts.duplicate_key"),
        ])

    def test_experiments(self):
        many = ",".join('"e%d":"v"' % i for i in range(33))
        self.check([
            (line(',"experiments":null'), "experiments.not_object"),
            (line(',"experiments":[]'), "experiments.not_object"),
            (line(',"experiments":"e"'), "experiments.not_object"),
            (line(',"experiments":{' + many + '}'), "experiments.too_many"),
            # 33 written entries, one a repeated name: too_many comes first
            (line(',"experiments":{"e0":"v",' + many[len('"e0":"v",'):] + ',"e1":"v"}'),
             "experiments.too_many"),
            (line(',"experiments":{"":"v"}'), "experiments.name_empty"),
            (line(',"experiments":{"' + "n" * 65 + '":"v"}'), "experiments.name_too_long"),
            (line(',"experiments":{"e":"a","e":"b"}'), "experiments.name_duplicate"),
            (line(',"experiments":{"e":"a","\\u0065":"a"}'), "experiments.name_duplicate"),
            (line(',"experiments":{"e":1}'), "experiments.variant_not_string"),
            (line(',"experiments":{"e":null}'), "experiments.variant_not_string"),
            (line(',"experiments":{"e":""}'), "experiments.variant_empty"),
            (line(',"experiments":{"e":"' + "v" * 65 + '"}'), "experiments.variant_too_long"),
            (line(',"experiments":{},"experiments":{}'), "experiments.duplicate_key"),
            # entries are checked one after the other, in written order
            (line(',"experiments":{"e":"","":"v"}'), "experiments.variant_empty"),
            (line(',"experiments":{"e":"a","":"","e":1}'), "experiments.name_empty"),
            (line(',"experiments":{"e":1,"e":"a"}'), "experiments.variant_not_string"),
            (line(',"experiments":{"":""}'), "experiments.name_empty"),
        ])

    def test_value_and_optional_strings(self):
        self.check([
            (line(',"value":"1"'), "value.not_number"),
            (line(',"value":true'), "value.not_number"),
            (line(',"value":null'), "value.not_number"),
            (line(',"value":[1]'), "value.not_number"),
            (line(',"value":-1'), "value.negative"),
            (line(',"value":-0.5'), "value.negative"),
            (line(',"value":-1e-400'), None),            # rounds to -0.0: accepted as 0
            (line(',"value":1,"value":1'), "value.duplicate_key"),
            (line(',"page":null'), "page.not_string"),
            (line(',"page":"' + "p" * 2049 + '"'), "page.too_long"),
            (line(',"page":"a","page":"a"'), "page.duplicate_key"),
            (line(',"device":1'), "device.not_string"),
            (line(',"device":"' + "é" * 1025 + '"'), "device.too_long"),
            (line(',"device":"","device":""'), "device.duplicate_key"),
            (line(',"referrer":{}'), "referrer.not_string"),
            (line(',"referrer":"' + "r" * 2049 + '"'), "referrer.too_long"),
            (line(',"referrer":"","referrer":""'), "referrer.duplicate_key"),
        ])

    def test_check_order(self):
        self.check([
            (b'{"id":"","ts":"x"}', "id.empty"),                      # id before visitor
            (b'{"ts":"x","id":"a","visitor":""}', "visitor.empty"),
            (b'{"id":"a","visitor":"v","ts":1.5,"type":1}', "ts.not_integer"),
            (b'{"id":"a","visitor":"v","ts":1,"type":1}', "ts.out_of_range"),
            (b'{"page":1,"page":2,"visitor":"v"}', "id.missing"),
            (line(',"value":-1,"experiments":{"":"x"}'), "experiments.name_empty"),
            (line(',"page":1,"value":-1'), "value.negative"),
            (line(',"referrer":1,"page":"' + "p" * 3000 + '"'), "page.too_long"),
            (line(',"referrer":1,"device":2'), "device.not_string"),
            (b'{"id":1,"id":2}', "id.duplicate_key"),                 # duplicate before type
            (b'{"id":"a","visitor":"v","ts":1700000000000,"type":"p","value":1,"value":-1,"experiments":1}',
             "experiments.not_object"),
        ])

    def test_value_conversion(self):
        _, b = reference.classify(line(',"value":-0.0'))
        self.assertEqual(math.copysign(1.0, b.value), 1.0)
        _, b = reference.classify(line(',"value":9007199254740993'))
        self.assertEqual(b.value, 9007199254740992.0)  # float(int): nearest, ties to even
        _, b = reference.classify(line(',"value":3'))
        self.assertIs(type(b.value), float)


class SessionTest(unittest.TestCase):
    def test_gap_exactly_session_gap_stays(self):
        doc, _ = run_lines([obj(id="a", visitor="v", ts=T0, type="pageview"),
                            obj(id="b", visitor="v", ts=T0 + GAP, type="pageview")])
        self.assertEqual(doc["site"]["sessions"], 1)
        self.assertEqual(doc["site"]["duration_ms"], GAP)
        self.assertEqual(doc["site"]["bounces"], 0)

    def test_gap_one_ms_more_splits(self):
        doc, _ = run_lines([obj(id="a", visitor="v", ts=T0, type="pageview"),
                            obj(id="b", visitor="v", ts=T0 + GAP + 1, type="pageview")])
        self.assertEqual(doc["site"]["sessions"], 2)
        self.assertEqual(doc["site"]["duration_ms"], 0)
        self.assertEqual(doc["site"]["bounces"], 2)
        self.assertEqual(doc["site"]["sessions_sq"], 4)

    def test_custom_gap(self):
        lines = [obj(id="a", visitor="v", ts=T0, type="x"),
                 obj(id="b", visitor="v", ts=T0 + 60000, type="x")]
        self.assertEqual(run_lines(lines, gap=60000)[0]["site"]["sessions"], 1)
        self.assertEqual(run_lines(lines, gap=59999)[0]["site"]["sessions"], 2)

    def test_gap_measured_between_consecutive_beacons_in_ts_order(self):
        # written out of order; sorted: T0, T0+25min, T0+50min -> one session of 50 min
        doc, _ = run_lines([obj(id="c", visitor="v", ts=T0 + 3_000_000, type="x"),
                            obj(id="a", visitor="v", ts=T0, type="x"),
                            obj(id="b", visitor="v", ts=T0 + 1_500_000, type="x")])
        self.assertEqual(doc["site"]["sessions"], 1)
        self.assertEqual(doc["site"]["duration_ms"], 3_000_000)

    def test_attribution_earliest_beacon_and_id_tiebreak(self):
        doc, _ = run_lines([
            # same ts: "c1" sorts before "c2" bytewise, so exp3 = P although Q is written first
            obj(id="c2", visitor="v3", ts=T0, type="x", experiments={"exp3": "Q"}),
            obj(id="c1", visitor="v3", ts=T0, type="x", experiments={"exp3": "P"}),
            # later beacon of the session mentions another variant: ignored
            obj(id="c0", visitor="v3", ts=T0 + 1000, type="x", experiments={"exp3": "Q"}),
        ])
        self.assertEqual([v["variant"] for v in doc["experiments"]["exp3"]["variants"]], ["P"])
        self.assertEqual(doc["experiments"]["exp3"]["variants"][0]["events"], 3)

    def test_id_order_is_bytewise_utf8(self):
        # "Z" (0x5a) < "a" (0x61) < "é" (0xc3 0xa9)
        doc, _ = run_lines([
            obj(id="é", visitor="v", ts=T0, type="x", experiments={"e": "3"}),
            obj(id="a", visitor="v", ts=T0, type="x", experiments={"e": "2"}),
            obj(id="Z", visitor="v", ts=T0, type="x", experiments={"e": "1"}),
        ])
        self.assertEqual([v["variant"] for v in doc["experiments"]["e"]["variants"]], ["1"])


class ScenarioTest(unittest.TestCase):
    """Four visitors, three experiments, a duplicate, bad rows, three files (one zstd)."""

    @classmethod
    def setUpClass(cls):
        a = b"".join(x + b"\n" for x in [
            obj(id="a1", visitor="v1", ts=T0, type="pageview", experiments={"exp1": "A"}),
            obj(id="a2", visitor="v1", ts=T0 + GAP, type="click", experiments={"exp1": "B"}),
            obj(id="a3", visitor="v1", ts=T0 + 2 * GAP + 1, type="conversion", value=10,
                experiments={"exp1": "B"}),
            obj(id="b1", visitor="v2", ts=T0, type="pageview", experiments={"exp1": "A", "exp2": "X"}),
            obj(id="b2", visitor="v2", ts=T0 + 1000, type="conversion", value=2.5),
        ])
        b = (obj(id="b0", visitor="v2", ts=T0 + 1000, type="pageview", experiments={"exp2": "Y"}) + b"\r\n"
             + obj(id="b2", visitor="zz", ts=T0, type="conversion", value=99) + b"\n"
             + obj(id="c2", visitor="v3", ts=T0 + 5000, type="PageView", experiments={"exp3": "Q"}) + b"\n"
             + b"\n"
             + obj(id="z1", visitor="v4", ts="x", type="pageview") + b"\n")
        c = (obj(id="c1", visitor="v3", ts=T0 + 5000, type="pageview", value=7, experiments={"exp3": "P"})
             + b"\n" + obj(id="z1", visitor="v4", ts=T0 + 48 * 3600000, type="conversion"))  # no final \n
        cls.b = b
        cls.doc, cls.bad = run_files({"a.ndjson": a, "sub/b.ndjson": b, "sub/c.ndjson.zst": c,
                                      "notes.txt": b"junk\n", "sub/d.json": b"junk\n"})

    def test_input(self):
        self.assertEqual(self.doc["input"], {
            "lines": 12, "bad_rows": 2, "duplicates": 1, "valid_beacons": 9,
            "bad_rows_by_reason": {"line.empty": 1, "ts.not_integer": 1}})

    def test_bad_rows(self):
        lines = self.b.split(b"\n")
        self.assertEqual(len(self.bad), 2)
        self.assertEqual(self.bad[0]["reason"], "line.empty")
        self.assertEqual(self.bad[0]["source"], "sub/b.ndjson")
        self.assertEqual(self.bad[0]["line"], 4)
        self.assertEqual(self.bad[0]["offset"], sum(len(x) + 1 for x in lines[:3]))
        self.assertEqual(self.bad[1]["line"], 5)
        self.assertEqual(self.bad[1]["offset"], self.b.index(b'{"id":"z1"'))

    def test_site(self):
        self.assertEqual(self.doc["site"], {
            "visitors": 4, "sessions": 5, "events": 9, "pageviews": 4, "conversions": 3,
            "revenue": 12.5, "bounces": 2, "duration_ms": 1801000, "converted_visitors": 3,
            "sessions_sq": 7, "conversions_sq": 3, "sessions_x_conversions": 4, "revenue_sq": 106.25})

    def test_experiments(self):
        e = self.doc["experiments"]
        self.assertEqual(sorted(e), ["exp1", "exp2", "exp3"])
        self.assertEqual(e["exp1"]["visitors_in_multiple_variants"], 1)
        self.assertEqual(e["exp1"]["variants"], [
            {"variant": "A", "visitors": 2, "sessions": 2, "events": 5, "pageviews": 3,
             "conversions": 1, "revenue": 2.5, "bounces": 0, "duration_ms": 1801000,
             "visitors_in_multiple_variants": 1, "converted_visitors": 1, "sessions_sq": 2,
             "conversions_sq": 1, "sessions_x_conversions": 1, "revenue_sq": 6.25},
            {"variant": "B", "visitors": 1, "sessions": 1, "events": 1, "pageviews": 0,
             "conversions": 1, "revenue": 10.0, "bounces": 1, "duration_ms": 0,
             "visitors_in_multiple_variants": 1, "converted_visitors": 1, "sessions_sq": 1,
             "conversions_sq": 1, "sessions_x_conversions": 1, "revenue_sq": 100.0}])
        # b0 (exp2=Y) is later than b1 (exp2=X) in the same session
        self.assertEqual([v["variant"] for v in e["exp2"]["variants"]], ["X"])
        self.assertEqual(e["exp2"]["variants"][0]["events"], 3)
        self.assertEqual(e["exp2"]["visitors_in_multiple_variants"], 0)
        p = e["exp3"]["variants"]
        self.assertEqual([v["variant"] for v in p], ["P"])
        self.assertEqual((p[0]["pageviews"], p[0]["conversions"], p[0]["revenue"]), (1, 0, 0.0))

    def test_hourly(self):
        rows = {(r["experiment"], r["variant"], r["hour"]): r for r in self.doc["hourly"]}
        self.assertEqual(sorted(rows, key=str), sorted([
            (None, None, "2023-11-14T22:00:00Z"), (None, None, "2023-11-14T23:00:00Z"),
            (None, None, "2023-11-16T22:00:00Z"), ("exp1", "A", "2023-11-14T22:00:00Z"),
            ("exp1", "B", "2023-11-14T23:00:00Z"), ("exp2", "X", "2023-11-14T22:00:00Z"),
            ("exp3", "P", "2023-11-14T22:00:00Z")], key=str))
        r = rows[(None, None, "2023-11-14T22:00:00Z")]
        self.assertEqual((r["visitors"], r["sessions"], r["events"], r["pageviews"], r["conversions"],
                          r["revenue"], r["duration_ms"], r["sessions_sq"], r["revenue_sq"]),
                         (3, 3, 7, 4, 1, 2.5, 1801000, 3, 6.25))
        r = rows[(None, None, "2023-11-16T22:00:00Z")]
        self.assertEqual((r["conversions"], r["revenue"], r["converted_visitors"]), (1, 0.0, 1))

    def test_uniques(self):
        u = self.doc["uniques"]
        site = [r for r in u if r["experiment"] is None]
        # v1,v2,v3 in hour 22 (day 14); v1 also in 23; v4 in hour 22 of day 16
        self.assertEqual(len(site), 25 + 24)
        self.assertEqual((site[0]["hour"], site[0]["uniques_1h"], site[0]["uniques_24h"]),
                         ("2023-11-14T22:00:00Z", 3, 3))
        self.assertEqual((site[1]["uniques_1h"], site[1]["uniques_24h"]), (1, 3))
        self.assertEqual((site[23]["hour"], site[23]["uniques_1h"], site[23]["uniques_24h"]),
                         ("2023-11-15T21:00:00Z", 0, 3))
        self.assertEqual((site[24]["hour"], site[24]["uniques_24h"]), ("2023-11-15T22:00:00Z", 1))
        self.assertEqual((site[25]["hour"], site[25]["uniques_1h"]), ("2023-11-16T22:00:00Z", 1))
        self.assertEqual(site[-1]["hour"], "2023-11-17T21:00:00Z")
        b = [r for r in u if r["experiment"] == "exp1" and r["variant"] == "B"]
        self.assertEqual((len(b), b[0]["hour"], b[0]["uniques_1h"]), (24, "2023-11-14T23:00:00Z", 1))
        self.assertEqual(len(u), 49 + 4 * 24)

    def test_compare_self(self):
        with redirect_stdout(io.StringIO()):
            c = compare.compare(self.doc, json.loads(json.dumps(self.doc)))
        self.assertEqual(c.diffs, 0)
        self.assertGreater(c.checked, 500)


class DuplicateAndOrderTest(unittest.TestCase):
    def test_bad_row_does_not_claim_id_and_first_valid_wins(self):
        doc, _ = run_lines([
            obj(id="x", visitor="v1", ts="bad", type="t"),
            obj(id="x", visitor="v2", ts=T0, type="t"),
            obj(id="x", visitor="v3", ts=T0, type="t"),
            obj(id="x", visitor="v2", ts="bad", type="t"),
        ])
        self.assertEqual(doc["input"]["duplicates"], 1)
        self.assertEqual(doc["input"]["bad_rows"], 2)
        self.assertEqual(doc["site"]["visitors"], 1)

    def test_files_read_in_bytewise_relative_path_order(self):
        # "sub.ndjson" < "sub/x.ndjson" because '.' (0x2e) < '/' (0x2f)
        doc, _ = run_files({"sub/x.ndjson": obj(id="d", visitor="late", ts=T0, type="t") + b"\n",
                            "sub.ndjson": obj(id="d", visitor="early", ts=T0, type="t") + b"\n",
                            "B.ndjson.zst": obj(id="e", visitor="zst", ts=T0, type="t")})
        self.assertEqual(doc["input"], {"lines": 3, "bad_rows": 0, "duplicates": 1,
                                        "valid_beacons": 2, "bad_rows_by_reason": {}})
        with tempfile.TemporaryDirectory() as d:
            write_files(d, {"sub/x.ndjson": b"", "sub.ndjson": b"", "B.ndjson.zst": b""})
            self.assertEqual([s for s, _ in reference.list_inputs(d)],
                             ["B.ndjson.zst", "sub.ndjson", "sub/x.ndjson"])

    def test_line_splitting(self):
        doc, bad = run_files({"f.ndjson": b"\n\n" + obj(id="a", visitor="v", ts=T0, type="t")})
        self.assertEqual(doc["input"]["lines"], 3)
        self.assertEqual([(r["line"], r["offset"]) for r in bad], [(1, 0), (2, 1)])
        doc, _ = run_files({"f.ndjson": b""})
        self.assertEqual(doc["input"]["lines"], 0)

    def test_too_long_bad_row_record(self):
        long = b"x" * 70000
        _, bad = run_lines([long])
        self.assertEqual(bad[0]["reason"], "line.too_long")
        self.assertEqual(bad[0]["length"], 70000)
        self.assertTrue(bad[0]["truncated"])
        self.assertEqual(len(base64.b64decode(bad[0]["payload_b64"])), 65536)


class UniquesTest(unittest.TestCase):
    def test_rolling_window_edges(self):
        # beacons in hours 0, 23 and 47: the 24h window H-23..H holds one of them up to hour 70
        rows = reference.rolling_uniques({"v": {100, 123, 147}})
        self.assertEqual([r[0] for r in rows], list(range(100, 171)))
        self.assertTrue(all(r[2] == 1 for r in rows))
        self.assertEqual([r[0] for r in rows if r[1]], [100, 123, 147])

    def test_beacon_hours_not_session_hour(self):
        # one session 22:50 -> 23:10: hourly has one row (hour of start), uniques count hour 23 too
        h22 = 1699999200000  # 2023-11-14T22:00:00Z
        doc, _ = run_lines([obj(id="a", visitor="v", ts=h22 + 50 * 60000, type="x", experiments={"e": "A"}),
                            obj(id="b", visitor="v", ts=h22 + 70 * 60000, type="x")])
        self.assertEqual([(r["experiment"], r["hour"]) for r in doc["hourly"]],
                         [(None, "2023-11-14T22:00:00Z"), ("e", "2023-11-14T22:00:00Z")])
        for key in (None, "e"):
            rows = [r for r in doc["uniques"] if r["experiment"] == key]
            self.assertEqual([(r["hour"], r["uniques_1h"], r["uniques_24h"]) for r in rows[:3]],
                             [("2023-11-14T22:00:00Z", 1, 1), ("2023-11-14T23:00:00Z", 1, 1),
                              ("2023-11-15T00:00:00Z", 0, 1)])
            self.assertEqual(len(rows), 25)

    def test_against_brute_force(self):
        import random
        rnd = random.Random(7)
        for _ in range(200):
            vh = {"v%d" % i: {rnd.randrange(0, 80) for _ in range(rnd.randrange(1, 5))}
                  for i in range(rnd.randrange(1, 6))}
            want = []
            for h in range(0, 80 + 23):
                u1 = sum(1 for hs in vh.values() if h in hs)
                u24 = sum(1 for hs in vh.values() if any(h - 23 <= x <= h for x in hs))
                if u24:
                    want.append((h, u1, u24))
            self.assertEqual(reference.rolling_uniques(vh), want)


class RevenueTest(unittest.TestCase):
    def test_exact_sums(self):
        lines = [obj(id="c%d" % i, visitor="v", ts=T0 + i, type="conversion", value=0.1)
                 for i in range(10)]
        doc, _ = run_lines(lines)
        self.assertEqual(doc["site"]["revenue"], 1.0)  # naive left-to-right sum: 0.9999999999999999
        self.assertEqual(doc["site"]["revenue_sq"], 1.0)
        self.assertEqual(doc["site"]["conversions"], 1)  # one session with ten conversion beacons

        doc, _ = run_lines([obj(id="a", visitor="v1", ts=T0, type="conversion", value=1e16),
                            obj(id="b", visitor="v2", ts=T0, type="conversion", value=1.0),
                            obj(id="c", visitor="v3", ts=T0, type="conversion", value=1.0)])
        self.assertEqual(doc["site"]["revenue"], 10000000000000002.0)
        self.assertEqual(doc["site"]["revenue_sq"], math.fsum([1e32, 1.0, 1.0]))

    def test_missing_value_and_non_conversion_value(self):
        doc, _ = run_lines([obj(id="a", visitor="v", ts=T0, type="conversion"),
                            obj(id="b", visitor="v", ts=T0 + 1, type="pageview", value=5),
                            obj(id="c", visitor="w", ts=T0, type="Conversion", value=5)])
        self.assertEqual((doc["site"]["conversions"], doc["site"]["revenue"]), (1, 0.0))
        self.assertEqual(doc["site"]["converted_visitors"], 1)


class CompareTest(unittest.TestCase):
    def test_differences(self):
        doc, _ = run_lines([obj(id="a", visitor="v", ts=T0, type="conversion", value=1,
                                experiments={"e": "A"})])
        other = json.loads(json.dumps(doc))
        other["site"]["revenue"] = 1  # int vs float: equal
        with redirect_stdout(io.StringIO()):
            self.assertEqual(compare.compare(doc, other).diffs, 0)
        other["site"]["events"] = 2
        other["experiments"]["e"]["variants"][0]["revenue_sq"] = 1.0000000000000002
        other["hourly"].pop()
        other["uniques"][0]["uniques_24h"] = 7
        out = io.StringIO()
        with redirect_stdout(out):
            c = compare.compare(doc, other)
        self.assertEqual(c.diffs, 4, out.getvalue())
        self.assertIn("site.events: expected 1, actual 2", out.getvalue())
        del other["hourly"]
        with redirect_stdout(io.StringIO()):
            self.assertEqual(compare.compare(doc, other).diffs, 4)  # missing section is one
            self.assertEqual(compare.compare(doc, other, totals_only=True).diffs, 2)


if __name__ == "__main__":
    unittest.main()
