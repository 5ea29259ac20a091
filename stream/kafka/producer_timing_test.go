package kafka

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/sluice-dev/sluice/stream"
)

// BenchmarkProduce produces batches of 100 records of 4 KiB (somewhat
// compressible, like OTLP protobuf) to a topic of 4 partitions on the
// shared broker, one Produce at a time and from 4 goroutines.
func BenchmarkProduce(b *testing.B) {
	const batch, size = 100, 4 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, batch*size)
	for i := range payload {
		payload[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
	}
	for _, compression := range []string{"zstd", "lz4", "none"} {
		bus := newBus(b, Config{Compression: compression})
		name := topic(b, bus, 4)
		recs := func() []*stream.Record {
			recs := make([]*stream.Record, batch)
			for i := range recs {
				recs[i] = &stream.Record{
					Topic: name, Partition: -1, Value: payload[i*size : (i+1)*size],
					Headers: []stream.Header{{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)}},
				}
			}
			return recs
		}
		b.Run(compression+"/serial", func(b *testing.B) {
			recs := recs()
			b.SetBytes(batch * size)
			b.ReportAllocs()
			for b.Loop() {
				if err := bus.Produce(context.Background(), recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run(compression+"/parallel4", func(b *testing.B) {
			b.SetBytes(batch * size)
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				recs := recs()
				for pb.Next() {
					if err := bus.Produce(context.Background(), recs...); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
