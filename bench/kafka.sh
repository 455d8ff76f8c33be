#!/usr/bin/env bash
# Kafka figures on a real local broker (scripts/kafka.sh), loopback only, bounded in time:
#  1. consumption: a topic of N generated beacons (keyed by visitor, 4 partitions) read to its end
#     by a plain consumer (kcat to /dev/null) and by `duet stream --drain` (the speed layer, into
#     SQLite), in the same run — the goal is the speed layer at >= 85 % of the plain rate;
#  2. the collector under load: wrk POSTing NDJSON bodies of 100 beacons for 15 s.
#   bash bench/kafka.sh [duet] [lines]
set -euo pipefail
duet=${1:-build/src/cli/duet}
lines=${2:-2000000}
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/duet-bench-kafka.XXXXXX)
pid=""
trap 'kill "$pid" 2>/dev/null || true; bash "$src/scripts/kafka.sh" stop "$work/kafka"; rm -rf "$work"' EXIT
bootstrap=$(bash "$src/scripts/kafka.sh" start "$work/kafka" 2>/dev/null | tail -n 1)
echo "broker $bootstrap; $lines lines"
"$duet" generate --out "$work/data" --beacons "$lines" --seed 42 2>/dev/null >/dev/null
python3 "$src/tests/integration/kafka_produce.py" "$work/data" 2>/dev/null |
  kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all -X linger.ms=20 2>/dev/null
seconds() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }
for run in 1 2 3; do
  t0=$(date +%s.%N)
  got=$(kcat -C -b "$bootstrap" -t beacons -e -q -o beginning -f 'x\n' 2>/dev/null | wc -l)
  t1=$(date +%s.%N)
  rm -f "$work/s.sqlite"*
  "$duet" stream --source "kafka://$bootstrap/beacons" --store "sqlite:$work/s.sqlite" --drain \
    >/dev/null 2>"$work/stream.log"
  t2=$(date +%s.%N)
  plain=$(python3 -c "print($t1 - $t0)")
  speed=$(python3 -c "print($t2 - $t1)")
  echo "run $run: plain consume $got msgs in $(seconds "$plain") s ($(python3 -c "print(int($got/$plain))")/s);" \
       "duet stream --drain $(seconds "$speed") s ($(python3 -c "print(int($got/$speed))")/s);" \
       "speed/plain $(python3 -c "print(f'{$plain/$speed*100:.0f} %')")"
done

# The collector under load.
"$duet" collect --listen 127.0.0.1:0 --brokers "$bootstrap" --topic load 2>"$work/collect.log" &
pid=$!
for _ in $(seq 1 100); do grep -q collect.listening "$work/collect.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '"port":[0-9]*' "$work/collect.log" | head -1 | cut -d: -f2)
body=$(find "$work/data" -name '*.ndjson' | sort | head -n 1 | xargs head -n 100 | python3 -c \
  "import sys,json; print(json.dumps(sys.stdin.read()))")
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = $body
wrk.headers["Content-Type"] = "application/x-ndjson"
LUA
sleep 1
wrk -t 1 -c 16 -d 15s --latency -s "$work/post.lua" "http://127.0.0.1:$port/v1/beacons" | tee "$work/wrk.txt"
rps=$(grep -o 'Requests/sec: *[0-9.]*' "$work/wrk.txt" | grep -o '[0-9.]*$')
echo "collector: $rps requests/s x 100 beacons = $(python3 -c "print(int($rps*100))") beacons/s (202 only after Kafka acks)"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^duet_collect_requests_total' || true
