package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

type tcase struct {
	name   string
	bodies [][]byte
	want   int // 1: numbered, 0: not, 2: as FindItemAttrSets, -1: either
}

// TestWireSets: decoding numbers the data points' attribute sets as
// FindItemAttrSets finds them on the same batch decoded without the
// numbering, and builds the same batch (a repeated set's entries copied
// from its first row), with hashes intact and all colliding; it gives no numbers when an encoding could make
// equal sets look different on the wire.
func TestWireSets(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var cases []tcase

	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 20, PerRequest: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, steps := range []int{1, 3} {
		var bodies [][]byte
		for j := range steps * l.RequestsPerStep() {
			bodies = append(bodies, l.Request(nil, j))
		}
		// One step holds each series once: more than half distinct.
		cases = append(cases, tcase{"k8s-load/steps=" + string(rune('0'+steps)), bodies, min(steps-1, 1)})
	}
	for _, c := range otlptest.Corpora() {
		if c.Signal == otlpwire.Metrics {
			cases = append(cases, tcase{"corpus/" + c.Name, [][]byte{c.Body, c.Body}, 1})
		}
	}
	g := otlptest.NewGen(11, otlptest.GenOptions{Unknown: true})
	for i := range 60 {
		// As they come (most not numbered: doubles, lists, long values),
		// and with only the usual encodings left, sets also repeated
		// within the request.
		m := g.Message(otlpwire.Metrics).(*colmetrics.ExportMetricsServiceRequest)
		want := -1
		if i%2 == 1 {
			usualAttrs(m, g.Rand())
			want = 2 // when FindItemAttrSets numbers them
		}
		body, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, tcase{fmt.Sprintf("random/%d", i), [][]byte{body, body, body}, want})
	}

	str := func(k, v string) []byte { return kvBytes(k, protowire.AppendBytes([]byte{0x0a}, []byte(v))) }
	num := func(k string, v ...byte) []byte { return kvBytes(k, append([]byte{0x18}, v...)) }
	a, b, n5, n300 := str("a", "x"), str("b", "y"), num("n", 5), num("n", 0xac, 0x02)
	six := func(p, q []byte) [][]byte { return [][]byte{p, q, p, p, q, p} }
	many := func(n int) (kvs [][]byte) {
		for i := range n {
			kvs = append(kvs, num(fmt.Sprint("k", i), byte(i%128)))
		}
		return kvs
	}
	cases = append(cases,
		tcase{"usual encodings", [][]byte{gauge(
			point(a, n5), point(a, n300), point(), point(a, n5), point(a, n300), point(), point(b), point(b))}, 1},
		// 5 as a two-byte varint: equal entries, other bytes.
		tcase{"non-minimal varint", [][]byte{gauge(six(point(a, n5), point(a, num("n", 0x85, 0x00)))...)}, 0},
		tcase{"value before key", [][]byte{gauge(six(point(a), point(valueFirst("a", "x")))...)}, 0},
		tcase{"attributes in two runs", [][]byte{gauge(six(point(a, b), splitPoint(a, b))...)}, 0},
		tcase{"long value", [][]byte{gauge(six(point(a), point(a, str("l", strings.Repeat("v", 200))))...)}, 0},
		tcase{"300 attributes", [][]byte{gauge(six(point(a), point(many(300)...))...)}, 1},
		tcase{"double value", [][]byte{gauge(six(point(a), point(a, kvBytes("d", protowire.AppendFixed64([]byte{0x21}, 7))))...)}, 0},
	)

	for _, mask := range []uint64{^uint64(0), 0} {
		wireHashMask = mask
		checkWireSets(t, mem, cases)
	}
	wireHashMask = ^uint64(0)
}

