package ingest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
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
