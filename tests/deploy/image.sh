#!/usr/bin/env bash
# deploy.image: the Dockerfile, checked without a Docker engine.
#   1. hadolint reports nothing (not even a style note) — and does report a broken copy;
#   2. the runtime stage installs a package for every shared library the built `duet` loads
#      (ldd -> dpkg -S -> in the Depends closure of the stage's apt-get list), and a copy that
#      lacks librdkafka1 is caught;
#   3. the build stage installs a package for every system header `duet`'s objects include
#      (ninja's recorded dependencies -> dpkg -S), and a copy that lacks libxxhash-dev is caught;
#   4. the build stage's configuration (-DDUET_BUILD_TESTS=OFF) configures without GoogleTest
#      and Google Benchmark targets;
#   5. the image's facts: non-root numeric USER, ENTRYPOINT duet, HEALTHCHECK `duet probe`, the
#      ports and listen addresses; and `duet probe` against real processes of each role that
#      needs no server: serve, stream, jobs worker (status page), collect with no broker
#      (/healthz 200 but /readyz 503: shallow liveness, dependency-aware readiness).
set -euo pipefail
duet=$(readlink -f "$1")
src=$(readlink -f "$2")
work=$3
rm -rf "$work" && mkdir -p "$work"
bin=$(bash "$src/scripts/deploy-tools.sh" bin)
build=$(dirname "$(dirname "$(dirname "$duet")")")
for t in dpkg apt-cache ldd ninja cmake curl; do
  command -v "$t" >/dev/null || { echo "FAILED: $t is not installed (run scripts/install-deps.sh)"; exit 1; }