func checkWireSets(t *testing.T, mem memory.Allocator, cases []tcase) {
	on, off := NewBuilder(otlpwire.Metrics, mem), NewBuilder(otlpwire.Metrics, mem)
	defer on.Release()
	defer off.Release()
	numbered := 0
	kept := map[[2]uint64]string{} // the attributes of each kept set seen
	for _, c := range cases {
		got := buildAll(t, on, c.bodies, false)
		want := buildAll(t, off, c.bodies, true)
		checkKeptSets(t, c.name, got, kept)
		sameBatch(t, c.name, got, want)
		if want.ItemAttrSets != nil {
			t.Fatalf("%s: numbered with the numbering off", c.name)
		}
		want.FindItemAttrSets(nil)
		switch {
		case got.ItemAttrSets == nil && (c.want == 1 || c.want == 2 && want.ItemAttrSets != nil):
			t.Errorf("%s: not numbered; FindItemAttrSets finds %d sets", c.name, len(want.ItemAttrSets))
		case got.ItemAttrSets != nil && c.want == 0:
			t.Errorf("%s: numbered %v", c.name, got.ItemAttrSets)
		case got.ItemAttrSets != nil && !slices.Equal(got.ItemAttrSets, want.ItemAttrSets):
			t.Errorf("%s: numbered\n%v\nFindItemAttrSets\n%v", c.name, got.ItemAttrSets, want.ItemAttrSets)
		}
		if got.ItemAttrSets != nil {
			numbered++
		}
		got.Release()
		want.Release()
	}
	if numbered < 20 {
		t.Errorf("only %d cases numbered", numbered)
	}
}

// checkKeptSets fails t when b's kept numbers (Batch.ItemSetIDs) give
// attributes other than those of the same number before (kept), or do not
// agree with its own numbers (ItemAttrSets: equal there, equal here).
func checkKeptSets(t *testing.T, name string, b *Batch, kept map[[2]uint64]string) {
	t.Helper()
	if b.ItemSetIDs == nil {
		if b.setsFound && b.Len() > 0 {
			t.Errorf("%s: numbered, no kept numbers", name)
		}
		return
	}
	if len(b.ItemSetIDs) != b.Len() || b.SetSpace == 0 {
		t.Fatalf("%s: %d kept numbers of space %d for %d points", name, len(b.ItemSetIDs), b.SetSpace, b.Len())
	}
	attrs := b.Items.Column(PtAttributes).(*array.Map)
	local := map[uint32]uint32{}
	for i, id := range b.ItemSetIDs {
		if b.ItemAttrSets != nil {
			if l, ok := local[b.ItemAttrSets[i]]; ok && l != id {
				t.Fatalf("%s: point %d: set %d is kept as %d and %d", name, i, b.ItemAttrSets[i], l, id)
			}
			local[b.ItemAttrSets[i]] = id
		}
		if i >= 3000 {
			continue
		}
		row := array.NewSlice(attrs, int64(i), int64(i+1))
		s := row.String()
		row.Release()
		k := [2]uint64{b.SetSpace, uint64(id)}
		if was, ok := kept[k]; ok && was != s {
			t.Fatalf("%s: point %d: kept set %d was %s, now %s", name, i, id, was, s)
		}
		kept[k] = s
	}
}

// buildAll decodes bodies into one batch, with or without the numbering.
func buildAll(t *testing.T, b *Builder, bodies [][]byte, noSets bool) *Batch {
	t.Helper()
	noWireSets = noSets
	defer func() { noWireSets = false }()
	b.pts.sets.skip = 0
	b.pts.sets.restart()
	for _, body := range bodies {
		if _, err := b.Append(body); err != nil {
			t.Fatal(err)
		}
	}
	return b.Build()
}

// kvBytes is a KeyValue field (attributes = 7) of key and an AnyValue of
// the encoded fields val.
func kvBytes(key string, val []byte) []byte {
	kv := protowire.AppendBytes([]byte{0x0a}, []byte(key))
	kv = protowire.AppendBytes(append(kv, 0x12), val)
	return protowire.AppendBytes([]byte{0x3a}, kv)
}

// valueFirst is a string KeyValue field with its value before its key.
func valueFirst(key, v string) []byte {
	kv := protowire.AppendBytes([]byte{0x12}, protowire.AppendBytes([]byte{0x0a}, []byte(v)))
	kv = protowire.AppendBytes(append(kv, 0x0a), []byte(key))
	return protowire.AppendBytes([]byte{0x3a}, kv)
}

