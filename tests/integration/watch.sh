#!/usr/bin/env bash
# `duet watch` supervising a real `duet stream`: the stream is frozen with SIGSTOP (it still
# accepts TCP connections but never answers) and must be detected as stuck, killed and
# restarted within a bound; then killed with SIGKILL and restarted as down. A webhook receiver
# (whose first POST fails, to exercise the retries) must get stuck, restarted, down, restarted
# and recovered; watch's /metrics must count the restarts. Beside it, a stand-in whose status
# server answers but whose loop makes no step (steps_total frozen) must be found stuck by
# stuck_after, restarted twice and given up on (max_restarts 2), and a monitored-only process
# on a closed port must be reported down once and never acted on. The stream then consumes every line
# and the speed layer must equal the batch layer figure by figure. SIGTERM stops watch with exit
# code 0 and no child left.
# WATCH_TEST_RESTART=false runs the same test with restarts turned off: it must fail (the check
# that this test can fail).
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
require_tools python3 curl sqlite3
seed=${DUET_TEST_SEED:-$RANDOM}
restart=${WATCH_TEST_RESTART:-true}
echo "watch test, seed $seed, restart $restart"
noisy_dataset_with_reference 200000 6 20000
total_lines=$(find "$work/master" -name '*.ndjson' -exec cat {} + | wc -l)

watch_pid="" hook_pid="" feed_pid=""
cleanup() {
  # Whatever failed: no process of this test outlives it (a frozen stream is thawed and killed).
  local p
  for p in $(child_pids); do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in $watch_pid $hook_pid $feed_pid; do
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
fail() { echo "FAILED: $*"; echo "--- watch.log (last 15 lines)"; tail -15 "$work/watch.log" || true; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }
# count EVENT: how many times watch logged EVENT about the stream.
count() { grep -c "\"event\":\"$1\",\"name\":\"stream\"" "$work/watch.log" || true; }
# child_pids: every child watch started (any name).
child_pids() {
  sed -n 's/.*"event":"watch\.\(started\|restarted\)","name":"[^"]*","pid":\([0-9]*\).*/\2/p' \
    "$work/watch.log" 2>/dev/null
}
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  for _ in $(seq 1 $((limit * 10))); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  fail "$what: not within $limit s"
}
stream_pid() {
  sed -n 's/.*"event":"watch\.\(started\|restarted\)","name":"stream","pid":\([0-9]*\).*/\2/p' \
    "$work/watch.log" | tail -1
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:$status_port/readyz" >/dev/null; }
more_than() { [ "$(count "$1")" -gt "$2" ]; }
# The lines the speed layer has committed.
lines() {
  "$duet" report --store "$store" --layer speed --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["input"]["lines"])' 2>/dev/null || echo 0
}
all_consumed() { [ "$(lines)" = "$total_lines" ]; }

