#!/usr/bin/env bash
# deploy.import: the sharded backfill the Helm chart's Indexed Job runs (`duet import`), on a
# real MongoDB-wire server (FerretDB, SQLite backend, loopback):
# 1. three shards import a generated master dataset (bad rows, duplicates, disorder; zstd and
#    plain files): shards 0 and 2 at the same time, shard 1 twice (a retried pod);
# 2. every line is stored exactly once, and `duet batch --input mongodb://…` over the imported
#    collection equals `duet batch` over the files;
# 3. wrong arguments are refused with messages that name the option and the value.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
ferretdb="$src/scripts/ferretdb.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$ferretdb" stop "$work/ferretdb"
}
trap cleanup EXIT
# shellcheck source=tests/integration/lib.sh
source "$src/tests/integration/lib.sh"
require_tools python3 zstd
fail() { echo "FAILED: $*"; exit 1; }
server=$(bash "$ferretdb" start "$work/ferretdb")
seed=${DUET_TEST_SEED:-$RANDOM}
echo "import test, seed $seed, MongoDB-wire server at $server"
noisy_dataset_with_reference 12000 3 1500
# Half the files compressed, as the archiver writes them.
n=0
while read -r f; do
  n=$((n + 1))
  [ $((n % 2)) = 0 ] && zstd -q --rm "$f"
done < <(find "$work/master" -name '*.ndjson' | sort)
files=$(find "$work/master" -name '*.ndjson*' | grep -c .)
lines=$(find "$work/master" -name '*.ndjson*' -print0 | sort -z | xargs -0 zstdcat -f | grep -c '' || true)
echo "dataset: $files files ($((files / 2)) zstd), $lines lines"

raw="$server/backfill.raw"
imp=("$duet" import --input "$work/master" --out "$raw" --shards 3 --batch-lines 700)
"${imp[@]}" --shard-index 0 >"$work/shard0.out" 2>"$work/shard0.log" &
pids+=($!)
"${imp[@]}" --shard-index 2 >"$work/shard2.out" 2>"$work/shard2.log" &
pids+=($!)
"${imp[@]}" --shard-index 1 >"$work/shard1.out" 2>"$work/shard1.log"
wait "${pids[0]}" || fail "shard 0 failed: $(tail -3 "$work/shard0.log")"
wait "${pids[1]}" || fail "shard 2 failed: $(tail -3 "$work/shard2.log")"
"${imp[@]}" --shard-index 1 >"$work/shard1.again.out" 2>>"$work/shard1.log"
cat "$work/shard0.out" "$work/shard1.out" "$work/shard2.out" "$work/shard1.again.out"
total=0
for i in 0 1 2; do
  got=$(sed -n 's/.*files, \([0-9]*\) lines .*/\1/p' "$work/shard$i.out")
  total=$((total + got))
done
[ "$total" = "$lines" ] || fail "the shards imported $total lines of $lines"
shard_files=$(sed -n 's/.*: \([0-9]*\) files, .*/\1/p' "$work/shard0.out" "$work/shard1.out" "$work/shard2.out" | paste -sd+ | bc)
[ "$shard_files" = "$files" ] || fail "the shards took $shard_files files of $files"
grep -q '"event":"import.file"' "$work/shard1.log" || fail "no per-file progress in the log"

"$duet" batch --input "$raw" --store "sqlite:$work/from_raw.sqlite" >"$work/batch_raw.out" 2>"$work/batch_raw.log"
"$duet" report --store "sqlite:$work/from_raw.sqlite" --json --full >"$work/from_raw.json"
python3 - "$work/from_raw.json" "$lines" <<'EOF'
import json, sys
views = json.load(open(sys.argv[1]))
got = views["input"]["lines"]
if got != int(sys.argv[2]):
    sys.exit(f"FAILED: the imported collection holds {got} lines, the files {sys.argv[2]}")
EOF
echo "batch over the imported collection vs batch over the files:"
python3 "$src/tests/reference/compare.py" "$work/batch.json" "$work/from_raw.json"

# 3. Refusals (exit 2, the option and the value named).
expect_usage() {
  local want=$1
  shift
  set +e
  "$duet" import "$@" >/dev/null 2>"$work/usage.err"
  local rc=$?
  set -e
  [ "$rc" = 2 ] || fail "duet import $* exited $rc, expected 2"
  grep -qF -- "$want" "$work/usage.err" || fail "duet import $*: '$want' not in: $(cat "$work/usage.err")"
}
expect_usage "--shard-index" --input "$work/master" --out "$raw" --shards 3 --shard-index 3
expect_usage "--out '$work/folder'" --input "$work/master" --out "$work/folder"
expect_usage "--shards" --input "$work/master" --out "$raw" --shards 0
echo "import: PASSED ($files files, $lines lines, 3 shards, one twice and two at once)"
