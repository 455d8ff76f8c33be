#!/usr/bin/env bash
# compose.yaml and deploy/compose/nginx.conf, without a Docker engine (none is needed, none runs):
#  1. the Compose specification's JSON schema (check-jsonschema's bundled vendor.compose-spec);
#  2. what the schema cannot see, in Python: every Duet role runs the one image, read-only with
#     a tmpfs at /tmp, as the non-root user, with no capabilities and a `duet probe` healthcheck;
#     every depends_on names a service; the role commands are the interface's, pointing at the
#     Kafka and MongoDB services of the file (name and port), with flags the built duet knows;
#     the topics are created; the stream gets >= 120 s to stop; two API services; the batch
#     worker schedules a run every 30 m; nginx publishes 8080 and its upstreams are exactly the
#     API services and the collector, on 8080;
#  3. nginx -t on the nginx file (Debian's nginx), with the upstream host names replaced by
#     127.0.0.1: nginx resolves upstream names while it reads the file, and api-1 etc. exist only
#     on the Compose network;
#  4. negative checks: broken copies (an unknown service key, a bad depends_on condition, a short
#     stop grace, an upstream naming no service, an nginx syntax error) are rejected.
# Offline. A missing tool fails the test.
set -euo pipefail
duet=$1 src=$2 work=$3
export PATH="$PATH:/usr/sbin:/sbin"
rm -rf "$work" && mkdir -p "$work"
compose=$src/compose.yaml
site=$src/deploy/compose/nginx.conf

fail() { echo "FAILED: $*"; exit 1; }
bin=$(bash "$src/scripts/deploy-tools.sh" bin) || fail "the deployment tools are missing (scripts/deploy-tools.sh fetch)"
cjs=$bin/check-jsonschema
# check-jsonschema's own virtual environment has ruamel.yaml (a dependency of check-jsonschema).
py=$(dirname "$(readlink -f "$cjs")")/python
"$py" -c 'import ruamel.yaml' 2>/dev/null || fail "no ruamel.yaml in $py (check-jsonschema's venv)"
command -v nginx >/dev/null || fail "nginx not found (scripts/install-deps.sh installs it)"
[ -x "$duet" ] || fail "duet binary $duet not found"
for f in "$compose" "$site"; do [ -f "$f" ] || fail "$f is missing"; done

schema() { "$cjs" --builtin-schema vendor.compose-spec "$1" 2>&1; }

# 1. Schema.
out=$(schema "$compose") || fail "compose.yaml does not match the Compose specification:"$'\n'"$out"
echo "ok: compose.yaml matches the Compose specification schema"

