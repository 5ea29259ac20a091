package schemas

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/decode.golden from the current decoder")

// goldenCase is a sequence of requests appended to one Builder, with a Build
// after every per-th.
type goldenCase struct {
	name string
	sig  otlpwire.Signal
	per  int
	reqs [][]byte
}

// goldenCases are the inputs of TestDecodeGolden: the benchmark corpora, the
// k8s load, random requests of every signal (with and without unknown
// fields), the same with bytes corrupted (so that errors, the strict UTF-8
// pass and the reset after an error are covered), and hand-made edge cases.
func goldenCases() []goldenCase {
	var cs []goldenCase
	for _, c := range otlptest.Corpora() {
		cs = append(cs, goldenCase{"corpus/" + c.Name, c.Signal, 1, [][]byte{c.Body}})
	}
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{})
	if err != nil {
		panic(err)
	}
	var k8s [][]byte
	for j := range 2 * l.RequestsPerStep() {
		k8s = append(k8s, l.Request(nil, j))
	}
	cs = append(cs, goldenCase{"k8s-load", otlpwire.Metrics, 10, k8s})
	for _, sig := range otlpwire.Signals {
		for _, unknown := range []bool{false, true} {
			g := otlptest.NewGen(uint64(sig)*7+11, otlptest.GenOptions{Unknown: unknown})
			var reqs, bad [][]byte
			r := rand.New(rand.NewPCG(uint64(sig), 99))
			for range 300 {
				body := g.Request(sig)
				reqs = append(reqs, body)
				if len(body) > 0 {
					c := append([]byte(nil), body...)
					for range 1 + r.IntN(3) {
						c[r.IntN(len(c))] = byte(r.Uint32())
					}
					bad = append(bad, c)
				}
			}
			name := fmt.Sprintf("random/%s/unknown=%v", sig, unknown)
			cs = append(cs, goldenCase{name, sig, 5, reqs}, goldenCase{name + "/corrupt", sig, 3, bad})
		}
	}
	edge := edgeRequests()
	for _, sig := range otlpwire.Signals {
		cs = append(cs, goldenCase{"edge/" + sig.String(), sig, 1, edge[sig]})
		cs = append(cs, goldenCase{"edge-batched/" + sig.String(), sig, 1000, edge[sig]})
	}
	return cs
}

// ReadGolden reads a golden file of lines "name sum": the sums by name.
// Exported for the package's external tests (TestWriteBatchGolden).
func ReadGolden(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, sum, _ := strings.Cut(sc.Text(), " ")
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}

