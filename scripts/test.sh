#!/usr/bin/env bash
# test.sh is `make test`: it fetches Apache Kafka (scripts/kafka/fetch.sh),
# starts one broker on 127.0.0.1 for the whole suite, runs every Go test
# (the root module's, then the deploy module's chart tests) with the
# broker's address in SLUICE_KAFKA_BROKERS (and the jars in
# SLUICE_KAFKA_LIBS, for tests that start and stop brokers of their own)
# and the Arrow buffer pool poisoned, and stops the broker again, whatever
# the tests did.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
GO=${GO:-go}
port=${SLUICE_KAFKA_PORT:-19092}
run=$repo/.cache/kafka/run

libs=$(bash scripts/kafka/fetch.sh)
bash scripts/backends/install.sh # prometheus, victoria-metrics for sinks/promrw
trap 'bash scripts/kafka/broker.sh stop "$run" >/dev/null' EXIT
bash scripts/kafka/broker.sh start "$run" "$port"

export SLUICE_KAFKA_BROKERS=127.0.0.1:$port SLUICE_KAFKA_LIBS=$libs
# Freed Arrow buffers are overwritten: a value used after its batch was
# released shows as a failing test (internal/arrowpool).
export SLUICE_ARROWPOOL_POISON=1
"$GO" test -count=1 -timeout 12m "$@" ./...
# The Helm chart's tests: a module of its own (deploy/go.mod), so that Helm
# and the Kubernetes modules stay out of the binary's; ./... above does not
# descend into it.
# The modules below replace sluice's own with this checkout: -mod=mod
# lets a change of its requirements through without a go mod tidy there.
(cd deploy && "$GO" test -mod=mod -count=1 -timeout 10m ./...)
# Remote write 2.0 against Prometheus' own receiver: a module of its own,
# so that sluice's go.mod does not take Prometheus' dependency tree.
(cd sinks/promrw/rw2test && "$GO" test -mod=mod -count=1 -timeout 5m ./...)
