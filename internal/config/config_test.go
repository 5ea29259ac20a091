package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMinimalConfigFromTheIssueIsAccepted(t *testing.T) {
	cfg, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.Kind != "embedded" || cfg.Bus.Partitions != 6 || cfg.Bus.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("bus = %+v", cfg.Bus)
	}
	if len(cfg.Sinks) != 1 || cfg.Sinks[0].Name != "archive" || cfg.Sinks[0].Type != "file" || len(cfg.Sinks[0].Signals) != 3 {
		t.Fatalf("sinks = %+v", cfg.Sinks)
	}
	// Keys the file leaves out keep their defaults.
	if cfg.Ingest.MaxRequestBytes != 16<<20 || cfg.Ingest.PartitionKey["traces"] != "trace_id" || cfg.Log.Level != "info" {
		t.Errorf("defaults lost: %+v %+v", cfg.Ingest, cfg.Log)
	}
	// The sink keeps its node so the sink type can decode its own keys.
	var own struct {
		Path string `yaml:"path"`
	}
	if err := cfg.Sinks[0].Decode(&own); err != nil {
		t.Fatal(err)
	}
	if own.Path != "./data/out" {
		t.Errorf("sink path = %q", own.Path)
	}
}

func TestEmptyFileIsAllDefaults(t *testing.T) {
	cfg, err := Parse("empty.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if cfg.Bus.Kind != def.Bus.Kind || cfg.Ingest.GRPCListen != def.Ingest.GRPCListen {
		t.Errorf("got %+v", cfg)
	}
}

