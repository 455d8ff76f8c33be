#!/usr/bin/env python3
"""The Spark peer of `duet batch`: beacon contract v1 in PySpark (DataFrame API, local mode).

    python duet_batch.py --input DIR --out FILE.json [--master local[2]]
                         [--shuffle-partitions N] [--driver-memory 8g] [--conf KEY=VALUE]...

Reads the master dataset (every *.ndjson and *.ndjson.zst below DIR whose name does not start
with '.' or '_'), validates every line as docs/beacon-contract.md says, drops duplicates (the
first valid line read with an id wins), sessionizes (a gap of more than 30 minutes starts a new
session), attributes sessions to experiment variants and writes the figures as the JSON document
of `duet report --json --full` (docs/report-json.md): experiments, site, input, event_time,
hourly and uniques.

The plan, stage by stage:
  read     spark.read.text over the listed files; the read order of the contract is
           (file rank, split start, row id in the split).
  classify built-in functions first: parse_json into a VARIANT, schema_of_variant for the exact
           JSON type of every known field, octet_length for byte bounds. A line whose exact
           outcome Spark's parser cannot guarantee (see `needs_exact` below) goes to one
           vectorized pandas UDF, `classify_exact`, which implements the contract on that line.
  dedup    row_number() over (partition by id order by read order) = 1.
  sessions lag(ts) and a running sum over (partition by visitor order by ts, id).
  figures  groupBy per session, per (experiment, variant, hour, visitor), then per
           (experiment, variant, hour); hour = null is the total.
Exact sums of `value` (revenue, revenue_sq) are the one other UDF: see `revenue_figures`.
"""

import argparse
import datetime
import json
import math
import os
import re
import sys
import threading
import time

# --------------------------------------------------------------------------------------------
# Contract v1 constants (docs/beacon-contract.md)

MAX_LINE_BYTES = 65536
TS_MIN = 946684800000
TS_MAX = 4102444800000
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
SESSION_GAP_MS = 1_800_000
HOUR_MS = 3_600_000
ID_MAX, VISITOR_MAX, TYPE_MAX = 64, 128, 32
EXPERIMENTS_MAX, EXPERIMENT_NAME_MAX, VARIANT_MAX = 32, 64, 64
OPTIONAL_STRING_MAX = 2048
JSON_WS = " \t\r"  # '\n' never occurs inside a line
OPTIONAL_STRINGS = ("page", "device", "referrer")
KNOWN_FIELDS = frozenset(("id", "visitor", "ts", "type", "experiments", "value") + OPTIONAL_STRINGS)

# --------------------------------------------------------------------------------------------
# Exact classification of one line: the path for the lines Spark's JSON parser cannot decide
# exactly. Runs inside the Python workers (no Spark import needed here).


class _Syntax(Exception):
    """A literal that makes the line json.syntax."""


