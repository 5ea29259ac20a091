package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/app"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// optoolsBus is a bus for the operator tools' tests: the config lines of
// the bus section, and how to list what a tap could leave behind.
type optoolsBus struct {
	name string
	yaml func(t *testing.T, dir string) string
}

func kafkaToolsBus(t *testing.T) optoolsBus {
	brokers := kafkatest.Brokers(t)
	return optoolsBus{name: "kafka", yaml: func(t *testing.T, _ string) string {
		return fmt.Sprintf("  kind: kafka\n  topic_prefix: %s\n  kafka:\n    brokers: [%s]\n", kafkatest.Topic(t, "optools"), strings.Join(brokers, ", "))
	}}
}

// natsToolsBus runs a nats-server with JetStream for the test, on a free
// port of 127.0.0.1.
func natsToolsBus(t *testing.T) optoolsBus {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return optoolsBus{name: "nats", yaml: func(*testing.T, string) string {
		return fmt.Sprintf("  kind: nats\n  nats:\n    url: %s\n", srv.ClientURL())
	}}
}

func embeddedToolsBus(listen string) optoolsBus {
	return optoolsBus{name: "embedded", yaml: func(t *testing.T, dir string) string {
		return fmt.Sprintf("  kind: embedded\n  data_dir: %q\n  embedded:\n    listen: %s\n    token: s3cret\n", filepath.Join(dir, "data"), listen)
	}}
}

// toolsConfig writes a config for bus with a worker group of its own and
// no aggregator or sinks unless extra adds them.
func toolsConfig(t *testing.T, bus optoolsBus, partitions int, extra string) string {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	os.Mkdir(rules, 0o755)
	path := filepath.Join(dir, "sluice.yaml")
	yaml := fmt.Sprintf(`bus:
%s  partitions: %d
ingest:
  grpc_listen: ""
  http_listen: 127.0.0.1:0
  trust_tenant_header: true
admin:
  listen: ""
worker:
  group: %s
  aggregator: false
rules:
  dir: %q
log:
  level: warn
%s`, bus.yaml(t, dir), partitions, kafkatest.Group(t, "optools-worker"), rules, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startToolsSluice(t *testing.T, path string, roles app.Roles) *app.Process {
	t.Helper()
	cfg, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.Start(context.Background(), cfg, roles, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

func post(t *testing.T, p *app.Process, signal string, req proto.Message) {
	t.Helper()
	body, _ := proto.Marshal(req)
	hreq, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTPAddr()+"/v1/"+signal, bytes.NewReader(body))
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Scope-OrgID", "acme")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /v1/%s: %d %s", signal, resp.StatusCode, b)
	}
}

// tapLines runs `sluice tap` in process and returns its JSON lines,
// decoded.
func tapLines(t *testing.T, args ...string) ([]map[string]any, error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"tap"}, args...))
	err := root.Execute()
	var items []map[string]any
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("tap printed a line that is not JSON: %q: %v", sc.Text(), err)
		}
		items = append(items, m)
	}
	return items, err
}

// tapAll taps topic from the beginning until it is idle for a second,
// again until it has at least want items (the worker may still be writing,
// the first fetch may be slow), for at most a minute.
func tapAll(t *testing.T, path, topic string, want int, args ...string) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		items, err := tapLines(t, append([]string{topic, "-c", path, "--from-beginning", "--until-idle", "1s"}, args...)...)
		if err != nil {
			t.Fatalf("tap %s: %v", topic, err)
		}
		if len(items) >= want || time.Now().After(deadline) {
			return items
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// The items each signal's request holds, as tap should print them (the
// record's fields left out): built from the same numbers as the requests,
// not by tap's code.
type toolsInput struct {
	metrics *colmetrics.ExportMetricsServiceRequest
	logs    *collogs.ExportLogsServiceRequest
	traces  *coltrace.ExportTraceServiceRequest
	want    map[string][]map[string]any // by signal
}

const t0 = 1_760_000_000_000_000_000

func ts(off int) string { return time.Unix(0, t0+int64(off)).UTC().Format(time.RFC3339Nano) }

func parity(i int) string { return []string{"even", "odd"}[i%2] }

func kvInt(k string, v int) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(v)}}}
}

