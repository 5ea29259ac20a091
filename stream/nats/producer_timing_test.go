package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// BenchmarkProduce measures Produce against the embedded server (file
// storage, in-process connection): one op is one Produce call of batch
// records of 1 KiB with the headers an ingester sets.
func BenchmarkProduce(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			bus := newEmbedded(b, Config{Logger: discardLogger()})
			const topic = "bench.raw.metrics"
			ensure(b, bus, stream.TopicSpec{Name: topic, Partitions: 8})
			recs := make([]*stream.Record, batch)
			value := make([]byte, 1024)
			for i := range recs {
				recs[i] = &stream.Record{
					Topic: topic, Partition: -1, Key: []byte("tenant-1"), Value: value, Timestamp: time.Now(),
					Headers: []stream.Header{
						{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)},
						{Key: stream.HeaderTenant, Value: []byte("tenant-1")},
					},
				}
			}
			ctx := context.Background()
			b.SetBytes(int64(batch * len(value)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := bus.Produce(ctx, recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
		})
	}
	b.Run("parallel/batch=100", func(b *testing.B) {
		bus := newEmbedded(b, Config{Logger: discardLogger()})
		const topic = "bench.parallel"
		ensure(b, bus, stream.TopicSpec{Name: topic, Partitions: 8})
		value := make([]byte, 1024)
		b.SetBytes(int64(100 * len(value)))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			recs := values(topic, "", 100)
			for _, r := range recs {
				r.Value = value
			}
			for pb.Next() {
				if err := bus.Produce(context.Background(), recs...); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
	})
}

// BenchmarkPollCommit measures a member draining a backlog: one op is one
// record polled (in batches of 500) and committed.
func BenchmarkPollCommit(b *testing.B) {
	bus := newEmbedded(b, Config{Logger: discardLogger()})
	const topic = "bench.consume"
	ensure(b, bus, stream.TopicSpec{Name: topic, Partitions: 8})
	value := make([]byte, 1024)
	recs := values(topic, "", 1000)
	for _, r := range recs {
		r.Value = value
	}
	for produced := 0; produced < b.N; produced += len(recs) {
		if err := bus.Produce(context.Background(), recs...); err != nil {
			b.Fatal(err)
		}
	}
	c, err := bus.Consume(stream.ConsumerConfig{Group: "bench", Topics: []string{topic}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	for got := 0; got < b.N; {
		batch, err := c.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Commit(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		got += len(batch)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
