#!/usr/bin/env bash
# e2e.sh measures sluice end to end on the workload of issue 10 (100 pods x
# 100 gauge series, Kubernetes resource attributes, a debug_id per series):
# it starts a Kafka broker (scripts/kafka, 127.0.0.1:19292, data under
# .cache/bench-e2e) and bench/e2eload, which runs every sluice role as a
# process of its own (bin/sluice) and a real Prometheus, in three stages:
# OTLP/gRPC -> Kafka with 1 and with 1,000 points per request (16
# connections), then a 3 M-point backlog drained by `sluice worker` (rules
# in bench/e2e/rules) and `sluice sink` into Prometheus. It prints a
# markdown table (also in .cache/bench-e2e/table.md): CPU-seconds per
# million points and peak RSS per process, points/s, the samples counted in
# Prometheus against the exact number expected, and the issue's targets.
# Everything listens on 127.0.0.1 and is stopped at the end, on failure or
# on Ctrl-C. Arguments go to e2eload (e.g. -stages 3 -backlog 1000000, or
# -compression lz4); SLUICE_E2E_KAFKA_PORT moves the broker.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" e2eload
port=${SLUICE_E2E_KAFKA_PORT:-19292}
work=$repo/.cache/bench-e2e
mkdir -p "$work"
# One run at a time: a run stops the broker under $work when it ends.
exec 9>"$work/lock"
flock -n 9 || { echo "bench/e2e.sh: another run holds $work/lock" >&2; exit 1; }

prom=$(command -v prometheus || true)
[[ -n $prom ]] || { echo "bench/e2e.sh: no prometheus on PATH (scripts/backends/install.sh installs it)" >&2; exit 1; }

cleanup() { bash scripts/kafka/broker.sh stop "$work/kafka" >/dev/null; }
trap cleanup EXIT
bash scripts/kafka/broker.sh start "$work/kafka" "$port"
# e2eload stops its processes itself (and they die with it); the timeout
# bounds a run that hangs.
timeout --kill-after=60 30m ./bin/e2eload -sluice bin/sluice -prometheus "$prom" -brokers "127.0.0.1:$port" \
	-broker-pid-file "$work/kafka/broker.pid" -work "$work" -rules bench/e2e/rules "$@"
