#!/usr/bin/env bash
# The CLI as a user meets it: generate -> batch -> report / bad-rows, accounting against the
# generator's ground truth, idempotent re-runs, and clear errors for mistakes.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
store="sqlite:$work/store.sqlite"
check() { if ! eval "$1"; then echo "FAILED: $2"; exit 1; fi; echo "ok: $2"; }

"$duet" generate --out "$work/master" --beacons 50000 --seed 5 2>/dev/null
"$duet" batch --input "$work/master" --store "$store" 2>"$work/batch.log"
check 'grep -q "\"event\":\"batch.done\"" "$work/batch.log"' "batch logs a structured batch.done line"
"$duet" report --store "$store" --json >"$work/r1.json"

# Accounting equals the generator's ground truth.
python3 - "$work/master/_manifest.json" "$work/r1.json" <<'PY'
import json, sys
m, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
truth = m["counts"]
inp = r["input"]
by_reason = {}
for kind in m["bad_rows_by_kind"].values():
    if kind["count"]:
        by_reason[kind["reason"]] = by_reason.get(kind["reason"], 0) + kind["count"]
assert inp["bad_rows_by_reason"] == by_reason, (inp["bad_rows_by_reason"], by_reason)
assert inp["lines"] == inp["bad_rows"] + inp["duplicates"] + inp["valid_beacons"], inp
assert inp["lines"] == truth["lines"], (inp, truth)
assert inp["valid_beacons"] == truth["valid_unique"], (inp, truth)
assert inp["duplicates"] == truth["duplicate_resends"], (inp, truth)
assert inp["bad_rows"] == truth["bad_rows"], (inp, truth)
exps = r["experiments"]
assert {"checkout_button", "pricing_page", "search_ranking"} <= set(exps), exps.keys()
print("ok: accounting equals the generator's ground truth:", inp["lines"], "lines")
PY

# Idempotent re-run.
"$duet" batch --input "$work/master" --store "$store" 2>/dev/null >/dev/null
"$duet" report --store "$store" --json >"$work/r2.json"
check 'cmp -s "$work/r1.json" "$work/r2.json"' "second batch run leaves identical figures"

# Same answer with one thread and with environment configuration.
DUET_THREADS=1 "$duet" batch --input "$work/master" --store "sqlite:$work/one.sqlite" 2>/dev/null >/dev/null
"$duet" report --store "sqlite:$work/one.sqlite" --json >"$work/r3.json"
check 'cmp -s "$work/r1.json" "$work/r3.json"' "one thread (DUET_THREADS=1) gives identical figures"

# Human table and filters.
"$duet" report --store "$store" >"$work/table.txt"
check 'grep -q "experiment checkout_button" "$work/table.txt"' "table names the experiments"
check 'grep -q "input: .* lines = " "$work/table.txt"' "table shows the accounting"
"$duet" report --store "$store" --experiment pricing_page --json >"$work/one.json"
check 'python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert list(d[\"experiments\"])==[\"pricing_page\"]" "$work/one.json"' "--experiment filters"
"$duet" bad-rows --store "$store" --reason json.syntax --limit 3 --json >"$work/bad.ndjson"
check '[ "$(wc -l <"$work/bad.ndjson")" -eq 3 ]' "bad-rows --limit 3 gives 3 rows"
check 'python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]; assert all(json.loads(l)[\"reason\"]==\"json.syntax\" for l in open(sys.argv[1]))" "$work/bad.ndjson"' "bad-rows --reason filters and prints JSON"

# Mistakes give clear errors and exit 2.
set +e
"$duet" batch --store "$store" 2>"$work/e1"; rc1=$?
"$duet" batch --input "$work/nope" --store "$store" 2>"$work/e2"; rc2=$?
"$duet" report --store "$store" --experiment nope 2>"$work/e3"; rc3=$?
"$duet" report --store "mysql://x" 2>"$work/e4"; rc4=$?
"$duet" generate --out "$work/g" --beacons abc 2>"$work/e5"; rc5=$?
"$duet" bad-rows --store "$store" --reason bogus 2>"$work/e6"; rc6=$?
set -e
check '[ $rc1 -eq 2 ] && grep -q -- "--input is required" "$work/e1"' "missing --input is a usage error"
check '[ $rc2 -ne 0 ] && grep -q "does not exist" "$work/e2"' "missing input folder is named"
check '[ $rc3 -ne 0 ] && grep -q "known: " "$work/e3"' "unknown experiment lists the known ones"
check '[ $rc4 -eq 2 ] && grep -q "sqlite:PATH" "$work/e4"' "unknown store URI says what is expected"
check '[ $rc5 -eq 2 ] && grep -q "abc" "$work/e5"' "bad number names the value"
check '[ $rc6 -eq 2 ] && grep -q "bogus" "$work/e6"' "unknown reason is named"
# The live demo, as `make demo` runs it but shorter: traffic, speed and batch layers at once.
"$duet" demo --dir "$work/demo" --duration 8s --speedup 3600 --interval 500ms --batch-every 3s \
  --beacons 60000 >"$work/demo1.txt" 2>"$work/demo1.log"
check 'grep -q "stopped cleanly" "$work/demo1.txt" && grep -q "where to look" "$work/demo1.txt"' "live demo runs and stops by itself"
"$duet" report --store "sqlite:$work/demo/duet.sqlite" --layer speed --json >"$work/demo-speed.json"
"$duet" report --store "sqlite:$work/demo/duet.sqlite" --json >"$work/demo-batch.json"
check 'python3 -c "import json,sys; s=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); assert s[\"input\"][\"lines\"]>0 and b[\"input\"][\"lines\"]>0 and \"checkout_button\" in s[\"experiments\"]" "$work/demo-speed.json" "$work/demo-batch.json"' "demo filled both layers"
# Ctrl-C: finishes the micro-batch, commits, exits 0.
"$duet" demo --dir "$work/demo" --speedup 3600 --interval 300ms --batch-every 2s --beacons 60000 \
  >"$work/demo2.txt" 2>/dev/null &
pid=$!
sleep 3
kill -INT "$pid"
check 'wait "$pid"' "demo exits 0 on Ctrl-C"
check 'grep -q "stopped cleanly" "$work/demo2.txt"' "demo reports a clean stop"
set +e
mkdir -p "$work/notdemo" && touch "$work/notdemo/precious"
"$duet" demo --dir "$work/notdemo" --duration 1s 2>"$work/e7" >/dev/null; rc7=$?
set -e
check '[ $rc7 -eq 2 ] && [ -f "$work/notdemo/precious" ]' "demo refuses to wipe a folder it did not create"
echo "cli end-to-end passed"
