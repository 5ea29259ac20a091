package loki

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
)

// otlpPathAdd adds an Arrow record to p the way the sink did before it
// read Arrow columns: ReadBatch, ToOTLP, proto.Unmarshal, then Sink.add on
// the OTLP structs. It is the reference of the Arrow path.
func otlpPathAdd(t *testing.T, s *Sink, p *push, r *stream.Record) {
	t.Helper()
	pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &collogs.ExportLogsServiceRequest{}
	if err := proto.Unmarshal(pb, req); err != nil {
		t.Fatal(err)
	}
	s.add(p, req, r.Timestamp)
}

// arrowPathAdd adds r to p as Write does.
func arrowPathAdd(t *testing.T, s *Sink, p *push, r *stream.Record) {
	t.Helper()
	req, err := s.decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if req != nil {
		t.Fatal("an Arrow record decoded to an OTLP request")
	}
	s.addDecoded(p, req, r)
}

// samePush reports the first difference between two pushes: streams in
// order, labels, entries in order with their times, lines and metadata,
// the size estimate, and both encodings.
func samePush(want, got *push) error {
	if len(want.order) != len(got.order) || len(want.streams) != len(got.streams) {
		return fmt.Errorf("%d streams, want %d", len(got.order), len(want.order))
	}
	if want.entries != got.entries || want.bytes != got.bytes {
		return fmt.Errorf("entries %d, bytes %d; want %d, %d", got.entries, got.bytes, want.entries, want.bytes)
	}
	for k, ws := range want.order {
		gs := got.order[k]
		if ws.labels != gs.labels || !slices.Equal(ws.pairs, gs.pairs) || got.streams[ws.labels] != gs {
			return fmt.Errorf("stream %d: labels %s %v, want %s %v", k, gs.labels, gs.pairs, ws.labels, ws.pairs)
		}
		if len(ws.entries) != len(gs.entries) {
			return fmt.Errorf("stream %s: %d entries, want %d", ws.labels, len(gs.entries), len(ws.entries))
		}
		for i := range ws.entries {
			we, ge := ws.entries[i], gs.entries[i]
			wm := slices.Concat(we.shared, we.meta)
			gm := slices.Concat(ge.shared, ge.meta)
			if we.ts != ge.ts || we.line != ge.line || !slices.Equal(wm, gm) {
				return fmt.Errorf("stream %s entry %d:\n got %d %q %q\nwant %d %q %q", ws.labels, i, ge.ts, ge.line, gm, we.ts, we.line, wm)
			}
		}
	}
	if w, g := want.json(), got.json(); !bytes.Equal(w, g) {
		return fmt.Errorf("json:\n got %s\nwant %s", g, w)
	}
	want.sort()
	got.sort()
	if w, g := referenceProtobuf(want), got.protobuf(nil); !bytes.Equal(w, g) {
		return fmt.Errorf("protobuf differs:\n got %x\nwant %x", g, w)
	}
	return nil
}

