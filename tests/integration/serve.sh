#!/usr/bin/env bash
# The serving layer end to end with real processes: a batch run over the first half of the data
# and the speed layer over all of it fill a store; `duet serve` serves the merged view. Checks:
# - every experiment's report from the API carries exactly the figures of `duet report --layer
#   merged --json` (and equals the batch layer over all the data);
# - errors are problem+json with the right status; /metrics, /openapi.json, /readyz answer;
# - with 2 prefork workers, /metrics covers both: after requests on new connections (spread by
#   the kernel over the workers, checked on each worker's /metrics/local), every read of
#   /metrics counts exactly the requests sent, whichever worker answers it;
# - the live responses match the OpenAPI document's schemas (tests/api/validate_responses.py);
# - the dashboard in headless Chromium (Playwright, tests/browser/dashboard.mjs) shows the API's
#   numbers; screenshots are saved under the work folder;
# - SIGTERM stops the server cleanly (exit 0).
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
require_tools curl python3 node /usr/bin/chromium
[ -f "$src/web/node_modules/playwright-core/package.json" ] || {
  echo "FAILED: web/node_modules is missing: run scripts/web-deps.sh (make deps does)"; exit 1; }
seed=${DUET_TEST_SEED:-$RANDOM}
echo "serve test, seed $seed"
noisy_dataset_with_reference 120000 6 20000
first_half_of_master "$work/early"
store="sqlite:$work/serve.sqlite"
"$duet" batch --input "$work/early" --store "$store" 2>/dev/null >/dev/null
"$duet" stream --source "$work/master" --store "$store" --drain 2>"$work/stream.log" >/dev/null
"$duet" report --store "$store" --layer merged --json --full >"$work/merged.json"

"$duet" serve --store "$store" --listen 127.0.0.1:0 --workers 2 --refresh 500ms \
  >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true' EXIT
url=$(serve_url "$work/serve.out" "$work/serve.log" $pid)
echo "duet serve ready at $url"

python3 - "$url" "$work/merged.json" "$work/batch.json" "$work/serve.log" <<'EOF'
import json, sys, urllib.error, urllib.request
url, merged_path, batch_path, serve_log = sys.argv[1:]
merged = json.load(open(merged_path))
batch = json.load(open(batch_path))

def get(path, want=200):
    try:
        with urllib.request.urlopen(url + path.lstrip('/'), timeout=10) as r:
            status, ctype, body = r.status, r.headers['Content-Type'], r.read()
    except urllib.error.HTTPError as e:
        status, ctype, body = e.code, e.headers['Content-Type'], e.read()
    if status != want:
        sys.exit(f"FAILED: GET {path}: status {status}, expected {want}: {body[:300]!r}")
    return ctype, body

failures = 0
def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("MISMATCH:", what)

_, body = get('/v1/experiments')
experiments = json.loads(body)['experiments']
check(sorted(e['id'] for e in experiments) == sorted(merged['experiments']),
      "experiment list differs from the merged report")
checked = 0
for e in experiments:
    _, body = get(f"/v1/experiments/{e['id']}/report")
    report = json.loads(body)
    want = {v['variant']: v for v in merged['experiments'][e['id']]['variants']}
    ref = {v['variant']: v for v in batch['experiments'][e['id']]['variants']}
    for v in report['variants']:
        for name, value in want[v['variant']].items():
            if name == 'variant':
                continue
            check(v[name] == value, f"{e['id']}/{v['variant']}.{name}: API {v[name]}, report {value}")
            check(v[name] == ref[v['variant']][name],
                  f"{e['id']}/{v['variant']}.{name}: API {v[name]}, batch over all {ref[v['variant']][name]}")
            checked += 1
        if v['variant'] == report['control']:
            check(v['vs_control'] is None, "control has a comparison")
        else:
            for m in ('conversion_rate_visitor', 'conversion_rate_session', 'revenue_per_visitor'):
                c = v['vs_control'][m]
                check(0 <= c['p_value'] <= 1, f"{m} p-value {c['p_value']}")
                check(c['absolute_ci'][0] <= c['absolute_lift'] <= c['absolute_ci'][1],
                      f"{m} CI does not contain the lift")
    check(report['srm']['p_value'] is not None, "no SRM test")
    _, body = get(f"/v1/experiments/{e['id']}/timeseries?metric=sessions")
    series = json.loads(body)
    hourly = {}
    for row in merged['hourly']:
        if row['experiment'] == e['id']:
            hourly[row['variant']] = hourly.get(row['variant'], 0) + row['sessions']
    for s in series['series']:
        check(sum(s['values']) == hourly[s['variant']],
              f"{e['id']}/{s['variant']}: hourly sessions sum {sum(s['values'])} vs {hourly[s['variant']]}")

