#!/usr/bin/env bash
# Batch benchmark: `duet batch` next to its Spark peer (bench/spark/duet_batch.py) on the same
# generated files, both on 2 cores, at several sizes.
#
#   bench/spark/batch_bench.sh DUET_BIN OUT_DIR [SIZES...]     (default: 1000000 10000000 30000000)
#
# Each dataset is generated once (seed 42, plain NDJSON) into OUT_DIR/data-N and reused. Every
# run is bounded by `timeout` and measured by OUT_DIR/measure.py, which makes itself the child
# subreaper of the run: wall time, user+sys CPU of the whole process tree (the JVM and the Python
# workers of Spark included, whoever reaps them) and peak RSS of the tree (the summed RSS of all
# its processes, polled every 0.2 s; at least the largest single process's peak). /usr/bin/time's own figures are kept in OUT_DIR/*.time
# (for Spark they miss the JVM, which the Python driver does not wait for). Both results must be
# equal (tests/reference/compare.py) at every size. Writes OUT_DIR/batch.md; progress on stderr.
#
# Environment: SPARK_TIMEOUT_30M (seconds for 30 M lines, default 2700; scaled linearly by size
# with 600 s added), DUET_TIMEOUT (default 1800), SPARK_ARGS (extra duet_batch.py arguments).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 DUET_BIN OUT_DIR [SIZES...]" >&2; exit 2; }
duet=$(realpath "$1")
out=$2
shift 2
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000 30000000)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
mkdir -p "$out"
out=$(realpath "$out")
say() { echo "batch_bench: $*" >&2; }

command -v /usr/bin/time >/dev/null || { say "/usr/bin/time is missing"; exit 1; }
bash "$here/setup.sh" fetch
py=$(bash "$here/setup.sh" python)

cat >"$out/measure.py" <<'PY'
"""measure.py OUT.json -- CMD...: runs CMD as our child; we are the child subreaper, so every
descendant ends up reaped here and RUSAGE_CHILDREN covers the whole tree. Peak RSS is the summed
RSS of all descendants, polled every 0.2 s (and at least the largest single one's peak)."""
import ctypes, json, os, resource, signal, subprocess, sys, time

out, cmd = sys.argv[1], sys.argv[3:]
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
page = os.sysconf("SC_PAGE_SIZE")
me = os.getpid()


def descendants():
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {me}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def tree_rss():
    total = 0
    for p in descendants():
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


t0 = time.monotonic()
child = subprocess.Popen(cmd)
peak = 0
while child.poll() is None:
    peak = max(peak, tree_rss())
    time.sleep(0.2)