// referenceProtobuf is the push encoder before sizes were computed up
// front (nested messages built apart and copied in): the reference of
// push.protobuf.
func referenceProtobuf(p *push) []byte {
	var out, st, en, ts []byte
	for _, s := range p.order {
		st = protowire.AppendTag(st[:0], 1, protowire.BytesType)
		st = protowire.AppendString(st, s.labels)
		for _, e := range s.entries {
			ts = ts[:0]
			if sec := floorDiv(e.ts, 1e9); sec != 0 {
				ts = protowire.AppendTag(ts, 1, protowire.VarintType)
				ts = protowire.AppendVarint(ts, uint64(sec))
			}
			if nanos := e.ts - floorDiv(e.ts, 1e9)*1e9; nanos != 0 {
				ts = protowire.AppendTag(ts, 2, protowire.VarintType)
				ts = protowire.AppendVarint(ts, uint64(nanos))
			}
			en = protowire.AppendTag(en[:0], 1, protowire.BytesType)
			en = protowire.AppendBytes(en, ts)
			if e.line != "" {
				en = protowire.AppendTag(en, 2, protowire.BytesType)
				en = protowire.AppendString(en, e.line)
			}
			for _, m := range slices.Concat(e.shared, e.meta) {
				n := protowire.SizeTag(1) + protowire.SizeBytes(len(m.name)) + protowire.SizeTag(2) + protowire.SizeBytes(len(m.value))
				en = protowire.AppendTag(en, 3, protowire.BytesType)
				en = protowire.AppendVarint(en, uint64(n))
				en = protowire.AppendTag(en, 1, protowire.BytesType)
				en = protowire.AppendString(en, m.name)
				en = protowire.AppendTag(en, 2, protowire.BytesType)
				en = protowire.AppendString(en, m.value)
			}
			st = protowire.AppendTag(st, 2, protowire.BytesType)
			st = protowire.AppendBytes(st, en)
		}
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, st)
	}
	return out
}

// logGen builds random OTLP log requests that use every kind of value the
// sink renders.
type logGen struct{ r *rand.Rand }

func (g *logGen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *logGen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

// keys: the default label attributes, names that sanitise to the same
// label name, names that need sanitising.
var genKeys = []string{
	"service.name", "service.namespace", "k8s.namespace.name", "service_name", "host.name", "k8s.pod.name",
	"http.method", "1st", "", "a-b.c", "ключ", "severity", "trace_id",
}

var genStrings = []string{"", "a", "checkout", "GET", "Ünïcödé ✓", "quote \" and \\ and\nnewline", "x\x00y", strings.Repeat("long ", 30)}

func (g *logGen) str() string {
	if g.chance(0.8) {
		return pick(g, genStrings...)
	}
	return strconv.Itoa(g.r.IntN(1000))
}

func (g *logGen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

func (g *logGen) value(depth int) *common.AnyValue {
	k := g.r.IntN(11)
	if depth > 2 && (k == 5 || k == 6) {
		k = 0
	}
	switch k {
	case 0:
		return &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: g.str()}}
	case 1:
		return &common.AnyValue{Value: &common.AnyValue_BoolValue{BoolValue: g.chance(0.5)}}
	case 2:
		return &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: pick(g, 0, -1, 200, math.MaxInt64, math.MinInt64, g.r.Int64())}}
	case 3:
		return &common.AnyValue{Value: &common.AnyValue_DoubleValue{DoubleValue: pick(g, 0, math.Copysign(0, -1), 0.1, 1e21, 1e-7,
			math.Inf(1), math.Inf(-1), math.NaN(), -math.MaxFloat64, math.SmallestNonzeroFloat64, g.r.NormFloat64()*1e6)}}
	case 4:
		return &common.AnyValue{Value: &common.AnyValue_BytesValue{BytesValue: g.bytes(g.r.IntN(10))}}
	case 5:
		a := &common.ArrayValue{}
		for range g.r.IntN(4) {
			a.Values = append(a.Values, g.value(depth+1))
		}
		return &common.AnyValue{Value: &common.AnyValue_ArrayValue{ArrayValue: a}}
	case 6:
		return &common.AnyValue{Value: &common.AnyValue_KvlistValue{KvlistValue: &common.KeyValueList{Values: g.attrs(depth + 1)}}}
	case 7:
		return &common.AnyValue{} // no value set
	case 8:
		// Kept whole (schemas.ValueRaw): string_value_strindex.
		return &common.AnyValue{Value: &common.AnyValue_StringValueStrindex{StringValueStrindex: int32(g.r.IntN(5))}}
	case 9:
		// Kept whole (schemas.ValueRaw): a value with an unknown field.
		v := &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: g.str()}}
		v.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
		return v
	}
	return nil // a KeyValue without value, a record without body
}

