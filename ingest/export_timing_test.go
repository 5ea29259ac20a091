package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

type benchCase struct {
	name string
	sig  otlpwire.Signal
	req  proto.Message
}

func benchCases() []benchCase {
	return []benchCase{
		{"metrics", otlpwire.Metrics, metricsRequest(10, 100, 10)}, // 10,000 data points
		{"logs", otlpwire.Logs, logsRequest(10, 500)},              // 5,000 log records
		{"traces", otlpwire.Traces, tracesRequest(10, 500)},        // 5,000 spans
	}
}

// runBench runs op b.N times and reports items/s, allocations and bytes per
// item (allocations counted around the loop).
func runBench(b *testing.B, body []byte, items int, op func()) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		op()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	total := float64(items) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "items/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/item")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/item")
}

// BenchmarkExport is the core path: split and produce to a memory bus that
// discards, 6 partitions, default keys.
func BenchmarkExport(b *testing.B) {
	for _, bc := range benchCases() {
		body := mustMarshal(b, bc.req)
		items, err := otlpwire.Count(bc.sig, body)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			bus := newBus(b, 6)
			bus.Discard = true
			ing := newIngester(b, Config{}, bus)
			ctx := context.Background()
			runBench(b, body, items, func() {
				if _, err := ing.Export(ctx, bc.sig, "bench", body); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkHTTP is the end-to-end path through a loopback OTLP/HTTP server
// with net/http's client, protobuf, no compression.
func BenchmarkHTTP(b *testing.B) {
	for _, bc := range benchCases() {
		body := mustMarshal(b, bc.req)
		items, _ := otlpwire.Count(bc.sig, body)
		b.Run(bc.name, func(b *testing.B) {
			bus := newBus(b, 6)
			bus.Discard = true
			srv := startServer(b, newIngester(b, Config{}, bus))
			url := "http://" + srv.HTTPAddr() + signalPaths[bc.sig]
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			rd := bytes.NewReader(body)
			runBench(b, body, items, func() {
				rd.Reset(body)
				resp, err := client.Post(url, contentTypeProto, rd)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			})
		})
	}
}

// BenchmarkGRPC is the end-to-end path through a loopback OTLP/gRPC server;
// the client sends pre-encoded bytes so that only transport and server are
// measured.
func BenchmarkGRPC(b *testing.B) {
	for _, bc := range benchCases() {
		body := mustMarshal(b, bc.req)
		items, _ := otlpwire.Count(bc.sig, body)
		b.Run(bc.name, func(b *testing.B) {
			bus := newBus(b, 6)
			bus.Discard = true
			srv := startServer(b, newIngester(b, Config{}, bus))
			cc := dial(b, srv.GRPCAddr())
			ctx := context.Background()
			runBench(b, body, items, func() {
				if err := rawCall(ctx, cc, bc.sig, body); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// delayBus is a memory bus that discards, and acknowledges each Produce
// call after delay, as a broker's round trip does: concurrent requests
// then meet in the group commit (coalesce.go).
type delayBus struct {
	*memory.Bus
	delay time.Duration
}

func (b delayBus) Produce(ctx context.Context, recs ...*stream.Record) error {
	time.Sleep(b.delay)
	return b.Bus.Produce(ctx, recs...)
}

// k8sClients is the load of BenchmarkExportK8s and BenchmarkGRPCK8s: 16
// clients, requests of 1,000 points of metrics-k8s, and a bus that
// discards and acknowledges each call after 1 ms.
const k8sClients = 16

func k8sBodies(b *testing.B) (bodies [][]byte, perRequest int, bus delayBus) {
	load, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{PerRequest: 1000, Partitions: 6})
	if err != nil {
		b.Fatal(err)
	}
	bodies = make([][]byte, load.RequestsPerStep())
	for j := range bodies {
		bodies[j] = load.Request(nil, j)
	}
	mb := newBus(b, 6)
	mb.Discard = true
	return bodies, load.PerRequest(), delayBus{mb, time.Millisecond}
}

// runK8sClients sends b.N of bodies by the clients' calls, each client
// calling one request at a time, and reports the process' CPU time, heap
// allocations and bytes per point.
func runK8sClients(b *testing.B, bodies [][]byte, perRequest int, calls []func([]byte) error) {
	var next atomic.Int64
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	cpu0 := cpuTime()
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			for {
				j := next.Add(1) - 1
				if j >= int64(b.N) {
					return
				}
				if err := call(bodies[j%int64(len(bodies))]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&m1)
	points := float64(b.N) * float64(perRequest)
	b.ReportMetric(float64(cpu.Nanoseconds())/points, "cpu-ns/point")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/points, "allocs/point")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/points, "B/point")
	b.ReportMetric(points/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkExportK8s is stage 2 of bench/e2e.sh without gRPC and Kafka:
// requests of 1,000 points of the realistic corpus metrics-k8s from 16
// concurrent clients, to a bus that acknowledges each call after 1 ms
// (most chunks wait in a busy lane and are packed into shared records).
// It reports the process' CPU time per point (cpu-ns/point: the clients
// idle while they wait) and the records written; run with -cpu 2 or more.
func BenchmarkExportK8s(b *testing.B) {
	bodies, perRequest, bus := k8sBodies(b)
	ing := newIngester(b, Config{}, bus)
	ctx := context.Background()
	calls := make([]func([]byte) error, k8sClients)
	for c := range calls {
		calls[c] = func(body []byte) error {
			_, err := ing.Export(ctx, otlpwire.Metrics, "bench", body)
			return err
		}
	}
	runK8sClients(b, bodies, perRequest, calls)
}

// cpuTime is the CPU time the process has used.
var cpuTime = testproc.CPU

// BenchmarkGRPCK8s is BenchmarkExportK8s through a loopback OTLP/gRPC
// server, a connection per client: cpu-ns/point counts the clients' gRPC
// too (the same whatever the server does).
func BenchmarkGRPCK8s(b *testing.B) {
	bodies, perRequest, bus := k8sBodies(b)
	srv := startServer(b, newIngester(b, Config{}, bus))
	ctx := context.Background()
	calls := make([]func([]byte) error, k8sClients)
	for c := range calls {
		cc := dial(b, srv.GRPCAddr())
		if err := rawCall(ctx, cc, otlpwire.Metrics, bodies[0]); err != nil { // connect
			b.Fatal(err)
		}
		calls[c] = func(body []byte) error { return rawCall(ctx, cc, otlpwire.Metrics, body) }
	}
	runK8sClients(b, bodies, perRequest, calls)
}
