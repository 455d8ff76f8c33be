#!/usr/bin/env bash
# The Helm chart deploy/helm/duet, offline (no cluster): helm lint --strict; helm template with
# the default values, values-production.yaml and every optional part enabled, each validated by
# kubernetes-validate --strict against Kubernetes 1.34 and against 1.27 (the chart's oldest,
# kubeVersion >=1.27.0-0); then semantic checks of the rendered objects (non-root 10001,
# read-only root, no privilege escalation, capabilities dropped, seccomp, requests and limits,
# /tmp emptyDir, probes on 8080, the commands of the issue-8 interface with flags and DUET_*
# variables that DUET_BIN's --help lists, consumer groups no larger than the partition count,
# the batch CronJob every 30 minutes with Forbid, the backfill Indexed Job, the Ingress routes
# with the admin paths refused, no MongoDB URI outside the Secret). Negative checks prove that
# each validator bites: a chart refusing stream.replicas > kafka.partitions, kubernetes-validate
# on a broken copy, the WARN rule on an unknown kind, the semantic checks on mutated copies.
#
#   bash tests/deploy/helm.sh DUET_BIN SOURCE_DIR WORK_DIR
#
# Tools come from scripts/deploy-tools.sh (which fails, and so this test, when they are missing).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: tests/deploy/helm.sh DUET_BIN SOURCE_DIR WORK_DIR" >&2
  exit 2
fi
duet=$1 src=$2 work=$3
chart="$src/deploy/helm/duet"
kube=1.34.0   # the version the tests pin everywhere
oldest=1.27.0 # the chart's kubeVersion floor

fail() {
  echo "FAILED: $*"
  exit 1
}

bin=$(bash "$src/scripts/deploy-tools.sh" bin) || fail "the deploy tools are missing (see above)"
helm="$bin/helm"
validator="$bin/kubernetes-validate"
# The deploy-tools virtualenv has PyYAML (a kubernetes-validate dependency).
py="$(dirname "$(readlink -f "$bin/check-jsonschema")")/python"
"$py" -c 'import yaml' 2>/dev/null || fail "$py has no PyYAML module (run scripts/deploy-tools.sh fetch again)"
[ -x "$duet" ] || fail "DUET_BIN '$duet' is not an executable (the flags the chart passes are checked against its --help)"
[ -f "$chart/Chart.yaml" ] || fail "no chart at $chart"

rm -rf "$work" && mkdir -p "$work"
# helm keeps no state outside the scratch folder, and never goes online (no dependencies).
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"

# Every optional part on: the third render.
cat >"$work/all-enabled.yaml" <<'EOF'
adminToken: test-token
kafka:
  badTopic: beacons.rejected
train:
  enabled: true
backfill:
  enabled: true
  claimName: duet-backfill
  shards: 3
  ttlSecondsAfterFinished: 86400
ingress:
  enabled: true
  host: duet.example.com
  tls:
    - secretName: duet-tls
      hosts: [duet.example.com]
metrics:
  serviceMonitor:
    enabled: true
collector:
  autoscaling:
    enabled: false
  replicas: 3
api:
  pdb:
    enabled: true
EOF

# kubernetes-validate FILE VERSION: passes only with rc 0 and no WARN or ERROR line (an unknown
# kind is only a warning).
validate() {
  local file=$1 version=$2 out rc=0
  out=$("$validator" --strict --quiet -k "$version" - <"$file" 2>&1) || rc=$?
  if [ $rc -ne 0 ] || grep -qE '^(WARN|ERROR)' <<<"$out"; then
    echo "$out" | head -20
    return 1
  fi
}

# The semantic checks (python, PyYAML): check RENDER VALUES_FILE... -> rc 0 and a summary line.
cat >"$work/check.py" <<'PYEOF'
"""Semantic checks of a rendered duet chart; prints one summary line, exits 1 on any problem."""
import functools
import re
import subprocess
import sys

import yaml

render, duet, *values_files = sys.argv[1:]
problems = []


def problem(msg):
    problems.append(msg)


def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


values = {}
for f in values_files:
    with open(f) as fh:
        values = merge(values, yaml.safe_load(fh) or {})
