#!/usr/bin/env bash
# deploy/nginx/duet.conf, exactly as shipped, in front of `duet serve` with Debian's nginx. The
# file listens on port 80 and proxies to 127.0.0.1:8080, so the test runs in private namespaces
# (`unshare --map-root-user --net --pid`): its own loopback, where those fixed ports are free and
# nothing else on the machine is reachable or disturbed, and its own PID namespace, so that every
# process it started (nginx's master and workers, duet) is killed by the kernel when the test
# ends, however it ends. (A leftover nginx worker holds CTest's output pipe open, and CTest then
# waits for it until the test's TIMEOUT.) Checks through nginx: the API answers as duet itself
# does, JSON is gzipped, upstream connections are kept alive, a body over the limit gets 413 from
# nginx, /metrics and admin routes (/v1/jobs, /admin) are refused, the model API (POST
# /v1/predict up to 1 MiB, GET /v1/models) reaches duet, errors keep their problem+json body.
# A missing tool or namespaces that cannot be created fail the test; nothing is skipped.
set -euo pipefail
duet=$1 src=$2 work=$3
# nginx, ip and ss are in /usr/sbin on Debian, which the caller's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
unshare_args=(--map-root-user --net --pid --fork --kill-child)

if [ "${DUET_NGINX_IN_NETNS:-}" != 1 ]; then
  rm -rf "$work" && mkdir -p "$work"
  source "$src/tests/integration/lib.sh"
  require_tools curl python3 unshare ip ss nginx
  if ! err=$(unshare "${unshare_args[@]}" true 2>&1); then
    echo "FAILED: cannot create the namespaces this test runs in (unshare ${unshare_args[*]}):"
    echo "  $err"
    echo "  user, network and PID namespaces are needed (kernel.unprivileged_userns_clone,"
    echo "  user.max_user_namespaces, or a container that forbids unshare)"
    exit 1
  fi
  seed=${DUET_TEST_SEED:-$RANDOM}
  echo "nginx test, seed $seed"
  noisy_dataset_with_reference 40000 4 20000
  "$duet" stream --source "$work/master" --store "sqlite:$work/serve.sqlite" --drain \
    2>/dev/null >/dev/null
  "$duet" train --input "$work/master" --store "sqlite:$work/serve.sqlite" --rounds 20 --force \
    2>"$work/train.log" >/dev/null || { echo "FAILED: duet train"; tail -3 "$work/train.log"; exit 1; }
  # The script again, as PID 1 of the new PID namespace: when it exits, the kernel kills every
  # process left in the namespace; when unshare is killed (CTest's timeout), --kill-child kills
  # the script and so the namespace.
  exec unshare "${unshare_args[@]}" env DUET_NGINX_IN_NETNS=1 bash "$0" "$@"
fi

# In the namespaces: bring the loopback up, then duet on 8080 and nginx on 80 (from the file).
duet_pid="" nginx_pid=""
fail() {
  echo "FAILED: $*"
  for f in serve.log nginx.log; do
    [ -s "$work/$f" ] && { echo "--- last lines of $work/$f"; tail -n 15 "$work/$f"; }
  done
  exit 1
}
# wait_ready SECONDS WHAT PID CMD...: polls CMD every 50 ms until it succeeds; fails as soon as
# PID has exited or after SECONDS.
wait_ready() {
  local limit=$1 what=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + limit))
  until "$@"; do
    kill -0 "$pid" 2>/dev/null || fail "$what exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || fail "$what not ready within $limit s"
    sleep 0.05
  done
}
# wait_exit SECONDS WHAT PID: waits (bounded) for PID to exit; its exit status, or fails.
wait_exit() {
  local deadline=$((SECONDS + $1)) rc=0
  while kill -0 "$3" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$2 still running $1 s after it was asked to stop"
    sleep 0.05
  done
  wait "$3" || rc=$?
  return "$rc"
}

ip link set lo up || fail "cannot bring up the loopback interface in the test's network namespace"
"$duet" serve --store "sqlite:$work/serve.sqlite" --listen 127.0.0.1:8080 --refresh 500ms \
  >"$work/serve.out" 2>"$work/serve.log" &
duet_pid=$!
wait_ready 30 "duet serve" "$duet_pid" curl -sf --max-time 2 -o /dev/null http://127.0.0.1:8080/readyz

