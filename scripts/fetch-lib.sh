# Shared by the scripts that download from the package registries (sourced): ferretdb.sh,
# deploy-tools.sh, bench/spark/setup.sh. The sourcing script sets `fetch_name`, its name in
# messages, first.

# die MESSAGE: prints "NAME: MESSAGE" on stderr and exits 1.
die() { echo "${fetch_name:?}: $*" >&2; exit 1; }

# retry CMD...: runs CMD up to 3 times, 10 s then 20 s apart; then dies, calling it an
# infrastructure failure (a registry that does not answer), not a test or benchmark result.
retry() {
  local n=0
  until "$@"; do
    n=$((n + 1))
    [ $n -ge 3 ] && die "'$*' failed 3 times: an infrastructure failure (package registry), not a test or benchmark result"
    echo "${fetch_name:?}: retrying in $((n * 10)) s: $*" >&2
    sleep $((n * 10))
  done
}