with open(render) as fh:
    docs = [d for d in yaml.safe_load_all(fh) if d]

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)


def component(obj):
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def one(kind, comp):
    found = [d for d in by_kind.get(kind, []) if component(d) == comp]
    if len(found) != 1:
        problem(f"expected one {kind} of component {comp}, found {len(found)}")
        return None
    return found[0]


@functools.lru_cache(maxsize=None)
def duet_help(command):
    """(flags, env names) that `duet COMMAND --help` lists."""
    r = subprocess.run([duet, *command.split(), "--help"], capture_output=True, text=True)
    text = r.stdout + r.stderr
    if r.returncode != 0 or "usage:" not in text:
        return None
    return set(re.findall(r"^\s+--([a-z0-9-]+)", text, re.M)), set(re.findall(r"\[env (DUET_[A-Z0-9_]+)\]", text))


# Labels on every object.
for d in docs:
    labels = d["metadata"].get("labels", {})
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
                "app.kubernetes.io/version", "app.kubernetes.io/component", "helm.sh/chart"):
        if key not in labels:
            problem(f"{d['kind']}/{d['metadata']['name']}: label {key} missing")

configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind.get("ConfigMap", [])}
secrets = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind.get("Secret", [])}
existing_secret = values.get("existingSecret") or ""
if existing_secret:
    if secrets:
        problem(f"existingSecret is set, yet the chart renders Secrets {sorted(secrets)}")
else:
    for name, data in secrets.items():
        if set(data) != {"store-uri", "raw-uri", "admin-token"}:
            problem(f"Secret {name}: keys {sorted(data)}, expected store-uri, raw-uri, admin-token")
secret_names = set(secrets) | ({existing_secret} if existing_secret else set())
image = values["image"]["repository"] + (
    "@" + values["image"]["digest"] if values["image"].get("digest") else ":" + (values["image"].get("tag") or "0.1.0"))
kafka = values["kafka"]
source = f"kafka://{kafka['brokers']}/{kafka['topic']}"


def pods():
    """(where, component, workload, pod spec, pod metadata) of every Deployment, CronJob and Job."""
    for d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
        yield f"{d['kind']}/{d['metadata']['name']}", component(d), d, d["spec"]["template"]["spec"], d["spec"]["template"]["metadata"]
    for d in by_kind.get("CronJob", []):
        t = d["spec"]["jobTemplate"]["spec"]["template"]
        yield f"CronJob/{d['metadata']['name']}", component(d), d, t["spec"], t["metadata"]