// point is a NumberDataPoint of the attribute fields attrs (in order), a
// time and a double.
func point(attrs ...[]byte) []byte {
	p := protowire.AppendFixed64([]byte{0x19}, 1e18)
	p = protowire.AppendFixed64(append(p, 0x21), 1)
	return slices.Concat(append([][]byte{p}, attrs...)...)
}

// splitPoint is point with its time between its first attribute and the
// others.
func splitPoint(first []byte, rest ...[]byte) []byte {
	p := append(slices.Clone(first), protowire.AppendFixed64([]byte{0x19}, 1e18)...)
	return slices.Concat(append([][]byte{p}, rest...)...)
}

// gauge is a request of one resource, scope and gauge holding pts.
func gauge(pts ...[]byte) []byte {
	var data []byte
	for _, p := range pts {
		data = protowire.AppendBytes(append(data, 0x0a), p) // data_points = 1
	}
	m := protowire.AppendBytes([]byte{0x0a}, []byte("g")) // name = 1
	m = protowire.AppendBytes(append(m, 0x2a), data)      // gauge = 5
	sm := protowire.AppendBytes([]byte{0x12}, m)          // metrics = 2
	rm := protowire.AppendBytes([]byte{0x12}, sm)         // scope_metrics = 2
	return protowire.AppendBytes([]byte{0x0a}, rm)        // resource_metrics = 1
}

// usualAttrs keeps of m's data points' attributes those of the usual
// encodings (a key, short strings, small ints: see wireSets; protobuf
// leaves an empty key out) and gives some
// points the attributes of an earlier point of their metric.
func usualAttrs(m *colmetrics.ExportMetricsServiceRequest, r *rand.Rand) {
	keep := func(kvs []*common.KeyValue) []*common.KeyValue {
		var out []*common.KeyValue
		for _, kv := range kvs {
			if kv.Key == "" {
				continue
			}
			switch v := kv.GetValue().GetValue().(type) {
			case *common.AnyValue_StringValue:
				if len(kv.Key) < 60 && len(v.StringValue) < 60 {
					out = append(out, kv)
				}
			case *common.AnyValue_IntValue:
				if len(kv.Key) < 60 && v.IntValue >= 0 && v.IntValue < 1<<14 {
					out = append(out, kv)
				}
			}
		}
		return out
	}
	fix := func(n int, attrs func(i int) *[]*common.KeyValue) {
		for i := range n {
			a := attrs(i)
			*a = keep(*a)
			if i > 0 && r.IntN(2) == 0 {
				*a = *attrs(r.IntN(i))
			}
		}
	}
	for _, rm := range m.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				if d := mt.GetGauge(); d != nil {
					fix(len(d.DataPoints), func(i int) *[]*common.KeyValue { return &d.DataPoints[i].Attributes })
				}
				if d := mt.GetSum(); d != nil {
					fix(len(d.DataPoints), func(i int) *[]*common.KeyValue { return &d.DataPoints[i].Attributes })
				}
				if d := mt.GetHistogram(); d != nil {
					fix(len(d.DataPoints), func(i int) *[]*common.KeyValue { return &d.DataPoints[i].Attributes })
				}
				if d := mt.GetExponentialHistogram(); d != nil {
					fix(len(d.DataPoints), func(i int) *[]*common.KeyValue { return &d.DataPoints[i].Attributes })
				}
				if d := mt.GetSummary(); d != nil {
					fix(len(d.DataPoints), func(i int) *[]*common.KeyValue { return &d.DataPoints[i].Attributes })
				}
			}
		}
	}
}