func (g *logGen) attrs(depth int) []*common.KeyValue {
	var kvs []*common.KeyValue
	for range g.r.IntN(6) {
		kvs = append(kvs, &common.KeyValue{Key: pick(g, genKeys...), Value: g.value(depth)})
	}
	return kvs
}

func (g *logGen) record() *logspb.LogRecord {
	lr := &logspb.LogRecord{
		SeverityNumber: logspb.SeverityNumber(pick(g, 0, 0, 1, 4, 5, 9, 12, 13, 17, 21, 24, 25, -1)),
		SeverityText:   pick(g, "", "INFO", "Warn", "ÉRROR", "debug", "İ"),
		Body:           g.value(0),
		Attributes:     g.attrs(0),
		EventName:      pick(g, "", "login"),
		Flags:          uint32(g.r.IntN(2)),
	}
	if g.chance(0.7) {
		lr.TimeUnixNano = uint64(base + g.r.IntN(5)*1e8) // equal times too: the order must be stable
	}
	if g.chance(0.5) {
		lr.ObservedTimeUnixNano = uint64(base + g.r.IntN(1e9))
	}
	if g.chance(0.05) {
		lr.TimeUnixNano = uint64(g.r.IntN(3e9)) // before 1970 + 3s: small seconds
	}
	if g.chance(0.6) {
		lr.TraceId = g.bytes(pick(g, 16, 16, 3))
	}
	if g.chance(0.6) {
		lr.SpanId = g.bytes(pick(g, 8, 8, 1))
	}
	return lr
}

func (g *logGen) request() *collogs.ExportLogsServiceRequest {
	req := &collogs.ExportLogsServiceRequest{}
	for range g.r.IntN(4) {
		rl := &logspb.ResourceLogs{}
		if g.chance(0.9) {
			rl.Resource = &resource.Resource{Attributes: g.attrs(0)}
			// Label attributes more often, with short values to share streams.
			for range g.r.IntN(3) {
				rl.Resource.Attributes = append(rl.Resource.Attributes, str(pick(g, DefaultLabels...), pick(g, "a", "b", "")))
			}
		}
		for range g.r.IntN(3) {
			sl := &logspb.ScopeLogs{}
			if g.chance(0.8) {
				sl.Scope = &common.InstrumentationScope{Name: pick(g, "", "app", "lib/ü"), Version: pick(g, "", "1.2"), Attributes: g.attrs(0)}
			}
			for range g.r.IntN(6) {
				sl.LogRecords = append(sl.LogRecords, g.record())
			}
			rl.ScopeLogs = append(rl.ScopeLogs, sl)
		}
		req.ResourceLogs = append(req.ResourceLogs, rl)
	}
	return req
}

// equivalenceConfigs are the label configurations the equivalence tests run.
var equivalenceConfigs = [][]string{
	nil, // DefaultLabels
	{"host.name"},
	{"service.name", "service_name", SeverityLabel, "k8s.pod.name", "1st"},
	{"nothing.matches"}, // every stream gets the default label
}

func TestArrowPathEqualsOTLPPath(t *testing.T) {
	g := &logGen{r: rand.New(rand.NewPCG(1, 2))}
	for _, labels := range equivalenceConfigs {
		t.Run(fmt.Sprint(labels), func(t *testing.T) {
			s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}, Labels: labels}, "l", sinks.Env{})
			if err != nil {
				t.Fatal(err)
			}
			for iter := range 300 {
				// A push gathers several records, as in Write.
				want, got := newPush(), newPush()
				var reqs []*collogs.ExportLogsServiceRequest
				for range 1 + g.r.IntN(3) {
					req := g.request()
					reqs = append(reqs, req)
					pb, err := proto.Marshal(req)
					if err != nil {
						t.Fatal(err)
					}
					rec := arrowRecord(t, otlpwire.Logs, pb, "")
					rec.Timestamp = time.Unix(0, base+int64(iter)) // for records without time
					otlpPathAdd(t, s, want, rec)
					arrowPathAdd(t, s, got, rec)
				}
				if err := samePush(want, got); err != nil {
					j, _ := json.Marshal(reqs)
					t.Fatalf("iteration %d: %v\nrequests: %s", iter, err, j)
				}
			}
		})
	}
}

