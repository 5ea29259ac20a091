package otlpwire_test

import (
	"errors"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	. "github.com/sluice-dev/sluice/internal/otlpwire" // the tests are outside the package: see export_test.go
)

// fuzzSeeds are real marshalled requests of each signal, some with unknown
// fields at every level.
func fuzzSeeds(f *testing.F, add func(sig Signal, body []byte)) {
	for _, sig := range Signals {
		for seed := range 6 {
			g := otlptest.NewGen(uint64(1000+seed), otlptest.GenOptions{Unknown: seed%2 == 1})
			add(sig, g.Request(sig))
		}
	}
	add(Metrics, marshal(f, benchMetrics(2, 3, 2)))
	add(Logs, marshal(f, benchLogs(2, 3)))
	add(Traces, marshal(f, benchTraces(2, 3)))
	add(Logs, appendUnknown(fLen(1, fLen(2, fLen(2), fLen(2, fStr(9, "0123456789abcdef"))))))
}

// rawItems keys every item of body by its raw bytes and those of the headers
// around it, as the scanner sees them.
func rawItems(sig Signal, body []byte) (map[string]int, error) {
	items, err := RawItems(sig, body)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, parts := range items {
		out[key(parts...)]++
	}
	return out, nil
}

func FuzzSplit(f *testing.F) {
	fuzzSeeds(f, func(sig Signal, body []byte) {
		f.Add(uint8(sig), uint8(0), uint8(3), uint16(0), body)
		f.Add(uint8(sig), uint8(2), uint8(5), uint16(300), body)
		f.Add(uint8(sig), uint8(3), uint8(1), uint16(120), body)
	})
	f.Fuzz(func(t *testing.T, sigB, keyB, partsB uint8, maxBytes uint16, body []byte) {
		sig := Signal(sigB % 3)
		opt := Options{Partitions: int32(partsB%8) + 1, Key: KeyMode(keyB % 4), MaxRecordBytes: int(maxBytes)}
		if sig == Metrics && opt.Key == KeyTraceID {
			opt.Key = KeyResource
		}
		traceID := opt.Key == KeyTraceID || opt.Key == KeyDefault && sig == Traces
		var s Splitter
		res, err := s.Split(sig, body, opt)
		n, cerr := Count(sig, body)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Split: %v is not a *FormatError", err)
			}
			if cerr == nil && !traceID {
				t.Fatalf("Split fails (%v) where Count succeeds", err)
			}
			return
		}
		if cerr != nil {
			t.Fatalf("Split succeeds where Count fails: %v", cerr)
		}
		if res.Items+res.Rejected != n {
			t.Fatalf("%d items + %d rejected, Count says %d", res.Items, res.Rejected, n)
		}
		bodyDecodes := proto.Unmarshal(body, NewRequest(sig)) == nil
		want, err := rawItems(sig, body)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for i, c := range res.Chunks {
			if c.Items <= 0 || opt.MaxRecordBytes > 0 && len(c.Value) > opt.MaxRecordBytes {
				t.Fatalf("chunk %d: %d items, %d bytes", i, c.Items, len(c.Value))
			}
			if m, err := Count(sig, c.Value); err != nil || m != c.Items {
				t.Fatalf("chunk %d: Count = %d, %v; want %d", i, m, err, c.Items)
			}
			if bodyDecodes {
				if err := proto.Unmarshal(c.Value, NewRequest(sig)); err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
			}
			got, err := rawItems(sig, c.Value)
			if err != nil {
				t.Fatal(err)
			}
			for k, m := range got {
				if want[k] < m {
					t.Fatalf("chunk %d: item not in the body, or in two chunks: %q", i, k)
				}
				want[k] -= m
			}
			total += c.Items
		}
		if total != res.Items {
			t.Fatalf("chunks hold %d items, Result.Items = %d", total, res.Items)
		}
		left := 0
		for _, m := range want {
			left += m
		}
		if left != res.Rejected {
			t.Fatalf("%d items in no chunk, %d rejected", left, res.Rejected)
		}
	})
}

func FuzzCount(f *testing.F) {
	fuzzSeeds(f, func(sig Signal, body []byte) { f.Add(uint8(sig), body) })
	f.Fuzz(func(t *testing.T, sigB uint8, body []byte) {
		sig := Signal(sigB % 3)
		n, err := Count(sig, body)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FormatError", err)
			}
			return
		}
		m := NewRequest(sig)
		if proto.Unmarshal(body, m) != nil {
			return // malformed inside items, where Count does not look
		}
		if want := decodedItems(m); n != want {
			t.Fatalf("Count = %d, proto.Unmarshal finds %d items", n, want)
		}
	})
}

// decodedItems counts the items of a decoded request.
func decodedItems(m proto.Message) int {
	n := 0
	switch m := m.(type) {
	case *colmetricspb.ExportMetricsServiceRequest:
		for _, rm := range m.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					n += otlpwire.PointCount(mt)
				}
			}
		}
	case *collogspb.ExportLogsServiceRequest:
		for _, rl := range m.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				n += len(sl.LogRecords)
			}
		}
	case *coltracepb.ExportTraceServiceRequest:
		for _, rs := range m.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
	}
	return n
}
