"""Helpers of bench/predict.sh (run with the bench virtualenv's python).

  tool.py synthetic-model DIR          a model.ubj + meta.json trained here on synthetic rows, to
                                       run the Flask side without duet (predict.sh none)
  tool.py requests MODEL_DIR OUT [N]   N realistic feature objects, one JSON body a line, plus the
                                       edge cases of the encoding (device case, referrer hosts,
                                       float32 rounding)
  tool.py parity MODEL_DIR BODIES SUMMARY_OUT NAME=URL NAME=URL
                                       the same objects, alone and in batches, to both servers:
                                       probabilities must be equal as float32 (1 ulp tolerated);
                                       on a mismatch, names the fields that make the difference
  tool.py table WORK OUT.md             the Markdown table and the goals' verdicts from WORK's
                                       results.tsv, setup.md, parity.txt and commands.sh
"""

import http.client
import json
import os
import random
import struct
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app  # noqa: E402  (the encoder; app imports only the standard library at module level)

FIXED_COLUMNS = [
    "beacons", "pageviews", "clicks", "scrolls", "searches", "add_to_carts", "video_plays",
    "form_submits", "other_interactions", "seconds_since_start", "hour_of_day", "day_of_week",
    "device_desktop", "device_mobile", "device_tablet",
    "referrer_search", "referrer_social", "referrer_email", "referrer_other",
    "previous_sessions", "previous_conversions", "hours_since_previous_session",
]
SYNTHETIC_EXPERIMENTS = {"checkout_button": ["control", "treatment"],
                         "pricing_page": ["control", "v1", "v2"],
                         "search_ranking": ["control", "treatment"]}
REFERRERS = ["https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/",
             "https://www.facebook.com/", "https://t.co/", "https://newsletter.example.com/2026-11",
             "https://partner-blog.example.org/reviews", ""]
ULP_TOLERANCE = 1


# ---------------------------------------------------------------------------------------------
# synthetic-model