// TestArrowPathFollowsRequestOrder: a rule may reorder the tables of a
// batch. The entries must still come in the order of the OTLP request
// ToOTLP makes of it (by resource, then scope, then row).
func TestArrowPathFollowsRequestOrder(t *testing.T) {
	g := &logGen{r: rand.New(rand.NewPCG(3, 4))}
	s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}}, "l", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	for iter := range 100 {
		req := g.request()
		pb, _ := proto.Marshal(req)
		rec := shuffledRecord(t, g.r, pb)
		want, got := newPush(), newPush()
		otlpPathAdd(t, s, want, rec)
		arrowPathAdd(t, s, got, rec)
		if err := samePush(want, got); err != nil {
			t.Fatalf("iteration %d: %v", iter, err)
		}
	}
}

// shuffledRecord is the Arrow record of the OTLP request pb with the rows of
// its scopes and items tables shuffled (scope ids remapped).
func shuffledRecord(t *testing.T, r *rand.Rand, pb []byte) *stream.Record {
	t.Helper()
	bld := schemas.NewBuilder(otlpwire.Logs, nil)
	defer bld.Release()
	if _, err := bld.Append(pb); err != nil {
		t.Fatal(err)
	}
	b := bld.Build()
	defer b.Release()
	scopePerm := r.Perm(int(b.Scopes.NumRows()))
	newScope := make([]uint32, len(scopePerm)) // old scope row → new
	for to, from := range scopePerm {
		newScope[from] = uint32(to)
	}
	scopes := takeRows(t, b.Scopes, scopePerm)
	items := takeRows(t, b.Items, r.Perm(int(b.Items.NumRows())))
	ids := items.Column(schemas.LogScopeID).(*array.Uint32)
	ib := array.NewUint32Builder(memory.DefaultAllocator)
	for i := range ids.Len() {
		ib.Append(newScope[ids.Value(i)])
	}
	cols := slices.Clone(items.Columns())
	cols[schemas.LogScopeID] = ib.NewArray()
	defer cols[schemas.LogScopeID].Release()
	ib.Release()
	remapped := array.NewRecordBatch(items.Schema(), cols, items.NumRows())
	items.Release()
	b.Resources.Retain()
	shuffled := &schemas.Batch{Signal: otlpwire.Logs, Resources: b.Resources, Scopes: scopes, Items: remapped}
	defer shuffled.Release()
	var ipc bytes.Buffer
	if err := schemas.WriteBatch(&ipc, shuffled); err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Value: ipc.Bytes(), Timestamp: time.Unix(0, base), Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte("logs")},
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
	}}
}

// takeRows is rec with the rows rows, in that order.
func takeRows(t *testing.T, rec arrow.RecordBatch, rows []int) arrow.RecordBatch {
	t.Helper()
	cols := make([]arrow.Array, rec.NumCols())
	for c := range cols {
		parts := make([]arrow.Array, len(rows))
		for k, i := range rows {
			parts[k] = array.NewSlice(rec.Column(c), int64(i), int64(i+1))
		}
		var err error
		if len(parts) == 0 {
			cols[c] = array.NewSlice(rec.Column(c), 0, 0)
		} else if cols[c], err = array.Concatenate(parts, memory.DefaultAllocator); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			p.Release()
		}
	}
	out := array.NewRecordBatch(rec.Schema(), cols, int64(len(rows)))
	for _, c := range cols {
		c.Release()
	}
	return out
}