# The main configuration around the shipped file: everything nginx writes goes under the work
# folder (not /var/lib/nginx, /var/log/nginx, /run). Workers run as root: the only user mapped in
# the user namespace (nobody is not, and nginx would fail to switch to it). Their initgroups()
# is refused there ("[emerg] initgroups(root, 0) failed", not fatal).
prefix="$work/nginx"
mkdir -p "$prefix/tmp"
chmod 755 "$work" "$prefix" "$prefix/tmp"
cat >"$prefix/nginx.conf" <<EOF
worker_processes 2;
user root;
error_log stderr notice;
events { worker_connections 512; }
http {
  access_log $prefix/access.log;
  client_body_temp_path $prefix/tmp/body;
  proxy_temp_path $prefix/tmp/proxy;
  fastcgi_temp_path $prefix/tmp/fastcgi;
  uwsgi_temp_path $prefix/tmp/uwsgi;
  scgi_temp_path $prefix/tmp/scgi;
  include $src/deploy/nginx/duet.conf;
}
EOF
nginx -t -q -p "$prefix" -c "$prefix/nginx.conf" -g "pid $prefix/nginx.pid;" 2>"$work/nginx-t.log" || {
  cat "$work/nginx-t.log"; fail "nginx -t rejects deploy/nginx/duet.conf"; }
nginx -p "$prefix" -c "$prefix/nginx.conf" -g "daemon off; pid $prefix/nginx.pid;" \
  </dev/null >/dev/null 2>"$work/nginx.log" &
nginx_pid=$!
wait_ready 30 nginx "$nginx_pid" curl -sf --max-time 2 -o /dev/null http://127.0.0.1/readyz
echo "nginx :80 -> duet serve :8080 (deploy/nginx/duet.conf as shipped)"

python3 - <<'EOF' || fail "the API through nginx is not as expected (MISMATCH lines above)"
import gzip, http.client, json, sys

