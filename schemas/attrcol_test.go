package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// TestBuilderReuse: one Builder through many Append/Build cycles (the
// attribute columns are collected in buffers handed to each batch, see
// batchbuf.go) gives the same batches as fresh builders, and earlier
// batches stay intact while later ones are built.
func TestBuilderReuse(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		t.Run(sig.String(), func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			g := otlptest.NewGen(200+uint64(sig), otlptest.GenOptions{})
			b := NewBuilder(sig, mem)
			defer b.Release()
			type kept struct {
				batch *Batch
				want  []byte
			}
			var keep []kept
			for i := range 30 {
				var bodies [][]byte
				for range 1 + i%3 {
					body, err := proto.Marshal(g.Message(sig))
					if err != nil {
						t.Fatal(err)
					}
					bodies = append(bodies, body)
				}
				if i%5 == 2 { // a failed request drops what came before it
					bad := append(append([]byte(nil), bodies[0]...), 0xff)
					if _, err := b.Append(bad); err == nil {
						t.Fatal("Append of a truncated request: no error")
					}
				}
				for _, body := range bodies {
					if _, err := b.Append(body); err != nil {
						t.Fatal(err)
					}
				}
				batch := b.Build()
				want := roundTrip(t, sig, mem, bodies, false)
				got, err := ToOTLP(batch, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("cycle %d: reused builder differs from a fresh one", i)
				}
				keep = append(keep, kept{batch, want})
			}
			for i, k := range keep {
				got, err := ToOTLP(k.batch, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, k.want) {
					t.Fatalf("batch %d changed after later builds", i)
				}
				k.batch.Release()
			}
		})
	}
}

