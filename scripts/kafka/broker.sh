#!/usr/bin/env bash
# broker.sh start|stop DIR PORT runs a single-node Apache Kafka (KRaft broker
# and controller in one JVM) for tests, from the jars fetch.sh put in
# .cache/kafka/libs (or $SLUICE_KAFKA_LIBS). Data, config and broker.log live
# under DIR; the broker listens on 127.0.0.1:PORT only, the controller on
# the next free port above it. start wipes DIR's data (every run begins with
# an empty cluster), waits until the broker answers and writes DIR/broker.pid;
# stop terminates it and waits. internal/kafkatest starts brokers the same
# way from Go (keep the two configurations in step).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR PORT" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
cmd=$1 dir=$2 port=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
libs=${SLUICE_KAFKA_LIBS:-$repo/.cache/kafka/libs}
pidfile=$dir/broker.pid
log=$dir/broker.log

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fail() {
	echo "broker.sh: $*" >&2
	if [[ -f $log ]]; then
		echo "--- last lines of $log:" >&2
		tail -n 40 "$log" >&2
	fi
	exit 1
}

stop() {
	alive || { rm -f "$pidfile"; return 0; }
	local pid
	pid=$(cat "$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 300); do # 30 s for a controlled shutdown
		kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
		sleep 0.1
	done
	echo "broker.sh: broker $pid did not stop within 30s, killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

start() {
	[[ $port =~ ^[0-9]+$ ]] || usage
	if alive; then
		listening "$port" || fail "pid $(cat "$pidfile") from $pidfile runs but 127.0.0.1:$port does not answer"
		echo "Kafka broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
		return 0
	fi
	[[ -d $libs ]] && compgen -G "$libs/kafka_*.jar" >/dev/null ||
		fail "no Kafka jars in $libs: run scripts/kafka/fetch.sh first"
	listening "$port" && fail "127.0.0.1:$port is already in use"
	local cport=$((port + 1))
	while listening "$cport"; do
		cport=$((cport + 1))
		((cport < port + 100)) || fail "no free controller port above $port"
	done

	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	pidfile=$dir/broker.pid log=$dir/broker.log
	rm -rf "$dir/data"
	cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# enforce retention every 0.5 s, not every 5 min: tests of records aging out
log.retention.check.interval.ms=500
PROPS
	cat >"$dir/log4j2.properties" <<'PROPS'
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=OUT
logger.clients.name=org.apache.kafka.clients
logger.clients.level=WARN
PROPS
	local jvm=(java -Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
		"-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$libs/*")
	local uuid # a Kafka cluster id: 16 random bytes, base64url without padding,
	uuid=-    # not starting with '-' (the tool would take it for an option)
	while [[ $uuid == -* ]]; do
		uuid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	done
	"${jvm[@]}" kafka.tools.StorageTool format -t "$uuid" -c "$dir/server.properties" --standalone >>"$log" 2>&1 ||
		fail "formatting the storage in $dir/data failed"
	nohup "${jvm[@]}" kafka.Kafka "$dir/server.properties" >>"$log" 2>&1 &
	echo $! >"$pidfile"

	for _ in $(seq 600); do # 60 s
		alive || fail "the broker exited during startup"
		if listening "$port" && grep -q "Kafka Server started" "$log"; then
			echo "Kafka broker running on 127.0.0.1:$port (pid $(cat "$pidfile"), log $log)"
			return 0
		fi
		sleep 0.1
	done
	stop
	fail "the broker did not answer on 127.0.0.1:$port within 60s"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