func toolsRequests(n int) toolsInput {
	in := toolsInput{want: map[string][]map[string]any{}}
	scope := &common.InstrumentationScope{Name: "tools", Version: "1"}
	wantScope := map[string]any{"name": "tools", "version": "1"}
	for r := range 2 {
		res := &resource.Resource{Attributes: []*common.KeyValue{strAttr("service.name", fmt.Sprintf("svc-%d", r))}}
		wantRes := map[string]any{"service.name": fmt.Sprintf("svc-%d", r)}

		gauge, sum := &metrics.Gauge{}, &metrics.Sum{AggregationTemporality: metrics.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, IsMonotonic: true}
		sl := &logs.ScopeLogs{Scope: scope}
		ss := &trace.ScopeSpans{Scope: scope}
		for i := range n {
			k := r*n + i
			attrs := []*common.KeyValue{kvInt("i", k), strAttr("parity", parity(k))}
			wantAttrs := map[string]any{"i": float64(k), "parity": parity(k)}
			gauge.DataPoints = append(gauge.DataPoints, &metrics.NumberDataPoint{TimeUnixNano: uint64(t0 + k), Attributes: attrs,
				Value: &metrics.NumberDataPoint_AsDouble{AsDouble: float64(k) * 1.5}})
			in.want["metrics"] = append(in.want["metrics"], map[string]any{"signal": "metrics", "resource": wantRes, "scope": wantScope,
				"metric": map[string]any{"name": "tools_gauge", "type": "gauge", "unit": "1"},
				"point":  map[string]any{"time": ts(k), "attributes": wantAttrs, "value": float64(k) * 1.5}})
			sum.DataPoints = append(sum.DataPoints, &metrics.NumberDataPoint{StartTimeUnixNano: t0, TimeUnixNano: uint64(t0 + k), Attributes: attrs,
				Value: &metrics.NumberDataPoint_AsInt{AsInt: int64(k)}})
			in.want["metrics"] = append(in.want["metrics"], map[string]any{"signal": "metrics", "resource": wantRes, "scope": wantScope,
				"metric": map[string]any{"name": "tools_total", "type": "sum", "temporality": "cumulative", "monotonic": true},
				"point":  map[string]any{"time": ts(k), "start_time": ts(0), "attributes": wantAttrs, "value": float64(k)}})

			tid, sid := make([]byte, 16), make([]byte, 8)
			tid[0], tid[15], sid[7] = byte(r+1), byte(i), byte(i+1)
			sl.LogRecords = append(sl.LogRecords, &logs.LogRecord{TimeUnixNano: uint64(t0 + k), SeverityNumber: logs.SeverityNumber(9 + k%8), SeverityText: "INFO",
				Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprintf("log %d", k)}}, Attributes: attrs, TraceId: tid, SpanId: sid})
			in.want["logs"] = append(in.want["logs"], map[string]any{"signal": "logs", "resource": wantRes, "scope": wantScope,
				"log": map[string]any{"time": ts(k), "severity_number": float64(9 + k%8), "severity_text": "INFO", "body": fmt.Sprintf("log %d", k),
					"attributes": wantAttrs, "trace_id": hex.EncodeToString(tid), "span_id": hex.EncodeToString(sid)}})

			span := &trace.Span{TraceId: tid, SpanId: sid, Name: fmt.Sprintf("op-%d", k), Kind: trace.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: t0, EndTimeUnixNano: uint64(t0 + k*1_000_000), Attributes: attrs}
			wantSpan := map[string]any{"trace_id": hex.EncodeToString(tid), "span_id": hex.EncodeToString(sid), "name": fmt.Sprintf("op-%d", k),
				"kind": "client", "start_time": ts(0), "end_time": ts(k * 1_000_000), "duration_ms": float64(k), "attributes": wantAttrs, "status_code": "unset"}
			if k%2 == 1 {
				span.Status = &trace.Status{Code: trace.Status_STATUS_CODE_ERROR, Message: "boom"}
				wantSpan["status_code"], wantSpan["status_message"] = "error", "boom"
			}
			ss.Spans = append(ss.Spans, span)
			in.want["traces"] = append(in.want["traces"], map[string]any{"signal": "traces", "resource": wantRes, "scope": wantScope, "span": wantSpan})
		}
		if in.metrics == nil {
			in.metrics, in.logs, in.traces = &colmetrics.ExportMetricsServiceRequest{}, &collogs.ExportLogsServiceRequest{}, &coltrace.ExportTraceServiceRequest{}
		}
		in.metrics.ResourceMetrics = append(in.metrics.ResourceMetrics, &metrics.ResourceMetrics{Resource: res, ScopeMetrics: []*metrics.ScopeMetrics{{Scope: scope, Metrics: []*metrics.Metric{
			{Name: "tools_gauge", Unit: "1", Data: &metrics.Metric_Gauge{Gauge: gauge}},
			{Name: "tools_total", Data: &metrics.Metric_Sum{Sum: sum}},
		}}}})
		in.logs.ResourceLogs = append(in.logs.ResourceLogs, &logs.ResourceLogs{Resource: res, ScopeLogs: []*logs.ScopeLogs{sl}})
		in.traces.ResourceSpans = append(in.traces.ResourceSpans, &trace.ResourceSpans{Resource: res, ScopeSpans: []*trace.ScopeSpans{ss}})
	}
	return in
}

