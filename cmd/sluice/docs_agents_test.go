package main

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// snippet is a fenced block of a Markdown file.
type snippet struct {
	line      int    // of its first line of content
	lang, tag string // the info string: "yaml collector" is lang yaml, tag collector
	text      string
}

func (s snippet) String() string {
	return fmt.Sprintf("docs/agents.md:%d (%s %s)", s.line, s.lang, s.tag)
}

func snippets(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var cur *snippet
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur == nil {
				lang, tag, _ := strings.Cut(strings.TrimSpace(line[3:]), " ")
				cur = &snippet{line: n + 1, lang: lang, tag: tag}
				body.Reset()
			} else {
				cur.text = body.String()
				out = append(out, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			body.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("%s: a fence is not closed", cur)
	}
	return out
}

// The keys the components of the snippets document (their READMEs: the
// Collector's otlp and otlphttp exporters with configgrpc/confighttp and
// exporterhelper, the contrib kafka exporter, the batch processor, the
// bearertokenauth extension, the otlp receiver; the k8s-monitoring chart's
// otlp destination values). A key not here is a typo or a key that does
// not exist.
var (
	queueKeys = []string{"enabled", "num_consumers", "queue_size", "storage", "blocking", "sizer", "batch", "wait_for_result"}
	retryKeys = []string{"enabled", "initial_interval", "randomization_factor", "multiplier", "max_interval", "max_elapsed_time"}
	tlsKeys   = []string{"insecure", "insecure_skip_verify", "ca_file", "ca_pem", "cert_file", "cert_pem", "key_file", "key_pem",
		"server_name_override", "min_version", "max_version", "include_system_ca_certs_pool", "reload_interval", "cipher_suites"}
	collectorKeys = map[string][]string{
		"exporters.otlp": {"endpoint", "compression", "tls", "keepalive", "read_buffer_size", "write_buffer_size", "wait_for_ready",
			"headers", "balancer_name", "authority", "auth", "timeout", "sending_queue", "retry_on_failure"},
		"exporters.otlphttp": {"endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "tls", "timeout", "read_buffer_size",
			"write_buffer_size", "encoding", "compression", "headers", "auth", "sending_queue", "retry_on_failure", "proxy_url",
			"max_idle_conns", "max_idle_conns_per_host", "max_conns_per_host", "idle_conn_timeout", "disable_keep_alives"},
		"exporters.kafka": {"brokers", "protocol_version", "resolve_canonical_bootstrap_servers_only", "client_id", "conn_idle_timeout",
			"logs", "metrics", "traces", "profiles", "topic_from_attribute", "include_metadata_keys", "record_headers",
			"partition_traces_by_id", "partition_metrics_by_resource_attributes", "partition_logs_by_resource_attributes",
			"partition_logs_by_trace_id", "record_partitioner", "tls", "auth", "metadata", "timeout", "retry_on_failure",
			"sending_queue", "producer"},
		"exporters.kafka.signal":     {"topic", "encoding", "topic_from_metadata_key", "message_key_from_metadata_key"},
		"exporters.kafka.producer":   {"max_message_bytes", "max_broker_write_bytes", "required_acks", "compression", "compression_params", "flush_max_messages", "allow_auto_topic_creation", "linger"},
		"processors.batch":           {"timeout", "send_batch_size", "send_batch_max_size", "metadata_keys", "metadata_cardinality_limit"},
		"extensions.bearertokenauth": {"token", "filename", "scheme", "header", "tokens"},
		"receivers.otlp.protocol": {"endpoint", "include_metadata", "tls", "max_recv_msg_size_mib", "max_concurrent_streams",
			"read_buffer_size", "write_buffer_size", "keepalive", "auth", "cors", "traces_url_path", "metrics_url_path", "logs_url_path"},
	}
	helmKeys = []string{"name", "type", "url", "urlFrom", "protocol", "proxyURL", "tenantId", "tenantIdKey", "tenantIdFrom",
		"extraHeaders", "extraHeadersFrom", "clusterLabels", "readBufferSize", "writeBufferSize",
		"auth.type", "auth.bearerToken", "auth.bearerTokenKey", "auth.bearerTokenFrom", "auth.bearerTokenFile",
		"auth.username", "auth.usernameKey", "auth.usernameFrom", "auth.password", "auth.passwordKey", "auth.passwordFrom",
		"secret.create", "secret.embed", "secret.name", "secret.namespace",
		"tls.insecure", "tls.insecureSkipVerify", "tls.ca", "tls.caFile", "tls.caFrom", "tls.cert", "tls.certFile", "tls.certFrom",
		"tls.key", "tls.keyFile", "tls.keyFrom",
		"metrics.enabled", "logs.enabled", "traces.enabled",
		"processors.batch.enabled", "processors.batch.size", "processors.batch.maxSize", "processors.batch.timeout",
		"processors.memoryLimiter.enabled", "processors.memoryLimiter.checkInterval", "processors.memoryLimiter.limit",
		"retryOnFailure.enabled", "retryOnFailure.initialInterval", "retryOnFailure.maxInterval", "retryOnFailure.maxElapsedTime"}
	alloyKafkaKeys = []string{"protocol_version", "brokers", "topic", "topic_from_attribute", "encoding", "client_id", "timeout",
		"resolve_canonical_bootstrap_servers_only", "allow_auto_topic_creation", "conn_idle_timeout", "include_metadata_keys",
		"partition_metrics_by_resource_attributes", "partition_traces_by_id", "partition_logs_by_resource_attributes"}
)

// keysIn reports the keys of m not in allowed.
func keysIn(m map[string]any, allowed []string) []string {
	var bad []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad)
	return bad
}

