#!/usr/bin/env bash
# The model in production with real processes: `duet train` from generated traffic into a SQLite
# registry, `duet serve --workers 2` (prefork master + 2 workers) answering /v1/predict and
# /v1/models. Checks:
# - the first model is promoted, a version registered with --no-promote is not;
# - the speed layer scores the sessions in progress with it; the report and the dashboard show
#   them (live);
# - single and batch predictions agree and name the model version; bad payloads get precise 422s;
# - under load (wrk, 16 connections), promoting other versions twice (hot reload in every worker)
#   and a SIGHUP (graceful restart of every worker) fail or drop no request: wrk reports no
#   socket error and no non-2xx response;
# - the job routes need the admin token (401 without), and answer as openapi.json documents;
# - a worker killed with SIGKILL is replaced; SIGTERM stops master and workers (exit 0).
set -euo pipefail
duet=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
source "$src/tests/integration/lib.sh"
require_tools curl python3 wrk node /usr/bin/chromium
[ -f "$src/web/node_modules/playwright-core/package.json" ] || {
  echo "FAILED: web/node_modules is missing: run scripts/web-deps.sh (make deps does)"; exit 1; }
seed=${DUET_TEST_SEED:-$RANDOM}
echo "model serve test, seed $seed"
"$duet" generate --out "$work/master" --beacons 300000 --seed "$seed" >/dev/null 2>&1
store="sqlite:$work/models.sqlite"

"$duet" train --input "$work/master" --store "$store" --rounds 60 2>"$work/train1.log" | tee "$work/train1.out"
grep -q "version 1 registered .* promoted: the first model" "$work/train1.out" ||
  { echo "FAILED: the first model was not promoted"; exit 1; }
"$duet" train --input "$work/master" --store "$store" --rounds 5 --max-depth 2 --no-promote \
  2>"$work/train2.log" | tail -1 | tee "$work/train2.out"
grep -q "version 2 registered .* without promotion" "$work/train2.out" ||
  { echo "FAILED: version 2 was promoted or not registered"; exit 1; }
"$duet" models list --store "$store" | tee "$work/models.out"
grep -q '^\*       1 ' "$work/models.out" || { echo "FAILED: version 1 is not marked current"; exit 1; }
"$duet" models export --store "$store" --version 1 --out "$work/export" >/dev/null
[ -s "$work/export/model.ubj" ] && [ -s "$work/export/meta.json" ] ||
  { echo "FAILED: export wrote no model.ubj/meta.json"; exit 1; }

# Live scoring: the speed layer over the first half of the traffic scores the sessions in
# progress with the current model (version 1).
first_half_of_master "$work/early"
"$duet" stream --source "$work/early" --store "$store" --drain 2>"$work/stream.log" >/dev/null
grep -q '"event":"stream.model_loaded","version":1' "$work/stream.log" ||
  { echo "FAILED: the speed layer did not load model version 1"; exit 1; }

export DUET_ADMIN_TOKEN="test-token-$seed"
"$duet" serve --store "$store" --listen 127.0.0.1:0 --workers 2 --model-refresh 200ms \
  >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; pkill -9 -P $pid 2>/dev/null || true' EXIT
url=$(serve_url "$work/serve.out" "$work/serve.log" $pid)
workers=$(pgrep -P $pid | wc -l)
[ "$workers" = 2 ] || { echo "FAILED: $workers worker processes, expected 2"; exit 1; }
echo "duet serve at $url (master $pid, 2 workers)"