class _Obj:
    """A JSON object as its (key, value) pairs in written order: duplicate keys stay visible."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _parse_int(literal: str) -> int:
    if len(literal) - (literal[0] == "-") > 20:  # 2^64-1 has 20 digits
        raise _Syntax()
    v = int(literal)
    if v < INT_MIN or v > INT_MAX:
        raise _Syntax()
    return v


def _parse_float(literal: str) -> float:
    v = float(literal)  # correctly rounded; overflow gives inf
    if math.isinf(v):
        raise _Syntax()
    return v


def _parse_constant(literal: str):
    raise _Syntax()  # NaN, Infinity, -Infinity


_DECODER = None  # built on first use in the worker: a JSONDecoder cannot be pickled


def _decoder() -> json.JSONDecoder:
    global _DECODER
    if _DECODER is None:
        _DECODER = json.JSONDecoder(object_pairs_hook=_Obj, parse_int=_parse_int,
                                    parse_float=_parse_float, parse_constant=_parse_constant,
                                    strict=True)  # control characters in strings are errors
    return _DECODER

_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(doc) -> bool:
    # json decodes a valid \ud83d\ude00 pair to one code point; only an unpaired one survives.
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if _SURROGATE.search(v):
                return True
        elif isinstance(v, _Obj):
            for k, x in v.pairs:
                if _SURROGATE.search(k):
                    return True
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _decode_deep(text: str):
    """Decodes on a thread with a big stack: the contract limits nesting only by line length."""
    out = {}

    def target():
        try:
            out["doc"] = _decoder().decode(text)
        except BaseException as e:  # re-raised below
            out["error"] = e

    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    sys.setrecursionlimit(max(old_limit, 200_000))
    try:
        threading.stack_size(512 * 1024 * 1024)
        t = threading.Thread(target=target)
        t.start()
        t.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    if "error" in out:
        raise out["error"]
    return out["doc"]


def _blen(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8"))


def classify_line(line: bytes):
    """(reason, None) for a bad row, (None, fields) for a valid line; `line` excludes '\\n'."""
    if len(line) > MAX_LINE_BYTES:
        return "line.too_long", None
    try:
        text = line.decode("utf-8")  # strict: no overlongs, no encoded surrogates
    except UnicodeDecodeError:
        return "utf8.invalid", None
    if not text.strip(JSON_WS):
        return "line.empty", None
    if text.startswith("\ufeff"):
        return "json.syntax", None
    try:
        try:
            doc = _decoder().decode(text)
        except RecursionError:
            doc = _decode_deep(text)
    except (ValueError, _Syntax, RecursionError, OverflowError):
        return "json.syntax", None
    if _has_lone_surrogate(doc):
        return "json.syntax", None
    if not isinstance(doc, _Obj):
        return "json.not_object", None
    return _check_fields(doc.pairs)


def _check_fields(pairs):
    fields, dup = {}, set()
    for k, v in pairs:
        if k in KNOWN_FIELDS:
            if k in fields:
                dup.add(k)
            else:
                fields[k] = v
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
    if "ts" in dup:
        return "ts.duplicate_key", None
    if "ts" not in fields:
        return "ts.missing", None
    ts = fields["ts"]
    if type(ts) is not int:  # bool is not an integer; a float never is
        return "ts.not_integer", None
    if ts < TS_MIN or ts > TS_MAX:
        return "ts.out_of_range", None
    out["ts"] = ts
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
    out["type"] = typ
    experiments = []
    if "experiments" in dup:
        return "experiments.duplicate_key", None
    if "experiments" in fields:
        e = fields["experiments"]
        if not isinstance(e, _Obj):
            return "experiments.not_object", None
        if len(e.pairs) > EXPERIMENTS_MAX:
            return "experiments.too_many", None
        seen = set()
        for name, variant in e.pairs:  # written order
            n = _blen(name)
            if n == 0:
                return "experiments.name_empty", None
            if n > EXPERIMENT_NAME_MAX:
                return "experiments.name_too_long", None
            if name in seen:
                return "experiments.name_duplicate", None
            seen.add(name)
            if not isinstance(variant, str):
                return "experiments.variant_not_string", None
            n = _blen(variant)
            if n == 0:
                return "experiments.variant_empty", None
            if n > VARIANT_MAX:
                return "experiments.variant_too_long", None
            experiments.append({"name": name, "variant": variant})
    out["experiments"] = experiments
    value = None
    if "value" in dup:
        return "value.duplicate_key", None
    if "value" in fields:
        v = fields["value"]
        if type(v) is not int and type(v) is not float:
            return "value.not_number", None
        if v < 0:
            return "value.negative", None
        value = float(v) + 0.0  # int -> nearest double; -0 -> 0
    out["value"] = value
    for name in OPTIONAL_STRINGS:
        if name in dup:
            return name + ".duplicate_key", None
        if name in fields:
            v = fields[name]
            if not isinstance(v, str):
                return name + ".not_string", None
            if _blen(v) > OPTIONAL_STRING_MAX:
                return name + ".too_long", None
    return None, out


def exact_fsum(values) -> float:
    """The contract's exact sum: the real sum of the doubles, rounded once (math.fsum)."""
    try:
        return math.fsum(values)
    except OverflowError:  # the exact sum of non-negative doubles is beyond DBL_MAX
        return math.inf


# --------------------------------------------------------------------------------------------
# Input listing: the contract's rule, and its read order (relative paths, bytewise).


def list_inputs(root: str):
    """[(relative path, absolute path)] in the contract's read order."""
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return [(os.path.basename(root), root)]
    if not os.path.isdir(root):
        raise FileNotFoundError(root)
    found = []
    for dirpath, _dirs, names in os.walk(root):  # does not follow links to folders
        for name in names:
            if name.startswith((".", "_")) or not name.endswith((".ndjson", ".ndjson.zst")):
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                found.append((os.path.relpath(full, root), full))
    found.sort(key=lambda t: os.fsencode(t[0]))
    return found