// itemsOnly strips the record's fields (topic, partition, offset,
// headers) from tap's items and sorts them, to compare with the input.
func itemsOnly(items []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		c := map[string]any{}
		for k, v := range it {
			switch k {
			case "topic", "partition", "offset", "headers":
			default:
				c[k] = v
			}
		}
		out = append(out, c)
	}
	return sortItems(out)
}

func sortItems(items []map[string]any) []map[string]any {
	key := func(m map[string]any) string { b, _ := json.Marshal(m); return string(b) }
	slices.SortFunc(items, func(a, b map[string]any) int { return strings.Compare(key(a), key(b)) })
	return items
}

// keep returns the items of want for which match is true.
func keep(want []map[string]any, match func(m map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, m := range want {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// attrsOf is the attributes of a wanted item.
func attrsOf(m map[string]any) map[string]any {
	for _, k := range []string{"point", "log", "span"} {
		if v, ok := m[k].(map[string]any); ok {
			return v["attributes"].(map[string]any)
		}
	}
	return nil
}

// tapBuses runs fn against Kafka (skipped without a broker), a NATS
// JetStream server and the embedded bus, reached through its listener.
func tapBuses(t *testing.T, fn func(t *testing.T, bus optoolsBus)) {
	t.Run("kafka", func(t *testing.T) { fn(t, kafkaToolsBus(t)) })
	t.Run("nats", func(t *testing.T) { fn(t, natsToolsBus(t)) })
	t.Run("embedded", func(t *testing.T) { fn(t, embeddedToolsBus(testproc.FreeAddr(t))) })
}

// tap prints the items of the raw and processed topics of each signal
// exactly as they were sent (compared item by item, values and all), with
// the records' headers; --filter keeps exactly the items its condition
// matches; a bad filter is an error placed at its column.
func TestTapDecodesEverySignal(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		path := toolsConfig(t, bus, 2, "")
		p := startToolsSluice(t, path, app.Roles{Ingest: true, Worker: true})
		in := toolsRequests(15)
		post(t, p, "metrics", in.metrics)
		post(t, p, "logs", in.logs)
		post(t, p, "traces", in.traces)
		for _, sig := range []string{"metrics", "logs", "traces"} {
			want := sortItems(in.want[sig])
			for _, stage := range []string{"raw", "processed"} {
				topic := stage + "." + sig
				items := tapAll(t, path, topic, len(want))
				if diff := cmp.Diff(want, itemsOnly(items)); diff != "" {
					t.Errorf("tap %s: items differ from those sent (-sent +tapped):\n%s", topic, diff)
				}
				for _, it := range items {
					h, _ := it["headers"].(map[string]any)
					if h["sluice-tenant"] != "acme" || !strings.HasSuffix(it["topic"].(string), "."+topic) {
						t.Fatalf("tap %s: item without its record's topic and headers: %v", topic, it)
					}
				}
			}
		}

		even := func(m map[string]any) bool { return attrsOf(m)["parity"] == "even" }
		for _, c := range []struct {
			topic, filter string
			match         func(m map[string]any) bool
		}{
			{"processed.metrics", `attributes["parity"] == "even" && name == "tools_gauge"`, func(m map[string]any) bool {
				return even(m) && m["metric"].(map[string]any)["name"] == "tools_gauge"
			}},
			{"raw.metrics", `value > 20 && resource["service.name"] == "svc-1"`, func(m map[string]any) bool {
				return m["point"].(map[string]any)["value"].(float64) > 20 && m["resource"].(map[string]any)["service.name"] == "svc-1"
			}},
			{"processed.logs", `severity_number >= 13 && body matches "log 1"`, func(m map[string]any) bool {
				l := m["log"].(map[string]any)
				return l["severity_number"].(float64) >= 13 && strings.Contains(l["body"].(string), "log 1")
			}},
			{"processed.traces", `status_code == "error" && duration_ms < 10`, func(m map[string]any) bool {
				s := m["span"].(map[string]any)
				return s["status_code"] == "error" && s["duration_ms"].(float64) < 10
			}},
			// An item the expression fails on (parse_int of "even") is left
			// out, as with on_error: drop; "||" spares the item 3.
			{"processed.logs", `attributes["i"] == 3 || parse_int(attributes["parity"]) > 0`, func(m map[string]any) bool {
				return attrsOf(m)["i"] == 3.0
			}},
		} {
			want := sortItems(keep(in.want[strings.TrimPrefix(strings.TrimPrefix(c.topic, "processed."), "raw.")], c.match))
			if len(want) == 0 || len(want) == len(in.want[strings.TrimPrefix(strings.TrimPrefix(c.topic, "processed."), "raw.")]) {
				t.Fatalf("filter %q: the test must keep some items and leave out others (keeps %d)", c.filter, len(want))
			}
			items := tapAll(t, path, c.topic, len(want), "--filter", c.filter)
			if diff := cmp.Diff(want, itemsOnly(items)); diff != "" {
				t.Errorf("tap %s --filter %q: (-matching +tapped):\n%s", c.topic, c.filter, diff)
			}
		}

		for _, c := range []struct{ topic, filter, want string }{
			{"processed.metrics", `atributes["x"] == "a"`, `--filter:1:1: unknown name atributes (did you mean attributes?)`},
			{"processed.logs", `severity_number >= 17 && nme == "x"`, `--filter:1:26: unknown name nme`},
			{"processed.traces", `duration_ms > "x"`, `--filter:1:13: invalid operation`},
		} {
			_, err := tapLines(t, c.topic, "-c", path, "--filter", c.filter)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("tap %s --filter %q: %v, want an error containing %q", c.topic, c.filter, err, c.want)
			}
		}
	})
}