python3 - "$url" <<'PY'
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
def call(path, body=None, ctype="application/json", method=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")
fails = 0
def check(cond, what):
    global fails
    if not cond:
        fails += 1
        print("FAILED:", what)
base = {"beacons": 3, "pageviews": 2, "add_to_carts": 1, "seconds_since_start": 95.5,
        "hour_of_day": 14, "day_of_week": 2, "device": "mobile",
        "referrer": "https://www.google.com/", "previous_sessions": 1,
        "hours_since_previous_session": 20, "experiments": {"checkout_button": "treatment"}}
objs = [dict(base, beacons=b, hour_of_day=h) for b in (1, 2, 5, 9) for h in (0, 9, 21)]
objs.append({"beacons": 1, "hour_of_day": 3, "day_of_week": 6})
singles = []
for o in objs:
    st, _, b = call("v1/predict", o)
    check(st == 200 and b["model_version"] == 1 and 0 < b["probability"] < 1, f"single {o}: {st} {b}")
    singles.append(b.get("probability"))
st, _, b = call("v1/predict", {"instances": objs})
check(st == 200 and b["probabilities"] == singles, f"batch != singles: {b}")
check(len(set(singles)) > 3, f"predictions do not depend on the features: {singles}")
errors = [
    ({"beacons": 0, "hour_of_day": 1, "day_of_week": 1}, 422, "beacons: 0 is out of range"),
    ({"beacons": 1, "hour_of_day": 24, "day_of_week": 1}, 422, "hour_of_day: 24 is out of range"),
    ({"beacons": 1, "day_of_week": 1}, 422, "hour_of_day: missing"),
    ({"beacons": 1, "hour_of_day": 1, "day_of_week": 1, "colour": "red"}, 422, "unknown field 'colour'"),
    ({"instances": [base, {"beacons": "x"}]}, 422, "instances[1].beacons: the string 'x'"),
    ({"instances": []}, 422, "instances: 0 feature objects"),
    (b"{not json", 400, "not valid JSON"),
]
for body, want, text in errors:
    st, h, b = call("v1/predict", body)
    check(st == want and text in b.get("detail", "") and h["Content-Type"] == "application/problem+json",
          f"{body!r}: {st} {b}")
st, h, b = call("v1/predict", b"a=1", ctype="application/x-www-form-urlencoded")
check(st == 415, f"form body: {st}")
st, h, b = call("v1/predict", method="GET")
check(st == 405 and h["Allow"] == "POST", f"GET /v1/predict: {st} {h['Allow']}")
st, _, b = call("v1/models")
check(st == 200 and b["current"] == 1 and b["served"] == 1 and [v["version"] for v in b["versions"]] == [1, 2],
      f"/v1/models: {b}")
check(b["versions"][0]["metadata"]["holdout"]["auc"] > 0.55, "version 1's holdout AUC")
st, _, r = call("v1/experiments/checkout_button/report")
live = r.get("live") if st == 200 else None
check(live is not None and live["model_version"] == 1, f"report live: {st} {live}")
if live:
    n = sum(v["sessions_in_progress"] for v in live["variants"])
    e = sum(v["expected_conversions"] for v in live["variants"])
    check(n > 0 and 0 < e < n, f"live scores: {n} sessions in progress, {e} expected")
    print(f"live scoring: checkout_button has {n} sessions in progress, {e:.1f} conversions expected "
          f"(model v{live['model_version']})")
if fails:
    sys.exit(1)
print(f"predict API: {len(objs)} singles equal one batch, {len(errors) + 2} errors, /v1/models")
PY

bash "$src/tests/api/validate_openapi.sh" "$src/src/serve/openapi.json" "$url" model
# The dashboard shows the live scores next to the observed conversions (headless Chromium).
node "$src/tests/browser/dashboard.mjs" "$url" "$work/screenshots"
# The admin routes: refused without the token (401), documented responses with it.
code=$(curl -s -o "$work/noauth.json" -w '%{http_code}' -XPOST -H 'Content-Type: application/json' \
  "${url}v1/jobs" -d '{"kind":"batch"}')
[ "$code" = 401 ] || { echo "FAILED: POST /v1/jobs without a token answered $code"; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' "${url}v1/jobs")
[ "$code" = 401 ] || { echo "FAILED: GET /v1/jobs with a wrong token answered $code"; exit 1; }
bash "$src/tests/api/validate_openapi.sh" "$src/src/serve/openapi.json" "$url" jobs

# Waits until `want` consecutive /v1/models answers (from any worker) serve version $1.
served_everywhere() {
  local ok=0
  for _ in $(seq 1 200); do
    if curl -sf "${url}v1/models" | grep -q "\"served\":$1,"; then ok=$((ok + 1)); else ok=0; fi
    [ $ok -ge 12 ] && return 0
    sleep 0.05
  done
  echo "FAILED: version $1 not served by every worker within 10 s"; return 1
}

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"beacons":4,"pageviews":2,"clicks":1,"add_to_carts":1,"hour_of_day":12,"day_of_week":3,"device":"desktop","referrer":"https://t.co/","experiments":{"checkout_button":"control"}}'
LUA
wrk -t 2 -c 16 -d 12s -s "$work/post.lua" "${url}v1/predict" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
sleep 2
"$duet" models promote --store "$store" --version 2 >/dev/null
served_everywhere 2
sleep 1
kill -HUP $pid
for _ in $(seq 1 200); do grep -q '"event":"serve.reloaded"' "$work/serve.log" && break; sleep 0.05; done
grep -q '"event":"serve.reloaded"' "$work/serve.log" || { echo "FAILED: no serve.reloaded after SIGHUP"; exit 1; }
sleep 1
"$duet" models promote --store "$store" --version 1 >/dev/null
served_everywhere 1
wait $wrk_pid
cat "$work/wrk.out"
requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/wrk.out")
[ -n "$requests" ] && [ "$requests" -gt 1000 ] || { echo "FAILED: wrk made too few requests"; exit 1; }
if grep -Eq "Non-2xx|Socket errors" "$work/wrk.out"; then
  echo "FAILED: requests failed while models were swapped and workers restarted"; exit 1
fi
workers=$(pgrep -P $pid | wc -l)
[ "$workers" = 2 ] || { echo "FAILED: $workers workers after SIGHUP, expected 2"; exit 1; }
echo "under load: $requests requests, 0 errors through 2 promotions and a SIGHUP restart"

victim=$(pgrep -P $pid | head -1)
kill -9 "$victim"
for _ in $(seq 1 100); do
  n=$(pgrep -P $pid | wc -l)
  [ "$n" = 2 ] && ! pgrep -P $pid | grep -qx "$victim" && break
  sleep 0.1
done
pgrep -P $pid | grep -qx "$victim" && { echo "FAILED: killed worker still listed"; exit 1; }
[ "$(pgrep -P $pid | wc -l)" = 2 ] || { echo "FAILED: the killed worker was not replaced"; exit 1; }
for _ in $(seq 1 100); do
  curl -sf -XPOST -H 'Content-Type: application/json' "${url}v1/predict" \
    -d '{"beacons":1,"hour_of_day":1,"day_of_week":1}' >/dev/null || { echo "FAILED: predict after a worker was killed"; exit 1; }
done
echo "a worker killed with SIGKILL was replaced"

kill -TERM $pid
rc=0
wait $pid || rc=$?
trap - EXIT
[ $rc = 0 ] || { echo "FAILED: duet serve exited with $rc after SIGTERM"; tail -5 "$work/serve.log"; exit 1; }
echo "PASSED: model serve"
