#!/usr/bin/env bash
# Streaming side by side: `duet stream` vs Spark Structured Streaming (bench/spark/duet_stream.py)
# reading the same Kafka topics of a local broker (scripts/kafka.sh, KRaft, 127.0.0.1 only), one
# engine after the other, each on both cores:
#   (a) sustained throughput: N generated beacons preloaded into a 2-partition topic, then each
#       engine consumes and commits all of them and exits (duet --drain, Spark availableNow):
#       wall time, lines/s, CPU seconds and peak RSS of the engine's whole process tree;
#   (b) end-to-end latency: live beacons (event time = now) produced at RATE/s for SECONDS s in
#       batches every 100 ms; for each batch, the time from handing it to the producer until
#       the engine has committed offsets covering it (duet: its store's speed_scopes positions,
#       the same commit `duet report --layer speed` reads; Spark: the checkpoint's commit log,
#       written after the foreachBatch sink). Percentiles over the batches after WARMUP s.
#
#   bash bench/spark/stream_bench.sh DUET_BIN OUT_DIR      writes OUT_DIR/stream.md
#
# Settings (environment): STREAM_BENCH_BEACONS (2000000), STREAM_BENCH_DUET_RUNS (3),
# STREAM_BENCH_SPARK_RUNS (1), STREAM_BENCH_RATE (3000 beacons/s), STREAM_BENCH_SECONDS (120),
# STREAM_BENCH_WARMUP (30), STREAM_BENCH_INTERVAL (250ms: duet --interval and Spark's
# processingTime trigger). Every loop is bounded; every process started here is stopped on exit.
set -euo pipefail

