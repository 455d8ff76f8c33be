#!/usr/bin/env bash
# src/stats against an independent scipy/statsmodels reference (reference_check.py) on random
# per-visitor data. Usage: run_reference.sh STATS_CLI|BUILD_DIR
# The Python environment (numpy, scipy, statsmodels from PyPI) is created once and cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/duet/venv-stats-<hash of the pinned versions>. If PyPI cannot be
# reached the test fails (exit 2) as an infrastructure failure: it is never skipped as a pass.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arg=${1:?usage: run_reference.sh STATS_CLI|BUILD_DIR}
if [[ -d $arg ]]; then cli=$arg/src/stats/stats_cli; else cli=$arg; fi
[[ -x $cli ]] || { echo "stats.reference: $cli is not an executable (build target stats_cli)" >&2; exit 1; }

requirements=(numpy==1.26.4 scipy==1.13.1 statsmodels==0.14.2)
key=$(printf '%s\n' "$(python3 --version 2>&1)" "${requirements[@]}" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/duet
venv=$cache/venv-stats-$key
mkdir -p "$cache"

# One creator at a time; a venv counts only once its marker is written, so an interrupted
# creation is redone instead of used half-installed.
exec 9>"$cache/venv-stats.lock"
flock 9
if [[ ! -f $venv/.complete ]]; then
  rm -rf "$venv"
  start=$(date +%s)
  echo "stats.reference: creating $venv (${requirements[*]})"
  python3 -m venv "$venv"
  ok=0
  for attempt in 1 2 3; do
    if "$venv/bin/python" -m pip install --quiet --retries 2 --timeout 60 "${requirements[@]}"; then
      ok=1
      break
    fi
    if ((attempt < 3)); then
      delay=$((attempt * attempt * 10))
      echo "stats.reference: pip install attempt $attempt failed; retrying in ${delay}s" >&2
      sleep "$delay"
    fi
  done
  if ((!ok)); then
    rm -rf "$venv"
    echo "stats.reference: INFRASTRUCTURE FAILURE: could not install ${requirements[*]} from PyPI" \
         "after 3 attempts (network or index unreachable). This is not a test pass." >&2
    exit 2
  fi
  touch "$venv/.complete"
  echo "stats.reference: venv ready in $(($(date +%s) - start))s"
fi
flock -u 9

"$venv/bin/python" "$here/reference_check.py" --cli "$cli"
