package promrw

import (
	"cmp"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
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
// histograms, with protocol v1 and with v2; every request the backend gets
// decodes, every series in it has a __name__ and strictly sorted label
// names (what Prometheus demands), and the 2.0 requests hold the samples
// of the 1.0 ones. A request the Arrow builder refuses is skipped.
func FuzzArrowTranslation(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, uint8(seed))
	}
	var reqs [][]byte
	var mu sync.Mutex // the shards post at once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, body)
		mu.Unlock()
		if r.Header.Get("Content-Type") == contentTypeV2 {
			w.Header().Set(headerSamplesWritten, "1000000000")
			w.Header().Set(headerHistogramsWritten, "1000000000")
		}
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
		var got [2][]rwSample
		for i, proto := range []string{protoV1, protoV2} {
			cfg.Protocol = proto
			got[i] = fuzzWrite(t, cfg, pb, &reqs, proto == protoV2)
		}
		if len(got[0]) != len(got[1]) {
			t.Fatalf("%d samples in 1.0, %d in 2.0", len(got[0]), len(got[1]))
		}
		for i := range got[0] {
			if a, b := got[0][i], got[1][i]; a.series != b.series || a.ts != b.ts || math.Float64bits(a.value) != math.Float64bits(b.value) || a.hist != b.hist {
				t.Fatalf("sample %d: 1.0 %+v, 2.0 %+v", i, a, b)
			}
		}
	})
}

// fuzzWrite writes metrics request pb through a sink of cfg and checks the
// requests the backend got (in *reqs); it returns their samples, sorted.
func fuzzWrite(t *testing.T, cfg Config, pb []byte, reqs *[][]byte, v2 bool) []rwSample {
	s, err := New("prom", cfg, sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	*reqs = (*reqs)[:0]
	rec := metricsRecord(t, pb)
	err = s.Write(context.Background(), []*stream.Record{rec})
	var rej *sinks.RejectedError
	if err != nil && !errors.As(err, &rej) {
		t.Fatalf("Write: %v", err)
	}
	var all []rwSample
	for _, body := range *reqs {
		raw, err := s2.Decode(nil, body)
		if err != nil {
			t.Fatalf("request not snappy: %v", err)
		}
		if v2 {
			raw, _ = v2ToV1(t, raw)
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
		all = append(all, samples...)
	}
	slices.SortStableFunc(all, func(a, b rwSample) int {
		return cmp.Or(strings.Compare(a.series, b.series), cmp.Compare(a.ts, b.ts))
	})
	// A sample twice (same series, time and value) is one: two requests
	// with the same body in a Write go once (Sink.accepted), and a 1.0
	// request of such a sample is the same where its 2.0 one is not (the
	// start times or metadata of its points differ).
	return slices.CompactFunc(all, func(a, b rwSample) bool {
		return a.series == b.series && a.ts == b.ts && math.Float64bits(a.value) == math.Float64bits(b.value) && a.hist == b.hist
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
