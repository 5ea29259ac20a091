#!/usr/bin/env bash
# ingest.sh measures the whole ingester under a real OTLP/gRPC load into a
# real Kafka broker: it starts a broker (scripts/kafka), `sluice ingest` on
# it, and bench/ingestload, which reports data points per second and the
# ingester's CPU-seconds per million data points. Everything listens on
# 127.0.0.1 and stops when the load is sent. Arguments go to ingestload
# (e.g. -datapoints 50000000 -connections 8).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" ingestload

cat >"$work/sluice.yaml" <<YAML
bus:
  kind: kafka
  topic_prefix: bench
  partitions: 6
  kafka:
    brokers: ["127.0.0.1:$port"]
ingest:
  grpc_listen: 127.0.0.1:14317
  http_listen: ""
admin:
  listen: 127.0.0.1:19464
log:
  level: warn
YAML

pid=
cleanup() {
	[[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	bash scripts/kafka/broker.sh stop "$work/kafka" >/dev/null
}
trap cleanup EXIT
bash scripts/kafka/broker.sh start "$work/kafka" "$port"
./bin/sluice ingest -c "$work/sluice.yaml" &
pid=$!
for _ in $(seq 100); do
	curl -fsS 127.0.0.1:19464/readyz >/dev/null 2>&1 && break
	sleep 0.2
done
./bin/ingestload -grpc 127.0.0.1:14317 -admin 127.0.0.1:19464 "$@"
