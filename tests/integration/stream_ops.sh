#!/usr/bin/env bash
# The speed layer's operational surface on a real Kafka broker (scripts/kafka.sh, loopback):
# - /metrics of `duet stream --status-listen` shows the scheduling delay, the processing time
#   against the interval, the lag per partition and the failed micro-batches;
# - /readyz turns 503 while a partition is further behind than --ready-max-lag (data produced
#   while the stream waits out its interval) and while --ready-max-failures micro-batches in a row
#   have failed (the store locked by another connection), naming the cause, and 200 again after;
# - SIGTERM finishes the micro-batch, commits and exits 0; a checkpoint in a format version this
#   build does not know is refused with a clear message and exit code, the store left untouched;
#   with the checkpoint back, a new process resumes and the figures equal `duet batch`'s exactly.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
kafka="$src/scripts/kafka.sh"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  bash "$kafka" stop "$work/kafka"
}
trap cleanup EXIT
source "$src/tests/integration/lib.sh"
require_tools kcat java python3 sqlite3 curl
bootstrap=$(bash "$kafka" start "$work/kafka")
echo "kafka broker at $bootstrap"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "stream operations test, seed $seed"
noisy_dataset_with_reference 40000 4 10000
python3 "$src/tests/integration/kafka_produce.py" "$work/master" 2>"$work/produce.log" >"$work/all.kv"
total=$(wc -l <"$work/all.kv")
# Three parts, produced at different moments: before the start, while the stream waits out its
# interval (lag), and while the store is locked (failures).
head -n 20000 "$work/all.kv" >"$work/part1.kv"
sed -n '20001,30000p' "$work/all.kv" >"$work/part2.kv"
tail -n +30001 "$work/all.kv" >"$work/part3.kv"
produce() { kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all <"$1"; }
produce "$work/part1.kv"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
status="http://127.0.0.1:$port"
store="sqlite:$work/speed.sqlite?busy_timeout_ms=100"
interval=6
"$duet" stream --source "kafka://$bootstrap/beacons" --group ops --store "$store" \
  --interval "${interval}s" --session-timeout 2s --ready-max-lag 1000 --ready-max-failures 2 \
  --status-listen "127.0.0.1:$port" 2>"$work/stream.log" >/dev/null &
pid=$!

metric() {  # metric NAME_WITH_LABELS: its value in /metrics now ("" if absent)
  curl -s --max-time 2 "$status/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
# wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s until it succeeds; fails naming WHAT.
alive_and() {  # alive_and CMD...: CMD, after checking that the stream still runs
  kill -0 "$pid" 2>/dev/null || { echo "FAILED: duet stream exited"; tail -5 "$work/stream.log"; exit 1; }
  "$@"
}
wait_for() {
  local secs=$1 what=$2
  shift 2
  poll_until "$secs" alive_and "$@" && return 0
  echo "FAILED: $what (not within $secs s)"
  curl -s --max-time 2 "$status/readyz" || true
  echo
  tail -5 "$work/stream.log"
  exit 1
}
ready() { curl -sf --max-time 2 -o /dev/null "$status/readyz"; }
unready_with() { curl -s --max-time 2 "$status/readyz" >"$work/readyz.json" && grep -q "$1" "$work/readyz.json"; }
# caught_up: every partition's lag is known and 0 (the sole member owns all 4).
caught_up() {
  curl -s --max-time 2 "$status/metrics" >"$work/metrics.txt" || return 1
  [ "$(grep -c '^duet_stream_partition_lag_messages{partition="[0-3]"} 0$' "$work/metrics.txt")" -eq 4 ] &&
    grep -qx 'duet_stream_lag_messages 0' "$work/metrics.txt"
}

wait_for 60 "ready with the first part committed" ready
wait_for 60 "every partition caught up after the first part" caught_up
echo "ready: the first $(wc -l <"$work/part1.kv") messages committed, lag 0"
for m in duet_stream_interval_seconds duet_stream_scheduling_delay_seconds duet_stream_processing_ratio \
         duet_stream_processing_seconds_count 'duet_stream_micro_batches_total{result="committed"}' \
         'duet_stream_partition_lag_messages{partition="0"}' 'duet_stream_partition_lag_messages{partition="3"}'; do
  [ -n "$(metric "$m")" ] || { echo "FAILED: /metrics lacks $m"; curl -s "$status/metrics" | grep stream_ | head -40; exit 1; }
done
[ "$(metric duet_stream_interval_seconds)" = "$interval" ] || { echo "FAILED: interval metric"; exit 1; }

# Lag: 10000 messages arrive while the stream waits out its interval; the lag (refreshed every
# second from the consumer's fetches) crosses --ready-max-lag on some partition.
produce "$work/part2.kv"
wait_for 20 "/readyz 503 naming the lag" unready_with 'lag: [0-9]* messages behind on partition [0-3] (--ready-max-lag 1000)'
echo "while behind: /readyz says $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["detail"])' "$work/readyz.json"); lag $(metric duet_stream_lag_messages) messages"
wait_for 30 "ready again once the next micro-batches caught up" ready
wait_for 20 "every partition caught up again" caught_up
echo "caught up: ready, lag 0"

# Failures: the store is locked by another connection while the third part arrives; every commit
# fails after 100 ms; from the second failure in a row /readyz answers 503.
python3 - "$work/speed.sqlite" "$status/readyz" "$work/lock.log" <<'PY' &
import sqlite3, sys, time, urllib.request, urllib.error
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True, file=open(sys.argv[3], "a"))
deadline = time.time() + 40
seen = ""
while time.time() < deadline:
    try:
        urllib.request.urlopen(sys.argv[2], timeout=2)
    except urllib.error.HTTPError as e:
        seen = e.read().decode()
        if "steps in a row failed" in seen:
            break
    except Exception:
        pass
    time.sleep(0.1)