// toolBus opens the bus of the config at path as the tools do.
func toolBus(t *testing.T, path string) app.ToolBus {
	t.Helper()
	cfg, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := app.OpenToolBus(cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return bus
}

// leftovers lists what a tap could leave on the bus: Kafka's consumer
// groups, JetStream's consumers of the pipeline's streams.
func leftovers(t *testing.T, bus optoolsBus, path string) []string {
	t.Helper()
	cfg, err := app.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	if bus.name == "kafka" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Bus.Kafka.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Only the groups that read or committed this pipeline's topics:
		// the other packages' tests share the broker and make groups of
		// their own meanwhile.
		described, err := adm.DescribeGroups(ctx, groups.Groups()...)
		if err != nil {
			t.Fatal(err)
		}
		offsets := adm.FetchManyOffsets(ctx, groups.Groups()...)
		ours := topicNames(cfg)
		for _, g := range groups.Groups() {
			d := described[g]
			touched := slices.ContainsFunc(ours, func(topic string) bool {
				_, assigned := d.AssignedPartitions()[topic]
				_, committed := offsets[g].Fetched[topic]
				return assigned || committed
			})
			if touched {
				out = append(out, "group "+g)
			}
		}
		slices.Sort(out)
		return out
	}
	url := cfg.Bus.NATS.URL
	if bus.name == "embedded" {
		url = "nats://" + cfg.Bus.Embedded.Listen
	}
	nc, err := natsgo.Connect(url, natsgo.Token(cfg.Bus.Embedded.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topicNames(cfg) {
		st, err := js.Stream(ctx, strings.ReplaceAll(name, ".", "_"))
		if err != nil {
			t.Fatal(err)
		}
		names := st.ConsumerNames(ctx)
		for n := range names.Name() {
			out = append(out, name+" consumer "+n)
		}
		if err := names.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// --sample keeps a fraction of the items within the binomial bounds, the
// same items for the same --seed; a record tap cannot decode (a raw record
// of garbage) is one object with its size and the error, and its dead
// letter shows the worker's error in its headers; tap leaves no consumer
// group or consumer behind and creates no topic.
func TestTapSampleDeadLettersAndNoTrace(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		path := toolsConfig(t, bus, 2, "")
		p := startToolsSluice(t, path, app.Roles{Ingest: true, Worker: true})
		before := leftovers(t, bus, path)
		in := toolsRequests(300) // 600 log records
		post(t, p, "logs", in.logs)
		tb := toolBus(t, path)
		garbage := []byte("\xff\xff not OTLP")
		cfg, _ := app.Load(path)
		rawLogs := cfg.Bus.TopicPrefix + ".raw.logs"
		if err := tb.Produce(context.Background(), &stream.Record{Topic: rawLogs, Partition: 0, Value: garbage, Headers: []stream.Header{
			{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)}, {Key: stream.HeaderSignal, Value: []byte("logs")},
			{Key: stream.HeaderTenant, Value: []byte("acme")}}}); err != nil {
			t.Fatal(err)
		}
		all := tapAll(t, path, "processed.logs", 600)
		if len(all) != 600 {
			t.Fatalf("processed.logs: %d items, want 600", len(all))
		}

		raw := tapAll(t, path, "raw.logs", 601)
		var bad []map[string]any
		for _, it := range raw {
			if _, ok := it["error"]; ok {
				bad = append(bad, it)
			}
		}
		if len(raw) != 601 || len(bad) != 1 || bad[0]["bytes"] != float64(len(garbage)) || bad[0]["partition"] != 0.0 ||
			!strings.Contains(bad[0]["error"].(string), "malformed") {
			t.Fatalf("raw.logs: %d items, want 600 and the garbage record as {bytes, error}: %v", len(raw), bad)
		}
		dlq := tapAll(t, path, "dlq", 1)
		if len(dlq) != 1 {
			t.Fatalf("dlq: %v, want the garbage record", dlq)
		}
		h, _ := dlq[0]["headers"].(map[string]any)
		if dlq[0]["bytes"] != float64(len(garbage)) || h[stream.HeaderError] == nil || !strings.HasPrefix(h[stream.HeaderOrigin].(string), rawLogs+"/0/") {
			t.Fatalf("dlq: %v, want the garbage record with the worker's error and its origin in the headers", dlq[0])
		}

		sampled := func(rate, seed string) []map[string]any {
			items, err := tapLines(t, "processed.logs", "-c", path, "--from-beginning", "--until-idle", "2s", "--sample", rate, "--seed", seed)
			if err != nil {
				t.Fatal(err)
			}
			return itemsOnly(items)
		}
		for _, c := range []struct {
			rate     string
			min, max int // 600 × rate ± 4.5 standard deviations
		}{{"0.1", 27, 93}, {"0.5", 245, 355}} {
			a, b, other := sampled(c.rate, "7"), sampled(c.rate, "7"), sampled(c.rate, "8")
			if len(a) < c.min || len(a) > c.max || len(other) < c.min || len(other) > c.max {
				t.Errorf("--sample %s: kept %d and %d of 600 items, want %d to %d", c.rate, len(a), len(other), c.min, c.max)
			}
			if diff := cmp.Diff(a, b); diff != "" {
				t.Errorf("--sample %s --seed 7 kept other items the second time:\n%s", c.rate, diff)
			}
			if cmp.Equal(a, other) {
				t.Errorf("--sample %s: seeds 7 and 8 kept the same %d items", c.rate, len(a))
			}
			for _, it := range a {
				if !slices.ContainsFunc(in.want["logs"], func(w map[string]any) bool { return cmp.Equal(w, it) }) {
					t.Fatalf("--sample %s printed an item that was not sent: %v", c.rate, it)
				}
			}
		}
		if items, _ := tapLines(t, "processed.logs", "-c", path, "--from-beginning", "--until-idle", "2s", "--sample", "0"); len(items) != 0 {
			t.Errorf("--sample 0 printed %d items", len(items))
		}
		// The worker's own group may join after before was taken (Kafka).
		for _, l := range leftovers(t, bus, path) {
			if !slices.Contains(before, l) && !strings.Contains(l, cfg.Worker.Group) {
				t.Errorf("tap left %s on the bus (before the taps: %v)", l, before)
			}
		}

		// A pipeline whose topics do not exist: tap fails, creating none.
		other := strings.Replace(path, "sluice.yaml", "other.yaml", 1)
		data, _ := os.ReadFile(path)
		data = bytes.Replace(data, []byte("  topic_prefix: "), []byte("  topic_prefix: none-"), 1)
		if bus.name != "kafka" {
			data = bytes.Replace(data, []byte("  partitions:"), []byte("  topic_prefix: none\n  partitions:"), 1)
		}
		os.WriteFile(other, data, 0o644)
		if _, err := tapLines(t, "raw.metrics", "-c", other, "--until-idle", "100ms"); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("tap of a topic that does not exist: %v, want an error saying so", err)
		}
		out, err := run(t, "topics", "describe", "-c", other)
		if err != nil || strings.Count(out, "(missing)") != len(app.TopicSpecs(cfg)) {
			t.Errorf("after tap of a missing topic, topics describe: %v\n%s\nwant every topic missing", err, out)
		}
	})
}

