package config

import (
	"strings"
	"testing"
)

func TestAdminPprof(t *testing.T) {
	cfg, err := Parse("c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Pprof {
		t.Error("admin.pprof is on by default")
	}
	cfg, err = Parse("c.yaml", []byte("admin:\n  listen: 127.0.0.1:9464\n  pprof: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Admin.Pprof {
		t.Error("admin.pprof: true not read")
	}
}

func TestKafkaMinInsyncReplicas(t *testing.T) {
	for _, tc := range []struct {
		name, kafka string
		want        int16
		err         string // substring of the error; empty: valid
	}{
		{"default", "", 0, ""},
		{"set", "min_insync_replicas: 2", 2, ""},
		{"with replication factor", "replication_factor: 3\n    min_insync_replicas: 2", 2, ""},
		{"equal to replication factor", "replication_factor: 2\n    min_insync_replicas: 2", 2, ""},
		{"above replication factor", "replication_factor: 2\n    min_insync_replicas: 3", 0,
			"c.yaml:6:26: bus.kafka.min_insync_replicas: min_insync_replicas (3) exceeds replication_factor (2)"},
		{"broker default replication factor", "replication_factor: -1\n    min_insync_replicas: 3", 3, ""},
		{"negative", "min_insync_replicas: -1", 0, "c.yaml:5:26: bus.kafka.min_insync_replicas: min_insync_replicas must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n    " + tc.kafka + "\n"
			cfg, err := Parse("c.yaml", []byte(y))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Bus.Kafka.MinInsyncReplicas != tc.want {
				t.Errorf("min_insync_replicas = %d, want %d", cfg.Bus.Kafka.MinInsyncReplicas, tc.want)
			}
		})
	}
}
