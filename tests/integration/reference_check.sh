#!/usr/bin/env bash
# duet batch vs the independent Python reference, figure by figure (totals, hourly, uniques,
# input accounting and bad rows), on generated data with noise: plain and zstd, several seeds.
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
fail=0
run_case() {
  local name=$1; shift
  local dir="$work/$name"
  echo "== case $name: duet generate $*"
  "$duet" generate --out "$dir/master" "$@" 2>"$dir.generate.log" >/dev/null
  "$duet" batch --input "$dir/master" --store "sqlite:$dir/store.sqlite" --threads 2 2>"$dir.batch.log"
  # Idempotent: a second run over the same input gives the same store contents.
  "$duet" batch --input "$dir/master" --store "sqlite:$dir/store.sqlite" --threads 2 2>>"$dir.batch.log" >/dev/null
  "$duet" report --store "sqlite:$dir/store.sqlite" --json --full >"$dir/duet.json"
  python3 "$src/tests/reference/reference.py" --input "$dir/master" --out "$dir/reference.json" \
    --bad-rows "$dir/reference-bad.ndjson" 2>"$dir.reference.log"
  if ! python3 "$src/tests/reference/compare.py" "$dir/reference.json" "$dir/duet.json"; then
    fail=1
  fi
  # Bad rows: same reasons, sources and payloads as the reference.
  "$duet" bad-rows --store "sqlite:$dir/store.sqlite" --json --limit 100000000 >"$dir/duet-bad.ndjson"
  python3 - "$dir/reference-bad.ndjson" "$dir/duet-bad.ndjson" <<'PY' || fail=1
import json, sys
def load(p):
    out = set()
    for line in open(p, encoding="utf-8"):
        r = json.loads(line)
        out.add((r["reason"], r["source"], r["line"], r["offset"], r["payload_b64"]))
    return out
ref, duet = load(sys.argv[1]), load(sys.argv[2])
print(f"bad rows: reference {len(ref)}, duet {len(duet)}, only in reference {len(ref - duet)}, only in duet {len(duet - ref)}")
for r in sorted(ref ^ duet)[:10]:
    print("  differs:", r)
sys.exit(0 if ref == duet and ref else 1)
PY
}
run_case plain --beacons 120000 --seed 11
run_case zstd --beacons 60000 --seed 12 --zstd --bad-fraction 0.05 --duplicate-fraction 0.05
run_case noisy --beacons 40000 --seed 13 --bad-fraction 0.2 --duplicate-fraction 0.2 --late-fraction 0.05 --hours 30
if [ $fail -ne 0 ]; then
  echo "reference check FAILED (logs in $work)"
  exit 1
fi
echo "reference check passed"
