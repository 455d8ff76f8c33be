#!/usr/bin/env python3
"""Compare two Duet figure documents (reference.py output vs `duet batch` output).

Usage:
    python3 compare.py EXPECTED.json ACTUAL.json [--max-diffs 50] [--totals-only] [--ignore KEY]

Numbers compare exactly (3 == 3.0; 0.1 != 0.10000000000000002). Prints each
difference as `path: expected X, actual Y` and a summary line; exit status 0 only
when there is no difference.
"""

from __future__ import annotations

import argparse
import json
import sys

MISSING = object()


def _fmt(v) -> str:
    if v is MISSING:
        return "<missing>"
    if isinstance(v, float):
        return repr(v)
    return json.dumps(v, sort_keys=True)


class Comparer:
    def __init__(self, max_diffs: int):
        self.max_diffs = max_diffs
        self.checked = 0
        self.diffs = 0

    def diff(self, path: str, expected, actual) -> None:
        self.diffs += 1
        if self.diffs <= self.max_diffs:
            print("%s: expected %s, actual %s" % (path, _fmt(expected), _fmt(actual)))
        elif self.diffs == self.max_diffs + 1:
            print("... (further differences not shown)")

    def note(self, path: str, text: str) -> None:
        self.diffs += 1
        if self.diffs <= self.max_diffs:
            print("%s: %s" % (path, text))

    @staticmethod
    def _is_number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def value(self, path: str, e, a) -> None:
        """Compare two JSON values recursively (objects by key, arrays by index)."""
        if isinstance(e, dict) and isinstance(a, dict):
            for k in sorted(set(e) | set(a)):
                self.value("%s.%s" % (path, k) if path else k, e.get(k, MISSING), a.get(k, MISSING))
            return
        if isinstance(e, list) and isinstance(a, list):
            if len(e) != len(a):
                self.checked += 1
                self.diff(path + ".length", len(e), len(a))
            for i in range(min(len(e), len(a))):
                self.value("%s[%d]" % (path, i), e[i], a[i])
            return
        self.checked += 1
        if e is MISSING or a is MISSING:
            self.diff(path, e, a)
        elif self._is_number(e) and self._is_number(a):
            # Python compares int and float exactly (no rounding of the int).
            if not (e == a):
                if not (e != e and a != a):  # NaN == NaN for our purposes
                    self.diff(path, e, a)
        elif type(e) is not type(a) or e != a:
            self.diff(path, e, a)

    def experiments(self, e, a) -> None:
        if not isinstance(e, dict) or not isinstance(a, dict):
            self.checked += 1
            self.diff("experiments", e, a)
            return
        for name in sorted(set(e) | set(a)):
            p = "experiments[%s]" % json.dumps(name)
            ee, aa = e.get(name, MISSING), a.get(name, MISSING)
            if ee is MISSING or aa is MISSING:
                self.checked += 1
                self.note(p, "expected %s, actual %s" % (
                    "present" if ee is not MISSING else "missing",
                    "present" if aa is not MISSING else "missing"))
                continue
            if not isinstance(ee, dict) or not isinstance(aa, dict):
                self.value(p, ee, aa)
                continue
            for k in sorted((set(ee) | set(aa)) - {"variants"}):
                self.value("%s.%s" % (p, k), ee.get(k, MISSING), aa.get(k, MISSING))
            ev = self._index(p + ".variants", ee.get("variants", []), lambda r: r.get("variant"))
            av = self._index(p + ".variants", aa.get("variants", []), lambda r: r.get("variant"))
            for v in sorted(set(ev) | set(av), key=lambda x: json.dumps(x)):
                vp = "%s.variants[%s]" % (p, json.dumps(v))
                er, ar = ev.get(v, MISSING), av.get(v, MISSING)
                if er is MISSING or ar is MISSING:
                    self.checked += 1
                    self.note(vp, "expected %s, actual %s" % (
                        "present" if er is not MISSING else "missing",
                        "present" if ar is not MISSING else "missing"))
                    continue
                self.value(vp, er, ar)

    def _index(self, path, rows, keyf) -> dict:
        out = {}
        if not isinstance(rows, list):
            self.note(path, "not an array: %s" % _fmt(rows))
            return out
        for r in rows:
            k = keyf(r)
            if k in out:
                self.note(path, "row %s given twice" % json.dumps(k))
                continue
            out[k] = r
        return out

    def rows(self, name: str, e, a) -> None:
        keyf = lambda r: (r.get("experiment"), r.get("variant"), r.get("hour"))
        ei = self._index(name, e, keyf)
        ai = self._index(name, a, keyf)
        for k in sorted(set(ei) | set(ai), key=lambda x: json.dumps(x)):
            p = "%s[%s/%s/%s]" % (name, *(("null" if x is None else x) for x in k))
            er, ar = ei.get(k, MISSING), ai.get(k, MISSING)
            if er is MISSING or ar is MISSING:
                self.checked += 1
                self.note(p, "expected %s, actual %s" % (
                    "present" if er is not MISSING else "missing",
                    "present" if ar is not MISSING else "missing"))
                continue
            self.value(p, er, ar)


def compare(expected: dict, actual: dict, max_diffs: int = 50, totals_only: bool = False) -> Comparer:
    c = Comparer(max_diffs)
    c.experiments(expected.get("experiments", MISSING), actual.get("experiments", MISSING))
    for section in ("site", "input"):
        c.value(section, expected.get(section, MISSING), actual.get(section, MISSING))
    for section in ("hourly", "uniques"):
        e, a = expected.get(section, MISSING), actual.get(section, MISSING)
        if totals_only:
            if e is MISSING or a is MISSING:
                print("%s: section missing in %s document (ignored: --totals-only)" % (
                    section, "both" if e is MISSING and a is MISSING
                    else "expected" if e is MISSING else "actual"))
            continue
        if e is MISSING or a is MISSING:
            c.checked += 1
            c.note(section, "section missing in %s document" % (
                "both" if e is MISSING and a is MISSING
                else "expected" if e is MISSING else "actual"))
            continue
        c.rows(section, e, a)
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compare two Duet figure documents")
    ap.add_argument("expected")
    ap.add_argument("actual")
    ap.add_argument("--max-diffs", type=int, default=50, help="differences to print (all are counted)")
    ap.add_argument("--totals-only", action="store_true",
                    help="compare experiments, site and input only (ignore hourly and uniques)")
    ap.add_argument("--ignore", action="append", default=[], metavar="KEY",
                    help="leave out a top-level section (e.g. input), on both sides; repeatable")
    args = ap.parse_args(argv)
    with open(args.expected, encoding="utf-8") as f:
        expected = json.load(f)
    with open(args.actual, encoding="utf-8") as f:
        actual = json.load(f)
    for key in args.ignore:  # the same on both sides: nothing to report there
        if key in expected:
            actual[key] = expected[key]
        else:
            actual.pop(key, None)
    c = compare(expected, actual, args.max_diffs, args.totals_only)
    print("compare: %d fields checked, %d differences" % (c.checked, c.diffs))
    return 0 if c.diffs == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
