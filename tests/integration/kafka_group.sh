#!/usr/bin/env bash
# Consumer groups on a real broker (KRaft, scripts/kafka.sh; no mock): several `duet stream`
# processes in one group share a 4-partition topic keyed by visitor, each owning an engine and a
# store scope per partition (docs/kafka.md, "Consumer groups").
#
# The data is produced in five parts while the group changes:
#   part 0 — members A and B start together: the group splits the partitions between them;
#   part 1 — member C joins: a rebalance moves partitions to it (cooperative-sticky: only those),
#            then part 1 is produced and C reads its share;
#   parts 2-4 — A is killed with SIGKILL three times, each time after it committed part of one,
#            and restarted: its partitions move to B and C (after the session timeout) and back;
# then every member is stopped with SIGTERM (each exits 0, handing its partitions over) and two
# members drain together. The speed report must equal `duet batch` over the same files figure
# by figure, and so must the merged view (a batch run over the first half of the files).
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
require_tools kcat java python3 sqlite3 split
bootstrap=$(bash "$kafka" start "$work/kafka")
echo "kafka broker at $bootstrap"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "kafka group test, seed $seed"
lines=240000
noisy_dataset_with_reference "$lines" 6 20000
first_half_of_master "$work/early"
"$duet" batch --input "$work/early" --store "sqlite:$work/speed.sqlite" 2>/dev/null >/dev/null

python3 "$src/tests/integration/kafka_produce.py" "$work/master" >"$work/keyed.txt" 2>"$work/produce.log"
grep -q " 0 skipped" "$work/produce.log" || { echo "FAILED: lines could not be produced"; exit 1; }
split -n l/5 -d "$work/keyed.txt" "$work/part"
produce() {
  kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all <"$work/part0$1"
  echo "part $1 produced ($(wc -l <"$work/part0$1") lines)"
}

args=(stream --source "kafka://$bootstrap/beacons" --group duet-group-test
      --store "sqlite:$work/speed.sqlite" --max-batch 300 --interval 50ms --session-timeout 2s)
declare -A pid
start() {  # start NAME: a member writing its log to NAME.log
  "$duet" "${args[@]}" 2>>"$work/$1.log" >/dev/null &
  pid[$1]=$!
  pids+=($!)
}
count() { grep -c -- "$2" "$work/$1.log" 2>/dev/null || true; }
# wait_for NAME PATTERN N: until NAME.log holds N lines matching PATTERN (at most 60 s).
wait_for() {
  local i
  for i in $(seq 1 1200); do
    [ "$(count "$1" "$2")" -ge "$3" ] && return 0
    sleep 0.05
  done
  echo "FAILED: $1 did not log '$2' $3 times within 60 s"; tail -5 "$work/$1.log"; exit 1
}
assigned='"event":"stream.partition_assigned"'
revoked='"event":"stream.partition_revoked"'
batch='"event":"stream.batch"'

produce 0
start a
start b
wait_for a "$assigned" 1
wait_for b "$assigned" 1
wait_for a "$batch" 1
wait_for b "$batch" 1
echo "members a and b share the partitions: a owns $(count a "$assigned") of them, b $(count b "$assigned") (before revocations)"

# Part 1 only once c owns its partitions: produced before, a and b could read all of it while c
# is still joining (about 2 s), leaving c nothing to read.
start c
wait_for c "$assigned" 1
produce 1
wait_for c "$batch" 1
moved=$(( $(count a "$revoked") + $(count b "$revoked") ))
[ "$moved" -ge 1 ] || { echo "FAILED: member c joined but no partition was revoked from a or b"; exit 1; }
echo "member c joined: $moved partitions moved to it"

for k in 1 2 3; do
  before=$(count a "$batch")
  produce $((k + 1))
  wait_for a "$batch" $((before + 1))
  sleep "0.$(( RANDOM % 30 ))"
  kill -9 "${pid[a]}"
  wait "${pid[a]}" 2>/dev/null || true
  # The group gives a's partitions to b and c once its session has timed out.
  others=$(( $(count b "$assigned") + $(count c "$assigned") ))
  for i in $(seq 1 1201); do
    [ $(( $(count b "$assigned") + $(count c "$assigned") )) -gt "$others" ] && break
    [ "$i" -le 1200 ] || { echo "FAILED: a's partitions did not move within 60 s"; exit 1; }
    sleep 0.05
  done
  echo "kill $k of member a: SIGKILL after a commit, its partitions moved; epochs $(speed_epochs "$work/speed.sqlite")"
  start a
  wait_for a "$assigned" $(( $(count a "$assigned") + 1 ))
done

for m in a b c; do
  kill -TERM "${pid[$m]}"
  if ! wait "${pid[$m]}"; then echo "FAILED: member $m did not exit 0 on SIGTERM"; exit 1; fi
done
echo "SIGTERM: every member exited 0"

"$duet" "${args[@]}" --drain 2>>"$work/d1.log" >/dev/null &
d1=$!
"$duet" "${args[@]}" --drain 2>>"$work/d2.log" >/dev/null &
d2=$!
wait "$d1" || { echo "FAILED: drain member 1 failed"; tail -3 "$work/d1.log"; exit 1; }
wait "$d2" || { echo "FAILED: drain member 2 failed"; tail -3 "$work/d2.log"; exit 1; }
echo "two members drained the topic"
if grep -h '"level":"error"' "$work"/*.log; then echo "FAILED: a member logged an error"; exit 1; fi
# The producer writes no transaction markers: a gap in a partition's offsets is a lost record.
if grep -h '"event":"kafka.offset_gap"' "$work"/*.log; then echo "FAILED: offsets skipped"; exit 1; fi
# librdkafka 2.0 sometimes fetches past the expected offset during a rebalance; each time the
# member seeks back (log/offset_cursor.h). Seen under load, not on every run.
echo "fetches past the expected offset, sought back: $(cat "$work"/*.log | grep -c '"event":"kafka.fetch_position_ahead"' || true)"
scopes=$(sqlite3 "$work/speed.sqlite" "SELECT count(*) FROM speed_scopes WHERE epoch > 0")
[ "$scopes" -eq 4 ] || { echo "FAILED: $scopes partition scopes committed, expected 4"; exit 1; }

speed_equals_batch "sqlite:$work/speed.sqlite" "$work/batch.json" "$work/speed.json"
"$duet" report --store "sqlite:$work/speed.sqlite" --layer merged --json --full >"$work/merged.json"
echo "merged view (batch over the first half, the group's scopes after it) vs batch over everything:"
python3 "$src/tests/reference/compare.py" --ignore input --ignore event_time "$work/batch.json" \
  "$work/merged.json"
echo "kafka group test passed"
