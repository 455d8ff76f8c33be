#!/usr/bin/env python3
"""src/stats (through stats_cli) against scipy/statsmodels on random per-visitor data.

For each case, per-visitor data is drawn with numpy: sessions S >= 1, conversions C <= S,
revenue R (mostly 0, lognormal for some converted visitors), converted = C > 0. stats_cli gets
only the figures (sums, exactly as docs/beacon-contract.md defines them); the reference values
come from the raw per-visitor arrays, never from the figures:
  - visitor conversion: statsmodels proportions_ztest (pooled) and confint_proportions_2indep
    (Wald, difference);
  - session conversion: the delta method as the variance of the per-visitor linearization
    L = C - r*S (r = sum C / sum S), Var(r_hat) = var(L, ddof=1) / (n * mean(S)^2);
  - revenue per visitor: scipy.stats.ttest_ind(equal_var=False): statistic, p-value, df and
    confidence interval;
  - relative lift: Var(t/c) = Var(t)/c^2 + t^2 Var(c)/c^4 with the estimates' variances from
    numpy and the metric's critical value (normal, or Student's t with Welch's df);
  - sample ratio: scipy.stats.chisquare.
Undefined values follow ab.h: NaN with fewer than two visitors in a variant or a zero standard
error, relative lift NaN for a control value of 0. Every value must agree to a relative
tolerance of 1e-7 (absolute 1e-12 near zero). Exit status 1 with a table of mismatches.
"""
import argparse
import json
import math
import subprocess
import sys

import numpy as np
import scipy.stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

REL_TOL = 1e-7
ABS_TOL = 1e-12
NAN = float("nan")


def draw_variant(rng, n, conv_p, revenue_share):
    sessions = 1 + rng.poisson(0.9, n)
    conversions = rng.binomial(sessions, conv_p)
    has_revenue = (conversions > 0) & (rng.random(n) < revenue_share)
    revenue = np.where(has_revenue, np.round(rng.lognormal(3.0, 1.0, n), 2), 0.0)
    return {"S": sessions.astype(np.int64), "C": conversions.astype(np.int64), "R": revenue}


def figures(d):
    s = [int(x) for x in d["S"]]
    c = [int(x) for x in d["C"]]
    r = [float(x) for x in d["R"]]
    return {
        "visitors": len(s),
        "sessions": sum(s),
        "conversions": sum(c),
        "converted_visitors": sum(1 for x in c if x > 0),
        "sessions_sq": sum(x * x for x in s),
        "conversions_sq": sum(x * x for x in c),
        "sessions_x_conversions": sum(x * y for x, y in zip(s, c)),
        # Exact sums rounded once, as the layers keep them (math.fsum).
        "revenue": math.fsum(r),
        "revenue_sq": math.fsum(x * x for x in r),
    }


def lifts(value_c, value_t, var_c, var_t, crit):
    """absolute_lift, absolute_ci, relative_lift, relative_ci from the two estimates."""
    diff = value_t - value_c
    se = math.sqrt(var_c + var_t) if not (math.isnan(var_c) or math.isnan(var_t)) else NAN
    abs_ci = [diff - crit * se, diff + crit * se] if se > 0 else [NAN, NAN]
    if value_c == 0:
        return diff, abs_ci, NAN, [NAN, NAN]
    rel = value_t / value_c - 1
    var_rel = var_t / value_c**2 + value_t**2 * var_c / value_c**4
    se_rel = math.sqrt(var_rel) if not math.isnan(var_rel) else NAN
    rel_ci = [rel - crit * se_rel, rel + crit * se_rel] if se_rel > 0 else [NAN, NAN]
    return diff, abs_ci, rel, rel_ci


def visitor_conversion(c, t, confidence):
    fc = (c["C"] > 0).astype(float)
    ft = (t["C"] > 0).astype(float)
    n_c, n_t = len(fc), len(ft)
    x_c, x_t = int(fc.sum()), int(ft.sum())
    out = {"test": "two_proportion_z", "control": x_c / n_c, "treatment": x_t / n_t,
           "df": NAN, "statistic": NAN, "p_value": NAN}
    alpha = 1 - confidence
    enough = n_c >= 2 and n_t >= 2
    var_c = fc.var() / n_c if enough else NAN  # p(1-p)/n
    var_t = ft.var() / n_t if enough else NAN
    crit = scipy.stats.norm.ppf(1 - alpha / 2)
    diff, abs_ci, rel, rel_ci = lifts(out["control"], out["treatment"], var_c, var_t, crit)
    if enough and var_c + var_t > 0:
        low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald",
                                               compare="diff", alpha=alpha)
        abs_ci = [float(low), float(high)]
    pooled = (x_c + x_t) / (n_c + n_t)
    if enough and 0 < pooled < 1:
        z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
        out["statistic"], out["p_value"] = float(z), float(p)
    out.update(absolute_lift=diff, absolute_ci=abs_ci, relative_lift=rel, relative_ci=rel_ci)
    return out


