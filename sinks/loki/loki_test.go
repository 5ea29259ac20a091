package loki

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	logproto "github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
)

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

const base = 1_700_000_000_000_000_000

// request: two resources of one service with different instances (a
// high-cardinality attribute that must not become a label), records out of
// time order, severities by number and by text, a map body, a record with
// only an observed time.
func request() *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for r := range 2 {
		res := &resource.Resource{Attributes: []*common.KeyValue{
			str("service.name", "checkout"), str("service.instance.id", "inst-"+strconv.Itoa(r)),
			str("k8s.namespace.name", "prod"), str("host.name", "node-"+strconv.Itoa(r)),
		}}
		sl := &logspb.ScopeLogs{Scope: &common.InstrumentationScope{Name: "app", Version: "1.2"}}
		for i, ts := range []uint64{base + 30, base + 10, base + 20} {
			sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{
				TimeUnixNano: ts, SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
				Body:       &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "line " + strconv.Itoa(r) + "." + strconv.Itoa(i)}},
				Attributes: []*common.KeyValue{str("http.method", "GET"), {Key: "attempt", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(i)}}}},
				TraceId:    bytes.Repeat([]byte{byte(0xa0 + i)}, 16), SpanId: bytes.Repeat([]byte{byte(0xb0 + i)}, 8),
			})
		}
		sl.LogRecords = append(sl.LogRecords,
			&logspb.LogRecord{TimeUnixNano: base + 5, SeverityText: "ERROR",
				Body: &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: []*common.KeyValue{str("msg", "boom")}}}}},
			&logspb.LogRecord{ObservedTimeUnixNano: base + 1, SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR2,
				Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: "observed only " + strconv.Itoa(r)}}})
		req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{Resource: res, ScopeLogs: []*logspb.ScopeLogs{sl}})
	}
	return req
}

// arrowRecord builds a processed record exactly as the worker does.
func arrowRecord(t *testing.T, sig otlpwire.Signal, pb []byte, tenant string) *stream.Record {
	t.Helper()
	b := schemas.NewBuilder(sig, nil)
	defer b.Release()
	if _, err := b.Append(pb); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var ipc bytes.Buffer
	if err := schemas.WriteBatch(&ipc, batch); err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: "sluice.processed." + sig.String(), Value: ipc.Bytes(), Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte(sig.String())},
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
		{Key: stream.HeaderTenant, Value: []byte(tenant)},
	}}
}

type gotEntry struct {
	ts   int64
	line string
	meta map[string]string
}

