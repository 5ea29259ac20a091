package promrw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// outage is how long Prometheus is down in TestPrometheusOutage: 30 s,
// as the project's fault requirement for sinks says.
const outage = 30 * time.Second

// seriesRecord is a processed record with one gauge point at ts for each
// of the series name{s="<first+i>", ...extra} (i < n).
func seriesRecord(t testing.TB, name string, first, n int, ts time.Time, extra ...*commonpb.KeyValue) *stream.Record {
	t.Helper()
	req := otlpRequest(nil)
	sm := req.ResourceMetrics[0].ScopeMetrics[0]
	for i := range n {
		attrs := append([]*commonpb.KeyValue{intAttr("s", int64(first+i))}, extra...)
		sm.Metrics = append(sm.Metrics, gauge(name, "", ts, float64(ts.UnixMilli()%1000+int64(i)), attrs...))
	}
	return record(t, req, "")
}

// sinkRunner runs a promrw sink named prom on bus until the test ends.
func sinkRunner(t *testing.T, bus stream.Bus, topics stream.Topics, cfg Config) {
	t.Helper()
	s, err := New("prom", cfg, sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	entry := &config.Sink{Name: "prom", Type: Type, Signals: []string{"metrics"}}
	r, err := sinks.NewRunner(bus, entry, s, sinks.RunnerConfig{Topics: topics, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})
}

// groupLag is the lag of the prom sink's consumer group, read by a second
// member that never polls.
func groupLag(t *testing.T, bus *memory.Bus, topics stream.Topics) int64 {
	t.Helper()
	c, err := bus.Consume(stream.ConsumerConfig{Group: "sluice-sink-prom", Topics: []string{topics.Processed(otlpwire.Metrics)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lag, err := c.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return lag
}

// samples is the number of samples of metric in Prometheus (the last hour).
func samples(t *testing.T, base, selector string) int64 {
	t.Helper()
	res := query(t, base, "sum(count_over_time("+selector+"[1h]))", time.Now())
	if len(res) == 0 {
		return 0
	}
	return int64(res[0].Value)
}

// Prometheus goes away for `outage` while records keep arriving on the bus,
// then comes back on the same port and data directory: every sample ends up
// in Prometheus, nothing is dead-lettered and the group's lag returns to 0.
// The series are few and long (100 series, one point each per record, the
// timestamps rising), as real metrics are, so that a batch retried after a
// partial delivery re-sends points Prometheus already has.
func TestPrometheusOutage(t *testing.T) {
	be := backendtest.Prometheus(t)
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	const seriesPerRecord, groups = 25, 4
	sinkRunner(t, bus, topics, Config{Config: httpSinkConfig(be.WriteURL)})

	// The producer: one record every 10ms, group k%4 (series 25*g ..
	// 25*g+24), timestamps strictly rising.
	var produced atomic.Int64
	stopProducing := make(chan struct{})
	producerDone := make(chan error, 1)
	go func() {
		ctx := context.Background()
		last := time.Time{}
		for k := 0; ; k++ {
			select {
			case <-stopProducing:
				producerDone <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			ts := time.Now().Truncate(time.Millisecond)
			if !ts.After(last) {
				ts = last.Add(time.Millisecond)
			}
			last = ts
			g := k % groups
			rec := seriesRecord(t, "fault_outage", g*seriesPerRecord, seriesPerRecord, ts)
			rec.Topic, rec.Partition, rec.Key = topics.Processed(otlpwire.Metrics), -1, fmt.Appendf(nil, "g%d", g)
			if err := bus.Produce(ctx, rec); err != nil {
				producerDone <- err
				return
			}
			produced.Add(1)
		}
	}()

	start := time.Now()
	time.Sleep(2 * time.Second)
	before := samples(t, be.URL, "fault_outage")
	if before == 0 {
		t.Fatal("nothing delivered before the outage")
	}
	be.Stop(t)
	stopped := time.Now()
	time.Sleep(outage)
	lagDown := groupLag(t, bus, topics)
	be.Restart(t)
	restarted := time.Now()
	// Recovery: the backlog drained down to what one poll finds.
	for groupLag(t, bus, topics) > 10 && time.Since(restarted) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	recovery := time.Since(restarted)
	time.Sleep(time.Second)
	close(stopProducing)
	if err := <-producerDone; err != nil {
		t.Fatal(err)
	}
	want := produced.Load() * seriesPerRecord
	t.Logf("%d samples in Prometheus before the outage; lag %d records after %s down; backlog drained %s after the restart",
		before, lagDown, outage, recovery.Round(10*time.Millisecond))
	if lagDown == 0 {
		t.Error("no lag while Prometheus was down: the records were not waiting on the bus")
	}

	deadline := time.Now().Add(60 * time.Second)
	var got, lag int64
	for {
		got, lag = samples(t, be.URL, "fault_outage"), groupLag(t, bus, topics)
		if (got == want && lag == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d records, %d samples produced; %d in Prometheus; lag %d; all in %s after the restart (outage %s, total %s)",
		produced.Load(), want, got, lag, time.Since(restarted).Round(10*time.Millisecond), restarted.Sub(stopped).Round(10*time.Millisecond),
		time.Since(start).Round(10*time.Millisecond))
	if got != want || lag != 0 {
		t.Errorf("Prometheus has %d samples, want %d; lag %d, want 0", got, want, lag)
	}
	if dlq := bus.Records(topics.DLQ()); len(dlq) != 0 {
		t.Errorf("%d records in the DLQ, e.g. %s", len(dlq), dlq[0].Header(stream.HeaderError))
	}
}

// refusingProxy stands in front of Prometheus' remote write endpoint:
// requests with marker in them get a 400, the others are passed on.
func refusingProxy(t *testing.T, writeURL, marker string) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(writeURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	var refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		raw, err := s2.Decode(nil, body)
		if err != nil {
			http.Error(w, "bad snappy: "+err.Error(), 400)
			return
		}
		if bytes.Contains(raw, []byte(marker)) {
			refused.Add(1)
			http.Error(w, "label value "+marker+" is not allowed here", http.StatusBadRequest)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + u.Path, &refused
}

// A backend that answers 400 to some requests: the records in them go to
// the DLQ with the answer in sluice-error, the others are in Prometheus.
func TestPrometheusBehindRefusingProxy(t *testing.T) {
	be := backendtest.Prometheus(t)
	proxy, refused := refusingProxy(t, be.WriteURL, "poison-pill")
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	const records, perRecord = 40, 5
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var poisoned []int
	for k := range records {
		var extra []*commonpb.KeyValue
		if k%8 == 3 {
			extra = append(extra, str("marker", "poison-pill"))
			poisoned = append(poisoned, k)
		}
		rec := seriesRecord(t, "fault_refused", k*perRecord, perRecord, ts, extra...)
		rec.Topic, rec.Partition = topics.Processed(otlpwire.Metrics), -1
		rec.Headers = append(rec.Headers, stream.Header{Key: "k", Value: fmt.Append(nil, k)})
		if err := bus.Produce(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// One sample per request: a refused request holds one record's point.
	sinkRunner(t, bus, topics, Config{Config: httpSinkConfig(proxy), MaxSamplesPerRequest: 1})

	deadline := time.Now().Add(30 * time.Second)
	for groupLag(t, bus, topics) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lag %d after 30s", groupLag(t, bus, topics))
		}
		time.Sleep(50 * time.Millisecond)
	}
	dlq := bus.Records(topics.DLQ())
	if len(dlq) != len(poisoned) {
		t.Errorf("%d records in the DLQ, want %d", len(dlq), len(poisoned))
	}
	for i, r := range dlq {
		if i < len(poisoned) && string(r.Header("k")) != fmt.Sprint(poisoned[i]) {
			t.Errorf("DLQ record %d is record %s, want %d", i, r.Header("k"), poisoned[i])
		}
		e := string(r.Header(stream.HeaderError))
		if !strings.Contains(e, "400") || !strings.Contains(e, "label value poison-pill is not allowed here") {
			t.Errorf("DLQ record %d: %s = %q, want the 400 and the answer", i, stream.HeaderError, e)
		}
		if s := string(r.Header(sinks.HeaderSink)); s != "prom" {
			t.Errorf("DLQ record %d: %s = %q", i, sinks.HeaderSink, s)
		}
		if o := string(r.Header(stream.HeaderOrigin)); !strings.HasPrefix(o, topics.Processed(otlpwire.Metrics)+"/") {
			t.Errorf("DLQ record %d: %s = %q", i, stream.HeaderOrigin, o)
		}
	}
	good := int64((records - len(poisoned)) * perRecord)
	if got := samples(t, be.URL, "fault_refused"); got != good {
		t.Errorf("Prometheus has %d samples, want %d", got, good)
	}
	if got := samples(t, be.URL, `fault_refused{marker="poison-pill"}`); got != 0 {
		t.Errorf("Prometheus has %d refused samples", got)
	}
	if n := refused.Load(); n != int64(len(poisoned)*perRecord) {
		t.Errorf("the proxy refused %d requests, want %d", n, len(poisoned)*perRecord)
	}
	t.Logf("%d records: %d dead-lettered with %q, %d samples delivered", records, len(dlq), dlq[0].Header(stream.HeaderError), good)
}
