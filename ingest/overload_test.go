package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// peakBus records the highest in-flight byte count seen while requests
// wait in Produce.
type peakBus struct {
	*gateBus
	ing  *Ingester
	peak atomic.Int64
}

func (p *peakBus) Produce(ctx context.Context, recs ...*stream.Record) error {
	for cur := p.ing.inflight.Load(); cur > p.peak.Load(); cur = p.ing.inflight.Load() {
		p.peak.CompareAndSwap(p.peak.Load(), cur)
	}
	return p.gateBus.Produce(ctx, recs...)
}

// Ten times the load the ingester can hold, over HTTP (protobuf, gzip,
// JSON) and gRPC at once, while the bus does not answer: the requests past
// the in-flight budget are refused as retryable (429 + Retry-After,
// RESOURCE_EXHAUSTED + RetryInfo), the budget is never passed, and once the
// bus answers every admitted request succeeds with its items on the bus.
func TestOverloadStaysWithinBudget(t *testing.T) {
	pb := mustMarshal(t, metricsRequest(4, 20, 60)) // ~ 200 KB
	js, err := otlpjson.MarshalRequest(otlpwire.Metrics, pb, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pb)
	zw.Close()
	perReq, err := otlpwire.Count(otlpwire.Metrics, pb)
	if err != nil {
		t.Fatal(err)
	}

	const clients = 40
	limit := int64(4 * len(js)) // about 10× less than what the clients send at once
	bus := &peakBus{gateBus: newGateBus(newBus(t, 2))}
	bus.gateBus.entered = make(chan struct{}, clients)
	ing := newIngester(t, Config{MaxInflightBytes: limit, RetryAfter: 2 * time.Second}, bus)
	bus.ing = ing
	srv := startServer(t, ing)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grpcClient := colmetricspb.NewMetricsServiceClient(conn)

	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			var code int
			switch c % 4 {
			case 0, 1, 2:
				req := httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}
				if c%4 == 1 {
					req.body, req.encoding = gz.Bytes(), "gzip"
				} else if c%4 == 2 {
					req.body, req.contentType = js, contentTypeJSON
				}
				resp := req.do(t, srv.HTTPAddr())
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
				if code == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "2" {
					t.Errorf("429 without Retry-After: %v", resp.Header)
				}
			case 3:
				_, err := grpcClient.Export(context.Background(), metricsRequest(4, 20, 60))
				code = 200
				if err != nil {
					st := status.Convert(err)
					if st.Code() != codes.ResourceExhausted || !hasRetryInfo(st) {
						t.Errorf("gRPC: %v, want RESOURCE_EXHAUSTED with RetryInfo", err)
					}
					code = http.StatusTooManyRequests
				}
			}
			switch code {
			case 200:
				ok.Add(1)
			case http.StatusTooManyRequests:
				refused.Add(1)
			default:
				t.Errorf("client %d: status %d", c, code)
			}
		})
	}
	// Let the admitted requests reach the bus, then open it.
	deadline := time.After(10 * time.Second)
	for n := 0; n < 1; {
		select {
		case <-bus.gateBus.entered:
			n++
		case <-deadline:
			t.Fatal("no request reached the bus")
		}
	}
	for refused.Load() < clients/2 {
		select {
		case <-deadline:
			t.Fatalf("only %d of %d requests refused while the bus was blocked", refused.Load(), clients)
		case <-time.After(5 * time.Millisecond):
		}
	}
	bus.gateBus.open()
	wg.Wait()

	if peak := bus.peak.Load(); peak > limit {
		t.Errorf("in-flight bytes reached %d, budget %d", peak, limit)
	}
	if got := ing.inflight.Load(); got != 0 {
		t.Errorf("in-flight bytes %d after the requests", got)
	}
	if ok.Load() == 0 || ok.Load()+refused.Load() != clients {
		t.Errorf("%d succeeded, %d refused, of %d", ok.Load(), refused.Load(), clients)
	}
	if got, want := busItems(t, bus.gateBus.Bus.(*memory.Bus), otlpwire.Metrics, ""), int(ok.Load())*perReq; got != want {
		t.Errorf("%d items on the bus, want %d from %d successful requests", got, want, ok.Load())
	}
	t.Logf("%d admitted, %d refused; peak in-flight %d of %d bytes", ok.Load(), refused.Load(), bus.peak.Load(), limit)
}

// A request over the budget is refused from its Content-Length, before its
// body is read: a client that never sends its body still gets its 429.
func TestOverloadRefusedBeforeBodyIsRead(t *testing.T) {
	ing := newIngester(t, Config{MaxInflightBytes: 1 << 20, MaxRequestBytes: 4 << 20}, newBus(t, 1))
	ing.inflight.Store(1) // someone else is in flight
	srv := startServer(t, ing)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.HTTPAddr()+PathMetrics, pr)
	req.ContentLength = 3 << 20
	req.Header.Set("Content-Type", contentTypeProto)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429 before the body was sent", resp.StatusCode)
	}
}

func hasRetryInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}
