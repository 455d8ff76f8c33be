#!/usr/bin/env bash
# deploy/nginx/duet.conf, exactly as shipped, in front of `duet serve` with Debian's nginx. The
# file listens on port 80 and proxies to 127.0.0.1:8080, so the test runs in a private network
# namespace (`unshare -rn`: its own loopback, nothing else on the machine is reachable or
# disturbed) where those fixed ports are free. Checks through nginx: the API answers as duet
# itself does, JSON is gzipped, upstream connections are kept alive, a body over the limit gets
# 413 from nginx, /metrics and admin routes are refused, errors keep their problem+json body.
set -euo pipefail
duet=$1 src=$2 work=$3
if [ "${DUET_IN_NETNS:-}" != 1 ]; then
  rm -rf "$work" && mkdir -p "$work"
  source "$src/tests/integration/lib.sh"
  require_tools curl python3 unshare ip
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] ||
    { echo "FAILED: nginx is not installed (run scripts/install-deps.sh)"; exit 1; }
  seed=${DUET_TEST_SEED:-$RANDOM}
  echo "nginx test, seed $seed"
  noisy_dataset_with_reference 40000 4 20000
  "$duet" stream --source "$work/master" --store "sqlite:$work/serve.sqlite" --drain \
    2>/dev/null >/dev/null
  exec unshare -rn env DUET_IN_NETNS=1 PATH="$PATH:/usr/sbin" bash "$0" "$@"
fi

# In the namespace: bring its loopback up, then duet on 8080 and nginx on 80 (from the file).
ip link set lo up
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$duet" serve --store "sqlite:$work/serve.sqlite" --listen 127.0.0.1:8080 --refresh 500ms \
  >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
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
nginx -t -q -p "$prefix" -c "$prefix/nginx.conf" -g "pid $prefix/nginx.pid;" ||
  { echo "FAILED: nginx -t rejects deploy/nginx/duet.conf"; exit 1; }
nginx -p "$prefix" -c "$prefix/nginx.conf" -g "daemon off; pid $prefix/nginx.pid;" \
  2>"$work/nginx.log" &
pids+=($!)
for _ in $(seq 1 200); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null && curl -s -o /dev/null http://127.0.0.1/healthz && break
  sleep 0.05
done
curl -sf http://127.0.0.1/readyz >/dev/null ||
  { echo "FAILED: duet behind nginx not ready within 10 s"; cat "$work/nginx.log"; exit 1; }
echo "nginx :80 -> duet serve :8080 (deploy/nginx/duet.conf as shipped)"

python3 - <<'EOF'
import gzip, http.client, json, sys, urllib.error, urllib.request

def get(port, path, headers=None, method='GET', body=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data

failures = 0
def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print('MISMATCH:', what)

_, _, direct = get(8080, '/v1/experiments')
experiments = [e['id'] for e in json.loads(direct)['experiments']]
paths = ['/v1/experiments', '/v1/status', '/v1/uniques?window=24h'] + \
        [f'/v1/experiments/{e}/report' for e in experiments] + \
        [f'/v1/experiments/{e}/timeseries?metric=sessions' for e in experiments]
for p in paths:
    s1, _, b1 = get(8080, p)
    s2, h2, b2 = get(80, p, {'Accept-Encoding': 'gzip'})
    if h2.get('content-encoding') == 'gzip':
        b2 = gzip.decompress(b2)
    strip = lambda b: {k: v for k, v in json.loads(b).items() if k not in ('as_of', 'now', 'refresh')}
    check(s1 == s2 == 200 and strip(b1) == strip(b2), f'{p}: through nginx differs from duet')

s, h, b = get(80, f'/v1/experiments/{experiments[0]}/report', {'Accept-Encoding': 'gzip'})
check(h.get('content-encoding') == 'gzip', f'report not gzipped: {h}')
check('accept-encoding' in h.get('vary', '').lower(), 'no Vary: Accept-Encoding')
s, h, b = get(80, '/v1/experiments/nope/report')
check(s == 404 and h.get('content-type') == 'application/problem+json', f'404 through nginx: {s} {h}')
s, _, _ = get(80, '/v1/experiments', method='POST', body=b'x' * (2 * 1024 * 1024),
              headers={'Content-Type': 'application/json'})
check(s == 413, f'a 2 MiB body got {s}, expected 413 from nginx')
for p in ['/metrics', '/metrics/', '//metrics', '/v1/jobs', '/v1/jobs/1', '/admin']:
    s, _, _ = get(80, p)
    check(s == 403, f'{p} through nginx: {s}, expected 403')
s, _, b = get(8080, '/metrics')
check(s == 200, 'duet itself must still serve /metrics')
# Many requests through nginx (each a new client connection): duet should see only the few
# upstream connections nginx keeps alive (counted after this script).
for _ in range(200):
    get(80, '/healthz')
if failures:
    sys.exit(f'FAILED: {failures} mismatches')
print(f'nginx: {len(paths)} routes equal through the proxy; gzip, 413, 403 for /metrics and admin '
      f'routes, problem+json errors checked')
EOF

# Upstream keep-alive: 200 requests through nginx arrived on a handful of duet connections.
conns=$(ss -Htn state established '( sport = :8080 )' | wc -l)
echo "duet connections held open by nginx after 200+ proxied requests: $conns"
[ "$conns" -ge 1 ] && [ "$conns" -le 10 ] ||
  { echo "FAILED: expected nginx to keep 1-10 upstream connections open, found $conns"; exit 1; }
kill -QUIT "${pids[1]}"
wait "${pids[1]}" || true
echo "nginx test passed"
