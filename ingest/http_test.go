package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zstded(b []byte) []byte {
	e, _ := zstd.NewWriter(nil)
	defer e.Close()
	return e.EncodeAll(b, nil)
}

func toJSON(t testing.TB, sig otlpwire.Signal, pb []byte) []byte {
	t.Helper()
	js, err := otlpjson.MarshalRequest(sig, pb, nil)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

var signalPaths = map[otlpwire.Signal]string{otlpwire.Metrics: PathMetrics, otlpwire.Logs: PathLogs, otlpwire.Traces: PathTraces}

// samples are small valid requests of each signal, with their item count.
func samples(t testing.TB) map[otlpwire.Signal][]byte {
	return map[otlpwire.Signal][]byte{
		otlpwire.Metrics: mustMarshal(t, metricsRequest(3, 4, 5)), // 60 points
		otlpwire.Logs:    mustMarshal(t, logsRequest(2, 7)),       // 14 records
		otlpwire.Traces:  mustMarshal(t, tracesRequest(2, 9)),     // 18 spans
	}
}

var sampleItems = map[otlpwire.Signal]int{otlpwire.Metrics: 60, otlpwire.Logs: 14, otlpwire.Traces: 18}

type httpReq struct {
	method, path, contentType, encoding string
	headers                             map[string]string
	body                                []byte
}

func (r httpReq) do(t testing.TB, addr string) *http.Response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, "http://"+addr+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.encoding != "" {
		req.Header.Set("Content-Encoding", r.encoding)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// statusMessage decodes a google.rpc.Status error body.
func statusMessage(t testing.TB, resp *http.Response, body []byte) *statuspb.Status {
	t.Helper()
	var s statuspb.Status
	var err error
	if strings.HasPrefix(resp.Header.Get("Content-Type"), contentTypeJSON) {
		err = protojson.Unmarshal(body, &s)
	} else {
		err = proto.Unmarshal(body, &s)
	}
	if err != nil {
		t.Fatalf("status body %q: %v", body, err)
	}
	return &s
}

func TestHTTPErrors(t *testing.T) {
	pb := samples(t)[otlpwire.Metrics]
	bomb := make([]byte, 1<<20)
	unavailable := fmt.Errorf("kafka: no broker answered: %w", stream.ErrUnavailable)
	cases := []struct {
		name    string
		cfg     Config
		fail    error
		req     httpReq
		status  int
		msg     string // substring of the Status message
		headers map[string]string
	}{
		{name: "unknown path", req: httpReq{path: "/v1/profiles", contentType: contentTypeProto, body: pb}, status: 404, msg: "no OTLP endpoint"},
		{name: "wrong method", req: httpReq{method: "GET", path: PathMetrics}, status: 405, headers: map[string]string{"Allow": "POST"}},
		{name: "unsupported content type", req: httpReq{path: PathMetrics, contentType: "text/plain", body: pb}, status: 415, msg: "text/plain"},
		{name: "no content type", req: httpReq{path: PathMetrics, body: pb}, status: 415},
		{name: "unsupported encoding", req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "br", body: pb}, status: 415, msg: "br"},
		{name: "malformed protobuf", req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: []byte{0x0a, 0x05, 0x0a, 0xff}}, status: 400, msg: "field 1 (resource_metrics)"},
		{name: "malformed JSON", req: httpReq{path: PathMetrics, contentType: contentTypeJSON, body: []byte("{\n \"resourceMetrics\": [ {\"resource\": 5 } ]}")}, status: 400, msg: "line 2, column 36"},
		{name: "bad gzip", req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "gzip", body: pb}, status: 400, msg: "gzip"},
		{name: "truncated gzip", req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "gzip", body: gzipped(pb)[:40]}, status: 400, msg: "gzip"},
		{name: "bad zstd", req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "zstd", body: pb}, status: 400, msg: "zstd"},
		{name: "too large", cfg: Config{MaxRequestBytes: 4096}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: make([]byte, 5000)}, status: 413},
		{name: "gzip bomb", cfg: Config{MaxRequestBytes: 4096}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "gzip", body: gzipped(bomb)}, status: 413, msg: "decompressed"},
		{name: "zstd bomb", cfg: Config{MaxRequestBytes: 4096}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, encoding: "zstd", body: zstded(bomb)}, status: 413, msg: "decompressed"},
		{name: "no token", cfg: Config{Tokens: mustTokens(t, Token{Token: "s3cret", Tenant: "team-a"})}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}, status: 401, headers: map[string]string{"Www-Authenticate": `Bearer realm="sluice"`}},
		{name: "wrong token", cfg: Config{Tokens: mustTokens(t, Token{Token: "s3cret", Tenant: "team-a"})}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb, headers: map[string]string{"Authorization": "Bearer nope"}}, status: 401},
		{name: "bad tenant", req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb, headers: map[string]string{"X-Scope-OrgID": "a b"}}, status: 400, msg: "X-Scope-OrgID"},
		{name: "long tenant", req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb, headers: map[string]string{"X-Scope-OrgID": strings.Repeat("t", 151)}}, status: 400, msg: "150"},
		{name: "bus unavailable", fail: unavailable, cfg: Config{RetryAfter: 7e9}, req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}, status: 503, msg: "no broker answered", headers: map[string]string{"Retry-After": "7"}},
		{name: "bus unavailable JSON", fail: unavailable, req: httpReq{path: PathMetrics, contentType: contentTypeJSON, body: toJSON(t, otlpwire.Metrics, pb)}, status: 503, headers: map[string]string{"Retry-After": "5", "Content-Type": contentTypeJSON}},
		{name: "bus refuses", fail: fmt.Errorf("%w: 2000000 bytes", stream.ErrRecordTooLarge), req: httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}, status: 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bus := newBus(t, 4)
			bus.Fail = tc.fail
			srv := startServer(t, newIngester(t, tc.cfg, bus))
			resp := tc.req.do(t, srv.HTTPAddr())
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tc.status, body)
			}
			st := statusMessage(t, resp, body)
			if !strings.Contains(st.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", st.Message, tc.msg)
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			if n := len(bus.Records(testTopics.Raw(otlpwire.Metrics))); n != 0 {
				t.Errorf("%d records on the bus", n)
			}
		})
	}
}

