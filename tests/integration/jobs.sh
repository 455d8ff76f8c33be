#!/usr/bin/env bash
# Asynchronous jobs with real processes (docs/jobs.md): `duet jobs worker` over a SQLite store
# runs `duet train` and `duet batch` as child processes. Checks:
# - a train and two batch jobs submitted with `duet jobs submit` all succeed, with their output
#   in the job log; the second batch starts only after the first finished (one run per kind);
# - kill -9 of the worker while a job runs: its child dies with it; after a restart that job is
#   failed "worker lost: lease expired at …", never run again, and a job queued before the kill
#   runs and succeeds;
# - SIGTERM stops the worker within its grace, finishing a running job as "worker stopped";
# - the batch schedule queues a batch run by itself.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
require_tools python3 pgrep
echo "jobs test"
"$duet" generate --out "$work/master" --beacons 200000 >/dev/null 2>&1
store="sqlite:$work/jobs.sqlite"
worker=""

start_worker() {
  "$duet" jobs worker --store "$store" --input "$work/master" --lease 3s --poll 200ms --grace 3s \
    "$@" 2>>"$work/worker.log" >/dev/null &
  worker=$!
}
stop_worker() {
  kill -TERM "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
}
trap 'kill -9 $worker 2>/dev/null || true' EXIT

submit() {  # KIND [PARAMS] -> prints the id
  "$duet" jobs submit --store "$store" --kind "$1" ${2:+--params "$2"} |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
field() {  # ID FIELD
  "$duet" jobs show --store "$store" --id "$1" --json |
    python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("" if v is None else v)' "$2"
}
wait_state() {  # ID STATE SECONDS
  local i s
  for i in $(seq 1 $(($3 * 5))); do
    s=$(field "$1" state)
    [ "$s" = "$2" ] && return 0
    case "$s" in succeeded|failed)
      echo "FAILED: job $1 is $s, expected $2: $(field "$1" message)"
      "$duet" jobs show --store "$store" --id "$1" | tail -20
      exit 1;;
    esac
    sleep 0.2
  done
  echo "FAILED: job $1 is still $(field "$1" state) after $3 s (expected $2)"
  tail -20 "$work/worker.log"
  exit 1
}
ms() {  # ISO time -> ms since the epoch
  python3 -c 'import sys,datetime; print(int(datetime.datetime.fromisoformat(sys.argv[1].replace("Z","+00:00")).timestamp()*1000))' "$1"
}

# 1. Jobs run and succeed; two batch runs never overlap.
start_worker --schedule-batch 0
train=$(submit train '{"rounds":10}')
b1=$(submit batch)
b2=$(submit batch)
wait_state "$train" succeeded 300
wait_state "$b1" succeeded 300
wait_state "$b2" succeeded 300
field "$train" log >"$work/train.log"
field "$b1" log >"$work/batch.log"
grep -q "train: version 1 registered" "$work/train.log" ||
  { echo "FAILED: the train job's log lacks duet train's output"; exit 1; }
grep -q "^batch: .* lines" "$work/batch.log" ||
  { echo "FAILED: the batch job's log lacks duet batch's output"; exit 1; }
f1=$(ms "$(field "$b1" finished_at)") s2=$(ms "$(field "$b2" started_at)")
[ "$s2" -ge "$f1" ] || { echo "FAILED: batch $b2 started ($s2) before batch $b1 finished ($f1)"; exit 1; }
"$duet" report --store "$store" --json >/dev/null || { echo "FAILED: no batch views"; exit 1; }
echo "train $train, batch $b1, batch $b2 succeeded; batch $b2 started $((s2 - f1)) ms after $b1 finished"

# 2. kill -9 while a job runs: the job is failed, not re-run; a queued one runs after a restart.
long=$(submit train '{"rounds":100000,"force":true}')
wait_state "$long" running 60
queued=$(submit train '{"rounds":5}')
sleep 1
child=$(pgrep -f -- "train --input $work/master --store $store --force --rounds 100000" || true)
[ -n "$child" ] || { echo "FAILED: no duet train child is running"; exit 1; }
kill -9 "$worker"
wait "$worker" 2>/dev/null || true
for _ in $(seq 1 50); do kill -0 $child 2>/dev/null || break; sleep 0.1; done
if kill -0 $child 2>/dev/null; then echo "FAILED: duet train outlived its killed worker"; exit 1; fi
[ "$(field "$long" state)" = running ] || { echo "FAILED: job $long is $(field "$long" state) right after the kill"; exit 1; }
started=$(field "$long" started_at)
start_worker --schedule-batch 0
wait_state "$long" failed 60
msg=$(field "$long" message)
case "$msg" in "worker lost: lease expired at "*) ;; *) echo "FAILED: job $long: '$msg'"; exit 1;; esac
wait_state "$queued" succeeded 300
[ "$(field "$long" started_at)" = "$started" ] && [ "$(field "$long" state)" = failed ] ||
  { echo "FAILED: job $long was run again"; exit 1; }
echo "killed job $long: $msg; job $queued queued before the kill succeeded after the restart"

# 3. SIGTERM: a job that outlasts the grace is stopped and failed "worker stopped".
slow=$(submit train '{"rounds":100000,"force":true}')
wait_state "$slow" running 60
t0=$(date +%s)
kill -TERM "$worker"
rc=0
wait "$worker" || rc=$?
[ "$rc" -eq 0 ] || { echo "FAILED: the worker exited with $rc on SIGTERM"; exit 1; }
[ $(( $(date +%s) - t0 )) -le 15 ] || { echo "FAILED: the worker took too long to stop"; exit 1; }
[ "$(field "$slow" message)" = "worker stopped" ] ||
  { echo "FAILED: job $slow: '$(field "$slow" message)', expected 'worker stopped'"; exit 1; }
pgrep -f -- "--rounds 100000" >/dev/null && { echo "FAILED: a duet train child survived SIGTERM"; exit 1; }
echo "SIGTERM: job $slow stopped after the grace; worker exited 0"

# 4. The schedule queues a batch run by itself (its first tick), and it runs.
before=$("$duet" jobs list --store "$store" --json | python3 -c 'import json,sys; print(max(j["id"] for j in json.load(sys.stdin)["jobs"]))')
start_worker --schedule-batch 30m --kinds batch
sched=""
for _ in $(seq 1 50); do
  sched=$("$duet" jobs list --store "$store" --json |
    python3 -c 'import json,sys; print(next((j["id"] for j in json.load(sys.stdin)["jobs"] if j["id"] > int(sys.argv[1]) and j["kind"] == "batch"), ""))' "$before")
  [ -n "$sched" ] && break
  sleep 0.2
done
[ -n "$sched" ] || { echo "FAILED: the schedule queued no batch job"; exit 1; }
wait_state "$sched" succeeded 300
stop_worker
"$duet" jobs list --store "$store"
echo "PASSED"
