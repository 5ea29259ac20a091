package sinks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/memory"
)

// tenantBackend counts the items it accepts by X-Scope-OrgID ("-" for a
// request without one).
type tenantBackend struct {
	count func(*http.Request, []byte) (int, error)
	mu    sync.Mutex
	items map[string]int
}

func (b *tenantBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	n, err := b.count(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tenant := "-"
	if v := r.Header.Values("X-Scope-OrgID"); len(v) > 0 {
		tenant = strings.Join(v, ",")
	}
	b.mu.Lock()
	b.items[tenant] += n
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (b *tenantBackend) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, v := range b.items {
		n += v
	}
	return n
}

// Records whose sluice-tenant header is not a valid tenant name, put on the
// processed topic by another client of the bus, reach no backend tenant:
// every HTTP sink dead-letters them with an error naming the header and
// the record, and delivers the valid records beside them (and those
// without a tenant, without X-Scope-OrgID) to their own tenants.
func TestHTTPSinksRefuseInvalidTenants(t *testing.T) {
	for _, c := range httpSinkCases {
		t.Run(c.name, func(t *testing.T) {
			backend := &tenantBackend{count: c.count, items: map[string]int{}}
			srv := httptest.NewServer(backend)
			defer srv.Close()
			bus := memory.New()
			topics := stream.Topics{Prefix: "t"}
			ctx := context.Background()
			want := map[string]int{}
			wantTotal, bad := 0, 0
			for i, tenant := range []string{"team-a", "../../x", "team-b", "victim|other", "", "team-a"} {
				shape := otlptest.Shape{Resources: 2, Items: 3, Points: 2, Seed: i}
				hdrs := []stream.Header{{Key: stream.HeaderSignal, Value: []byte(c.sig.String())},
					{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)}}
				if tenant != "" {
					hdrs = append(hdrs, stream.Header{Key: stream.HeaderTenant, Value: []byte(tenant)})
				}
				if err := bus.Produce(ctx, &stream.Record{Topic: topics.Processed(c.sig), Partition: 0, Value: otlptest.Request(c.sig, shape), Headers: hdrs}); err != nil {
					t.Fatal(err)
				}
				switch tenant {
				case "../../x", "victim|other":
					bad++
				case "":
					want["-"] += shape.ItemCount(c.sig)
					wantTotal += shape.ItemCount(c.sig)
				default:
					want[tenant] += shape.ItemCount(c.sig)
					wantTotal += shape.ItemCount(c.sig)
				}
			}
			reg := prometheus.NewRegistry()
			sink := c.build(t, srv.URL, 0, reg)
			entry := &config.Sink{Name: "s", Type: c.name, Signals: []string{c.sig.String()}}
			r, err := sinks.NewRunner(bus, entry, sink, sinks.RunnerConfig{Topics: topics, MaxBackoff: 200 * time.Millisecond, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			lag := func() int64 {
				c, _ := bus.Consume(stream.ConsumerConfig{Group: "sluice-sink-s", Topics: []string{topics.Processed(c.sig)}})
				defer c.Close()
				n, _ := c.Lag(ctx)
				return n
			}
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if backend.total() >= wantTotal && len(bus.Records(topics.DLQ())) >= bad && lag() == 0 {
					break
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner: %v", err)
			}
			backend.mu.Lock()
			for tenant, n := range backend.items {
				if n != want[tenant] {
					t.Errorf("backend tenant %q got %d items, want %d", tenant, n, want[tenant])
				}
			}
			if len(backend.items) != len(want) {
				t.Errorf("backend items by tenant %v, want %v", backend.items, want)
			}
			backend.mu.Unlock()
			dlq := bus.Records(topics.DLQ())
			if len(dlq) != bad {
				t.Fatalf("%d dead letters, want %d", len(dlq), bad)
			}
			// One reason goes with all the records a Write refused
			// (sinks.RejectedError): it names one of them.
			for _, d := range dlq {
				if tenant := string(d.Header(stream.HeaderTenant)); tenant != "../../x" && tenant != "victim|other" {
					t.Errorf("dead letter of tenant %q", tenant)
				}
				if msg := string(d.Header(stream.HeaderError)); !strings.Contains(msg, "header sluice-tenant: invalid tenant") ||
					!strings.Contains(msg, "record "+topics.Processed(c.sig)+"/0@") {
					t.Errorf("dead letter error %q", msg)
				}
			}
			if got := testutil.ToFloat64(sinkmetrics.New(reg).DeadLetters.WithLabelValues("s")); got != float64(bad) {
				t.Errorf("sluice_sink_dead_letters_total = %v, want %d", got, bad)
			}
			if l := lag(); l != 0 {
				t.Errorf("lag %d after the run", l)
			}
		})
	}
}
