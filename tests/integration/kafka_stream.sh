#!/usr/bin/env bash
# The speed layer on a real Kafka broker (KRaft, started by scripts/kafka.sh on a free loopback
# port; no mock). A generated dataset is produced to a 4-partition topic keyed by visitor (kcat,
# idempotent producer, acks=all). `duet stream --source kafka://…` is killed with SIGKILL at
# random points (at least 3 times) and restarted, stopped with SIGTERM, then drained. Its report
# must equal `duet batch` over the same files figure by figure, and so must the merged view
# (batch over the first half of the files + speed). Every bad row must also be in beacons.bad.
#
# Partitions are consumed concurrently, so event time is not in order across them: the speed
# layer's watermark is the least over the partitions that are not caught up (one partition read
# ahead must not make another's beacons late). With no beacon generated late, nothing may be
# counted late, and the comparison is exact at the default lateness.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
kafka="$src/scripts/kafka.sh"
trap 'bash "$kafka" stop "$work/kafka"' EXIT
source "$src/tests/integration/lib.sh"
require_tools kcat java python3 sqlite3
bootstrap=$(bash "$kafka" start "$work/kafka")
echo "kafka broker at $bootstrap"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "kafka stream test, seed $seed"
lines=200000
noisy_dataset_with_reference "$lines" 6 20000

python3 "$src/tests/integration/kafka_produce.py" "$work/master" 2>"$work/produce.log" |
  kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all
cat "$work/produce.log"
grep -q " 0 skipped" "$work/produce.log" || { echo "FAILED: lines could not be produced"; exit 1; }
in_topic=$(kcat -C -b "$bootstrap" -t beacons -e -q -o beginning -f 'x\n' | wc -l)
[ "$in_topic" -eq "$lines" ] || { echo "FAILED: $in_topic messages in the topic, expected $lines"; exit 1; }
echo "produced $in_topic messages"

first_half_of_master "$work/early"
"$duet" batch --input "$work/early" --store "sqlite:$work/speed.sqlite" 2>/dev/null >/dev/null

args=(stream --source "kafka://$bootstrap/beacons" --group duet-test --store "sqlite:$work/speed.sqlite"
      --max-batch 100 --interval 50ms --session-timeout 2s)
sigkill_after_progress "$work/stream.log" '"event":"stream.batch"' 4 "$duet" "${args[@]}"
echo "committed epochs after the kills: $(speed_epochs "$work/speed.sqlite")"

sigterm_exits_cleanly "$work/stream.log" "$duet" "${args[@]}"
drain_without_errors "$work/stream.log" "$duet" "${args[@]}"
speed_equals_batch "sqlite:$work/speed.sqlite" "$work/batch.json" "$work/speed.json"
# Every bad row also went to beacons.bad, at least once (a micro-batch read again after a SIGKILL
# sends its bad rows again), keyed by source@offset, with its reason in a header.
bad_rows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["input"]["bad_rows"])' "$work/speed.json")
kcat -C -b "$bootstrap" -t beacons.bad -e -q -o beginning -f '%k\t%h\n' >"$work/bad_topic.txt"
distinct=$(cut -f1 "$work/bad_topic.txt" | sort -u | wc -l)
echo "beacons.bad: $(wc -l <"$work/bad_topic.txt") messages, $distinct distinct, $bad_rows bad rows in the report"
[ "$distinct" -eq "$bad_rows" ] || { echo "FAILED: the bad-row topic does not hold every bad row once"; exit 1; }
grep -q "reason=" "$work/bad_topic.txt" || { echo "FAILED: no reason header"; exit 1; }
"$duet" report --store "sqlite:$work/speed.sqlite" --layer merged --json --full >"$work/merged.json"
echo "merged view (batch over the first half, speed over the topic) vs batch over everything:"
python3 "$src/tests/reference/compare.py" --ignore input --ignore event_time "$work/batch.json" \
  "$work/merged.json"
echo "kafka stream test passed"
