package sinks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/loki"
	"github.com/sluice-dev/sluice/sinks/otlp"
	"github.com/sluice-dev/sluice/sinks/promrw"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// httpSinkCase is one HTTP sink type: how to build it against a URL, the
// signal it takes, and how a backend counts the items of one request.
type httpSinkCase struct {
	name  string
	sig   otlpwire.Signal
	build func(t *testing.T, url string, retryAfterMax time.Duration, reg prometheus.Registerer) sinks.Sink
	count func(r *http.Request, body []byte) (int, error)
}

var httpSinkCases = []httpSinkCase{
	{
		name: "prometheus_remote_write", sig: otlpwire.Metrics,
		build: func(t *testing.T, url string, ram time.Duration, reg prometheus.Registerer) sinks.Sink {
			no := false
			s, err := promrw.New("s", promrw.Config{Config: httpsink.Config{URL: url, RetryAfterMax: ram}, AddTargetInfo: &no}, sinks.Env{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		count: func(_ *http.Request, body []byte) (int, error) {
			raw, err := s2.Decode(nil, body)
			if err != nil {
				return 0, err
			}
			return remoteWriteSamples(raw), nil
		},
	},
	{
		name: "loki", sig: otlpwire.Logs,
		build: func(t *testing.T, url string, ram time.Duration, reg prometheus.Registerer) sinks.Sink {
			s, err := loki.New(loki.Config{Config: httpsink.Config{URL: url, RetryAfterMax: ram}, Format: "json"}, "s", sinks.Env{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		count: func(_ *http.Request, body []byte) (int, error) {
			var push struct {
				Streams []struct {
					Values []json.RawMessage `json:"values"`
				} `json:"streams"`
			}
			if err := json.Unmarshal(body, &push); err != nil {
				return 0, err
			}
			n := 0
			for _, s := range push.Streams {
				n += len(s.Values)
			}
			return n, nil
		},
	},
	{
		name: "otlp_http", sig: otlpwire.Traces,
		build: func(t *testing.T, url string, ram time.Duration, reg prometheus.Registerer) sinks.Sink {
			s, err := otlp.New(otlp.Config{Protocol: "http", Config: httpsink.Config{URL: url, RetryAfterMax: ram}}, "s", sinks.Env{Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		count: func(r *http.Request, body []byte) (int, error) {
			if r.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					return 0, err
				}
				if body, err = io.ReadAll(zr); err != nil {
					return 0, err
				}
			}
			return otlpwire.Count(otlpwire.Traces, body)
		},
	},
}

// remoteWriteSamples counts the samples of a WriteRequest.
func remoteWriteSamples(p []byte) int {
	n := 0
	for len(p) > 0 {
		num, typ, k := protowire.ConsumeTag(p)
		if k < 0 {
			return -1
		}
		p = p[k:]
		m := protowire.ConsumeFieldValue(num, typ, p)
		if num == 1 { // timeseries
			ts, _ := protowire.ConsumeBytes(p)
			for len(ts) > 0 {
				f, ft, j := protowire.ConsumeTag(ts)
				ts = ts[j:]
				l := protowire.ConsumeFieldValue(f, ft, ts)
				if f == 2 { // samples
					n++
				}
				ts = ts[l:]
			}
		}
		p = p[m:]
	}
	return n
}

// scriptedBackend answers the first requests with the statuses of script
// (and their Retry-After), then 200, counting the items of accepted
// requests and the refused requests.
type scriptedBackend struct {
	t      *testing.T
	count  func(*http.Request, []byte) (int, error)
	mu     sync.Mutex
	script []scripted
	items  int
	bad    int // requests the backend could not read
}

type scripted struct {
	status     int
	retryAfter string
}

func (b *scriptedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.script) > 0 {
		s := b.script[0]
		b.script = b.script[1:]
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		http.Error(w, http.StatusText(s.status), s.status)
		return
	}
	n, err := b.count(r, body)
	if err != nil {
		b.bad++
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.items += n
	w.WriteHeader(http.StatusOK)
}

func (b *scriptedBackend) state() (items, left, bad int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.items, len(b.script), b.bad
}

// runAgainst puts records of c's signal on a bus, runs the sink of c
// against a backend answering script first, and waits (at most a minute)
// until the backend holds every item. It returns the bus, the topics and
// the number of items put on the bus.
func runAgainst(t *testing.T, c httpSinkCase, script []scripted, retryAfterMax time.Duration, reg *prometheus.Registry) (*memory.Bus, stream.Topics, int, *scriptedBackend) {
	t.Helper()
	backend := &scriptedBackend{t: t, count: c.count, script: script}
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)
	bus := memory.New()
	topics := stream.Topics{Prefix: "t"}
	ctx := context.Background()
	in := 0
	for i := range 5 {
		shape := otlptest.Shape{Resources: 2, Items: 3, Points: 2, Seed: i}
		in += shape.ItemCount(c.sig)
		if err := bus.Produce(ctx, &stream.Record{Topic: topics.Processed(c.sig), Partition: -1, Value: otlptest.Request(c.sig, shape),
			Headers: []stream.Header{{Key: stream.HeaderSignal, Value: []byte(c.sig.String())},
				{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)},
				{Key: stream.HeaderTenant, Value: []byte("team-a")}}}); err != nil {
			t.Fatal(err)
		}
	}
	sink := c.build(t, srv.URL, retryAfterMax, reg)
	entry := &config.Sink{Name: "s", Type: c.name, Signals: []string{c.sig.String()}}
	r, err := sinks.NewRunner(bus, entry, sink, sinks.RunnerConfig{Topics: topics, MaxBackoff: 200 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if items, left, _ := backend.state(); items >= in && left == 0 || len(bus.Records(topics.DLQ())) > 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runner: %v", err)
	}
	return bus, topics, in, backend
}

// A backend answering 401, 403 and 404 (an expired token, a wrong URL)
// refuses the sink's configuration, not the data: every HTTP sink retries
// with backoff, dead-letters nothing, counts the answers in
// sluice_sink_config_refusals_total, and delivers every item once the
// backend answers 200 again.
func TestHTTPSinksRetryAuthAndNotFound(t *testing.T) {
	for _, c := range httpSinkCases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			script := []scripted{{status: 401}, {status: 403}, {status: 404}, {status: 401}}
			bus, topics, in, backend := runAgainst(t, c, script, 0, reg)
			items, left, bad := backend.state()
			if dlq := bus.Records(topics.DLQ()); len(dlq) != 0 {
				t.Errorf("%d records dead-lettered (%s), want none", len(dlq), dlq[0].Header(stream.HeaderError))
			}
			if left != 0 || items != in || bad != 0 {
				t.Errorf("items in %d, delivered %d (refusals not yet answered %d, unreadable requests %d)", in, items, left, bad)
			}
			m := sinkmetrics.New(reg)
			for code, want := range map[string]float64{"401": 2, "403": 1, "404": 1} {
				if got := testutil.ToFloat64(m.ConfigRefusals.WithLabelValues("s", code)); got != want {
					t.Errorf("sluice_sink_config_refusals_total{code=%q} = %v, want %v", code, got, want)
				}
			}
		})
	}
}

// A 400 is still the backend refusing the data: dead-lettered, not
// retried. (The otlp sink sends the records of a refused merged request one
// by one to find the refused ones: every request is refused here.)
func TestHTTPSinksDeadLetterBadRequest(t *testing.T) {
	for _, c := range httpSinkCases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			bus, topics, _, _ := runAgainst(t, c, slices.Repeat([]scripted{{status: 400}}, 6), 0, reg)
			if dlq := bus.Records(topics.DLQ()); len(dlq) == 0 {
				t.Error("nothing dead-lettered after a 400")
			}
		})
	}
}

// A Retry-After of a day is cut to retry_after_max: the sink delivers
// everything well within the test's bound, and counts the cut.
func TestHTTPSinksCapRetryAfter(t *testing.T) {
	for _, c := range httpSinkCases {
		t.Run(c.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			bus, topics, in, backend := runAgainst(t, c, []scripted{{status: 503, retryAfter: "86400"}}, 100*time.Millisecond, reg)
			items, left, _ := backend.state()
			if dlq := bus.Records(topics.DLQ()); len(dlq) != 0 {
				t.Errorf("%d records dead-lettered, want none", len(dlq))
			}
			if left != 0 || items != in {
				t.Errorf("items in %d, delivered %d: the sink waited out the Retry-After of a day", in, items)
			}
			if got := testutil.ToFloat64(sinkmetrics.New(reg).RetryAfterCapped.WithLabelValues("s")); got != 1 {
				t.Errorf("sluice_sink_retry_after_capped_total = %v, want 1", got)
			}
		})
	}
}
