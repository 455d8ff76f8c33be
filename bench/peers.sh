#!/usr/bin/env bash
# make bench-peers: Duet side by side with Apache Spark (PySpark 4.2, local mode on both cores)
# on the same data, with the same answers checked at every size:
#   1. batch: `duet batch` vs bench/spark/duet_batch.py at BENCH_PEERS_SIZES beacons
#      (default 1 M, 10 M, 30 M) — bench/spark/batch_bench.sh;
#   2. streaming: `duet stream` vs Structured Streaming (bench/spark/duet_stream.py) on the same
#      Kafka topic, sustained throughput and end-to-end latency — bench/spark/stream_bench.sh.
# Then the section between the peers markers of docs/benchmarks.md is replaced by the two
# tables (figures, commands, machine). Takes about an hour on 2 cores; work files in
# BENCH_PEERS_DIR (default build/bench-peers; datasets are generated once and kept).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
duet=$(readlink -f "${1:-build/src/cli/duet}")
out=${BENCH_PEERS_DIR:-build/bench-peers}
doc=${BENCH_PEERS_DOC:-$here/../docs/benchmarks.md}
mkdir -p "$out"
[ -x "$duet" ] || { echo "bench-peers: $duet is not built (make build)" >&2; exit 1; }
echo "bench-peers: $(date -u +%FT%TZ): fetching PySpark and the Kafka jars (cached)" >&2
bash "$here/spark/setup.sh" fetch
bash "$here/../scripts/kafka.sh" fetch
# shellcheck disable=SC2086  # a list of sizes
bash "$here/spark/batch_bench.sh" "$duet" "$out" ${BENCH_PEERS_SIZES:-}
bash "$here/spark/stream_bench.sh" "$duet" "$out"
python3 - "$doc" "$out/batch.md" "$out/stream.md" <<'PY'
import re, sys
doc, batch, stream = sys.argv[1:]
begin, end = "<!-- peers:begin (make bench-peers writes this section) -->", "<!-- peers:end -->"

def demote(md):  # the files' headings go two levels down, under this document's "##"
    out, fenced = [], False
    for line in md.strip().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        out.append("##" + line if not fenced and line.startswith("#") else line)
    return "\n".join(out)

def goal(md):  # the batch table's largest size: Spark/duet wall ratio and the equality column
    lines = md.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith("| beacons"))
    head, rows = lines[at], []
    for l in lines[at + 2:]:
        if not re.match(r"^\| [0-9][0-9,]* \|", l):
            break
        rows.append(l)
    cols = [c.strip() for c in head.strip("|").split("|")]
    last = [c.strip() for c in rows[-1].strip("|").split("|")]
    ratio = float(last[cols.index("wall ratio")].rstrip("×"))
    same = last[cols.index("results")]
    met = "met" if ratio >= 10 and same == "equal" else "NOT met"
    return (f"Goal (Duet at least 10× Spark's batch throughput per core at the largest size, "
            f"identical results): **{met}** — {ratio:g}× at {last[0]} beacons (same 2 cores, so "
            f"the per-core ratio is the wall-time ratio), results {same}.")

b = open(batch, encoding="utf-8").read()
s = open(stream, encoding="utf-8").read()
import datetime
run = (f"Run ending {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
       "`make bench-peers` (bench/spark/batch_bench.sh, then bench/spark/stream_bench.sh).")
body = "\n".join([begin, "", run, "", goal(b), "", demote(b), "", demote(s), "", end])
text = open(doc, encoding="utf-8").read()
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + body + rest.split(end, 1)[1]
else:
    text = (text.rstrip() + "\n\n## Side by side with Spark (issue 9)\n\n"
            "Written by `make bench-peers` (`bench/peers.sh`): the Spark peers are in "
            "[bench/spark/](../bench/spark/README.md).\n\n" + body + "\n")
open(doc, "w", encoding="utf-8").write(text)
print(f"bench-peers: wrote {batch} and {stream} into {doc}", file=sys.stderr)
PY
