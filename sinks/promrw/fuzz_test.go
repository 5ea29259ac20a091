package promrw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
)

// FuzzArrowTranslation: a random metrics request (otlptest.Gen, from the
// fuzzed seed and options), as a processed Arrow record, is translated and
// sent without panic under every setting of delta and exponential
// histograms; every request the backend gets decodes, and every series in
// it has a __name__ and strictly sorted label names (what Prometheus
// demands). A request the Arrow builder refuses is skipped.
func FuzzArrowTranslation(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, uint8(seed))
	}
	var reqs [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		reqs = append(reqs, body)
	}))
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, seed uint64, opts uint8) {
		g := otlptest.NewGen(seed, otlptest.GenOptions{Unknown: opts&1 != 0})
		pb := g.Request(otlpwire.Metrics)
		b := schemas.NewBuilder(otlpwire.Metrics, nil)
		if _, err := b.Append(pb); err != nil {
			b.Release()
			if errors.Is(err, schemas.ErrMalformed) || errors.Is(err, schemas.ErrUnsupported) {
				return
			}
			t.Fatal(err)
		}
		b.Build().Release()
		b.Release()
		cfg := Config{Config: httpSinkConfig(srv.URL), Concurrency: 1 + int(opts>>3)%3, MaxSamplesPerRequest: 1 + int(opts>>5)*50}
		if opts&2 != 0 {
			cfg.Delta = deltaConvert
		}
		if opts&4 != 0 {
			cfg.ExponentialHistograms = expBuckets
		}
		s, err := New("prom", cfg, sinks.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		reqs = reqs[:0]
		rec := metricsRecord(t, pb)
		err = s.Write(context.Background(), []*stream.Record{rec})
		var rej *sinks.RejectedError
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("Write: %v", err)
		}
		for _, body := range reqs {
			raw, err := s2.Decode(nil, body)
			if err != nil {
				t.Fatalf("request not snappy: %v", err)
			}
			samples, _ := decodeWrite(t, raw)
			for _, smp := range samples {
				names := smp.names
				if !slices.Contains(names, "__name__") {
					t.Fatalf("series without __name__: %s", smp.series)
				}
				if !sort.StringsAreSorted(names) {
					t.Fatalf("labels not sorted: %s", smp.series)
				}
				for i := 1; i < len(names); i++ {
					if names[i] == names[i-1] {
						t.Fatalf("label %s twice: %s", names[i], smp.series)
					}
				}
			}
		}
	})
}

// metricsRecord is metrics request pb as a processed Arrow record.
func metricsRecord(t *testing.T, pb []byte) *stream.Record {
	t.Helper()
	b := schemas.NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	if _, err := b.Append(pb); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var buf strings.Builder
	if err := schemas.WriteBatch(&buf, batch); err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: "sluice.metrics.processed", Value: []byte(buf.String()), Headers: []stream.Header{
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
		{Key: stream.HeaderSignal, Value: []byte("metrics")},
		{Key: stream.HeaderTenant, Value: []byte("t")},
	}}
}
