#!/usr/bin/env bash
# `duet serve` under load: wrk on loopback against the report and timeseries endpoints at several
# connection counts, over a store filled by a batch run (first half) and the speed layer (all):
# requests/s and latency percentiles (wrk's --latency). wrk and the server share the machine's
# cores, so the figures are a lower bound of what the server alone does.
#   bash bench/serve.sh [duet] [lines] [seconds per run]
set -euo pipefail
duet=${1:-build/src/cli/duet}
lines=${2:-1000000}
secs=${3:-10}
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/duet-bench-serve.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/install-deps.sh)"; exit 1; }
source "$src/tests/integration/lib.sh"  # first_half_of_master
"$duet" generate --out "$work/master" --beacons "$lines" --seed 42 2>/dev/null >/dev/null
first_half_of_master "$work/early"
store="sqlite:$work/serve.sqlite"
"$duet" batch --input "$work/early" --store "$store" 2>/dev/null >/dev/null
"$duet" stream --source "$work/master" --store "$store" --drain 2>/dev/null >/dev/null
"$duet" serve --store "$store" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's/^serve: dashboard at \(http[^ ]*\) .*/\1/p' "$work/serve.out")
  [ -n "$url" ] && curl -sf "${url}readyz" >/dev/null && break
  sleep 0.05
done
curl -sf "${url}readyz" >/dev/null || { echo "duet serve did not get ready"; cat "$work/serve.log"; exit 1; }
experiment=$(curl -sf "${url}v1/experiments" | python3 -c 'import json,sys; print(json.load(sys.stdin)["experiments"][0]["id"])')
echo "duet serve $url over $lines generated lines; experiment $experiment; $(nproc) cores shared with wrk"
printf '%-12s %6s %12s %10s %10s %10s %12s\n' endpoint conns "requests/s" p50 p90 p99 "bytes/resp"
for endpoint in report timeseries; do
  if [ "$endpoint" = report ]; then path="v1/experiments/$experiment/report"
  else path="v1/experiments/$experiment/timeseries?metric=conversion_rate_session"; fi
  size=$(curl -sf "${url}${path}" | wc -c)
  for conns in 1 8 32 128; do
    threads=$(( conns < 2 ? 1 : 2 ))
    out=$(wrk -t "$threads" -c "$conns" -d "${secs}s" --latency "${url}${path}")
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p90=$(echo "$out" | awk '$1 == "90%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}')
    printf '%-12s %6s %12s %10s %10s %10s %12s %s\n' "$endpoint" "$conns" "$rps" "$p50" "$p90" "$p99" "$size" "$errors"
  done
done
kill -TERM $pid
wait $pid
pid=""