_, body = get('/v1/status')
status = json.loads(body)
check(status['input']['bad_rows_by_reason'] == merged['input']['bad_rows_by_reason'],
      "status bad rows differ from the report's")
check(status['batch']['last_run'] is not None, "no batch run in /v1/status")

for path, code, text in [('/v1/experiments/nope/report', 404, "experiment 'nope'"),
                         ('/v1/experiments?x=1', 400, "'x' is not known"),
                         ('/v1/uniques?window=7d', 400, "'window'"),
                         ('/nowhere', 404, 'no route')]:
    ctype, body = get(path, code)
    check(ctype == 'application/problem+json', f"{path}: content type {ctype}")
    check(text in json.loads(body)['detail'], f"{path}: detail {body!r}")
req = urllib.request.Request(url + 'v1/experiments', method='DELETE')
try:
    urllib.request.urlopen(req, timeout=10)
    check(False, "DELETE accepted")
except urllib.error.HTTPError as e:
    check(e.code == 405 and e.headers['Allow'] == 'GET, HEAD', f"DELETE: {e.code} {e.headers['Allow']}")
# /metrics of either worker covers both. Each urlopen is a new connection, which the kernel
# hands to one of the two workers' SO_REUSEPORT sockets.
report_route = '/v1/experiments/{id}/report'
counter = 'duet_http_requests_total{code="200",route="' + report_route + '"}'
extra = 40
for _ in range(extra):
    get(f"/v1/experiments/{experiments[0]['id']}/report")
want = len(experiments) + extra  # the reports above, then these

def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' '):
            return float(line[len(name) + 1:])
    return None

for i in range(6):
    _, body = get('/metrics')
    text = body.decode()
    check(metric(text, counter) == want,
          f"/metrics read {i + 1}: {counter} is {metric(text, counter)}, expected {want} "
          "(requests on every worker)")
    check(metric(text, 'duet_serve_workers') == 2,
          f"/metrics read {i + 1}: duet_serve_workers {metric(text, 'duet_serve_workers')}, expected 2")
# The requests did go to both workers (else the check above proves nothing): each worker's own
# count, from its peer listener (ports in the master's serve.worker_started lines).
ports = [json.loads(l)['peer_port'] for l in open(serve_log)
         if '"event":"serve.worker_started"' in l]
check(len(ports) == 2, f"serve.worker_started lines: {len(ports)}, expected 2")
own = []
for p in ports:
    with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics/local", timeout=10) as r:
        own.append(metric(r.read().decode(), counter) or 0)
check(len(own) == 2 and all(n > 0 for n in own) and sum(own) == want,
      f"per-worker counts {own}: expected both > 0, summing to {want}")
ctype, body = get('/openapi.json')
check(json.loads(body)['openapi'].startswith('3.'), "openapi.json")
if failures:
    sys.exit(f"FAILED: {failures} mismatches")
print(f"API: {len(experiments)} experiments, {checked} report figures equal to duet report "
      f"--layer merged and to the batch layer over all data; errors, openapi checked; /metrics "
      f"of 2 workers merged: {want} report requests (per worker {own}) in every read")
EOF

# The live responses against the OpenAPI document (schemas and documented statuses).
bash "$src/tests/api/validate_openapi.sh" "$src/src/serve/openapi.json" "$url"

node "$src/tests/browser/dashboard.mjs" "$url" "$work/screenshots"

kill -TERM $pid
if ! wait $pid; then echo "FAILED: duet serve did not exit 0 on SIGTERM"; exit 1; fi
trap - EXIT
grep -q '"event":"serve.stop"' "$work/serve.log" || { echo "FAILED: no serve.stop logged"; exit 1; }
echo "serve test passed (screenshots in $work/screenshots)"