// lagRows runs `sluice lag -o json`.
func lagRows(t *testing.T, path string) []map[string]any {
	t.Helper()
	out, err := run(t, "lag", "-c", path, "-o", "json")
	if err != nil {
		t.Fatalf("lag: %v\n%s", err, out)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("lag -o json: %v\n%s", err, out)
	}
	return rows
}

// After N records produced to one partition and M of them consumed and
// committed by the worker group, lag reports exactly N-M for it there (on
// NATS, with the records polled and not committed in flight), 0 for every
// other partition and group, and the sink's group on its processed topic.
func TestLagExact(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		const n, m = 50, 20
		path := toolsConfig(t, bus, 2, fmt.Sprintf("sinks:\n  - name: archive\n    type: file\n    signals: [metrics]\n    path: %q\n", t.TempDir()))
		if bus.name == "embedded" {
			startToolsSluice(t, path, app.Roles{Ingest: true}) // the server, reached through its listener
		} else if out, err := run(t, "topics", "create", "-c", path); err != nil {
			t.Fatalf("topics create: %v\n%s", err, out)
		}
		cfg, _ := app.Load(path)
		raw := cfg.Bus.TopicPrefix + ".raw.metrics"
		tb := toolBus(t, path)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for i := range n {
			if err := tb.Produce(ctx, &stream.Record{Topic: raw, Partition: 0, Value: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := tb.Consume(stream.ConsumerConfig{Group: cfg.Worker.Group, Topics: []string{raw}, Start: stream.Start{Kind: stream.StartEarliest}, MaxPollRecords: m})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var polled []*stream.Record
		for len(polled) < m {
			recs, err := c.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			polled = append(polled, recs...)
		}
		if err := c.Commit(ctx, polled[:m]...); err != nil {
			t.Fatal(err)
		}

		rows := lagRows(t, path)
		var workerRaw []map[string]any
		var total float64
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r["role"].(string)+" "+r["group"].(string)+" "+r["topic"].(string)] = true
			total += r["lag"].(float64)
			if r["role"] == "worker" && r["topic"] == raw {
				workerRaw = append(workerRaw, r)
			}
		}
		var want []map[string]any
		if bus.name == "kafka" {
			want = []map[string]any{
				{"role": "worker", "group": cfg.Worker.Group, "topic": raw, "partition": 0.0, "committed": float64(m), "end": float64(n), "lag": float64(n - m), "in_flight": 0.0},
				{"role": "worker", "group": cfg.Worker.Group, "topic": raw, "partition": 1.0, "committed": -1.0, "end": 0.0, "lag": 0.0, "in_flight": 0.0},
			}
		} else {
			want = []map[string]any{{"role": "worker", "group": cfg.Worker.Group, "topic": raw, "partition": -1.0, "committed": float64(m + 1), "end": float64(n + 1),
				"lag": float64(n - m), "in_flight": float64(len(polled) - m)}}
		}
		if diff := cmp.Diff(want, workerRaw); diff != "" {
			t.Errorf("lag of the worker group on %s (-want +got):\n%s", raw, diff)
		}
		if total != n-m {
			t.Errorf("lag: total %v, want %d (nothing but the worker's records on %s)", total, n-m, raw)
		}
		for _, w := range []string{"worker " + cfg.Worker.Group + " " + cfg.Bus.TopicPrefix + ".raw.logs",
			"sink archive sluice-sink-archive " + cfg.Bus.TopicPrefix + ".processed.metrics"} {
			if !seen[w] {
				t.Errorf("lag has no row for %s: %v", w, rows)
			}
		}
		out, err := run(t, "lag", "-c", path)
		if err != nil || !strings.Contains(out, "ROLE") || !regexp.MustCompile(`(?m)^worker +`+regexp.QuoteMeta(cfg.Worker.Group)+` +`+regexp.QuoteMeta(raw)+` +\S+ +\S+ +\S+ +30 `).MatchString(out) {
			t.Errorf("lag table: %v\n%s", err, out)
		}
	})
}