func TestHTTPSuccess(t *testing.T) {
	for sig, pb := range samples(t) {
		for _, enc := range []struct {
			name, ct, ce string
			body         func([]byte) []byte
		}{
			{"protobuf", contentTypeProto, "", func(b []byte) []byte { return b }},
			{"json", contentTypeJSON, "", func(b []byte) []byte { return toJSON(t, sig, b) }},
			{"protobuf-gzip", contentTypeProto, "gzip", gzipped},
			{"protobuf-zstd", contentTypeProto, "zstd", zstded},
			{"json-gzip", "application/json; charset=utf-8", "gzip", func(b []byte) []byte { return gzipped(toJSON(t, sig, b)) }},
		} {
			t.Run(sig.String()+"/"+enc.name, func(t *testing.T) {
				bus := newBus(t, 3)
				srv := startServer(t, newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-a"})}, bus))
				resp := httpReq{path: signalPaths[sig], contentType: enc.ct, encoding: enc.ce, body: enc.body(pb),
					headers: map[string]string{"X-Scope-OrgID": "team-a", "Authorization": "Bearer tok"}}.do(t, srv.HTTPAddr())
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %q", resp.StatusCode, body)
				}
				wantCT := contentTypeProto
				if strings.HasPrefix(enc.ct, contentTypeJSON) {
					wantCT = contentTypeJSON
					if string(body) != "{}" {
						t.Errorf("JSON response %q, want {}", body)
					}
				} else if len(body) != 0 {
					t.Errorf("response %x, want empty", body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != wantCT {
					t.Errorf("response Content-Type %q, want %q", ct, wantCT)
				}
				if got := busItems(t, bus, sig, "team-a"); got != sampleItems[sig] {
					t.Errorf("%d items on the bus, want %d", got, sampleItems[sig])
				}
			})
		}
	}
}

func TestHTTPDefaultTenantAndEmpty(t *testing.T) {
	bus := newBus(t, 2)
	srv := startServer(t, newIngester(t, Config{DefaultTenant: "nobody"}, bus))
	resp := httpReq{path: PathLogs, contentType: contentTypeProto, body: samples(t)[otlpwire.Logs]}.do(t, srv.HTTPAddr())
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := busItems(t, bus, otlpwire.Logs, "nobody"); got != sampleItems[otlpwire.Logs] {
		t.Errorf("%d items", got)
	}
	for _, body := range [][]byte{nil, mustMarshal(t, &coltracepb.ExportTraceServiceRequest{})} {
		resp = httpReq{path: PathTraces, contentType: contentTypeProto, body: body}.do(t, srv.HTTPAddr())
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("empty request: status %d", resp.StatusCode)
		}
	}
	if n := len(bus.Records(testTopics.Raw(otlpwire.Traces))); n != 0 {
		t.Errorf("empty requests produced %d records", n)
	}
}

// TestHTTPPartialSuccess: a data point too large for any record is rejected
// and reported; the rest is written.
func TestHTTPPartialSuccess(t *testing.T) {
	req := metricsRequest(2, 3, 4)
	big := req.ResourceMetrics[1].ScopeMetrics[0].Metrics[2].GetGauge().DataPoints[1]
	big.Attributes = append(big.Attributes, &commonpb.KeyValue{Key: "blob", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: strings.Repeat("x", 10_000)}}})
	pb := mustMarshal(t, req)
	for _, ct := range []string{contentTypeProto, contentTypeJSON} {
		t.Run(ct, func(t *testing.T) {
			bus := newBus(t, 2)
			srv := startServer(t, newIngester(t, Config{MaxRecordBytes: 4096}, bus))
			body := pb
			if ct == contentTypeJSON {
				body = toJSON(t, otlpwire.Metrics, pb)
			}
			resp := httpReq{path: PathMetrics, contentType: ct, body: body}.do(t, srv.HTTPAddr())
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %q", resp.StatusCode, rb)
			}
			var out colmetricspb.ExportMetricsServiceResponse
			if ct == contentTypeJSON {
				err := protojson.Unmarshal(rb, &out)
				if err != nil {
					t.Fatal(err)
				}
			} else if err := proto.Unmarshal(rb, &out); err != nil {
				t.Fatal(err)
			}
			ps := out.GetPartialSuccess()
			if ps.GetRejectedDataPoints() != 1 || !strings.Contains(ps.GetErrorMessage(), "1 data points rejected") {
				t.Errorf("partial success %v", ps)
			}
			if got := busItems(t, bus, otlpwire.Metrics, ""); got != 2*3*4-1 {
				t.Errorf("%d items on the bus, want %d", got, 2*3*4-1)
			}
			for _, r := range bus.Records(testTopics.Raw(otlpwire.Metrics)) {
				if len(r.Value) > 4096-headerRoom {
					t.Errorf("record of %d bytes", len(r.Value))
				}
			}
		})
	}
}