def flag(args, name):
    """The value of --name (as '--name V' or '--name=V'), or None."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def secret_env(where, c, name, key):
    e = env_of(c).get(name)
    ref = (e or {}).get("valueFrom", {}).get("secretKeyRef", {})
    if ref.get("key") != key or ref.get("name") not in secret_names:
        problem(f"{where}: env {name} must come from the Secret's key {key}, found {e}")


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def check_probe(where, c, kind, path):
    probe = c.get(kind)
    get = (probe or {}).get("httpGet", {})
    if get.get("path") != path or port_number(c, get.get("port")) != 8080:
        problem(f"{where}: {kind} must be httpGet {path} on port 8080, found {probe}")


commands = {"collector": "collect", "stream": "stream", "archiver": "archive", "api": "serve",
            "batch": "batch", "train": "train", "backfill": "import"}

for where, comp, workload, spec, meta in pods():
    if "mongodb://" in yaml.safe_dump(spec):
        problem(f"{where}: a mongodb:// URI in the pod spec (URIs with credentials belong in the Secret)")
    psc = spec.get("securityContext", {})
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(f"{where}: pod seccompProfile must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problem(f"{where}: automountServiceAccountToken must be false")
    if spec.get("enableServiceLinks") is not False:
        problem(f"{where}: enableServiceLinks must be false (service links set DUET_* variables)")
    tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    containers = spec.get("initContainers", []) + spec["containers"]
    for c in containers:
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        eff = {**psc, **sc}
        if eff.get("runAsNonRoot") is not True or eff.get("runAsUser") != 10001:
            problem(f"{cw}: must run as non-root user 10001, found runAsNonRoot={eff.get('runAsNonRoot')} runAsUser={eff.get('runAsUser')}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problem(f"{cw}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(f"{cw}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            problem(f"{cw}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []) or sc.get("capabilities", {}).get("add"):
            problem(f"{cw}: capabilities must drop ALL and add none")
        if eff.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problem(f"{cw}: seccompProfile must be RuntimeDefault")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(part, {}):
                    problem(f"{cw}: resources.{part}.{r} missing")
        if not any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in c.get("volumeMounts", [])):
            problem(f"{cw}: no emptyDir mounted at /tmp")
        if c.get("image") != image:
            problem(f"{cw}: image {c.get('image')}, expected {image}")
        if c.get("command"):
            problem(f"{cw}: sets command (the image's ENTRYPOINT is duet; use args)")
        args = [str(a) for a in c.get("args", [])]
        if not args or args[0] != commands.get(comp):
            problem(f"{cw}: args must start with '{commands.get(comp)}', found {args}")
            continue
        # Every flag and DUET_* variable must be one DUET_BIN's command knows.
        known = duet_help(args[0])
        if known is None:
            problem(f"{cw}: '{duet} {args[0]} --help' fails: not a command of this duet")
            continue
        flags, envs = known
        for a in args[1:]:
            if a.startswith("--") and a[2:].split("=", 1)[0] not in flags:
                problem(f"{cw}: duet {args[0]} has no option {a.split('=', 1)[0]}")
        names = [e["name"] for e in c.get("env", [])]
        for ref in c.get("envFrom", []):
            cm = ref.get("configMapRef", {}).get("name")
            if cm not in configmaps:
                problem(f"{cw}: envFrom ConfigMap {cm} is not rendered")
            names += list(configmaps.get(cm, {}))
        for n in names:
            if n.startswith("DUET_") and n not in envs:
                problem(f"{cw}: duet {args[0]} reads no variable {n}")
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] not in secret_names:
                problem(f"{cw}: env {e['name']} refers to Secret {ref['name']}, which is neither rendered nor existingSecret")

        if workload["kind"] == "Deployment":
            if not any(p.get("containerPort") == 8080 for p in c.get("ports", [])):
                problem(f"{cw}: no containerPort 8080")
            check_probe(cw, c, "livenessProbe", "/healthz")
            check_probe(cw, c, "readinessProbe", "/readyz")
            check_probe(cw, c, "startupProbe", "/healthz")
            ann = meta.get("annotations", {})
            if not re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))):
                problem(f"{where}: pod annotation checksum/config missing")
            if values["metrics"]["podAnnotations"] and (
                    ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "8080"
                    or ann.get("prometheus.io/path") != "/metrics"):
                problem(f"{where}: Prometheus scrape annotations missing or wrong: {ann}")

        if comp == "collector":
            if flag(args, "--brokers") != kafka["brokers"] or flag(args, "--topic") != kafka["topic"]:
                problem(f"{cw}: expected --brokers {kafka['brokers']} --topic {kafka['topic']}: {args}")
        if comp in ("stream", "archiver"):
            if flag(args, "--source") != source or not (flag(args, "--source") or "").startswith("kafka://"):
                problem(f"{cw}: --source must be {source}: {args}")
            if not flag(args, "--group"):
                problem(f"{cw}: --group missing")
            replicas = workload["spec"].get("replicas", 1)
            if replicas > kafka["partitions"]:
                problem(f"{where}: {replicas} replicas > kafka.partitions {kafka['partitions']}")
            ru = workload["spec"].get("strategy", {}).get("rollingUpdate", {})
            if workload["spec"].get("strategy", {}).get("type") != "RollingUpdate" or str(ru.get("maxSurge")) not in ("0", "0%"):
                problem(f"{where}: needs a RollingUpdate with maxSurge 0 (never more consumers than replicas)")
            if comp == "stream":
                secret_env(cw, c, "DUET_STORE", "store-uri")
                if spec.get("terminationGracePeriodSeconds", 30) < 120:
                    problem(f"{where}: terminationGracePeriodSeconds must be >= 120")
            else:
                secret_env(cw, c, "DUET_OUT", "raw-uri")
        if comp == "api":
            if not flag(args, "--workers"):
                problem(f"{cw}: --workers missing")
            secret_env(cw, c, "DUET_STORE", "store-uri")
            secret_env(cw, c, "DUET_ADMIN_TOKEN", "admin-token")
        if comp in ("batch", "train"):
            secret_env(cw, c, "DUET_INPUT", "raw-uri")
            secret_env(cw, c, "DUET_STORE", "store-uri")
        if comp == "backfill":
            shards = str(values["backfill"]["shards"])
            want = ["import", "--input", "/backfill", "--shards", shards, "--shard-index=$(JOB_COMPLETION_INDEX)"]
            if args[:6] != want:
                problem(f"{cw}: args {args}, expected {want}")
            if "JOB_COMPLETION_INDEX" not in env_of(c):
                problem(f"{cw}: JOB_COMPLETION_INDEX is not declared in env")
            secret_env(cw, c, "DUET_OUT", "raw-uri")
            mounts = {m["name"]: m for m in c.get("volumeMounts", []) if m["mountPath"] == "/backfill"}
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            ok = any(m.get("readOnly") and vols.get(n, {}).get("persistentVolumeClaim", {}).get("claimName")
                     == values["backfill"]["claimName"] for n, m in mounts.items())
            if not ok:
                problem(f"{cw}: claim {values['backfill']['claimName']} is not mounted read-only at /backfill")

# The roles.
deployments = {component(d): d for d in by_kind.get("Deployment", [])}
if sorted(deployments) != ["api", "archiver", "collector", "stream"]:
    problem(f"Deployments: {sorted(deployments)}, expected api, archiver, collector, stream")
for comp in ("collector", "api"):
    d = deployments.get(comp)
    if values[comp]["autoscaling"]["enabled"]:
        hpa = one("HorizontalPodAutoscaler", comp)
        if hpa and (hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"]["scaleTargetRef"]["name"] != d["metadata"]["name"]
                    or hpa["spec"]["metrics"][0]["resource"]["name"] != "cpu"):
            problem(f"HPA {comp}: must be autoscaling/v2 on CPU for Deployment {d['metadata']['name']}")
        if d and "replicas" in d["spec"]:
            problem(f"Deployment {comp}: sets replicas while an HPA scales it")
    if values[comp]["pdb"]["enabled"]:
        pdb = one("PodDisruptionBudget", comp)
        if pdb and pdb["apiVersion"] != "policy/v1":
            problem(f"PDB {comp}: must be policy/v1")
    if d:
        svc = one("Service", comp)
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        if svc and (svc["spec"].get("type", "ClusterIP") != "ClusterIP"
                    or any(pod_labels.get(k) != v for k, v in svc["spec"]["selector"].items())
                    or svc["spec"]["ports"][0]["port"] != values[comp]["service"]["port"]
                    or port_number(d["spec"]["template"]["spec"]["containers"][0], svc["spec"]["ports"][0]["targetPort"]) != 8080):
            problem(f"Service {comp}: must be ClusterIP port {values[comp]['service']['port']} -> the {comp} pods' 8080")
stream = deployments.get("stream")
if stream and stream["spec"].get("replicas", 1) > kafka["partitions"]:
    problem("stream replicas > kafka.partitions")

cron = {component(d): d for d in by_kind.get("CronJob", [])}
want_cron = ["batch"] + (["train"] if values["train"]["enabled"] else [])
if sorted(cron) != sorted(want_cron):
    problem(f"CronJobs: {sorted(cron)}, expected {want_cron}")
for comp, d in cron.items():
    s = d["spec"]
    if comp == "batch" and s["schedule"] != "*/30 * * * *":
        problem(f"CronJob batch: schedule {s['schedule']!r}, expected '*/30 * * * *'")
    if s.get("concurrencyPolicy") != "Forbid":
        problem(f"CronJob {comp}: concurrencyPolicy must be Forbid")
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if not isinstance(s.get(key), int):
            problem(f"CronJob {comp}: {key} missing")
    if not isinstance(s["jobTemplate"]["spec"].get("backoffLimit"), int):
        problem(f"CronJob {comp}: backoffLimit missing")

jobs = by_kind.get("Job", [])
if values["backfill"]["enabled"]:
    j = one("Job", "backfill")
    n = values["backfill"]["shards"]
    if j and not (j["spec"].get("completionMode") == "Indexed" and j["spec"].get("completions") == n
                  and j["spec"].get("parallelism") == n):
        problem(f"Job backfill: must be Indexed with completions = parallelism = {n}")
elif jobs:
    problem("backfill is disabled, yet a Job is rendered")

# Ingress: the longest matching path over every Ingress decides, as ingress-nginx does.
ingresses = by_kind.get("Ingress", [])
if values["ingress"]["enabled"] != bool(ingresses):
    problem(f"ingress.enabled is {values['ingress']['enabled']}, {len(ingresses)} Ingresses rendered")
services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
rules = []
for ing in ingresses:
    ann = ing["metadata"].get("annotations", {})
    if ing["spec"].get("ingressClassName") != "nginx":
        problem(f"Ingress {ing['metadata']['name']}: ingressClassName must be nginx")
    if any("snippet" in k for k in ann):
        problem(f"Ingress {ing['metadata']['name']}: snippet annotations are refused by default in ingress-nginx")
    for rule in ing["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            svc = p["backend"]["service"]
            if svc["name"] not in services or svc["port"].get("name") not in [x["name"] for x in services[svc["name"]]["spec"]["ports"]]:
                problem(f"Ingress {ing['metadata']['name']}: backend {svc} is not a rendered Service port")
            rules.append((p["path"], p["pathType"], svc["name"], ann))


def route(path):
    best = None
    for p, kind, svc, ann in rules:
        if kind == "Exact":
            hit = path == p
        else:
            parts, have = [x for x in p.split("/") if x], [x for x in path.split("/") if x]
            hit = have[:len(parts)] == parts
        if hit and (best is None or len(p) > len(best[0]) or (len(p) == len(best[0]) and kind == "Exact")):
            best = (p, kind, svc, ann)
    return best


def restricted(ann):
    deny = ann.get("nginx.ingress.kubernetes.io/denylist-source-range", "")
    allow = ann.get("nginx.ingress.kubernetes.io/whitelist-source-range", "") or ann.get(
        "nginx.ingress.kubernetes.io/allowlist-source-range", "")
    return "0.0.0.0/0" in deny.split(",") or (allow and "0.0.0.0/0" not in allow.split(","))


if ingresses:
    names = {c: d["metadata"]["name"] for c, d in deployments.items()}
    for path, comp in (("/v1/beacons", "collector"), ("/", "api"), ("/v1/experiments", "api"), ("/v1/predict", "api")):
        r = route(path)
        if not r or not r[2].endswith("-" + comp) or restricted(r[3]):
            problem(f"Ingress: {path} must reach the {comp} Service unrestricted, routed as {r and r[:3]}")
        elif "nginx.ingress.kubernetes.io/proxy-body-size" not in r[3]:
            problem(f"Ingress: {path} without nginx.ingress.kubernetes.io/proxy-body-size")
    for path in ("/metrics", "/metrics/", "/v1/jobs", "/v1/jobs/7", "/admin", "/admin/reload"):
        r = route(path)
        if r and not restricted(r[3]):
            problem(f"Ingress: {path} is public (routed by {r[:3]})")

if by_kind.get("ServiceMonitor"):
    problem("a ServiceMonitor is rendered although the cluster has no monitoring.coreos.com/v1")

if problems:
    print("\n".join(f"  {p}" for p in problems))
    sys.exit(1)
print(f"{len(docs)} objects: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_kind.items())))
PYEOF

check() { "$py" "$work/check.py" "$@"; }

start=$SECONDS
echo "helm chart test: $("$helm" version --short), $("$validator" --version 2>&1 | head -1)"

# 1. helm lint --strict.
for vf in "" values-production.yaml; do
  args=(lint --strict --kube-version "$kube" "$chart")
  [ -n "$vf" ] && args+=(-f "$chart/$vf")
  out=$("$helm" "${args[@]}" 2>&1) || { echo "$out"; fail "helm lint --strict ${vf:-(default values)}"; }
  echo "ok   helm lint --strict ${vf:-default values}"
done

# 2 and 3. Renders: validated at $kube and $oldest, then the semantic checks.
declare -A overlay=([default]="" [production]="$chart/values-production.yaml" [all-enabled]="$work/all-enabled.yaml")
for name in default production all-enabled; do
  for version in "$kube" "$oldest"; do
    args=(template duet "$chart" --namespace duet --kube-version "$version")
    [ -n "${overlay[$name]}" ] && args+=(-f "${overlay[$name]}")
    out="$work/$name-$version.yaml"
    "$helm" "${args[@]}" >"$out" 2>"$work/helm.err" || { cat "$work/helm.err"; fail "helm template ($name, $version)"; }
    validate "$out" "$version" || fail "kubernetes-validate --strict -k $version rejects the $name render"
  done
  values=("$chart/values.yaml")
  [ -n "${overlay[$name]}" ] && values+=("${overlay[$name]}")
  summary=$(check "$work/$name-$kube.yaml" "$duet" "${values[@]}") ||
    { echo "$summary"; fail "semantic checks of the $name render"; }
  echo "ok   $name: valid for Kubernetes $kube and $oldest; $summary"
done

# 4. Negative checks: each validator rejects what it must.
expect_template_failure() { # WHAT MESSAGE HELM_ARGS...
  local what=$1 message=$2 err
  shift 2
  if err=$("$helm" template duet "$chart" --kube-version "$kube" "$@" 2>&1 >/dev/null); then
    fail "helm template accepts $what"
  fi
  grep -qF -- "$message" <<<"$err" || { echo "$err"; fail "$what: helm template fails without saying '$message'"; }
  echo "ok   helm template refuses $what"
}
expect_template_failure "stream.replicas 5 > kafka.partitions 4" \
  "stream.replicas (5) must not exceed kafka.partitions (4)" --set stream.replicas=5
expect_template_failure "archiver.replicas 3 > kafka.partitions 2" \
  "archiver.replicas (3) must not exceed kafka.partitions (2)" --set kafka.partitions=2,stream.replicas=2,archiver.replicas=3
expect_template_failure "stream.terminationGracePeriodSeconds 60" \
  "stream.terminationGracePeriodSeconds (60) must be at least 120" --set stream.terminationGracePeriodSeconds=60
expect_template_failure "backfill without a claim" "backfill.claimName is required" --set backfill.enabled=true
expect_template_failure "a config key that is not DUET_*" '"THREADS" is not a DUET_* variable' --set stream.config.THREADS=2
expect_template_failure "Kubernetes 1.26 (kubeVersion >=1.27.0-0)" "kubeVersion" --kube-version 1.26.0

# helm lint --strict on a copy with a template rendering invalid YAML. (Lint reports a template's
# `fail` only as INFO: the chart's own refusals are proven with helm template above.)
rm -rf "$work/chart-copy" && cp -r "$chart" "$work/chart-copy"
sed -i 's/^  type: ClusterIP$/  type: ClusterIP: broken/' "$work/chart-copy/templates/services.yaml"
cmp -s "$chart/templates/services.yaml" "$work/chart-copy/templates/services.yaml" &&
  fail "no 'type: ClusterIP' in templates/services.yaml to break"
if "$helm" lint --strict --kube-version "$kube" "$work/chart-copy" >/dev/null 2>&1; then
  fail "helm lint --strict accepts a template rendering invalid YAML"
fi
echo "ok   helm lint --strict refuses a copy whose template renders invalid YAML"

# kubernetes-validate: a wrong type, an unknown field, an unknown kind (WARN) are rejected.
base="$work/default-$kube.yaml"
grep -q '^  replicas: 2$' "$base" || fail "no 'replicas: 2' in the default render to break"
sed '0,/^  replicas: 2$/s//  replicas: "two"/' "$base" >"$work/broken-type.yaml"
sed '0,/^  revisionHistoryLimit: 5$/s//  revisionHistoryLimits: 5/' "$base" >"$work/broken-field.yaml"
cmp -s "$base" "$work/broken-field.yaml" && fail "no revisionHistoryLimit in the default render to break"
"$helm" template duet "$chart" --kube-version "$kube" --api-versions monitoring.coreos.com/v1 \
  --set metrics.serviceMonitor.enabled=true >"$work/servicemonitor.yaml"
grep -q '^kind: ServiceMonitor$' "$work/servicemonitor.yaml" ||
  fail "metrics.serviceMonitor.enabled renders no ServiceMonitor where monitoring.coreos.com/v1 exists"
for broken in broken-type broken-field servicemonitor; do
  if validate "$work/$broken.yaml" "$kube" >/dev/null; then
    fail "kubernetes-validate accepts $broken.yaml"
  fi
done
echo "ok   kubernetes-validate rejects replicas \"two\", an unknown field, an unknown kind (ServiceMonitor: WARN)"
echo "ok   the ServiceMonitor renders only where monitoring.coreos.com/v1 exists"

# The semantic checks: each mutated copy of the all-enabled render must fail them, saying why
# (lines: SED EXPRESSION|EXPECTED MESSAGE).
all="$work/all-enabled-$kube.yaml"
mutants=0
while IFS='|' read -r expr expect; do
  sed "$expr" "$all" >"$work/mutant.yaml"
  cmp -s "$all" "$work/mutant.yaml" && fail "mutation '$expr' changes nothing in the all-enabled render"
  if out=$(check "$work/mutant.yaml" "$duet" "$chart/values.yaml" "$work/all-enabled.yaml"); then
    fail "the semantic checks accept the all-enabled render mutated by '$expr'"
  fi
  grep -qF -- "$expect" <<<"$out" ||
    { echo "$out"; fail "mutation '$expr': the semantic checks fail without saying '$expect'"; }
  mutants=$((mutants + 1))
done <<'EOF'
s/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/|readOnlyRootFilesystem must be true
s/runAsUser: 10001/runAsUser: 0/|must run as non-root user 10001
s/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/|allowPrivilegeEscalation must be false
s/- ALL$/- NET_RAW/|capabilities must drop ALL
s/^              memory: 2Gi$/              memoryy: 2Gi/|resources.limits.memory missing
s/mountPath: \/tmp/mountPath: \/scratch/|no emptyDir mounted at /tmp
s#path: /readyz#path: /healthz#|readinessProbe must be httpGet /readyz on port 8080
s/containerPort: 8080/containerPort: 9090/|livenessProbe must be httpGet /healthz on port 8080
s#schedule: "\*/30 \* \* \* \*"#schedule: "0 * * * *"#|expected '*/30 * * * *'
s/concurrencyPolicy: Forbid/concurrencyPolicy: Allow/|concurrencyPolicy must be Forbid
s/maxSurge: 0$/maxSurge: 1/|needs a RollingUpdate with maxSurge 0
s/^  replicas: 2$/  replicas: 9/|9 replicas > kafka.partitions 4
s#"kafka://#"file://#|--source must be kafka://
s/^            - stream$/            - straem/|args must start with 'stream'
s/^            - --group$/            - --consumer-group/|duet stream has no option --consumer-group
s/name: DUET_STORE$/name: DUET_STORAGE/|duet serve reads no variable DUET_STORAGE
s#^            - --workers$#            - --store=mongodb://duet:secret@mongodb/duet\n            - --workers#|a mongodb:// URI in the pod spec
s/completionMode: Indexed/completionMode: NonIndexed/|must be Indexed with completions = parallelism = 3
s#path: /v1/beacons#path: /v1/beacon#|/v1/beacons must reach the collector Service
s/denylist-source-range/allowlist-source-rang/|Ingress: /metrics is public
s#apiVersion: autoscaling/v2#apiVersion: autoscaling/v1#|must be autoscaling/v2 on CPU
EOF
echo "ok   the semantic checks reject $mutants mutated copies, each for its reason"

# 5. Summary.
echo "PASSED: helm lint (2 value sets), 3 renders valid for Kubernetes $kube and $oldest with semantic checks, 6 refused values, a broken chart copy refused by lint, 3 refused renders, $mutants mutants, in $((SECONDS - start)) s"
