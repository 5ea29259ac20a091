package worker

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

type discard struct{}

func (discard) Produce(context.Context, ...*stream.Record) error { return nil }

// BenchmarkHandle is the worker's whole handling of a poll of 1,000 small
// raw records (a span each, as the Collector's Kafka exporter writes
// traces; 3 tenants over 3 partitions), no rules, produced nowhere: the
// per-record work around the decoder (tenant, content type, grouping,
// item count). "ingester": records with sluice's headers; "agent": with
// none but X-Scope-OrgID (worker.tenant_header) on two of three.
func BenchmarkHandle(b *testing.B) {
	shape := otlptest.Shape{Resources: 1, Items: 1}
	body := otlptest.Request(otlpwire.Traces, shape)
	for _, agent := range []bool{false, true} {
		name := "ingester"
		if agent {
			name = "agent"
		}
		b.Run(name, func(b *testing.B) {
			bus := newBus(b)
			cfg := Config{Topics: topics, Allocator: arrowpool.New()}
			if agent {
				cfg.TenantHeader, cfg.DefaultTenant = "X-Scope-OrgID", "agents"
			}
			w, err := New(bus, cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			w.out = discard{}
			recs := make([]*stream.Record, 1000)
			fresh := func() {
				for i := range recs {
					tenant := []string{"team-a", "team-b", "team-c"}[i%3]
					r := raw(otlpwire.Traces, int32(i%3), tenant, body)
					if agent {
						r.Headers = nil
						if i%3 != 0 {
							r.Headers = []stream.Header{{Key: "X-Scope-OrgID", Value: []byte(tenant)}}
						}
					} else {
						r.Headers = append(r.Headers, stream.Header{Key: stream.HeaderItems, Value: []byte("1")},
							stream.Header{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)})
					}
					recs[i] = r
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body) * len(recs)))
			for b.Loop() {
				b.StopTimer()
				fresh() // handle may add headers to the records
				b.StartTimer()
				if err := w.handle(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}