duet=$(realpath "${1:?usage: stream_bench.sh DUET_BIN OUT_DIR}")
out=${2:?usage: stream_bench.sh DUET_BIN OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
beacons=${STREAM_BENCH_BEACONS:-2000000}
duet_runs=${STREAM_BENCH_DUET_RUNS:-3}
spark_runs=${STREAM_BENCH_SPARK_RUNS:-1}
rate=${STREAM_BENCH_RATE:-3000}
seconds=${STREAM_BENCH_SECONDS:-120}
warmup=${STREAM_BENCH_WARMUP:-30}
interval=${STREAM_BENCH_INTERVAL:-250ms}
[ "$beacons" -le 5000000 ] || { echo "stream_bench: at most 5 M beacons" >&2; exit 2; }
[ "$seconds" -le 300 ] && [ "$rate" -le 20000 ] || { echo "stream_bench: at most 300 s at 20 k/s" >&2; exit 2; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/stream-work"
rm -rf "$work" && mkdir -p "$work"
python=$(bash "$here/setup.sh" python)
jars=$(bash "$here/setup.sh" jars)
kafka="$src/scripts/kafka.sh"
monitors=()

cleanup() {
  local p
  for p in "${monitors[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${monitors[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$p" 2>/dev/null || true
  done
  bash "$kafka" stop "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work/data" "$work/kafka/data" "$work"/*.sqlite* "$work"/ck-*
}
trap cleanup EXIT
trap 'exit 143' TERM INT
log() { echo "stream_bench: $*" >&2; }

# --- helpers (written here so that this script stays the only entry point) --------------------
cat >"$work/monitor.py" <<'PY'
"""monitor.py OUT.json -- CMD...: runs CMD; CPU of its whole process tree (a child subreaper, so
every descendant is reaped here or by its parent: the rusage sums are exact), peak summed RSS
(sampled every 100 ms), wall time. SIGTERM/SIGINT are forwarded to CMD."""
import ctypes, json, os, signal, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[3:]
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
page = os.sysconf("SC_PAGE_SIZE")
t0 = time.monotonic()
child = subprocess.Popen(cmd)
signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGTERM))
me = os.getpid()
def tree():
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [me]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found
def rss(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total
peak, user, system, code, root_wall, next_sample = 0, 0.0, 0.0, None, None, 0.0
deadline = None
while True:
    now = time.monotonic()
    if now >= next_sample:
        pids = tree()
        peak = max(peak, rss(pids))
        next_sample = now + 0.1
        if code is not None and not pids:
            break
    try:
        pid, status, ru = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid:
        user += ru.ru_utime
        system += ru.ru_stime
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
            root_wall = time.monotonic() - t0
            deadline = time.monotonic() + 60
        continue
    if deadline and time.monotonic() > deadline:  # orphans that outlive the engine by 60 s
        for p in tree():
            try: os.kill(p, signal.SIGKILL)
            except OSError: pass
        deadline = None
    time.sleep(0.02)
json.dump({"exit": code, "wall_s": root_wall, "wall_all_s": time.monotonic() - t0,
           "cpu_user_s": user, "cpu_sys_s": system, "peak_rss_mb": peak / 2**20},
          open(out, "w"))
sys.exit(code or 0)
PY

cat >"$work/latency.py" <<'PY'
"""latency.py duet|spark POSITION BOOTSTRAP TOPIC RATE SECONDS WARMUP OUT.json: produces live
beacons (event time = now) in batches every 100 ms to partitions 0 and 1 (visitor-hashed; one
kcat per partition, so every batch's end offset per partition is known), polls the engine's
committed offsets every 10 ms (POSITION: duet's SQLite store, or Spark's checkpoint folder), and
writes each batch's latency: hand-over to the producer -> committed offsets cover the batch."""
import json, os, random, sqlite3, subprocess, sys, threading, time, zlib
engine, position, bootstrap, topic = sys.argv[1:5]
rate, seconds, warmup = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
out = sys.argv[8]
tick = 0.1
per_tick = max(1, round(rate * tick))

def committed_duet():
    try:
        db = sqlite3.connect(f"file:{position}?mode=ro", uri=True, timeout=1)
        try:
            rows = db.execute("SELECT positions FROM speed_scopes WHERE scope LIKE ?",
                              (topic + "/%",)).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    offs = {}
    for (pos,) in rows:
        p, o = pos.strip().splitlines()[-1].split("\t")
        offs[int(p)] = int(o)
    return offs

spark_cache = {}
def committed_spark():
    try:
        done = [int(n) for n in os.listdir(os.path.join(position, "commits")) if n.isdigit()]
    except OSError:
        return None
    if not done:
        return None
    n = max(done)
    if n not in spark_cache:
        with open(os.path.join(position, "offsets", str(n))) as f:
            spark_cache[n] = {int(p): o for p, o in json.loads(f.read().splitlines()[2])[topic].items()}
    return spark_cache[n]

committed = committed_duet if engine == "duet" else committed_spark
timeline, stop = [], threading.Event()
def poll():
    last = None
    while not stop.is_set():
        c = committed()
        if c and c != last:
            timeline.append((time.time(), dict(c)))
            last = c
        time.sleep(0.01)

kcat = [subprocess.Popen(["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(p), "-K", "\x1f",
                          "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5"],
                         stdin=subprocess.PIPE) for p in (0, 1)]
rng = random.Random(7)
visitors = [f"v{rng.getrandbits(64):016x}" for _ in range(20000)]
variants = {"checkout_button": ("control", "treatment"), "pricing_page": ("control", "v1", "v2")}
poller = threading.Thread(target=poll, daemon=True)
poller.start()
batches, cum, seq = [], [0, 0], 0
t0 = time.time()
n_ticks = int(seconds / tick)
for k in range(n_ticks):
    wait = t0 + k * tick - time.time()
    if wait > 0:
        time.sleep(wait)
    parts = ([], [])
    now_ms = int(time.time() * 1000)
    for _ in range(per_tick):
        v = rng.choice(visitors)
        h = zlib.crc32(v.encode())
        r = rng.random()
        b = {"id": f"{topic}-{seq}", "visitor": v, "ts": now_ms,
             "type": "pageview" if r < 0.6 else "conversion" if r < 0.63 else "click",
             "page": "/p", "experiments": {e: vs[h % len(vs)] for e, vs in variants.items()}}
        if b["type"] == "conversion":
            b["value"] = round(rng.uniform(5, 200), 2)
        seq += 1
        parts[h % 2].append(v.encode() + b"\x1f" + json.dumps(b, separators=(",", ":")).encode() + b"\n")
    sent = time.time()
    for p in (0, 1):
        if parts[p]:
            kcat[p].stdin.write(b"".join(parts[p]))
            kcat[p].stdin.flush()
        cum[p] += len(parts[p])
    batches.append((sent, cum[0], cum[1]))
for k in kcat:
    k.stdin.close()
for k in kcat:
    k.wait(timeout=60)
end = time.time() + 120
while time.time() < end:
    if timeline and all(timeline[-1][1].get(p, 0) >= cum[p] for p in (0, 1)):
        break
    time.sleep(0.05)
stop.set()
poller.join()
lat, lost = [], 0
i = 0
for sent, c0, c1 in batches:
    while i < len(timeline) and not (timeline[i][1].get(0, 0) >= c0 and timeline[i][1].get(1, 0) >= c1):
        i += 1
    if i == len(timeline):
        lost += 1
        continue
    lat.append((sent - t0, (timeline[i][0] - sent) * 1000))
measured = sorted(ms for at, ms in lat if at >= warmup)
def pct(q):
    return measured[min(len(measured) - 1, int(q * len(measured)))] if measured else None
json.dump({"produced": seq, "batches": len(batches), "per_batch": per_tick, "not_visible": lost,
           "measured_batches": len(measured), "p50_ms": pct(0.50), "p95_ms": pct(0.95),
           "p99_ms": pct(0.99), "max_ms": measured[-1] if measured else None,
           "max_all_ms": max((ms for _, ms in lat), default=None),
           "commits": len(timeline), "series": [(round(a, 2), round(m, 1)) for a, m in lat]},
          open(out, "w"))
PY

# --- the broker and the throughput topic -------------------------------------------------------
bootstrap=$(DUET_KAFKA_PARTITIONS=2 bash "$kafka" start "$work/kafka" 2>"$work/kafka-start.log" | tail -n 1)
case "$bootstrap" in 127.0.0.1:*) ;; *) log "broker did not start: $bootstrap"; exit 1 ;; esac
log "broker $bootstrap"

make_topic() {  # auto-created by a metadata request, 2 partitions (DUET_KAFKA_PARTITIONS)
  for _ in $(seq 1 50); do
    kcat -L -b "$bootstrap" -t "$1" 2>/dev/null | grep -q "with 2 partitions" && return 0
    sleep 0.2
  done
  log "topic $1 not created"; return 1
}
count_topic() { kcat -C -b "$bootstrap" -t "$1" -e -q -o beginning -f 'x\n' 2>/dev/null | wc -l; }

make_topic tput
"$duet" generate --out "$work/data" --beacons "$beacons" --seed 42 >/dev/null 2>&1
python3 "$src/tests/integration/kafka_produce.py" "$work/data" 2>"$work/produce.log" |
  kcat -P -b "$bootstrap" -t tput -K $'\x1f' -X enable.idempotence=true -X acks=all -X linger.ms=20 2>/dev/null
in_topic=$(count_topic tput)
[ "$in_topic" -eq "$beacons" ] || { log "$in_topic messages in tput, expected $beacons"; exit 1; }
rm -rf "$work/data"
log "tput: $in_topic beacons in 2 partitions"

spark_cmd=("$python" "$here/duet_stream.py" run --bootstrap "$bootstrap" --jars "$jars")

# run_monitored NAME CMD...: a run under monitor.py, bounded to 15 min. In the background and
# waited for, so that a signal to this script reaches the trap at once.
run_monitored() {
  local name=$1; shift
  timeout -s TERM 900 python3 "$work/monitor.py" "$work/$name.res.json" -- "$@" \
    >"$work/$name.stdout" 2>"$work/$name.log" &
  local mon=$!
  monitors+=("$mon")
  wait "$mon" || { log "$name failed (log: $work/$name.log)"; tail -n 20 "$work/$name.log" >&2; return 1; }
}

# --- (a) throughput ----------------------------------------------------------------------------
for r in $(seq 1 "$duet_runs"); do
  log "throughput: duet run $r"
  run_monitored "tput-duet-$r" "$duet" stream --source "kafka://$bootstrap/tput" --group "tput-$r" \
    --store "sqlite:$work/tput-duet-$r.sqlite" --drain
  "$duet" report --store "sqlite:$work/tput-duet-$r.sqlite" --layer speed --json >"$work/tput-duet-$r.report.json"
done
for r in $(seq 1 "$spark_runs"); do
  log "throughput: spark run $r"
  run_monitored "tput-spark-$r" "${spark_cmd[@]}" --topic tput --available-now \
    --checkpoint "$work/ck-tput-$r" --sink "$work/tput-spark-$r.sqlite" --progress "$work/tput-spark-$r.progress.jsonl"
  python3 "$here/duet_stream.py" report --sink "$work/tput-spark-$r.sqlite" >"$work/tput-spark-$r.report.json"
done

# --- (b) latency -------------------------------------------------------------------------------
# wait_for FILE PATTERN COUNT SECONDS
wait_for() {
  local deadline=$((SECONDS + $4))
  while [ $SECONDS -lt $deadline ]; do
    local n
    n=$(grep -c -- "$2" "$1" 2>/dev/null) || n=0
    [ "$n" -ge "$3" ] && return 0
    sleep 0.2
  done
  log "timed out waiting for '$2' in $1"; return 1
}

# latency NAME ENGINE READY_FILE READY_PATTERN POSITION CMD...: topic lat-NAME, results lat-NAME.*
latency() {
  local name=$1 engine=$2 ready=$3 pattern=$4 position=$5; shift 5
  local topic="lat-$name"
  make_topic "$topic"
  python3 "$work/monitor.py" "$work/lat-$name.res.json" -- "$@" >"$work/lat-$name.stdout" 2>"$work/lat-$name.log" &
  local mon=$!
  monitors+=("$mon")
  wait_for "$ready" "$pattern" 1 120
  sleep 2
  log "latency: $name, $rate beacons/s for $seconds s"
  timeout -s KILL $((seconds + 200)) python3 "$work/latency.py" "$engine" "$position" "$bootstrap" "$topic" \
    "$rate" "$seconds" "$warmup" "$work/lat-$name.json" &
  local driver=$!
  monitors+=("$driver")
  wait "$driver"
  kill -TERM "$mon"
  for _ in $(seq 1 300); do kill -0 "$mon" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$mon" 2>/dev/null || true
  wait "$mon" || true
}

latency duet duet "$work/lat-duet.log" '"stream.partition_assigned"' "$work/lat-duet.sqlite" \
  "$duet" stream --source "kafka://$bootstrap/lat-duet" --group lat --store "sqlite:$work/lat-duet.sqlite" \
  --interval "$interval"
for mode in append complete; do
  latency "spark-$mode" spark "$work/lat-spark-$mode.progress.jsonl" '"started"' "$work/ck-lat-$mode" \
    "${spark_cmd[@]}" --topic "lat-spark-$mode" --trigger "$interval" --output-mode "$mode" \
    --checkpoint "$work/ck-lat-$mode" --sink "$work/lat-spark-$mode.sqlite" \
    --progress "$work/lat-spark-$mode.progress.jsonl"
done

# --- the report --------------------------------------------------------------------------------
machine=$(cat <<EOF
- $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GB RAM, Linux $(uname -r)
- duet $("$duet" --version 2>&1 | head -n 1 | awk '{print $2}') (commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)); pyspark $("$python" -c 'import pyspark; print(pyspark.__version__)') (local[2]) with spark-sql-kafka-0-10_2.13 $(basename "$(tr , '\n' <<<"$jars" | grep spark-sql-kafka)" .jar | sed 's/.*_2.13-//'); $(java -version 2>&1 | head -n 1)
- Kafka broker $(ls "${DUET_KAFKA_LIBS:-$HOME/.cache/duet/kafka-libs}" | sed -n 's/^kafka_2.13-\(.*\)\.jar$/\1/p') (scripts/kafka.sh: KRaft, one JVM, 512 MB heap) on the same 2 cores; producer kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\) .*librdkafka \([^ ]*\) .*/\1 (librdkafka \2)/p')
EOF
)
python3 - "$work" "$out/stream.md" "$beacons" "$duet_runs" "$spark_runs" "$rate" "$seconds" "$warmup" "$interval" "$machine" <<'PY'
import json, statistics, sys
work, md, beacons, druns, sruns, rate, seconds, warmup, interval, machine = sys.argv[1:11]
beacons, druns, sruns = int(beacons), int(druns), int(sruns)
load = lambda p: json.load(open(f"{work}/{p}"))
def runs(engine, n):
    rs = [load(f"tput-{engine}-{r}.res.json") for r in range(1, n + 1)]
    for r in rs:
        assert r["exit"] == 0, r
    med = lambda k: statistics.median(x[k] for x in rs)
    span = lambda k: (min(x[k] for x in rs), max(x[k] for x in rs))
    return {"wall": med("wall_s"), "wall_span": span("wall_s"),
            "cpu": statistics.median(x["cpu_user_s"] + x["cpu_sys_s"] for x in rs),
            "rss": med("peak_rss_mb"), "n": n}
d, s = runs("duet", druns), runs("spark", sruns)
# Spark's own processing window: first micro-batch start to last commit (start-up excluded).
prog = [json.loads(l) for l in open(f"{work}/tput-spark-1.progress.jsonl") if '"batch"' in l]
from datetime import datetime
first = datetime.fromisoformat(prog[0]["timestamp"].replace("Z", "+00:00")).timestamp()
spark_proc = max(p["wall_ms"] for p in prog) / 1000 - first
spark_lines = sum((p["observed"].get("input") or {}).get("lines") or 0 for p in prog)
spark_bad = sum((p["observed"].get("input") or {}).get("bad_rows") or 0 for p in prog)
spark_beacons = sum((p["observed"].get("dedup") or {}).get("beacons") or 0 for p in prog)
spark_batches = len([p for p in prog if p["rows"]])
# duet's own window: stream.start to stream.stop in its log (start-up is a few ms).
ev = [json.loads(l) for l in open(f"{work}/tput-duet-1.log") if l.startswith("{")]
ts = lambda e: datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
duet_assigned = [ts(e) for e in ev if e["event"] == "stream.partition_assigned"]
duet_proc = ts([e for e in ev if e["event"] == "stream.stop"][0]) - min(duet_assigned)
dr = load("tput-duet-1.report.json")
sr = load("tput-spark-1.report.json")
lat = {k: load(f"lat-{k}.json") for k in ("duet", "spark-append", "spark-complete")}
res = {k: load(f"lat-{k}.res.json") for k in lat}
f0 = lambda x: "—" if x is None else f"{x:,.0f}"
f2 = lambda x: f"{x:,.2f}"
ratio = lambda a, b: f"{a / b:,.1f}×" if a is not None and b else "—"
tput = [
    ("wall time, process start to exit", f"{f2(d['wall'])} s", f"{f2(s['wall'])} s", ratio(s["wall"], d["wall"])),
    ("throughput on that wall time", f"{f0(beacons / d['wall'])} lines/s", f"{f0(beacons / s['wall'])} lines/s", ratio(beacons / d["wall"], beacons / s["wall"])),
    ("processing only (duet: partitions assigned → stop; Spark: first batch start → last commit)", f"{f2(duet_proc)} s = {f0(beacons / duet_proc)} lines/s", f"{f2(spark_proc)} s = {f0(beacons / spark_proc)} lines/s", ratio(spark_proc, duet_proc)),
    ("CPU, user + sys, whole process tree", f"{f2(d['cpu'])} s", f"{f2(s['cpu'])} s", ratio(s["cpu"], d["cpu"])),
    ("CPU per million lines", f"{f2(d['cpu'] / beacons * 1e6)} s", f"{f2(s['cpu'] / beacons * 1e6)} s", ratio(s["cpu"], d["cpu"])),
    ("peak RSS, process tree", f"{f0(d['rss'])} MB", f"{f0(s['rss'])} MB", ratio(s["rss"], d["rss"])),
]
cores = lambda r: (r["cpu_user_s"] + r["cpu_sys_s"]) / r["wall_all_s"]
def lrow(name, key):
    v = [lat[k][key] for k in lat]
    return (name, *[f"{f0(x)} ms" for x in v], ratio(v[1], v[0]), ratio(v[2], v[0]))
latrows = [
    lrow("p50", "p50_ms"), lrow("p95", "p95_ms"), lrow("p99", "p99_ms"),
    lrow("max after the warm-up", "max_ms"), lrow("max during the warm-up", "max_all_ms"),
    ("commits seen in the run", *[str(lat[k]["commits"]) for k in lat], "—", "—"),
    ("CPU at that rate (cores busy, process tree)", *[f2(cores(res[k])) for k in lat],
     ratio(cores(res["spark-append"]), cores(res["duet"])), ratio(cores(res["spark-complete"]), cores(res["duet"]))),
    ("peak RSS", *[f"{f0(res[k]['peak_rss_mb'])} MB" for k in lat],
     ratio(res["spark-append"]["peak_rss_mb"], res["duet"]["peak_rss_mb"]), ratio(res["spark-complete"]["peak_rss_mb"], res["duet"]["peak_rss_mb"])),
]
di = dr["input"]
ld = lat["duet"]
measured = ", ".join(f"{k} {v['measured_batches']}" for k, v in lat.items())
never = ", ".join(f"{k} {v['not_visible']}" for k, v in lat.items())
lines = [
    "# Streaming: `duet stream` vs Spark Structured Streaming", "",
    "Written by `bench/spark/stream_bench.sh`. Both engines read topics of the same local Kafka broker, one engine after the other, each on both cores. Ratios are Spark / duet (for throughput: duet / Spark), so above 1× means duet is better.", "",
    f"## (a) Sustained throughput: {beacons:,} preloaded beacons, consumed and committed", "",
    f"duet: median of {druns} runs (wall {f2(d['wall_span'][0])}–{f2(d['wall_span'][1])} s); Spark: {'median of ' if sruns > 1 else ''}{sruns} run{'s' if sruns > 1 else ''} (wall {f2(s['wall_span'][0])}–{f2(s['wall_span'][1])} s).", "",
    "| figure | duet stream --drain | Spark, availableNow | ratio |", "|---|---|---|---|",
    *[f"| {' | '.join(r)} |" for r in tput], "",
    "What each engine counted (run 1):",
    f"- duet: {di['lines']:,} lines = {di['bad_rows']:,} bad rows + {di['duplicates']:,} duplicates + {di['valid_beacons']:,} valid + {di.get('late_beacons', 0):,} late; {dr['site']['sessions']:,} sessions (closed and open).",
    f"- Spark: {spark_lines:,} lines, {spark_bad:,} bad rows, {spark_beacons:,} beacons kept by dropDuplicatesWithinWatermark ({spark_lines - spark_bad - spark_beacons:,} duplicates and late rows dropped, not told apart); {spark_batches} micro-batches with data; {(sr['site'] or {}).get('sessions', 0):,} closed sessions in the sink (append mode: sessions still open at the end stay in the state store).", "",
    f"## (b) End-to-end latency at {int(rate):,} beacons/s", "",
    f"{ld['produced']:,} live beacons per run, in {ld['batches']} batches of {ld['per_batch']} every 100 ms, over {seconds} s. Percentiles are over the batches produced after the first {warmup} s of warm-up (JIT, first plans): {measured}. Batches never committed: {never}.", "",
    "| figure | duet stream | Spark, append | Spark, complete | ratio append | ratio complete |", "|---|---|---|---|---|---|",
    *[f"| {' | '.join(r)} |" for r in latrows], "",
    "Visible means: committed offsets cover the batch. For duet, its figures (open sessions included) are committed in the same transaction. For Spark in append mode (the only mode that drops state), the beacons' state and the sink batch are committed, but the beacons reach the per-variant figures only when their session closes, 40 minutes or more later. In complete mode, every trigger rewrites every session ever seen (open ones included) and the state is never dropped. Only that mode shows the figures within the measured time.", "",
    "## Settings", "",
    f"- (a) `duet generate --seed 42` (1 % bad rows, 2 % re-sends, 0.1 % late), keyed by visitor, topic `tput` with 2 partitions. duet: `duet stream --drain` with its defaults (`--threads 2`, `--max-batch 1000000`, lateness 10 min, gap 30 min, bad rows also produced to `tput.bad`). Spark: `trigger(availableNow=True)`, `maxOffsetsPerTrigger` 1,000,000, `local[2]`, `spark.sql.shuffle.partitions=2`, driver heap 4 GB, the default state store (HDFS-backed, in memory).",
    f"- (b) live beacons, `ts` = send time, 20,000 visitors, {int(rate):,}/s for {seconds} s, a fresh topic per run. Trigger: duet `--interval {interval}`, Spark `trigger(processingTime='{interval}')`. Latency runs from handing a batch to kcat (`acks=all`, `linger.ms=5`) to the first poll (every 10 ms) that sees committed offsets covering it on both partitions. duet: its store's `speed_scopes.positions`, committed with the views that `duet report` reads. Spark: the checkpoint's commit log, written after the foreachBatch sink.",
    "- CPU and RSS: the script's `monitor.py` is a child subreaper, so CPU is the exact rusage of the engine's whole process tree. RSS is summed over the tree and sampled every 100 ms. The broker and kcat are not counted.", "",
    "## Commands", "", "```",
]
open(md, "w").write("\n".join(lines) + "\n")
PY
{
  echo "bash bench/spark/stream_bench.sh $1 $2   # STREAM_BENCH_BEACONS=$beacons STREAM_BENCH_RATE=$rate STREAM_BENCH_SECONDS=$seconds STREAM_BENCH_WARMUP=$warmup STREAM_BENCH_INTERVAL=$interval"
  echo "# inside it:"
  echo "DUET_KAFKA_PARTITIONS=2 bash scripts/kafka.sh start WORK/kafka"
  echo "duet generate --out WORK/data --beacons $beacons --seed 42"
  echo "python3 tests/integration/kafka_produce.py WORK/data | kcat -P -b BROKER -t tput -K \$'\\x1f' -X enable.idempotence=true -X acks=all -X linger.ms=20"
  echo "duet stream --source kafka://BROKER/tput --group tput-R --store sqlite:WORK/tput-duet-R.sqlite --drain"
  echo "python bench/spark/duet_stream.py run --bootstrap BROKER --jars \"\$(bash bench/spark/setup.sh jars)\" --topic tput --available-now --checkpoint WORK/ck-tput-R --sink WORK/tput-spark-R.sqlite --progress WORK/tput-spark-R.progress.jsonl"
  echo "duet stream --source kafka://BROKER/lat-duet --group lat --store sqlite:WORK/lat-duet.sqlite --interval $interval"
  echo "python bench/spark/duet_stream.py run --bootstrap BROKER --jars … --topic lat-spark-MODE --trigger $interval --output-mode MODE --checkpoint WORK/ck-lat-MODE --sink WORK/lat-spark-MODE.sqlite --progress WORK/lat-spark-MODE.progress.jsonl   # MODE: append, then complete"
  echo "python3 WORK/latency.py duet|spark POSITION BROKER TOPIC $rate $seconds $warmup WORK/lat-NAME.json   # the producer + poller, written by the script; POSITION: the duet store or the Spark checkpoint"
  echo '```'
  echo
  echo "## Machine"
  echo
  echo "$machine"
} >>"$out/stream.md"
log "wrote $out/stream.md"
cat "$out/stream.md"