func mapAt(v any) map[string]any { m, _ := v.(map[string]any); return m }

// sluicePorts are the OTLP ports of the Helm chart's ingest Service
// (deploy/helm/sluice values.yaml, ports), checked against the listeners
// the chart writes into the config from them. The chart's own tests
// (deploy/) render it and check the Services and listeners agree.
func sluicePorts(t *testing.T) (grpc, http string) {
	t.Helper()
	data, err := os.ReadFile("../../deploy/helm/sluice/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Ports struct{ GRPC, HTTP int }
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	grpc, http = fmt.Sprint(values.Ports.GRPC), fmt.Sprint(values.Ports.HTTP)
	helpers, err := os.ReadFile("../../deploy/helm/sluice/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	if values.Ports.GRPC == 0 || values.Ports.HTTP == 0 || !bytes.Contains(helpers, []byte("grpc_listen: 0.0.0.0:{{ $v.ports.grpc }}")) ||
		!bytes.Contains(helpers, []byte("http_listen: 0.0.0.0:{{ $v.ports.http }}")) {
		t.Fatalf("the chart's OTLP ports (%q, %q) are not its config's listeners", grpc, http)
	}
	return grpc, http
}

// endpointPort is the port of an endpoint written host:port or as a URL.
func endpointPort(ep string) string {
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		return u.Port()
	}
	_, port, _ := net.SplitHostPort(ep)
	return port
}

// Every snippet of docs/agents.md is one the components it is for accept,
// as far as can be checked without running them (see the page's "What the
// snippets' test checks"), and points at the ports, header and topics
// sluice uses.
func TestAgentsDocSnippets(t *testing.T) {
	grpcPort, httpPort := sluicePorts(t)
	all := snippets(t, "../../docs/agents.md")
	count := map[string]int{}
	for _, s := range all {
		count[s.lang+" "+s.tag]++
	}
	for _, k := range []string{"yaml sluice", "yaml collector", "yaml helm", "alloy "} {
		if count[k] == 0 {
			t.Fatalf("no %q snippet in docs/agents.md (found %v)", k, count)
		}
	}

	// The sluice config of the page, whole: `sluice check` accepts it.
	var raw struct {
		Worker struct {
			RawTopics    map[string]string `yaml:"raw_topics"`
			TenantHeader string            `yaml:"tenant_header"`
			RawEncoding  string            `yaml:"raw_encoding"`
		}
	}
	for _, s := range all {
		if s.lang != "yaml" || s.tag != "sluice" {
			continue
		}
		path := filepath.Join(t.TempDir(), "sluice.yaml")
		os.WriteFile(path, []byte(s.text), 0o644)
		if out, err := run(t, "check", "-c", path); err != nil {
			t.Errorf("%s: sluice check: %v %s", s, err, out)
		}
		if err := yaml.Unmarshal([]byte(s.text), &raw); err != nil {
			t.Fatal(err)
		}
	}
	if len(raw.Worker.RawTopics) != 3 || raw.Worker.TenantHeader == "" {
		t.Fatalf("the sluice snippet names no raw topics or tenant header: %+v", raw.Worker)
	}

	for _, s := range all {
		switch {
		case s.lang == "yaml" && s.tag == "collector":
			checkCollector(t, s, grpcPort, httpPort, raw.Worker.RawTopics, raw.Worker.TenantHeader, raw.Worker.RawEncoding)
		case s.lang == "yaml" && s.tag == "helm":
			checkHelm(t, s, grpcPort, httpPort)
		case s.lang == "alloy":
			checkAlloy(t, s, grpcPort, httpPort, raw.Worker.RawTopics, raw.Worker.TenantHeader)
		case s.lang == "yaml":
			var v any
			if err := yaml.Unmarshal([]byte(s.text), &v); err != nil {
				t.Errorf("%s: %v", s, err)
			}
		}
	}
}

func checkCollector(t *testing.T, s snippet, grpcPort, httpPort string, topics map[string]string, tenantHeader, encoding string) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(s.text), &cfg); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	for _, id := range slices.Sorted(maps.Keys(mapAt(cfg["exporters"]))) {
		e := mapAt(mapAt(cfg["exporters"])[id])
		typ, _, _ := strings.Cut(id, "/")
		switch typ { // the names of recent Collector releases
		case "otlp_grpc":
			typ = "otlp"
		case "otlp_http":
			typ = "otlphttp"
		}
		allowed, ok := collectorKeys["exporters."+typ]
		if !ok {
			t.Errorf("%s: exporter %s is not one the page is about", s, id)
			continue
		}
		if bad := keysIn(e, allowed); len(bad) > 0 {
			t.Errorf("%s: exporter %s: unknown keys %v", s, id, bad)
		}
		if bad := keysIn(mapAt(e["sending_queue"]), queueKeys); len(bad) > 0 {
			t.Errorf("%s: exporter %s: sending_queue: unknown keys %v", s, id, bad)
		}
		if bad := keysIn(mapAt(e["retry_on_failure"]), retryKeys); len(bad) > 0 {
			t.Errorf("%s: exporter %s: retry_on_failure: unknown keys %v", s, id, bad)
		}
		if bad := keysIn(mapAt(e["tls"]), tlsKeys); len(bad) > 0 {
			t.Errorf("%s: exporter %s: tls: unknown keys %v", s, id, bad)
		}
		for h := range mapAt(e["headers"]) {
			if h != "X-Scope-OrgID" {
				t.Errorf("%s: exporter %s: header %q; sluice reads X-Scope-OrgID", s, id, h)
			}
		}
		switch typ {
		case "otlp", "otlphttp":
			ep, _ := e["endpoint"].(string)
			want := map[string]string{"otlp": grpcPort, "otlphttp": httpPort}[typ]
			if endpointPort(ep) != want || !strings.Contains(ep, "sluice-ingest.") {
				t.Errorf("%s: exporter %s: endpoint %q, want the Service sluice-ingest, port %s", s, id, ep, want)
			}
			if auth := mapAt(e["auth"]); auth != nil {
				name, _ := auth["authenticator"].(string)
				if !strings.HasPrefix(name, "bearertokenauth") {
					t.Errorf("%s: exporter %s: authenticator %q", s, id, name)
				}
			}
			if c, _ := e["compression"].(string); typ == "otlp" && c != "" && c != "gzip" && c != "zstd" && c != "none" {
				t.Errorf("%s: exporter %s: compression %q: sluice's gRPC takes gzip, zstd or none", s, id, c)
			}
		case "kafka":
			for sig, want := range topics {
				sc := mapAt(e[sig])
				if bad := keysIn(sc, collectorKeys["exporters.kafka.signal"]); len(bad) > 0 {
					t.Errorf("%s: kafka %s: unknown keys %v", s, sig, bad)
				}
				if sc["topic"] != want || sc["encoding"] != encoding {
					t.Errorf("%s: kafka %s: topic %v, encoding %v; worker.raw_topics.%s is %s, raw_encoding %s", s, sig, sc["topic"], sc["encoding"], sig, want, encoding)
				}
			}
			if bad := keysIn(mapAt(e["producer"]), collectorKeys["exporters.kafka.producer"]); len(bad) > 0 {
				t.Errorf("%s: kafka producer: unknown keys %v", s, bad)
			}
			keys, _ := e["include_metadata_keys"].([]any)
			if !slices.ContainsFunc(keys, func(k any) bool { ks, _ := k.(string); return strings.EqualFold(ks, tenantHeader) }) {
				t.Errorf("%s: kafka include_metadata_keys %v lacks worker.tenant_header %s", s, keys, tenantHeader)
			}
		}
	}
	for id, p := range mapAt(cfg["processors"]) {
		if typ, _, _ := strings.Cut(id, "/"); typ == "batch" {
			if bad := keysIn(mapAt(p), collectorKeys["processors.batch"]); len(bad) > 0 {
				t.Errorf("%s: processor %s: unknown keys %v", s, id, bad)
			}
		}
	}
	for id, x := range mapAt(cfg["extensions"]) {
		if typ, _, _ := strings.Cut(id, "/"); typ == "bearertokenauth" {
			if bad := keysIn(mapAt(x), collectorKeys["extensions.bearertokenauth"]); len(bad) > 0 {
				t.Errorf("%s: extension %s: unknown keys %v", s, id, bad)
			}
		}
	}
	for id, r := range mapAt(cfg["receivers"]) {
		for proto, c := range mapAt(mapAt(r)["protocols"]) {
			if bad := keysIn(mapAt(c), collectorKeys["receivers.otlp.protocol"]); len(bad) > 0 {
				t.Errorf("%s: receiver %s %s: unknown keys %v", s, id, proto, bad)
			}
		}
	}
}

