#!/usr/bin/env bash
# The store backends side by side: SQLite (the embedded default) and MongoDB (FerretDB v1.24.2
# with its SQLite backend, started by scripts/ferretdb.sh on loopback), on the same generated
# data, three runs each:
#  1. `duet batch` end to end into each store (read, compute, write views and bad rows);
#  2. `duet stream --drain` over the same files into each store (micro-batches of --max-batch
#     lines): the speed layer's commits — views state, checkpoint state and records, bad rows —
#     per second, and the time per commit.
#   bash bench/mongo.sh [duet] [lines] [max-batch]
set -euo pipefail
duet=${1:-build/src/cli/duet}
lines=${2:-1000000}
max_batch=${3:-100000}
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/duet-bench-mongo.XXXXXX)
trap 'bash "$src/scripts/ferretdb.sh" stop "$work/ferretdb"; rm -rf "$work"' EXIT
server=$(bash "$src/scripts/ferretdb.sh" start "$work/ferretdb" | tail -n 1)
echo "FerretDB at $server; $lines lines; stream micro-batches of $max_batch"
"$duet" generate --out "$work/data" --beacons "$lines" --seed 42 2>/dev/null >/dev/null
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
for run in 1 2 3; do
  for kind in sqlite mongodb; do
    if [ "$kind" = sqlite ]; then store="sqlite:$work/b$run.sqlite"; else store="$server/bench_b$run"; fi
    t0=$(date +%s.%N)
    "$duet" batch --input "$work/data" --store "$store" 2>"$work/batch.log" >/dev/null
    t1=$(date +%s.%N)
    if [ "$kind" = sqlite ]; then store="sqlite:$work/s$run.sqlite"; else store="$server/bench_s$run"; fi
    t2=$(date +%s.%N)
    "$duet" stream --source "$work/data" --store "$store" --drain --max-batch "$max_batch" \
      2>"$work/stream.log" >/dev/null
    t3=$(date +%s.%N)
    commits=$(grep -c '"event":"stream.batch"' "$work/stream.log" || true)
    stream=$(secs "$t2" "$t3")
    echo "run $run $kind: batch $(secs "$t0" "$t1") s; stream --drain $stream s, $commits commits" \
         "($(python3 -c "print(f'{$stream / max(1, $commits):.2f}')") s per commit of $max_batch lines)"
  done
done
bad=$("$duet" report --store "sqlite:$work/b1.sqlite" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["input"]["bad_rows"])')
rows=$(sqlite3 "$work/b1.sqlite" "SELECT count(*) FROM figures WHERE layer='batch'" 2>/dev/null || echo "?")
echo "written per batch run: $rows figure rows (plus uniques and experiments) and $bad bad rows"
