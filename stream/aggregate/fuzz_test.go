package aggregate

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice/schemas"
)

// payload is the uncompressed content of a snapshot: an S2 block behind
// s2Frame, or a zstd frame (earlier versions).
func payload(b []byte) ([]byte, error) {
	if bytes.HasPrefix(b, []byte(s2Frame)) {
		return s2.Decode(nil, b[len(s2Frame):])
	}
	d, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(b, nil)
}

// zstdSnapshot compresses a snapshot's payload as earlier versions did.
func zstdSnapshot(t testing.TB, raw []byte) []byte {
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.EncodeAll(raw, nil)
}

func FuzzReadRecord(f *testing.F) {
	b, in, _ := batchOf(f, mCum, []P{{In: 1, Out: 7, T: 1, V: 2}, {In: 2, Out: 7, T: 2, V: 3, Int: true}})
	rec, err := AppendRecord(nil, b, in, spec10)
	b.Release()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec)
	f.Add(rec[:20])
	// and one whose points' attributes repeat, stored by set
	var pts []P
	for i := range 8 {
		pts = append(pts, P{In: uint64(i%2 + 1), Out: 7, T: float64(1 + i/2), V: float64(i), Attrs: []string{"pod", fmt.Sprint(i % 2)}})
	}
	b, in, _ = batchOf(f, mGauge, pts)
	rec, err = AppendRecord(nil, b, in, spec10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rec)
	// Version 2 has its hashes and spec outside the zstd frame, where
	// mutations reach the parser.
	f.Add(oldRecord(f, 2, b, in, spec10))
	f.Add(oldRecord(f, 3, b, in, spec10))
	b.Release()
	f.Fuzz(func(t *testing.T, data []byte) {
		// as the aggregator reads them (by set), and whole
		for _, read := range []func([]byte, memory.Allocator) (*schemas.Batch, []uint64, Spec, error){ReadRecordSets, ReadRecord} {
			b, in, spec, err := read(data, memory.DefaultAllocator)
			if err != nil {
				return
			}
			var h Hasher
			out, err := h.OutputHashes(nil, "t", b)
			if err != nil {
				b.Release()
				return
			}
			// a record that reads must be usable
			a := New(Config{})
			if err := a.Add("t", b, in, out, spec, time.Unix(1, 0)); err == nil {
				outs, _ := a.Flush(time.Unix(1, 0), true)
				for _, o := range outs {
					o.Batch.Release()
				}
			}
			b.Release()
		}
	})
}

func FuzzRestore(f *testing.F) {
	a := New(Config{})
	add(f, a, spec10, mGauge, P{In: 1, T: 1, V: 1}, P{In: 2, T: 2, V: 2})
	add(f, a, spec10, mCum, P{In: 1, T: 1, V: 1}, P{In: 2, T: 12, V: 2})
	add(f, a, spec10, mExp, P{In: 1, T: 1, Exp: expPoint([]float64{1, 2, -3}, 2)})
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		f.Fatal(err)
	}
	raw, err := payload(buf.Bytes())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		// the payload is fuzzed uncompressed (zstd's own checks would hide
		// most mutations); flushed as the worker does too, by set (a
		// series' attributes made into a table)
		for _, cfg := range []Config{{}, {BySet: true}} {
			r, err := decodeSnapshot(data, cfg)
			if err != nil {
				return
			}
			exercise(t, r)
		}
	})
}
