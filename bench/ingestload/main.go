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
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
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
	k8s := flag.Int("k8s", 0, "if > 0: send the realistic corpus metrics-k8s (100 pods x 100 series) in requests of this many data points (1: one point per request, as telemetrygen sends; 1000: an agent's batch) instead of Shape-made requests")
	streams := flag.Int("streams", 1, "requests in flight per connection")
	serve := flag.String("serve-empty", "", "instead of sending: serve OTLP/gRPC metrics Export on this address with an empty handler (the floor of grpc-go's cost per request), and process_cpu_seconds_total on -admin")
	delay := flag.Duration("delay", 0, "with -serve-empty: hold each request this long before answering, as the bus acknowledgement does")
	workers := flag.Int("stream-workers", 0, "with -serve-empty: grpc.NumStreamWorkers (0: a goroutine per call, grpc's default)")
	window := flag.Int("window", 0, "with -serve-empty: a static flow-control window of this many bytes per stream and per connection (grpc.InitialWindowSize, InitialConnWindowSize), which turns off grpc's BDP pings; 0: grpc's dynamic window")
	flag.Parse()
	if *serve != "" {
		var opts []grpc.ServerOption
		if *workers > 0 {
			opts = append(opts, grpc.NumStreamWorkers(uint32(*workers)))
		}
		if *window > 0 {
			opts = append(opts, grpc.InitialWindowSize(int32(*window)), grpc.InitialConnWindowSize(int32(*window)))
		}
		serveEmpty(*serve, *adminAddr, *delay, opts)
		return
	}

	var reqs []*benchutil.RawReq
	var perReq int
	if *k8s > 0 {
		reqs, perReq = k8sRequests(*k8s)
	} else {
		shape := otlptest.Shape{Resources: *resources, Items: *metrics, Points: *points}
		perReq = shape.ItemCount(otlpwire.Metrics)
		// A few distinct requests, so that partitions and keys vary.
		reqs = make([]*benchutil.RawReq, 8)
		for i := range reqs {
			shape.Seed = i
			reqs[i] = &benchutil.RawReq{B: otlptest.Request(otlpwire.Metrics, shape)}
		}
	}
	requests := (*total + perReq - 1) / perReq
	fmt.Printf("sending %d requests of %d data points (%d bytes) over %d connections x %d streams\n", requests, perReq, len(reqs[0].B), *conns, *streams)

	cpu0, err := benchutil.CPUSeconds(*adminAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading the ingester's CPU time:", err)
	}
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < *conns; c++ {
		conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(benchutil.RawCodec{})))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer conn.Close()
		for range *streams {
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

// serveEmpty runs a gRPC server whose metrics Export answers at once (after
// delay), with the same pass-through codec as the ingester and opts, until
// killed.
func serveEmpty(addr, admin string, delay time.Duration, opts []grpc.ServerOption) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go http.ListenAndServe(admin, mux)
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodec(benchutil.RawCodec{})}, opts...)...)
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.metrics.v1.MetricsService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			req := &benchutil.RawReq{}
			if err := dec(req); err != nil {
				return nil, err
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			return &benchutil.RawReq{}, nil
		}}},
	}, nil)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv.Serve(l)
}

// k8sRequests cuts the corpus metrics-k8s into requests of n data points
// each (the series in order, pod by pod; a request holds the pods its
// points belong to), in wire form.
func k8sRequests(n int) ([]*benchutil.RawReq, int) {
	var body []byte
	for _, c := range otlptest.Corpora() {
		if c.Name == "metrics-k8s" {
			body = c.Body
		}
	}
	var corpus colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &corpus); err != nil {
		panic(err)
	}
	var out []*benchutil.RawReq
	req := &colmetrics.ExportMetricsServiceRequest{}
	in := 0
	flush := func() {
		b, err := proto.Marshal(req)
		if err != nil {
			panic(err)
		}
		out = append(out, &benchutil.RawReq{B: b})
		req, in = &colmetrics.ExportMetricsServiceRequest{}, 0
	}
	for _, rm := range corpus.ResourceMetrics {
		pts := rm.ScopeMetrics[0].Metrics[0].GetGauge().DataPoints
		for len(pts) > 0 {
			take := min(n-in, len(pts))
			part := proto.Clone(rm).(*metricspb.ResourceMetrics)
			part.ScopeMetrics[0].Metrics[0].GetGauge().DataPoints = pts[:take]
			req.ResourceMetrics = append(req.ResourceMetrics, part)
			pts, in = pts[take:], in+take
			if in == n {
				flush()
			}
		}
	}
	if in > 0 && len(out) == 0 {
		flush()
	}
	return out, n
}