// TestWireSetsProbe: batches not worth numbering (sets never seen before,
// as series that churn bring them) turn the numbering off but for every
// wireSetsProbe-th batch, as do batches of encodings it does not number.
// Sets seen before are numbered again from the next probe on: live
// traffic (each series once a batch, found in the sets kept from the
// batches before), and a backlog, which stays so when small batches come
// between.
func TestWireSetsProbe(t *testing.T) {
	load := func(seed uint64) *otlptest.K8sLoad {
		l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 10, PerRequest: 1000, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := load(0)
	b := NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	// batch decodes requests j of l into one batch, and returns it with
	// the sets it added.
	batch := func(l *otlptest.K8sLoad, reqs ...int) (*Batch, int) {
		for _, j := range reqs {
			if _, err := b.Append(l.Request(nil, j)); err != nil {
				t.Fatal(err)
			}
		}
		added := b.pts.sets.added
		return b.Build(), added
	}
	// Churn: every batch's series are new (other ids).
	for k := range 2*wireSetsProbe + 1 {
		bt, _ := batch(load(uint64(k+1)), 0)
		if bt.ItemAttrSets != nil {
			t.Fatalf("churn batch %d: distinct series numbered", k)
		}
		if want := k%wireSetsProbe == 0; bt.setsFound != want {
			t.Fatalf("churn batch %d: numbered %v, want %v (every %dth)", k, bt.setsFound, want, wireSetsProbe)
		}
		bt.Release()
	}
	// Live traffic: each batch one step of the same series. The first
	// probe adds its sets, the next finds them, and the numbering stays.
	for k := range 3 * wireSetsProbe {
		bt, added := batch(l, k)
		if bt.ItemAttrSets != nil {
			t.Fatalf("live batch %d: distinct series numbered", k)
		}
		numbered := bt.setsFound
		bt.Release()
		switch {
		case k < 2*wireSetsProbe-1 && numbered != (k == wireSetsProbe-1):
			t.Fatalf("live batch %d: numbered %v, want only the probe %d", k, numbered, wireSetsProbe-1)
		case k >= 2*wireSetsProbe-1 && (!numbered || added != 0):
			t.Fatalf("live batch %d: numbered %v, %d sets added; want numbered, all found", k, numbered, added)
		}
	}
	// A backlog: each batch holds 4 steps.
	backlog := func(after string) {
		for k := range wireSetsProbe {
			bt, _ := batch(l, 4*k, 4*k+1, 4*k+2, 4*k+3)
			numbered := bt.ItemAttrSets != nil
			bt.Release()
			if want := k >= wireSetsProbe-1; numbered != want {
				t.Fatalf("backlog batch %d after %s: numbered %v, want %v", k, after, numbered, want)
			}
		}
	}
	// Encodings it does not number (a double) stop it for the batch, and
	// turn it off until the probe after.
	a, d := kvBytes("a", []byte{0x0a, 1, 'x'}), kvBytes("d", protowire.AppendFixed64([]byte{0x21}, 7))
	for k := range wireSetsProbe + 1 {
		if _, err := b.Append(gauge(point(a), point(a, d), point(a))); err != nil {
			t.Fatal(err)
		}
		bt := b.Build()
		found := bt.setsFound
		bt.Release()
		if found {
			t.Fatalf("batch %d of doubles: numbered", k)
		}
	}
	backlog("doubles")
	// A worker's batches of a backlog: some of one step, between those of
	// several, do not turn the numbering off.
	for k := range 2 * wireSetsProbe {
		small := k%2 == 1
		reqs := []int{0, 1, 2, 3}
		if small {
			reqs = reqs[:1]
		}
		bt, _ := batch(l, reqs...)
		got, numbered := bt.ItemAttrSets != nil, bt.setsFound
		bt.Release()
		if !numbered || got == small {
			t.Fatalf("backlog batch %d (small %v): numbered %v, sets %v", k, small, numbered, got)
		}
	}
}

// TestWireSetsBounds: the sets kept from batch to batch are forgotten at
// the start of the batch after they pass their bound, and batches decode
// as without numbering, before and after; a failed request forgets them
// too.
func TestWireSetsBounds(t *testing.T) {
	on, off := NewBuilder(otlpwire.Metrics, nil), NewBuilder(otlpwire.Metrics, nil)
	defer on.Release()
	defer off.Release()
	s := &on.pts.sets
	forgotten, most := 0, 0
	kept := map[[2]uint64]string{}
	for k := 0; forgotten < 2; k++ {
		if k > 40 {
			used, _ := s.bytes()
			t.Fatalf("%d batches of new series, the sets never forgotten (%d bytes)", k, used)
		}
		l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 100, Seed: uint64(k + 1)})
		if err != nil {
			t.Fatal(err)
		}
		var bodies [][]byte
		for j := range l.RequestsPerStep() {
			bodies = append(bodies, l.Request(nil, j))
		}
		s.skip, s.off = 0, false // new series: numbered all the same
		before := len(s.sets)
		got := buildAll(t, on, bodies, false)
		if used, held := s.bytes(); used > maxSetBytes || held > 4*maxSetBytes || len(s.slots) > maxWireSlots {
			t.Fatalf("batch %d: %d bytes kept, %d held, %d slots", k, used, held, len(s.slots))
		}
		if len(s.sets) == 0 {
			forgotten++
		}
		most = max(most, before)
		want := buildAll(t, off, bodies, true)
		checkKeptSets(t, fmt.Sprint("batch ", k), got, kept)
		sameBatch(t, fmt.Sprint("batch ", k), got, want)
		got.Release()
		want.Release()
	}
	if most < maxSetBytes/1000 {
		t.Errorf("at most %d sets kept", most)
	}
	// A failed request forgets the sets.
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: 10})
	if err != nil {
		t.Fatal(err)
	}
	s.skip, s.off = 0, false
	if _, err := on.Append(l.Request(nil, 0)); err != nil || len(s.sets) == 0 {
		t.Fatalf("%v, %d sets", err, len(s.sets))
	}
	if _, err := on.Append(gauge(point(kvBytes("s", []byte{0x0a, 1, 0xff})))); err == nil || len(s.sets) != 0 {
		t.Fatalf("a string not UTF-8: %v, %d sets kept", err, len(s.sets))
	}
}

