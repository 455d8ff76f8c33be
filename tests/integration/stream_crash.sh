#!/usr/bin/env bash
# Exactly once with real processes: `duet stream` is killed with SIGKILL at random points (at
# least 5 times) and restarted, then stopped with SIGTERM, then run with --drain. The speed
# layer's final report must equal `duet batch` on the same data, figure by figure.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "stream crash test, seed $seed"
noisy_dataset_with_reference 200000 6 20000

# A batch run over the first half of the files into the speed layer's store: the merged view
# then mixes both layers across the batch boundary.
first_half_of_master "$work/early"
"$duet" batch --input "$work/early" --store "sqlite:$work/speed.sqlite" 2>/dev/null >/dev/null

args=(stream --source "$work/master" --store "sqlite:$work/speed.sqlite" --max-batch 3000
      --interval 50ms)
kills=0
for i in $(seq 1 8); do
  # Started directly (not through a shell function), so that $! is duet's own pid.
  "$duet" "${args[@]}" 2>>"$work/stream.log" >/dev/null &
  pid=$!
  # Random point: between 0.05 s and 0.6 s into the run (start-up, mid-batch or mid-commit).
  sleep "0.$(( (RANDOM % 55) + 5 ))"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  echo "kill $i: SIGKILL sent, committed epoch now $(speed_epochs "$work/speed.sqlite")"
done
[ "$kills" -ge 5 ] || { echo "FAILED: only $kills kills landed"; exit 1; }

# SIGTERM finishes the current micro-batch, commits and exits 0.
sigterm_exits_cleanly "$work/stream.log" "$duet" "${args[@]}"
drain_without_errors "$work/stream.log" "$duet" "${args[@]}"
speed_equals_batch "sqlite:$work/speed.sqlite" "$work/batch.json" "$work/speed.json"
"$duet" report --store "sqlite:$work/speed.sqlite" --layer merged --json --full >"$work/merged.json"
echo "merged view (batch over the first half, speed over everything) vs batch over everything:"
# Input accounting is the speed layer's and the event-time range is not part of the merge.
python3 "$src/tests/reference/compare.py" --ignore input --ignore event_time "$work/batch.json" \
  "$work/merged.json"
echo "stream crash test passed ($kills SIGKILLs)"