def synthetic_model(out_dir):
    import numpy as np
    import xgboost as xgb

    columns = FIXED_COLUMNS + [f"experiment:{e}={v}" for e, vs in SYNTHETIC_EXPERIMENTS.items()
                               for v in vs]
    objects = [realistic_object(random.Random(i), SYNTHETIC_EXPERIMENTS) for i in range(20000)]
    encoder = app.Encoder(columns)
    x = np.array([encoder.row(o) for o in objects], dtype=np.float32)
    rng = np.random.default_rng(7)
    col = {c: i for i, c in enumerate(columns)}
    v = np.nan_to_num(x)  # absent counts as 0 for the synthetic label only
    score = (0.08 * v[:, col["pageviews"]] + 0.9 * v[:, col["add_to_carts"]]
             + 0.6 * v[:, col["referrer_email"]] + 0.3 * v[:, col["device_desktop"]]
             + 0.4 * v[:, col["experiment:checkout_button=treatment"]]
             + 0.5 * v[:, col["previous_conversions"]] - 3.5)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-score))).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6,
                         "eta": 0.1, "nthread": 2, "seed": 42},
                        xgb.DMatrix(x, label=y, missing=np.nan), num_boost_round=100)
    os.makedirs(out_dir, exist_ok=True)
    booster.save_model(os.path.join(out_dir, "model.ubj"))
    with open(os.path.join(out_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump({"version": 1, "columns": columns, "trained_by": "bench/predict/tool.py"}, f)
    print(f"synthetic model: {len(x)} rows, {len(columns)} columns, 100 rounds -> {out_dir}")


# ---------------------------------------------------------------------------------------------
# requests

def experiments_of(columns):
    """{experiment: [variants]} from meta.json's experiment:<name>=<variant> columns."""
    out = {}
    for c in columns:
        if c.startswith(app.EXPERIMENT_PREFIX) and "=" in c:
            name, _, variant = c[len(app.EXPERIMENT_PREFIX):].partition("=")
            out.setdefault(name, []).append(variant)
    return out


def realistic_object(rng, experiments):
    """A feature object shaped like a session of `duet generate`'s traffic."""
    beacons = min(1 + int(rng.expovariate(1 / 9)), 120)
    kinds = rng.choices(["pageviews", "clicks", "scrolls", "searches", "add_to_carts",
                         "video_plays", "form_submits", "other_interactions"],
                        weights=[50, 20, 13, 4, 2, 2.5, 2.5, 1], k=beacons)
    o = {"beacons": beacons}
    for k in ["pageviews", "clicks", "scrolls", "searches", "add_to_carts", "video_plays",
              "form_submits", "other_interactions"]:
        o[k] = kinds.count(k)
    o["seconds_since_start"] = 0 if beacons == 1 else round(rng.uniform(1, 40 * beacons), 3)
    o["hour_of_day"] = rng.randrange(24)
    o["day_of_week"] = rng.randrange(7)
    device = rng.choices(["desktop", "mobile", "tablet", None], weights=[49, 33, 17, 1])[0]
    if device:
        o["device"] = device
    referrer = rng.choices(REFERRERS + [None], weights=[24, 5, 3, 7, 4, 5, 4, 18, 30])[0]
    if referrer is not None:
        o["referrer"] = referrer
    o["previous_sessions"] = min(int(rng.expovariate(1 / 2)), 50)
    o["previous_conversions"] = sum(rng.random() < 0.1 for _ in range(o["previous_sessions"]))
    if o["previous_sessions"]:
        o["hours_since_previous_session"] = round(rng.expovariate(1 / 30), 4)
    chosen = {name: rng.choice(variants) for name, variants in experiments.items()
              if rng.random() < 0.9}
    if chosen:
        o["experiments"] = chosen
    for field in list(o):  # a few absent optional values (their training defaults on both sides)
        if field not in ("beacons", "hour_of_day", "day_of_week") and rng.random() < 0.03:
            del o[field]
    return o


def edge_objects(experiments):
    """Inputs where a careless encoder would differ from the documented one."""
    name, variants = next(iter(experiments.items()), ("none", ["control"]))
    base = {"beacons": 12, "pageviews": 6, "clicks": 3, "scrolls": 2, "add_to_carts": 1,
            "seconds_since_start": 311.25, "hour_of_day": 20, "day_of_week": 4,
            "experiments": {name: variants[-1]}}
    req = {"hour_of_day": 0, "day_of_week": 0}  # required with beacons (docs/model.md)
    out = [dict(req, beacons=1), dict(req, beacons=1, device="mobile"),
           dict(req, beacons=2, experiments={}),
           dict(req, beacons=3, experiments={name: "no-such-variant", "no_such_experiment": "x"})]
    for device in [" Mobile ", "DESKTOP", "TabLet", "des\u212atop", "smart-tv", "", "\tmobile"]:
        out.append(dict(base, device=device))
    for referrer in ["https://www.google.co.uk/search?q=shoes", "http://google.de", "GOOGLE.COM",
                     "https://m.facebook.com/story", "https://www.x.com/", "https://notx.com/",
                     "https://mail.yahoo.com/inbox", "https://mail.example.com/",
                     "https://www.newsletter.example.org/", "https://shop.example.com/?utm_medium=email",
                     "https://shop.example.com/?UTM_MEDIUM=EMAIL", "https://www.bing.com:443/search",
                     "android-app://com.google.android.gm/", "www.reddit.com/r/shoes",
                     "https://sub.tiktok.com/@x", "https://ecosia.org#q", "https://m.www.google.com/",
                     "https://www.m.facebook.com/", "https://user@www.google.com/", "https:///path",
                     "newsletter", "https://example.com/newsletters", "https://t.co.example.com/",
                     "https://" + "a" * 250 + ".newsletter.example.com/",
                     "https://" + "b" * 250 + ".google.com/search"]:
        out.append(dict(base, referrer=referrer))
    for seconds in [0.1, 1.0000000596046448, 16777217, 999999999999.5, 5e-324, 1e-45,
                    123456.789, 86399.999, 0]:
        out.append(dict(base, seconds_since_start=seconds))
    out.append(dict(base, beacons=16777217, pageviews=999999999))
    out.append(dict(base, previous_sessions=0, previous_conversions=0,
                    hours_since_previous_session=0.0))
    return out


def write_requests(model_dir, out, count):
    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
        columns = json.load(f)["columns"]
    app.Encoder(columns)  # fails early on a column this encoder does not know
    experiments = experiments_of(columns)
    edges = edge_objects(experiments)
    rng = random.Random(20261101)
    objects = [realistic_object(rng, experiments) for _ in range(max(count - len(edges), 0))]
    objects += edges
    with open(out, "w", encoding="utf-8") as f:
        for o in objects:
            f.write(json.dumps(o, separators=(",", ":")) + "\n")
    print(f"{len(objects)} feature objects ({len(edges)} edge cases) -> {out}")


# ---------------------------------------------------------------------------------------------
# parity

class Client:
    """POSTs JSON to one server over a kept-alive connection (reopened when the server closes)."""

    def __init__(self, name, url):
        self.name = name
        u = urllib.parse.urlsplit(url)
        self.path = u.path or "/v1/predict"
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def post(self, body):
        """(status, content type, body) of a POST of `body`: JSON from a value, bytes as they are,
        or a (content type, bytes) pair."""
        ctype = "application/json"
        if isinstance(body, tuple):
            ctype, data = body
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
        for attempt in range(2):
            try:
                self.conn.request("POST", self.path, data, {"Content-Type": ctype})
                r = self.conn.getresponse()
                text = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                return r.status, r.getheader("Content-Type", ""), text
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt:
                    raise

    def predict(self, body, n):
        """(model_version, [float32 bits as int]) of a 200 answer; Refused for anything else."""
        status, ctype, text = self.post(body)
        if status != 200 or not ctype.startswith("application/json"):
            raise Refused(f"{self.name} answered {status} {ctype}: {text[:300]!r}")
        doc = json.loads(text)
        values = doc["probabilities"] if "instances" in body else [doc["probability"]]
        if len(values) != n:
            raise Refused(f"{self.name} returned {len(values)} probabilities for {n} instances")
        return doc["model_version"], [f32_bits(v) for v in values]


class Refused(Exception):
    """A server did not answer a valid body with its probabilities."""


def f32_bits(x):
    """The float32 of a JSON number (parsed as double, rounded to float32), as its bit pattern."""
    return struct.unpack("<i", struct.pack("<f", float(x)))[0]


def f32(bits):
    return struct.unpack("<f", struct.pack("<i", bits))[0]


def ulps(a, b):
    return abs(a - b)  # probabilities are >= 0: bit patterns order like the values


def diagnose(a, b, obj, encoder):
    """The fields whose removal makes both servers agree, with this side's encoding of them."""
    suspects = []
    fields = [k for k in obj if k != "experiments"]
    fields += [f"experiments.{k}" for k in obj.get("experiments", {})]
    for field in fields:
        trimmed = json.loads(json.dumps(obj))
        if field.startswith("experiments."):
            del trimmed["experiments"][field[len("experiments."):]]
        else:
            del trimmed[field]
        try:
            (_, [pa]), (_, [pb]) = a.predict(trimmed, 1), b.predict(trimmed, 1)
        except Refused:
            continue
        if ulps(pa, pb) <= ULP_TOLERANCE:
            suspects.append(field)
    row = encoder.row(obj)
    lines = []
    for field in suspects:
        key = field.split(".", 1)[-1]
        if field.startswith("experiments."):
            value, prefix = obj["experiments"][key], f"experiment:{key}="
        else:
            value, prefix = obj[field], (key + "_" if key in ("device", "referrer") else key)
        cols = ", ".join(f"{c}={row[i]!r}" for i, c in enumerate(encoder.columns)
                         if c == key or c.startswith(prefix))
        shown = json.dumps(value)
        shown = shown if len(shown) <= 80 else f"{shown[:60]}...{shown[-16:]} ({len(value)} chars)"
        lines.append(f"    {field} = {shown} makes the difference; "
                     f"app.py encodes it as {cols or 'no column'}")
    if not suspects:
        lines.append("    no single field explains it (an interaction of fields, or the model)")
    return lines


def parity(model_dir, bodies_path, summary_path, named_urls):
    (name_a, url_a), (name_b, url_b) = (u.split("=", 1) for u in named_urls)
    a, b = Client(name_a, url_a), Client(name_b, url_b)
    with open(bodies_path, encoding="utf-8") as f:
        objects = [json.loads(line) for line in f if line.strip()]
    mismatches = []     # (object index, form, pa, pb)
    agreeing = (0, 0.0)  # the largest difference among the probabilities within tolerance
    refusals = []       # (form, what went wrong, body)
    worst = (0, 0.0)    # (ulps, absolute difference)
    versions = set()
    compared = 0

    def compare(indices, form, body):
        nonlocal worst, compared, agreeing
        try:
            va, pa = a.predict(body, len(indices))
            vb, pb = b.predict(body, len(indices))
        except Refused as e:
            refusals.append((form, str(e), body))
            return
        versions.add((va, vb))
        for i, x, y in zip(indices, pa, pb):
            compared += 1
            d = ulps(x, y)
            worst = max(worst, (d, abs(f32(x) - f32(y))))
            if d > ULP_TOLERANCE:
                mismatches.append((i, form, x, y))
            else:
                agreeing = max(agreeing, (d, abs(f32(x) - f32(y))))

    for i, o in enumerate(objects):
        compare([i], "single", o)
    sizes = [1, 2, 7, 16, 50, 100, 200]
    start, k = 0, 0
    while start < len(objects):
        n = sizes[k % len(sizes)]
        idx = list(range(start, min(start + n, len(objects))))
        compare(idx, f"batch of {len(idx)}", {"instances": [objects[j] for j in idx]})
        start, k = start + n, k + 1
    everything = list(range(min(len(objects), app.MAX_INSTANCES)))
    compare(everything, f"batch of {len(everything)}",
            {"instances": [objects[j] for j in everything]})

    print(f"parity: {len(objects)} feature objects, {compared} probabilities compared "
          f"({len(objects)} single requests, the rest in batches of 1..{len(everything)}) "
          f"between {name_a} and {name_b}")
    print(f"parity: max difference {worst[0]} ulp of float32 ({worst[1]:.3g} absolute)")
    invalid_input_check(a, b)
    if any(va != vb for va, vb in versions):
        print(f"parity: WARNING model_version differs: {sorted(versions)}")
    for form, what, body in refusals[:5]:
        text = json.dumps(body)
        print(f"FAILED: {form}: {what}; body {text[:300]}{'...' if len(text) > 300 else ''}")
    if refusals:
        print(f"FAILED: {len(refusals)} valid bodies not answered with probabilities by both")
    if not mismatches and not refusals:
        verdict = (f"{name_a} and {name_b} give the same probabilities for {len(objects)} feature "
                   f"objects, alone and in batches ({compared} compared as float32; max "
                   f"difference {worst[0]} ulp, {worst[1]:.3g})")
    else:
        verdict = (f"**{name_a} and {name_b} disagree: {len(mismatches)} of {compared} "
                   f"probabilities differ by more than {ULP_TOLERANCE} ulp, {len(refusals)} valid "
                   f"bodies refused** (max difference {worst[0]} ulp, {worst[1]:.3g}; the other "
                   f"probabilities within {agreeing[0]} ulp)")
    with open(summary_path, "w", encoding="utf-8") as f:
        f.write(verdict + ".\n")
    if not mismatches and not refusals:
        print(f"parity: OK (equal as float32, or at most {ULP_TOLERANCE} ulp apart)")
        return
    if mismatches:
        print(f"FAILED: {len(mismatches)} probabilities differ by more than {ULP_TOLERANCE} ulp")
    with open(os.path.join(model_dir, "meta.json"), encoding="utf-8") as f:
        encoder = app.Encoder(json.load(f)["columns"])
    shown = {}
    for i, form, x, y in mismatches:
        shown.setdefault(i, (form, x, y))
    # The smallest objects first: the edge cases differ from one base object by one field.
    for i, (form, x, y) in sorted(shown.items(), key=lambda kv: len(json.dumps(objects[kv[0]])))[:5]:
        text = json.dumps(objects[i])
        print(f"  object {i} ({form}): {name_a} {f32(x)!r} vs {name_b} {f32(y)!r} "
              f"({ulps(x, y)} ulp): {text[:400]}{'...' if len(text) > 400 else ''}")
        print("\n".join(diagnose(a, b, objects[i], encoder)))
    if len(shown) > 5:
        print(f"  ... and {len(shown) - 5} more objects")
    sys.exit(1)


def invalid_input_check(a, b):
    """Both must refuse bodies outside the contract alike; a difference is only reported."""
    cases = [("missing required fields", {"beacons": 1}, 422),
             ("unknown field", {"beacons": 1, "colour": "red"}, 422),
             ("string count", {"beacons": "3"}, 422),
             ("negative count", {"clicks": -1}, 422),
             ("hour 24", {"hour_of_day": 24}, 422),
             ("experiments not an object", {"experiments": ["a"]}, 422),
             ("empty batch", {"instances": []}, 422),
             ("1001 instances", {"instances": [{}] * 1001}, 422),
             ("not an object", [1, 2], 422),
             ("not JSON", b"{beacons: 1", 400),
             ("form content type", ("application/x-www-form-urlencoded", b"beacons=1"), 415)]
    odd = []
    for what, body, expected in cases:
        for c in (a, b):
            status, ctype, _ = c.post(body)
            if status != expected or not ctype.startswith("application/problem+json"):
                odd.append(f"{c.name} answered {status} {ctype} to {what} (expected {expected})")
    if odd:
        print("parity: NOTE invalid input not refused as expected: " + "; ".join(odd))
    else:
        print(f"parity: {len(cases)} invalid bodies refused alike by both "
              f"(problem+json: 422, 400 for a body that is not JSON, 415 for another type)")


# ---------------------------------------------------------------------------------------------
# table

def fnum(x, digits=0):
    return f"{x:,.{digits}f}".replace(",", " ") if digits == 0 else f"{x:.{digits}f}"


def table(work, out_path):
    def read(name, default=""):
        try:
            with open(os.path.join(work, name), encoding="utf-8") as f:
                return f.read().strip()
        except FileNotFoundError:
            return default

    ctx = {"setup": read("setup.md"), "parity": read("parity.txt"),
           "commands": read("commands.sh").splitlines()}
    results_path = os.path.join(work, "results.tsv")
    rows = []
    with open(results_path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    for r in rows:
        for k in ("workers", "conns", "think_ms", "non2xx", "socket_errors"):
            r[k] = int(r[k])
        for k in ("rps", "p50_ms", "p99_ms", "cpu_us"):
            r[k] = float(r[k])

    def peak(server):
        runs = [r for r in rows if r["server"] == server and r["think_ms"] == 0]
        return max(runs, key=lambda r: r["rps"]) if runs else None

    servers = list(dict.fromkeys(r["server"] for r in rows))
    duet = next((s for s in servers if s.startswith("duet")), None)
    peers = [s for s in servers if not s.startswith("duet")]
    best_peer = max(peers, key=lambda s: peak(s)["rps"]) if peers else None

    out = []
    out.append(f"### POST /v1/predict: `duet serve` vs Flask + gunicorn, same XGBoost model\n")
    out.append(ctx["setup"] + "\n")
    out.append("| server | workers | connections | requests/s | p50 (ms) | p99 (ms) "
               "| CPU/request (µs) | errors |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        conns = str(r["conns"])
        if r["think_ms"]:
            conns += f" ({r['think_ms']} ms pause: {100 * r['rps'] / peak(r['server'])['rps']:.0f}% of peak)"
        label = r["server"] + (" **(peer)**" if r["server"] == best_peer and len(peers) > 1 else "")
        errors = r["non2xx"] + r["socket_errors"]
        out.append(f"| {label} | {r['workers']} | {conns} | {fnum(r['rps'])} | "
                   f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['cpu_us']:.0f} | {errors} |")
    out.append("")
    verdicts = []
    if best_peer:
        p = peak(best_peer)
        verdicts.append(f"- The peer is **{best_peer}**, the better of the gunicorn worker classes "
                        f"(peak {fnum(p['rps'])} requests/s at {p['conns']} connections).")
    if duet and best_peer:
        d, p = peak(duet), peak(best_peer)
        ratio = d["rps"] / p["rps"]
        verdicts.append(f"- Throughput: duet peaks at {fnum(d['rps'])} requests/s "
                        f"({d['conns']} connections), **{ratio:.1f}×** the peer's "
                        f"{fnum(p['rps'])}: goal ≥ 20×, **{'met' if ratio >= 20 else 'not met'}**. "
                        f"CPU per request at those peaks: duet {d['cpu_us']:.0f} µs, the peer "
                        f"{p['cpu_us']:.0f} µs, {p['cpu_us'] / max(d['cpu_us'], 0.1):.1f}× (the "
                        f"throughput ratio if each server had the cores to itself, without wrk).")
    if duet:
        d = peak(duet)
        half = [r for r in rows if r["server"] == duet and r["think_ms"] > 0]
        if half:
            h = half[-1]
            ok = h["p99_ms"] <= 1.0
            verdicts.append(
                f"- Latency at half of duet's peak: {fnum(h['rps'])} requests/s "
                f"({100 * h['rps'] / d['rps']:.0f}% of peak; {h['conns']} connections, each "
                f"pausing {h['think_ms']} ms between requests): p99 **{h['p99_ms']:.3f} ms**, "
                f"p50 {h['p50_ms']:.3f} ms: goal p99 ≤ 1 ms, **{'met' if ok else 'not met'}**.")
    else:
        verdicts.append("- duet serve: not run (this run measured the Flask side only).")
    if ctx.get("parity"):
        verdicts.append(f"- Predictions: {ctx['parity']}")
    out.extend(verdicts)
    out.append("")
    out.append("Commands:\n")
    out.append("```sh")
    out.extend(ctx["commands"])
    out.append("```")
    text = "\n".join(out) + "\n"
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "synthetic-model" and len(argv) == 3:
        synthetic_model(argv[2])
    elif cmd == "requests" and len(argv) in (4, 5):
        write_requests(argv[2], argv[3], int(argv[4]) if len(argv) == 5 else 256)
    elif cmd == "parity" and len(argv) == 7:
        parity(argv[2], argv[3], argv[4], argv[5:7])
    elif cmd == "table" and len(argv) == 4:
        table(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