func TestValuesAndUnits(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(`
bus:
  kind: kafka
  retention: 72h
  max_record_bytes: 4MiB
  kafka:
    brokers: [a:9092, b:9092]
    compression: lz4
ingest:
  max_request_bytes: 8MB
  max_inflight_bytes: 1GiB
  partition_key:
    logs: trace_id
log:
  format: json
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus.Retention != 72*time.Hour || cfg.Bus.MaxRecordBytes != 4<<20 || cfg.Ingest.MaxRequestBytes != 8e6 || cfg.Ingest.MaxInflightBytes != 1<<30 {
		t.Errorf("got %+v %+v", cfg.Bus, cfg.Ingest)
	}
	// A key given in the file replaces only its own entry.
	if cfg.Ingest.PartitionKey["logs"] != "trace_id" || cfg.Ingest.PartitionKey["metrics"] != "resource" {
		t.Errorf("partition_key = %v", cfg.Ingest.PartitionKey)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings, each must appear
	}{
		{"unknown key", "bus:\n  kind: embedded\n  partitons: 3\n",
			[]string{`c.yaml:3:3: bus.partitons: unknown key "partitons"`, "partitions"}},
		{"unknown nested key", "bus:\n  kafka:\n    broker: [x]\n",
			[]string{`c.yaml:3:5: bus.kafka.broker: unknown key "broker"`}},
		{"unknown top-level key", "admin:\n  listen: :1\nworkers: {}\n",
			[]string{`c.yaml:3:1: workers: unknown key`}},
		{"bad kind", "bus:\n  kind: rabbit\n",
			[]string{`c.yaml:2:9: bus.kind: unknown bus kind "rabbit"`}},
		{"bad type", "bus:\n  partitions: many\n",
			[]string{`c.yaml:2:`, "many"}},
		{"bad size", "ingest:\n  max_request_bytes: 3 parsecs\n",
			[]string{`c.yaml:2:`, `invalid size "3 parsecs"`}},
		{"bad duration", "bus:\n  retention: forever\n",
			[]string{`c.yaml:2:`, "forever"}},
		{"kafka without brokers", "bus:\n  kind: kafka\n",
			[]string{"bus.kafka.brokers: the kafka bus needs at least one broker"}},
		{"sink without signals", "sinks:\n  - name: a\n    type: file\n",
			[]string{`c.yaml:2:5: sinks[0]: sink "a" needs signals`}},
		{"sink bad signal", "sinks:\n  - name: a\n    type: file\n    signals: [metrics, profiles]\n",
			[]string{`c.yaml:4:24: sinks[0].signals[1]: unknown signal "profiles"`}},
		{"duplicate sink", "sinks:\n  - {name: a, type: file, signals: [logs]}\n  - {name: a, type: file, signals: [logs]}\n",
			[]string{`c.yaml:3:12: sinks[1].name: sink name "a" is used twice`}},
		{"bad partition key", "ingest:\n  partition_key:\n    metrics: trace_id\n",
			[]string{`c.yaml:3:14: ingest.partition_key.metrics: metrics can be partitioned by resource or none`}},
		{"compression level out of range", "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    compression: zstd\n    compression_level: 7\n",
			[]string{`bus.kafka.compression_level: compression level 7 for zstd: want 1 to 4`}},
		{"compression without levels", "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    compression: snappy\n    compression_level: 1\n",
			[]string{`bus.kafka.compression_level: compression snappy has no levels`}},
		{"raw zstd literals without zstd", "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    compression: lz4\n    zstd_raw_literals: true\n",
			[]string{`bus.kafka.zstd_raw_literals: zstd_raw_literals needs compression: zstd, not lz4`}},
		{"memory limit not a size", "memory_limit: lots\n",
			[]string{`c.yaml:1:15: memory_limit must be auto or a size: invalid size "lots"`}},
		{"small batch bytes negative", "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    small_batch_bytes: -2KiB\n",
			[]string{`c.yaml:5:24: bus.kafka.small_batch_bytes: small_batch_bytes must be a size or -1 (every batch with compression), not -2048`}},
		{"small batch bytes not a size", "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    small_batch_bytes: small\n",
			[]string{`c.yaml:5:24: invalid size "small"`}},
		{"two problems at once", "bus:\n  kind: x\nlog:\n  level: loud\n",
			[]string{"bus.kind", "log.level"}},
		{"not yaml", "bus: [\n",
			[]string{"c.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestKafkaSmallBatchBytes(t *testing.T) {
	if got := Default().Bus.Kafka.SmallBatchBytes; got != 16<<10 {
		t.Errorf("default %d, want 16KiB", got)
	}
	for in, want := range map[string]SignedByteSize{"64KiB": 64 << 10, "1000": 1000, "0": 0, "-1": -1} {
		cfg, err := Parse("c.yaml", []byte("bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    small_batch_bytes: "+in+"\n"))
		if err != nil {
			t.Errorf("small_batch_bytes: %s: %v", in, err)
		} else if got := cfg.Bus.Kafka.SmallBatchBytes; got != want {
			t.Errorf("small_batch_bytes: %s: got %d, want %d", in, got, want)
		}
	}
}

// memory_limit: auto by default, which sets it by the process's roles; a
// size sets it whatever they are.
func TestMemoryLimit(t *testing.T) {
	type roles struct{ ingest, worker, sinks bool }
	all := []roles{{true, true, true}, {false, true, true}, {false, true, false}, {false, false, true}, {true, false, false}, {false, false, false}}
	for in, want := range map[string][]int64{
		"":       {0, AutoWorkerMemoryLimit, AutoWorkerMemoryLimit, AutoSinkMemoryLimit, 0, 0},
		"auto":   {0, AutoWorkerMemoryLimit, AutoWorkerMemoryLimit, AutoSinkMemoryLimit, 0, 0},
		"0":      {0, 0, 0, 0, 0, 0},
		"300MiB": {300 << 20, 300 << 20, 300 << 20, 300 << 20, 300 << 20, 300 << 20},
	} {
		data := "log: {level: info}\n"
		if in != "" {
			data += "memory_limit: " + in + "\n"
		}
		cfg, err := Parse("c.yaml", []byte(data))
		if err != nil {
			t.Fatalf("memory_limit %q: %v", in, err)
		}
		for i, r := range all {
			if got := cfg.MemoryLimit.Limit(r.ingest, r.worker, r.sinks); got != want[i] {
				t.Errorf("memory_limit %q, roles %+v: %d, want %d", in, r, got, want[i])
			}
		}
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, err := Parse("c.yaml", []byte("bus:\n  kind: x\n"))
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Path != "bus.kind" {
		t.Fatalf("err = %#v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "1024": 1024, "1KiB": 1024, "16MiB": 16 << 20, "2 GiB": 2 << 30, "5MB": 5e6, "7B": 7} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "12 apples"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func TestSinkDecodeRejectsUnknownKeys(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    paht: /tmp\n"))
	if err != nil {
		t.Fatal(err)
	}
	var own struct {
		Path string `yaml:"path"`
	}
	err = cfg.Sinks[0].Decode(&own)
	var e *Error
	if !errors.As(err, &e) || e.Line != 5 || e.Path != "sinks[0].paht" || err.Error() != e.Error() || !strings.HasPrefix(e.Error(), "c.yaml:5:5: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestSinkBatchKeys(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    batch_min_records: 50\n    batch_max_wait: 2s\n    batch_max_items: 5000\n    path: /tmp\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Sinks[0]; s.BatchMinRecords != 50 || s.BatchMaxWait != 2*time.Second || s.BatchMaxItems != 5000 {
		t.Errorf("sink %+v", s)
	}
	var own struct {
		Path string `yaml:"path"`
	}
	if err := cfg.Sinks[0].Decode(&own); err != nil {
		t.Errorf("the batch keys are common keys, not the sink type's: %v", err)
	}
	if _, err := Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    batch_max_wait: -1s\n")); err == nil {
		t.Error("negative batch_max_wait accepted")
	}
	if _, err := Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    batch_max_items: -1\n")); err == nil {
		t.Error("negative batch_max_items accepted")
	}
}

// max_age is a common key of every sink type, default unset.
func TestSinkMaxAge(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    max_age: 2h\n    path: /tmp\n  - name: b\n    type: file\n    signals: [logs]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sinks[0].MaxAge != 2*time.Hour || cfg.Sinks[1].MaxAge != 0 {
		t.Errorf("max_age %s and %s, want 2h and unset", cfg.Sinks[0].MaxAge, cfg.Sinks[1].MaxAge)
	}
	var own struct {
		Path string `yaml:"path"`
	}
	if err := cfg.Sinks[0].Decode(&own); err != nil {
		t.Errorf("max_age is a common key, not the sink type's: %v", err)
	}
	_, err = Parse("c.yaml", []byte("sinks:\n  - name: a\n    type: file\n    signals: [logs]\n    max_age: -1h\n"))
	if err == nil || !strings.Contains(err.Error(), "sinks[0].max_age") || !strings.Contains(err.Error(), "must not be negative") {
		t.Errorf("negative max_age: %v", err)
	}
}

func TestWorkerCardinality(t *testing.T) {
	def := Default().Worker.Cardinality
	if !def.Enabled || def.MaxMetrics != 10000 || def.MaxLabels != 64 || def.Window != 10*time.Minute || def.MaxTenants != 1000 {
		t.Errorf("defaults %+v", def)
	}
	cfg, err := Parse("c.yaml", []byte("worker:\n  cardinality:\n    max_metrics: 500\n    window: 1m\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Keys the section leaves out keep their defaults.
	want := Cardinality{Enabled: true, MaxMetrics: 500, MaxLabels: 64, Window: time.Minute, MaxTenants: 1000}
	if got := cfg.Worker.Cardinality; got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	cfg, err = Parse("c.yaml", []byte("worker:\n  cardinality:\n    enabled: false\n"))
	if err != nil || cfg.Worker.Cardinality.Enabled {
		t.Errorf("enabled: false: %+v, %v", cfg.Worker.Cardinality, err)
	}

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"zero max_metrics", "worker:\n  group: w\n  cardinality:\n    max_metrics: 0\n",
			[]string{`c.yaml:4:18: worker.cardinality.max_metrics: max_metrics must be at least 1, not 0`}},
		{"negative max_labels", "worker:\n  cardinality:\n    max_labels: -3\n",
			[]string{`c.yaml:3:17: worker.cardinality.max_labels: max_labels must be at least 1, not -3`}},
		{"zero max_tenants", "worker:\n  cardinality:\n    max_tenants: 0\n",
			[]string{`c.yaml:3:18: worker.cardinality.max_tenants: max_tenants must be at least 1, not 0`}},
		{"short window", "worker:\n  cardinality:\n    window: 10ms\n",
			[]string{`c.yaml:3:13: worker.cardinality.window: window must be at least 1s, not 10ms`}},
		{"bad window", "worker:\n  cardinality:\n    window: often\n",
			[]string{`c.yaml:3:`, "often"}},
		{"unknown key", "worker:\n  cardinality:\n    max_series: 10\n",
			[]string{`c.yaml:3:5: worker.cardinality.max_series: unknown key "max_series" (valid: enabled, max_labels, max_metrics, max_tenants, window)`}},
		{"not a mapping", "worker:\n  cardinality: true\n",
			[]string{`c.yaml:2:`}},
		{"every problem", "worker:\n  cardinality:\n    max_metrics: 0\n    window: 0s\n",
			[]string{"c.yaml:3:18: worker.cardinality.max_metrics", "c.yaml:4:13: worker.cardinality.window"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestWorkerAggregator(t *testing.T) {
	if !Default().Worker.Aggregator {
		t.Error("the aggregator is off by default")
	}
	cfg, err := Parse("c.yaml", []byte("worker:\n  group: w\n"))
	if err != nil || !cfg.Worker.Aggregator {
		t.Errorf("a worker section without the key: %+v, %v", cfg.Worker, err)
	}
	cfg, err = Parse("c.yaml", []byte("worker:\n  aggregator: false\n"))
	if err != nil || cfg.Worker.Aggregator {
		t.Errorf("aggregator: false: %+v, %v", cfg.Worker, err)
	}
}

// worker.dead_letter_max_bytes: by default bus.max_record_bytes; a smaller
// size is the DLQ's; larger than the bus takes, or below 1KiB, is an error
// naming the key.
func TestWorkerDeadLetterMaxBytes(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want ByteSize
		err  string
	}{
		{"", 1 << 20, ""},
		{"bus:\n  max_record_bytes: 4MiB\n", 4 << 20, ""},
		{"worker:\n  dead_letter_max_bytes: 256KiB\n", 256 << 10, ""},
		{"worker:\n  dead_letter_max_bytes: 1MiB\n", 1 << 20, ""},
		{"worker:\n  dead_letter_max_bytes: 2MiB\n", 0, "c.yaml:2:26: worker.dead_letter_max_bytes: dead_letter_max_bytes must be between 1KiB and bus.max_record_bytes (1048576), not 2097152"},
		{"worker:\n  dead_letter_max_bytes: 100\n", 0, "worker.dead_letter_max_bytes: dead_letter_max_bytes must be between 1KiB"},
	} {
		cfg, err := Parse("c.yaml", []byte(tc.yaml))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one with %q", tc.yaml, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err == "" && cfg.DeadLetterMaxBytes() != tc.want:
			t.Errorf("%q: dead-letter limit %d, want %d", tc.yaml, cfg.DeadLetterMaxBytes(), tc.want)
		}
	}
}

func TestEmbeddedAccessSyncAndNATSReplicas(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("bus:\n  embedded:\n    listen: 0.0.0.0:4222\n    token: s3cret\n    sync: always\n  nats:\n    replicas: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if always, _, _ := cfg.Bus.Embedded.SyncPolicy(); !always || cfg.Bus.Embedded.Token != "s3cret" || cfg.Bus.NATS.Replicas != 3 {
		t.Errorf("bus = %+v", cfg.Bus)
	}
	def, err := Parse("c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if always, every, _ := def.Bus.Embedded.SyncPolicy(); always || every != time.Second || def.Bus.NATS.Replicas != 1 {
		t.Errorf("defaults: sync %q, replicas %d", def.Bus.Embedded.Sync, def.Bus.NATS.Replicas)
	}
	if hold, err := Parse("c.yaml", []byte("bus:\n  max_hold: 5m\n")); err != nil || hold.Bus.MaxHold != 5*time.Minute {
		t.Errorf("max_hold 5m: %v, %v", hold, err)
	}
	for _, ok := range []string{"127.0.0.1:4222", `"[::1]:4222"`, "localhost:4222"} {
		if _, err := Parse("c.yaml", []byte("bus:\n  embedded:\n    listen: "+ok+"\n")); err != nil {
			t.Errorf("loopback listen %s without credentials: %v", ok, err)
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"open listener", "bus:\n  embedded:\n    listen: 0.0.0.0:4222\n",
			`c.yaml:3:13: bus.embedded.listen: listen "0.0.0.0:4222" is reachable from other machines: set bus.embedded.token`},
		{"open listener, any address", "bus:\n  embedded:\n    listen: :4222\n",
			`c.yaml:3:13: bus.embedded.listen: listen ":4222" is reachable`},
		{"token and password", "bus:\n  embedded:\n    token: a\n    username: u\n    password: p\n",
			`c.yaml:3:12: bus.embedded.token: set either token or username and password`},
		{"username alone", "bus:\n  embedded:\n    listen: 10.0.0.1:4222\n    username: u\n",
			`c.yaml:4:15: bus.embedded.username: username and password go together`},
		{"bad sync", "bus:\n  embedded:\n    sync: sometimes\n",
			`c.yaml:3:11: bus.embedded.sync: sync "sometimes": want always or a positive interval`},
		{"zero sync", "bus:\n  embedded:\n    sync: 0s\n", `bus.embedded.sync: sync "0s"`},
		{"replicas", "bus:\n  kind: nats\n  nats:\n    replicas: 7\n",
			`c.yaml:4:15: bus.nats.replicas: replicas must be between 1 and 5, not 7`},
		{"max_hold below ack_wait", "bus:\n  ack_wait: 1m\n  max_hold: 30s\n",
			`c.yaml:3:13: bus.max_hold: max_hold (30s) must be at least ack_wait (1m0s)`},
		{"max_hold below the default ack_wait", "bus:\n  max_hold: 10s\n",
			`bus.max_hold: max_hold (10s) must be at least ack_wait (30s)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// The keys of ingest's tenants, gRPC limits and HTTP timeouts: defaults,
// and errors at their line.
func TestIngestSecurityKeys(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("ingest:\n  trust_tenant_header: true\n  grpc:\n    max_concurrent_streams: 8\n  http:\n    read_timeout: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Ingest.TrustTenantHeader || cfg.Ingest.GRPC.MaxConcurrentStreams != 8 || cfg.Ingest.HTTP.ReadTimeout != 30*time.Second ||
		cfg.Ingest.HTTP.WriteTimeout != 2*time.Minute || cfg.Ingest.GRPC.KeepaliveMinTime != 10*time.Second || cfg.Ingest.ReloadInterval != 10*time.Second {
		t.Errorf("ingest: %+v", cfg.Ingest)
	}
	if d := Default(); d.Ingest.TrustTenantHeader {
		t.Error("trust_tenant_header on by default")
	}
	for _, tc := range []struct{ yaml, want string }{
		{"ingest:\n  default_tenant: \"a/b\"\n", `c.yaml:2:19: ingest.default_tenant: default_tenant: invalid tenant "a/b"`},
		{"ingest:\n  grpc:\n    max_concurrent_streams: 0\n", "c.yaml:3:29: ingest.grpc.max_concurrent_streams: max_concurrent_streams must be at least 1"},
		{"ingest:\n  http:\n    read_timeout: 0s\n", "c.yaml:3:19: ingest.http.read_timeout: read_timeout must be positive"},
		{"ingest:\n  grpc:\n    max_connection_age: -1s\n", "c.yaml:3:25: ingest.grpc.max_connection_age: max_connection_age must not be negative"},
		{"ingest:\n  http:\n    read_timeot: 1s\n", `c.yaml:3:5: ingest.http.read_timeot: unknown key "read_timeot"`},
	} {
		_, err := Parse("c.yaml", []byte(tc.yaml))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %s", tc.yaml, err, tc.want)
		}
	}
}

// bus.kafka.sasl.password_file keeps the password out of the config file:
// Secret reads it without its trailing newline; password and password_file
// together are refused at the key, and an unreadable or empty file is an
// error of Secret (read at start and by `sluice check`).
func TestSASLPasswordFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("c.yaml", []byte("bus:\n  kind: kafka\n  kafka:\n    brokers: [k:9093]\n    sasl:\n      mechanism: SCRAM-SHA-512\n      username: sluice\n      password_file: "+file+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.Bus.Kafka.SASL.Secret(); err != nil || got != "s3cret" {
		t.Errorf("Secret() = %q, %v; want s3cret", got, err)
	}
	if got, err := (&SASL{Password: "inline"}).Secret(); err != nil || got != "inline" {
		t.Errorf("Secret() of password = %q, %v", got, err)
	}
	_, err = Parse("c.yaml", []byte("bus:\n  kind: kafka\n  kafka:\n    brokers: [k:9093]\n    sasl:\n      mechanism: PLAIN\n      password: p\n      password_file: "+file+"\n"))
	if want := "c.yaml:8:22: bus.kafka.sasl.password_file: password and password_file are exclusive"; err == nil || err.Error() != want {
		t.Errorf("both: %v, want %s", err, want)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, f := range []string{filepath.Join(dir, "missing"), empty} {
		if _, err := (&SASL{PasswordFile: f}).Secret(); err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("%s: %v, want an error naming the file", f, err)
		}
	}
}

func TestKafkaZstdRawLiterals(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte("bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    zstd_raw_literals: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Bus.Kafka; !k.ZstdRawLiterals || k.Compression != "zstd" {
		t.Errorf("kafka %+v: want zstd with raw literals", k)
	}
}

// worker.local_merge: off by default; with exactly_once, or with metrics
// not partitioned by resource, an error naming its line.
func TestWorkerLocalMerge(t *testing.T) {
	if Default().Worker.LocalMerge {
		t.Error("local_merge is on by default")
	}
	cfg, err := Parse("c.yaml", []byte("worker:\n  local_merge: true\n"))
	if err != nil || !cfg.Worker.LocalMerge {
		t.Errorf("local_merge: true: %+v, %v", cfg.Worker, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"bus:\n  kind: kafka\nworker:\n  exactly_once: true\n  local_merge: true\n", "c.yaml:5:16: worker.local_merge: local_merge and exactly_once do not go together"},
		{"ingest:\n  partition_key:\n    metrics: none\nworker:\n  local_merge: true\n", "c.yaml:5:16: worker.local_merge: local_merge needs each resource's points in one raw partition"},
	} {
		if _, err := Parse("c.yaml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
