package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/otlptest"
)

// sent is what send did.
type sent struct {
	requests, points int
	retries          int64
	wall             time.Duration
}

// send sends requests 0 to n-1 of l to the OTLP/gRPC address target over
// conns connections, one request in flight each. Connection c sends
// requests c, c+conns, c+2·conns...: when conns divides
// l.RequestsPerStep(), each request template (a fixed set of series) is
// always sent by the same connection, one step after the other, so every
// series reaches the bus in time order. A request refused as retryable
// (Unavailable, ResourceExhausted) is sent again after a pause; any other
// error ends the run. With a non-zero until, no request is started after
// it: the result says how many were sent. With lockstep, no request of a
// step (a point time) starts before every request of the step before it
// is answered: the raw partitions then hold the points in time order, as
// a backlog that built up in real time does, rather than each connection's
// run of steps as fast as it went.
func send(ctx context.Context, target string, l *otlptest.K8sLoad, n, conns int, until time.Time, lockstep bool) (sent, error) {
	var retries, done atomic.Int64
	var mu sync.Mutex
	stepDone := sync.NewCond(&mu)
	waitStep := func(j int) bool { // until every request before j's step is answered
		if !lockstep {
			return true
		}
		first := int64(j / l.RequestsPerStep() * l.RequestsPerStep())
		mu.Lock()
		defer mu.Unlock()
		for done.Load() < first && ctx.Err() == nil {
			stepDone.Wait()
		}
		return ctx.Err() == nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*grpc.ClientConn, conns)
	for c := range clients {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(benchutil.RawCodec{})))
		if err != nil {
			return sent{}, err
		}
		defer conn.Close()
		conn.Connect()
		clients[c] = conn
	}
	start := time.Now()
	for c, conn := range clients {
		wg.Go(func() {
			req := &benchutil.RawReq{}
			var resp colmetrics.ExportMetricsServiceResponse
			for j := c; j < n; j += conns {
				if !until.IsZero() && time.Now().After(until) {
					return
				}
				if !waitStep(j) {
					return
				}
				req.B = l.Request(req.B, j)
				for try := 0; ; try++ {
					err := conn.Invoke(ctx, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", req, &resp)
					if err == nil {
						if ps := resp.GetPartialSuccess(); ps.GetRejectedDataPoints() > 0 {
							errs <- fmt.Errorf("request %d: %d points rejected: %s", j, ps.GetRejectedDataPoints(), ps.GetErrorMessage())
							cancel()
							return
						}
						mu.Lock()
						done.Add(1)
						stepDone.Broadcast()
						mu.Unlock()
						break
					}
					if code := status.Code(err); (code == codes.Unavailable || code == codes.ResourceExhausted) && try < 100 && ctx.Err() == nil {
						retries.Add(1)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					errs <- fmt.Errorf("request %d: %w", j, err)
					cancel()
					return
				}
			}
		})
	}
	go func() { // wake the waiters of a cancelled run
		<-ctx.Done()
		mu.Lock()
		stepDone.Broadcast()
		mu.Unlock()
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return sent{}, err
	}
	return sent{requests: int(done.Load()), points: int(done.Load()) * l.PerRequest(), retries: retries.Load(), wall: time.Since(start)}, nil
}
