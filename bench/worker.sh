#!/usr/bin/env bash
# worker.sh measures the whole worker on a real Kafka broker: it starts a
# broker (scripts/kafka) and bench/workerload, which writes a backlog of a
# benchmark corpus to the raw topic as the ingester would, starts
# `sluice worker` with the example rules on it, and reports items per second
# and the worker's CPU-seconds per million items. Everything listens on
# 127.0.0.1 and stops when the backlog is processed. Arguments go to
# workerload (e.g. -corpus metrics -items 5000000); by default it runs each
# corpus in turn. SLUICE_BENCH_COMPRESSION sets the bus's Kafka compression
# (default zstd).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" workerload

cleanup() { bash scripts/kafka/broker.sh stop "$work/kafka" >/dev/null; }
trap cleanup EXIT
bash scripts/kafka/broker.sh start "$work/kafka" "$port"

run() {
	# A fresh topic prefix per run: each starts with an empty backlog.
	cat >"$work/worker.yaml" <<YAML
bus:
  kind: kafka
  topic_prefix: bench$1
  partitions: 6
  kafka:
    brokers: ["127.0.0.1:$port"]
    compression: ${SLUICE_BENCH_COMPRESSION:-zstd}
admin:
  listen: 127.0.0.1:19465
rules:
  dir: $repo/examples/rules
log:
  level: warn
YAML
	shift
	./bin/workerload -sluice bin/sluice -c "$work/worker.yaml" "$@"
}

if [[ $# -gt 0 ]]; then
	run "$(date +%s)" "$@"
else
	for corpus in metrics metrics-k8s logs-varied traces; do
		echo "== $corpus"
		run "$(date +%s)$corpus" -corpus "$corpus"
	done
fi
