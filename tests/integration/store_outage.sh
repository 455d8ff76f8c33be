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
# Hold the write lock until the stream has failed a commit (it logs stream.retry; at most 20 s),
# then 1 s more: every commit in that window fails after 100 ms. Waiting on events rather than
# fixed sleeps keeps the test exact on a loaded machine (CTest runs tests in parallel).
python3 - "$work/speed.sqlite" "$work/stream.log" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN EXCLUSIVE")
deadline = time.time() + 20
while time.time() < deadline and '"event":"stream.retry"' not in open(sys.argv[2]).read():
    time.sleep(0.05)
time.sleep(1)
c.execute("COMMIT")
PY
locker=$!
sleep 0.3
cp -r "$work/master/." "$work/log/"
wait "$locker"
# Backoff doubles from 200 ms up to 30 s: wait (at most 60 s) until the stream says it resumed.
for _ in $(seq 1 600); do
  grep -q '"event":"stream.resumed"' "$work/stream.log" && break
  sleep 0.1
done
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