// flatten lists the dotted paths of the leaves of m.
func flatten(prefix string, m map[string]any, out []string) []string {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out = flatten(prefix+k+".", sub, out)
		} else {
			out = append(out, prefix+k)
		}
	}
	return out
}

func checkHelm(t *testing.T, s snippet, grpcPort, httpPort string) {
	var values struct {
		Destinations []map[string]any `yaml:"destinations"`
	}
	if err := yaml.Unmarshal([]byte(s.text), &values); err != nil {
		t.Errorf("%s: %v", s, err)
		return
	}
	if len(values.Destinations) == 0 {
		t.Errorf("%s: no destinations", s)
	}
	for _, d := range values.Destinations {
		for _, k := range flatten("", d, nil) {
			if !slices.Contains(helmKeys, k) {
				t.Errorf("%s: destination %v: %s is not a value of the otlp destination", s, d["name"], k)
			}
		}
		u, _ := d["url"].(string)
		want := map[string]string{"grpc": grpcPort, "http": httpPort}[fmt.Sprint(d["protocol"])]
		if d["type"] != "otlp" || want == "" || endpointPort(u) != want {
			t.Errorf("%s: destination %v: type %v, protocol %v, url %q: want type otlp and the port of the protocol", s, d["name"], d["type"], d["protocol"], u)
		}
	}
}

