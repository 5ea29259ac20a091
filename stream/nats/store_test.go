package nats

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluice-dev/sluice/stream"
)

// The store gauges of a real embedded server: the limit is max_store, and
// the bytes of the records written show in the stream's and the store's
// figures; consuming them frees nothing. Close unregisters the gauges.
func TestStoreGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	const maxStore = 64 << 20
	b, err := NewEmbedded(EmbeddedConfig{DataDir: t.TempDir(), MaxStore: maxStore, Registerer: reg}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const topic = "sluice.fill"
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	recs := values(topic, "r", 200)
	var written float64
	for _, r := range recs {
		r.Value = append(r.Value, bytes.Repeat([]byte("x"), 4000)...)
		written += float64(len(r.Value))
	}
	produce(t, b, recs...)

	gauge := func(name string, labels ...string) (float64, error) {
		mfs, err := reg.Gather()
		if err != nil {
			return 0, err
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if len(labels) == 0 || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == labels[0] {
					return m.GetGauge().GetValue(), nil
				}
			}
		}
		return 0, fmt.Errorf("no %s%v", name, labels)
	}
	check := func(when string) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			limit, err := gauge("sluice_bus_store_limit_bytes")
			if err != nil {
				return err
			}
			used, err := gauge("sluice_bus_store_used_bytes")
			if err != nil {
				return err
			}
			st, err := gauge("sluice_bus_stream_bytes", streamName(topic))
			if err != nil {
				return err
			}
			if limit != maxStore || st < written || used < st || used > 2*written {
				return fmt.Errorf("%s: limit %v (want %v), used %v, stream %v (want the %v bytes written, and used ≥ stream)", when, limit, float64(maxStore), used, st, written)
			}
			return nil
		})
	}
	check("written")

	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	commit(t, c, pollN(t, c, len(recs), 10*time.Second)...)
	check("consumed")

	b.Close()
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after Close: %d series (%v), want none", n, err)
	}
}
