# Shared by scripts/kafka.sh and scripts/ferretdb.sh (sourced): the test servers' life cycle.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stop_server DIR SECONDS: SIGTERM the process whose pid is in DIR/pid, SIGKILL it if it is still
# there after SECONDS; forget the pid. Nothing to do when none runs.
stop_server() {
  local dir=$1 seconds=$2 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((seconds * 2))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}
