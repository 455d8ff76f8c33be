#!/usr/bin/env bash
# The whole Kafka pipeline with real processes on a real broker (scripts/kafka.sh, KRaft on a
# free loopback port): a generated dataset is POSTed to `duet collect` (NDJSON requests, retried
# after 503 like a client would); midway the broker is stopped — a request must get 503 with
# Retry-After — and started again. Then `duet archive` copies the topic into a master dataset
# and `duet stream` reads it, each killed with SIGKILL at random points (at least 3 times) and
# restarted, then drained. Checks, figure by figure against `duet batch` over the generated
# files (the reference): the batch layer over the archived dataset; the speed layer; and the
# merged view (batch over the archive + speed). Input accounting may only differ by lines a
# client re-sent after a 503 (counted as duplicates, never lost).
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
kafka="$src/scripts/kafka.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$kafka" stop "$work/kafka"
}
trap cleanup EXIT
source "$src/tests/integration/lib.sh"
require_tools kcat java python3 curl
bootstrap=$(bash "$kafka" start "$work/kafka")
echo "kafka broker at $bootstrap"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "kafka pipeline test, seed $seed"
"$duet" generate --out "$work/master" --beacons 120000 --seed "$seed" --hours 6 --late-fraction 0 \
  --bad-fraction 0.02 --duplicate-fraction 0.04 --lines-per-file 20000 2>/dev/null
"$duet" batch --input "$work/master" --store "sqlite:$work/reference.sqlite" 2>/dev/null
"$duet" report --store "sqlite:$work/reference.sqlite" --json --full >"$work/reference.json"

# The collector, on a free port, with a short delivery timeout so that the outage shows quickly.
start_collector "$work/collect.log" --brokers "$bootstrap" --topic beacons \
  --delivery-timeout 3s --retry-after 1s
pids+=("$collector")
port=$collector_port
echo "collector on port $port"
# A body announced over --max-body is refused from its header: curl (Expect: 100-continue) gets
# 413 at once instead of uploading 2 MB or waiting a second.
head -c 2000000 /dev/zero | tr '\0' 'a' >"$work/big.ndjson"
big=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" -X POST \
  -H 'Content-Type: application/x-ndjson' --data-binary @"$work/big.ndjson" \
  "http://127.0.0.1:$port/v1/beacons")
echo "oversized body: $big"
python3 -c 'import sys; c, t = sys.argv[1].split(); sys.exit(0 if c == "413" and float(t) < 0.9 else 1)' "$big" ||
  { echo "FAILED: expected 413 within 0.9 s, got $big"; exit 1; }

# Post everything; after 60 requests the broker goes down for a while.
python3 "$src/tests/integration/post_beacons.py" "http://127.0.0.1:$port/v1/beacons" \
  "$work/master" --chunk 500 --pause-after 60 --pause-file "$work/resume" >"$work/post.log" 2>&1 &
poster=$!
pids+=($poster)
for _ in $(seq 1 600); do [ -f "$work/resume.paused" ] && break; sleep 0.1; done
[ -f "$work/resume.paused" ] || { echo "FAILED: the poster never reached the outage"; cat "$work/post.log"; exit 1; }
bash "$kafka" stop "$work/kafka"
echo "broker stopped"
touch "$work/resume.down"
sleep 5
curl -s -o /dev/null -w "readyz while the broker is down: %{http_code}\n" "http://127.0.0.1:$port/readyz"
bash "$kafka" restart "$work/kafka" >/dev/null
echo "broker restarted"
touch "$work/resume"
if ! wait "$poster"; then echo "FAILED: posting:"; cat "$work/post.log"; exit 1; fi
cat "$work/post.log"
grep -q "answered 503" "$work/post.log"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^duet_collect_(beacons_total|beacons_rejected_total|requests_total)' || true
kill -TERM "$collector"
if ! wait "$collector"; then echo "FAILED: the collector did not exit 0 on SIGTERM"; exit 1; fi
echo "collector: clean exit on SIGTERM"

# Archiver and stream: SIGKILLed at random points, restarted, then drained.
archive=("$duet" archive --source "kafka://$bootstrap/beacons" --out "$work/archive" --roll-lines 5000)
sigkill_runs "$work/archive.log" 3 4 "${archive[@]}"
drain_without_errors "$work/archive.log" "${archive[@]}"
echo "archive: drained"
# The stream is a consumer-group member: each run is killed once it has committed.
stream=("$duet" stream --source "kafka://$bootstrap/beacons" --store "sqlite:$work/speed.sqlite"
        --max-batch 200 --interval 50ms --session-timeout 2s)
sigkill_after_progress "$work/stream.log" '"event":"stream.batch"' 4 "${stream[@]}"
drain_without_errors "$work/stream.log" "${stream[@]}"
echo "stream: drained, epochs $(speed_epochs "$work/speed.sqlite")"

# The batch layer over what the archiver wrote.
"$duet" batch --input "$work/archive" --store "sqlite:$work/archive.sqlite" 2>/dev/null
"$duet" report --store "sqlite:$work/archive.sqlite" --json --full >"$work/archive.json"
echo "batch over the archive vs the reference:"
python3 "$src/tests/reference/compare.py" --ignore input "$work/reference.json" "$work/archive.json"

"$duet" report --store "sqlite:$work/speed.sqlite" --layer speed --json --full >"$work/speed.json"
python3 "$src/tests/integration/speed_as_batch.py" "$work/speed.json"
echo "speed layer vs the reference (input accounting checked below):"
python3 "$src/tests/reference/compare.py" --ignore input "$work/reference.json" "$work/speed.json"

# Input accounting: same valid beacons and bad rows; any extra line is a re-sent duplicate.
python3 - "$work/reference.json" "$work/archive.json" "$work/speed.json" <<'EOF'
import json, sys
ref, arc, spd = (json.load(open(p))["input"] for p in sys.argv[1:])
for name, got in (("archive", arc), ("speed", spd)):
    extra = got["lines"] - ref["lines"]
    assert got["valid_beacons"] == ref["valid_beacons"], (name, got, ref)
    assert got["bad_rows"] == ref["bad_rows"], (name, got, ref)
    assert got["duplicates"] - ref["duplicates"] == extra >= 0, (name, got, ref)
    print(f"{name}: input balanced, {extra} re-sent lines counted as duplicates")
EOF

# The serving merge: the batch layer over the archive into the speed layer's store.
"$duet" batch --input "$work/archive" --store "sqlite:$work/speed.sqlite" 2>/dev/null >/dev/null
"${stream[@]}" --drain 2>>"$work/stream.log" >/dev/null
"$duet" report --store "sqlite:$work/speed.sqlite" --layer merged --json --full >"$work/merged.json"
echo "merged view vs the reference:"
python3 "$src/tests/reference/compare.py" --ignore input --ignore event_time \
  "$work/reference.json" "$work/merged.json"
echo "kafka pipeline test passed"
