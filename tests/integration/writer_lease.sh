#!/usr/bin/env bash
# Active/passive speed-layer writers on a real Kafka broker (scripts/kafka.sh, loopback): two
# `duet stream` processes — two "regions", each its own consumer group of the same topic — share
# one store and a writer lease in it. Only the holder writes; the other keeps its state warm.
# - SIGKILL of the active one while data flows: the passive one takes over within the lease's
#   TTL + a third of it (measured), under the next fencing token;
# - a frozen active one (SIGSTOP) loses the lease to the other; thawed (SIGCONT), its commits are
#   fenced off and it turns passive by itself — a zombie never writes;
# - at the end the figures equal `duet batch` over the same data exactly: no gap, no double
#   count, every line counted once.
# The store: SQLite (the default), or with a 4th argument `mongo` a MongoDB-wire server
# (FerretDB, scripts/ferretdb.sh: no transactions, no atomic conditional update).
set -euo pipefail
duet=$1 src=$2 work=$3 backend=${4:-sqlite}
rm -rf "$work" && mkdir -p "$work"
kafka="$src/scripts/kafka.sh"
ferretdb="$src/scripts/ferretdb.sh"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$kafka" stop "$work/kafka"
  [ "$backend" != mongo ] || bash "$ferretdb" stop "$work/ferretdb"
}
trap cleanup EXIT
source "$src/tests/integration/lib.sh"
require_tools kcat java python3 curl split
bootstrap=$(bash "$kafka" start "$work/kafka")
echo "kafka broker at $bootstrap"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "writer lease test ($backend store), seed $seed"
if [ "$backend" = mongo ]; then
  server=$(bash "$ferretdb" start "$work/ferretdb")
  echo "MongoDB-wire server (FerretDB) at $server"
  store="$server/lease"
  # FerretDB's SQLite backend writes a few thousand documents a second: sizes stay modest.
  noisy_dataset_with_reference 20000 4 5000
  chunk_lines=2000
else
  store="sqlite:$work/speed.sqlite"
  noisy_dataset_with_reference 60000 4 10000
  chunk_lines=5000
fi
python3 "$src/tests/integration/kafka_produce.py" "$work/master" 2>"$work/produce.log" >"$work/all.kv"
total=$(wc -l <"$work/all.kv")
split -l "$chunk_lines" -d -a 2 "$work/all.kv" "$work/chunk."
chunks=("$work"/chunk.*)
next_chunk=0
produce_chunks() {  # produce_chunks N: the next N chunks, 0.3 s apart
  local i
  for ((i = 0; i < $1 && next_chunk < ${#chunks[@]}; i++)); do
    kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all \
      <"${chunks[$next_chunk]}"
    next_chunk=$((next_chunk + 1))
    sleep 0.3
  done
}
produce_chunks 2

ttl_ms=3000
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A port pid
start_region() {  # start_region NAME: a stream process of its own group, lease holder NAME
  port[$1]=$(free_port)
  "$duet" stream --source "kafka://$bootstrap/beacons" --group "$1" --writer-id "$1" \
    --writer-lease speed --lease-ttl "${ttl_ms}ms" --store "$store" --interval 300ms \
    --session-timeout 2s --status-listen "127.0.0.1:${port[$1]}" 2>>"$work/$1.log" >/dev/null &
  pid[$1]=$!
  pids+=("$!")
}
metric() {  # metric REGION NAME: the value in its /metrics ("" if absent or not answering)
  curl -s --max-time 1 "http://127.0.0.1:${port[$1]}/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}
wait_for() {  # wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s
  local secs=$1 what=$2
  shift 2
  poll_until "$secs" "$@" && return 0
  echo "FAILED: $what (not within $secs s)"
  tail -n 3 "$work"/region-*.log
  exit 1
}
active() { [ "$(metric "$1" duet_stream_writer_active)" = "1" ]; }
passive() { [ "$(metric "$1" duet_stream_writer_active)" = "0" ] && curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:${port[$1]}/readyz"; }
token_of() { metric "$1" duet_stream_writer_lease_token; }

start_region region-a
wait_for 60 "region-a active" active region-a
start_region region-b
wait_for 60 "region-b ready and passive" passive region-b
echo "region-a active (token $(token_of region-a)), region-b passive and ready"
produce_chunks 3

# The active one dies mid-stream.
kill -9 "${pid[region-a]}"
killed=$(date +%s%N)
wait_for 30 "region-b taking over" active region-b
took=$((($(date +%s%N) - killed) / 1000000))
echo "SIGKILL of region-a: region-b took over in $took ms (lease TTL $ttl_ms ms; token $(token_of region-b))"
[ "$took" -le $((ttl_ms * 4 / 3 + 2000)) ] || { echo "FAILED: takeover took $took ms"; exit 1; }
[ "$(token_of region-b)" = 2 ] || { echo "FAILED: region-b holds token '$(token_of region-b)', expected 2"; exit 1; }
produce_chunks 3

# region-a comes back (a new process): passive. Then region-b freezes: region-a takes over; once
# thawed, region-b's commits are fenced off and it turns passive by itself.
start_region region-a
wait_for 60 "the new region-a ready and passive" passive region-a
kill -STOP "${pid[region-b]}"
produce_chunks 2
wait_for 30 "region-a taking over from the frozen region-b" active region-a
echo "region-b frozen: region-a took over (token $(token_of region-a))"
[ "$(token_of region-a)" = 3 ] || { echo "FAILED: region-a holds token '$(token_of region-a)', expected 3"; exit 1; }
kill -CONT "${pid[region-b]}"
wait_for 30 "region-b passive after thawing" passive region-b
grep -q '"event":"stream.lease_lost"' "$work/region-b.log" ||
  { echo "FAILED: region-b did not log that it lost the lease"; exit 1; }
if grep '"event":"stream.retry"' "$work/region-b.log" | grep -q "fenced off"; then
  echo "region-b: a commit after thawing was fenced off, then it turned passive"
else
  echo "region-b: learned of the takeover from the lease before committing, turned passive"
fi
produce_chunks 100

lines_committed() {
  "$duet" report --store "$store" --layer speed --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["input"]["lines"])'
}
all_committed() { [ "$(lines_committed)" = "$total" ]; }
wait_for 90 "every message committed" all_committed
for r in region-a region-b; do
  kill -TERM "${pid[$r]}"
  rc=0
  wait "${pid[$r]}" || rc=$?
  [ "$rc" -eq 0 ] || { echo "FAILED: $r exited $rc on SIGTERM"; tail -3 "$work/$r.log"; exit 1; }
done
pids=()
if grep -h '"level":"error"' "$work"/region-*.log; then echo "FAILED: an error was logged"; exit 1; fi
speed_equals_batch "$store" "$work/batch.json" "$work/speed.json"
echo "writer lease test passed: $total messages, two takeovers (SIGKILL, SIGSTOP), figures equal to duet batch"