def hour_str(h: int) -> str:
    return (datetime.datetime(1970, 1, 1) + datetime.timedelta(hours=h)).strftime(
        "%Y-%m-%dT%H:00:00Z")


# --------------------------------------------------------------------------------------------
# The Spark job


def build_job(spark, files, stages=None):
    """Returns (per_visitor, observation, reasons); nothing has run yet. `stages`, when given, is
    filled with the intermediate DataFrames (for profiling)."""
    import pandas as pd
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # ---- read: one row per line ('\n' only: Hadoop's default also splits on a lone '\r').
    # Glob characters in names are escaped: spark.read expands patterns in paths.
    escaped = [re.sub(r"([\\*?\[\]{}])", r"\\\1", full) for _rel, full in files]
    raw = spark.read.option("lineSep", "\n").text(escaped)
    # The contract's read order is (file in path order, line in file order). A file larger than
    # a split is read by several tasks: (split start, row id within the task) orders its lines.
    to_uri = spark._jvm.org.apache.hadoop.fs.Path
    ranks = spark.createDataFrame(
        [("file:" + to_uri(full).toUri().toString(), i) for i, (_rel, full) in enumerate(files)],
        "file_path string, file_rank int")
    lines = raw.select(
        F.col("value").alias("line"),
        F.col("_metadata.file_path").alias("file_path"),
        F.col("_metadata.file_block_start").alias("split_start"),
        F.monotonically_increasing_id().alias("row"))

    # ---- classify, built-in path. Spark's VARIANT parser (Jackson) is strict about most of
    # JSON (no NaN, single quotes, comments, leading zeros, control characters, unpaired
    # surrogate escapes; duplicate keys are an error), but not about the whole line:
    #  * it stops after the first value. Parsing "[" + line + "]" instead turns anything after
    #    the object into an error or a second element, except `]...` right after the closing
    #    brace, which the `hint` below sends to the exact path;
    #  * it reads any integer (as DECIMAL) and 1e400 (as Infinity), which the contract makes
    #    json.syntax: `hint` sends every number literal of 19+ integer digits or a 3-digit
    #    exponent to the exact path (a superset: it may also match inside a string);
    #  * duplicate keys make the parse fail: which `<field>.duplicate_key` (or none, for an
    #    unknown field) is decided on the exact path, as is every other line that fails to parse.
    line = F.col("line")
    stripped = F.btrim(line, F.lit(JSON_WS))
    pre_reason = (F.when(F.octet_length(line) > MAX_LINE_BYTES, "line.too_long")
                  .when(~F.is_valid_utf8(line), "utf8.invalid")
                  .when(F.octet_length(stripped) == 0, "line.empty"))
    hint = line.rlike(r"[:,\[]\s*-?(?:\d{19}|\d+(?:\.\d*)?[eE][-+]?\d{3})|\}\s*\]")
    stage1 = lines.select(
        "*", pre_reason.alias("pre_reason"),
        F.when(pre_reason.isNull() & stripped.startswith("{") & ~hint,
               F.try_parse_json(F.concat(F.lit("["), line, F.lit("]")))).alias("w"))
    w = F.col("w")

    def get(field, as_type="variant"):  # null when absent or (typed) not castable
        return F.try_variant_get(w, "$[0]." + field, as_type)

    def jtype(field):  # exact JSON type: STRING, BIGINT, DECIMAL(p,s), DOUBLE, BOOLEAN, VOID…
        return F.schema_of_variant(get(field))

    exp_map = F.try_variant_get(w, "$[0].experiments", "map<string,variant>")  # null: not an object

    def entry_error(e):  # experiment entry checks; the written order is lost in the map
        vstr = F.try_variant_get(e["value"], "$", "string")
        return (F.when(F.octet_length(e["key"]) == 0, "experiments.name_empty")
                .when(F.octet_length(e["key"]) > EXPERIMENT_NAME_MAX, "experiments.name_too_long")
                .when(F.schema_of_variant(e["value"]) != "STRING",
                      "experiments.variant_not_string")
                .when(F.octet_length(vstr) == 0, "experiments.variant_empty")
                .when(F.octet_length(vstr) > VARIANT_MAX, "experiments.variant_too_long"))

    strings = ("id", "visitor", "type")  # kept: their values are the beacon's
    stage2 = stage1.select(
        "file_path", "split_start", "row", "line", "pre_reason",
        (w.isNotNull() & F.variant_get(w, "$[1]", "variant").isNull()).alias("fast"),
        *[jtype(f).alias("t_" + f) for f in strings + ("ts", "value") + OPTIONAL_STRINGS],
        *[get(f, "string").alias("s_" + f) for f in strings],
        *[F.octet_length(get(f, "string")).alias("n_" + f) for f in OPTIONAL_STRINGS],
        get("ts", "bigint").alias("ts"),
        get("value", "double").alias("value"),
        get("experiments").isNotNull().alias("has_exps"),
        exp_map.alias("exp_map"),
        F.filter(F.transform(F.map_entries(exp_map), entry_error),
                 lambda x: x.isNotNull()).alias("exp_errors"))

    def string_checks(f, max_len, required=True):
        t = F.col("t_" + f)
        n = F.octet_length("s_" + f) if required else F.col("n_" + f)
        if required:
            c = F.when(t.isNull(), f + ".missing").when(t != "STRING", f + ".not_string")
            c = c.when(n == 0, f + ".empty")
        else:
            c = F.when(t.isNotNull() & (t != "STRING"), f + ".not_string")
        return c.when(n > max_len, f + ".too_long")

    t_ts, t_value = F.col("t_ts"), F.col("t_value")
    exp_errors, exp_map_c = F.col("exp_errors"), F.col("exp_map")
    checks = [  # contract order; within a field: missing, type, bounds
        string_checks("id", ID_MAX), string_checks("visitor", VISITOR_MAX),
        F.when(t_ts.isNull(), "ts.missing").when(t_ts != "BIGINT", "ts.not_integer")
         .when((F.col("ts") < TS_MIN) | (F.col("ts") > TS_MAX), "ts.out_of_range"),
        string_checks("type", TYPE_MAX),
        F.when(F.col("has_exps") & exp_map_c.isNull(), "experiments.not_object")
         .when(F.size(exp_map_c) > EXPERIMENTS_MAX, "experiments.too_many")
         .when(F.size(exp_errors) > 0, exp_errors[0]),
        F.when(t_value.isNotNull()
               & ~((t_value == "BIGINT") | (t_value == "DOUBLE") | t_value.startswith("DECIMAL")),
               "value.not_number")
         .when(F.col("value") < 0, "value.negative"),
        *[string_checks(f, OPTIONAL_STRING_MAX, required=False) for f in OPTIONAL_STRINGS],
    ]
    # Two different entry errors in one experiments object: which one is first depends on the
    # written order, which the VARIANT map does not keep.
    order_matters = F.coalesce((F.size(exp_map_c) <= EXPERIMENTS_MAX)
                               & (F.size(F.array_distinct(exp_errors)) > 1), F.lit(False))
    needs_exact = F.col("pre_reason").isNull() & (~F.col("fast") | order_matters)
    stage3 = stage2.select(
        "file_path", "split_start", "row", "pre_reason", needs_exact.alias("exact"),
        F.coalesce(*checks).alias("fast_reason"),
        *[F.col("s_" + f).alias("f_" + f) for f in strings],
        F.col("ts").alias("f_ts"),
        F.coalesce(F.transform(F.map_entries(exp_map_c), lambda e: F.struct(
            e["key"].alias("name"), F.try_variant_get(e["value"], "$", "string").alias("variant"))),
            F.array()).alias("f_experiments"),
        (F.col("value") + F.lit(0.0)).alias("f_value"),  # -0.0 -> 0.0
        F.when(needs_exact, F.col("line").cast("binary")).alias("exact_line"))

    # ---- classify, exact path: a vectorized UDF that gets null for every line decided above.
    exact_type = T.StructType([
        T.StructField("reason", T.StringType()), T.StructField("id", T.StringType()),
        T.StructField("visitor", T.StringType()), T.StructField("ts", T.LongType()),
        T.StructField("type", T.StringType()),
        T.StructField("experiments", T.ArrayType(T.StructType([
            T.StructField("name", T.StringType()), T.StructField("variant", T.StringType())]))),
        T.StructField("value", T.DoubleType())])

    @F.pandas_udf(exact_type)
    def classify_exact(raw_lines: pd.Series) -> pd.DataFrame:
        cols = {k: [None] * len(raw_lines) for k in exact_type.fieldNames()}
        for i, b in enumerate(raw_lines):
            if b is None:
                continue
            reason, f = classify_line(bytes(b))
            cols["reason"][i] = reason
            if f is not None:
                for k in ("id", "visitor", "ts", "type", "experiments", "value"):
                    cols[k][i] = f[k]
        out = pd.DataFrame(cols)
        out["ts"] = out["ts"].astype("Int64")
        out["value"] = out["value"].astype("Float64")
        return out

    stage4 = stage3.select("*", classify_exact("exact_line").alias("x")).drop("exact_line")

    exact = F.col("exact")

    def pick(name):
        return F.when(exact, F.col("x")[name]).otherwise(F.col("f_" + name)).alias(name)

    classified = stage4.select(
        "file_path", "split_start", "row", "exact",
        F.coalesce(F.col("pre_reason"), F.when(exact, F.col("x.reason"))
                   .otherwise(F.col("fast_reason"))).alias("reason"),
        *[pick(n) for n in ("id", "visitor", "ts", "type", "experiments", "value")])

    # ---- input accounting, observed while the job runs (one pass over the input).
    reasons = [
        "line.too_long", "utf8.invalid", "line.empty", "json.syntax", "json.not_object",
        *[f"{f}.{r}" for f in ("id", "visitor") for r in
          ("missing", "not_string", "empty", "too_long", "duplicate_key")],
        "ts.missing", "ts.not_integer", "ts.out_of_range", "ts.duplicate_key",
        *[f"type.{r}" for r in ("missing", "not_string", "empty", "too_long", "duplicate_key")],
        *[f"experiments.{r}" for r in (
            "not_object", "too_many", "name_empty", "name_too_long", "name_duplicate",
            "variant_not_string", "variant_empty", "variant_too_long", "duplicate_key")],
        "value.not_number", "value.negative", "value.duplicate_key",
        *[f"{f}.{r}" for f in OPTIONAL_STRINGS for r in ("not_string", "too_long", "duplicate_key")],
    ]
    obs = Observation("input")
    reason = F.col("reason")
    classified = classified.observe(
        obs, F.count(F.lit(1)).alias("lines"), F.count_if(reason.isNull()).alias("valid_lines"),
        F.count_if("exact").alias("exact_path"),
        *[F.count_if(reason == r).alias(r) for r in reasons])

    if stages is not None:
        stages["classified"] = classified
    # ---- dedup: the first valid line read with an id is the beacon.
    valid = (classified.filter(reason.isNull()).drop("reason", "exact")
             .join(F.broadcast(ranks), "file_path", "left"))
    first = Window.partitionBy("id").orderBy("file_rank", "split_start", "row")
    beacons = (valid.withColumn("n", F.row_number().over(first)).filter("n = 1")
               .select("id", "visitor", "ts", "type", "experiments", "value",
                       F.col("file_rank").isNull().alias("unranked")))

    if stages is not None:
        stages["beacons"] = beacons
    # ---- sessions: per visitor in (ts, id) order; a gap > 30 min starts a new session.
    by_time = Window.partitionBy("visitor").orderBy("ts", "id")
    running = by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    gap = F.col("ts") - F.lag("ts").over(by_time)
    beacons = (beacons.withColumn("new", F.when(gap <= SESSION_GAP_MS, 0).otherwise(1))
               .withColumn("sid", F.sum("new").over(running)))
    is_conversion = F.col("type") == "conversion"
    sessions = beacons.groupBy("visitor", "sid").agg(
        F.min("ts").alias("start"), F.max("ts").alias("end"), F.count(F.lit(1)).alias("events"),
        F.count_if(F.col("type") == "pageview").alias("pageviews"),
        F.max(is_conversion.cast("int")).alias("converted"),
        F.collect_list(F.when(is_conversion, F.coalesce("value", F.lit(0.0)))).alias("values"),
        F.collect_set(F.expr(f"ts div {HOUR_MS}")).alias("hours"),
        # attribution candidates: (experiment, ts, id, variant), sorted below
        F.array_sort(F.flatten(F.collect_list(F.transform("experiments", lambda e: F.struct(
            e["name"].alias("name"), F.col("ts").alias("ts"), F.col("id").alias("id"),
            e["variant"].alias("variant")))))).alias("candidates"),
        F.count_if("unranked").alias("unranked"))
    if stages is not None:
        stages["sessions"] = sessions
    # Attribution: per experiment, the variant of the earliest beacon (ts, id) mentioning it.
    cand = F.col("candidates")
    attribution = F.transform(
        F.filter(cand, lambda x, i: (i == 0) | (cand[i - 1]["name"] != x["name"])),
        lambda x: F.struct(x["name"].alias("experiment"), x["variant"].alias("variant")))
    site = F.struct(F.lit(None).cast("string").alias("experiment"),
                    F.lit(None).cast("string").alias("variant"))
    member = sessions.select(
        "visitor", "start", "end", "events", "pageviews", "converted", "values", "hours",
        "unranked", F.explode(F.concat(F.array(site), attribution)).alias("ev"))
    # h = the UTC hour of the session's start for the hourly rows; null for the totals.
    flat = member.select(
        "*", F.col("ev.experiment").alias("experiment"), F.col("ev.variant").alias("variant"),
        F.explode(F.array(F.expr(f"start div {HOUR_MS}"), F.lit(None).cast("long"))).alias("h"))
    per_visitor = flat.groupBy("experiment", "variant", "h", "visitor").agg(
        F.count(F.lit(1)).alias("sessions"), F.sum("events").alias("events"),
        F.sum("pageviews").alias("pageviews"), F.sum("converted").alias("conversions"),
        F.count_if(F.col("events") == 1).alias("bounces"),
        F.sum(F.col("end") - F.col("start")).alias("duration_ms"),
        F.flatten(F.collect_list("values")).alias("values"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list(
            F.when(F.col("h").isNull(), F.col("hours")))))).alias("hours"),
        F.min("start").alias("min_ts"), F.max("end").alias("max_ts"),
        F.sum("unranked").alias("unranked"))
    return per_visitor, obs, reasons


