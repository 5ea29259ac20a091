#!/usr/bin/env bash
# ingest.sh measures the whole ingester under a real OTLP/gRPC load into a
# real Kafka broker: it starts a broker (scripts/kafka; or uses the one in
# SLUICE_KAFKA_BROKERS), `sluice ingest` on it, and bench/ingestload, which
# reports data points per second and the ingester's CPU-seconds per million
# data points. Everything listens on 127.0.0.1 and stops when the load is
# sent. Arguments go to ingestload (e.g. -datapoints 50000000 -connections
# 8; -k8s 1 -connections 16: the realistic corpus, one point per request).
# COMPRESSION and COMPRESSION_LEVEL set bus.kafka.compression and
# compression_level; SLUICE_BIN runs another build of sluice; GRPC_PORT and
# ADMIN_PORT move the ingester's ports (default 14317 and 19464); PROFILE=N
# takes an N-second CPU profile of the ingester once the load runs
# (written to .cache/bench/ingest-cpu.pb; `go tool pprof -top bin/sluice
# .cache/bench/ingest-cpu.pb`).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" ingestload

brokers=${SLUICE_KAFKA_BROKERS:-}
own_broker=
if [[ -z $brokers ]]; then
	brokers=127.0.0.1:$port
	own_broker=1
fi
prefix=bench-$(date +%s)-$$
grpc_port=${GRPC_PORT:-14317}
admin_port=${ADMIN_PORT:-19464}

cat >"$work/sluice.yaml" <<YAML
bus:
  kind: kafka
  topic_prefix: $prefix
  partitions: 6
  kafka:
    brokers: ["$brokers"]
    compression: ${COMPRESSION:-zstd}${COMPRESSION_LEVEL:+
    compression_level: $COMPRESSION_LEVEL}
ingest:
  grpc_listen: 127.0.0.1:$grpc_port
  http_listen: ""
admin:
  listen: 127.0.0.1:$admin_port
  pprof: $([[ -n ${PROFILE:-} ]] && echo true || echo false)
log:
  level: warn
YAML

pid=
cleanup() {
	[[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[[ -n $own_broker ]] && bash scripts/kafka/broker.sh stop "$work/kafka" >/dev/null
	return 0
}
trap cleanup EXIT
[[ -n $own_broker ]] && bash scripts/kafka/broker.sh start "$work/kafka" "$port"
"${SLUICE_BIN:-./bin/sluice}" ingest -c "$work/sluice.yaml" &
pid=$!
ready=
for _ in $(seq 100); do
	curl -fsS 127.0.0.1:$admin_port/readyz >/dev/null 2>&1 && ready=1 && break
	sleep 0.2
done
[[ -n $ready ]] || { echo "bench/ingest.sh: the ingester is not ready (config: $work/sluice.yaml)" >&2; exit 1; }
prof=
if [[ -n ${PROFILE:-} ]]; then
	(sleep 5 && curl -fsS -o "$work/ingest-cpu.pb" "127.0.0.1:$admin_port/debug/pprof/profile?seconds=$PROFILE") &
	prof=$!
fi
./bin/ingestload -grpc 127.0.0.1:$grpc_port -admin 127.0.0.1:$admin_port "$@"
[[ -n $prof ]] && wait "$prof"
# Items and records written; batches and bytes sent to the broker.
curl -fsS 127.0.0.1:$admin_port/metrics | grep -E '^sluice_ingest_(records|items)_total\{signal="metrics"\}|^sluice_kafka_produce_(batches|records|compressed_bytes|uncompressed_bytes)_total' || true