done
fail() { echo "FAILED: $*"; exit 1; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# ---------------------------------------------------------------- 1. hadolint
"$bin/hadolint" --no-color "$src/Dockerfile" || fail "hadolint reports the findings above"
sed 's/apt-get install -y --no-install-recommends/apt-get install -y/' "$src/Dockerfile" >"$work/Dockerfile.bad"
echo 'MAINTAINER someone' >>"$work/Dockerfile.bad"
if "$bin/hadolint" --no-color "$work/Dockerfile.bad" >"$work/hadolint.bad" 2>&1; then
  fail "hadolint accepted a Dockerfile with MAINTAINER and apt-get without --no-install-recommends"
fi
{ grep -q DL4000 "$work/hadolint.bad" && grep -q DL3015 "$work/hadolint.bad"; } ||
  fail "hadolint did not name DL4000 and DL3015: $(cat "$work/hadolint.bad")"
echo "image: hadolint $("$bin/hadolint" --version | awk '{print $NF}'): no findings (a broken copy: $(wc -l <"$work/hadolint.bad") findings)"

# ---------------------------------------------------------------- helpers
# stage_packages DOCKERFILE N: the packages of the apt-get install in the N-th FROM stage (1-based):
# the words after "apt-get install" up to the next "&&", options and comments left out.
stage_packages() {
  awk -v want="$2" '
    /^FROM / { stage++ }
    stage == want { line = $0; sub(/#.*/, "", line); sub(/\\$/, "", line); printf "%s ", line }
  ' "$1" | sed -n 's/.*apt-get install \([^&]*\)&&.*/\1/p' | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u
}
# closure PACKAGE...: the packages and everything they depend on (as apt would install them).
closure() {
  { printf '%s\n' "$@"
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "$@" 2>/dev/null | sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([^<][^ ]*\)$/\2/p'
  } | sed 's/:.*//' | sort -u
}
# owners FILE...: "package file" for every file: one dpkg -S for all (it also lists paths that
# merely contain a file's name: only exact ones count), then each file it did not find again
# under /usr and by its resolved path (usrmerge); "?" when no package has it.
owners() {
  local f p
  printf '%s\n' "$@" >"$work/owners.want"
  { dpkg -S "$@" 2>/dev/null || true; } | sed -n 's/^\([^:, ]*\)[^/]*\(\/.*\)$/\1 \2/p' |
    awk 'NR == FNR { want[$0] = 1; next } ($2 in want) && !(seen[$2]++)' "$work/owners.want" - \
      >"$work/owners.found"
  for f in "$@"; do
    awk -v f="$f" '$2 == f { found = 1 } END { exit !found }' "$work/owners.found" && continue
    p=$(dpkg -S "/usr$f" 2>/dev/null | head -1 | cut -d: -f1 || true)
    [ -z "$p" ] && p=$(dpkg -S "$(readlink -f "$f")" 2>/dev/null | head -1 | cut -d: -f1 || true)
    echo "${p:-?} $f"
  done
  cat "$work/owners.found"
}
# uncovered ALLOWED_FILE OWNERS_FILE: the owner lines whose package is not allowed.
uncovered() { awk 'NR == FNR { ok[$1] = 1; next } !($1 in ok)' "$1" "$2"; }

stage_count=$(grep -c '^FROM ' "$src/Dockerfile")
[ "$stage_count" = 3 ] || fail "expected 3 stages (web, build, final), found $stage_count"

# covered WHAT DROP FILES_LIST -- PACKAGE...: every file in FILES_LIST belongs to one of the
# PACKAGEs or to what they depend on; and without the package DROP, the check fails (it bites).
# Leaves the number of packages the files come from in $covered_packages.
covered() {
  local what=$1 drop=$2 files=$3
  shift 4
  local -a list
  mapfile -t list <"$files"
  owners "${list[@]}" >"$files.owners"
  closure "$@" >"$files.closure"
  missing=$(uncovered "$files.closure" "$files.owners")
  [ -z "$missing" ] || fail "$what installs no package for: $missing"
  closure "${@/$drop/}" >"$files.closure.bad"
  uncovered "$files.closure.bad" "$files.owners" | grep -q "^$drop " ||
    fail "the check did not notice $drop missing from $what"
  covered_packages=$(cut -d' ' -f1 "$files.owners" | sort -u | wc -l)
}

# ---------------------------------------------------------------- 2. runtime libraries
mapfile -t runtime < <(stage_packages "$src/Dockerfile" 3)
[ ${#runtime[@]} -ge 5 ] || fail "no apt-get install list found in the final stage"
ldd "$duet" | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }' | sort -u >"$work/libs"
[ "$(wc -l <"$work/libs")" -ge 10 ] || fail "ldd listed too few libraries: $(cat "$work/libs")"
covered "the final stage" librdkafka1 "$work/libs" -- "${runtime[@]}"
echo "image: $(wc -l <"$work/libs") shared libraries, from $covered_packages packages, all installed by the final stage's ${#runtime[@]} packages and their dependencies"

# ---------------------------------------------------------------- 3. build headers
mapfile -t buildpkgs < <(stage_packages "$src/Dockerfile" 2)
ninja -C "$build" -t deps 2>/dev/null |
  awk '/^[^ ].*: #deps/ { keep = ($1 ~ /CMakeFiles\/duet(_[a-z]+)?\.dir\//) && ($1 !~ /\/tests\//); next }
       keep && /^    \/usr\// { print $1 }' | sort -u >"$work/headers"
[ "$(wc -l <"$work/headers")" -ge 100 ] ||
  fail "ninja recorded only $(wc -l <"$work/headers") system headers for duet's objects (build $build)"
covered "the build stage" libxxhash-dev "$work/headers" -- "${buildpkgs[@]}"
echo "image: $(wc -l <"$work/headers") system headers, from $covered_packages packages, all installed by the build stage"

# ---------------------------------------------------------------- 4. the build stage's configuration
cmake -S "$src" -B "$work/image-build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUET_BUILD_TESTS=OFF \
  >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; fail "cmake -DDUET_BUILD_TESTS=OFF failed"; }
ninja -C "$work/image-build" -t targets all >"$work/targets"
grep -q '^duet:' "$work/targets" || fail "no duet target with -DDUET_BUILD_TESTS=OFF"
if grep -qE '_test:|micro_bench:' "$work/targets"; then fail "test targets with -DDUET_BUILD_TESTS=OFF"; fi
if grep -qE '^(GTest|benchmark)_DIR:' "$work/image-build/CMakeCache.txt"; then
  fail "GoogleTest or Google Benchmark searched with -DDUET_BUILD_TESTS=OFF (the build stage installs neither)"
fi
grep -qE '^GTest_DIR:' "$build/CMakeCache.txt" || fail "the check above looks for GTest_DIR, which the test build lacks"
echo "image: -DDUET_BUILD_TESTS=OFF configures the duet target alone"

# ---------------------------------------------------------------- 5. facts and probes
final=$(awk '/^FROM /{ s++ } s == 3' "$src/Dockerfile")
grep -qx 'USER 10001:10001' <<<"$final" || fail "the final stage does not run as USER 10001:10001"
grep -qx 'ENTRYPOINT \["duet"\]' <<<"$final" || fail "ENTRYPOINT is not [\"duet\"]"
grep -qE '^HEALTHCHECK .*CMD \["duet", "probe"\]$' <<<"$final" || fail "HEALTHCHECK is not duet probe"
{ grep -q 'DUET_LISTEN=0.0.0.0:8080' <<<"$final" && grep -q 'DUET_STATUS_LISTEN=0.0.0.0:8080' <<<"$final"; } ||
  fail "DUET_LISTEN / DUET_STATUS_LISTEN are not 0.0.0.0:8080"
grep -qx 'EXPOSE 8080' <<<"$final" || fail "EXPOSE 8080 missing"
"$duet" probe --help | grep -q 'http://127.0.0.1:8080/healthz' || fail "duet probe's default URL changed"

# url_of LOG: the URL a role logged (status.listen, serve's url, or collect's port).
url_of() {
  local log=$1 u=""
  for _ in $(seq 1 200); do
    [ -f "$log" ] || { sleep 0.05; continue; }  # not opened by its process yet
    u=$(sed -n 's/.*"event":"status.listen","url":"\([^"]*\)".*/\1/p' "$log" | head -1)
    [ -z "$u" ] && u=$(sed -n 's/.*"event":"serve.listening".*"url":"\([^"]*\)".*/\1/p' "$log" | head -1)
    [ -z "$u" ] && u=$(sed -n 's/.*"event":"collect.listening".*"port":\([0-9]*\).*/http:\/\/127.0.0.1:\1\//p' "$log" | head -1)
    [ -n "$u" ] && { echo "$u"; return 0; }
    sleep 0.05
  done
  fail "no URL in $log: $(tail -5 "$log")"
}
# probe_until URL EXPECT: duet probe exits EXPECT (0 or 1) within 20 s.
probe_until() {
  for _ in $(seq 1 100); do
    set +e; "$duet" probe --url "$1" 2>>"$work/probe.err"; rc=$?; set -e
    [ "$rc" = "$2" ] && return 0
    sleep 0.2
  done
  fail "duet probe --url $1 did not exit $2 within 20 s (last: $rc): $(tail -2 "$work/probe.err")"
}

"$duet" generate --out "$work/master" --beacons 5000 --hours 2 >/dev/null 2>&1
"$duet" batch --input "$work/master" --store "sqlite:$work/views.sqlite" >/dev/null 2>&1

"$duet" serve --store "sqlite:$work/views.sqlite" --listen 127.0.0.1:0 --workers 0 >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
"$duet" stream --source "$work/master" --store "sqlite:$work/stream.sqlite" --interval 1s \
  --status-listen 127.0.0.1:0 >/dev/null 2>"$work/stream.log" &
pids+=($!)
"$duet" jobs worker --store "sqlite:$work/jobs.sqlite" --input "$work/master" --schedule-batch 0 \
  --status-listen 127.0.0.1:0 >/dev/null 2>"$work/worker.log" &
pids+=($!)
"$duet" collect --brokers 127.0.0.1:1 --listen 127.0.0.1:0 --delivery-timeout 2s >/dev/null 2>"$work/collect.log" &
pids+=($!)
# The background processes open their output files themselves, maybe after this line: a file
# not there yet reads as no URL yet.
serve_url=""
for _ in $(seq 1 200); do
  serve_url=$(sed -n 's/^serve: dashboard at \(http[^ ]*\) .*/\1/p' "$work/serve.out" 2>/dev/null || true)
  [ -n "$serve_url" ] && break
  sleep 0.05
done
[ -n "$serve_url" ] || fail "duet serve printed no URL: $(tail -3 "$work/serve.log")"
stream_url=$(url_of "$work/stream.log")
worker_url=$(url_of "$work/worker.log")
collect_url=$(url_of "$work/collect.log")
for u in "$serve_url" "$stream_url" "$worker_url" "$collect_url"; do
  probe_until "${u}healthz" 0
done
for u in "$serve_url" "$stream_url" "$worker_url"; do
  probe_until "${u}readyz" 0
done
probe_until "${collect_url}readyz" 1
grep -q 'no Kafka broker of 127.0.0.1:1 answered' "$work/probe.err" ||
  fail "collect's /readyz did not name the broker: $(tail -2 "$work/probe.err")"
curl -sf "${stream_url}metrics" | grep -q '^duet_stream_lines_total 5000$' ||
  fail "the stream's /metrics does not count the 5000 lines: $(curl -s "${stream_url}metrics" | grep lines_total)"
# Nothing listens: exit 1 with the reason.
closed_port=$(sed -n 's|http://127.0.0.1:\([0-9]*\)/|\1|p' <<<"$collect_url")
kill "${pids[3]}"
wait "${pids[3]}" 2>/dev/null || true
set +e; "$duet" probe --url "http://127.0.0.1:$closed_port/healthz" 2>"$work/closed.err"; rc=$?; set -e
{ [ "$rc" = 1 ] && grep -q 'connect failed' "$work/closed.err"; } ||
  fail "duet probe on a closed port exited $rc: $(cat "$work/closed.err")"
echo "image: duet probe: serve, stream, jobs worker and collect answer /healthz; /readyz 200 except collect without a broker (503); a closed port exits 1"
echo "image: PASSED"