def figures_of(per_visitor):
    """Per (experiment, variant, h): the figures of the contract, sums of value exact."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    out_type = T.StructType([T.StructField("revenue", T.DoubleType()),
                             T.StructField("revenue_sq", T.DoubleType())])

    # Exact sums. The contract's revenue is the real sum of the doubles rounded once (fsum):
    # Spark's sum(double) rounds at every step and depends on the order; a DECIMAL(38, s) cannot
    # hold a double's exact value (12.34 is 12.339999999999999857891452847979962825775146484375,
    # 50 digits). So the group's values are collected (built-in) and summed here with math.fsum,
    # once per output row: revenue over all values, revenue_sq over each visitor's fsum squared.
    @F.pandas_udf(out_type)
    def revenue_figures(per_visitor_values: pd.Series) -> pd.DataFrame:
        revenue, revenue_sq = [], []
        for lists in per_visitor_values:
            lists = [] if lists is None else lists
            revenue.append(exact_fsum(x for values in lists for x in values))
            squares = []
            for values in lists:
                r = exact_fsum(values)
                squares.append(r * r)
            revenue_sq.append(exact_fsum(squares))
        return pd.DataFrame({"revenue": revenue, "revenue_sq": revenue_sq})

    s, c = F.col("sessions"), F.col("conversions")
    groups = per_visitor.groupBy("experiment", "variant", "h").agg(
        F.count(F.lit(1)).alias("visitors"), F.sum("sessions").alias("sessions"),
        F.sum("events").alias("events"), F.sum("pageviews").alias("pageviews"),
        F.sum("conversions").alias("conversions"), F.sum("bounces").alias("bounces"),
        F.sum("duration_ms").alias("duration_ms"),
        F.count_if(c > 0).alias("converted_visitors"), F.sum(s * s).alias("sessions_sq"),
        F.sum(c * c).alias("conversions_sq"), F.sum(s * c).alias("sessions_x_conversions"),
        F.collect_list(F.when(F.size("values") > 0, F.col("values"))).alias("values"),
        F.min("min_ts").alias("min_ts"), F.max("max_ts").alias("max_ts"),
        F.sum("unranked").alias("unranked"))
    return groups.select("*", revenue_figures("values").alias("r")).drop("values")


def multi_variant_of(per_visitor):
    """Visitors attributed to two or more variants of an experiment, per variant and in all."""
    from pyspark.sql import functions as F
    per_exp_visitor = (per_visitor.filter(F.col("h").isNull() & F.col("experiment").isNotNull())
                       .groupBy("experiment", "visitor").agg(F.collect_list("variant").alias("vs"))
                       .filter(F.size("vs") >= 2))
    per_variant = (per_exp_visitor.select("experiment", F.explode("vs").alias("variant"))
                   .groupBy("experiment", "variant").count())
    per_experiment = per_exp_visitor.groupBy("experiment").count()
    return per_variant, per_experiment


def uniques_of(per_visitor):
    """Rolling uniques from each (experiment, variant, visitor)'s sorted beacon hours."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    hs = F.col("hours")
    # A visitor counts in uniques_24h from each hour with a beacon through 23 hours later: runs
    # of hours less than 24 apart merge into one interval [first, last + 23].
    starts = F.filter(hs, lambda x, i: (i == 0) | (x > hs[i - 1] + 24))
    ends = F.filter(hs, lambda x, i: (i == F.size(hs) - 1) | (hs[i + 1] > x + 24))
    steps = F.concat(
        F.transform(hs, lambda x: F.struct(x.alias("at"), F.lit(1).alias("d1"), F.lit(0).alias("d24"))),
        F.transform(hs, lambda x: F.struct((x + 1).alias("at"), F.lit(-1).alias("d1"), F.lit(0).alias("d24"))),
        F.transform(starts, lambda x: F.struct(x.alias("at"), F.lit(0).alias("d1"), F.lit(1).alias("d24"))),
        F.transform(ends, lambda x: F.struct((x + 24).alias("at"), F.lit(0).alias("d1"), F.lit(-1).alias("d24"))))
    deltas = (per_visitor.filter(F.col("h").isNull())
              .select("experiment", "variant", F.explode(steps).alias("s"))
              .groupBy("experiment", "variant", F.col("s.at").alias("at"))
              .agg(F.sum("s.d1").alias("d1"), F.sum("s.d24").alias("d24")))
    by_hour = Window.partitionBy("experiment", "variant").orderBy("at")
    running = by_hour.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return (deltas.select(
                "experiment", "variant", "at", F.sum("d1").over(running).alias("u1"),
                F.sum("d24").over(running).alias("u24"), F.lead("at").over(by_hour).alias("next"))
            .filter(F.col("u24") > 0)
            .select("experiment", "variant", "u1", "u24",
                    F.explode(F.sequence("at", F.col("next") - 1)).alias("hour")))