// TestArrowPathCopiesOutOfTheBatch decodes several different records one
// after another on a pool that poisons freed buffers and reuses them, and
// checks the pushes only then: a label, line or metadata string still
// pointing into a released batch would show the poison or a later
// record's bytes.
func TestArrowPathCopiesOutOfTheBatch(t *testing.T) {
	s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}, Labels: []string{"service.name", "k8s.pod.name", SeverityLabel}}, "l", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pool := arrowpool.NewPoisoned()
	s.arrow.mem = pool
	var wants, gots []*push
	for k := range 6 {
		// Large enough that the string columns come from the pool (at
		// least arrowpool.MinPooled bytes).
		req := &collogs.ExportLogsServiceRequest{}
		for r := range 3 {
			res := &resource.Resource{Attributes: []*common.KeyValue{
				str("service.name", fmt.Sprintf("svc-%d-%d-%s", k, r, strings.Repeat("s", 40))),
				str("k8s.pod.name", fmt.Sprintf("pod-%d-%d", k, r)), str("host.name", fmt.Sprintf("host-%d-%d", k, r)),
			}}
			sl := &logspb.ScopeLogs{Scope: &common.InstrumentationScope{Name: fmt.Sprintf("scope-%d", k), Version: fmt.Sprint(k)}}
			for i := range 100 {
				sl.LogRecords = append(sl.LogRecords, &logspb.LogRecord{
					TimeUnixNano: uint64(base + i), SeverityText: pick(&logGen{r: rand.New(rand.NewPCG(uint64(k), uint64(i)))}, "INFO", "Warn", "debug"),
					Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: fmt.Sprintf("record %d.%d.%d %s", k, r, i, strings.Repeat("line ", 20))}},
					Attributes: []*common.KeyValue{
						str("user", fmt.Sprintf("user-%d-%d", k, i)),
						str(fmt.Sprintf("key.%d", k), fmt.Sprintf("value-%d-%d-%s", k, i, strings.Repeat("v", 30))),
						{Key: "count", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: int64(k*1000 + i)}}},
					},
					TraceId: bytes.Repeat([]byte{byte(k), byte(i)}, 8), SpanId: bytes.Repeat([]byte{byte(r), byte(i)}, 4),
				})
			}
			req.ResourceLogs = append(req.ResourceLogs, &logspb.ResourceLogs{Resource: res, ScopeLogs: []*logspb.ScopeLogs{sl}})
		}
		pb, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		rec := arrowRecord(t, otlpwire.Logs, pb, "")
		want, got := newPush(), newPush()
		otlpPathAdd(t, s, want, rec)
		arrowPathAdd(t, s, got, rec)
		wants, gots = append(wants, want), append(gots, got)
	}
	if pool.Live() != 0 {
		t.Errorf("%d bytes of the pool not released", pool.Live())
	}
	for k := range wants {
		if err := samePush(wants[k], gots[k]); err != nil {
			t.Errorf("record %d, checked after the later ones were decoded: %v", k, err)
		}
	}
}

