# make run    build and start the all-in-one pipeline (embedded bus,
#             examples/sluice.yaml): OTLP on 127.0.0.1:4317 (gRPC) and :4318
#             (HTTP), output in ./data/out
# make test   the whole test suite, with a real Apache Kafka broker
#             (needs Java 17+ and Maven; fetched into .cache/ on first use)
# make bench  the benchmarks, one core
# make bench-e2e  the workload of issue 10 end to end on a real Kafka broker
#             and Prometheus: CPU-seconds per million points and peak RSS
#             of each sluice process, as a markdown table
GO      ?= go
BIN     := bin/sluice
CONFIG  ?= examples/sluice.yaml
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/sluice-dev/sluice/app.Version=$(VERSION)

.PHONY: build run test test-docs unit bench bench-ingest bench-worker bench-e2e bench-e2e-ab fuzz vet clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sluice

run: build
	./$(BIN) run -c $(CONFIG)

test:
	bash scripts/test.sh

# test-docs decodes the OpenTelemetry Collector snippets of docs/agents.md
# with the Collector's own config code: a module of its own
# (docs/agentstest), so that the binary does not depend on the Collector.
test-docs:
	cd docs/agentstest && $(GO) test -count=1 ./...

# unit runs the tests that need no broker (the Kafka tests skip).
unit:
	$(GO) test ./...
	cd deploy && $(GO) test ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./ingest/... ./internal/otlpwire/ ./internal/otlpjson/ ./internal/arrowpool/ ./schemas/ ./rules/... ./stream/... ./sinks/...

# bench-ingest measures the whole ingester under OTLP/gRPC load into a real
# Kafka broker (CPU-seconds per million data points).
bench-ingest:
	bash bench/ingest.sh

# bench-worker measures the whole worker draining a backlog on a real Kafka
# broker (items/s, CPU-seconds per million items), corpus by corpus.
bench-worker:
	bash bench/worker.sh

# bench-e2e runs the workload of issue 10 (100 pods x 100 gauge series)
# through sluice ingest, worker and sink processes on a real Kafka broker
# into a real Prometheus: CPU-seconds per million points, peak RSS and the
# samples Prometheus counted, as a markdown table. E2EFLAGS go to
# bench/e2eload (e.g. E2EFLAGS='-stages 3').
bench-e2e:
	bash bench/e2e.sh $(E2EFLAGS)

# bench-e2e-ab compares two builds (binaries or git revisions) on stage 3 of
# bench-e2e, in PAIRS pairs run back to back, and prints the medians of the
# pairs' ratios: make bench-e2e-ab OLD=main~3 NEW=HEAD [PAIRS=5]
# [RULES=bench/e2e/rules-unmerged].
PAIRS ?= 3
RULES ?= bench/e2e/rules
bench-e2e-ab:
	bash bench/e2e-ab.sh -n $(PAIRS) -rules $(RULES) $(OLD) $(NEW)

# fuzz runs each fuzz target of the decoders for FUZZTIME. Targets with large
# seeds cap the minimising of a new input at 200 runs, or it takes the whole
# FUZZTIME (a minute per input of tens of kB).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzHTTP$$' -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzHTTPTenantHeaders -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzGRPCMetadata -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzParseTokens -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzZstdDecompress -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz FuzzRawHeaders -fuzztime $(FUZZTIME) ./stream/worker/
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime $(FUZZTIME) ./internal/tenant/
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./internal/otlpwire/
	$(GO) test -run '^$$' -fuzz FuzzCount -fuzztime $(FUZZTIME) ./internal/otlpwire/
	$(GO) test -run '^$$' -fuzz FuzzUnmarshalRequest -fuzztime $(FUZZTIME) ./internal/otlpjson/
	$(GO) test -run '^$$' -fuzz FuzzMarshalRequest -fuzztime $(FUZZTIME) ./internal/otlpjson/
	$(GO) test -run '^$$' -fuzz FuzzRoundTrip -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./schemas/
	$(GO) test -run '^$$' -fuzz FuzzReadBatch -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./schemas/
	$(GO) test -run '^$$' -fuzz FuzzDecodeTables -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./schemas/
	$(GO) test -run '^$$' -fuzz FuzzText -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz FuzzLimits -fuzztime $(FUZZTIME) -fuzzminimizetime 200x ./schemas/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./rules/
	$(GO) test -run '^$$' -fuzz FuzzConfig -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz FuzzAnswer -fuzztime $(FUZZTIME) ./sinks/httpsink/
	$(GO) test -run '^$$' -fuzz FuzzRetryAfter -fuzztime $(FUZZTIME) ./sinks/httpsink/
	$(GO) test -run '^$$' -fuzz FuzzPartialSuccess -fuzztime $(FUZZTIME) ./sinks/otlp/
	$(GO) test -run '^$$' -fuzz FuzzArrowTranslation -fuzztime $(FUZZTIME) ./sinks/promrw/
	$(GO) test -run '^$$' -fuzz FuzzWrittenHeaders -fuzztime $(FUZZTIME) ./sinks/promrw/
	$(GO) test -run '^$$' -fuzz FuzzArrowTranslation -fuzztime $(FUZZTIME) ./sinks/loki/
	$(GO) test -run '^$$' -fuzz FuzzDecodeHeaders -fuzztime $(FUZZTIME) ./stream/nats/

vet:
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...

clean:
	rm -rf bin data .cache/kafka/run