FIGURES = ("visitors", "sessions", "events", "pageviews", "conversions", "revenue", "bounces",
           "duration_ms", "converted_visitors", "sessions_sq", "conversions_sq",
           "sessions_x_conversions", "revenue_sq")


def figures_dict(row) -> dict:
    d = {k: row[k] for k in FIGURES if k not in ("revenue", "revenue_sq")}
    d["revenue"] = row["r"]["revenue"]
    d["revenue_sq"] = row["r"]["revenue_sq"]
    return {k: d[k] for k in FIGURES}


def zero_figures() -> dict:
    return {k: (0.0 if k.startswith("revenue") else 0) for k in FIGURES}


def run(args) -> dict:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need pandas and pyarrow
    from pyspark.sql import SparkSession

    files = list_inputs(args.input)
    total_bytes = sum(os.path.getsize(full) for _rel, full in files)
    partitions = args.shuffle_partitions or max(8, min(400, -(-total_bytes // (64 << 20))))
    builder = (SparkSession.builder.master(args.master).appName("duet-batch-peer")
               .config("spark.driver.memory", args.driver_memory)
               .config("spark.sql.shuffle.partitions", str(partitions))
               .config("spark.sql.adaptive.enabled", "true")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    for kv in args.conf:
        k, _, v = kv.partition("=")
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LOGLEVEL", "ERROR"))
    print(f"spark: {len(files)} files, {total_bytes} bytes, master {args.master}, "
          f"{partitions} shuffle partitions", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    doc = {"experiments": {}, "site": zero_figures(),
           "input": {"lines": 0, "bad_rows": 0, "duplicates": 0, "valid_beacons": 0,
                     "bad_rows_by_reason": {}},
           "event_time": {"min_ms": 0, "max_ms": 0}, "hourly": [], "uniques": []}
    if not files:
        return doc

    per_visitor, obs, reasons = build_job(spark, files)
    per_visitor = per_visitor.persist()

    def collect(name, df):
        t = time.monotonic()
        rows = df.collect()
        print(f"spark: {name}: {len(rows)} rows in {time.monotonic() - t:.1f} s",
              file=sys.stderr, flush=True)
        return rows

    groups = collect("totals and hourly", figures_of(per_visitor))  # runs the whole pipeline
    counts = obs.get
    mv_variant, mv_exp = (collect("multiple variants", x) for x in multi_variant_of(per_visitor))
    uniques = collect("uniques", uniques_of(per_visitor))
    per_visitor.unpersist()
    elapsed = time.monotonic() - t0

    if any(r["unranked"] for r in groups):
        raise RuntimeError("a file path Spark read is not in the listing (read order unknown)")
    mv_by_variant = {(r["experiment"], r["variant"]): r["count"] for r in mv_variant}
    mv_by_exp = {r["experiment"]: r["count"] for r in mv_exp}
    site_total = None
    variants = {}
    hourly = []
    for r in groups:
        e, v, h = r["experiment"], r["variant"], r["h"]
        if h is None and e is None:
            site_total = r
        elif h is None:
            f = figures_dict(r)
            f["visitors_in_multiple_variants"] = mv_by_variant.get((e, v), 0)
            variants.setdefault(e, []).append((v, f))
        else:
            hourly.append(r)
    for e in sorted(variants):
        rows = []
        for v, f in sorted(variants[e]):
            ordered = {"variant": v}
            for k in FIGURES:
                ordered[k] = f[k]
                if k == "duration_ms":
                    ordered["visitors_in_multiple_variants"] = f["visitors_in_multiple_variants"]
            rows.append(ordered)
        doc["experiments"][e] = {"visitors_in_multiple_variants": mv_by_exp.get(e, 0),
                                 "variants": rows}

    def key(r, hour_field):
        return (r["experiment"] is not None, r["experiment"] or "", r["variant"] or "",
                r[hour_field])

    valid_beacons = 0
    if site_total is not None:
        doc["site"] = figures_dict(site_total)
        valid_beacons = site_total["events"]
        doc["event_time"] = {"min_ms": site_total["min_ts"], "max_ms": site_total["max_ts"]}
    by_reason = {k: counts[k] for k in sorted(reasons) if counts[k] > 0}
    bad_rows = sum(by_reason.values())
    doc["input"] = {"lines": counts["lines"], "bad_rows": bad_rows,
                    "duplicates": counts["valid_lines"] - valid_beacons,
                    "valid_beacons": valid_beacons, "bad_rows_by_reason": by_reason}
    assert counts["lines"] == bad_rows + counts["valid_lines"], "a line with an unknown reason"
    for r in sorted(hourly, key=lambda r: key(r, "h")):
        doc["hourly"].append({"experiment": r["experiment"], "variant": r["variant"],
                              "hour": hour_str(r["h"]), **figures_dict(r)})
    for r in sorted(uniques, key=lambda r: key(r, "hour")):
        doc["uniques"].append({"experiment": r["experiment"], "variant": r["variant"],
                               "hour": hour_str(r["hour"]), "uniques_1h": r["u1"],
                               "uniques_24h": r["u24"]})
    inp = doc["input"]
    print(f"spark: {inp['lines']} lines ({inp['valid_beacons']} valid, {inp['duplicates']} "
          f"duplicates, {inp['bad_rows']} bad rows; {counts['exact_path']} lines on the exact "
          f"path) in {elapsed:.1f} s",
          file=sys.stderr, flush=True)
    spark.stop()
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="beacon contract v1 batch figures in PySpark")
    ap.add_argument("--input", required=True, help="master dataset folder (or one file)")
    ap.add_argument("--out", required=True, help="write the report JSON here")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--shuffle-partitions", type=int, default=0,
                    help="spark.sql.shuffle.partitions (default: input bytes / 64 MiB, 8..400)")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="any other Spark setting (repeatable)")
    args = ap.parse_args(argv)
    doc = run(args)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
