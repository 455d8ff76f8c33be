"""The Spark Structured Streaming peer of `duet stream`: beacon contract v1 over a Kafka topic, as
close as Structured Streaming's built-in operators allow (bench/spark/README-stream.md lists
where it differs).

    duet_stream.py run --bootstrap 127.0.0.1:PORT --topic T --checkpoint DIR --sink FILE.sqlite
                       [--trigger 250ms | --available-now] [--output-mode append|complete]
                       [--max-offsets N] [--jars J1,J2]
    duet_stream.py report --sink FILE.sqlite      per-variant figures of the closed sessions (JSON)

The query, one micro-batch at a time (local[2], both cores):
  1. parse each Kafka value with try_parse_json (VARIANT) and validate every contract field with
     exact JSON types (a number is not a string, 1.0 is not an integer) and byte lengths;
  2. count lines, bad rows and the largest event time per micro-batch (Dataset.observe);
  3. watermark on event time (10 min, duet's --lateness), dropDuplicatesWithinWatermark(id);
  4. session_window(event_time, 30 min) per visitor: events, pageviews, conversion, revenue,
     first/last ts, and every (ts, id, experiments) for attribution;
  5. sink (foreachBatch; append mode: the sessions closed by this batch, complete mode: every
     session, open ones included, and the figures are replaced): attribution by the earliest beacon
     of the session naming the experiment, then per (experiment, variant) and per hour totals,
     and per (experiment, variant, visitor) sums for visitors, converted visitors and the
     squared sums, all upserted into SQLite in one transaction per batch id (a batch replayed
     after a crash is skipped: exactly once).

Progress (offsets, observed counts, durations) goes to --progress as JSON lines, one per
micro-batch, written by a StreamingQueryListener after the batch is committed.
"""
import argparse
import json
import os
import signal
import sqlite3
import sys
import threading
import time

SITE = ""  # experiment and variant of the site-wide rows
HOUR_MS = 3_600_000

