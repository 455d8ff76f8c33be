# Shared helpers of the integration tests (sourced).

# require_tools TOOL...: fails the test, naming the tool, when one is missing.
require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "FAILED: $t is not installed (run scripts/install-deps.sh)"; exit 1; }
  done
}

# sigkill_runs LOG MIN_KILLS RUNS CMD...: starts CMD (output to LOG) RUNS times and kills each
# run with SIGKILL at a random point 0.2-0.8 s in; fails unless at least MIN_KILLS landed (a run
# that had already exited was not killed).
sigkill_runs() {
  local log=$1 min=$2 runs=$3
  shift 3
  local kills=0 i pid
  for i in $(seq 1 "$runs"); do
    "$@" 2>>"$log" >/dev/null &
    pid=$!
    sleep "0.$(( (RANDOM % 60) + 20 ))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
  done
  [ "$kills" -ge "$min" ] || { echo "FAILED: only $kills SIGKILLs of '$1' landed"; exit 1; }
  echo "$(basename "$1") $2: $kills SIGKILLs"
}