// topics create makes every topic of the pipeline with the configured
// settings, and again changes nothing; describe shows what it made; a
// configuration asking for other settings is reported, topic by topic.
// On the embedded bus the tools open the data directory while no sluice
// runs, reach a running one through its listener, and without a listener
// refuse to open the directory it holds.
func TestTopicsCreateDescribe(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		path := toolsConfig(t, bus, 3, "")
		data, _ := os.ReadFile(path)
		data = bytes.Replace(data, []byte("  partitions: 3\n"), []byte("  partitions: 3\n  retention: 2h\n  max_record_bytes: 512KiB\n"), 1)
		data = bytes.Replace(data, []byte("  aggregator: false\n"), []byte("  aggregator: false\n  dead_letter_max_bytes: 64KiB\n"), 1)
		os.WriteFile(path, data, 0o644)
		cfg, err := app.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		specs := app.TopicSpecs(cfg)

		out, err := run(t, "topics", "describe", "-c", path)
		if bus.name == "embedded" {
			if err == nil || !strings.Contains(err.Error(), "no embedded bus in") {
				t.Errorf("describe of a data directory without a bus: %v\n%s", err, out)
			}
		} else if err != nil || strings.Count(out, "(missing)") != len(specs) {
			t.Errorf("describe before create: %v\n%s", err, out)
		}
		for _, want := range []string{"created", "exists"} {
			out, err := run(t, "topics", "create", "-c", path)
			if err != nil {
				t.Fatalf("topics create: %v\n%s", err, out)
			}
			for _, s := range specs {
				if !regexp.MustCompile(`(?m)^` + want + ` +` + regexp.QuoteMeta(s.Name) + `$`).MatchString(out) {
					t.Errorf("topics create: %s not %s:\n%s", s.Name, want, out)
				}
			}
		}
		if bus.name == "embedded" {
			startToolsSluice(t, path, app.Roles{Ingest: true}) // from now on, the tools go through its listener
		}
		tb := toolBus(t, path)
		raw := cfg.Bus.TopicPrefix + ".raw.logs"
		for i := range 5 {
			v := make([]byte, 1000)
			crand.Read(v) // incompressible: the size on disk is at least the bytes written
			if err := tb.Produce(context.Background(), &stream.Record{Topic: raw, Partition: int32(i % 3), Value: v}); err != nil {
				t.Fatal(err)
			}
		}
		out, err = run(t, "topics", "describe", "-c", path, "-o", "json")
		var got []map[string]any
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || len(got) != len(specs) {
			t.Fatalf("topics describe -o json: %v\n%s", err, out)
		}
		compression := map[string]string{"kafka": "producer", "nats": "none", "embedded": "none"}[bus.name]
		for i, s := range specs {
			g := got[i]
			maxBytes, records := 512*1024.0, 0.0
			if s.Name == cfg.Bus.TopicPrefix+".dlq" {
				maxBytes = 64 * 1024
			}
			if s.Name == raw {
				records = 5
			}
			want := map[string]any{"name": s.Name, "exists": true, "partitions": 3.0, "replicas": 1.0, "retention_seconds": 7200.0,
				"max_record_bytes": maxBytes, "compact": false, "compression": compression, "records": records}
			for k, v := range want {
				if g[k] != v {
					t.Errorf("describe %s: %s = %v, want %v", s.Name, k, g[k], v)
				}
			}
			if b, _ := g["bytes"].(float64); s.Name == raw && b < 5000 {
				t.Errorf("describe %s: %v bytes, want at least the 5000 written", s.Name, g["bytes"])
			}
		}
		out, err = run(t, "topics", "describe", "-c", path)
		if err != nil || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(raw)+` +3 +1 +2h +512.0KiB +`+compression+` +5 `).MatchString(out) {
			t.Errorf("topics describe: %v\n%s", err, out)
		}

		differs := strings.Replace(path, "sluice.yaml", "differs.yaml", 1)
		os.WriteFile(differs, bytes.Replace(bytes.Replace(data, []byte("partitions: 3"), []byte("partitions: 4"), 1), []byte("retention: 2h"), []byte("retention: 3h"), 1), 0o644)
		out, err = run(t, "topics", "create", "-c", differs)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d topics exist with other settings", len(specs))) {
			t.Errorf("topics create with other settings: %v, want an error", err)
		}
		for _, s := range specs {
			if !strings.Contains(out, "differs  "+s.Name+": 3 partitions, configured 4 (bus.partitions); retention 2h, configured 3h (bus.retention)\n") {
				t.Errorf("topics create with other settings: %s not reported:\n%s", s.Name, out)
			}
		}

		if bus.name == "embedded" {
			nolisten := strings.Replace(path, "sluice.yaml", "nolisten.yaml", 1)
			os.WriteFile(nolisten, regexp.MustCompile(`(?m)^    listen: .*\n`).ReplaceAll(data, nil), 0o644)
			_, err := run(t, "topics", "describe", "-c", nolisten)
			if err == nil || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "set bus.embedded.listen") {
				t.Errorf("tools without a listener while sluice runs: %v, want a refusal naming bus.embedded.listen", err)
			}
		}
	})
}