var (
	alloyComponent = regexp.MustCompile(`(?m)^(otelcol\.exporter\.(?:otlphttp|otlp|kafka)) "[^"]+" \{`)
	alloyEndpoint  = regexp.MustCompile(`endpoint\s*=\s*"([^"]+)"`)
	alloyHeaders   = regexp.MustCompile(`headers\s*=\s*\{([^}]*)\}`)
	alloyKey       = regexp.MustCompile(`"([^"]+)"\s*=`)
	alloyArg       = regexp.MustCompile(`(?m)^  (\w+)\s*=`)
)

func checkAlloy(t *testing.T, s snippet, grpcPort, httpPort string, topics map[string]string, tenantHeader string) {
	locs := alloyComponent.FindAllStringSubmatchIndex(s.text, -1)
	if len(locs) == 0 {
		return // no exporter in this block
	}
	for i, loc := range locs {
		end := len(s.text)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		kind, body := s.text[loc[2]:loc[3]], s.text[loc[1]:end]
		for _, h := range alloyHeaders.FindAllStringSubmatch(body, -1) {
			for _, k := range alloyKey.FindAllStringSubmatch(h[1], -1) {
				if k[1] != "X-Scope-OrgID" {
					t.Errorf("%s: %s: header %q; sluice reads X-Scope-OrgID", s, kind, k[1])
				}
			}
		}
		switch kind {
		case "otelcol.exporter.otlp", "otelcol.exporter.otlphttp":
			want := grpcPort
			if kind == "otelcol.exporter.otlphttp" {
				want = httpPort
			}
			m := alloyEndpoint.FindStringSubmatch(body)
			if m == nil || endpointPort(m[1]) != want || !strings.Contains(m[1], "sluice-ingest.") {
				t.Errorf("%s: %s: endpoint %v, want the Service sluice-ingest, port %s", s, kind, m, want)
			}
		case "otelcol.exporter.kafka":
			for _, a := range alloyArg.FindAllStringSubmatch(body, -1) {
				if !slices.Contains(alloyKafkaKeys, a[1]) {
					t.Errorf("%s: %s: unknown argument %s", s, kind, a[1])
				}
			}
			if !strings.Contains(body, `"`+tenantHeader+`"`) {
				t.Errorf("%s: %s: include_metadata_keys lacks worker.tenant_header %s", s, kind, tenantHeader)
			}
			// The page uses the exporter's default topics: they must be
			// the sluice snippet's.
			if !strings.Contains(body, "topic") {
				for sig, want := range map[string]string{"metrics": "otlp_metrics", "logs": "otlp_logs", "traces": "otlp_spans"} {
					if topics[sig] != want {
						t.Errorf("%s: %s writes the default topic %s for %s, the sluice snippet reads %s", s, kind, want, sig, topics[sig])
					}
				}
			}
		}
	}
}