SINK_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(
  batch_id INTEGER PRIMARY KEY, committed_ms INTEGER NOT NULL, sessions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS variant_hour(
  experiment TEXT NOT NULL, variant TEXT NOT NULL, hour INTEGER NOT NULL,
  sessions INTEGER NOT NULL, events INTEGER NOT NULL, pageviews INTEGER NOT NULL,
  conversions INTEGER NOT NULL, revenue REAL NOT NULL, bounces INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL, PRIMARY KEY(experiment, variant, hour)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS variant_visitor(
  experiment TEXT NOT NULL, variant TEXT NOT NULL, visitor TEXT NOT NULL,
  sessions INTEGER NOT NULL, conversions INTEGER NOT NULL, revenue REAL NOT NULL,
  PRIMARY KEY(experiment, variant, visitor)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS variant_summary(
  experiment TEXT NOT NULL, variant TEXT NOT NULL, visitors INTEGER NOT NULL,
  converted_visitors INTEGER NOT NULL, sessions_sq INTEGER NOT NULL,
  conversions_sq INTEGER NOT NULL, sessions_x_conversions INTEGER NOT NULL,
  revenue_sq REAL NOT NULL, experiment_multi INTEGER NOT NULL,
  PRIMARY KEY(experiment, variant)) WITHOUT ROWID;
"""


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--sink", required=True)
    r.add_argument("--progress", default="")
    r.add_argument("--trigger", default="250ms", help="processingTime trigger (e.g. 250ms, 1s)")
    r.add_argument("--available-now", action="store_true",
                   help="process what the topic holds, commit and exit (duet stream --drain)")
    r.add_argument("--max-offsets", type=int, default=1_000_000,
                   help="maxOffsetsPerTrigger (duet's --max-batch default)")
    r.add_argument("--output-mode", choices=("append", "complete"), default="append",
                   help="append: closed sessions only; complete: every session at every "
                        "trigger, open ones included (the state is never dropped)")
    r.add_argument("--lateness", default="10 minutes")
    r.add_argument("--session-gap", default="30 minutes")
    r.add_argument("--cores", type=int, default=2)
    r.add_argument("--driver-memory", default="4g")
    r.add_argument("--jars", default=os.environ.get("DUET_SPARK_JARS", ""))
    r.add_argument("--timeout", type=float, default=1800, help="stop the query after this many s")
    s = sub.add_parser("report")
    s.add_argument("--sink", required=True)
    return p.parse_args(argv)


def validated(F, value):
    """Columns of one Kafka value checked against contract v1: `ok` and the typed fields.

    try_parse_json rejects what the contract calls json.syntax, and also every duplicate key
    (the contract ignores duplicated unknown fields: a small difference, see the README)."""
    text = value.cast("string")  # the bytes as they are; is_valid_utf8 checks them
    v = F.try_parse_json(text)

    def raw(name):
        return F.try_variant_get(v, f"$.{name}", "variant")

    def kind(name):
        return F.schema_of_variant(raw(name))

    def string_ok(name, lo, hi, required):
        s = F.octet_length(F.try_variant_get(v, f"$.{name}", "string"))
        present = (kind(name) == "STRING") & s.between(lo, hi)
        return present if required else (raw(name).isNull() | present)

    ts = F.try_variant_get(v, "$.ts", "bigint")
    exps = F.try_variant_get(v, "$.experiments", "map<string,variant>")
    exps_ok = raw("experiments").isNull() | (
        exps.isNotNull() & (F.size(exps) <= 32)
        & F.forall(F.map_keys(exps), lambda k: F.octet_length(k).between(1, 64))
        & F.forall(F.map_values(exps), lambda x: (F.schema_of_variant(x) == "STRING")
                   & F.octet_length(F.variant_get(x, "$", "string")).between(1, 64)))
    value_kind = kind("value")
    number = value_kind.isin("BIGINT", "DOUBLE") | value_kind.startswith("DECIMAL")
    amount = F.try_variant_get(v, "$.value", "double")
    value_ok = raw("value").isNull() | (number & (amount >= 0) & ~F.isnan(amount)
                                        & (F.abs(amount) < float("inf")))
    ok = (F.octet_length(value) <= 65536) & F.is_valid_utf8(text) & v.isNotNull() \
        & string_ok("id", 1, 64, True) & string_ok("visitor", 1, 128, True) \
        & (kind("ts") == "BIGINT") & ts.between(946684800000, 4102444800000) \
        & string_ok("type", 1, 32, True) & exps_ok & value_ok \
        & string_ok("page", 0, 2048, False) & string_ok("device", 0, 2048, False) \
        & string_ok("referrer", 0, 2048, False)
    return [
        F.coalesce(ok, F.lit(False)).alias("ok"),
        F.try_variant_get(v, "$.id", "string").alias("id"),
        F.try_variant_get(v, "$.visitor", "string").alias("visitor"),
        ts.alias("ts"),
        F.try_variant_get(v, "$.type", "string").alias("type"),
        F.try_variant_get(v, "$.experiments", "map<string,string>").alias("exps"),
        F.coalesce(amount, F.lit(0.0)).alias("value"),
    ]


def build_query(spark, args, sink):
    from pyspark.sql import functions as F
    raw = (spark.readStream.format("kafka")
           .option("kafka.bootstrap.servers", args.bootstrap)
           .option("subscribe", args.topic)
           .option("startingOffsets", "earliest")
           .option("maxOffsetsPerTrigger", str(args.max_offsets))
           .load())
    checked = raw.select(*validated(F, F.col("value")))
    counted = checked.observe(
        "input", F.count(F.lit(1)).alias("lines"),
        F.sum(F.when(~F.col("ok"), 1).otherwise(0)).alias("bad_rows"),
        F.max(F.when(F.col("ok"), F.col("ts"))).alias("max_event_ms"))
    beacons = (counted.where("ok").drop("ok")
               .withColumn("event_time", F.timestamp_millis("ts"))
               .withWatermark("event_time", args.lateness)
               .dropDuplicatesWithinWatermark(["id"])
               .observe("dedup", F.count(F.lit(1)).alias("beacons")))
    sessions = (beacons.groupBy(F.session_window("event_time", args.session_gap), "visitor")
                .agg(F.count(F.lit(1)).alias("events"),
                     F.sum(F.when(F.col("type") == "pageview", 1).otherwise(0)).alias("pageviews"),
                     F.max(F.when(F.col("type") == "conversion", 1).otherwise(0)).alias("converted"),
                     F.sum(F.when(F.col("type") == "conversion", F.col("value"))
                           .otherwise(0.0)).alias("revenue"),
                     F.min("ts").alias("start_ts"), F.max("ts").alias("end_ts"),
                     F.collect_list(F.when(F.size("exps") > 0, F.struct("ts", "id", "exps")))
                     .alias("marks")))
    writer = (sessions.writeStream.outputMode(args.output_mode)
              .option("checkpointLocation", args.checkpoint)
              .foreachBatch(sink.write_batch))
    if args.available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=trigger_text(args.trigger))
    return writer.start()


def trigger_text(t):
    for suffix, unit in (("ms", "milliseconds"), ("s", "seconds")):
        if t.endswith(suffix) and t[: -len(suffix)].isdigit():
            return f"{t[:-len(suffix)]} {unit}"
    return t


class Sink:
    """foreachBatch target: the closed sessions of one micro-batch, attributed and summed, then
    added to SQLite in one transaction keyed by the batch id (a replayed id is skipped)."""

    def __init__(self, path, replace=False):
        self.path = path
        self.replace = replace  # complete mode: each batch holds every session, not new ones
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SINK_SCHEMA)

    def figures(self, closed):
        """Per (experiment, variant, hour) sums, and per (experiment, variant, visitor) sums
        (append mode: added to earlier batches' in SQLite) or, in complete mode where the batch
        holds every session, the per-variant figures made of them (a few rows to collect);
        experiment = variant = '' for the site-wide rows."""
        from pyspark.sql import functions as F
        s = (closed.withColumn("sid", F.monotonically_increasing_id())
             .withColumn("hour", F.floor(F.col("start_ts") / HOUR_MS) * HOUR_MS)
             .withColumn("duration", F.col("end_ts") - F.col("start_ts"))
             .drop("session_window"))
        # Attribution: per session and experiment, the variant of the earliest (ts, id) beacon
        # naming the experiment.
        marks = s.select("sid", F.explode("marks").alias("m")).select(
            "sid", F.col("m.ts").alias("ts"), F.col("m.id").alias("id"),
            F.explode("m.exps").alias("experiment", "variant"))
        attributed = (marks.groupBy("sid", "experiment")
                      .agg(F.min_by("variant", F.struct("ts", "id")).alias("variant")))
        site = s.select("*", F.lit(SITE).alias("experiment"), F.lit(SITE).alias("variant"))
        rows = site.unionByName(s.join(attributed, "sid")).cache()
        hourly = rows.groupBy("experiment", "variant", "hour").agg(
            F.count(F.lit(1)), F.sum("events"), F.sum("pageviews"), F.sum("converted"),
            F.sum("revenue"), F.sum(F.when(F.col("events") == 1, 1).otherwise(0)),
            F.sum("duration")).collect()
        visitors = rows.groupBy("experiment", "variant", "visitor").agg(
            F.count(F.lit(1)).alias("s"), F.sum("converted").alias("c"),
            F.sum("revenue").alias("r"))
        if self.replace:
            multi = (visitors.where(F.col("experiment") != SITE).groupBy("experiment", "visitor")
                     .count().where("count > 1").groupBy("experiment").count()
                     .withColumnRenamed("count", "multi"))
            visitors = (visitors.groupBy("experiment", "variant").agg(
                F.count(F.lit(1)), F.sum(F.when(F.col("c") > 0, 1).otherwise(0)),
                F.sum(F.col("s") * F.col("s")), F.sum(F.col("c") * F.col("c")),
                F.sum(F.col("s") * F.col("c")), F.sum(F.col("r") * F.col("r")))
                .join(multi, "experiment", "left").fillna(0, ["multi"]))
        visitors = visitors.collect()
        rows.unpersist()
        return hourly, visitors

    def write_batch(self, sessions, batch_id):
        db = sqlite3.connect(self.path, timeout=30)
        try:
            if db.execute("SELECT 1 FROM batches WHERE batch_id=?", (batch_id,)).fetchone():
                return
            # One run of the stateful plan per batch: the closed sessions are cached, counted,
            # and only a batch that closed sessions pays for attribution and sums.
            closed = sessions.persist()
            n = closed.count()
            hourly, visitors = (self.figures(closed) if n else ([], []))
            closed.unpersist()
            with db:
                if self.replace:
                    db.execute("DELETE FROM variant_hour")
                    db.execute("DELETE FROM variant_visitor")
                    db.execute("DELETE FROM variant_summary")
                    db.execute("DELETE FROM batches")
                db.executemany(
                    "INSERT INTO variant_hour VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                    "sessions=sessions+excluded.sessions, events=events+excluded.events, "
                    "pageviews=pageviews+excluded.pageviews, "
                    "conversions=conversions+excluded.conversions, "
                    "revenue=revenue+excluded.revenue, bounces=bounces+excluded.bounces, "
                    "duration_ms=duration_ms+excluded.duration_ms",
                    [tuple(r) for r in hourly])
                if self.replace:
                    db.executemany("INSERT INTO variant_summary VALUES(?,?,?,?,?,?,?,?,?)",
                                   [tuple(r) for r in visitors])
                else:
                    db.executemany(
                        "INSERT INTO variant_visitor VALUES(?,?,?,?,?,?) ON CONFLICT DO UPDATE "
                        "SET sessions=sessions+excluded.sessions, "
                        "conversions=conversions+excluded.conversions, "
                        "revenue=revenue+excluded.revenue",
                        [tuple(r) for r in visitors])
                db.execute("INSERT INTO batches VALUES(?,?,?)",
                           (batch_id, int(time.time() * 1000), n))
        finally:
            db.close()


def report(path):
    db = sqlite3.connect(path)
    db.executescript(SINK_SCHEMA)  # a sink written before a table existed reads as empty
    out = {"experiments": {}, "site": None}
    figures = {}
    for e, v, *f in db.execute(
            "SELECT experiment, variant, sum(sessions), sum(events), sum(pageviews), "
            "sum(conversions), sum(revenue), sum(bounces), sum(duration_ms) FROM variant_hour "
            "GROUP BY 1, 2 ORDER BY 1, 2"):
        figures[(e, v)] = dict(zip(("sessions", "events", "pageviews", "conversions", "revenue",
                                    "bounces", "duration_ms"), f))
    complete = db.execute("SELECT count(*) FROM variant_summary").fetchone()[0] > 0
    per_visitor = (
        "SELECT experiment, variant, visitors, converted_visitors, sessions_sq, conversions_sq, "
        "sessions_x_conversions, revenue_sq FROM variant_summary" if complete else
        "SELECT experiment, variant, count(*), sum(conversions > 0), sum(sessions*sessions), "
        "sum(conversions*conversions), sum(sessions*conversions), sum(revenue*revenue) "
        "FROM variant_visitor GROUP BY 1, 2")
    for e, v, *f in db.execute(per_visitor):
        figures[(e, v)].update(zip(("visitors", "converted_visitors", "sessions_sq",
                                    "conversions_sq", "sessions_x_conversions", "revenue_sq"), f))
    multi = dict(db.execute(
        "SELECT experiment, max(experiment_multi) FROM variant_summary GROUP BY 1" if complete else
        "SELECT experiment, count(*) FROM (SELECT experiment, visitor FROM variant_visitor "
        "WHERE experiment != '' GROUP BY 1, 2 HAVING count(*) > 1) GROUP BY 1"))
    for (e, v), f in sorted(figures.items()):
        if e == SITE:
            out["site"] = f
            continue
        exp = out["experiments"].setdefault(e, {"visitors_in_multiple_variants": multi.get(e, 0),
                                                "variants": []})
        exp["variants"].append({"variant": v, **f})
    out["batches"] = db.execute("SELECT count(*), coalesce(sum(sessions), 0) FROM batches").fetchone()
    print(json.dumps(out, indent=1))


def make_listener(path):
    from pyspark.sql.streaming import StreamingQueryListener

    class Progress(StreamingQueryListener):
        """One JSON line per committed micro-batch: Spark posts progress after the commit."""

        def __init__(self):
            self.out = open(path, "a", buffering=1) if path else None

        def onQueryStarted(self, event):
            if self.out:
                self.out.write(json.dumps({"started": int(time.time() * 1000)}) + "\n")

        def onQueryProgress(self, event):
            if not self.out:
                return
            p = event.progress
            metrics = {k: v.asDict() for k, v in (p.observedMetrics or {}).items()}
            src = p.sources[0] if p.sources else None
            self.out.write(json.dumps({
                "batch": p.batchId, "wall_ms": int(time.time() * 1000), "timestamp": p.timestamp,
                "rows": p.numInputRows, "duration_ms": p.durationMs,
                "end_offset": json.loads(src.endOffset) if src and src.endOffset else None,
                "watermark": (p.eventTime or {}).get("watermark"),
                "observed": metrics,
                "state_rows": [o.numRowsTotal for o in p.stateOperators],
                "state_bytes": [o.memoryUsedBytes for o in p.stateOperators],
            }, default=str) + "\n")

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            if event.exception and self.out:
                self.out.write(json.dumps({"terminated": str(event.exception)}) + "\n")

    return Progress()


def run(args):
    from pyspark.sql import SparkSession
    builder = (SparkSession.builder.appName("duet-stream-peer")
               .master(f"local[{args.cores}]")
               .config("spark.driver.memory", args.driver_memory)
               .config("spark.ui.enabled", "false")
               # One state-store partition per core: the default 200 is for clusters.
               .config("spark.sql.shuffle.partitions", str(args.cores))
               .config("spark.sql.session.timeZone", "UTC"))
    if args.jars:
        builder = builder.config("spark.jars", args.jars)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark.streams.addListener(make_listener(args.progress))
    sink = Sink(args.sink, replace=args.output_mode == "complete")
    query = build_query(spark, args, sink)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    deadline = time.monotonic() + args.timeout
    failed = None
    while not stop.is_set() and time.monotonic() < deadline:
        if query.awaitTermination(0.2):
            break
    if query.isActive:
        query.stop()
    failed = query.exception()
    # Listener events are delivered asynchronously: let the last progress event land.
    time.sleep(0.5)
    spark.stop()
    if failed:
        print(f"duet_stream: query failed: {failed}", file=sys.stderr)
        return 1
    return 0


def main(argv):
    args = parse_args(argv)
    if args.cmd == "report":
        report(args.sink)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
