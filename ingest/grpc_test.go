package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// exportGRPC sends one request of sig with the generated client.
func exportGRPC(ctx context.Context, cc *grpc.ClientConn, sig otlpwire.Signal, opts ...grpc.CallOption) (partial string, rejected int64, err error) {
	switch sig {
	case otlpwire.Metrics:
		r, err := colmetricspb.NewMetricsServiceClient(cc).Export(ctx, metricsRequest(3, 4, 5), opts...)
		return r.GetPartialSuccess().GetErrorMessage(), r.GetPartialSuccess().GetRejectedDataPoints(), err
	case otlpwire.Logs:
		r, err := collogspb.NewLogsServiceClient(cc).Export(ctx, logsRequest(2, 7), opts...)
		return r.GetPartialSuccess().GetErrorMessage(), r.GetPartialSuccess().GetRejectedLogRecords(), err
	default:
		r, err := coltracepb.NewTraceServiceClient(cc).Export(ctx, tracesRequest(2, 9), opts...)
		return r.GetPartialSuccess().GetErrorMessage(), r.GetPartialSuccess().GetRejectedSpans(), err
	}
}

// rawCall sends body as it is to sig's Export method.
func rawCall(ctx context.Context, cc *grpc.ClientConn, sig otlpwire.Signal, body []byte, opts ...grpc.CallOption) error {
	var resp RawMessage
	codec := rawCodec{fallback: encoding.GetCodecV2("proto")}
	return cc.Invoke(ctx, "/"+grpcServices[sig].service+"/Export", RawMessage(body), &resp, append(opts, grpc.ForceCodecV2(codec))...)
}

func TestGRPCSuccess(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		for _, compress := range []string{"", gzip.Name, "zstd"} {
			t.Run(fmt.Sprintf("%s/compression=%s", sig, compress), func(t *testing.T) {
				bus := newBus(t, 3)
				srv := startServer(t, newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-a", Tenants: []string{"team-b"}})}, bus))
				cc := dial(t, srv.GRPCAddr())
				ctx := metadata.AppendToOutgoingContext(context.Background(), "X-Scope-OrgID", "team-b", "authorization", "Bearer tok")
				var opts []grpc.CallOption
				if compress != "" {
					opts = append(opts, grpc.UseCompressor(compress))
				}
				msg, rejected, err := exportGRPC(ctx, cc, sig, opts...)
				if err != nil {
					t.Fatal(err)
				}
				if msg != "" || rejected != 0 {
					t.Errorf("partial success %q %d", msg, rejected)
				}
				if got := busItems(t, bus, sig, "team-b"); got != sampleItems[sig] {
					t.Errorf("%d items on the bus, want %d", got, sampleItems[sig])
				}
			})
		}
	}
}

func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Errorf("no RetryInfo in %v", err)
	return 0
}

func TestGRPCErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("malformed", func(t *testing.T) {
		bus := newBus(t, 1)
		srv := startServer(t, newIngester(t, Config{}, bus))
		err := rawCall(ctx, dial(t, srv.GRPCAddr()), otlpwire.Metrics, []byte{0x0a, 0x05, 0x0a, 0xff})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "resource_metrics") {
			t.Errorf("got %v, want InvalidArgument naming the field", err)
		}
	})
	t.Run("bad tenant", func(t *testing.T) {
		srv := startServer(t, newIngester(t, Config{}, newBus(t, 1)))
		ctx := metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", "has space")
		if _, _, err := exportGRPC(ctx, dial(t, srv.GRPCAddr()), otlpwire.Logs); status.Code(err) != codes.InvalidArgument {
			t.Errorf("got %v, want InvalidArgument", err)
		}
	})
	t.Run("unauthenticated", func(t *testing.T) {
		srv := startServer(t, newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-a"})}, newBus(t, 1)))
		cc := dial(t, srv.GRPCAddr())
		if _, _, err := exportGRPC(ctx, cc, otlpwire.Traces); status.Code(err) != codes.Unauthenticated {
			t.Errorf("no token: got %v", err)
		}
		bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer toc")
		if _, _, err := exportGRPC(bad, cc, otlpwire.Traces); status.Code(err) != codes.Unauthenticated {
			t.Errorf("wrong token: got %v", err)
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		bus := newBus(t, 1)
		bus.Fail = fmt.Errorf("nats: %w", stream.ErrUnavailable)
		srv := startServer(t, newIngester(t, Config{RetryAfter: 2 * time.Second}, bus))
		_, _, err := exportGRPC(ctx, dial(t, srv.GRPCAddr()), otlpwire.Metrics)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want Unavailable", err)
		}
		if d := retryDelay(t, err); d != 2*time.Second {
			t.Errorf("retry delay %v", d)
		}
	})
	t.Run("too large", func(t *testing.T) {
		srv := startServer(t, newIngester(t, Config{MaxRequestBytes: 2048}, newBus(t, 1)))
		_, _, err := exportGRPC(ctx, dial(t, srv.GRPCAddr()), otlpwire.Metrics)
		if status.Code(err) != codes.ResourceExhausted || len(status.Convert(err).Details()) != 0 {
			t.Errorf("got %v, want ResourceExhausted without RetryInfo", err)
		}
	})
	// A zstd bomb: a small frame inflating past max_request_bytes is
	// refused, and the ingester serves the next request.
	t.Run("zstd bomb", func(t *testing.T) {
		bus := newBus(t, 1)
		srv := startServer(t, newIngester(t, Config{MaxRequestBytes: 64 << 10}, bus))
		cc := dial(t, srv.GRPCAddr())
		body := make([]byte, 16<<20) // zeros: a frame of a few hundred bytes
		if err := rawCall(ctx, cc, otlpwire.Metrics, body, grpc.UseCompressor("zstd")); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("got %v, want ResourceExhausted", err)
		}
		if _, _, err := exportGRPC(ctx, cc, otlpwire.Metrics, grpc.UseCompressor("zstd")); err != nil {
			t.Errorf("the next request: %v", err)
		}
		if got := busItems(t, bus, otlpwire.Metrics, DefaultTenant); got != sampleItems[otlpwire.Metrics] {
			t.Errorf("%d items on the bus, want %d", got, sampleItems[otlpwire.Metrics])
		}
	})
	t.Run("overloaded", func(t *testing.T) {
		gate := newGateBus(newBus(t, 1))
		srv := startServer(t, newIngester(t, Config{MaxInflightBytes: 100, RetryAfter: 3 * time.Second}, gate))
		cc := dial(t, srv.GRPCAddr())
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, _, err := exportGRPC(ctx, cc, otlpwire.Logs); err != nil {
				t.Errorf("first request: %v", err)
			}
		})
		<-gate.entered
		_, _, err := exportGRPC(ctx, cc, otlpwire.Logs)
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("got %v, want ResourceExhausted", err)
		} else if d := retryDelay(t, err); d != 3*time.Second {
			t.Errorf("retry delay %v", d)
		}
		gate.open()
		wg.Wait()
	})
	t.Run("partial success", func(t *testing.T) {
		bus := newBus(t, 2)
		srv := startServer(t, newIngester(t, Config{MaxRecordBytes: 4096}, bus))
		req := logsRequest(1, 5)
		req.ResourceLogs[0].ScopeLogs[0].LogRecords[3].Body = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: strings.Repeat("y", 8000)}}
		resp, err := collogspb.NewLogsServiceClient(dial(t, srv.GRPCAddr())).Export(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if ps := resp.GetPartialSuccess(); ps.GetRejectedLogRecords() != 1 || ps.GetErrorMessage() == "" {
			t.Errorf("partial success %v", ps)
		}
		if got := busItems(t, bus, otlpwire.Logs, DefaultTenant); got != 4 {
			t.Errorf("%d items on the bus, want 4", got)
		}
	})
}

// TestGRPCRequestsLargerThanTheWindow: with the static flow-control window
// (grpcStreamWindow, no BDP pings), concurrent requests on one connection,
// each larger than the connection's window, all go through whole.
func TestGRPCRequestsLargerThanTheWindow(t *testing.T) {
	body := otlptest.Request(otlpwire.Metrics, otlptest.Shape{Resources: 20, Items: 100, Points: 60})
	if len(body) <= 2*grpcStreamWindow {
		t.Fatalf("request of %d bytes, want more than the connection window %d", len(body), 2*grpcStreamWindow)
	}
	items := otlptest.Shape{Resources: 20, Items: 100, Points: 60}.ItemCount(otlpwire.Metrics)
	bus := newBus(t, 3)
	srv := startServer(t, newIngester(t, Config{}, bus))
	cc := dial(t, srv.GRPCAddr())
	const calls = 3
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs <- rawCall(ctx, cc, otlpwire.Metrics, body)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := busItems(t, bus, otlpwire.Metrics, DefaultTenant); got != calls*items {
		t.Errorf("%d items on the bus, want %d", got, calls*items)
	}
}
