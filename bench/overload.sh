#!/usr/bin/env bash
# The collector under overload, measured (docs/overload.md): a real local broker
# (scripts/kafka.sh), `duet collect` on a free loopback port, and the closed-loop load generator of
# the overload test (tests/integration/overload_client.py: keep-alive connections, 1-100 beacons
# per request unless said otherwise, unique ids). Six runs of 20 s of load each, each on a fresh
# collector and topic:
#   A  32 connections, --max-in-flight 32: at the bound, nothing shed (the reference);
#   B  128 connections, --max-in-flight 32: overload, shed with 429;
#   C  128 connections, no practical bound (--max-in-flight 1000000): what the bound buys;
#   D  128 connections, --max-in-flight 32 --max-buffered 4000 --delivery-timeout 2s, the broker
#      frozen (SIGSTOP) from 5 s to 10 s: 503 by delivery_timeout / queue_full, then recovery
#      (time to the first 202 sent after SIGCONT, and to 20 x 202 in a row once the load dropped
#      to 20 requests/s);
#   E  256 connections of 500-1000 beacons (50-110 KB bodies), --max-in-flight 16, the broker
#      frozen from 5 s to 10 s: the memory bound with large requests;
#   F  the same with no practical bound.
# After each run the topic is read back and every beacon of every 202 must be in it.
# Prints one line per run and a Markdown table (also in /tmp/duet-bench-overload.md).
#   bash bench/overload.sh [duet]
set -euo pipefail
duet=${1:-build/src/cli/duet}
src=$(cd "$(dirname "$0")/.." && pwd)
client="$src/tests/integration/overload_client.py"
work=$(mktemp -d /tmp/duet-bench-overload.XXXXXX)
collector=""
cleanup() {
  if [ -f "$work/kafka/pid" ]; then kill -CONT "$(cat "$work/kafka/pid")" 2>/dev/null || true; fi
  if [ -n "$collector" ]; then kill -9 "$collector" 2>/dev/null || true; fi
  bash "$src/scripts/kafka.sh" stop "$work/kafka"
  rm -rf "$work"
}
trap cleanup EXIT
bootstrap=$(bash "$src/scripts/kafka.sh" start "$work/kafka" 2>/dev/null | tail -n 1)
broker_pid=$(cat "$work/kafka/pid")
echo "broker $bootstrap; $(nproc) cores shared by the broker, the collector and the load generator"
table="$work/table.md"
echo "| run | connections × beacons/request | flags | offered req/s | 202 req/s (beacons/s) | 429 | 503 queue_full / delivery_timeout | 202 p50 / p99 / max ms | 429 p50 / p99 ms | peak RSS MiB | recovery |" >"$table"
echo "|---|---|---|---|---|---|---|---|---|---|---|" >>"$table"

