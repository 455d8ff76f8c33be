#!/usr/bin/env bash
# The collector under sustained overload on loopback, bounded in time (about 60 s with the broker
# start). A real Kafka broker (scripts/kafka.sh); `duet collect` with small limits (16 requests in
# flight, 1,000 buffered beacons, 2 s delivery timeout); a closed-loop load generator
# (overload_client.py: 48 keep-alive connections, 1-100 beacons per request, every beacon with a
# unique id, recording per request its status and ids) for 16 s; from 5 s to 10 s the broker's
# JVM is frozen (SIGSTOP, then SIGCONT) so that the producer queue fills and deliveries time out.
# Then the load drops to 20 requests/s. Asserts:
#  (a) shedding happened: some 429 (in flight) and some 503 (Kafka), counted by reason in
#      duet_collect_shed_total;
#  (b) every id of every request answered 202 is in the topic (read back in full with kcat after
#      the collector exited);
#  (c) recovery: once the load dropped and the broker resumed, 20 requests in a row get 202
#      within 30 s;
#  (d) the collector's RSS stayed bounded (sampled every 100 ms; peak printed, limit
#      DUET_OVERLOAD_RSS_MIB, default 128; with these limits the requests themselves can hold at
#      most about 16 x 3 x 256 KiB = 12 MiB).
# Also: no beacon of a request answered 429 is in the topic (a 429 produces nothing).
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
kafka="$src/scripts/kafka.sh"
client="$src/tests/integration/overload_client.py"
rss_limit_mib=${DUET_OVERLOAD_RSS_MIB:-128}
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default) and every byte
# has shadow memory: the bound is scaled, still far below what unbounded buffering would reach.
if ldd "$duet" 2>/dev/null | grep -q libasan; then
  rss_limit_mib=${DUET_OVERLOAD_RSS_MIB:-1024}
  echo "sanitizer build: RSS limit $rss_limit_mib MiB"
fi
pids=()
cleanup() {
  # A frozen broker must be thawed before it can be stopped.
  if [ -f "$work/kafka/pid" ]; then kill -CONT "$(cat "$work/kafka/pid")" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$kafka" stop "$work/kafka"
}
trap cleanup EXIT
source "$src/tests/integration/lib.sh"
require_tools kcat java python3 curl
bootstrap=$(bash "$kafka" start "$work/kafka")
broker_pid=$(cat "$work/kafka/pid")
echo "kafka broker at $bootstrap (pid $broker_pid)"

start_collector "$work/collect.log" --brokers "$bootstrap" --topic beacons --threads 2 \
  --max-in-flight 16 --max-buffered 1000 --max-body 262144 --delivery-timeout 2s --retry-after 1s
pids+=("$collector")
port=$collector_port
base="http://127.0.0.1:$port"
echo "collector on port $port (pid $collector)"

# Warm-up: the topic is created by the first produce; one accepted request before the load.
python3 "$client" load "$base/v1/beacons" --out "$work/warm.jsonl" --prefix w --duration 20 \
  --connections 1 --rate 5 --beacons-max 5 --until-accepted 1 >"$work/warm.json"
grep -q '"202"' "$work/warm.json" || { echo "FAILED: no 202 before the load"; cat "$work/warm.json"; exit 1; }

# Overload: 48 connections for 16 s; the broker frozen from 5 s to 10 s.
python3 "$client" load "$base/v1/beacons" --out "$work/load.jsonl" --prefix o --duration 16 \
  --connections 48 --rss-pid "$collector" --rss-out "$work/rss.txt" >"$work/load.json" &
loader=$!
pids+=("$loader")
sleep 5
kill -STOP "$broker_pid"
echo "broker frozen (SIGSTOP) at $(date +%T.%N | cut -c1-12)"
sleep 5
curl -s -o /dev/null -w "readyz while the broker is frozen: %{http_code}\n" --max-time 3 "$base/readyz" || true
kill -CONT "$broker_pid"
thawed=$(python3 -c 'import time; print(time.time())')
echo "broker resumed (SIGCONT)"
wait "$loader" || { echo "FAILED: the load generator failed"; exit 1; }
echo "overload: $(cat "$work/load.json")"

