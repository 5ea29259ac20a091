package config

import (
	"strings"
	"testing"
)

// The worker's keys for agents' raw topics: accepted as documented, and
// every mistake named with file:line:col and key.
func TestWorkerRawTopics(t *testing.T) {
	const kafka = "bus:\n  kind: kafka\n  kafka:\n    brokers: [a:9092]\n"
	cfg, err := Parse("c.yaml", []byte(kafka+`worker:
  raw_topics: {metrics: otlp_metrics, logs: otlp_logs, traces: otlp_spans}
  tenant_header: X-Scope-OrgID
  default_tenant: agents
  raw_encoding: otlp_json
  create_raw_topics: true
`))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Worker
	if w.RawTopics["traces"] != "otlp_spans" || w.TenantHeader != "X-Scope-OrgID" || w.DefaultTenant != "agents" || w.RawEncoding != "otlp_json" || !w.CreateRawTopics {
		t.Errorf("worker %+v", w)
	}
	if cfg, err := Parse("c.yaml", nil); err != nil || cfg.Worker.RawEncoding != "otlp_proto" || len(cfg.Worker.RawTopics) != 0 || cfg.Worker.DefaultTenant != "" {
		t.Errorf("defaults: %+v, %v", cfg.Worker, err)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"worker:\n  raw_topics: {metrics: otlp_metrics}\n",
			`c.yaml:2:15: worker.raw_topics: raw_topics needs bus kind kafka (agents' exporters write to Kafka), not "embedded"`},
		{kafka + "worker:\n  raw_topics:\n    profiles: otlp_profiles\n",
			`c.yaml:7:15: worker.raw_topics.profiles: unknown signal "profiles" (valid: metrics, logs, traces)`},
		{kafka + "worker:\n  raw_topics:\n    metrics: otlp/metrics\n",
			`c.yaml:7:14: worker.raw_topics.metrics: topic "otlp/metrics": character "/" is not allowed`},
		{kafka + "worker:\n  raw_topics:\n    metrics: \"\"\n",
			`c.yaml:7:14: worker.raw_topics.metrics: topic "": empty`},
		{kafka + "worker:\n  raw_topics:\n    logs: sluice.processed.logs\n",
			`c.yaml:7:11: worker.raw_topics.logs: topic "sluice.processed.logs" is one of sluice's own`},
		{kafka + "worker:\n  raw_topics:\n    logs: otlp\n    traces: otlp\n",
			`c.yaml:8:13: worker.raw_topics.traces: topic "otlp" is also the raw topic of logs`},
		{kafka + "worker:\n  tenant_header: X Scope\n",
			`c.yaml:6:18: worker.tenant_header: tenant_header "X Scope" must be a header name`},
		{kafka + "worker:\n  default_tenant: a/b\n",
			`c.yaml:6:19: worker.default_tenant: default_tenant: invalid tenant "a/b"`},
		{kafka + "worker:\n  raw_encoding: jaeger_proto\n",
			`c.yaml:6:17: worker.raw_encoding: unknown raw_encoding "jaeger_proto" (valid: otlp_proto, otlp_json)`},
	} {
		_, err := Parse("c.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\nerror %v\nwant  %s", tc.yaml, err, tc.want)
		}
	}
}