# run NAME CONNECTIONS SECONDS FREEZE(0|1) BEACONS_MIN BEACONS_MAX FLAGS...
run() {
  local name=$1 conns=$2 seconds=$3 freeze=$4 bmin=$5 bmax=$6
  shift 6
  local topic="load-$name" log="$work/$name.log" port="" thawed=0 recovery="-"
  "$duet" collect --listen 127.0.0.1:0 --brokers "$bootstrap" --topic "$topic" "$@" 2>"$log" &
  collector=$!
  for _ in $(seq 1 100); do
    port=$(grep -o '"port":[0-9]*' "$log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
  local url="http://127.0.0.1:$port/v1/beacons"
  python3 "$client" load "$url" --out "$work/$name.warm.jsonl" --prefix "$name-w" --duration 20 \
    --connections 1 --rate 5 --beacons-max 5 --until-accepted 1 >/dev/null
  python3 "$client" load "$url" --out "$work/$name.jsonl" --prefix "$name" --duration "$seconds" \
    --connections "$conns" --beacons-min "$bmin" --beacons-max "$bmax" --rss-pid "$collector" \
    >"$work/$name.json" &
  local loader=$!
  if [ "$freeze" = 1 ]; then
    sleep 5
    kill -STOP "$broker_pid"
    sleep 5
    kill -CONT "$broker_pid"
    thawed=$(python3 -c 'import time; print(time.time())')
  fi
  wait "$loader"
  if [ "$freeze" = 1 ]; then
    local first dropped after
    first=$(python3 "$client" recovery "$work/$name.jsonl" "$thawed" 1 || echo none)
    dropped=$(python3 -c 'import time; print(time.time())')
    python3 "$client" load "$url" --out "$work/$name.rec.jsonl" --prefix "$name-r" --duration 30 \
      --connections 1 --rate 20 --beacons-max 20 --until-accepted 20 >/dev/null
    after=$(python3 "$client" recovery "$work/$name.rec.jsonl" "$dropped" 20 || echo none)
    recovery="first 202 ${first} s after SIGCONT; 20 x 202 ${after} s after the load dropped"
  fi
  curl -s "http://127.0.0.1:$port/metrics" >"$work/$name.metrics"
  kill -TERM "$collector"
  wait "$collector" || true
  collector=""
  timeout 120 kcat -C -b "$bootstrap" -t "$topic" -e -q -o beginning -f '%s\n' >"$work/$name.topic" 2>/dev/null
  local records=("$work/$name.warm.jsonl" "$work/$name.jsonl")
  [ -f "$work/$name.rec.jsonl" ] && records+=("$work/$name.rec.jsonl")
  python3 "$client" check "$work/$name.topic" "${records[@]}" >"$work/$name.check.json"
  python3 "$client" check "$work/$name.topic" "$work/$name.jsonl" >"$work/$name.check-load.json"
  python3 - "$name" "$conns × $bmin-$bmax" "$*" "$work/$name.json" "$work/$name.check-load.json" \
    "$work/$name.metrics" "$recovery" >>"$table" <<'EOF'
import json, re, sys
name, conns, flags, summary, check, metrics, recovery = sys.argv[1:]
s = json.load(open(summary))
c = json.load(open(check))
shed = {m.group(1): int(float(m.group(2))) for m in re.finditer(
    r'^duet_collect_shed_total\{reason="([a-z_]+)"\} (\S+)$', open(metrics).read(), re.M)}
codes = s['codes']
n = s['requests']
secs = s['seconds']
lat = c['latency_by_code']
def pct(code):
    return f"{100 * codes.get(code, 0) / n:.1f} %"
ok = lat.get('202', {})
r429 = lat.get('429')
print(f"| {name} | {conns} | `{flags}` | {n / secs:,.0f} | {codes.get('202', 0) / secs:,.0f} "
      f"({c['accepted_beacons'] / secs:,.0f}) | {pct('429')} | "
      f"{shed.get('queue_full', 0)} / {shed.get('delivery_timeout', 0)} ({pct('503')}) | "
      f"{ok.get('p50_ms', '-')} / {ok.get('p99_ms', '-')} / {ok.get('max_ms', '-')} | "
      + (f"{r429['p50_ms']} / {r429['p99_ms']}" if r429 else "-")
      + f" | {s['rss_peak_mib']} | {recovery} |")
EOF
  echo "$name: $(cat "$work/$name.json"); missing 202 beacons:" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accepted_beacons_missing_from_topic"])' "$work/$name.check.json")"
}

run A 32 20 0 1 100 --max-in-flight 32
run B 128 20 0 1 100 --max-in-flight 32
run C 128 20 0 1 100 --max-in-flight 1000000
run D 128 20 1 1 100 --max-in-flight 32 --max-buffered 4000 --delivery-timeout 2s --retry-after 1s
run E 256 20 1 500 1000 --max-in-flight 16 --delivery-timeout 2s --retry-after 1s
run F 256 20 1 500 1000 --max-in-flight 1000000 --delivery-timeout 2s --retry-after 1s
cat "$table"
cp "$table" /tmp/duet-bench-overload.md
