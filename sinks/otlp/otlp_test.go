package otlp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
)

// input is the OTLP request given to the worker side for (sig, seed).
func input(sig otlpwire.Signal, seed int) proto.Message {
	shape := otlptest.Shape{Resources: 2, Items: 3, Points: 2, Seed: seed}
	switch sig {
	case otlpwire.Metrics:
		return otlptest.Metrics(shape)
	case otlpwire.Logs:
		return otlptest.Logs(shape)
	}
	return otlptest.Traces(shape)
}

// arrowRecord builds a processed record exactly as the worker does.
func arrowRecord(t *testing.T, sig otlpwire.Signal, m proto.Message, tenant string) *stream.Record {
	t.Helper()
	pb, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
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

// resources lists the resource-level messages of a request.
func resources(m proto.Message) []proto.Message {
	var out []proto.Message
	switch r := m.(type) {
	case *colmetrics.ExportMetricsServiceRequest:
		for _, x := range r.ResourceMetrics {
			out = append(out, x)
		}
	case *collogs.ExportLogsServiceRequest:
		for _, x := range r.ResourceLogs {
			out = append(out, x)
		}
	case *coltrace.ExportTraceServiceRequest:
		for _, x := range r.ResourceSpans {
			out = append(out, x)
		}
	}
	return out
}

// got is what a receiver received.
type got struct {
	mu       sync.Mutex
	reqs     [3][]proto.Message
	headers  []map[string]string // per request: tenant, custom header, encoding
	fail     func(sig otlpwire.Signal, req proto.Message) error
	partial  int64
	requests int
}

func (g *got) add(sig otlpwire.Signal, req proto.Message, hdr map[string]string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests++
	if g.fail != nil {
		if err := g.fail(sig, req); err != nil {
			return err
		}
	}
	g.reqs[sig] = append(g.reqs[sig], req)
	g.headers = append(g.headers, hdr)
	return nil
}

// check compares, resource by resource, what arrived for sig with want.
func (g *got) check(t *testing.T, sig otlpwire.Signal, want []proto.Message) {
	t.Helper()
	var gotRes, wantRes []proto.Message
	for _, r := range g.reqs[sig] {
		gotRes = append(gotRes, resources(r)...)
	}
	for _, r := range want {
		wantRes = append(wantRes, resources(r)...)
	}
	if len(gotRes) != len(wantRes) {
		t.Fatalf("%s: %d resources arrived, want %d", sig, len(gotRes), len(wantRes))
	}
	for i := range gotRes {
		if !proto.Equal(gotRes[i], wantRes[i]) {
			t.Errorf("%s: resource %d differs from the input", sig, i)
		}
	}
}

// The gRPC receiver: the generated collector services.
type metricsSrv struct {
	colmetrics.UnimplementedMetricsServiceServer
	g *got
}

func (s metricsSrv) Export(ctx context.Context, r *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	if err := s.g.add(otlpwire.Metrics, r, mdHeaders(ctx)); err != nil {
		return nil, err
	}
	resp := &colmetrics.ExportMetricsServiceResponse{}
	if s.g.partial > 0 {
		resp.PartialSuccess = &colmetrics.ExportMetricsPartialSuccess{RejectedDataPoints: s.g.partial, ErrorMessage: "too old"}
	}
	return resp, nil
}

type logsSrv struct {
	collogs.UnimplementedLogsServiceServer
	g *got
}

func (s logsSrv) Export(ctx context.Context, r *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	if err := s.g.add(otlpwire.Logs, r, mdHeaders(ctx)); err != nil {
		return nil, err
	}
	resp := &collogs.ExportLogsServiceResponse{}
	if s.g.partial > 0 {
		resp.PartialSuccess = &collogs.ExportLogsPartialSuccess{RejectedLogRecords: s.g.partial}
	}
	return resp, nil
}

type traceSrv struct {
	coltrace.UnimplementedTraceServiceServer
	g *got
}

func (s traceSrv) Export(ctx context.Context, r *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	if err := s.g.add(otlpwire.Traces, r, mdHeaders(ctx)); err != nil {
		return nil, err
	}
	resp := &coltrace.ExportTraceServiceResponse{}
	if s.g.partial > 0 {
		resp.PartialSuccess = &coltrace.ExportTracePartialSuccess{RejectedSpans: s.g.partial}
	}
	return resp, nil
}

type encodingKey struct{}

// compression records the grpc-encoding of every incoming request.
type compression struct{ stats.Handler }

func (compression) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, encodingKey{}, new(string))
}
func (compression) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		*ctx.Value(encodingKey{}).(*string) = h.Compression
	}
}
func (compression) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (compression) HandleConn(context.Context, stats.ConnStats)                       {}

