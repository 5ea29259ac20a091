package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	smemory "github.com/sluice-dev/sluice/stream/memory"
	"github.com/sluice-dev/sluice/stream/stage"
)

func hdrs(kv ...string) []stream.Header {
	var h []stream.Header
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, stream.Header{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return h
}

// The tenant of a raw record: sluice-tenant, else the configured header in
// any case, else the default; names that disagree, or are not tenant
// names, are errors naming the record and the header.
func TestRecordTenant(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []stream.Header
		header  string
		want    string
		err     string // part of the error; "" none
	}{
		{"ingester's header", hdrs("sluice-tenant", "team-a"), "X-Scope-OrgID", "team-a", ""},
		{"agent's header", hdrs("X-Scope-OrgID", "team-b"), "X-Scope-OrgID", "team-b", ""},
		{"agent's header, other case", hdrs("x-scope-orgid", "team-b"), "X-Scope-OrgID", "team-b", ""},
		{"no header: default", nil, "X-Scope-OrgID", "dflt", ""},
		{"empty header: default", hdrs("X-Scope-OrgID", ""), "X-Scope-OrgID", "dflt", ""},
		{"header not configured", hdrs("X-Scope-OrgID", "team-b"), "", "dflt", ""},
		{"both agree", hdrs("sluice-tenant", "team-a", "X-Scope-OrgID", "team-a"), "X-Scope-OrgID", "team-a", ""},
		{"repeated, agreeing", hdrs("X-Scope-OrgID", "team-a", "x-scope-orgid", "team-a"), "X-Scope-OrgID", "team-a", ""},
		{"both differ", hdrs("sluice-tenant", "team-a", "X-Scope-OrgID", "team-b"), "X-Scope-OrgID", "", `headers sluice-tenant ("team-a") and X-Scope-OrgID ("team-b") name different tenants`},
		{"repeated, differing", hdrs("X-Scope-OrgID", "team-a", "X-Scope-OrgID", "team-b"), "X-Scope-OrgID", "", `names two tenants, "team-a" and "team-b"`},
		{"invalid agent tenant", hdrs("X-Scope-OrgID", "../x"), "X-Scope-OrgID", "", "header X-Scope-OrgID: invalid tenant"},
		{"invalid own tenant", hdrs("sluice-tenant", "a|b"), "X-Scope-OrgID", "", "header sluice-tenant: invalid tenant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &stream.Record{Topic: "otlp_logs", Partition: 2, Offset: 7, Headers: tc.headers}
			got, err := recordTenant(r, tc.header, "dflt")
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("tenant %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "record otlp_logs/2@7") {
				t.Fatalf("tenant %q, error %v; want one naming the record and %q", got, err, tc.err)
			}
		})
	}
}

func TestRecordJSON(t *testing.T) {
	for _, tc := range []struct {
		ct       string
		def      bool
		json     bool
		hasError bool
	}{
		{"", false, false, false},
		{"", true, true, false},
		{"application/x-protobuf", true, false, false},
		{"application/protobuf", true, false, false},
		{"Application/JSON; charset=utf-8", false, true, false},
		{"text/plain", false, false, true},
	} {
		r := &stream.Record{Topic: "otlp_spans"}
		if tc.ct != "" {
			r.Headers = hdrs("content-type", tc.ct)
		}
		json, err := recordJSON(r, tc.def)
		if json != tc.json || (err != nil) != tc.hasError {
			t.Errorf("content-type %q, default json %v: json %v, err %v", tc.ct, tc.def, json, err)
		}
	}
}

