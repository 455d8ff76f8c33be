# Shared helpers of the integration tests (sourced).

# require_tools TOOL...: fails the test, naming the tool, when one is missing.
require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "FAILED: $t is not installed (run scripts/install-deps.sh)"; exit 1; }
  done
}

# poll_until SECONDS CMD...: runs CMD every 0.1 s until it succeeds (returns 0) or SECONDS
# have passed (returns 1).
poll_until() {
  local secs=$1
  shift
  for _ in $(seq 1 $((secs * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# start_collector LOG ARGS...: starts `duet collect --listen 127.0.0.1:0 ARGS...` in the
# background (stderr to LOG) and waits (at most 10 s each) until it logged its port and answers
# /readyz; sets $collector (its pid) and $collector_port. Fails the test otherwise.
start_collector() {
  local log=$1
  shift
  "$duet" collect --listen 127.0.0.1:0 "$@" 2>"$log" &
  collector=$!
  collector_port=""
  logged_port() {
    collector_port=$(grep -o '"event":"collect.listening"[^}]*"port":[0-9]*' "$log" 2>/dev/null |
      grep -o '"port":[0-9]*' | cut -d: -f2 || true)
    [ -n "$collector_port" ]
  }
  poll_until 10 logged_port || { echo "FAILED: the collector did not start:"; cat "$log"; exit 1; }
  poll_until 10 curl -sf "http://127.0.0.1:$collector_port/readyz" -o /dev/null ||
    { echo "FAILED: collector never ready"; exit 1; }
}

# noisy_dataset_with_reference LINES HOURS LINES_PER_FILE: generates $work/master with seed
# $seed (bad rows, re-sends, nothing later than the allowed lateness) and the batch layer's
# report over it, $work/batch.json, the reference every test compares with.
noisy_dataset_with_reference() {
  "$duet" generate --out "$work/master" --beacons "$1" --seed "$seed" --hours "$2" --late-fraction 0 \
    --bad-fraction 0.02 --duplicate-fraction 0.04 --lines-per-file "$3" 2>/dev/null
  "$duet" batch --input "$work/master" --store "sqlite:$work/batch.sqlite" 2>/dev/null
  "$duet" report --store "sqlite:$work/batch.sqlite" --json --full >"$work/batch.json"
}

# first_half_of_master DEST: copies the first half of $work/master's files (in read order) to
# DEST — a batch run over it puts the batch boundary in the middle of the data.
first_half_of_master() {
  mkdir -p "$1"
  (cd "$work/master" && find . -name '*.ndjson' | sort | head -n "$(( $(find . -name '*.ndjson' | wc -l) / 2 ))" |
    while read -r f; do mkdir -p "$1/$(dirname "$f")"; cp "$f" "$1/$f"; done)
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

# sigkill_after_progress LOG PATTERN RUNS CMD...: starts CMD (output to LOG) RUNS times; each run
# is killed with SIGKILL 0-0.3 s after LOG gained a line matching PATTERN (e.g. its first
# committed micro-batch: a consumer-group member must first join the group and be given
# partitions, which can take seconds). Fails if a run made no progress within 60 s.
sigkill_after_progress() {
  local log=$1 pattern=$2 runs=$3
  shift 3
  local i pid before waited
  touch "$log"
  for i in $(seq 1 "$runs"); do
    before=$(grep -c -- "$pattern" "$log" || true)
    "$@" 2>>"$log" >/dev/null &
    pid=$!
    waited=0
    while [ "$(grep -c -- "$pattern" "$log" || true)" -le "$before" ]; do
      if ! kill -0 "$pid" 2>/dev/null; then echo "FAILED: '$1 $2' exited before making progress"; tail -3 "$log"; exit 1; fi
      [ "$waited" -lt 1200 ] || { kill -9 "$pid"; echo "FAILED: no '$pattern' from '$1 $2' within 60 s"; exit 1; }
      sleep 0.05
      waited=$((waited + 1))
    done
    sleep "0.$(( RANDOM % 30 ))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "$(basename "$log"): $runs SIGKILLs, each after progress"
}

# speed_epochs STORE_FILE: the committed epochs of the speed layer's scopes, e.g. "beacons/0:12 …".
speed_epochs() {
  sqlite3 "$1" "SELECT group_concat(scope || ':' || epoch, ' ') FROM speed_scopes" 2>/dev/null || echo none
}

# sigterm_exits_cleanly LOG CMD...: starts CMD (`duet stream`), sends SIGTERM 0.5 s after it
# logged stream.start (its signal handlers are installed just before; a slow start, e.g. a
# sanitizer build, must not turn SIGTERM into a kill); fails unless it finishes its micro-batch,
# commits and exits 0.
sigterm_exits_cleanly() {
  local log=$1 pid before waited=0
  shift
  touch "$log"
  before=$(grep -c '"event":"stream.start"' "$log" || true)
  "$@" 2>>"$log" >/dev/null &
  pid=$!
  while [ "$(grep -c '"event":"stream.start"' "$log" || true)" -le "$before" ]; do
    kill -0 "$pid" 2>/dev/null || break
    [ "$waited" -lt 1200 ] || { kill -9 "$pid"; echo "FAILED: no stream.start from '$1 $2' within 60 s"; exit 1; }
    sleep 0.05
    waited=$((waited + 1))
  done
  sleep 0.5
  kill -TERM "$pid"
  if ! wait "$pid"; then echo "FAILED: '$1 $2' did not exit 0 on SIGTERM"; exit 1; fi
  echo "SIGTERM: clean exit"
}

# drain_without_errors LOG CMD...: runs CMD --drain; fails if any run logged an error in LOG.
drain_without_errors() {
  local log=$1
  shift
  "$@" --drain 2>>"$log"
  if grep -q '"level":"error"' "$log"; then
    echo "FAILED: '$1 $2' reported an error:"; grep '"level":"error"' "$log" | head -3; exit 1
  fi
}

# speed_equals_batch STORE BATCH_JSON OUT_JSON: the speed layer's report in STORE, written to
# OUT_JSON, must equal the batch report BATCH_JSON figure by figure (with no late beacon).
speed_equals_batch() {
  "$duet" report --store "$1" --layer speed --json --full >"$3"
  python3 "$src/tests/integration/speed_as_batch.py" "$3"
  python3 "$src/tests/reference/compare.py" "$2" "$3"
}

# serve_url OUT LOG PID: waits (up to 20 s, polling) until the `duet serve` process PID, whose
# stdout is OUT and stderr LOG, has printed its URL and answers /readyz with 200; prints the URL.
# Fails (message on stderr) when the process exits or the time runs out.
serve_url() {
  local out=$1 log=$2 pid=$3 url=""
  for _ in $(seq 1 400); do
    url=$(sed -n 's/^serve: dashboard at \(http[^ ]*\) .*/\1/p' "$out")
    [ -n "$url" ] && curl -sf "${url}readyz" >/dev/null && { echo "$url"; return 0; }
    kill -0 "$pid" 2>/dev/null || { echo "FAILED: duet serve exited" >&2; cat "$log" >&2; return 1; }
    sleep 0.05
  done
  echo "FAILED: duet serve printed no URL or was not ready within 20 s (url: '$url')" >&2
  cat "$log" >&2
  return 1
}
