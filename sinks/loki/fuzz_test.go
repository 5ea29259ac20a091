package loki

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
)

// FuzzArrowTranslation: a random logs request (otlptest.Gen, from the
// fuzzed seed and options), as a processed Arrow record, goes into a push
// read from the Arrow columns exactly as into one made from its OTLP
// form; both encodings of the push are made without panic. A request the
// Arrow builder refuses is skipped.
func FuzzArrowTranslation(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, uint8(seed))
	}
	f.Fuzz(func(t *testing.T, seed uint64, opts uint8) {
		g := otlptest.NewGen(seed, otlptest.GenOptions{Unknown: opts&1 != 0})
		pb := g.Request(otlpwire.Logs)
		b := schemas.NewBuilder(otlpwire.Logs, nil)
		defer b.Release()
		if _, err := b.Append(pb); err != nil {
			if errors.Is(err, schemas.ErrMalformed) || errors.Is(err, schemas.ErrUnsupported) {
				return
			}
			t.Fatal(err)
		}
		b.Build().Release()
		labels := equivalenceConfigs[int(opts>>1)%len(equivalenceConfigs)]
		s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}, Labels: labels}, "l", sinks.Env{})
		if err != nil {
			t.Fatal(err)
		}
		rec := arrowRecord(t, otlpwire.Logs, pb, "t")
		rec.Timestamp = time.Unix(0, base) // for log records without time
		want, got := newPush(), newPush()
		otlpPathAdd(t, s, want, rec)
		arrowPathAdd(t, s, got, rec)
		if err := samePush(want, got); err != nil {
			t.Fatal(err)
		}
		n, _ := otlpwire.Count(otlpwire.Logs, pb)
		if got.entries != n {
			t.Fatalf("%d entries of %d log records", got.entries, n)
		}
		got.json()
		got.protobuf(nil)
	})
}