deadline = time.monotonic() + 60  # orphans (e.g. a JVM still shutting down) end up ours
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        if time.monotonic() > deadline:
            for p in descendants():
                os.kill(p, signal.SIGKILL)
        peak = max(peak, tree_rss())
        time.sleep(0.2)
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    # A run shorter than one poll is covered by the largest single process's exact peak.
    json.dump({"rc": child.returncode, "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
               "peak_rss_kib": max(peak // 1024, ru.ru_maxrss), "max_single_rss_kib": ru.ru_maxrss}, f)
sys.exit(child.returncode)
PY

spark_timeout() { echo $((600 + $1 * ${SPARK_TIMEOUT_30M:-2700} / 30000000)); }

for n in "${sizes[@]}"; do
  data="$out/data-$n"
  if [ ! -f "$data/_manifest.json" ]; then
    say "generating $n beacons into $data (seed 42, once)"
    rm -rf "$data"
    "$duet" generate --out "$data" --beacons "$n" --seed 42 2>"$out/generate-$n.log" >/dev/null
  fi
  cat "$data"/*/*/* >/dev/null  # page cache warmed before each run
  say "$n: duet batch --threads 2"
  rm -f "$out/duet-$n.sqlite"*
  python3 "$out/measure.py" "$out/duet-$n.measure.json" -- \
    /usr/bin/time -f '%e %U %S %M' -o "$out/duet-$n.time" timeout -k 30 "${DUET_TIMEOUT:-1800}" \
    "$duet" batch --input "$data" --store "sqlite:$out/duet-$n.sqlite" --threads 2 >"$out/duet-$n.log" 2>&1 ||
    { say "$n: duet batch failed (see $out/duet-$n.log)"; exit 1; }
  "$duet" report --store "sqlite:$out/duet-$n.sqlite" --json --full >"$out/duet-$n.json"
  say "$n: duet done: $(cat "$out/duet-$n.time")"

  t=$(spark_timeout "$n")
  cat "$data"/*/*/* >/dev/null
  say "$n: spark local[2] (timeout $t s)"
  rm -f "$out/spark-$n.json"
  # shellcheck disable=SC2086  # SPARK_ARGS is a list of words
  if python3 "$out/measure.py" "$out/spark-$n.measure.json" -- \
    /usr/bin/time -f '%e %U %S %M' -o "$out/spark-$n.time" timeout -k 30 "$t" \
    "$py" "$here/duet_batch.py" --input "$data" --out "$out/spark-$n.json" --master 'local[2]' \
    ${SPARK_ARGS:-} 2>"$out/spark-$n.log"; then
    if python3 "$src/tests/reference/compare.py" "$out/duet-$n.json" "$out/spark-$n.json" \
      >"$out/compare-$n.txt"; then
      say "$n: spark done, $(tail -1 "$out/compare-$n.txt")"
    else
      say "$n: RESULTS DIFFER: $(tail -1 "$out/compare-$n.txt")"
    fi
  else
    say "$n: spark failed or timed out after $t s (see $out/spark-$n.log)"
    echo "spark failed or timed out (limit $t s)" >"$out/compare-$n.txt"
  fi
done

machine() {
  echo "- nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1); RAM: $(free -g | awk '/^Mem:/{print $2}') GiB"
  echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- duet: $("$duet" --version 2>&1 | head -1)"
  echo "- Spark: pyspark $("$py" -c 'import pyspark; print(pyspark.__version__)'), $(java -version 2>&1 | head -1), $("$py" --version), pandas $("$py" -c 'import pandas; print(pandas.__version__)'), pyarrow $("$py" -c 'import pyarrow; print(pyarrow.__version__)')"
}

python3 - "$out" "$(machine)" "$duet" "$py" "$here/duet_batch.py" "${SPARK_ARGS:-}" "${sizes[@]}" <<'PY'
import json, os, re, sys
out, machine, duet, py, script, spark_args, *sizes = sys.argv[1:]
rows, growth = [], []


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def mib(kib):
    return f"{kib / 1024:,.0f} MiB"


for n in sizes:
    man = load(f"{out}/data-{n}/_manifest.json")
    lines = man["counts"]["lines"]
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(f"{out}/data-{n}")
               for f in fs if f.endswith(".ndjson"))
    d, s = load(f"{out}/duet-{n}.measure.json"), load(f"{out}/spark-{n}.measure.json")
    with open(f"{out}/compare-{n}.txt") as f:
        verdict = f.read().strip().splitlines()[-1]
    log = open(f"{out}/spark-{n}.log", errors="replace").read()
    m = re.search(r"(\d+) shuffle partitions", log)
    parts = m.group(1) if m else "?"
    dcpu = d["user_s"] + d["sys_s"]
    row = [f"{int(n):,}", f"{lines:,}", f"{size / 2**30:.2f} GiB",
           f"{d['wall_s']:.1f} s", f"{dcpu:.1f} s", mib(d["peak_rss_kib"])]
    if s and s["rc"] == 0:
        scpu = s["user_s"] + s["sys_s"]
        row += [f"{s['wall_s']:.1f} s", f"{scpu:.1f} s", mib(s["peak_rss_kib"]),
                f"{s['wall_s'] / d['wall_s']:.0f}×", f"{scpu / dcpu:.0f}×",
                f"{lines / d['wall_s'] / 2:,.0f}", f"{lines / s['wall_s'] / 2:,.0f}", parts,
                "equal" if verdict.endswith(" 0 differences") else verdict]
        growth.append((n, lines, d["wall_s"], dcpu, s["wall_s"], scpu))
    else:
        row += ["timeout/failed", "", "", "", "", f"{lines / d['wall_s'] / 2:,.0f}", "", parts, verdict]
        growth.append((n, lines, d["wall_s"], dcpu, None, None))
    rows.append(row)

hdr = ["beacons", "lines", "input", "duet wall", "duet CPU", "duet peak RSS", "Spark wall",
       "Spark CPU", "Spark peak RSS", "wall ratio", "CPU ratio", "duet lines/s/core",
       "Spark lines/s/core", "shuffle partitions", "results"]
md = ["# Batch layer: `duet batch` vs Spark (PySpark, local[2])", "",
      "Same generated files (seed 42, plain NDJSON, ~1 % bad rows, ~2 % re-sends), both on 2 "
      "cores, page cache warmed by reading the files just before each run (the VM may still evict "
      "part of a multi-GiB dataset). CPU = user + sys of the whole process tree; peak RSS = the summed "
      "RSS of the tree, polled every 0.2 s (Spark: driver JVM + Python driver + Python workers). "
      "lines/s/core = lines / wall / 2. Ratios are Spark / duet. Results: "
      "`tests/reference/compare.py` over both JSON documents.", "",
      "| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
md += ["| " + " | ".join(r) + " |" for r in rows]
md += ["", "## Growth with input size", "",
       "Cost per line (µs) at each size; flat means linear time.", "",
       "| lines | duet wall µs/line | duet CPU µs/line | Spark wall µs/line | Spark CPU µs/line |",
       "|---|---|---|---|---|"]
for n, lines, dw, dc, sw, sc in growth:
    f = lambda x: f"{x / lines * 1e6:.2f}" if x is not None else "—"
    md.append(f"| {lines:,} | {f(dw)} | {f(dc)} | {f(sw)} | {f(sc)} |")
md += ["", "## Commands", "", "```",
       f"{duet} generate --out OUT/data-N --beacons N --seed 42",
       f"{duet} batch --input OUT/data-N --store sqlite:OUT/duet-N.sqlite --threads 2",
       f"{duet} report --store sqlite:OUT/duet-N.sqlite --json --full > OUT/duet-N.json",
       f"{py} {script} --input OUT/data-N --out OUT/spark-N.json --master 'local[2]' {spark_args}".rstrip(),
       "python3 tests/reference/compare.py OUT/duet-N.json OUT/spark-N.json",
       "```", "",
       "Spark settings (duet_batch.py defaults): local[2], spark.driver.memory 8g, "
       "spark.sql.adaptive.enabled true (AQE coalesces shuffle partitions), "
       "spark.sql.shuffle.partitions = input bytes / 64 MiB (8..400), UI off, everything "
       "else default. Each run is bounded by `timeout` and measured by measure.py in this folder.",
       "", "## Machine", "", machine, ""]
with open(f"{out}/batch.md", "w") as fh:
    fh.write("\n".join(md))
print("\n".join(md))
PY
say "wrote $out/batch.md"