// receiver is a Loki push endpoint decoding both formats into streams by
// label string.
type receiver struct {
	mu      sync.Mutex
	streams map[string][]gotEntry
	tenants []string
	paths   []string
	status  int
	retry   string
	t       *testing.T
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	rc.tenants = append(rc.tenants, r.Header.Get("X-Scope-OrgID"))
	rc.paths = append(rc.paths, r.URL.Path)
	if rc.status != 0 {
		if rc.retry != "" {
			w.Header().Set("Retry-After", rc.retry)
		}
		w.WriteHeader(rc.status)
		io.WriteString(w, "entry too far behind")
		return
	}
	switch r.Header.Get("Content-Type") {
	case "application/x-protobuf":
		raw, err := s2.Decode(nil, body) // snappy block format
		if err != nil {
			rc.t.Errorf("snappy: %v", err)
			w.WriteHeader(400)
			return
		}
		var req logproto.PushRequest
		if err := req.Unmarshal(raw); err != nil {
			rc.t.Errorf("protobuf: %v", err)
			w.WriteHeader(400)
			return
		}
		for _, s := range req.Streams {
			for _, e := range s.Entries {
				m := map[string]string{}
				for _, l := range e.StructuredMetadata {
					m[l.Name] = l.Value
				}
				rc.streams[s.Labels] = append(rc.streams[s.Labels], gotEntry{e.Timestamp.UnixNano(), e.Line, m})
			}
		}
	case "application/json":
		var req struct {
			Streams []struct {
				Stream map[string]string `json:"stream"`
				Values [][]json.RawMessage
			}
		}
		if err := json.Unmarshal(body, &req); err != nil {
			rc.t.Errorf("json: %v", err)
			w.WriteHeader(400)
			return
		}
		for _, s := range req.Streams {
			var names []string
			for k := range s.Stream {
				names = append(names, k)
			}
			sort.Strings(names)
			var parts []string
			for _, k := range names {
				parts = append(parts, k+"="+strconv.Quote(s.Stream[k]))
			}
			labels := "{" + strings.Join(parts, ", ") + "}"
			for _, v := range s.Values {
				var tsStr, line string
				m := map[string]string{}
				json.Unmarshal(v[0], &tsStr)
				json.Unmarshal(v[1], &line)
				if len(v) > 2 {
					json.Unmarshal(v[2], &m)
				}
				ts, _ := strconv.ParseInt(tsStr, 10, 64)
				rc.streams[labels] = append(rc.streams[labels], gotEntry{ts, line, m})
			}
		}
	default:
		rc.t.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	w.WriteHeader(http.StatusNoContent)
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	rc := &receiver{streams: map[string][]gotEntry{}, t: t}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv
}

func TestPushesStreamsWithLabelsFromResourceAndMetadataForTheRest(t *testing.T) {
	for _, format := range []string{"protobuf", "json"} {
		t.Run(format, func(t *testing.T) {
			rc, srv := newReceiver(t)
			reg := prometheus.NewRegistry()
			s, err := New(Config{Config: httpsink.Config{URL: srv.URL}, Format: format}, "loki", sinks.Env{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pb, _ := proto.Marshal(request())
			if err := s.Write(context.Background(), []*stream.Record{arrowRecord(t, otlpwire.Logs, pb, "team-a")}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rc.tenants, []string{"team-a"}) || rc.paths[0] != "/loki/api/v1/push" {
				t.Errorf("tenants %v, paths %v", rc.tenants, rc.paths)
			}
			info := `{k8s_namespace_name="prod", service_name="checkout", severity="info"}`
			errs := `{k8s_namespace_name="prod", service_name="checkout", severity="error"}`
			if len(rc.streams) != 2 || len(rc.streams[info]) != 6 || len(rc.streams[errs]) != 4 {
				for l, e := range rc.streams {
					t.Logf("%s: %d entries", l, len(e))
				}
				t.Fatalf("want exactly the streams %s (6 entries) and %s (4): the instance and host must not be labels", info, errs)
			}
			for labels, entries := range rc.streams {
				if !slices.IsSortedFunc(entries, func(a, b gotEntry) int { return int(a.ts - b.ts) }) {
					t.Errorf("%s: entries not in time order: %v", labels, entries)
				}
			}
			// Entries 0..2 of resource 0 sorted by time: 10, 20, 30 (lines .1, .2, .0).
			e := rc.streams[info][0]
			if e.ts != base+10 || e.line != "line 0.1" {
				t.Errorf("first info entry %+v", e)
			}
			for k, v := range map[string]string{"service_instance_id": "inst-0", "host_name": "node-0", "http_method": "GET", "attempt": "1",
				"trace_id": strings.Repeat("a1", 16), "span_id": strings.Repeat("b1", 8), "scope_name": "app", "scope_version": "1.2"} {
				if e.meta[k] != v {
					t.Errorf("structured metadata %s = %q, want %q (all: %v)", k, e.meta[k], v, e.meta)
				}
			}
			for _, k := range []string{"service_name", "k8s_namespace_name", "service.name"} {
				if _, ok := e.meta[k]; ok {
					t.Errorf("label attribute %s also in structured metadata", k)
				}
			}
			// The error stream: observed time only (base+1) first, then the map body as JSON (base+5).
			ee := rc.streams[errs]
			if ee[0].ts != base+1 || !strings.HasPrefix(ee[0].line, "observed only") || ee[2].ts != base+5 || ee[2].line != `{"msg":"boom"}` {
				t.Errorf("error stream %+v", ee)
			}
			if got := testutil.ToFloat64(s.metrics.ItemsSent); got != 10 {
				t.Errorf("items sent = %v", got)
			}
		})
	}
}

func TestConfiguredLabelsOnly(t *testing.T) {
	rc, srv := newReceiver(t)
	s, _ := New(Config{Config: httpsink.Config{URL: srv.URL + "/custom/push"}, Labels: []string{"host.name"}}, "l", sinks.Env{})
	pb, _ := proto.Marshal(request())
	if err := s.Write(context.Background(), []*stream.Record{arrowRecord(t, otlpwire.Logs, pb, "")}); err != nil {
		t.Fatal(err)
	}
	var labels []string
	for l := range rc.streams {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	if !slices.Equal(labels, []string{`{host_name="node-0"}`, `{host_name="node-1"}`}) || rc.paths[0] != "/custom/push" {
		t.Errorf("streams %v, path %v", labels, rc.paths)
	}
	if e := rc.streams[`{host_name="node-0"}`][0]; e.meta["service_name"] != "checkout" {
		t.Errorf("service.name not configured as a label should be metadata: %v", e.meta)
	}
}

func TestTenantsGetTheirOwnRequests(t *testing.T) {
	rc, srv := newReceiver(t)
	s, _ := New(Config{Config: httpsink.Config{URL: srv.URL}}, "l", sinks.Env{})
	pb, _ := proto.Marshal(request())
	recs := []*stream.Record{arrowRecord(t, otlpwire.Logs, pb, "a"), arrowRecord(t, otlpwire.Logs, pb, "b"), arrowRecord(t, otlpwire.Logs, pb, "a")}
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rc.tenants, []string{"a", "b"}) {
		t.Errorf("tenants %v", rc.tenants)
	}
}

func TestAnswers(t *testing.T) {
	rc, srv := newReceiver(t)
	reg := prometheus.NewRegistry()
	s, _ := New(Config{Config: httpsink.Config{URL: srv.URL}}, "l", sinks.Env{Registerer: reg})
	pb, _ := proto.Marshal(request())
	recs := []*stream.Record{arrowRecord(t, otlpwire.Logs, pb, "a"), arrowRecord(t, otlpwire.Logs, pb, "a")}

	rc.status = 400
	err := s.Write(context.Background(), recs)
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Records) != 2 || !strings.Contains(rej.Reason, "entry too far behind") {
		t.Errorf("400: %v", err)
	}

	rc.status, rc.retry = 429, "3"
	err = s.Write(context.Background(), recs)
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &rej) || !errors.As(err, &ra) || ra.RetryAfter() != 3*time.Second {
		t.Errorf("429: %v", err)
	}
	rc.status, rc.retry = 401, ""
	if err := s.Write(context.Background(), recs); err == nil || errors.As(err, &rej) {
		t.Errorf("401 must be retried, not dead-lettered: %v", err)
	}
	if n := testutil.ToFloat64(s.metrics.Requests("429")); n != 1 {
		t.Errorf("requests{code=429} = %v", n)
	}
	if n := testutil.ToFloat64(s.metrics.Rejected); n != 20 {
		t.Errorf("rejected = %v", n)
	}

	// An undecodable record is dead-lettered alone; the others go out.
	rc.status = 0
	bad := arrowRecord(t, otlpwire.Logs, pb, "a")
	bad.Value = []byte("garbage")
	err = s.Write(context.Background(), []*stream.Record{recs[0], bad})
	if !errors.As(err, &rej) || len(rej.Records) != 1 || rej.Records[0] != bad {
		t.Errorf("bad record: %v", err)
	}
	if len(rc.streams) == 0 {
		t.Error("the good record was not pushed")
	}
}

// Records go into requests of at most MaxRequestBytes: several small
// records share one, and a record larger than the limit is cut across
// requests, entry by entry; every entry arrives once. A refused request
// dead-letters each of its records once.
func TestSplitsByMaxRequestBytes(t *testing.T) {
	pb, _ := proto.Marshal(request()) // 10 entries
	recs := func() []*stream.Record {
		return []*stream.Record{arrowRecord(t, otlpwire.Logs, pb, "a"), arrowRecord(t, otlpwire.Logs, pb, "a")}
	}
	// entries: each entry received, with its stream and metadata, and how
	// many times.
	entries := func(rc *receiver) map[string]int {
		m := map[string]int{}
		for labels, es := range rc.streams {
			for _, e := range es {
				m[fmt.Sprint(labels, e.ts, e.line, e.meta)]++
			}
		}
		return m
	}

	rc, srv := newReceiver(t)
	s, _ := New(Config{Config: httpsink.Config{URL: srv.URL}}, "l", sinks.Env{})
	if err := s.Write(context.Background(), recs()); err != nil {
		t.Fatal(err)
	}
	whole := entries(rc)
	if n := len(rc.tenants); n != 1 || len(whole) != 10 {
		t.Errorf("default limit: %d requests with %d distinct entries, want 1 with 10", n, len(whole))
	}

	rc, srv = newReceiver(t)
	s, _ = New(Config{Config: httpsink.Config{URL: srv.URL}, MaxRequestBytes: 600}, "l", sinks.Env{})
	if err := s.Write(context.Background(), recs()); err != nil {
		t.Fatal(err)
	}
	if cut := entries(rc); len(rc.tenants) < 4 || !maps.Equal(cut, whole) {
		t.Errorf("600-byte limit: %d requests, entries %v, want at least 4 requests with %v", len(rc.tenants), cut, whole)
	}

	rc, srv = newReceiver(t)
	rc.status = http.StatusBadRequest
	s, _ = New(Config{Config: httpsink.Config{URL: srv.URL}, MaxRequestBytes: 600}, "l", sinks.Env{})
	var rej *sinks.RejectedError
	if err := s.Write(context.Background(), recs()); !errors.As(err, &rej) || len(rej.Records) != 2 {
		t.Errorf("refused: %v, want both records rejected once", err)
	}
}

func TestConfigEntry(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("sinks:\n  - name: loki\n    type: loki\n    signals: [logs]\n    url: http://loki:3100\n    format: json\n    labels: [service.name, severity]\n    tenant_header: X-Tenant\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.Build(cfg, &cfg.Sinks[0], sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ls := s.(*Sink)
	if ls.cfg.Format != "json" || !ls.sev || len(ls.labels) != 1 || ls.labels[0].name != "service_name" || ls.cfg.URL != "http://loki:3100/loki/api/v1/push" {
		t.Errorf("config %+v", ls.cfg)
	}
	for yaml, want := range map[string]string{
		"sinks:\n  - name: a\n    type: loki\n    signals: [logs]\n    url: http://x\n    lables: [a]\n": `c.yaml:6:5: sinks[0].lables: unknown key "lables"`,
		"sinks:\n  - name: a\n    type: loki\n    signals: [logs]\n    url: http://x\n    format: xml\n": `c.yaml:6:13: sinks[0].format: format "xml"`,
		"sinks:\n  - name: a\n    type: loki\n    signals: [metrics]\n    url: http://x\n":               `c.yaml:4:14: sinks[0].signals: the loki sink takes logs only`,
		"sinks:\n  - name: a\n    type: loki\n    signals: [logs]\n":                                     `sinks[0].url: the loki sink needs a url`,
	} {
		cfg, err := config.Parse("c.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := sinks.Check(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}
