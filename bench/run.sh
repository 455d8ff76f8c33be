#!/usr/bin/env bash
# make bench: whole-process figures for `duet batch` next to a parse-only pass over the same
# files, in the same run, plus the Google Benchmark micro-benchmarks.
#   BENCH_BEACONS (default 10000000), BENCH_RUNS (default 3), BENCH_ZSTD=1 for .zst input.
set -euo pipefail
duet=${1:-build/src/cli/duet}
beacons=${BENCH_BEACONS:-10000000}
runs=${BENCH_RUNS:-3}
zstd_flag=""; [ "${BENCH_ZSTD:-0}" = 1 ] && zstd_flag="--zstd"
root=${BENCH_DIR:-build/bench}
data="$root/data-$beacons${zstd_flag:+-zst}"
mkdir -p "$root"
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time is missing (make deps installs it)"; exit 1; }

if [ ! -f "$data/_manifest.json" ]; then
  echo "bench: generating $beacons beacons into $data (once; reused by later runs)"
  "$duet" generate --out "$data" --beacons "$beacons" --seed 42 $zstd_flag 2>&1 | grep -E 'gen.done|generated' | tail -1
fi
bytes=$(du -sb "$data" | cut -f1)
lines=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['lines'])" "$data/_manifest.json")

measure() {  # command... -> "seconds peak_kib"
  local t="$root/time.txt"
  /usr/bin/time -o "$t" -f "%e %M" "$@" >/dev/null 2>"$root/last.log" || {
    echo "bench: failed: $* (see $root/last.log)" >&2; exit 1; }
  cat "$t"
}

declare -a parse_s parse_m batch_s batch_m
for i in $(seq 1 "$runs"); do
  sync
  read -r s m <<<"$(measure "$duet" parse-only --input "$data" --threads 2)"
  parse_s+=("$s"); parse_m+=("$m")
  rm -f "$root/bench.sqlite"*
  read -r s m <<<"$(measure "$duet" batch --input "$data" --store "sqlite:$root/bench.sqlite" --threads 2)"
  batch_s+=("$s"); batch_m+=("$m")
  echo "bench: run $i: parse-only ${parse_s[-1]} s, batch ${batch_s[-1]} s"
done

python3 - "$lines" "$bytes" "${parse_s[*]}" "${parse_m[*]}" "${batch_s[*]}" "${batch_m[*]}" "$data" <<'PY'
import statistics, sys, platform, os
lines, size = int(sys.argv[1]), int(sys.argv[2])
ps, pm, bs, bm = ([float(x) for x in a.split()] for a in sys.argv[3:7])
p, b = statistics.median(ps), statistics.median(bs)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print()
print(f"input: {lines:,} lines, {size/2**20:,.0f} MiB in {sys.argv[7]}; machine: {os.cpu_count()} cores, {cpu}")
print(f"| pass (2 threads) | median wall s | lines/s | lines/s per core | peak RSS MiB | runs |")
print(f"|---|---|---|---|---|---|")
print(f"| parse-only (read + simdjson DOM parse) | {p:.2f} | {lines/p:,.0f} | {lines/p/2:,.0f} | {max(pm)/1024:,.0f} | {' '.join(map(str, ps))} |")
print(f"| duet batch (end to end, into SQLite) | {b:.2f} | {lines/b:,.0f} | {lines/b/2:,.0f} | {max(bm)/1024:,.0f} | {' '.join(map(str, bs))} |")
print(f"batch / parse-only throughput: {100*p/b:.0f} %  (goal >= 50 %);  per core: {lines/b/2/1e6:.2f} M lines/s (goal >= 1 M)")
PY

micro=$(dirname "$duet")/../../bench/micro_bench
if [ -x "$micro" ]; then
  echo
  echo "bench: micro-benchmarks ($micro)"
  "$micro" --benchmark_min_time=0.2 2>/dev/null
fi