# 2. Semantics. semantics COMPOSE_FILE NGINX_FILE: prints what it checked, or the first problem.
semantics() {
  "$py" - "$1" "$2" "$src" "$duet" <<'PY'
import re
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

compose_path, nginx_path, src, duet = sys.argv[1:5]
doc = YAML(typ="safe").load(Path(compose_path).read_text())
services = doc["services"]
problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def seconds(text):
    """A Compose duration (1m30s, 2m, 120s, 1h) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    return sum(float(n) * scale[u] for n, u in parts)


duet_roles = {"collector", "stream", "archiver", "batch", "api-1", "api-2"}
for name in sorted(duet_roles):
    check(name in services, f"service {name} is missing")
image = services.get("api-1", {}).get("image", "")
check(image.startswith("${DUET_IMAGE:-") and image.endswith("/duet/duet:latest}"),
      f"the Duet image is {image!r}, expected ${{DUET_IMAGE:-registry.../duet/duet:latest}}")
for name, svc in services.items():
    if svc.get("image") == image:
        check(name in duet_roles, f"{name} runs the Duet image but is no known role")
for name in sorted(duet_roles & services.keys()):
    svc = services[name]
    check(svc.get("image") == image, f"{name}: image {svc.get('image')!r}, not {image!r}")
    check(svc.get("build") == ".", f"{name}: build is not the repository root (.)")
    check(svc.get("read_only") is True, f"{name}: root file system not read_only")
    check("/tmp" in [str(t).split(":")[0] for t in svc.get("tmpfs", [])], f"{name}: no tmpfs at /tmp")
    uid = str(svc.get("user", "")).split(":")[0]
    check(uid.isdigit() and int(uid) != 0, f"{name}: user {svc.get('user')!r} is not a non-root uid")
    check("ALL" in svc.get("cap_drop", []), f"{name}: capabilities not dropped (cap_drop: [ALL])")
    check("no-new-privileges:true" in svc.get("security_opt", []), f"{name}: no no-new-privileges")
    check(svc.get("restart") == "unless-stopped", f"{name}: restart is not unless-stopped")
    test = svc.get("healthcheck", {}).get("test", [])
    check(test[:3] == ["CMD", "duet", "probe"], f"{name}: healthcheck {test} is not duet probe")
    check(isinstance(svc.get("command"), list) and svc["command"], f"{name}: no command list")
for name, svc in services.items():
    deps = svc.get("depends_on", {})
    for dep in deps if isinstance(deps, list) else deps.keys():
        check(dep in services, f"{name} depends on {dep}, which is no service")
print(f"ok: {len(duet_roles)} Duet services share one image, read-only + /tmp tmpfs, "
      "non-root, no capabilities, duet probe healthchecks; every depends_on names a service")

# The backends: the address clients reach Kafka at, and MongoDB's service.
kafka = services.get("kafka", {})
adv = str(kafka.get("environment", {}).get("KAFKA_ADVERTISED_LISTENERS", ""))
m = re.search(r"PLAINTEXT://([\w.-]+):(\d+)", adv)
broker = f"{m.group(1)}:{m.group(2)}" if m else None
check(broker is not None and m.group(1) in services, f"kafka advertises {adv!r}: no service:port")
check(str(kafka.get("image", "")).startswith("apache/kafka:"), "kafka is not apache/kafka")
mongo = [n for n, s in services.items() if str(s.get("image", "")).startswith("mongo:")]
check(len(mongo) == 1, f"expected one mongo service, found {mongo}")
store = f"mongodb://{mongo[0] if mongo else '?'}:27017/duet"
raw = store + ".raw"


def args(name):
    return [str(a) for a in services.get(name, {}).get("command", [])]


def has(cmd, *pairs):
    """cmd holds each FLAG VALUE of pairs as two neighbouring arguments."""
    given = set(zip(cmd, cmd[1:]))
    return all((pairs[k], pairs[k + 1]) in given for k in range(0, len(pairs), 2))


source = f"kafka://{broker}/beacons"
expect = {
    "collector": (["collect"], ("--brokers", broker, "--topic", "beacons")),
    "stream": (["stream"], ("--source", source, "--group", "duet-stream", "--store", store)),
    "archiver": (["archive"], ("--source", source, "--out", raw, "--group", "duet-archive")),
    "batch": (["jobs", "worker"], ("--store", store, "--input", raw, "--schedule-batch", "30m")),
    "api-1": (["serve"], ("--store", store, "--workers", "2")),
    "api-2": (["serve"], ("--store", store, "--workers", "2")),
}
for name, (sub, pairs) in expect.items():
    cmd = args(name)
    check(cmd[:len(sub)] == sub and has(cmd, *pairs),
          f"{name}: command {cmd} lacks duet {' '.join(sub)} {' '.join(map(str, pairs))}")
batch_kinds = args("batch")[args("batch").index("--kinds") + 1] if "--kinds" in args("batch") else "batch"
check("batch" in batch_kinds.split(","), f"batch: --kinds {batch_kinds} does not run batch jobs")
print(f"ok: role commands use Kafka at {broker} (topic beacons) and MongoDB {store} / {raw}; "
      "the batch worker schedules a run every 30m")

# Every flag given to duet exists (the built binary's --help), the healthcheck's included.
probe = services.get("api-1", {}).get("healthcheck", {}).get("test", [])[1:]
for cmd in [["duet"] + args(n) for n in expect] + [probe]:
    sub = cmd[1:3] if cmd[1:2] == ["jobs"] else cmd[1:2]
    out = subprocess.run([duet, *sub, "--help"], capture_output=True, text=True)
    known = set(re.findall(r"^\s+(--[\w-]+)", out.stdout + out.stderr, re.M))
    check(out.returncode == 0 and known, f"duet {' '.join(sub)} --help failed")
    for flag in [a for a in cmd if a.startswith("--")]:
        check(flag in known, f"duet {' '.join(sub)} has no flag {flag}")
print("ok: every flag in the commands and healthchecks is one the built duet accepts")

init = services.get("kafka-init", {})
script = " ".join(map(str, init.get("command", []) or []))
check(init.get("image") == kafka.get("image"), "kafka-init does not use the kafka image")
check(re.search(r"--topic beacons --partitions 4\b", script) is not None,
      "kafka-init does not create topic beacons with 4 partitions")
check(re.search(r"--topic beacons\.bad\b", script) is not None, "kafka-init does not create beacons.bad")
check(script.count("--if-not-exists") >= 2, "kafka-init is not idempotent (--if-not-exists)")
check(f"--bootstrap-server {broker}" in script, f"kafka-init does not talk to {broker}")
for name in ("collector", "stream", "archiver"):
    dep = services.get(name, {}).get("depends_on", {})
    check(isinstance(dep, dict) and dep.get("kafka-init", {}).get("condition")
          == "service_completed_successfully", f"{name} does not wait for kafka-init")
grace = seconds(services.get("stream", {}).get("stop_grace_period", "10s"))
check(grace is not None and grace >= 120, f"stream: stop_grace_period {grace} s < 120 s")
print(f"ok: kafka-init creates beacons (4 partitions) and beacons.bad before the roles start; "
      f"the stream has {grace} s to stop")

# nginx: the published port, the mounted file, its upstreams.
ng = services.get("nginx", {})
check(str(ng.get("image", "")).startswith("nginx:"), "no nginx service")
check(any(str(p).split(":")[-2:] == ["8080", "80"] for p in ng.get("ports", [])),
      f"nginx does not publish host port 8080: {ng.get('ports')}")
mounts = [str(v).split(":") for v in ng.get("volumes", [])]
check(["./deploy/compose/nginx.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounts,
      "nginx does not mount ./deploy/compose/nginx.conf as conf.d/default.conf (ro)")
check((Path(src) / "deploy/compose/nginx.conf").is_file(), "deploy/compose/nginx.conf missing")
conf = re.sub(r"#.*", "", Path(nginx_path).read_text())
upstreams = {n: re.findall(r"^\s*server\s+([\w.-]+):(\d+)", body, re.M)
             for n, body in re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)}
apis = {n for n, s in services.items() if args(n)[:1] == ["serve"]}
for name, servers in upstreams.items():
    for host, port in servers:
        check(host in services, f"nginx upstream {name}: {host} is no service")
        check(port == "8080", f"nginx upstream {name}: {host}:{port}, Duet serves on 8080")
        check(host in ng.get("depends_on", {}), f"nginx does not depend on {host}")
check({h for h, _ in upstreams.get("duet_api", [])} == apis,
      f"upstream duet_api {upstreams.get('duet_api')} is not the API services {sorted(apis)}")
check([h for h, _ in upstreams.get("duet_collector", [])] == ["collector"],
      "upstream duet_collector is not the collector")
check(re.search(r"location\s*=\s*/v1/beacons\s*\{[^}]*proxy_pass\s+http://duet_collector;", conf),
      "POST /v1/beacons does not go to the collector")
for path in ("/metrics", "/v1/jobs", "/admin"):
    check(re.search(r"location\s+\^~\s+" + re.escape(path) + r"\s*\{\s*deny all;\s*\}", conf),
          f"nginx does not refuse {path}")
print(f"ok: nginx publishes 8080; upstreams {upstreams} are services of compose.yaml; "
      "/v1/beacons → collector; /metrics, /v1/jobs, /admin refused")

if problems:
    print("\n".join("problem: " + p for p in problems))
    sys.exit(1)
PY
}
semantics "$compose" "$site" || fail "compose.yaml or deploy/compose/nginx.conf (see the problems above)"

# 3. nginx -t, in a prefix under WORK_DIR (pid, logs, temp folders there, nothing bound).
nginx_test() {
  local dir=$work/nginx-$2
  mkdir -p "$dir/logs"
  sed -E 's/^(\s*server\s+)[A-Za-z][A-Za-z0-9.-]*:/\1127.0.0.1:/' "$1" >"$dir/site.conf"
  cat >"$dir/nginx.conf" <<EOF
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events {}
http {
    access_log off;
    include $dir/site.conf;
}
EOF
  nginx -t -q -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" 2>&1
}
out=$(nginx_test "$site" ok) || fail "nginx -t rejects deploy/compose/nginx.conf:"$'\n'"$out"
grep -q '127.0.0.1:8080' "$work/nginx-ok/site.conf" || fail "the upstream host names were not replaced"
echo "ok: nginx -t accepts deploy/compose/nginx.conf (upstream hosts as 127.0.0.1)"

# 4. Negative checks: each broken copy must be rejected.
reject_schema() {
  local what=$1 file=$2
  cmp -s "$file" "$compose" && fail "the copy with $what is not broken (the edit did not apply)"
  if out=$(schema "$file"); then fail "check-jsonschema accepted a compose file with $what"; fi
  echo "ok: check-jsonschema rejects $what: $(grep -m1 -o "$3" <<<"$out")"
}
sed 's/^    stop_grace_period: 2m$/    stop_grace_period: 2m\n    bogus_key: 1/' "$compose" >"$work/unknown-key.yaml"
reject_schema "an unknown service key" "$work/unknown-key.yaml" "'bogus_key' was unexpected"
sed '0,/condition: service_healthy/s//condition: service_maybe/' "$compose" >"$work/bad-condition.yaml"
reject_schema "a bad depends_on condition" "$work/bad-condition.yaml" "'service_maybe' is not one of"

reject_semantics() {
  local what=$1 file=$2 conf=$3 pattern=$4
  if out=$(semantics "$file" "$conf"); then fail "the semantic checks accepted $what"; fi
  grep -q "problem: .*$pattern" <<<"$out" || fail "the semantic checks missed $what:"$'\n'"$out"
  echo "ok: the semantic checks reject $what"
}
sed 's/stop_grace_period: 2m/stop_grace_period: 30s/' "$compose" >"$work/short-grace.yaml"
reject_semantics "a stream stop grace of 30 s" "$work/short-grace.yaml" "$site" "stop_grace_period"
sed 's/server api-2:8080;/server api-3:8080;/' "$site" >"$work/bad-upstream.conf"
reject_semantics "an upstream naming no service" "$compose" "$work/bad-upstream.conf" "api-3 is no service"
sed 's|kafka://kafka:9092/beacons", "--group", "duet-stream"|kafka://kafka:9093/beacons", "--group", "duet-stream"|' \
  "$compose" >"$work/wrong-port.yaml"
reject_semantics "a stream reading the wrong Kafka port" "$work/wrong-port.yaml" "$site" "stream: command"
sed 's/^\(\s*\)"--store", "mongodb:/\1"--stor", "mongodb:/' "$compose" >"$work/bad-flag.yaml"
reject_semantics "a flag duet does not know" "$work/bad-flag.yaml" "$site" "has no flag --stor"
sed 's/keepalive 64;/keepalive 64/' "$site" >"$work/bad-syntax.conf"
if out=$(nginx_test "$work/bad-syntax.conf" bad); then fail "nginx -t accepted a file with a syntax error"; fi
echo "ok: nginx -t rejects a copy with a missing semicolon"
echo "compose: all checks passed"