func mdHeaders(ctx context.Context) map[string]string {
	md, _ := metadata.FromIncomingContext(ctx)
	out := map[string]string{}
	for _, k := range []string{"x-scope-orgid", "x-extra", "authorization"} {
		if v := md.Get(k); len(v) > 0 {
			out[k] = v[0]
		}
	}
	if p, ok := ctx.Value(encodingKey{}).(*string); ok {
		out["encoding"] = *p
	}
	return out
}

func grpcReceiver(t *testing.T) (*got, string) {
	g := &got{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(compression{}))
	colmetrics.RegisterMetricsServiceServer(srv, metricsSrv{g: g})
	collogs.RegisterLogsServiceServer(srv, logsSrv{g: g})
	coltrace.RegisterTraceServiceServer(srv, traceSrv{g: g})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return g, lis.Addr().String()
}

// httpReceiver is an OTLP/HTTP receiver: httptest and proto.Unmarshal.
func httpReceiver(t *testing.T, status *int) (*got, string) {
	g := &got{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *status != 0 {
			w.WriteHeader(*status)
			io.WriteString(w, "bad data")
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				t.Error(err)
				w.WriteHeader(400)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		sig, err := otlpwire.ParseSignal(strings.TrimPrefix(r.URL.Path, "/v1/"))
		if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("path %s, content type %s", r.URL.Path, r.Header.Get("Content-Type"))
			w.WriteHeader(404)
			return
		}
		req := otlpwire.NewRequest(sig)
		if err := proto.Unmarshal(raw, req); err != nil {
			t.Error(err)
			w.WriteHeader(400)
			return
		}
		g.add(sig, req, map[string]string{"x-scope-orgid": r.Header.Get("X-Scope-OrgID"), "x-extra": r.Header.Get("X-Extra"), "encoding": r.Header.Get("Content-Encoding")})
		w.Header().Set("Content-Type", "application/x-protobuf")
		if g.partial > 0 && sig == otlpwire.Metrics {
			b, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{PartialSuccess: &colmetrics.ExportMetricsPartialSuccess{RejectedDataPoints: g.partial, ErrorMessage: "too old"}})
			w.Write(b)
		}
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}

// records gives 3 records per signal, interleaved as on a sink's topics,
// and the input requests per signal.
func records(t *testing.T, tenant string) ([]*stream.Record, [3][]proto.Message) {
	var recs []*stream.Record
	var want [3][]proto.Message
	for _, sig := range otlpwire.Signals {
		for seed := range 3 {
			m := input(sig, seed)
			want[sig] = append(want[sig], m)
			recs = append(recs, arrowRecord(t, sig, m, tenant))
		}
	}
	return recs, want
}

