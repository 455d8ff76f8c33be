#!/usr/bin/env python3
"""Independent reference implementation of Duet beacon contract v1.

Written only from docs/beacon-contract.md, never from the C++ sources, so that
tests can check `duet batch` figure by figure against a second reading of the
contract.  Python 3.11, standard library only.

Usage:
    python3 reference.py --input PATH [--session-gap-ms 1800000] [--out FILE]
                         [--bad-rows FILE]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import os
import re
import subprocess
import sys
import threading

# --------------------------------------------------------------------------
# Constants from the contract

MAX_LINE_BYTES = 65536
TS_MIN = 946684800000
TS_MAX = 4102444800000
INT_MIN = -(2 ** 63)
INT_MAX = 2 ** 64 - 1
JSON_WS = b" \t\r\n"
UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_SESSION_GAP_MS = 1_800_000
HOUR_MS = 3_600_000

ID_MAX = 64
VISITOR_MAX = 128
TYPE_MAX = 32
EXPERIMENTS_MAX_ENTRIES = 32
EXPERIMENT_NAME_MAX = 64
VARIANT_MAX = 64
OPTIONAL_STRING_MAX = 2048

KNOWN_FIELDS = frozenset(
    ("id", "visitor", "ts", "type", "experiments", "value", "page", "device", "referrer")
)

ALL_REASONS = (
    "line.too_long", "utf8.invalid", "line.empty", "json.syntax", "json.not_object",
    "id.missing", "id.not_string", "id.empty", "id.too_long", "id.duplicate_key",
    "visitor.missing", "visitor.not_string", "visitor.empty", "visitor.too_long",
    "visitor.duplicate_key",
    "ts.missing", "ts.not_integer", "ts.out_of_range", "ts.duplicate_key",
    "type.missing", "type.not_string", "type.empty", "type.too_long", "type.duplicate_key",
    "experiments.not_object", "experiments.too_many", "experiments.name_empty",
    "experiments.name_too_long", "experiments.name_duplicate",
    "experiments.variant_not_string", "experiments.variant_empty",
    "experiments.variant_too_long", "experiments.duplicate_key",
    "value.not_number", "value.negative", "value.duplicate_key",
    "page.not_string", "page.too_long", "page.duplicate_key",
    "device.not_string", "device.too_long", "device.duplicate_key",
    "referrer.not_string", "referrer.too_long", "referrer.duplicate_key",
)

# --------------------------------------------------------------------------
# JSON parsing with the contract's extra strictness


class _JsonSyntax(Exception):
    """Raised from parser hooks: the literal makes the line json.syntax."""


class Obj:
    """A JSON object, kept as the list of (key, value) pairs in written order
    (so that duplicate keys stay visible)."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _parse_int(literal: str) -> int:
    digits = len(literal) - (1 if literal[0] == "-" else 0)
    if digits > 20:  # 2**64-1 has 20 digits; also avoids the int-str digit limit
        raise _JsonSyntax()
    v = int(literal)
    if v < INT_MIN or v > INT_MAX:
        raise _JsonSyntax()
    return v


def _parse_float(literal: str) -> float:
    v = float(literal)  # correctly rounded; overflow gives +-inf
    if math.isinf(v):
        raise _JsonSyntax()
    return v


def _parse_constant(literal: str):
    raise _JsonSyntax()  # NaN, Infinity, -Infinity


_DECODER = json.JSONDecoder(
    object_pairs_hook=Obj,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_parse_constant,
    strict=True,  # control characters inside strings are errors
)

# A surrogate can only come out of a \uXXXX escape with XXXX in D800-DFFF.
# This is a cheap pre-filter; the real check walks the decoded value.
_SURROGATE_HINT = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE_CHAR = re.compile("[\ud800-\udfff]")


