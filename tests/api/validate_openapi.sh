#!/usr/bin/env bash
# Validates src/serve/openapi.json against the OpenAPI 3.0 specification with
# openapi-spec-validator, installed from PyPI into a cached virtualenv
# (${XDG_CACHE_HOME:-$HOME/.cache}/duet/venv-openapi; $DUET_OPENAPI_VENV overrides).
#
#   tests/api/validate_openapi.sh [FILE [BASE_URL [views|model|jobs]]]   default FILE: src/serve/openapi.json
#
# With BASE_URL (a running `duet serve`), the live responses are validated against the document
# too (tests/api/validate_responses.py): the view routes (default), the model routes, or the job
# routes (with the admin token in $DUET_ADMIN_TOKEN).
#
# Exit 0 when valid, 1 when not (the validator says why), 2 when the validator cannot be
# installed: an infrastructure failure, not a test result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
file=${1:-$repo/src/serve/openapi.json}
venv=${DUET_OPENAPI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/duet/venv-openapi}
validator_version=0.9.0

die() { echo "validate_openapi.sh: $*" >&2; exit "${2:-1}"; }

[ -f "$file" ] || die "$file not found"

installed() {
  "$venv/bin/python" -c 'import importlib.metadata as m, sys
sys.exit(m.version("openapi-spec-validator") != sys.argv[1])' "$validator_version" 2>/dev/null
}

if ! installed; then
  command -v python3 >/dev/null || die "python3 not found" 2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" || die "cannot create a virtualenv at $venv (python3-venv missing?)" 2
  n=0
  until "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$validator_version" >&2; do
    n=$((n + 1))
    if [ $n -ge 3 ]; then
      rm -rf "$venv"
      die "pip install openapi-spec-validator failed 3 times: PyPI unreachable: infrastructure failure, not a test result" 2
    fi
    echo "validate_openapi.sh: pip install failed; retrying in $((n * 10)) s" >&2
    sleep $((n * 10))
  done
fi

# The document must be plain JSON too (the server embeds and serves it as is).
"$venv/bin/python" -c 'import json, sys; json.load(open(sys.argv[1]))' "$file" ||
  die "$file is not valid JSON"

if "$venv/bin/openapi-spec-validator" "$file"; then
  echo "validate_openapi.sh: 1 passed, 0 failed"
else
  echo "validate_openapi.sh: 0 passed, 1 failed" >&2
  exit 1
fi
if [ -n "${2:-}" ]; then
  "$venv/bin/python" "$here/validate_responses.py" "$file" "$2" "${3:-views}"
fi
