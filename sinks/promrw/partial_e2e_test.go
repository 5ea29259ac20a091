package promrw

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// A batch delivered in part: Prometheus accepts the first two requests of
// the batch and the third fails (503, not passed on, as when Prometheus
// goes down in the middle of a batch). The stage tries the batch again;
// the requests already accepted must not be sent again, since Prometheus
// answers 400 "out of order sample" to points older than the newest of
// their series even when it holds them, which dead-lettered records whose
// points were all delivered. Nothing is dead-lettered and every sample is
// there.
func TestPrometheusPartialBatchRetried(t *testing.T) {
	be := backendtest.Prometheus(t)
	u, _ := url.Parse(be.WriteURL)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 {
			http.Error(w, "going down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	// 20 records of the same 10 series, one second apart: each series has
	// 20 points in the batch.
	const records, perRecord = 20, 10
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	for k := range records {
		rec := seriesRecord(t, "fault_partial", 0, perRecord, base.Add(time.Duration(k)*time.Second))
		rec.Topic, rec.Partition = topics.Processed(otlpwire.Metrics), -1
		if err := bus.Produce(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// Requests of 50 samples on one shard: 4 requests in the batch.
	sinkRunner(t, bus, topics, Config{Config: httpSinkConfig(srv.URL + u.Path), MaxSamplesPerRequest: 50, Concurrency: 1})
	deadline := time.Now().Add(30 * time.Second)
	for groupLag(t, bus, topics) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %d after 30s", groupLag(t, bus, topics))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := samples(t, be.URL, "fault_partial"); got != records*perRecord {
		t.Errorf("Prometheus has %d samples, want %d", got, records*perRecord)
	}
	if dlq := bus.Records(topics.DLQ()); len(dlq) != 0 {
		t.Errorf("%d records in the DLQ: %s", len(dlq), dlq[0].Header(stream.HeaderError))
	}
	if n.Load() != 5 { // 4 requests, the third one twice
		t.Errorf("%d requests, want 5", n.Load())
	}
}