// TestDecodeGolden: the Arrow batches Append builds (every buffer value,
// values under nulls included, the null counts and the errors) are those of
// the decoder as it was when testdata/decode.golden was written. A faster
// decoder must give the same batches, bit for bit.
func TestDecodeGolden(t *testing.T) {
	want := map[string]string{}
	if !*updateGolden {
		want = ReadGolden(t, "testdata/decode.golden")
	}
	var out strings.Builder
	for _, c := range goldenCases() {
		for _, mem := range []struct {
			name  string
			alloc memory.Allocator
		}{{"go", memory.NewGoAllocator()}, {"pool", arrowpool.NewPoisoned()}, {"bare pool", nil}} {
			var got string
			if mem.alloc == nil {
				// The pool itself, not wrapped: buffers that are
				// not cleared (arrowpool.NewBuffer) hold its poison.
				pool := arrowpool.NewPoisoned()
				got = goldenSum(t, c, pool)
				if n := pool.Live(); n != 0 {
					t.Errorf("%s (%s): %d bytes not freed", c.name, mem.name, n)
				}
			} else {
				checked := memory.NewCheckedAllocator(mem.alloc)
				got = goldenSum(t, c, checked)
				checked.AssertSize(t, 0)
			}
			if mem.name == "go" {
				fmt.Fprintf(&out, "%s %s\n", c.name, got)
			}
			if !*updateGolden && got != want[c.name] {
				t.Errorf("%s (%s allocator): batches differ from testdata/decode.golden (sum %s, want %s)", c.name, mem.name, got, want[c.name])
			}
		}
	}
	if *updateGolden {
		if err := os.WriteFile("testdata/decode.golden", []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// goldenSum decodes c and returns the hash of what Append returned and of
// the batches built.
func goldenSum(t *testing.T, c goldenCase, mem memory.Allocator) string {
	t.Helper()
	h := sha256.New()
	b := NewBuilder(c.sig, mem)
	defer b.Release()
	build := func() {
		bt := b.Build()
		for _, rec := range bt.tables() {
			fmt.Fprintf(h, "table %d rows %d\n", len(rec.Columns()), rec.NumRows())
			for _, col := range rec.Columns() {
				hashArray(h, col)
			}
		}
		bt.Release()
	}
	for i, r := range c.reqs {
		n, err := b.Append(r)
		fmt.Fprintf(h, "append %d: %d %v len %d\n", i, n, err, b.Len())
		if (i+1)%c.per == 0 {
			build()
		}
	}
	build()
	return hex.EncodeToString(h.Sum(nil))
}

// hashArray writes the logical content of a: its type, length, null count,
// validity, and every value, those under nulls included.
func hashArray(h hash.Hash, a arrow.Array) {
	n := a.Len()
	fmt.Fprintf(h, "%s len %d nulls %d\n", a.DataType(), n, a.NullN())
	bits := make([]byte, n)
	for i := range n {
		if a.IsValid(i) {
			bits[i] = 1
		}
	}
	h.Write(bits)
	var buf [8]byte
	u64 := func(x uint64) {
		binary.LittleEndian.PutUint64(buf[:], x)
		h.Write(buf[:])
	}
	switch a := a.(type) {
	case *array.Uint8:
		for i := range n {
			u64(uint64(a.Value(i)))
		}
	case *array.Uint32:
		for i := range n {
			u64(uint64(a.Value(i)))
		}
	case *array.Uint64:
		for i := range n {
			u64(a.Value(i))
		}
	case *array.Int32:
		for i := range n {
			u64(uint64(a.Value(i)))
		}
	case *array.Int64:
		for i := range n {
			u64(uint64(a.Value(i)))
		}
	case *array.Float64:
		for i := range n {
			u64(math.Float64bits(a.Value(i)))
		}
	case *array.Boolean:
		for i := range n {
			if a.Value(i) {
				h.Write([]byte{1})
			} else {
				h.Write([]byte{0})
			}
		}
	case *array.String:
		for i := range n {
			s := a.Value(i)
			u64(uint64(len(s)))
			h.Write([]byte(s))
		}
	case *array.Binary:
		for i := range n {
			s := a.Value(i)
			u64(uint64(len(s)))
			h.Write(s)
		}
	case *array.Struct:
		for k := range a.NumField() {
			hashArray(h, a.Field(k))
		}
	case *array.Map:
		hashList(h, a, a.ListValues())
	case *array.List:
		hashList(h, a, a.ListValues())
	default:
		panic(fmt.Sprintf("hashArray: %T", a))
	}
}

func hashList(h hash.Hash, a interface{ ValueOffsets(int) (int64, int64) }, values arrow.Array) {
	n := a.(arrow.Array).Len()
	start := int64(0)
	if n > 0 {
		start, _ = a.ValueOffsets(0)
	}
	for i := range n {
		s, e := a.ValueOffsets(i)
		fmt.Fprintf(h, "[%d %d]", s-start, e-start)
	}
	end := start
	if n > 0 {
		_, end = a.ValueOffsets(n - 1)
	}
	sl := array.NewSlice(values, start, end)
	defer sl.Release()
	hashArray(h, sl)
}

// edgeRequests are hand-made requests of each signal for the edges of the
// attribute decoding: no attributes, an empty key, repeated keys, values of
// every type and none, long keys and values (two-byte lengths), invalid
// UTF-8 in a key and in a value, non-ASCII strings, and non-canonical
// KeyValue encodings (value before key, a field repeated).
func edgeRequests() map[otlpwire.Signal][][]byte {
	out := map[otlpwire.Signal][][]byte{}
	kv := func(key string, val []byte, withVal bool) []byte {
		var p []byte
		p = appendBin(p, otlpwire.KeyValueKey, []byte(key))
		if withVal {
			p = appendBytesField(p, otlpwire.KeyValueValue, val)
		}
		return p
	}
	str := func(s string) []byte { return appendBytesField(nil, otlpwire.AnyValueStringValue, []byte(s)) }
	long := strings.Repeat("k", 200)
	sets := [][][]byte{
		nil,
		{kv("", str("v"), true)},
		{kv("a", str("1"), true), kv("a", str("2"), true), kv("a", str("1"), true)},
		{kv("s", str(""), true), kv("none", nil, false), kv("empty", nil, true),
			kv("b", appendVarintF(nil, otlpwire.AnyValueBoolValue, 1), true),
			kv("b0", appendVarintF(nil, otlpwire.AnyValueBoolValue, 0), true),
			kv("i", appendVarintF(nil, otlpwire.AnyValueIntValue, 1<<63), true),
			kv("d", appendFixed64F(nil, otlpwire.AnyValueDoubleValue, 0x7ff8000000000001), true),
			kv("by", appendBytesField(nil, otlpwire.AnyValueBytesValue, []byte{0xff, 0}), true),
			kv("arr", appendBytesField(nil, otlpwire.AnyValueArrayValue, appendBytesField(nil, 1, str("x"))), true),
			kv("kvl", appendBytesField(nil, otlpwire.AnyValueKvlistValue, appendBytesField(nil, 1, kv("x", str("y"), true))), true),
			kv("raw", append(str("a"), str("b")...), true)},
		{kv(long, str(long), true), kv("ü", str("ñ✓"), true)},
		{kv("bad\xff", str("v"), true)},
		{kv("k", str("bad\xc3"), true)},
		{append(appendBytesField(nil, otlpwire.KeyValueValue, str("v")), appendBin(nil, otlpwire.KeyValueKey, []byte("k"))...)},
		{append(kv("k", str("v"), true), appendBin(nil, otlpwire.KeyValueKey, []byte("k2"))...)},
		{append(kv("k", str("v"), true), appendBytesField(nil, otlpwire.KeyValueValue, str("w"))...)},
	}
	for _, set := range sets {
		out[otlpwire.Metrics] = append(out[otlpwire.Metrics], edgeRequest(otlpwire.Metrics, set))
		out[otlpwire.Logs] = append(out[otlpwire.Logs], edgeRequest(otlpwire.Logs, set))
		out[otlpwire.Traces] = append(out[otlpwire.Traces], edgeRequest(otlpwire.Traces, set))
	}
	return out
}

// edgeRequest is a request of sig whose resource, scope and items (two of
// each kind: for metrics a gauge, sum, histogram, exponential histogram
// and summary point) all have the attributes kvs.
func edgeRequest(sig otlpwire.Signal, kvs [][]byte) []byte {
	attrs := func(num otlpwire.FieldNum) []byte {
		var p []byte
		for _, kv := range kvs {
			p = appendBytesField(p, num, kv)
		}
		return p
	}
	res := attrs(otlpwire.ResourceAttributes)
	scope := append(appendBin(nil, otlpwire.InstrumentationScopeName, []byte("s")), attrs(otlpwire.InstrumentationScopeAttributes)...)
	var items []byte
	switch sig {
	case otlpwire.Metrics:
		pt := func(attrNum otlpwire.FieldNum) []byte {
			p := appendFixed64F(nil, otlpwire.DataPointTimeUnixNano, 5)
			return append(p, attrs(attrNum)...)
		}
		num := append(pt(otlpwire.NumberDataPointAttributes), appendFixed64F(nil, otlpwire.NumberDataPointAsInt, 7)...)
		for _, kind := range []struct {
			field otlpwire.FieldNum
			pt    []byte
		}{
			{otlpwire.MetricGauge, num},
			{otlpwire.MetricSum, num},
			{otlpwire.MetricHistogram, pt(otlpwire.HistogramDataPointAttributes)},
			{otlpwire.MetricExponentialHistogram, pt(otlpwire.ExponentialHistogramDataPointAttributes)},
			{otlpwire.MetricSummary, pt(otlpwire.SummaryDataPointAttributes)},
		} {
			data := appendBytesField(nil, otlpwire.DataPoints, kind.pt)
			data = appendBytesField(data, otlpwire.DataPoints, kind.pt)
			m := appendBin(nil, otlpwire.MetricName, []byte("m"))
			m = appendBytesField(m, kind.field, data)
			m = append(m, attrs(otlpwire.MetricMetadata)...)
			items = appendBytesField(items, otlpwire.ScopeXItems, m)
		}
	case otlpwire.Logs:
		lr := attrs(otlpwire.LogRecordAttributes)
		items = appendBytesField(appendBytesField(nil, otlpwire.ScopeXItems, lr), otlpwire.ScopeXItems, lr)
	default:
		sp := append(appendBin(nil, otlpwire.SpanName, []byte("n")), attrs(otlpwire.SpanAttributes)...)
		items = appendBytesField(appendBytesField(nil, otlpwire.ScopeXItems, sp), otlpwire.ScopeXItems, sp)
	}
	rx := appendBytesField(nil, otlpwire.ResourceXResource, res)
	rx = appendBytesField(rx, otlpwire.ResourceXScopeX, append(appendBytesField(nil, otlpwire.ScopeXScope, scope), items...))
	return appendBytesField(nil, otlpwire.RequestResourceX, rx)
}