// TestArrowPathRefusesWhatTheOTLPPathRefused: values the OTLP path's
// proto.Unmarshal refused (invalid UTF-8, a nested value that does not
// parse) make the record undecodable here too, and leave nothing staged.
func TestArrowPathRefusesWhatTheOTLPPathRefused(t *testing.T) {
	s, err := New(Config{Config: httpsink.Config{URL: "http://127.0.0.1:1"}}, "l", sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := proto.Marshal(request())
	for name, edit := range map[string]func(b *schemas.Batch) *schemas.Batch{
		"invalid UTF-8 in a body": func(b *schemas.Batch) *schemas.Batch {
			return withBody(t, b, schemas.ValueString, "bad \xff", nil)
		},
		"an array that does not parse": func(b *schemas.Batch) *schemas.Batch {
			return withBody(t, b, schemas.ValueArray, "", []byte{0x0a, 0x05, 0x01})
		},
	} {
		t.Run(name, func(t *testing.T) {
			bld := schemas.NewBuilder(otlpwire.Logs, nil)
			defer bld.Release()
			if _, err := bld.Append(good); err != nil {
				t.Fatal(err)
			}
			b := edit(bld.Build())
			defer b.Release()
			var ipc bytes.Buffer
			if err := schemas.WriteBatch(&ipc, b); err != nil {
				t.Fatal(err)
			}
			rec := &stream.Record{Value: ipc.Bytes(), Headers: []stream.Header{
				{Key: stream.HeaderSignal, Value: []byte("logs")},
				{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
			}}
			// The reference refuses it...
			pb, _, err := schemas.BatchToOTLP(rec.Value, nil, nil)
			if err == nil {
				err = proto.Unmarshal(pb, &collogs.ExportLogsServiceRequest{})
			}
			if err == nil {
				t.Fatal("the OTLP path accepts the record: the test is wrong")
			}
			// ...and so does the Arrow path.
			if _, err := s.decode(rec); err == nil {
				t.Fatal("decoded")
			}
			if len(s.arrow.staged) != 0 {
				t.Errorf("%d entries left staged", len(s.arrow.staged))
			}
		})
	}
}

// withBody is b with the body of its last log record replaced.
func withBody(t *testing.T, b *schemas.Batch, typ uint8, s string, by []byte) *schemas.Batch {
	t.Helper()
	body := b.Items.Column(schemas.LogBody).(*array.Struct)
	sb := array.NewStructBuilder(memory.DefaultAllocator, schemas.AnyValueType)
	defer sb.Release()
	n := body.Len()
	for i := range n {
		sb.Append(true)
		ty, st := body.Field(schemas.AnyType).(*array.Uint8).Value(i), body.Field(schemas.AnyStr).(*array.String).Value(i)
		bs := body.Field(schemas.AnyBytes).(*array.Binary).Value(i)
		if i == n-1 {
			ty, st, bs = typ, s, by
		}
		sb.FieldBuilder(schemas.AnyType).(*array.Uint8Builder).Append(ty)
		sb.FieldBuilder(schemas.AnyStr).(*array.StringBuilder).Append(st)
		sb.FieldBuilder(schemas.AnyInt).(*array.Int64Builder).Append(body.Field(schemas.AnyInt).(*array.Int64).Value(i))
		sb.FieldBuilder(schemas.AnyDouble).(*array.Float64Builder).Append(body.Field(schemas.AnyDouble).(*array.Float64).Value(i))
		sb.FieldBuilder(schemas.AnyBool).(*array.BooleanBuilder).Append(body.Field(schemas.AnyBool).(*array.Boolean).Value(i))
		sb.FieldBuilder(schemas.AnyBytes).(*array.BinaryBuilder).Append(bs)
	}
	cols := slices.Clone(b.Items.Columns())
	cols[schemas.LogBody] = sb.NewArray()
	defer cols[schemas.LogBody].Release()
	items := array.NewRecordBatch(b.Items.Schema(), cols, b.Items.NumRows())
	b.Items.Release()
	b.Items = items
	return b
}

func TestSortIsStableByTime(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for iter := range 500 {
		p := newPush()
		st := p.stream(nil)
		// Runs in time order (as from several resources), equal times,
		// and now and then a random order.
		for range r.IntN(5) {
			ts := int64(r.IntN(20))
			for range r.IntN(30) {
				if r.IntN(10) == 0 {
					ts = int64(r.IntN(20))
				}
				ts += int64(r.IntN(3))
				p.append(st, entry{ts: ts, line: strconv.Itoa(len(st.entries))})
			}
		}
		want := slices.Clone(st.entries)
		slices.SortStableFunc(want, func(a, b entry) int { return cmp.Compare(a.ts, b.ts) })
		p.sort()
		if !slices.EqualFunc(want, st.entries, func(a, b entry) bool { return a.ts == b.ts && a.line == b.line }) {
			t.Fatalf("iteration %d: sorted %v, want %v", iter, st.entries, want)
		}
	}
}
