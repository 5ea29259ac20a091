package promrw

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

func gaugeRecord(t testing.TB, name string, n int) *stream.Record {
	ts := time.Now().Truncate(time.Millisecond)
	req := otlpRequest(nil)
	for i := range n {
		req.ResourceMetrics[0].ScopeMetrics[0].Metrics = append(req.ResourceMetrics[0].ScopeMetrics[0].Metrics,
			gauge(name, "", ts, float64(i), intAttr("i", int64(i))))
	}
	return record(t, req, "team-a")
}

// A 400 for some requests rejects exactly the records with series in them
// (one series per request here); the others are delivered.
func TestRefusedRequestsRejectTheirRecords(t *testing.T) {
	var delivered atomic.Int64
	srv := httptest.NewServer(&fakeRW{answer: func(names []string) (int, string) {
		if slices.Contains(names, "bad") {
			return 400, ""
		}
		delivered.Add(int64(len(names)))
		return 200, ""
	}})
	defer srv.Close()
	s := newSink(t, Config{Config: httpSinkConfig(srv.URL), MaxSamplesPerRequest: 1, Concurrency: 2})
	good1, bad, good2 := gaugeRecord(t, "good", 10), gaugeRecord(t, "bad", 4), gaugeRecord(t, "good2", 5)
	err := s.Write(context.Background(), []*stream.Record{good1, bad, good2})
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("Write = %v, want a RejectedError", err)
	}
	if len(rej.Records) != 1 || rej.Records[0] != bad || !strings.Contains(rej.Reason, "HTTP 400") || !strings.Contains(rej.Reason, "refused bad") {
		t.Errorf("rejected %d records, reason %q", len(rej.Records), rej.Reason)
	}
	if d := delivered.Load(); d != 15 {
		t.Errorf("delivered %d samples, want 15", d)
	}
}