def session_conversion(c, t, confidence):
    def estimate(d):
        s, cv = d["S"].astype(float), d["C"].astype(float)
        n = len(s)
        r = cv.sum() / s.sum()
        if n < 2:
            return r, NAN
        lin = cv - r * s
        return r, lin.var(ddof=1) / (n * s.mean() ** 2)

    r_c, v_c = estimate(c)
    r_t, v_t = estimate(t)
    crit = scipy.stats.norm.ppf(1 - (1 - confidence) / 2)
    diff, abs_ci, rel, rel_ci = lifts(r_c, r_t, v_c, v_t, crit)
    out = {"test": "delta_method_z", "control": r_c, "treatment": r_t, "df": NAN,
           "statistic": NAN, "p_value": NAN, "absolute_lift": diff, "absolute_ci": abs_ci,
           "relative_lift": rel, "relative_ci": rel_ci}
    se = math.sqrt(v_c + v_t)
    if se > 0:
        out["statistic"] = diff / se
        out["p_value"] = float(2 * scipy.stats.norm.sf(abs(diff / se)))
    return out


def revenue_per_visitor(c, t, confidence):
    rc, rt = c["R"], t["R"]
    n_c, n_t = len(rc), len(rt)
    out = {"test": "welch_t", "control": rc.mean(), "treatment": rt.mean(), "df": NAN,
           "statistic": NAN, "p_value": NAN}
    enough = n_c >= 2 and n_t >= 2
    var_c = rc.var(ddof=1) / n_c if enough else NAN
    var_t = rt.var(ddof=1) / n_t if enough else NAN
    crit = NAN
    result = None
    if enough and var_c + var_t > 0:
        result = scipy.stats.ttest_ind(rt, rc, equal_var=False)
        out["statistic"], out["p_value"], out["df"] = (float(result.statistic),
                                                       float(result.pvalue), float(result.df))
        # Welch–Satterthwaite from the numpy variances, for the relative interval.
        df = (var_c + var_t) ** 2 / (var_c**2 / (n_c - 1) + var_t**2 / (n_t - 1))
        crit = scipy.stats.t.ppf(1 - (1 - confidence) / 2, df)
    diff, abs_ci, rel, rel_ci = lifts(out["control"], out["treatment"], var_c, var_t, crit)
    if result is not None:
        ci = result.confidence_interval(confidence_level=confidence)
        abs_ci = [float(ci.low), float(ci.high)]
    out.update(absolute_lift=diff, absolute_ci=abs_ci, relative_lift=rel, relative_ci=rel_ci)
    return out


def reference(variants, expected_share, confidence, threshold):
    comparisons = []
    for t in variants[1:]:
        cmp = {
            "conversion_rate_visitor": visitor_conversion(variants[0], t, confidence),
            "conversion_rate_session": session_conversion(variants[0], t, confidence),
            "revenue_per_visitor": revenue_per_visitor(variants[0], t, confidence),
        }
        for m in cmp.values():
            m["significant"] = bool(m["p_value"] < 1 - confidence)  # False for NaN
        comparisons.append(cmp)
    visitors = np.array([len(v["S"]) for v in variants], dtype=float)
    weights = np.array(expected_share if expected_share else [1.0] * len(variants))
    share = weights / weights.sum()
    chi = scipy.stats.chisquare(visitors, share * visitors.sum())
    srm = {"statistic": float(chi.statistic), "df": len(variants) - 1,
           "p_value": float(chi.pvalue), "expected_share": list(share),
           "observed_share": list(visitors / visitors.sum())}
    srm["mismatch"] = bool(srm["p_value"] < threshold)
    return {"comparisons": comparisons, "sample_ratio": srm}


def flatten(value, path, out):
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(v, f"{path}[{i}]", out)
    else:
        out[path] = value


