#!/usr/bin/env bash
# The store is unavailable (another connection holds an exclusive lock) while `duet stream` runs:
# it backs off and retries, loses nothing, resumes by itself, and ends equal to `duet batch`.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
"$duet" generate --out "$work/master" --beacons 60000 --seed 77 --hours 4 --late-fraction 0 \
  --lines-per-file 5000 2>/dev/null >/dev/null
"$duet" batch --input "$work/master" --store "sqlite:$work/batch.sqlite" 2>/dev/null >/dev/null
"$duet" report --store "sqlite:$work/batch.sqlite" --json --full >"$work/batch.json"

store="sqlite:$work/speed.sqlite?busy_timeout_ms=100"
# The stream starts on an empty log; the data arrives while the store is locked.
mkdir -p "$work/log"
"$duet" stream --source "$work/log" --store "$store" --max-batch 500 --interval 50ms \
  2>"$work/stream.log" >/dev/null &
pid=$!
sleep 0.5
# Hold the write lock for 2 s: every commit in that window fails after 100 ms.
python3 - "$work/speed.sqlite" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN EXCLUSIVE")
time.sleep(2)
c.execute("COMMIT")
PY
locker=$!
sleep 0.3
cp -r "$work/master/." "$work/log/"
wait "$locker"
# Backoff doubles from 200 ms: the outage ends within a 1.6 s wait, well inside 3 s.
sleep 3
kill -TERM "$pid"
if ! wait "$pid"; then echo "FAILED: stream exited non-zero"; tail -3 "$work/stream.log"; exit 1; fi
retries=$(grep -c '"event":"stream.retry"' "$work/stream.log" || true)
resumed=$(grep -c '"event":"stream.resumed"' "$work/stream.log" || true)
echo "store outage: $retries retries, $resumed resumptions"
[ "$retries" -ge 1 ] && [ "$resumed" -ge 1 ] || { echo "FAILED: the outage was not seen or not survived"; exit 1; }
"$duet" stream --source "$work/log" --store "$store" --drain 2>>"$work/stream.log" >/dev/null
"$duet" report --store "$store" --layer speed --json --full >"$work/speed.json"
python3 "$src/tests/integration/speed_as_batch.py" "$work/speed.json"
python3 "$src/tests/reference/compare.py" "$work/batch.json" "$work/speed.json"
echo "store outage test passed"