// Without --from, tap prints only what is written after it started;
// --from a time starts at the records written from then on, and --from a
// duration ago at those of that last while.
func TestTapStartsWhereAsked(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		path := toolsConfig(t, bus, 2, "")
		p := startToolsSluice(t, path, app.Roles{Ingest: true})
		batch := func(tag string) *collogs.ExportLogsServiceRequest {
			sl := &logs.ScopeLogs{}
			for i := range 5 {
				sl.LogRecords = append(sl.LogRecords, &logs.LogRecord{Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprintf("%s-%d", tag, i)}}})
			}
			return &collogs.ExportLogsServiceRequest{ResourceLogs: []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{sl}}}}
		}
		bodies := func(items []map[string]any) []string {
			var out []string
			for _, it := range items {
				out = append(out, it["log"].(map[string]any)["body"].(string))
			}
			slices.Sort(out)
			return out
		}
		post(t, p, "logs", batch("a"))
		time.Sleep(100 * time.Millisecond)
		mid := time.Now()
		time.Sleep(100 * time.Millisecond)
		post(t, p, "logs", batch("b"))

		items, err := tapLines(t, "raw.logs", "-c", path, "--from", mid.UTC().Format(time.RFC3339Nano), "--until-idle", "3s")
		if got, want := bodies(items), []string{"b-0", "b-1", "b-2", "b-3", "b-4"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("--from %s: %v %v, want %v", mid.Format(time.RFC3339Nano), got, err, want)
		}
		items, err = tapLines(t, "raw.logs", "-c", path, "--from", "1h", "--until-idle", "3s")
		if got := bodies(items); err != nil || len(got) != 10 {
			t.Errorf("--from 1h: %v %v, want the 10 records", got, err)
		}

		// Live: batches go on being written until tap has printed 7 items,
		// none of those written before it started.
		done := make(chan []map[string]any)
		go func() {
			items, err := tapLines(t, "raw.logs", "-c", path, "--limit", "7", "--until-idle", "30s")
			if err != nil {
				t.Error(err)
			}
			done <- items
		}()
		for n := 0; ; n++ {
			select {
			case items := <-done:
				if len(items) != 7 {
					t.Fatalf("--limit 7: %d items", len(items))
				}
				for _, b := range bodies(items) {
					if strings.HasPrefix(b, "a-") || strings.HasPrefix(b, "b-") {
						t.Errorf("tap without --from printed %s, written before it started", b)
					}
				}
				return
			case <-time.After(300 * time.Millisecond):
				if n > 100 {
					t.Fatal("tap printed nothing of what was written after it started")
				}
				post(t, p, "logs", batch(fmt.Sprintf("live%d", n)))
			}
		}
	})
}