// TestAttrInvalidUTF8: attribute strings are checked once per request; the
// error is still the one of the offending field, and the builder goes on.
func TestAttrInvalidUTF8(t *testing.T) {
	req := func(key, val string) []byte {
		var pts []*metrics.NumberDataPoint
		for i := range 3 {
			k, v := "ok", "fine ✓"
			if i == 1 {
				k, v = key, val
			}
			pts = append(pts, &metrics.NumberDataPoint{Attributes: kvs("a", "b", k, v), TimeUnixNano: 1})
		}
		body, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{
			ScopeMetrics: []*metrics.ScopeMetrics{{Metrics: []*metrics.Metric{{Name: "m",
				Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{DataPoints: pts}}}}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		// protobuf-go refuses to marshal invalid UTF-8: patch it in.
		return bytes.Replace(body, []byte("BAD!"), []byte("B\xffD!"), 1)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := NewBuilder(otlpwire.Metrics, mem)
	defer b.Release()
	for _, c := range []struct{ key, val, want string }{
		{"BAD!", "x", "KeyValue field 1: invalid UTF-8"},
		{"k", "BAD!", "AnyValue field 1: invalid UTF-8"},
	} {
		if _, err := b.Append(req("fine", "ünïcödé")); err != nil {
			t.Fatal(err)
		}
		_, err := b.Append(req(c.key, c.val))
		if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "item 1") {
			t.Fatalf("%q=%q: got error %v, want %q at item 1", c.key, c.val, err, c.want)
		}
		if b.Len() != 0 {
			t.Fatalf("after the error: %d items kept", b.Len())
		}
		if n, err := b.Append(req("k", "ünïcödé")); n != 3 || err != nil {
			t.Fatalf("after the error: Append = %d, %v", n, err)
		}
		batch := b.Build()
		if batch.Len() != 3 {
			t.Fatalf("batch of %d items, want 3", batch.Len())
		}
		batch.Release()
	}
}

// TestSplitKV: the fast path takes only the usual KeyValue encoding; every
// other one goes to the general loop, which knows duplicates, other
// orders, other fields and long lengths.
func TestSplitKV(t *testing.T) {
	long := strings.Repeat("k", 200)
	kv := func(fields ...[]byte) []byte { return bytes.Join(fields, nil) }
	key := func(k string) []byte { return protowire.AppendString([]byte{0x0a}, k) }
	val := func(v []byte) []byte { return protowire.AppendBytes([]byte{0x12}, v) }
	str := protowire.AppendString([]byte{0x0a}, "v")
	for _, c := range []struct {
		name string
		p    []byte
		ok   bool
	}{
		{"usual", kv(key("k"), val(str)), true},
		{"empty key", kv(key(""), val(str)), true},
		{"value first", kv(val(str), key("k")), false},
		{"no value", kv(key("k")), false},
		{"two values", kv(key("k"), val(str), val(str)), false},
		{"trailing field", kv(key("k"), val(str), []byte{0x18, 1}), false},
		{"long key", kv(key(long), val(str)), false},
		{"long value", kv(key("k"), val(protowire.AppendString([]byte{0x0a}, long))), false},
		{"truncated", kv(key("k"), val(str))[:6], false},
	} {
		k, v, ok := splitKV(c.p)
		if ok != c.ok {
			t.Errorf("%s: ok = %v", c.name, ok)
		}
		if ok && (string(k) != "k" && string(k) != "" || !bytes.Equal(v, str)) {
			t.Errorf("%s: key %q value %x", c.name, k, v)
		}
	}
}

// TestAppendKVs: appendKVs over a run of attribute fields fills the table as
// appendKV field by field does (and returns the same error), whatever the
// encodings in the run: the usual ones, long lengths, other value types,
// non-canonical KeyValues, bytes values (after which the run goes on one
// by one), a field of another tag and corrupt ones.
func TestAppendKVs(t *testing.T) {
	const tag = 7<<3 | 2
	key := func(k string) []byte { return protowire.AppendString([]byte{0x0a}, k) }
	val := func(v []byte) []byte { return protowire.AppendBytes([]byte{0x12}, v) }
	anyv := func(num protowire.Number, typ protowire.Type, x uint64, b []byte) []byte {
		p := protowire.AppendTag(nil, num, typ)
		switch typ {
		case protowire.VarintType:
			return protowire.AppendVarint(p, x)
		case protowire.Fixed64Type:
			return protowire.AppendFixed64(p, x)
		}
		return protowire.AppendBytes(p, b)
	}
	r := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		return string(b)
	}
	kinds := []func() []byte{
		func() []byte {
			return append(key(word(r.IntN(20))), val(anyv(1, protowire.BytesType, 0, []byte(word(r.IntN(40)))))...)
		},
		func() []byte {
			return append(key(word(r.IntN(20))), val(anyv(3, protowire.VarintType, uint64(r.IntN(1<<7)), nil))...)
		},
		func() []byte {
			return append(key(word(r.IntN(20))), val(anyv(3, protowire.VarintType, uint64(r.IntN(1<<14)), nil))...)
		},
		func() []byte {
			return append(key(word(r.IntN(20))), val(anyv(3, protowire.VarintType, r.Uint64(), nil))...)
		},
		func() []byte { return append(key(word(200)), val(anyv(1, protowire.BytesType, 0, []byte("v")))...) },
		func() []byte { return append(key("k"), val(anyv(1, protowire.BytesType, 0, []byte(word(130))))...) },
		func() []byte { return append(key("d"), val(anyv(4, protowire.Fixed64Type, r.Uint64(), nil))...) },
		func() []byte { return append(key("b"), val(anyv(2, protowire.VarintType, uint64(r.IntN(2)), nil))...) },
		func() []byte { return append(key("y"), val(anyv(7, protowire.BytesType, 0, []byte(word(3))))...) },
		func() []byte { return key("none") },
		func() []byte { return append(val(anyv(1, protowire.BytesType, 0, []byte("v"))), key("first")...) },
		func() []byte { return append(key("e"), val(nil)...) },
		func() []byte { return append(key("bad"), 0x12, 5, 0x0a) },
	}
	for iter := range 3000 {
		var p []byte
		nf := 1 + r.IntN(8)
		for range nf {
			if r.IntN(10) == 0 {
				p = append(p, 0x11, 1, 2, 3, 4, 5, 6, 7, 8) // another field
				continue
			}
			p = protowire.AppendBytes(append(p, tag), kinds[r.IntN(len(kinds))]())
		}
		strict := false
		want, got := newAttrTable(&strict, nil), newAttrTable(&strict, nil)
		want.row(true)
		got.row(true)
		var wantErr, gotErr error
		for i := 0; i < len(p); {
			f, _ := otlpwire.ReadField(p, i)
			if p[i] == tag {
				if wantErr = want.appendKV(p[f.Val:f.End]); wantErr != nil {
					break
				}
			}
			i = f.End
		}
		for i := 0; i < len(p); {
			if p[i] == tag {
				j, _, err := got.appendKVs(p, i, tag)
				if gotErr = err; err != nil {
					break
				}
				if j > i {
					i = j
					continue
				}
			}
			f, _ := otlpwire.ReadField(p, i)
			if p[i] == tag {
				if gotErr = got.appendKV(p[f.Val:f.End]); gotErr != nil {
					break
				}
			}
			i = f.End
		}
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("iteration %d: error %v, want %v", iter, gotErr, wantErr)
		}
		if wantErr != nil {
			continue
		}
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"typs", got.typs, want.typs}, {"keyOff", got.keyOff, want.keyOff}, {"keyData", got.keyData, want.keyData},
			{"strOff", got.strOff, want.strOff}, {"strData", got.strData, want.strData},
			{"byOff", got.byOff, want.byOff}, {"byData", got.byData, want.byData},
			{"ints", got.ints, want.ints}, {"dbls", got.dbls, want.dbls}, {"bools", got.bools, want.bools},
		} {
			if !reflect.DeepEqual(c.got, c.want) && fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Fatalf("iteration %d: %s = %v, want %v", iter, c.name, c.got, c.want)
			}
		}
	}
}

// TestSparseBuf: the sparse value columns of attribute entries are their
// values at the entries named and zero elsewhere, whatever was in the
// pool's buffer, with the entries in order (as the table appends them) or
// not.
func TestSparseBuf(t *testing.T) {
	pool := arrowpool.NewPoisoned()
	a := newAttrTable(nil, pool)
	r := rand.New(rand.NewPCG(9, 10))
	for iter := range 200 {
		e := 1 + r.IntN(2000)           // mostly over arrowpool.MinPooled
		pool.Free(pool.Allocate(8 * e)) // a poisoned buffer of its class
		want := make([]uint64, e)
		var xs []sparse
		for i := range e {
			if r.IntN(4) == 0 {
				want[i] = r.Uint64() | 1
				xs = append(xs, sparse{int32(i), want[i]})
			}
		}
		if iter%2 == 1 {
			r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
		}
		b := a.sparseBuf(nil, e, xs)
		if got := castBytes[uint64](b.Bytes()); !slices.Equal(got, want) {
			t.Fatalf("iteration %d, %d entries, %d values (shuffled %v):\n got %v\nwant %v", iter, e, len(xs), iter%2 == 1, got, want)
		}
		b.Release()
	}
}