# The load drops to 20 requests/s: recovered once 20 answers in a row are 202 (30 s at most).
dropped=$(python3 -c 'import time; print(time.time())')
python3 "$client" load "$base/v1/beacons" --out "$work/recover.jsonl" --prefix r --duration 30 \
  --connections 1 --rate 20 --beacons-max 20 --until-accepted 20 --rss-pid "$collector" \
  --rss-out "$work/rss2.txt" >"$work/recover.json"
echo "after the load dropped: $(cat "$work/recover.json")"
since_drop=$(python3 "$client" recovery "$work/recover.jsonl" "$dropped" 20) ||
  { echo "FAILED (c): no 20 requests in a row got 202 within 30 s after the load dropped"; exit 1; }
under_load=$(python3 "$client" recovery "$work/load.jsonl" "$thawed" 1) || under_load=none
echo "(c) recovery: 20 consecutive 202 from ${since_drop} s after the load dropped;" \
  "under the overload, the first 202 sent after the broker resumed: ${under_load} s after SIGCONT"
curl -sf "$base/readyz" >/dev/null || { echo "FAILED (c): /readyz is not 200 after recovery"; exit 1; }

curl -s "$base/metrics" >"$work/metrics.txt"
grep -E '^duet_collect_(shed_total|requests_total|in_flight|max_in_flight|beacons_total|beacons_rejected_total)' \
  "$work/metrics.txt"
kill -TERM "$collector"
if ! wait "$collector"; then echo "FAILED: the collector did not exit 0 on SIGTERM"; exit 1; fi
echo "collector: clean exit on SIGTERM"

# (a) shedding: both kinds, seen by the client and counted by the collector.
python3 - "$work/load.jsonl" "$work/metrics.txt" <<'EOF'
import json, re, sys
codes = {}
for line in open(sys.argv[1]):
    s = json.loads(line)['s']
    codes[s] = codes.get(s, 0) + 1
shed = {m.group(1): float(m.group(2)) for m in
        re.finditer(r'^duet_collect_shed_total\{reason="([a-z_]+)"\} (\S+)$',
                    open(sys.argv[2]).read(), re.M)}
print(f"(a) answers during the overload: {dict(sorted(codes.items()))}; shed by reason: {shed}")
assert codes.get(429, 0) > 0, 'FAILED (a): no request was answered 429'
assert codes.get(503, 0) > 0, 'FAILED (a): no request was answered 503'
assert codes.get(202, 0) > 0, 'FAILED (a): no request was answered 202 during the overload'
assert shed.get('in_flight', 0) >= codes[429], 'FAILED (a): 429s not counted as in_flight'
kafka = shed.get('queue_full', 0) + shed.get('delivery_timeout', 0) + shed.get('kafka_error', 0)
assert kafka >= codes[503], 'FAILED (a): 503s not counted by reason'
EOF

# (b) every beacon of every 202 is in the topic: the whole topic read back after the collector
# flushed and exited.
timeout 120 kcat -C -b "$bootstrap" -t beacons -e -q -o beginning -f '%s\n' >"$work/topic.ndjson"
echo "(b) topic read back: $(wc -l <"$work/topic.ndjson") messages"
python3 "$client" check "$work/topic.ndjson" "$work/warm.jsonl" "$work/load.jsonl" \
  "$work/recover.jsonl" | tee "$work/check.json"

# (d) memory: the peak RSS over the overload and the recovery.
peak=$(cat "$work/rss.txt" "$work/rss2.txt" | awk '$2 > m { m = $2 } END { printf "%.1f", m / 1024 }')
echo "(d) collector peak RSS: $peak MiB (limit $rss_limit_mib MiB)"
python3 -c 'import sys; sys.exit(0 if 0 < float(sys.argv[1]) <= float(sys.argv[2]) else 1)' \
  "$peak" "$rss_limit_mib" || { echo "FAILED (d): peak RSS $peak MiB"; exit 1; }
echo "overload test passed"