// 503 with Retry-After and connection errors are retryable.
func TestUnavailableIsRetryable(t *testing.T) {
	srv := httptest.NewServer(&fakeRW{answer: func([]string) (int, string) { return 503, "7" }})
	s := newSink(t, Config{Config: httpSinkConfig(srv.URL)})
	err := s.Write(context.Background(), []*stream.Record{gaugeRecord(t, "g", 3)})
	var he *httpsink.Error
	var rej *sinks.RejectedError
	if !errors.As(err, &he) || errors.As(err, &rej) || !he.Retryable || he.Status != 503 {
		t.Fatalf("Write = %v, want a retryable 503", err)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second {
		t.Errorf("RetryAfter missing or wrong: %v", err)
	}
	srv.Close()
	err = s.Write(context.Background(), []*stream.Record{gaugeRecord(t, "g", 3)})
	if !errors.As(err, &he) || !he.Retryable || he.Status != 0 {
		t.Errorf("backend down: Write = %v, want a retryable connection error", err)
	}
}

// A runner on the memory bus delivers everything once the backend is
// back, after retrying the batch.
func TestStageRetriesUntilTheBackendIsBack(t *testing.T) {
	var calls atomic.Int64
	got := make(chan []string, 100)
	srv := httptest.NewServer(&fakeRW{got: got, answer: func([]string) (int, string) {
		if calls.Add(1) <= 3 {
			return 503, ""
		}
		return 200, ""
	}})
	defer srv.Close()
	// One shard: each try is one request, so nothing is delivered twice.
	s := newSink(t, Config{Config: httpSinkConfig(srv.URL), Concurrency: 1})
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	rec := gaugeRecord(t, "g", 5)
	rec.Topic, rec.Partition = topics.Processed(otlpwire.Metrics), -1
	if err := bus.Produce(ctx, rec); err != nil {
		t.Fatal(err)
	}
	entry := &config.Sink{Name: "prom", Type: Type, Signals: []string{"metrics"}}
	r, err := sinks.NewRunner(bus, entry, s, sinks.RunnerConfig{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- r.Run(rctx) }()
	var names []string
	for len(names) < 5 {
		select {
		case n := <-got:
			names = append(names, n...)
		case <-time.After(30 * time.Second):
			t.Fatalf("delivered only %v", names)
		}
	}
	cancel()
	<-done
	if len(names) != 5 || calls.Load() < 4 {
		t.Errorf("delivered %v after %d calls", names, calls.Load())
	}
	if dlq := bus.Records(topics.DLQ()); len(dlq) != 0 {
		t.Errorf("%d records in the DLQ", len(dlq))
	}
}

func parseEntry(t *testing.T, text string) *config.Sink {
	t.Helper()
	var e config.Sink
	if err := yaml.Unmarshal([]byte(text), &e); err != nil {
		t.Fatal(err)
	}
	e.Path = "sinks[0]"
	return &e
}

func TestConfig(t *testing.T) {
	e := parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://127.0.0.1:9090/api/v1/write\n")
	cfg := &config.Config{Sinks: []config.Sink{*e}}
	s, err := sinks.Build(cfg, e, sinks.Env{})
	if err != nil {
		t.Fatalf("the minimal entry: %v", err)
	}
	p := s.(*Sink)
	if p.cfg.MaxSamplesPerRequest != 2000 || p.cfg.Concurrency != 4 || p.cfg.Delta != "reject" || p.cfg.ExponentialHistograms != "native" ||
		p.cfg.SeriesCacheBytes != 64<<20 || p.tr.cache.maxBytes != 64<<20 {
		t.Errorf("defaults: %+v", p.cfg)
	}
	s.Close()
	e = parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\nseries_cache_bytes: 8MiB\n")
	if s, err := sinks.Build(cfg, e, sinks.Env{}); err != nil || s.(*Sink).tr.cache.maxBytes != 8<<20 {
		t.Errorf("series_cache_bytes: 8MiB: %v", err)
	}
	for _, bad := range []string{"urll: x\n", "delta: sometimes\n", "exponential_histograms: nope\n", "concurrency: -1\n", "series_cache_bytes: lots\n"} {
		e := parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\n"+bad)
		if _, err := sinks.Build(cfg, e, sinks.Env{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	e = parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\nretry_after_max: 30s\n")
	if s, err := sinks.Build(cfg, e, sinks.Env{}); err != nil || s.(*Sink).cfg.RetryAfterMax != 30*time.Second {
		t.Errorf("retry_after_max: 30s: %v", err)
	}
	e = parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\nretry_after_max: -1s\n")
	if _, err := sinks.Build(cfg, e, sinks.Env{}); err == nil || !strings.Contains(err.Error(), "retry_after_max must not be negative") {
		t.Errorf("retry_after_max: -1s: %v", err)
	}
	e = parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [logs]\nurl: http://x/\n")
	if _, err := sinks.Build(cfg, e, sinks.Env{}); err == nil || !strings.Contains(err.Error(), "metrics only") {
		t.Errorf("signals [logs]: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	srv := httptest.NewServer(&fakeRW{answer: func([]string) (int, string) { return 200, "" }})
	defer srv.Close()
	reg := prometheus.NewRegistry()
	s, err := New("prom", Config{Config: httpSinkConfig(srv.URL)}, sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New("prom2", Config{Config: httpSinkConfig(srv.URL)}, sinks.Env{Registerer: reg}); err != nil {
		t.Fatal(err) // a second sink on the same registry
	}
	if err := s.Write(context.Background(), []*stream.Record{gaugeRecord(t, "g", 5)}); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(s.m.samples.WithLabelValues("prom")); v != 5 {
		t.Errorf("samples sent %v", v)
	}
	if n := testutil.CollectAndCount(reg, "sluice_sink_requests_total"); n == 0 {
		t.Error("no requests_total")
	}
	// The same 5 series again: found in the series cache.
	if err := s.Write(context.Background(), []*stream.Record{gaugeRecord(t, "g", 5)}); err != nil {
		t.Fatal(err)
	}
	hit, miss := testutil.ToFloat64(s.m.cacheLookups.WithLabelValues("prom", "hit")), testutil.ToFloat64(s.m.cacheLookups.WithLabelValues("prom", "miss"))
	if hit != 5 || miss != 5 || testutil.ToFloat64(s.m.cacheSeries.WithLabelValues("prom")) != 5 {
		t.Errorf("series cache: %v hits, %v misses, %v series; want 5, 5, 5", hit, miss, testutil.ToFloat64(s.m.cacheSeries.WithLabelValues("prom")))
	}
	if b := testutil.ToFloat64(s.m.cacheBytes.WithLabelValues("prom")); b <= float64(5*entryOverhead) || b > defaultSeriesCacheBytes {
		t.Errorf("series cache bytes %v", b)
	}
}