// sameBatch fails t when got and want are not written alike.
func sameBatch(t *testing.T, name string, got, want *Batch) {
	t.Helper()
	sets := got.ItemAttrSets
	defer func() { got.ItemAttrSets = sets }()
	got.ItemAttrSets = nil // written alike (WriteBatch finds them)
	var gotW, wantW bytes.Buffer
	if err := WriteBatch(&gotW, got); err != nil {
		t.Fatal(err)
	}
	if err := WriteBatch(&wantW, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotW.Bytes(), wantW.Bytes()) {
		t.Errorf("%s: the batch differs from the one decoded without numbering", name)
	}
}

// TestWireSetsInvalidUTF8: a string that is not UTF-8 fails the request
// with the error of decoding without numbering, whether it lies in a set
// that is copied, before copies or after them: copies are not checked
// again, what they copy is.
func TestWireSetsInvalidUTF8(t *testing.T) {
	str := func(k, v string) []byte { return kvBytes(k, protowire.AppendBytes([]byte{0x0a}, []byte(v))) }
	x, y, bad := str("a", "x"), str("a", "y"), str("s", "\xff")
	for name, body := range map[string][]byte{
		"in a copied set":      gauge(point(x, bad), point(y), point(x, bad), point(y)),
		"before copies":        gauge(point(x), point(y), point(bad), point(x), point(y)),
		"after copies":         gauge(point(x), point(y), point(x), point(y), point(bad)),
		"between copies":       gauge(point(x), point(y), point(x), point(bad), point(y)),
		"in the first request": gauge(point(bad), point(x), point(x)),
	} {
		var errs [2]error
		for k, off := range []bool{false, true} {
			noWireSets = off
			b := NewBuilder(otlpwire.Metrics, nil)
			// A request of the same sets before: the copies come from it.
			if _, err := b.Append(gauge(point(x), point(y))); err != nil {
				t.Fatal(err)
			}
			_, errs[k] = b.Append(body)
			b.Release()
		}
		noWireSets = false
		if errs[0] == nil || errs[1] == nil || errs[0].Error() != errs[1].Error() {
			t.Errorf("%s: %v, without numbering %v", name, errs[0], errs[1])
		}
	}
}