def request(port, path, headers=None, method='GET', body=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    h = {k.lower(): v for k, v in r.getheaders()}
    if h.get('content-encoding') == 'gzip':
        data = gzip.decompress(data)
    return r.status, h, data

def announced_only(path, length):
    """A request announcing a body of LENGTH bytes that is never sent: nginx refuses it on the
    Content-Length alone, so the answer does not depend on how much of a body it read first."""
    c = http.client.HTTPConnection('127.0.0.1', 80, timeout=10)
    c.putrequest('POST', path)
    c.putheader('Content-Type', 'application/json')
    c.putheader('Content-Length', str(length))
    c.endheaders()
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, r.getheader('Content-Type', '')

failures = 0
def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print('MISMATCH:', what)

# Fields that depend on the moment of the request (each one differs between two requests a
# millisecond apart): not compared.
VOLATILE = [('as_of',), ('now',), ('refresh',), ('speed', 'event_time_lag_s')]
def stable(body):
    d = json.loads(body)
    for path in VOLATILE:
        node = d
        for k in path[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return d

_, _, direct = request(8080, '/v1/experiments')
experiments = [e['id'] for e in json.loads(direct)['experiments']]
paths = ['/v1/experiments', '/v1/status', '/v1/uniques?window=24h'] + \
        [f'/v1/experiments/{e}/report' for e in experiments] + \
        [f'/v1/experiments/{e}/timeseries?metric=sessions' for e in experiments]
for p in paths:
    s1, _, b1 = request(8080, p)
    s2, _, b2 = request(80, p, {'Accept-Encoding': 'gzip'})
    a, b = stable(b1), stable(b2)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    check(s1 == s2 == 200 and a == b, f'{p}: through nginx {s2} differs from duet {s1} in {diff}')

s, h, b = request(80, f'/v1/experiments/{experiments[0]}/report', {'Accept-Encoding': 'gzip'})
check(h.get('content-encoding') == 'gzip', f'report not gzipped: {h}')
check('accept-encoding' in h.get('vary', '').lower(), 'no Vary: Accept-Encoding')
s, h, b = request(80, '/v1/experiments/nope/report')
check(s == 404 and h.get('content-type') == 'application/problem+json',
      f'404 through nginx: {s} {h}')

# Over the body limit: 413 from nginx itself (its HTML page, not duet's problem+json).
for p in ['/v1/experiments', '/v1/predict']:
    s, ctype = announced_only(p, 2 * 1024 * 1024)
    check(s == 413 and ctype.startswith('text/html'),
          f'POST {p} announcing 2 MiB: {s} {ctype}, expected 413 from nginx')

# Refused by nginx (403, its HTML page) whatever the method or the spelling of the path.
refused = ['/metrics', '/metrics/', '//metrics', '/metrics?name=x', '/v1/jobs', '/v1/jobs/',
           '/v1/jobs/1', '/v1/jobs?state=running', '/v1//jobs', '/v1/%6Aobs/1', '/v1/x/../jobs',
           '/admin', '/admin/', '/admin/reload', '//admin/users', '/%61dmin/models']
for p in refused:
    for method in ['GET', 'HEAD', 'POST', 'DELETE']:
        body = b'{}' if method == 'POST' else None
        s, h, _ = request(80, p, {'Content-Type': 'application/json'} if body else None,
                          method=method, body=body)
        check(s == 403 and h.get('content-type', '').startswith('text/html'),
              f'{method} {p} through nginx: {s} {h.get("content-type")}, expected 403 from nginx')
s, _, _ = request(8080, '/metrics')
check(s == 200, 'duet itself must still serve /metrics')

# The model API reaches duet: the answer through nginx is duet's own (same status and body as
# asked directly, problem+json; nginx's own 403/413/502/504 pages are HTML), whatever duet answers
# (404 before the route exists, 405 for GET, 400/415/422 for a body it refuses, 503 while no
# model is promoted); a valid feature object gets the same 200 both ways.
json_ct = {'Content-Type': 'application/json'}
big = json.dumps({'instances': 'x' * (1024 * 1024 - 4096)}).encode()  # under 1 MiB: passes
assert len(big) < 1024 * 1024
for what, method, p, headers, body in [
        ('predict', 'POST', '/v1/predict', json_ct, b'{}'),
        ('predict, ~1 MiB body', 'POST', '/v1/predict', json_ct, big),
        ('predict, wrong method', 'GET', '/v1/predict', None, None)]:
    s1, h1, b1 = request(8080, p, headers, method=method, body=body)
    s2, h2, b2 = request(80, p, headers, method=method, body=body)
    check(s2 == s1 and b2 == b1 and h2.get('content-type') == 'application/problem+json',
          f'{method} /v1/predict ({what}) through nginx: {s2} {h2.get("content-type")} {b2[:200]!r}; '
          f'duet directly: {s1} {b1[:200]!r}')
good = json.dumps({'beacons': 3, 'pageviews': 2, 'hour_of_day': 12, 'day_of_week': 2,
                   'device': 'mobile'}).encode()
s1, h1, b1 = request(8080, '/v1/predict', json_ct, method='POST', body=good)
s2, h2, b2 = request(80, '/v1/predict', json_ct, method='POST', body=good)
check(s1 == 200 and s2 == 200 and b2 == b1 and h2.get('content-type') == 'application/json',
      f'POST /v1/predict (valid) through nginx: {s2} {b2[:200]!r}; duet directly: {s1} {b1[:200]!r}')
s1, h1, b1 = request(8080, '/v1/models')
s2, h2, b2 = request(80, '/v1/models', {'Accept-Encoding': 'gzip'})
check(s2 == s1 and b2 == b1 and h2.get('content-type', '').startswith('application/'),
      f'GET /v1/models through nginx: {s2} {h2.get("content-type")} {b2[:200]!r}; duet: {s1}')

# Many requests through nginx (each a new client connection): duet should see only the few
# upstream connections nginx keeps alive (counted after this script).
for _ in range(200):
    s, _, _ = request(80, '/healthz')
    if s != 200:
        check(False, f'/healthz through nginx: {s}')
        break
if failures:
    sys.exit(f'FAILED: {failures} mismatches')
print(f'nginx: {len(paths)} routes equal through the proxy; gzip, 413, 403 for /metrics and admin '
      f'routes ({len(refused)} spellings x 4 methods), predict (a 200 among them) and models reaching duet, '
      f'problem+json errors checked')
EOF

# Upstream keep-alive: 200+ requests through nginx arrived on a handful of duet connections.
conns=$(ss -Htn state established '( sport = :8080 )' | wc -l)
echo "duet connections held open by nginx after 200+ proxied requests: $conns"
if [ "$conns" -lt 1 ] || [ "$conns" -gt 10 ]; then
  fail "expected nginx to keep 1-10 upstream connections open, found $conns"
fi
# Nothing went wrong inside nginx (upstream errors, temp files it could not write, …).
if grep -E '\[(emerg|alert|crit)\]|upstream' "$work/nginx.log" | grep -v 'initgroups(root' | grep -q .; then
  grep -E '\[(emerg|alert|crit)\]|upstream' "$work/nginx.log" | grep -v 'initgroups(root' | head -5
  fail "nginx logged errors"
fi

# Graceful stops: nginx on SIGQUIT, duet on SIGTERM, both exit 0.
kill -QUIT "$nginx_pid"
wait_exit 15 nginx "$nginx_pid" || fail "nginx exited with status $? on SIGQUIT"
kill -TERM "$duet_pid"
wait_exit 15 "duet serve" "$duet_pid" || fail "duet serve exited with status $? on SIGTERM"
echo "nginx test passed"