func TestGRPCDeliversRecordsAsGiven(t *testing.T) {
	g, addr := grpcReceiver(t)
	reg := prometheus.NewRegistry()
	s, err := New(Config{Endpoint: addr, Config: httpsink.Config{Headers: map[string]string{"X-Extra": "1"}, BearerToken: "tok"}}, "otlp", sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, want := records(t, "team-a")
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	for _, sig := range otlpwire.Signals {
		g.check(t, sig, want[sig])
	}
	if g.requests != 3 {
		t.Errorf("%d requests, want the 3 records of each signal merged into one", g.requests)
	}
	for _, h := range g.headers {
		if h["x-scope-orgid"] != "team-a" || h["x-extra"] != "1" || h["authorization"] != "Bearer tok" || h["encoding"] != "gzip" {
			t.Errorf("headers %v", h)
		}
	}
	// 3 × (2×3×2 points + 6 log records + 6 spans)
	if n := testutil.ToFloat64(s.metrics.ItemsSent); n != 3*(12+6+6) {
		t.Errorf("items sent %v", n)
	}
	if n := testutil.ToFloat64(s.metrics.Requests("OK")); n != 3 {
		t.Errorf("requests{code=OK} %v", n)
	}
}

func TestHTTPDeliversRecordsAsGiven(t *testing.T) {
	status := 0
	g, url := httpReceiver(t, &status)
	s, err := New(Config{Protocol: "http", Config: httpsink.Config{URL: url, Headers: map[string]string{"X-Extra": "1"}}}, "otlp", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, want := records(t, "team-b")
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	for _, sig := range otlpwire.Signals {
		g.check(t, sig, want[sig])
	}
	for _, h := range g.headers {
		if h["x-scope-orgid"] != "team-b" || h["x-extra"] != "1" || h["encoding"] != "gzip" {
			t.Errorf("headers %v", h)
		}
	}

	status = http.StatusBadRequest
	var rej *sinks.RejectedError
	if err := s.Write(context.Background(), recs[:2]); !errors.As(err, &rej) || len(rej.Records) != 2 {
		t.Errorf("400: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := s.Write(context.Background(), recs[:2]); err == nil || errors.As(err, &rej) {
		t.Errorf("503 must be retried: %v", err)
	}
	status = http.StatusUnauthorized
	if err := s.Write(context.Background(), recs[:2]); err == nil || errors.As(err, &rej) {
		t.Errorf("401 must be retried: %v", err)
	}
}

func TestUncompressedAndOwnTenantHeader(t *testing.T) {
	g, addr := grpcReceiver(t)
	s, _ := New(Config{Endpoint: "http://" + addr, Compression: "none", Config: httpsink.Config{TenantHeader: "none"}}, "o", sinks.Env{})
	defer s.Close()
	recs, want := records(t, "team-a")
	if err := s.Write(context.Background(), recs[6:]); err != nil {
		t.Fatal(err)
	}
	g.check(t, otlpwire.Traces, want[otlpwire.Traces])
	if h := g.headers[0]; h["encoding"] != "" || h["x-scope-orgid"] != "" {
		t.Errorf("headers %v", h)
	}
}

func TestPartialSuccessIsCountedNotDeadLettered(t *testing.T) {
	g, addr := grpcReceiver(t)
	g.partial = 5
	s, _ := New(Config{Endpoint: addr}, "o", sinks.Env{})
	defer s.Close()
	recs, _ := records(t, "")
	if err := s.Write(context.Background(), recs[:3]); err != nil { // metrics: 36 points
		t.Fatal(err)
	}
	if r, sent := testutil.ToFloat64(s.metrics.Rejected), testutil.ToFloat64(s.metrics.ItemsSent); r != 5 || sent != 31 {
		t.Errorf("rejected %v, sent %v", r, sent)
	}
}

// OTLP/HTTP reports partial success in the answer's body too.
func TestHTTPPartialSuccessIsCounted(t *testing.T) {
	status := 0
	g, url := httpReceiver(t, &status)
	g.partial = 4
	s, _ := New(Config{Protocol: "http", Config: httpsink.Config{URL: url}}, "o", sinks.Env{})
	defer s.Close()
	recs, _ := records(t, "")
	if err := s.Write(context.Background(), recs[:3]); err != nil { // metrics: 36 points
		t.Fatal(err)
	}
	if r, sent := testutil.ToFloat64(s.metrics.Rejected), testutil.ToFloat64(s.metrics.ItemsSent); r != 4 || sent != 32 {
		t.Errorf("rejected %v, sent %v", r, sent)
	}
}

func TestGRPCErrors(t *testing.T) {
	g, addr := grpcReceiver(t)
	s, _ := New(Config{Endpoint: addr}, "o", sinks.Env{})
	defer s.Close()
	recs, _ := records(t, "")
	var rej *sinks.RejectedError
	var ra interface{ RetryAfter() time.Duration }

	g.fail = func(otlpwire.Signal, proto.Message) error { return status.Error(codes.Unavailable, "down") }
	if err := s.Write(context.Background(), recs); err == nil || errors.As(err, &rej) {
		t.Errorf("UNAVAILABLE: %v", err)
	}

	st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)})
	g.fail = func(otlpwire.Signal, proto.Message) error { return st.Err() }
	if err := s.Write(context.Background(), recs); !errors.As(err, &ra) || ra.RetryAfter() != 2*time.Second || errors.As(err, &rej) {
		t.Errorf("RESOURCE_EXHAUSTED with RetryInfo: %v", err)
	}
	g.fail = func(otlpwire.Signal, proto.Message) error {
		return status.Error(codes.ResourceExhausted, "message too large")
	}
	if err := s.Write(context.Background(), recs[:1]); !errors.As(err, &rej) {
		t.Errorf("RESOURCE_EXHAUSTED without RetryInfo: %v", err)
	}

	// INVALID_ARGUMENT for requests holding the resource of seed 1: the
	// merged request is refused, then its records go one by one and only
	// the bad one is dead-lettered.
	g.fail = func(sig otlpwire.Signal, req proto.Message) error {
		b, _ := proto.Marshal(req)
		if bytes.Contains(b, []byte("inst-1-0")) {
			return status.Error(codes.InvalidArgument, "bad resource")
		}
		return nil
	}
	g.reqs = [3][]proto.Message{}
	err := s.Write(context.Background(), recs[:3])
	if !errors.As(err, &rej) || len(rej.Records) != 1 || rej.Records[0] != recs[1] || !strings.Contains(rej.Reason, "bad resource") {
		t.Fatalf("INVALID_ARGUMENT: %v", err)
	}
	g.check(t, otlpwire.Metrics, []proto.Message{input(otlpwire.Metrics, 0), input(otlpwire.Metrics, 2)})
}