def same(a, b):
    if isinstance(b, (bool, str)) or isinstance(a, (bool, str)):
        return a == b
    a = NAN if a is None else float(a)
    b = NAN if b is None else float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(REL_TOL * abs(b), ABS_TOL)


def cases():
    # name, seed, visitors per variant, conversion probability per variant, expected share,
    # confidence, SRM threshold.
    fixed = [
        ("equal_large", 1, [20000, 20000], [0.10, 0.11], [], 0.95, 0.001),
        ("three_variants", 2, [5000, 5200, 4900], [0.08, 0.08, 0.095], [], 0.95, 0.001),
        ("unequal_split_weighted", 3, [3000, 9000], [0.2, 0.18], [1, 3], 0.95, 0.001),
        ("unequal_split_srm_equal", 3, [3000, 9000], [0.2, 0.18], [], 0.95, 0.001),
        ("srm_mismatch", 5, [10000, 10700], [0.1, 0.1], [], 0.95, 0.001),
        ("confidence_90", 6, [800, 1200, 1000], [0.3, 0.25, 0.35], [], 0.90, 0.01),
        ("confidence_99", 7, [1500, 1500], [0.05, 0.07], [], 0.99, 0.001),
        ("small_n", 8, [6, 9], [0.4, 0.5], [], 0.95, 0.001),
        ("tiny_n", 9, [2, 3, 4], [0.5, 0.5, 0.5], [], 0.95, 0.001),
        ("one_visitor_control", 10, [1, 50], [0.3, 0.3], [], 0.95, 0.001),
        ("no_conversions", 11, [40, 60], [0.0, 0.0], [], 0.95, 0.001),
    ]
    yield from fixed
    meta = np.random.default_rng(2024)
    for seed in range(100, 112):
        k = int(meta.integers(2, 5))
        sizes = [int(x) for x in meta.integers(2, 4000, k)]
        probs = [float(x) for x in meta.uniform(0.01, 0.4, k)]
        # Weights near the actual split, so that SRM p-values spread over (0, 1).
        shares = [s * float(meta.uniform(0.97, 1.03)) for s in sizes]
        yield (f"random_{seed}", seed, sizes, probs, shares, 0.95, 0.001)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", required=True, help="path of the stats_cli binary")
    args = ap.parse_args()

    mismatches = []
    checked = 0
    n_cases = 0
    for name, seed, sizes, probs, shares, confidence, threshold in cases():
        n_cases += 1
        rng = np.random.default_rng(seed)
        variants = [draw_variant(rng, n, p, 0.7) for n, p in zip(sizes, probs)]
        request = {"confidence": confidence, "srm_threshold": threshold,
                   "expected_share": shares, "variants": [figures(v) for v in variants]}
        run = subprocess.run([args.cli], input=json.dumps(request), capture_output=True,
                             text=True, check=False)
        if run.returncode != 0:
            print(f"{name}: stats_cli failed ({run.returncode}): {run.stderr.strip()}")
            return 1
        got, want = {}, {}
        flatten(json.loads(run.stdout), "", got)
        with np.errstate(all="ignore"):
            flatten(reference(variants, shares, confidence, threshold), "", want)
        for key in sorted(set(got) | set(want)):
            checked += 1
            a, b = got.get(key, "<missing>"), want.get(key, "<missing>")
            if not same(a, b):
                mismatches.append((name, key, a, b))
        srm = got["sample_ratio.p_value"]
        print(f"{name}: visitors {sizes}, srm p {srm if srm is not None else 'null'}, "
              f"mismatch {got['sample_ratio.mismatch']}")

    if mismatches:
        print(f"\n{len(mismatches)} of {checked} values differ (rel tol {REL_TOL}, "
              f"abs tol {ABS_TOL}):")
        print(f"{'case':<26} {'field':<58} {'stats_cli':>24} {'reference':>24} {'rel diff':>10}")
        for name, key, a, b in mismatches:
            try:
                rel = f"{abs(float(a) - float(b)) / max(abs(float(b)), ABS_TOL):.2e}"
            except (TypeError, ValueError):
                rel = "-"
            print(f"{name:<26} {key:<58} {a!s:>24} {b!s:>24} {rel:>10}")
        return 1
    print(f"stats.reference: all {checked} values match scipy/statsmodels over {n_cases} cases "
          f"(rel tol {REL_TOL}, abs tol {ABS_TOL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