// The rules workflow installs this module's sluice and runs `rules check`
// and `rules test` on one directory; both commands pass on the example
// rules.
func TestRulesCIWorkflow(t *testing.T) {
	data, err := os.ReadFile("../../docs/examples/rules-ci.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On   map[string]any    `yaml:"on"`
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			Steps []struct {
				Uses string `yaml:"uses"`
				Run  string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	if wf.On["pull_request"] == nil {
		t.Error("the workflow does not run on pull requests")
	}
	var runs []string
	for _, j := range wf.Jobs {
		for _, st := range j.Steps {
			runs = append(runs, st.Run)
		}
	}
	all := strings.Join(runs, "\n")
	for _, want := range []string{"go install \"github.com/sluice-dev/sluice/cmd/sluice@", `sluice rules check "$RULES_DIR"`, `sluice rules test "$RULES_DIR"`} {
		if !strings.Contains(all, want) {
			t.Errorf("no step runs %s", want)
		}
	}
	if wf.Env["RULES_DIR"] == "" || wf.Env["SLUICE_VERSION"] == "" {
		t.Errorf("env %v", wf.Env)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil || !bytes.HasPrefix(mod, []byte("module github.com/sluice-dev/sluice\n")) {
		t.Fatalf("go.mod does not name the module the workflow installs")
	}
	for _, cmd := range []string{"check", "test"} {
		if out, err := run(t, "rules", cmd, "../../examples/rules"); err != nil {
			t.Errorf("sluice rules %s examples/rules: %v %s", cmd, err, out)
		}
	}
}