def _has_surrogate(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE_CHAR.search(v):
                return True
        elif isinstance(v, Obj):
            for k, x in v.pairs:
                if _SURROGATE_CHAR.search(k):
                    return True
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _blen(s: str) -> int:
    """UTF-8 byte length (strings here never hold surrogates)."""
    return len(s) if s.isascii() else len(s.encode("utf-8"))


# --------------------------------------------------------------------------
# Line classification


class Beacon:
    __slots__ = ("id", "visitor", "ts", "type", "experiments", "value")

    def __init__(self, id_, visitor, ts, type_, experiments, value):
        self.id = id_
        self.visitor = visitor
        self.ts = ts
        self.type = type_
        self.experiments = experiments  # tuple of (name, variant), written order
        self.value = value  # float or None


def classify(line: bytes):
    """Return (reason, None) for a bad row, or (None, Beacon) for a valid line.

    `line` excludes the terminating b'\\n'."""
    if len(line) > MAX_LINE_BYTES:
        return "line.too_long", None
    try:
        text = line.decode("utf-8")  # strict: no overlongs, no encoded surrogates
    except UnicodeDecodeError:
        return "utf8.invalid", None
    if not line.strip(JSON_WS):
        return "line.empty", None
    if line.startswith(UTF8_BOM):
        return "json.syntax", None
    try:
        doc = _DECODER.decode(text)  # leading/trailing JSON whitespace allowed, nothing else
    except (ValueError, _JsonSyntax, RecursionError, OverflowError):
        return "json.syntax", None
    if _SURROGATE_HINT.search(text) and _has_surrogate(doc):
        return "json.syntax", None
    if not isinstance(doc, Obj):
        return "json.not_object", None
    return _check_fields(doc.pairs)


def _check_fields(pairs):
    fields = {}
    dup = set()
    for k, v in pairs:
        if k in KNOWN_FIELDS:
            if k in fields:
                dup.add(k)
            else:
                fields[k] = v

    # id, visitor: required strings with byte bounds
    out = {}
    for name, max_len in (("id", ID_MAX), ("visitor", VISITOR_MAX)):
        if name in dup:
            return name + ".duplicate_key", None
        if name not in fields:
            return name + ".missing", None
        v = fields[name]
        if not isinstance(v, str):
            return name + ".not_string", None
        n = _blen(v)
        if n == 0:
            return name + ".empty", None
        if n > max_len:
            return name + ".too_long", None
        out[name] = v

    # ts: a JSON integer literal (bool is not an integer; floats never are)
    if "ts" in dup:
        return "ts.duplicate_key", None
    if "ts" not in fields:
        return "ts.missing", None
    ts = fields["ts"]
    if type(ts) is not int:
        return "ts.not_integer", None
    if ts < TS_MIN or ts > TS_MAX:
        return "ts.out_of_range", None

    # type
    if "type" in dup:
        return "type.duplicate_key", None
    if "type" not in fields:
        return "type.missing", None
    typ = fields["type"]
    if not isinstance(typ, str):
        return "type.not_string", None
    n = _blen(typ)
    if n == 0:
        return "type.empty", None
    if n > TYPE_MAX:
        return "type.too_long", None

    # experiments (optional)
    experiments = ()
    if "experiments" in dup:
        return "experiments.duplicate_key", None
    if "experiments" in fields:
        e = fields["experiments"]
        if not isinstance(e, Obj):
            return "experiments.not_object", None
        if len(e.pairs) > EXPERIMENTS_MAX_ENTRIES:
            return "experiments.too_many", None
        seen = set()
        lst = []
        for ename, variant in e.pairs:
            n = _blen(ename)
            if n == 0:
                return "experiments.name_empty", None
            if n > EXPERIMENT_NAME_MAX:
                return "experiments.name_too_long", None
            if ename in seen:
                return "experiments.name_duplicate", None
            seen.add(ename)
            if not isinstance(variant, str):
                return "experiments.variant_not_string", None
            n = _blen(variant)
            if n == 0:
                return "experiments.variant_empty", None
            if n > VARIANT_MAX:
                return "experiments.variant_too_long", None
            lst.append((ename, variant))
        experiments = tuple(lst)

    # value (optional)
    value = None
    if "value" in dup:
        return "value.duplicate_key", None
    if "value" in fields:
        v = fields["value"]
        if type(v) is not int and type(v) is not float:
            return "value.not_number", None
        if v < 0:
            return "value.negative", None
        value = float(v)  # int -> nearest double; cannot overflow (|v| < 2**64)
        if value == 0.0:
            value = 0.0  # -0 is accepted as 0

    # page, device, referrer (optional strings)
    for name in ("page", "device", "referrer"):
        if name in dup:
            return name + ".duplicate_key", None
        if name in fields:
            v = fields[name]
            if not isinstance(v, str):
                return name + ".not_string", None
            if _blen(v) > OPTIONAL_STRING_MAX:
                return name + ".too_long", None

    return None, Beacon(out["id"], out["visitor"], ts, typ, experiments, value)


# --------------------------------------------------------------------------
# Input


def list_inputs(root: str):
    """[(source, full_path)] in read order."""
    if os.path.isdir(root):
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            for fn in filenames:
                if fn.startswith((".", "_")):
                    continue  # files being written, manifests: not input (contract, Framing)
                if fn.endswith(".ndjson") or fn.endswith(".ndjson.zst"):
                    full = os.path.join(dirpath, fn)
                    if not os.path.isfile(full):
                        continue
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    found.append((rel, full))
        found.sort(key=lambda t: os.fsencode(t[0]))
        return found
    if os.path.isfile(root):
        return [(os.path.basename(root), root)]
    raise FileNotFoundError(root)


def read_bytes(path: str) -> bytes:
    if path.endswith(".zst"):
        r = subprocess.run(["zstd", "-dc", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError("zstd -dc %s failed: %s" % (path, r.stderr.decode(errors="replace")))
        return r.stdout
    with open(path, "rb") as f:
        return f.read()


def split_lines(data: bytes):
    if not data:
        return []
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return lines


# --------------------------------------------------------------------------
# Aggregation


def safe_fsum(values) -> float:
    try:
        return math.fsum(values)
    except OverflowError:  # exact sum of non-negative doubles beyond DBL_MAX
        return math.inf


class Agg:
    __slots__ = ("sessions", "events", "pageviews", "conversions", "bounces",
                 "duration_ms", "values", "per_visitor")

    def __init__(self):
        self.sessions = 0
        self.events = 0
        self.pageviews = 0
        self.conversions = 0
        self.bounces = 0
        self.duration_ms = 0
        self.values = []
        self.per_visitor = {}  # visitor -> [sessions, conversions, values]

    def add(self, visitor, s):
        self.sessions += 1
        self.events += s.events
        self.pageviews += s.pageviews
        self.conversions += s.converted
        self.bounces += s.events == 1
        self.duration_ms += s.duration
        self.values.extend(s.values)
        pv = self.per_visitor.get(visitor)
        if pv is None:
            pv = self.per_visitor[visitor] = [0, 0, []]
        pv[0] += 1
        pv[1] += s.converted
        pv[2].extend(s.values)

    def figures(self) -> dict:
        sessions_sq = conversions_sq = sxc = converted_visitors = 0
        rsq = []
        for ns, nc, vals in self.per_visitor.values():
            sessions_sq += ns * ns
            conversions_sq += nc * nc
            sxc += ns * nc
            converted_visitors += nc > 0
            r = safe_fsum(vals)
            rsq.append(r * r)
        return {
            "visitors": len(self.per_visitor),
            "sessions": self.sessions,
            "events": self.events,
            "pageviews": self.pageviews,
            "conversions": self.conversions,
            "revenue": safe_fsum(self.values),
            "bounces": self.bounces,
            "duration_ms": self.duration_ms,
            "converted_visitors": converted_visitors,
            "sessions_sq": sessions_sq,
            "conversions_sq": conversions_sq,
            "sessions_x_conversions": sxc,
            "revenue_sq": safe_fsum(rsq),
        }


class Session:
    __slots__ = ("start", "events", "pageviews", "converted", "duration", "values",
                 "attribution", "beacon_hours")


def make_session(beacons) -> Session:
    s = Session()
    s.start = beacons[0].ts
    s.events = len(beacons)
    s.duration = beacons[-1].ts - beacons[0].ts
    pv = 0
    values = []
    converted = 0
    attribution = {}
    hours = set()
    for b in beacons:
        if b.type == "pageview":
            pv += 1
        elif b.type == "conversion":
            converted = 1
            values.append(0.0 if b.value is None else b.value)
        for e, v in b.experiments:
            if e not in attribution:
                attribution[e] = v
        hours.add(b.ts // HOUR_MS)
    s.pageviews = pv
    s.converted = converted
    s.values = values
    s.attribution = attribution
    s.beacon_hours = hours
    return s


_hour_cache = {}


def hour_str(h: int) -> str:
    s = _hour_cache.get(h)
    if s is None:
        dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(hours=h)
        s = _hour_cache[h] = dt.strftime("%Y-%m-%dT%H:00:00Z")
    return s


def rolling_uniques(visitor_hours: dict):
    """visitor -> set of beacon hours  =>  sorted [(hour, u1h, u24h)] for u24h > 0."""
    one = {}
    diff = {}
    for hours in visitor_hours.values():
        hs = sorted(hours)
        for h in hs:
            one[h] = one.get(h, 0) + 1
        cs, ce = hs[0], hs[0] + 23
        for h in hs[1:]:
            if h <= ce + 1:
                ce = h + 23
            else:
                diff[cs] = diff.get(cs, 0) + 1
                diff[ce + 1] = diff.get(ce + 1, 0) - 1
                cs, ce = h, h + 23
        diff[cs] = diff.get(cs, 0) + 1
        diff[ce + 1] = diff.get(ce + 1, 0) - 1
    rows = []
    points = sorted(diff)
    cur = 0
    for i, p in enumerate(points):
        cur += diff[p]
        if cur > 0:
            end = points[i + 1]  # cur > 0 implies a later closing point exists
            for h in range(p, end):
                rows.append((h, one.get(h, 0), cur))
    return rows


# --------------------------------------------------------------------------
# Driver


def run(input_path: str, session_gap_ms: int = DEFAULT_SESSION_GAP_MS,
        bad_rows_out=None, progress=True) -> dict:
    by_reason = {}
    lines_total = 0
    duplicates = 0
    seen_ids = set()
    per_visitor = {}  # visitor -> [Beacon]

    for source, full in list_inputs(input_path):
        data = read_bytes(full)
        offset = 0
        for lineno, line in enumerate(split_lines(data), 1):
            lines_total += 1
            if progress and lines_total % 1_000_000 == 0:
                print("reference: %d lines" % lines_total, file=sys.stderr, flush=True)
            reason, b = classify(line)
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + 1
                if bad_rows_out is not None:
                    rec = {"reason": reason, "source": source, "line": lineno, "offset": offset}
                    if len(line) > MAX_LINE_BYTES:
                        rec["payload_b64"] = base64.b64encode(line[:MAX_LINE_BYTES]).decode("ascii")
                        rec["length"] = len(line)
                        rec["truncated"] = True
                    else:
                        rec["payload_b64"] = base64.b64encode(line).decode("ascii")
                    bad_rows_out.write(json.dumps(rec, sort_keys=True) + "\n")
            elif b.id in seen_ids:
                duplicates += 1
            else:
                seen_ids.add(b.id)
                lst = per_visitor.get(b.visitor)
                if lst is None:
                    per_visitor[b.visitor] = [b]
                else:
                    lst.append(b)
            offset += len(line) + 1
        del data

    totals = {}   # (E, V) -> Agg; (None, None) = site
    hourly = {}   # (E, V, hour) -> Agg
    uhours = {}   # (E, V) -> {visitor -> set(hours)}
    exp_variants = {}  # E -> {visitor -> set(V)}
    site = (None, None)
    totals[site] = Agg()

    def add_hours(key, visitor, hours):
        d = uhours.get(key)
        if d is None:
            d = uhours[key] = {}
        s = d.get(visitor)
        if s is None:
            d[visitor] = set(hours)
        else:
            s |= hours

    for visitor, beacons in per_visitor.items():
        # (ts, id): Python str order is code-point order == UTF-8 byte order
        beacons.sort(key=lambda b: (b.ts, b.id))
        groups = []
        cur = [beacons[0]]
        for prev, b in zip(beacons, beacons[1:]):
            if b.ts - prev.ts > session_gap_ms:
                groups.append(cur)
                cur = [b]
            else:
                cur.append(b)
        groups.append(cur)
        for g in groups:
            s = make_session(g)
            hour = s.start // HOUR_MS
            keys = [site] + list(s.attribution.items())
            for e, v in s.attribution.items():
                exp_variants.setdefault(e, {}).setdefault(visitor, set()).add(v)
            for k in keys:
                a = totals.get(k)
                if a is None:
                    a = totals[k] = Agg()
                a.add(visitor, s)
                hk = (k[0], k[1], hour)
                a = hourly.get(hk)
                if a is None:
                    a = hourly[hk] = Agg()
                a.add(visitor, s)
                add_hours(k, visitor, s.beacon_hours)

    # experiments
    experiments = {}
    for e in sorted(exp_variants):
        vmap = exp_variants[e]
        multi = {vis for vis, vs in vmap.items() if len(vs) >= 2}
        variants = []
        names = sorted({v for (ee, v) in totals if ee == e})
        for v in names:
            a = totals[(e, v)]
            f = a.figures()
            f["variant"] = v
            f["visitors_in_multiple_variants"] = sum(1 for vis in a.per_visitor if vis in multi)
            variants.append(f)
        experiments[e] = {"visitors_in_multiple_variants": len(multi), "variants": variants}

    site_fig = totals[site].figures()

    def sort_key(k):
        e, v = k[0], k[1]
        return (e is not None, e or "", v or "") + tuple(k[2:])

    hourly_rows = []
    for k in sorted(hourly, key=sort_key):
        a = hourly[k]
        if a.sessions == 0:
            continue
        f = a.figures()
        f["experiment"], f["variant"], f["hour"] = k[0], k[1], hour_str(k[2])
        hourly_rows.append(f)

    uniques_rows = []
    for k in sorted(uhours, key=sort_key):
        for h, u1, u24 in rolling_uniques(uhours[k]):
            uniques_rows.append({"experiment": k[0], "variant": k[1], "hour": hour_str(h),
                                 "uniques_1h": u1, "uniques_24h": u24})

    bad_rows = sum(by_reason.values())
    valid = sum(len(x) for x in per_visitor.values())
    assert lines_total == bad_rows + duplicates + valid
    return {
        "experiments": experiments,
        "site": site_fig,
        "input": {
            "lines": lines_total,
            "bad_rows": bad_rows,
            "duplicates": duplicates,
            "valid_beacons": valid,
            "bad_rows_by_reason": {r: n for r, n in sorted(by_reason.items()) if n > 0},
        },
        "hourly": hourly_rows,
        "uniques": uniques_rows,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Duet beacon contract v1 reference implementation")
    ap.add_argument("--input", required=True, help="NDJSON(.zst) file or folder (recursive)")
    ap.add_argument("--session-gap-ms", type=int, default=DEFAULT_SESSION_GAP_MS)
    ap.add_argument("--out", help="write the JSON document here (default: stdout)")
    ap.add_argument("--bad-rows", help="write bad rows here as NDJSON")
    args = ap.parse_args(argv)

    bad = open(args.bad_rows, "w", encoding="utf-8") if args.bad_rows else None
    try:
        doc = run(args.input, args.session_gap_ms, bad)
    finally:
        if bad is not None:
            bad.close()
    text = json.dumps(doc, sort_keys=True, indent=1) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    inp = doc["input"]
    print("reference: %d lines, %d valid, %d duplicates, %d bad rows"
          % (inp["lines"], inp["valid_beacons"], inp["duplicates"], inp["bad_rows"]),
          file=sys.stderr)
    return 0


def run_with_deep_stack(fn, *args, **kwargs):
    """Run fn in a thread with a large stack so that JSON nested as deeply as a
    64 KiB line allows parses (the contract sets no nesting limit)."""
    result = {}

    def target():
        try:
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller
            result["error"] = e

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 200_000))
    old_size = threading.stack_size()
    t = None
    for size in (1024 * 1024 * 1024, 256 * 1024 * 1024):
        try:
            threading.stack_size(size)
            t = threading.Thread(target=target)
            t.start()
            break
        except (ValueError, RuntimeError, MemoryError):
            t = None
        finally:
            threading.stack_size(old_size)
    if t is None:  # no big stack available: run here (deep nesting -> json.syntax)
        target()
    else:
        t.join()
    sys.setrecursionlimit(old_limit)
    if "error" in result:
        raise result["error"]
    return result["value"]


if __name__ == "__main__":
    sys.exit(run_with_deep_stack(main))
