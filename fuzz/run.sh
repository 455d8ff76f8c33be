#!/usr/bin/env bash
# The libFuzzer targets (fuzz/README.md): build them, or run each for a bounded time.
#   fuzz/run.sh configure [BUILD_DIR]           only configure (compile_commands.json for lint)
#   fuzz/run.sh build [BUILD_DIR]               configure BUILD_DIR (default build-fuzz) with
#                                               clang++-14 and -DDUET_FUZZ=ON, build the targets
#   fuzz/run.sh run SECONDS [BUILD_DIR]          each target for SECONDS (-max_total_time), on its
#                                               corpus in $DUET_FUZZ_CORPUS/<target> (default
#                                               ~/.cache/duet/fuzz) plus the seeds in fuzz/corpus/
# `run` prints one summary line per target ("fuzz: <target> ok|CRASH executions=... cov=...
# features=... corpus=... exec/s=... seconds=...") and exits non-zero when a target crashed
# (an invariant broke, or ASan/UBSan/libFuzzer found an error); the input that did it is kept in
# BUILD_DIR/artifacts/ and its path printed, with the end of the target's log.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
TARGETS=(parser_fuzz beacon_fuzz collect_fuzz)
CXX_FUZZ=${CXX_FUZZ:-clang++-14}

configure() {
  local dir=$1
  if ! command -v "$CXX_FUZZ" >/dev/null; then
    echo "fuzz: $CXX_FUZZ not found (scripts/install-deps.sh installs clang-14)" >&2
    exit 1
  fi
  # RelWithDebInfo without NDEBUG: the project's asserts stay on while fuzzing.
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-g -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DDUET_FUZZ=ON >/dev/null
}

build() {
  configure "$1"
  flock /tmp/duet-fuzz.lock ninja -C "$1" fuzz_targets
}

# The value of libFuzzer's "stat::NAME: VALUE" line in a log.
fuzz_stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

run() {
  local seconds=$1 dir=$2
  if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz: SECONDS='$seconds' is not a positive whole number of seconds" >&2
    exit 2
  fi
  local cache=${DUET_FUZZ_CORPUS:-$HOME/.cache/duet/fuzz}
  local failed=0
  mkdir -p "$dir/artifacts"
  for t in "${TARGETS[@]}"; do
    local bin="$dir/fuzz/$t" name=${t%_fuzz}
    local dict=$name
    [ "$name" = parser ] && dict=beacon  # the same JSON tokens and field names
    if [ ! -x "$bin" ]; then
      echo "fuzz: $bin is missing; run 'fuzz/run.sh build $dir' first" >&2
      exit 1
    fi
    mkdir -p "$cache/$t"
    local log="$dir/artifacts/$t.log" start rc=0
    start=$(date +%s)
    # -timeout: one input taking over 25 s is a hang, reported like a crash; -rss_limit_mb: a
    # leak or runaway allocation likewise. The seeds are read but new inputs go to the cache.
    "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -max_len=8192 \
      -dict="fuzz/$dict.dict" -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t-" \
      "$cache/$t" "fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
    local cov features corpus
    cov=$(grep -oE '\bcov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
    features=$(grep -oE '\bft: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || true)
    corpus=$(find "$cache/$t" -type f | wc -l)
    local verdict=ok
    [ "$rc" -ne 0 ] && verdict=CRASH
    echo "fuzz: $t $verdict executions=$(fuzz_stat number_of_executed_units "$log") cov=${cov:-?}" \
      "features=${features:-?} corpus=$corpus exec/s=$(fuzz_stat average_exec_per_sec "$log")" \
      "seconds=$(($(date +%s) - start))"
    if [ "$rc" -ne 0 ]; then
      failed=1
      echo "fuzz: $t exited with $rc; its log ($log) ends with:" >&2
      grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse)' "$log" | tail -40 >&2 || true
      grep -oE "Test unit written to .*" "$log" >&2 || true
    fi
  done
  return $failed
}

case "$mode" in
  configure) configure "${2:-build-fuzz}" ;;
  build) build "${2:-build-fuzz}" ;;
  run) run "${2:-}" "${3:-build-fuzz}" ;;
  *)
    echo "usage: fuzz/run.sh configure|build [BUILD_DIR] | run SECONDS [BUILD_DIR]" >&2
    exit 2
    ;;
esac