// FuzzRawHeaders: whatever headers a producer writes, the tenant is
// valid or none, and it is named by one of the headers or is the default.
func FuzzRawHeaders(f *testing.F) {
	f.Add("sluice-tenant", "team-a", "X-Scope-OrgID", "team-a", "content-type", "application/json")
	f.Add("x-scope-orgid", "../x", "X-SCOPE-ORGID", "b", "content-type", "application/x-protobuf; q=1")
	f.Add("", "", "sluice-tenant", "", "content-type", "\xff")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		r := &stream.Record{Topic: "otlp_metrics", Headers: hdrs(k1, v1, k2, v2, k3, v3)}
		got, err := recordTenant(r, "X-Scope-OrgID", "dflt")
		if err != nil {
			if got != "" {
				t.Fatalf("tenant %q with error %v", got, err)
			}
		} else if got != "dflt" {
			if tenant.Validate(got) != nil {
				t.Fatalf("invalid tenant %q accepted", got)
			}
			named := false
			for _, h := range r.Headers {
				named = named || string(h.Value) == got && (h.Key == stream.HeaderTenant || strings.EqualFold(h.Key, "X-Scope-OrgID"))
			}
			if !named {
				t.Fatalf("tenant %q named by no header of %v", got, r.Headers)
			}
		}
		if _, err := recordJSON(r, false); err != nil && !strings.Contains(err.Error(), "record otlp_metrics") {
			t.Fatalf("error %v does not name the record", err)
		}
	})
}

// agentTopics are raw topics as agents' Kafka exporters name them.
var agentTopics = stream.Topics{Prefix: "t", RawNames: [3]string{"otlp_metrics", "otlp_logs", "otlp_spans"}}

