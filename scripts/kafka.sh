#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1,
# for tests and development. No mock: the jars come from Maven Central (scripts/kafka/pom.xml,
# org.apache.kafka:kafka_2.13), cached in ~/.m2 and in $DUET_KAFKA_LIBS.
#
#   scripts/kafka.sh fetch              download the jars (idempotent; retried)
#   scripts/kafka.sh start DIR          format DIR, start a broker on free ports, wait until it
#                                       answers; prints its bootstrap address (also in DIR/bootstrap)
#   scripts/kafka.sh stop DIR           stop it (SIGTERM, then SIGKILL after 20 s)
#   scripts/kafka.sh restart DIR        start the stopped broker of DIR again, same ports and data
#
# Settings: DUET_KAFKA_PARTITIONS (default 4) partitions for auto-created topics;
# DUET_KAFKA_HEAP (default 512m).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
libs=${DUET_KAFKA_LIBS:-$HOME/.cache/duet/kafka-libs}
partitions=${DUET_KAFKA_PARTITIONS:-4}
heap=${DUET_KAFKA_HEAP:-512m}

# shellcheck source=scripts/server-lib.sh
source "$here/server-lib.sh"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found: run scripts/install-deps.sh"
  mkdir -p "$libs"
  local n=0
  until mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$libs" >&2; do
    n=$((n + 1))
    [ $n -ge 3 ] && die "could not fetch Kafka from Maven Central (3 attempts): an infrastructure failure, not a test result"
    echo "kafka.sh: retrying the download in $((n * 10)) s" >&2
    sleep $((n * 10))
  done
  ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1 || die "download finished but kafka_2.13 is missing from $libs"
  touch "$libs/.complete"
}


wait_ready() {
  local dir=$1 bootstrap=$2
  local deadline=$((SECONDS + 90))
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      tail -n 30 "$dir/broker.log" >&2 || true
      die "the broker exited during start-up (log: $dir/broker.log)"
    fi
    # Ready = it answers a metadata request with itself as a broker.
    if kcat -b "$bootstrap" -L -m 2 2>/dev/null | grep -q "1 brokers"; then
      return 0
    fi
    sleep 0.5
  done
  die "the broker did not answer within 90 s (log: $dir/broker.log)"
}

launch() {
  local dir=$1
  # shellcheck disable=SC2046
  nohup java -Xms128m -Xmx"$heap" -XX:+UseSerialGC -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 &
  echo $! >"$dir/pid"
  wait_ready "$dir" "$(cat "$dir/bootstrap")"
  cat "$dir/bootstrap"
}

start() {
  local dir=${1:?usage: kafka.sh start DIR}
  fetch
  command -v kcat >/dev/null || die "kcat not found: run scripts/install-deps.sh"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    die "a broker is already running for $dir (pid $(cat "$dir/pid"))"
  fi
  rm -rf "$dir/data"
  local port cport
  port=$(free_port)
  cport=$(free_port)
  while [ "$cport" = "$port" ]; do cport=$(free_port); done
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=$partitions
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests kill group members and want their partitions moved within seconds (default minimum: 6 s).
group.min.session.timeout.ms=1000
log.flush.interval.messages=9223372036854775807
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
EOF
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  local cluster
  cluster=$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [ -n "$cluster" ] || die "could not make a cluster id (java -cp $libs/* kafka.tools.StorageTool random-uuid)"
  java -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$libs/*" kafka.tools.StorageTool \
    format -t "$cluster" -c "$dir/server.properties" >>"$dir/broker.log" 2>&1 ||
    { tail -n 20 "$dir/broker.log" >&2; die "formatting the KRaft storage failed"; }
  launch "$dir"
}

restart() {
  local dir=${1:?usage: kafka.sh restart DIR}
  dir=$(cd "$dir" && pwd)
  [ -f "$dir/server.properties" ] || die "no broker was started in $dir"
  launch "$dir"
}

stop() {
  stop_server "${1:?usage: kafka.sh stop DIR}" 20
}

case "${1:-}" in
  fetch) fetch ;;
  start) start "${2:-}" ;;
  restart) restart "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: kafka.sh fetch | start DIR | restart DIR | stop DIR" ;;
esac
