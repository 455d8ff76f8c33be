#!/usr/bin/env bash
# The store on a real MongoDB-wire server (FerretDB v1.24.2 with its SQLite backend, started by
# scripts/ferretdb.sh on a free loopback port; it has no transactions):
# 1. exactly once: `duet stream --store mongodb://…` is killed with SIGKILL 4 times (each after a
#    commit), stopped with SIGTERM, then drained; its report and the merged view (a batch run
#    over the first half of the files, in the same database) equal `duet batch` over all of it;
# 2. store outage: the server is stopped for 20 s while data arrives and the stream runs; the
#    stream backs off, loses nothing, resumes by itself, and ends equal to `duet batch`;
# 3. the batch layer into MongoDB equals the batch layer into SQLite, bad rows included;
# 4. raw beacons in MongoDB: `duet archive --out mongodb://…/DB.COLLECTION` from a real Kafka
#    broker, killed with SIGKILL 3 times (each after it wrote) and drained, then `duet batch
#    --input mongodb://…/DB.COLLECTION`: equal to `duet batch` over the generated files.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
ferretdb="$src/scripts/ferretdb.sh"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  bash "$ferretdb" stop "$work/ferretdb"
  bash "$src/scripts/kafka.sh" stop "$work/kafka"
}
trap cleanup EXIT
source "$src/tests/integration/lib.sh"
require_tools python3 kcat java split
server=$(bash "$ferretdb" start "$work/ferretdb")
echo "MongoDB-wire server (FerretDB) at $server"
seed=${DUET_TEST_SEED:-$RANDOM}
echo "mongo store test, seed $seed"
# FerretDB's SQLite backend writes a few thousand documents a second: sizes stay modest.
noisy_dataset_with_reference 30000 4 3000
"$duet" bad-rows --store "sqlite:$work/batch.sqlite" --json --limit 100000 >"$work/bad_sqlite.json"

# 3. The batch layer into MongoDB: the same views and bad rows as into SQLite.
"$duet" batch --input "$work/master" --store "$server/duet_batch" 2>>"$work/batch.log" >/dev/null
"$duet" report --store "$server/duet_batch" --json --full >"$work/batch_mongo.json"
cmp "$work/batch.json" "$work/batch_mongo.json" ||
  { echo "FAILED: the batch report from MongoDB differs from SQLite's"; exit 1; }
"$duet" bad-rows --store "$server/duet_batch" --json --limit 100000 >"$work/bad_mongo.json"
cmp "$work/bad_sqlite.json" "$work/bad_mongo.json" ||
  { echo "FAILED: the bad rows from MongoDB differ from SQLite's"; exit 1; }
echo "batch into MongoDB: report and bad rows identical to SQLite's"

# 1. SIGKILLs.
first_half_of_master "$work/early"
store="$server/duet_speed"
"$duet" batch --input "$work/early" --store "$store" 2>/dev/null >/dev/null
args=(stream --source "$work/master" --store "$store" --max-batch 300 --interval 50ms)
sigkill_after_progress "$work/stream.log" '"event":"stream.batch"' 4 "$duet" "${args[@]}"
sigterm_exits_cleanly "$work/stream.log" "$duet" "${args[@]}"
drain_without_errors "$work/stream.log" "$duet" "${args[@]}"
speed_equals_batch "$store" "$work/batch.json" "$work/speed.json"
"$duet" report --store "$store" --layer merged --json --full >"$work/merged.json"
echo "merged view (batch over the first half, speed over everything) vs batch over everything:"
python3 "$src/tests/reference/compare.py" --ignore input --ignore event_time "$work/batch.json" \
  "$work/merged.json"

# 2. Outage: the stream runs on a growing log; the server goes away for 20 s.
store="$server/duet_outage"
mkdir -p "$work/log"
files=$(cd "$work/master" && find . -name '*.ndjson' | sort)
half=$(( $(echo "$files" | wc -l) / 2 ))
copy() { (cd "$work/master" && echo "$files" | sed -n "$1" | while read -r f; do
  mkdir -p "$work/log/$(dirname "$f")"; cp "$f" "$work/log/$f.tmp"; mv "$work/log/$f.tmp" "$work/log/$f"; done); }
copy "1,${half}p"
"$duet" stream --source "$work/log" --store "$store" --max-batch 1500 --interval 100ms \
  2>"$work/outage.log" >/dev/null &
pid=$!
pids+=($pid)
for _ in $(seq 1 600); do grep -q '"event":"stream.batch"' "$work/outage.log" && break; sleep 0.1; done
grep -q '"event":"stream.batch"' "$work/outage.log" || { echo "FAILED: no micro-batch before the outage"; exit 1; }
bash "$ferretdb" stop "$work/ferretdb"
echo "server stopped"
copy "$((half + 1)),\$p"
sleep 20
grep -q '"event":"stream.retry"' "$work/outage.log" ||
  { echo "FAILED: the stream did not notice the outage"; tail -3 "$work/outage.log"; exit 1; }
bash "$ferretdb" restart "$work/ferretdb" >/dev/null
echo "server started again"
# Backoff doubles up to 30 s: wait (at most 90 s) until the stream resumed and caught up.
for _ in $(seq 1 900); do
  grep -q '"event":"stream.resumed"' "$work/outage.log" && break
  sleep 0.1
done
grep -q '"event":"stream.resumed"' "$work/outage.log" ||
  { echo "FAILED: the stream did not resume"; tail -3 "$work/outage.log"; exit 1; }
kill -TERM "$pid"
if ! wait "$pid"; then echo "FAILED: stream exited non-zero"; tail -3 "$work/outage.log"; exit 1; fi
retries=$(grep -c '"event":"stream.retry"' "$work/outage.log" || true)
echo "store outage: $retries retries, then resumed"
"$duet" stream --source "$work/log" --store "$store" --drain 2>>"$work/outage.log" >/dev/null
speed_equals_batch "$store" "$work/batch.json" "$work/outage.json"
# 4. Kafka -> archive into a collection (SIGKILLs) -> batch from the collection.
bootstrap=$(bash "$src/scripts/kafka.sh" start "$work/kafka")
python3 "$src/tests/integration/kafka_produce.py" "$work/master" >"$work/keyed.txt" 2>/dev/null
split -n l/4 -d "$work/keyed.txt" "$work/part"
raw="$server/duet_raw.beacons"
archive=("$duet" archive --source "kafka://$bootstrap/beacons" --out "$raw" --max-batch 100)
# A part of the topic arrives before each run, which is killed after it logged a write (small
# polls: the kill lands between writes, or in one).
for k in 0 1 2; do
  kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all <"$work/part0$k"
  sigkill_after_progress "$work/archive.log" '"event":"archive.files"' 1 "${archive[@]}"
done
kcat -P -b "$bootstrap" -t beacons -K $'\x1f' -X enable.idempotence=true -X acks=all <"$work/part03"
drain_without_errors "$work/archive.log" "${archive[@]}"
"$duet" batch --input "$raw" --store "sqlite:$work/from_raw.sqlite" 2>/dev/null >/dev/null
"$duet" report --store "sqlite:$work/from_raw.sqlite" --json --full >"$work/from_raw.json"
echo "batch over the raw collection vs batch over the files:"
python3 "$src/tests/reference/compare.py" "$work/batch.json" "$work/from_raw.json"
echo "mongo store test passed"
