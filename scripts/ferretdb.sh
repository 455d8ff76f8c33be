#!/usr/bin/env bash
# A real MongoDB-wire server for tests and development: FerretDB v1.24.2 with its SQLite backend,
# on 127.0.0.1. No mock: built from the Go module proxy (scripts/ferretdb/go.mod pins it), cached
# in $DUET_FERRETDB_HOME (default ~/.cache/duet/ferretdb) and Go's module cache.
#
#   scripts/ferretdb.sh fetch           build the server (idempotent; retried)
#   scripts/ferretdb.sh start DIR       start a server on a free port with its data in DIR, wait
#                                       until it accepts connections; prints mongodb://HOST:PORT
#                                       (also in DIR/uri)
#   scripts/ferretdb.sh stop DIR        stop it (SIGTERM, then SIGKILL after 10 s)
#   scripts/ferretdb.sh restart DIR     start the stopped server of DIR again, same port and data
#
# Why not plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: built so by Go
# >= 1.24, that binary panics at start ("Invalid build/version/version.txt"): the module zip
# lacks build/version/version.txt, which FerretDB's own build writes (`task gen-version`), and
# newer Go records FerretDB as the main module, which makes FerretDB insist on it. This script
# builds the same module source with that one file written ("v1.24.2").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
fetch_name="ferretdb.sh"
# shellcheck source=scripts/fetch-lib.sh
source "$here/fetch-lib.sh"
home=${DUET_FERRETDB_HOME:-$HOME/.cache/duet/ferretdb}
version=v1.24.2
bin="$home/bin/ferretdb-$version"

# shellcheck source=scripts/server-lib.sh
source "$here/server-lib.sh"

fetch() {
  if [ -x "$bin" ]; then return 0; fi
  command -v go >/dev/null || die "go not found: install Go >= 1.24 (https://go.dev/dl, or golang-go from Debian backports)"
  local src="$home/src"
  rm -rf "$src" && mkdir -p "$src" "$home/bin"
  cp "$here/ferretdb/go.mod" "$here/ferretdb/go.sum" "$src/"
  (cd "$src" && retry go mod download "github.com/FerretDB/FerretDB@$version")
  local mod
  mod=$(cd "$src" && go list -m -f '{{.Dir}}' "github.com/FerretDB/FerretDB")
  [ -d "$mod" ] || die "module github.com/FerretDB/FerretDB@$version not in the module cache"
  cp -r "$mod" "$src/FerretDB" && chmod -R u+w "$src/FerretDB"
  echo "$version" >"$src/FerretDB/build/version/version.txt"
  (cd "$src" && go mod edit -replace "github.com/FerretDB/FerretDB=./FerretDB" &&
    retry go build -o "$bin.tmp" github.com/FerretDB/FerretDB/cmd/ferretdb)
  mv "$bin.tmp" "$bin"
  "$bin" --version >/dev/null 2>&1 || die "the built server does not start: $bin --version"
  echo "ferretdb.sh: built $bin" >&2
}

launch() {
  local dir=$1 port
  port=$(cat "$dir/port")
  # Its HTTP debug handler (metrics, pprof) gets a free port too: the default 8088 would clash
  # between servers.
  FERRETDB_TELEMETRY=disable nohup "$bin" --listen-addr="127.0.0.1:$port" --handler=sqlite \
    --sqlite-url="file:$dir/data/" --state-dir="$dir/state" --telemetry=disable \
    --debug-addr="127.0.0.1:$(cat "$dir/debug_port")" \
    --log-level=warn >>"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null ||
      { tail -n 20 "$dir/server.log" >&2; die "the server exited during start-up (log: $dir/server.log)"; }
    # Ready = it accepts connections (FerretDB listens once its backend is open).
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      cat "$dir/uri"
      return 0
    fi
    sleep 0.2
  done
  die "the server did not accept connections within 60 s (log: $dir/server.log)"
}

start() {
  local dir=${1:?usage: ferretdb.sh start DIR}
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    die "a server is already running for $dir (pid $(cat "$dir/pid"))"
  fi
  rm -rf "$dir/data" "$dir/state" && mkdir -p "$dir/data" "$dir/state"
  free_port >"$dir/port"
  free_port >"$dir/debug_port"
  echo "mongodb://127.0.0.1:$(cat "$dir/port")" >"$dir/uri"
  launch "$dir"
}

restart() {
  local dir=${1:?usage: ferretdb.sh restart DIR}
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/port" ] || die "no server was started in $dir"
  launch "$dir"
}

stop() {
  stop_server "${1:?usage: ferretdb.sh stop DIR}" 10
}

case "${1:-}" in
  fetch) fetch ;;
  start) start "${2:-}" ;;
  restart) restart "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: ferretdb.sh fetch | start DIR | restart DIR | stop DIR" ;;
esac
