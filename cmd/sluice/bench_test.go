package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/app"
)

// sluice bench against a real pipeline (ingest, worker and a file sink on
// the embedded bus): every acknowledged item is counted by each stage, and
// the report gives their cost, the replicas for a target and its plots.
func TestBenchWritesTheCapacityReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	for _, c := range []struct{ protocol, profile, perRequest, rate string }{
		{"grpc", "metrics", "100", ""},
		{"http", "logs", "50", ""},
		{"grpc", "traces", "40", ""},
		{"http", "metrics", "100", "50000"}, // an open loop
	} {
		t.Run(c.protocol+"/"+c.profile+"/"+c.rate, func(t *testing.T) {
			p, _ := startSluice(t, app.All, "sinks:\n  - name: out\n    type: file\n    signals: [metrics, logs, traces]\n    path: "+out+"\n")
			addr := p.HTTPAddr()
			if c.protocol == "grpc" {
				addr = p.GRPCAddr()
			}
			admin := "http://" + p.AdminAddr()
			dir := filepath.Join(t.TempDir(), "report")
			args := []string{"bench", "--endpoint", addr, "--protocol", c.protocol, "--profile", c.profile, "--pods", "10", "--series", "20",
				"--per-request", c.perRequest, "--steps", "1,2", "--requests", "20", "--duration", "1m",
				"--stage", "ingest=" + admin, "--stage", "worker=" + admin, "--stage", "sink=" + admin,
				"--target", "2M-items/s", "--cores-per-replica", "2", "--settle", "30s", "--report", dir}
			steps := 2 // two steps of 20 requests
			if c.rate != "" {
				args, steps = append(args, "--rate", c.rate, "--connections", "2"), 1
			}
			stdout, err := run(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			per, _ := strconv.Atoi(c.perRequest)
			want := steps * 20 * per
			if c.profile == "traces" {
				want = steps * 20 * (per / 8 * 8)
			}
			md, err := os.ReadFile(filepath.Join(dir, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, role := range []string{"ingest", "worker", "sink"} {
				m := regexp.MustCompile(`(?m)^\| ` + role + ` \| http://[^ ]+ \| (\d+) \| ([0-9.]+) \|`).FindSubmatch(md)
				if m == nil {
					t.Fatalf("no %s row in\n%s", role, md)
				}
				if n, _ := strconv.Atoi(string(m[1])); n != want {
					t.Errorf("%s counted %d items, want the %d acknowledged", role, n, want)
				}
				if cpu, _ := strconv.ParseFloat(string(m[2]), 64); cpu <= 0 {
					t.Errorf("%s: CPU-s %v", role, cpu)
				}
			}
			wants := []string{"## Replicas for 2.00 M items/s", "| 1 | 20 | 0 |", "| 2 | 20 | 0 |", "End-to-end delay"}
			if c.rate != "" {
				wants = []string{"Open loop at 50.0 k items/s", "| 2 | 20 | 0 |", "End-to-end delay"}
			}
			for _, s := range wants {
				if !strings.Contains(string(md), s) {
					t.Errorf("report lacks %q:\n%s", s, md)
				}
			}
			for _, f := range []string{"throughput.svg", "stages.svg"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !strings.Contains(string(b), "<svg") {
					t.Errorf("%s: %v, %.40q", f, err, b)
				}
			}
		})
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"--profile events", `--profile "events": want metrics, logs or traces`},
		{"--target fast", `target "fast": want a rate`},
		{"--stage ingest", `--stage "ingest": want ROLE=ADMIN_URL`},
		{"--protocol udp --requests 1", `protocol "udp": want grpc or http`},
		{"--churn 2", "churn 2 is not a fraction"},
	} {
		_, err := run(t, append([]string{"bench"}, strings.Fields(c.args)...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		}
	}
}
