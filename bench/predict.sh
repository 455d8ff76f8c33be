#!/usr/bin/env bash
# POST /v1/predict under load: `duet serve --workers N` against its peer, the same XGBoost model
# behind Flask + gunicorn with N workers (bench/predict/app.py, Python xgboost 1.7.4 = Debian's
# libxgboost), both on 127.0.0.1. The model is trained by duet on generated traffic and exported.
# Before anything is timed, both servers get the same 256 feature objects (alone and in batches)
# and must return the same float32 probabilities (1 ulp tolerated); a disagreement is reported
# with the field that causes it and fails the run (after the table). Then wrk (-t 2, bodies
# rotated by bench/predict/predict.lua) at 1, 8, 64 and 256 connections, and once at about half
# of each server's peak rate to read p99 there. gunicorn runs with sync workers and with gthread
# (keep-alive); the better of the two is the peer. Every step is bounded in time.
# Prints a Markdown table for docs/benchmarks.md and writes it to OUT (default
# /tmp/duet-bench-predict.md). wrk and the servers share the machine's cores.
#   bash bench/predict.sh DUET [seconds per run] [workers] [OUT]
#   bash bench/predict.sh none ...   the Flask side alone, with a model trained in Python
# Environment: DUET_BENCH_BEACONS (lines generated for training, default 200000),
# DUET_BENCH_VENV (default ~/.cache/duet/bench-predict-venv), DUET_BENCH_KEEP=1 keeps the work dir.
set -euo pipefail
duet=${1:?usage: bash bench/predict.sh DUET|none [seconds per run] [workers] [OUT]}
secs=${2:-10}
workers=${3:-$(nproc)}
out=${4:-/tmp/duet-bench-predict.md}
beacons=${DUET_BENCH_BEACONS:-200000}
venv=${DUET_BENCH_VENV:-$HOME/.cache/duet/bench-predict-venv}
src=$(cd "$(dirname "$0")/.." && pwd)
here=$src/bench/predict
conns_list="1 8 64 256"
work=$(mktemp -d /tmp/duet-bench-predict.XXXXXX)
groups=()  # process groups of the servers started here (setsid: group id = pid)
failures=()

