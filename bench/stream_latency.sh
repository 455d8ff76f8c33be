#!/usr/bin/env bash
# Live latency of the speed layer: a new complete file of beacons lands in the log (rename, as
# every writer of the master dataset does); how long until `duet report --layer speed` counts it?
#   bash bench/stream_latency.sh [duet] [samples] [interval]
set -euo pipefail
duet=${1:-build/src/cli/duet}
samples=${2:-20}
interval=${3:-250ms}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/log/dt=2026-11-24/hr=10"
"$duet" stream --source "$work/log" --store "sqlite:$work/s.sqlite" --interval "$interval" \
  >/dev/null 2>&1 &
pid=$!
sleep 1
lines_in_store() {
  local n
  # The speed views live as mergeable states in the store: ask duet for them (a few ms).
  n=$("$duet" report --store "sqlite:$work/s.sqlite" --layer speed --json 2>/dev/null |
      grep -o '"lines":[0-9]*' | head -1 | cut -d: -f2 || true)
  echo "${n:-0}"
}
ts=1795514400000
total=0
lat=()
for i in $(seq 1 "$samples"); do
  f="$work/log/dt=2026-11-24/hr=10/part-$(printf %05d "$i").ndjson"
  for k in $(seq 1 100); do
    ts=$((ts + 1000))
    echo "{\"id\":\"$i-$k\",\"visitor\":\"v$k\",\"ts\":$ts,\"type\":\"pageview\",\"experiments\":{\"e\":\"a\"}}"
  done >"$f.tmp"
  total=$((total + 100))
  start=$(date +%s%N)
  mv "$f.tmp" "$(dirname "$f")/$(basename "$f")"
  for _ in $(seq 1 2000); do
    [ "$(lines_in_store)" -ge "$total" ] && break
    sleep 0.005
  done
  lat+=($(( ($(date +%s%N) - start) / 1000000 )))
  sleep 0.$((RANDOM % 9 + 1))
done
printf '%s\n' "${lat[@]}" | sort -n | awk -v iv="$interval" '{a[NR]=$1} END {
  printf "append -> visible in the speed report (interval %s, %d samples): min %d ms, median %d ms, p90 %d ms, max %d ms\n",
    iv, NR, a[1], a[int((NR+1)/2)], a[int(NR*0.9)], a[NR] }'
