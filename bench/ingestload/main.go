// Command ingestload measures a running sluice ingester under a real
// OTLP/gRPC load: it sends metrics requests from several connections as fast
// as they are answered and reports data points per second and the
// ingester's CPU time per million data points, read from its admin
// endpoint (process_cpu_seconds_total) before and after.
//
//	go run ./bench/ingestload -grpc 127.0.0.1:4317 -admin 127.0.0.1:9464 -datapoints 20000000
//
// bench/ingest.sh runs it against `sluice ingest` on a real Kafka broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

func main() {
	target := flag.String("grpc", "127.0.0.1:4317", "OTLP/gRPC address of the ingester")
	adminAddr := flag.String("admin", "127.0.0.1:9464", "admin address of the ingester (for its CPU time); empty skips it")
	total := flag.Int("datapoints", 10_000_000, "data points to send")
	conns := flag.Int("connections", 4, "concurrent connections, one request in flight each")
	resources := flag.Int("resources", 10, "resources per request")
	metrics := flag.Int("metrics", 100, "metrics per resource")
	points := flag.Int("points", 10, "data points per metric")
	flag.Parse()

	shape := otlptest.Shape{Resources: *resources, Items: *metrics, Points: *points}
	perReq := shape.ItemCount(otlpwire.Metrics)
	// A few distinct requests, so that partitions and keys vary.
	reqs := make([]*rawReq, 8)
	for i := range reqs {
		shape.Seed = i
		reqs[i] = &rawReq{b: otlptest.Request(otlpwire.Metrics, shape)}
	}
	requests := (*total + perReq - 1) / perReq
	fmt.Printf("sending %d requests of %d data points (%d bytes) over %d connections\n", requests, perReq, len(reqs[0].b), *conns)

	cpu0, err := benchutil.CPUSeconds(*adminAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the ingester's CPU time:", err)
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < *conns; c++ {
		conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer conn.Close()
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(requests) {
					return
				}
				var resp colmetrics.ExportMetricsServiceResponse
				err := conn.Invoke(context.Background(), "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", reqs[n%int64(len(reqs))], &resp)
				if err != nil {
					failed.Add(1)
					fmt.Fprintln(os.Stderr, "export:", err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	sent := int64(requests-int(failed.Load())) * int64(perReq)
	fmt.Printf("%d data points in %v: %.0f data points/s, %d failed requests\n", sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), failed.Load())
	cpu1, err := benchutil.CPUSeconds(*adminAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the ingester's CPU time:", err)
		return
	}
	used := cpu1 - cpu0
	fmt.Printf("ingester CPU: %.2f s, %.3f CPU-seconds per million data points, %.0f data points/s per core\n",
		used, used/(float64(sent)/1e6), float64(sent)/used)
}

// rawReq is a request already in wire form; rawCodec sends it as it is.
type rawReq struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*rawReq); ok {
		return r.b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