// Records as the Collector's Kafka exporter writes them (no sluice
// headers; X-Scope-OrgID on some, from include_metadata_keys; OTLP/JSON
// with encoding otlp_json) are processed under the right tenant, counted
// by the stage, and bad ones dead-lettered with an error naming them.
func TestAgentRecords(t *testing.T) {
	for _, enc := range []string{EncodingOTLPProto, EncodingOTLPJSON} {
		t.Run(enc, func(t *testing.T) {
			bus := smemory.New()
			ctx := context.Background()
			var specs []stream.TopicSpec
			for _, s := range otlpwire.Signals {
				specs = append(specs, stream.TopicSpec{Name: agentTopics.Raw(s), Partitions: 2}, stream.TopicSpec{Name: agentTopics.Processed(s), Partitions: 2})
			}
			if err := bus.EnsureTopics(ctx, append(specs, stream.TopicSpec{Name: agentTopics.DLQ(), Partitions: 1})...); err != nil {
				t.Fatal(err)
			}
			want := map[otlpwire.Signal]map[string]int{}
			total := 0
			shape := otlptest.Shape{Resources: 2, Items: 3, Points: 2}
			for _, sig := range otlpwire.Signals {
				want[sig] = map[string]int{}
				for i := range 6 {
					shape.Seed = i
					value := otlptest.Request(sig, shape)
					if enc == EncodingOTLPJSON {
						var err error
						if value, err = otlpjson.MarshalRequest(sig, value, nil); err != nil {
							t.Fatal(err)
						}
					}
					r := &stream.Record{Topic: agentTopics.Raw(sig), Partition: int32(i % 2), Value: value}
					tenant := "agents"
					switch i % 3 {
					case 1:
						r.Headers, tenant = hdrs("X-Scope-OrgID", "team-a"), "team-a"
					case 2:
						r.Headers, tenant = hdrs("x-scope-orgid", "team-b"), "team-b"
					}
					if err := bus.Produce(ctx, r); err != nil {
						t.Fatal(err)
					}
					want[sig][tenant] += shape.ItemCount(sig)
					total += shape.ItemCount(sig)
				}
			}
			bad := []*stream.Record{
				{Topic: "otlp_logs", Partition: 0, Value: []byte{0x0a, 0xff, 0xff}},                                                            // not OTLP in either encoding
				{Topic: "otlp_metrics", Partition: 1, Value: otlptest.Request(otlpwire.Metrics, shape), Headers: hdrs("X-Scope-OrgID", "a/b")}, // not a tenant
				{Topic: "otlp_spans", Partition: 0, Value: []byte("x"), Headers: hdrs("content-type", "text/plain")},
			}
			for _, r := range bad {
				if err := bus.Produce(ctx, r); err != nil {
					t.Fatal(err)
				}
			}

			reg := prometheus.NewRegistry()
			w, err := New(bus, Config{Topics: agentTopics, TenantHeader: "X-Scope-OrgID", DefaultTenant: "agents", RawEncoding: enc,
				Allocator: arrowpool.NewPoisoned(), Metrics: stage.NewMetrics(reg)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			errc := make(chan error)
			go func() { errc <- w.Run(runCtx) }()
			got := map[otlpwire.Signal]map[string]int{}
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				got, _ = processedByTenant(t, bus)
				if len(bus.Records(agentTopics.DLQ())) == len(bad) && sum(got) == total {
					break
				}
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			for _, sig := range otlpwire.Signals {
				for tn, n := range want[sig] {
					if got[sig][tn] != n {
						t.Errorf("%s, tenant %s: %d items processed, want %d", sig, tn, got[sig][tn], n)
					}
				}
				if len(got[sig]) != len(want[sig]) {
					t.Errorf("%s: tenants %v, want %v", sig, got[sig], want[sig])
				}
			}
			dlq := bus.Records(agentTopics.DLQ())
			if len(dlq) != len(bad) {
				t.Fatalf("%d dead letters, want %d", len(dlq), len(bad))
			}
			for _, d := range dlq {
				origin, why := string(d.Header(stream.HeaderOrigin)), string(d.Header(stream.HeaderError))
				if !strings.HasPrefix(origin, "otlp_") || why == "" {
					t.Errorf("dead letter: origin %q, error %q", origin, why)
				}
				t.Logf("dead letter from %s: %s", origin, why)
			}
			// The stage counted every item it committed, though no record
			// had a sluice-items header.
			if n := gathered(t, reg, "sluice_stage_items_total"); int(n) != total {
				t.Errorf("sluice_stage_items_total %v, want %d", n, total)
			}
		})
	}
}

func sum(m map[otlpwire.Signal]map[string]int) int {
	n := 0
	for _, byTenant := range m {
		for _, k := range byTenant {
			n += k
		}
	}
	return n
}

// processedByTenant counts the items of every processed record by signal
// and tenant.
func processedByTenant(t *testing.T, bus *smemory.Bus) (map[otlpwire.Signal]map[string]int, int) {
	t.Helper()
	out := map[otlpwire.Signal]map[string]int{}
	recs := 0
	for _, sig := range otlpwire.Signals {
		out[sig] = map[string]int{}
		for _, r := range bus.Records(agentTopics.Processed(sig)) {
			pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			n, err := otlpwire.Count(sig, pb)
			if err != nil {
				t.Fatal(err)
			}
			out[sig][string(r.Header(stream.HeaderTenant))] += n
			recs++
		}
	}
	return out, recs
}

// gathered is the sum of the samples of the counter name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// The aggregator's watermark waits for every partition of the raw metrics
// topic: with an agents' topic, its partitions (5 here), not those of
// <prefix>.raw.metrics (3 here).
func TestAggregatorSourcesFollowAgentTopic(t *testing.T) {
	bus := newBus(t) // t.raw.* with 3 partitions
	ctx := context.Background()
	if err := bus.EnsureTopics(ctx, stream.TopicSpec{Name: agentTopics.Raw(otlpwire.Metrics), Partitions: 5},
		stream.TopicSpec{Name: agentTopics.Aggregate(), Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		topics stream.Topics
		want   int
	}{{topics, 3}, {agentTopics, 5}} {
		a, err := NewAggregator(ctx, bus, AggregatorConfig{Topics: tc.topics})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.sources(); got != tc.want {
			t.Errorf("raw topic %s: %d sources, want %d", tc.topics.Raw(otlpwire.Metrics), got, tc.want)
		}
	}
}

// BenchmarkRawHeaders is what the worker does per raw record to find its
// tenant and encoding: an ingester's record (five headers, no tenant
// header configured) and an agent's (X-Scope-OrgID only, configured).
func BenchmarkRawHeaders(b *testing.B) {
	for _, tc := range []struct {
		name, header string
		headers      []stream.Header
	}{
		{"ingester", "", hdrs("content-type", stream.ContentTypeOTLPProto, "sluice-signal", "metrics", "sluice-tenant", "team-a",
			"sluice-items", "1000", "sluice-received-at", "2026-12-06T03:00:00.123456789Z")},
		{"agent", "X-Scope-OrgID", hdrs("X-Scope-OrgID", "team-a")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := &stream.Record{Topic: "otlp_metrics", Headers: tc.headers}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := recordTenant(r, tc.header, "agents"); err != nil {
					b.Fatal(err)
				}
				if _, err := recordJSON(r, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