print(seen, flush=True, file=open(sys.argv[3], "a"))
time.sleep(0.5)
c.execute("COMMIT")
PY
locker=$!
wait_for 10 "the store locked" grep -q locked "$work/lock.log"
produce "$work/part3.kv"
wait "$locker"
grep -q "steps in a row failed, the last: " "$work/lock.log" ||
  { echo "FAILED: /readyz never named the failed micro-batches"; cat "$work/lock.log"; exit 1; }
echo "while the store was locked: $(tail -1 "$work/lock.log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["detail"])')"
failed=$(metric 'duet_stream_micro_batches_total{result="failed"}')
[ "${failed%.*}" -ge 2 ] || { echo "FAILED: $failed failed micro-batches counted, expected >= 2"; exit 1; }
wait_for 60 "ready again after the store came back" ready
wait_for 30 "every partition caught up after the outage" caught_up
echo "after the outage: ready, $failed failed micro-batches counted, lag 0"

# SIGTERM: the micro-batch in progress is committed, the process exits 0.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || { echo "FAILED: duet stream exited $rc on SIGTERM"; tail -3 "$work/stream.log"; exit 1; }
grep -q '"event":"stream.stop"' "$work/stream.log" || { echo "FAILED: no stream.stop on SIGTERM"; exit 1; }
echo "SIGTERM: drained and exited 0"

# An upgrade that meets a checkpoint format it does not know refuses it, changing nothing.
cp "$work/speed.sqlite" "$work/speed.sqlite.good"
python3 - "$work/speed.sqlite" <<'PY'
import sqlite3, subprocess, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT scope, chunk, data FROM speed_checkpoint ORDER BY scope, chunk").fetchall()
scope = rows[0][0]
state = b"".join(d for s, _, d in rows if s == scope)
plain = subprocess.run(["zstd", "-dc"], input=state, capture_output=True, check=True).stdout
magic = b"duet-speed-checkpoint"
assert plain[1:1 + len(magic)] == magic and plain[1 + len(magic)] == 3, "unexpected checkpoint layout"
plain = plain[:1 + len(magic)] + bytes([9]) + plain[2 + len(magic):]
# From a file, so that the frame records its size (the reader sizes its buffer from it).
with open(sys.argv[1] + ".state", "wb") as f:
    f.write(plain)
packed = subprocess.run(["zstd", "-c", "-q", sys.argv[1] + ".state"], capture_output=True,
                        check=True).stdout
db.execute("DELETE FROM speed_checkpoint WHERE scope=?", (scope,))
db.execute("INSERT INTO speed_checkpoint(scope, chunk, data) VALUES(?, 0, ?)", (scope, packed))
db.commit()
print(f"checkpoint of scope {scope} rewritten as format version 9")
PY
sqlite3 "$work/speed.sqlite" .dump >"$work/before.sql"
rc=0
"$duet" stream --source "kafka://$bootstrap/beacons" --group ops --store "$store" --drain \
  --session-timeout 2s 2>"$work/refused.log" >/dev/null || rc=$?
[ "$rc" -ne 0 ] || { echo "FAILED: a checkpoint of format version 9 was accepted"; exit 1; }
grep -q 'format version 9 was written by a newer Duet; this build reads version 3 only' "$work/refused.log" ||
  { echo "FAILED: the refusal does not say what is wrong:"; tail -3 "$work/refused.log"; exit 1; }
sqlite3 "$work/speed.sqlite" .dump | cmp -s - "$work/before.sql" ||
  { echo "FAILED: the refused run changed the store"; exit 1; }
echo "format version 9: refused (exit $rc): $(grep -o 'format version 9[^"]*' "$work/refused.log" | head -1)"

# The good checkpoint back: a new process resumes from it and ends equal to the batch layer.
cp "$work/speed.sqlite.good" "$work/speed.sqlite"
drain_without_errors "$work/stream.log" "$duet" stream --source "kafka://$bootstrap/beacons" \
  --group ops --store "$store" --session-timeout 2s >/dev/null
speed_equals_batch "sqlite:$work/speed.sqlite" "$work/batch.json" "$work/speed.json"
lines=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["input"]["lines"])' "$work/speed.json")
[ "$lines" -eq "$total" ] || { echo "FAILED: $lines lines counted, $total produced"; exit 1; }
echo "stream operations test passed: $total messages, figures equal to duet batch"
