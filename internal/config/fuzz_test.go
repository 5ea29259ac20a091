package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfig: any file gives a valid config or an error, never a panic, and
// a config Parse accepts passes Validate again.
func FuzzConfig(f *testing.F) {
	for _, glob := range []string{"testdata/*.yaml", "../../examples/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range []string{
		"",
		"bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    replication_factor: 3\n    min_insync_replicas: 2\n",
		"admin:\n  listen: 127.0.0.1:9464\n  pprof: true\n",
		"bus: {kind: nats, nats: {url: nats://x:4222, tls: {ca_file: x}}}\n",
		"memory_limit: 1GiB\nbus:\n  kafka:\n    small_batch_bytes: -1\n",
		"bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    zstd_raw_literals: true\n",
		"sinks:\n  - name: a\n    type: file\n    signals: [metrics]\n    path: /tmp\n",
		"ingest:\n  partition_key:\n    metrics: none\n  max_request_bytes: 1KB\n",
		"worker: {cardinality: {window: 1s}}\nrules: {reload_interval: 1s}\n",
		"bus: &a {kind: *a}\n",
		"- [1, 2]\n",
		"bus:\n  partitions: 99999999999999999999\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Error("an error without a message")
			}
			return
		}
		if cfg == nil {
			t.Fatal("no config and no error")
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Parse accepted a config that Validate rejects: %v", err)
		}
		for i, s := range cfg.Sinks {
			if s.Node == nil || s.Path == "" {
				t.Errorf("sinks[%d] lacks its node or path", i)
			}
		}
	})
}
