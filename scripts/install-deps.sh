#!/usr/bin/env bash
# Installs everything Duet needs on Debian 12. Idempotent; fast when all is present.
# Every apt package the project uses is listed here and nowhere else.
# clang-14 + libclang-rt-14-dev: the libFuzzer targets (fuzz/); Debian's clang-14 ships without
# compiler-rt, which holds libFuzzer and clang's ASan/UBSan runtimes.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libsimdjson-dev libsqlite3-dev sqlite3 libzstd-dev zstd libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format clang-tidy
  clang-14 libclang-rt-14-dev
  python3 python3-venv time
  librdkafka-dev maven default-jre-headless kcat
  libboost-dev libboost-system-dev prometheus-cpp-dev curl wrk
  libmongoc-dev
  chromium
  libxgboost-dev
  nginx iproute2
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#APT_PACKAGES[@]} packages present" >&2
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
retry() {
  local n=0
  until "$@"; do
    n=$((n + 1))
    [ $n -ge 3 ] && { echo "install-deps: '$*' failed 3 times; check access to the Debian mirror" >&2; return 1; }
    echo "install-deps: retrying ($n) in $((n * 5)) s: $*" >&2
    sleep $((n * 5))
  done
}
retry $SUDO apt-get update -qq
retry $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done" >&2
