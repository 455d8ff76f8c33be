#!/usr/bin/env bash
# Installs the dashboard's npm dependencies (web/package-lock.json) into web/node_modules:
# uPlot, whose dist files are built into `duet serve`, and playwright-core for the browser test.
#
#   scripts/web-deps.sh        npm ci in web/ unless web/node_modules is up to date
#
# Up to date means: the stamp web/node_modules/.duet-web-deps exists and is not older than
# package-lock.json (nor package.json). Then the script does nothing and returns at once, so it
# can run on every build. npm is tried 3 times with a growing pause; a failure then is reported
# as an infrastructure failure, not a build or test result.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
web="$here/../web"
stamp="$web/node_modules/.duet-web-deps"

die() { echo "web-deps.sh: $*" >&2; exit 1; }

up_to_date() {
  [ -f "$stamp" ] && [ ! "$web/package-lock.json" -nt "$stamp" ] &&
    [ ! "$web/package.json" -nt "$stamp" ] &&
    [ -f "$web/node_modules/uplot/dist/uPlot.iife.min.js" ]
}

up_to_date && exit 0

command -v npm >/dev/null || die "npm not found: install Node.js >= 20 with npm (Debian 12's nodejs 18 is too old for playwright-core)"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$major" -ge 20 ] || die "Node.js $(node --version 2>/dev/null || echo '(none)') found; >= 20 is needed (playwright-core)"
[ -f "$web/package-lock.json" ] || die "$web/package-lock.json is missing"

n=0
until (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >&2); do
  n=$((n + 1))
  if [ $n -ge 3 ]; then
    die "npm ci failed 3 times: npm registry unreachable: infrastructure failure, not a build or test result"
  fi
  echo "web-deps.sh: npm ci failed; retrying in $((n * 10)) s" >&2
  sleep $((n * 10))
done

[ -f "$web/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
  die "npm ci finished but uplot/dist/uPlot.iife.min.js is missing from $web/node_modules"
touch "$stamp"