// Records larger than max_request_bytes are cut along resource boundaries,
// each part a request of its own: no request is larger, nothing is lost,
// and the resources arrive in order.
func TestSplitsByMaxRequestBytes(t *testing.T) {
	recs, want := records(t, "")
	limit := 0 // the largest resource of any input fits; no whole input does
	for _, sig := range otlpwire.Signals {
		for _, m := range want[sig] {
			for _, r := range resources(m) {
				limit = max(limit, proto.Size(r)+16)
			}
		}
	}
	for _, sig := range otlpwire.Signals {
		for _, m := range want[sig] {
			if proto.Size(m) <= limit {
				t.Fatalf("%s: an input of %d bytes fits in %d: the test cuts nothing", sig, proto.Size(m), limit)
			}
		}
	}
	g, addr := grpcReceiver(t)
	s, _ := New(Config{Endpoint: addr, MaxRequestBytes: config.ByteSize(limit)}, "o", sinks.Env{})
	defer s.Close()
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if g.requests != 2*len(recs) {
		t.Errorf("%d requests, want %d: one per resource", g.requests, 2*len(recs))
	}
	for _, sig := range otlpwire.Signals {
		for _, r := range g.reqs[sig] {
			if proto.Size(r) > limit {
				t.Errorf("%s: a request of %d bytes, over %d", sig, proto.Size(r), limit)
			}
		}
		g.check(t, sig, want[sig])
	}
}