// tap reads the records of the aggregation topic (points to merge, with
// their spec) as the metric points they carry.
func TestTapAggregationRecords(t *testing.T) {
	tapBuses(t, func(t *testing.T, bus optoolsBus) {
		path := toolsConfig(t, bus, 2, "")
		if bus.name == "embedded" {
			startToolsSluice(t, path, app.Roles{Ingest: true})
		} else if out, err := run(t, "topics", "create", "-c", path); err != nil {
			t.Fatalf("topics create: %v\n%s", err, out)
		}
		in := toolsRequests(3)
		body, _ := proto.Marshal(in.metrics)
		bl := schemas.NewBuilder(otlpwire.Metrics, nil)
		if _, err := bl.Append(body); err != nil {
			t.Fatal(err)
		}
		b := bl.Build()
		defer b.Release()
		hashes := make([]uint64, b.Len())
		value, err := aggregate.AppendRecord(nil, b, hashes, aggregate.Spec{Rule: "by-route", Interval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := app.Load(path)
		if err := toolBus(t, path).Produce(context.Background(), &stream.Record{Topic: cfg.Bus.TopicPrefix + ".agg.metrics", Partition: 1, Value: value,
			Headers: []stream.Header{{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeAggregate)}}}); err != nil {
			t.Fatal(err)
		}
		items := tapAll(t, path, "agg.metrics", len(in.want["metrics"]))
		if diff := cmp.Diff(sortItems(in.want["metrics"]), itemsOnly(items)); diff != "" {
			t.Errorf("tap agg.metrics (-written +tapped):\n%s", diff)
		}
	})
}