# The webhook receiver: 127.0.0.1, port 0; one alert per line in alerts.ndjson; the first POST
# is answered 500 (watch must retry it).
cat >"$work/webhook.py" <<'PY'
import http.server, json, sys
out, port_file = sys.argv[1], sys.argv[2]
state = {"posts": 0}
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        state["posts"] += 1
        if state["posts"] == 1:
            self.send_response(500); self.end_headers(); return
        assert self.headers.get("Content-Type") == "application/json"
        json.loads(body)
        with open(out, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(204); self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
open(port_file + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(port_file + ".tmp", port_file)
s.serve_forever()
PY
python3 "$work/webhook.py" "$work/alerts.ndjson" "$work/webhook.port" &
hook_pid=$!
wait_for 10 "the webhook receiver starts" test -s "$work/webhook.port"
hook_port=$(cat "$work/webhook.port")
touch "$work/alerts.ndjson"

# Free ports for the status endpoints (a restarted process binds the same one again).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
status_port=$(free_port)
hung_port=$(free_port)
ghost_port=$(free_port)
# The hung loop's stand-in: /healthz answers, /metrics shows steps that never advance.
cat >"$work/hung.py" <<'PY'
import http.server, sys
class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        bodies = {"/healthz": b'{"status":"ok"}\n',
                  "/metrics": b'duet_hung_steps_total{result="ok"} 7\n'
                              b'duet_hung_steps_total{result="error"} 1\n'}
        body = bodies.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Status).serve_forever()
PY
store="sqlite:$work/speed.sqlite"
# The stream reads $work/log, which receives the master's files one by one (in read order,
# each moved in whole) while the test freezes and kills it: both land in the middle of the input.
mkdir -p "$work/log" "$work/staging"
(cd "$work/master" && find . -name '*.ndjson' | sort) >"$work/files.txt"
feed() {
  local f n=0
  while read -r f; do
    mkdir -p "$work/log/$(dirname "$f")"
    cp "$work/master/$f" "$work/staging/part"
    mv "$work/staging/part" "$work/log/$f"
    n=$((n + 1))
    # The first 3 files at once, then one every 0.4 s.
    [ "$n" -lt 3 ] || sleep 0.4
  done <"$work/files.txt"
}
cat >"$work/processes.json" <<EOF
{"processes": [{
  "name": "stream",
  "status_url": "http://127.0.0.1:$status_port",
  "command": ["$duet", "stream", "--source", "$work/log", "--store", "$store",
              "--interval", "200ms", "--max-batch", "2000",
              "--status-listen", "127.0.0.1:$status_port"],
  "env": {"DUET_LOG_LEVEL": "info"},
  "restart": $restart,
  "failures": 3,
  "start_period": "20s",
  "stuck_after": "5s",
  "grace": "10s",
  "backoff": "200ms",
  "max_backoff": "5s",
  "backoff_reset": "30s"
}, {
  "name": "hung",
  "status_url": "http://127.0.0.1:$hung_port/",
  "command": ["python3", "$work/hung.py", "$hung_port"],
  "stuck_after": "2s",
  "grace": "2s",
  "backoff": "200ms",
  "max_restarts": 2
}, {
  "name": "ghost",
  "status_url": "http://127.0.0.1:$ghost_port",
  "start_period": "0s"
}]}
EOF
"$duet" watch --processes "$work/processes.json" --interval 300ms --timeout 300ms \
  --log-dir "$work/logs" --webhook "http://127.0.0.1:$hook_port/alerts" --webhook-retries 3 \
  --status-listen 127.0.0.1:0 2>"$work/watch.log" >/dev/null &
watch_pid=$!
wait_for 30 "the stream started by watch is ready" ready
# Until watch has seen it answer once, failures fall in its start_period and do not count.
wait_for 10 "watch sees the stream up" more_than watch.up 0
first=$(stream_pid)
[ -n "$first" ] || fail "watch logged no watch.started with the stream's pid"
[ "$(ps -o ppid= -p "$first" | tr -d ' ')" = "$watch_pid" ] || fail "the stream ($first) is not watch's child"
watch_url=$(sed -n 's/.*"event":"status.listen","url":"\([^"]*\)".*/\1/p' "$work/watch.log")
echo "stream pid $first ready on port $status_port; watch status at $watch_url"

feed &
feed_pid=$!
some_committed() { [ "$(lines)" -gt 0 ]; }
wait_for 30 "the stream commits its first lines" some_committed

# 1. Frozen: SIGSTOP. Probes time out (300 ms) three times in a row -> stuck -> SIGKILL ->
# restart after 200 ms. Bound: 10 s (expected ~2 s).
restarts=$(count watch.restarted)
t0=$(now)
echo "SIGSTOP with $(lines) of $total_lines lines committed"
kill -STOP "$first"
wait_for 10 "watch restarts the frozen stream" more_than watch.restarted "$restarts"
took=$(since "$t0")
echo "SIGSTOP: detected as stuck and restarted in $took s"
[ "$(count watch.stuck)" -ge 1 ] || fail "no watch.stuck logged"
second=$(stream_pid)
[ "$second" != "$first" ] || fail "no new stream pid after the restart"
! kill -0 "$first" 2>/dev/null || fail "the frozen stream ($first) is still alive"
wait_for 30 "the restarted stream is ready" ready
wait_for 10 "watch reports the stream recovered" more_than watch.recovered 0

# 2. Crashed: SIGKILL -> down -> restart.
restarts=$(count watch.restarted)
echo "SIGKILL with $(lines) of $total_lines lines committed"
t0=$(now)
kill -KILL "$second"
wait_for 10 "watch restarts the killed stream" more_than watch.restarted "$restarts"
echo "SIGKILL: detected as down and restarted in $(since "$t0") s"
third=$(stream_pid)
[ "$third" != "$second" ] || fail "no new stream pid after the second restart"
grep -q '"event":"watch.down".*killed by SIGKILL' "$work/watch.log" || fail "no watch.down naming SIGKILL"

# 3. Every line consumed, then idle for longer than stuck_after (5 s): an idle stream still
# counts steps, so it must not be restarted.
wait "$feed_pid"
feed_pid=""
wait_for 120 "the stream consumes all $total_lines lines" all_consumed
restarts=$(count watch.restarted)
sleep 7
[ "$(count watch.restarted)" = "$restarts" ] || fail "an idle stream was restarted (stuck_after must not fire)"
! grep -q '"event":"watch.metrics_failed"' "$work/watch.log" || fail "watch could not read the stream's /metrics"
echo "idle for 7 s (stuck_after 5 s): no restart"

# 4. The alerts (the webhook's first POST failed and was retried): stuck, restarted, recovered,
# down, restarted, recovered; and watch's metrics.
wait_for 30 "the webhook got 15 alerts" test "$(wc -l <"$work/alerts.ndjson")" -ge 15
grep -q '"event":"watch.alert_failed"' "$work/watch.log" || fail "the failed webhook POST was not logged"
python3 - "$work/alerts.ndjson" <<'PY'
import json, sys
everything = [json.loads(l) for l in open(sys.argv[1])]
for a in everything:
    assert set(a) == {"event", "name", "reason", "ts", "pid"}, a
    assert a["reason"] and a["ts"].endswith("Z"), a
def of(name):
    mine = [a for a in everything if a["name"] == name]
    print(f"alerts of {name}:", " ".join(a["event"] for a in mine))
    return mine
hung = of("hung")
events = [a["event"] for a in hung]
assert events == ["stuck", "restarted", "recovered"] * 2 + ["stuck", "gave_up"], events
assert all("no step for" in a["reason"] for a in hung if a["event"] == "stuck"), hung
ghost = of("ghost")
assert [a["event"] for a in ghost] == ["down"] and ghost[0]["pid"] is None, ghost
assert "refused" in ghost[0]["reason"], ghost
alerts = of("stream")
events = [a["event"] for a in alerts]
want = ["stuck", "restarted", "down", "restarted"]
got = [e for e in events if e in ("stuck", "down", "restarted")]
assert got == want, f"expected {want}, got {got}"
assert events.count("recovered") == 2, events
stuck = next(a for a in alerts if a["event"] == "stuck")
assert "no answer within 300 ms" in stuck["reason"], stuck
down = next(a for a in alerts if a["event"] == "down")
assert "killed by SIGKILL" in down["reason"], down
PY
metrics=$(curl -sf --max-time 2 "${watch_url}metrics")
for m in 'duet_watch_restarts_total{name="stream",reason="stuck"} 1' \
         'duet_watch_restarts_total{name="stream",reason="down"} 1' 'duet_watch_up{name="stream"} 1' \
         'duet_watch_restarts_total{name="hung",reason="stuck"} 2' 'duet_watch_up{name="hung"} 0' \
         'duet_watch_up{name="ghost"} 0' 'duet_watch_alerts_total{result="sent"} 15'; do
  grep -qF "$m" <<<"$metrics" || fail "watch /metrics lacks '$m'"
done
echo "webhook and metrics: ok"

# 5. Exact: the speed layer after a freeze, a kill and two restarts equals the batch layer.
speed_equals_batch "$store" "$work/batch.json" "$work/speed.json"

# 6. SIGTERM: watch stops the stream (SIGTERM, it commits and exits 0) and exits 0.
kill -TERM "$watch_pid"
rc=0
for _ in $(seq 1 300); do kill -0 "$watch_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$watch_pid" 2>/dev/null && fail "watch did not exit within 30 s of SIGTERM"
wait "$watch_pid" || rc=$?
watch_pid=""
[ "$rc" = 0 ] || fail "watch exited $rc on SIGTERM, expected 0"
grep -q '"event":"watch.stopped","name":"stream","pid":'"$third"',"how":"exited with status 0 after SIGTERM"' \
  "$work/watch.log" || fail "the stream did not exit 0 on watch's SIGTERM"
for p in $(child_pids); do
  ! kill -0 "$p" 2>/dev/null || fail "child $p outlived watch"
done
echo "no child left: $(child_pids | wc -l) started, all gone"
grep -q '"event":"stream.stop"' "$work/logs/stream.err" || fail "the stream's log has no stream.stop"
echo "watch test passed (stuck restart in $took s)"