func TestHTTPURLs(t *testing.T) {
	for base, want := range map[string]string{
		"http://h:4318":          "http://h:4318/v1/logs",
		"http://h:4318/":         "http://h:4318/v1/logs",
		"https://h/otlp/v1/logs": "https://h/otlp/v1/logs",
	} {
		if got := httpURL(base, otlpwire.Logs); got != want {
			t.Errorf("%s: %s, want %s", base, got, want)
		}
	}
	if !loopback("127.0.0.1:4317") || !loopback("localhost:1") || !loopback("[::1]:1") || loopback("tempo:4317") {
		t.Error("loopback")
	}
}

func TestConfigEntry(t *testing.T) {
	cfg, err := config.Parse("c.yaml", []byte("sinks:\n  - name: tempo\n    type: otlp\n    signals: [traces]\n    protocol: grpc\n    endpoint: 127.0.0.1:4317\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sinks.Build(cfg, &cfg.Sinks[0], sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	os := s.(*Sink)
	if os.cfg.Compression != "gzip" || os.cfg.Protocol != "grpc" {
		t.Errorf("defaults %+v", os.cfg)
	}
	s.Close()
	for yaml, want := range map[string]string{
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n":                                           `sinks[0].endpoint: the otlp sink with protocol grpc needs an endpoint`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    endpoint: h:1\n    compresion: gzip\n":  `c.yaml:6:5: sinks[0].compresion: unknown key "compresion"`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    endpoint: h\n":                          `c.yaml:5:15: sinks[0].endpoint: endpoint "h": want host:port`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    protocol: http\n    endpoint: h:1\n":    `sinks[0].endpoint: endpoint is for protocol grpc`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    protocol: http\n":                       `sinks[0].url: the otlp sink needs a url`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    protocol: thrift\n":                     `c.yaml:5:15: sinks[0].protocol: protocol "thrift"`,
		"sinks:\n  - name: a\n    type: otlp\n    signals: [logs]\n    endpoint: h:1\n    compression: zstd\n": `sinks[0].compression: compression "zstd"`,
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

// Over gRPC, answers blaming the sink's credentials or endpoint are
// retried (not dead-lettered) and counted in
// sluice_sink_config_refusals_total; a RetryInfo of a day is cut to
// retry_after_max and counted.
func TestGRPCConfigRefusalsAndRetryInfoCap(t *testing.T) {
	g, addr := grpcReceiver(t)
	reg := prometheus.NewRegistry()
	s, err := New(Config{Endpoint: addr, Config: httpsink.Config{RetryAfterMax: time.Minute}}, "o", sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, _ := records(t, "")
	var rej *sinks.RejectedError
	var ra interface{ RetryAfter() time.Duration }
	m := sinkmetrics.New(reg)
	for _, code := range []codes.Code{codes.Unauthenticated, codes.PermissionDenied, codes.NotFound, codes.Unimplemented} {
		g.fail = func(otlpwire.Signal, proto.Message) error { return status.Error(code, "no") }
		if err := s.Write(context.Background(), recs[:1]); err == nil || errors.As(err, &rej) {
			t.Errorf("%v: %v, want a retryable error", code, err)
		}
		if n := testutil.ToFloat64(m.ConfigRefusals.WithLabelValues("o", code.String())); n != 1 {
			t.Errorf("sluice_sink_config_refusals_total{code=%q} = %v, want 1", code, n)
		}
	}
	st, _ := status.New(codes.Unavailable, "later").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(24 * time.Hour)})
	g.fail = func(otlpwire.Signal, proto.Message) error { return st.Err() }
	if err := s.Write(context.Background(), recs[:1]); !errors.As(err, &ra) || ra.RetryAfter() != time.Minute {
		t.Errorf("RetryInfo of a day: %v, want a delay of retry_after_max (1m)", err)
	}
	if n := testutil.ToFloat64(m.RetryAfterCapped.WithLabelValues("o")); n != 1 {
		t.Errorf("sluice_sink_retry_after_capped_total = %v, want 1", n)
	}
}