stop_group() {  # PGID: SIGTERM, up to 10 s to exit, then SIGKILL
  local g=$1 i
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for i in $(seq 1 100); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
}
cleanup() {
  local g
  for g in "${groups[@]}"; do stop_group "$g"; done
  if [ "${DUET_BENCH_KEEP:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v wrk >/dev/null || { echo "wrk is not installed (scripts/install-deps.sh)"; exit 1; }
if [ "$duet" != none ]; then
  duet=$(cd "$(dirname "$duet")" && pwd)/$(basename "$duet")
  [ -x "$duet" ] || { echo "not an executable: $duet"; exit 1; }
fi
cmd_log() { printf '%s\n' "$*" | sed "s|$work|\$WORK|g; s|$venv|\$VENV|g; s|$src/||g" >>"$work/commands.sh"; }

# --- the Python side: a virtualenv cached per requirements.txt ---------------------------------
stamp=$(sha256sum "$here/requirements.txt" | cut -c1-16)
if [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "creating $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || { echo "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
  for attempt in 1 2 3 4; do
    if timeout 900 "$venv/bin/pip" install --disable-pip-version-check --retries 5 --timeout 60 \
      -q -r "$here/requirements.txt"; then
      echo "$stamp" >"$venv/.requirements-stamp"
      break
    fi
    [ "$attempt" -lt 4 ] || { echo "pip install failed 4 times"; exit 1; }
    echo "pip install failed (attempt $attempt), retrying in $((attempt * 10)) s"
    sleep $((attempt * 10))
  done
fi
py=$venv/bin/python
pyxgb=$("$py" -c 'import xgboost; print(xgboost.__version__)')

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server LOG CMD...: runs CMD in a process group of its own; sets $server_pid.
start_server() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 &
  server_pid=$!
  groups+=("$server_pid")
}

# wait_ready NAME URL PID LOG: GET URL/readyz answers 200 within 60 s, or the run fails.
wait_ready() {
  local i
  for i in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 1 "$2/readyz" && return 0
    kill -0 "$3" 2>/dev/null || { echo "$1 exited:"; tail -20 "$4"; exit 1; }
    sleep 0.1
  done
  echo "$1 did not get ready within 60 s:"; tail -20 "$4"; exit 1
}

stop_server() {  # PID: stops it and forgets its group
  local g keep=()
  stop_group "$1"
  wait "$1" 2>/dev/null || true
  for g in "${groups[@]}"; do [ "$g" = "$1" ] || keep+=("$g"); done
  groups=("${keep[@]}")
}

# group_cpu_us PGID: CPU time (user + system) used so far by the processes of a group, in µs.
group_cpu_us() {
  python3 -c 'import os, sys
group, ticks = int(sys.argv[1]), 0
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open("/proc/%s/stat" % p).read()
    except OSError:
        continue
    f = stat[stat.rindex(")") + 2:].split()
    if int(f[2]) == group:
        ticks += int(f[11]) + int(f[12])
print(ticks * 1000000 // os.sysconf("SC_CLK_TCK"))' "$1"
}

# wrk_run CONNS THINK_MS SECONDS URL: one wrk run against the server of process group
# $server_group; sets rps, p50, p99, non2xx, sockerr and cpu_us (the server's CPU per request).
wrk_run() {
  local threads=$(( $1 < 2 ? 1 : 2 )) line cpu_before
  cpu_before=$(group_cpu_us "$server_group")
  line=$(timeout $(( $3 + 60 )) wrk -t "$threads" -c "$1" -d "${3}s" -T 5s --latency \
    -s "$here/predict.lua" "$4/v1/predict" -- "$work/bodies.ndjson" "$2" | grep '^WRKRESULT') ||
    { echo "wrk failed against $4"; exit 1; }
  rps=$(sed 's/.* rps=\([^ ]*\).*/\1/' <<<"$line")
  p50=$(sed 's/.* p50_ms=\([^ ]*\).*/\1/' <<<"$line")
  p99=$(sed 's/.* p99_ms=\([^ ]*\).*/\1/' <<<"$line")
  non2xx=$(sed 's/.* non2xx=\([0-9]*\).*/\1/' <<<"$line")
  sockerr=$(awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^(connect|read|write|timeout)=/) { split($i, kv, "="); n += kv[2] } print n }' <<<"$line")
  cpu_us=$(awk -v a="$cpu_before" -v b="$(group_cpu_us "$server_group")" -v l="$line" 'BEGIN {
    match(l, /requests=[0-9]+/); n = substr(l, RSTART + 9, RLENGTH - 9)
    printf "%.1f", (n > 0 ? (b - a) / n : 0) }')
}

# bench LABEL URL PGID: warm-up, one run per connection count, then one at about half of the peak
# (a 1 ms pause between a connection's requests, the connection count fitted by a 3 s probe).
bench() {
  local label=$1 url=$2 c peak=0 peak_c=1 p50_1=1 think target probe
  server_group=$3
  echo "== $label"
  wrk_run $(( 2 * workers )) 0 2 "$url"
  for c in $conns_list; do
    wrk_run "$c" 0 "$secs" "$url"
    record "$label" "$c" 0
    [ "$c" = 1 ] && p50_1=$p50
    if awk -v a="$rps" -v b="$peak" 'BEGIN { exit !(a > b) }'; then peak=$rps; peak_c=$c; fi
  done
  cmd_log "wrk -t 2 -c CONNS -d ${secs}s -T 5s --latency -s bench/predict/predict.lua $url/v1/predict -- \$WORK/bodies.ndjson 0   # CONNS in $conns_list (-t 1 at 1)"
  target=$(awk -v p="$peak" 'BEGIN { print p / 2 }')
  # A connection that pauses P ms between requests makes 1000 / (P + overhead) requests/s, the
  # overhead (latency, timer granularity) measured by a probe with 4 connections and 1 ms; the
  # connection count and pause (whole ms, 1-5) that come closest to the target are used, after
  # one more probe if the first guess was off; that correction takes at most 1.5 times the
  # connections of the second probe, so that a noisy probe cannot drive the server into
  # saturation.
  c=4 think=1
  for probe in 1 2; do
    wrk_run "$c" "$think" 3 "$url"
    awk -v r="$rps" -v t="$target" 'BEGIN { exit !(r > 0.9 * t && r < 1.1 * t) }' && break
    read -r c think < <(awk -v t="$target" -v r="$rps" -v c0="$c" -v th0="$think" -v probe="$probe" 'BEGIN {
      if (r <= 0) r = 1
      over = 1000 * c0 / r - th0; if (over < 0) over = 0
      most = probe == 1 ? 1000 : (1.5 * c0 < 4 ? 4 : 1.5 * c0)
      best = -1
      for (th = 1; th <= 5; th++) for (c = 1; c <= most; c++) {
        e = 1000 * c / (th + over) / t - 1; e = e < 0 ? -e : e
        if (best < 0 || e < best - 0.01) { best = e; bc = c; bt = th }
      }
      print bc, bt }')
  done
  wrk_run "$c" "$think" "$secs" "$url"
  record "$label" "$c" "$think"
  cmd_log "wrk -t 2 -c $c -d ${secs}s -T 5s --latency -s bench/predict/predict.lua $url/v1/predict -- \$WORK/bodies.ndjson $think   # about half of the peak, $(printf '%.0f' "$peak") requests/s at $peak_c connections"
}

record() {  # LABEL CONNS THINK_MS: appends the last run to results.tsv
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$workers" "$2" "$3" "$rps" "$p50" "$p99" \
    "$cpu_us" "$non2xx" "$sockerr" >>"$work/results.tsv"
  printf '  %-38s %4s conns %3s ms pause %10s req/s  p50 %7s ms  p99 %7s ms  %7s CPU-µs/req  non-2xx %s  socket errors %s\n' \
    "$1" "$2" "$3" "$rps" "$p50" "$p99" "$cpu_us" "$non2xx" "$sockerr"
  if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then failures+=("$1 at $2 connections: $non2xx non-2xx, $sockerr socket errors"); fi
}
printf 'server\tworkers\tconns\tthink_ms\trps\tp50_ms\tp99_ms\tcpu_us\tnon2xx\tsocket_errors\n' >"$work/results.tsv"

# --- the model ----------------------------------------------------------------------------------
model=$work/model
store="sqlite:$work/models.sqlite"
version=1
if [ "$duet" = none ]; then
  "$py" "$here/tool.py" synthetic-model "$model"
  cmd_log "\$VENV/bin/python bench/predict/tool.py synthetic-model \$WORK/model"
  model_note="a model trained in Python on synthetic rows (bench/predict/tool.py synthetic-model; duet not run)"
else
  timeout 900 "$duet" generate --out "$work/master" --beacons "$beacons" --seed 42 \
    >/dev/null 2>"$work/generate.log" || { echo "duet generate failed:"; tail -5 "$work/generate.log"; exit 1; }
  cmd_log "duet generate --out \$WORK/master --beacons $beacons --seed 42"
  timeout 1800 "$duet" train --input "$work/master" --store "$store" 2>"$work/train.log" ||
    { echo "duet train failed:"; tail -5 "$work/train.log"; exit 1; }
  cmd_log "duet train --input \$WORK/master --store sqlite:\$WORK/models.sqlite"
  version=$("$duet" models list --store "$store" | awk '$1 == "*" { print $2 }')  # the current one
  [ -n "$version" ] || { echo "duet train promoted no model"; exit 1; }
  timeout 300 "$duet" models export --store "$store" --version "$version" --out "$model" >/dev/null
  cmd_log "duet models export --store sqlite:\$WORK/models.sqlite --version $version --out \$WORK/model"
  model_note="duet's model version $version, trained on $beacons generated lines (seed 42)"
fi
"$py" "$here/tool.py" requests "$model" "$work/bodies.ndjson" 256
model_shape=$("$py" -c 'import json, sys, xgboost
m = json.load(open(sys.argv[1] + "/meta.json"))
trees = len(xgboost.Booster(model_file=sys.argv[1] + "/model.ubj").get_dump())
print("%d columns, %d trees" % (len(m["columns"]), trees))' "$model")
cmd_log "\$VENV/bin/python bench/predict/tool.py requests \$WORK/model \$WORK/bodies.ndjson 256"

# Other busy processes (a build, a test run) take cores from both sides and skew the figures:
# the share of CPU time that was not idle over one second.
busy_before=$(python3 -c 'import time
def sample():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return f[3] + f[4], sum(f)
(i0, t0), _, (i1, t1) = sample(), time.sleep(1), sample()
print(round(100 * (1 - (i1 - i0) / max(t1 - t0, 1))))')
if [ "$busy_before" -gt 10 ]; then
  echo "WARNING: the CPUs were ${busy_before}% busy before the runs: other processes are at work, the figures will be low and noisy"
fi

# --- the servers --------------------------------------------------------------------------------
declare -A gunicorn_args=([sync]="-k sync" [gthread]="-k gthread --threads 1")
start_gunicorn() {  # CLASS: sets $url and $server_pid
  local port
  port=$(free_port)
  url=http://127.0.0.1:$port
  # shellcheck disable=SC2086  # the worker-class options are words
  start_server "$work/gunicorn-$1.log" env DUET_MODEL_DIR="$model" DUET_MODEL_VERSION="$version" OMP_NUM_THREADS=1 \
    "$venv/bin/gunicorn" --chdir "$here" -w "$workers" ${gunicorn_args[$1]} -b "127.0.0.1:$port" \
    --backlog 2048 --log-level warning 'app:create_app()'
  cmd_log "DUET_MODEL_DIR=\$WORK/model DUET_MODEL_VERSION=$version OMP_NUM_THREADS=1 \$VENV/bin/gunicorn --chdir bench/predict -w $workers ${gunicorn_args[$1]} -b 127.0.0.1:$port --backlog 2048 --log-level warning 'app:create_app()'"
  wait_ready "gunicorn $1" "$url" "$server_pid" "$work/gunicorn-$1.log"
}

duet_url=""
duet_label=""
if [ "$duet" != none ]; then
  port=$(free_port)
  duet_url=http://127.0.0.1:$port
  serve_args=(serve --store "$store" --listen "127.0.0.1:$port")
  if "$duet" serve --help 2>&1 | grep -q -- '--workers'; then
    serve_args+=(--workers "$workers")
    duet_label="duet serve --workers $workers"
  else  # before prefork workers: one process with as many HTTP threads
    serve_args+=(--threads "$workers")
    duet_label="duet serve --threads $workers (one process)"
  fi
  start_server "$work/serve.log" "$duet" "${serve_args[@]}"
  duet_pid=$server_pid
  cmd_log "duet ${serve_args[*]}"
  wait_ready "duet serve" "$duet_url" "$duet_pid" "$work/serve.log"
fi

parity_ok=1
start_gunicorn sync
sync_url=$url
sync_pid=$server_pid
if [ -n "$duet_url" ]; then other="duet=$duet_url"; else
  # The Flask side alone: the two worker classes against each other (a test of the harness).
  start_gunicorn gthread
  other="gunicorn-gthread=$url"
fi
cmd_log "\$VENV/bin/python bench/predict/tool.py parity \$WORK/model \$WORK/bodies.ndjson \$WORK/parity.txt $other gunicorn-sync=$sync_url"
if ! timeout 300 "$py" "$here/tool.py" parity "$model" "$work/bodies.ndjson" "$work/parity.txt" \
  "$other" "gunicorn-sync=$sync_url"; then
  parity_ok=0
  failures+=("parity: the servers disagree (see above)")
fi
[ -n "$duet_url" ] || stop_server "$server_pid"
bench "gunicorn -k sync" "$sync_url" "$sync_pid"
stop_server "$sync_pid"
start_gunicorn gthread
bench "gunicorn -k gthread --threads 1" "$url" "$server_pid"
stop_server "$server_pid"
if [ -n "$duet_url" ]; then
  bench "$duet_label" "$duet_url" "$duet_pid"
  stop_server "$duet_pid"
fi

# --- the table ----------------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
if [ -n "$duet_url" ]; then
  duet_line="- duet: \`$duet_label\` ($("$duet" version 2>/dev/null | head -1), Debian's libxgboost $(dpkg-query -W -f='${Version}' libxgboost0 2>/dev/null || echo '?'))."
else
  duet_line="- duet: not run."
fi
cat >"$work/setup.md" <<EOF
- Machine: $(nproc) cores ($cpu), shared by the servers and wrk (-t 2, -t 1 at one connection),
  so the figures are a lower bound of what a server does alone. CPU busy with other work just
  before the runs: ${busy_before}%.
- Traffic: loopback (127.0.0.1); ${secs} s per run after a 2 s warm-up; every request is one
  feature object (the single form of POST /v1/predict), rotated over 256 objects.
- Model: $model_note; $model_shape.
$duet_line
- Peer: Flask 3.1 + gunicorn 23 (bench/predict/app.py), Python xgboost $pyxgb, model loaded in
  each worker after the fork, \`inplace_predict\` on a float32 array, nthread=1,
  OMP_NUM_THREADS=1. sync workers close each connection; gthread keeps it alive.
- Both run $workers worker processes with one prediction thread each. "CPU/request" is the CPU
  time (user + system) of the server's processes during a run divided by its requests: what a
  request costs the server, whatever wrk takes from the shared cores.
- Latency as wrk reports it (closed loop, with its coordinated-omission correction). The rows
  with a pause hold a server near half its peak: each connection waits that long (wrk's
  \`delay()\`) before its next request.
EOF
[ "$parity_ok" = 1 ] || echo "**The servers disagree: see the parity output of the run.**" >>"$work/parity.txt"
mkdir -p "$(dirname "$out")"
echo
"$py" "$here/tool.py" table "$work" "$out"
echo
echo "written to $out"
if [ "${#failures[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