// TestHTTPOverloaded: while one request holds the in-flight budget in a
// blocked Produce, the next is refused with 429 and Retry-After.
func TestHTTPOverloaded(t *testing.T) {
	pb := samples(t)[otlpwire.Metrics]
	bus := newGateBus(newBus(t, 1))
	ing := newIngester(t, Config{MaxInflightBytes: int64(len(pb)) + 10, RetryAfter: 3e9}, bus)
	srv := startServer(t, ing)

	var wg sync.WaitGroup
	wg.Go(func() {
		resp := httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}.do(t, srv.HTTPAddr())
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("first request: status %d", resp.StatusCode)
		}
	})
	<-bus.entered
	resp := httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}.do(t, srv.HTTPAddr())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("status %d, Retry-After %q; want 429, 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := statusMessage(t, resp, body); !strings.Contains(st.Message, "overloaded") {
		t.Errorf("message %q", st.Message)
	}
	bus.open()
	wg.Wait()
	if got := ing.inflight.Load(); got != 0 {
		t.Errorf("in-flight bytes %d after the requests", got)
	}
}

func TestExportDirect(t *testing.T) {
	bus2 := memory.New() // no topics: partitions unknown, the bus chooses
	ing := newIngester(t, Config{}, bus2)
	res, err := ing.Export(context.Background(), otlpwire.Traces, "t1", samples(t)[otlpwire.Traces])
	if err != nil {
		t.Fatal(err)
	}
	if res.Items != sampleItems[otlpwire.Traces] || res.Records == 0 {
		t.Errorf("result %+v", res)
	}
	if got := busItems(t, bus2, otlpwire.Traces, "t1"); got != res.Items {
		t.Errorf("%d items on the bus", got)
	}
	_, err = ing.Export(context.Background(), otlpwire.Logs, "", []byte{0xff})
	var bad *BadRequestError
	if !errorsAs(err, &bad) {
		t.Errorf("malformed: %v", err)
	}
}
