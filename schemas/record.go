package schemas

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/zstd"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// recordMagic starts every record envelope, followed by Version, the signal and
// (since format 2) the format byte.
const recordMagic = "SLUICEA"

// recordFormat is the wire format written after the envelope: 3 is the column
// codec of wirecodec.go in one zstd frame (README.md, "Wire format"); 2 is
// the same without templated text (wiretext.go) and is still read. Format 1,
// per-table Arrow IPC streams with zstd buffer compression, had no format
// byte (the next byte was a uvarint length, >= 0x80 in practice) and is still
// read.
const recordFormat = 3

// recordFormatRaw is format 3 without the zstd frame (AppendBatchRaw).
const recordFormatRaw = 4

var (
	zenc = sync.OnceValue(func() *zstd.Encoder {
		// EncodeAll runs on up to GOMAXPROCS goroutines at once (with 1,
		// concurrent WriteBatch calls queued on one encoder).
		// The fastest level: the column codec leaves zstd little to find
		// (its default level is 1.5% smaller on log bodies, larger on
		// metrics and spans, and 1.7x slower). A window of 2 MiB, not
		// the default 8: each encoder that has run keeps a window's worth
		// of history for good, and a body is mostly smaller (16,000
		// points of the realistic corpus metrics-k8s, a debug_id unique
		// per series, take 0.65 MiB); the window only bounds how far back
		// a repeat is found.
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(2<<20))
		return e
	})
	zdec = sync.OnceValue(func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))
		return d
	})
	encoders = sync.Pool{New: func() any { return &encoder{} }}
	// decoders keep their scratch (decoder.u64, decoder.txt) across calls.
	decoders sync.Pool
	// rawBufs holds the decompressed payloads of ReadBatch (every value is
	// copied out of it).
	rawBufs sync.Pool
)

// maxPooled is the largest buffer kept in a pool.
const maxPooled = 64 << 20

// WriteBatch writes b as one processed-topic value: a small envelope (magic,
// schema version, signal, format) and one zstd frame holding the tables,
// column by column, transformed for size (see README.md, "Wire format").
// ReadBatch gives back a Batch of the in-memory layout.
//
// A batch whose items' attributes are a table of distinct sets
// (Batch.ItemAttrSetTable, as the rules engine makes them with
// columnar.Options.AttrSetTable) is written as the batch with those
// attributes in every row would be, byte for byte, when the table is
// numbered in order of first appearance.
func WriteBatch(w io.Writer, b *Batch) error {
	e := encoders.Get().(*encoder)
	defer e.done()
	if err := e.encode(b); err != nil {
		return err
	}
	z := e.z[:0]
	if cap(z) == 0 {
		z = make([]byte, 0, 64<<10)
	}
	z = append(z, recordMagic...)
	z = append(z, Version...)
	z = append(z, byte(b.Signal), recordFormat)
	z = zenc().EncodeAll(e.out, z)
	_, err := w.Write(z)
	e.z = z
	return err
}

// AppendBatchRaw appends b to dst as WriteBatch writes it but for the zstd
// frame: format 4, the column codec's bytes as they are, for a value that
// compresses them with what it carries beside them (the aggregation
// record, whose input hashes and batch make one frame). ReadBatch reads it.
func AppendBatchRaw(dst []byte, b *Batch) ([]byte, error) {
	e := encoders.Get().(*encoder)
	defer e.done()
	if err := e.encode(b); err != nil {
		return dst, err
	}
	dst = append(dst, recordMagic...)
	dst = append(dst, Version...)
	dst = append(dst, byte(b.Signal), recordFormatRaw)
	return append(dst, e.out...), nil
}

// encode writes the tables of b to e.out.
func (e *encoder) encode(b *Batch) error {
	e.mem = arrowpool.Default // for temporaries, released before WriteBatch returns
	e.out = e.out[:0]
	want := b.schemas()
	for k, rec := range b.tables() {
		if rec == nil || !rec.Schema().Equal(want[k]) {
			return fmt.Errorf("%w: write batch: table %d is not of the %s layout", ErrSchema, k, b.Signal)
		}
		e.uvarint(uint64(rec.NumRows()))
		for f, c := range rec.Columns() {
			var err error
			switch {
			case k != len(want)-1 || want[k].Field(f).Name != "attributes":
				err = e.col(c)
			case b.ItemAttrSetTable != nil:
				err = e.setTable(b.ItemAttrSetTable, b.ItemAttrSets)
			default:
				e.known = b.ItemAttrSets
				err = e.col(c)
			}
			e.known = nil
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// done gives e back to the pool, without buffers grown huge.
func (e *encoder) done() {
	if cap(e.out) > maxPooled {
		e.out = nil
	}
	if cap(e.z) > maxPooled {
		e.z = nil
	}
	encoders.Put(e)
}

func (b *Batch) schemas() []*arrow.Schema {
	if b.Signal == otlpwire.Metrics {
		return []*arrow.Schema{ResourcesSchema, ScopesSchema, MetricsSchema, DataPointsSchema}
	}
	return []*arrow.Schema{ResourcesSchema, ScopesSchema, ItemsSchema(b.Signal)}
}

func (b *Batch) tables() []arrow.RecordBatch {
	if b.Signal == otlpwire.Metrics {
		return []arrow.RecordBatch{b.Resources, b.Scopes, b.Metrics, b.Items}
	}
	return []arrow.RecordBatch{b.Resources, b.Scopes, b.Items}
}

// BatchToOTLP appends to dst the OTLP protobuf Export*ServiceRequest of a
// value written by WriteBatch (ReadBatch on mem, then ToOTLP), and returns it
// with the number of items.
func BatchToOTLP(value, dst []byte, mem memory.Allocator) ([]byte, int, error) {
	b, err := ReadBatch(value, mem)
	if err != nil {
		return dst, 0, err
	}
	defer b.Release()
	dst, err = ToOTLP(b, dst)
	return dst, b.Len(), err
}

// ReadBatch decodes a value written by WriteBatch. The caller owns the batch and
// must Release it.
func ReadBatch(data []byte, mem memory.Allocator) (*Batch, error) {
	return readBatch(data, mem, false)
}

// ReadBatchSets is ReadBatch for a reader that reads the items' attributes
// by set: when the record stored them as a table of distinct sets, the
// table is not expanded into a row per item but left in
// Batch.ItemAttrSetTable, each item's row in it in Batch.ItemAttrSets, and
// the items' attributes column is null in every row. Otherwise
// the batch is what ReadBatch returns.
func ReadBatchSets(data []byte, mem memory.Allocator) (*Batch, error) {
	return readBatch(data, mem, true)
}

func readBatch(data []byte, mem memory.Allocator, keepSets bool) (*Batch, error) {
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	h := len(recordMagic) + len(Version)
	if len(data) < h+1 || string(data[:len(recordMagic)]) != recordMagic {
		return nil, fmt.Errorf("%w: not a sluice batch record", ErrSchema)
	}
	if v := string(data[len(recordMagic):h]); v != Version {
		return nil, fmt.Errorf("%w: schema version %q, want %q", ErrSchema, v, Version)
	}
	b := &Batch{Signal: otlpwire.Signal(data[h])}
	if b.Signal > otlpwire.Traces {
		return nil, fmt.Errorf("%w: signal %d", ErrSchema, data[h])
	}
	data = data[h+1:]
	if len(data) > 0 && (data[0] == 2 || data[0] == recordFormat) {
		return readV2(b, data[1:], mem, data[0], keepSets)
	}
	if len(data) > 0 && data[0] == recordFormatRaw {
		return decodeTables(b, data[1:], mem, recordFormat, keepSets)
	}
	if len(data) > 0 && data[0] < 0x80 {
		return nil, fmt.Errorf("%w: record format %d", ErrSchema, data[0])
	}
	want := []*arrow.Schema{ResourcesSchema, ScopesSchema, ItemsSchema(b.Signal)}
	dst := []*arrow.RecordBatch{&b.Resources, &b.Scopes, &b.Items}
	if b.Signal == otlpwire.Metrics {
		want = []*arrow.Schema{ResourcesSchema, ScopesSchema, MetricsSchema, DataPointsSchema}
		dst = []*arrow.RecordBatch{&b.Resources, &b.Scopes, &b.Metrics, &b.Items}
	}
	for k := range want {
		n, m := binary.Uvarint(data)
		if m <= 0 || n > uint64(len(data)-m) {
			b.Release()
			return nil, fmt.Errorf("%w: truncated batch record", ErrSchema)
		}
		rec, err := readOne(data[m:m+int(n)], want[k], mem)
		if err != nil {
			b.Release()
			return nil, err
		}
		*dst[k] = rec
		data = data[m+int(n):]
	}
	return b, nil
}

func readOne(data []byte, want *arrow.Schema, mem memory.Allocator) (arrow.RecordBatch, error) {
	r, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		return nil, fmt.Errorf("%w: read ipc: %v", ErrSchema, err)
	}
	defer r.Release()
	if !r.Schema().Equal(want) {
		return nil, fmt.Errorf("%w: ipc table has schema %s", ErrSchema, r.Schema())
	}
	if !r.Next() {
		if r.Err() != nil {
			return nil, fmt.Errorf("%w: read ipc: %v", ErrSchema, r.Err())
		}
		return nil, fmt.Errorf("%w: ipc table has no record", ErrSchema)
	}
	rec := r.RecordBatch()
	rec.Retain()
	return rec, nil
}

// readV2 decodes formats 2 and 3: one zstd frame of tables.
func readV2(b *Batch, data []byte, mem memory.Allocator, format byte, keepSets bool) (*Batch, error) {
	var raw []byte
	if p, ok := rawBufs.Get().(*[]byte); ok {
		raw = (*p)[:0]
	}
	raw, err := zdec().DecodeAll(data, raw)
	defer func() {
		if cap(raw) <= maxPooled {
			rawBufs.Put(&raw)
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("%w: ipc: %v", ErrSchema, err)
	}
	return decodeTables(b, raw, mem, format, keepSets)
}

// decodeTables decodes the tables of a format 2 or 3 payload into b.
func decodeTables(b *Batch, raw []byte, mem memory.Allocator, format byte, keepSets bool) (*Batch, error) {
	d, _ := decoders.Get().(*decoder)
	if d == nil {
		d = &decoder{}
	}
	*d = decoder{b: raw, mem: mem, budget: maxDecodeElems, format: format, u64: d.u64, txt: d.txt}
	defer func() {
		d.z.Release()
		d.b, d.mem, d.z = nil, nil, nil
		if 8*cap(d.u64) > maxPooled {
			d.u64 = nil
		}
		decoders.Put(d)
	}()
	want := b.schemas()
	recs := make([]arrow.RecordBatch, 0, len(want))
	for t, sc := range want {
		n := d.count()
		d.z = NewZeros(n)
		cols := make([]arrow.Array, 0, sc.NumFields())
		for _, f := range sc.Fields() {
			if t == len(want)-1 && f.Name == "attributes" {
				d.sets = &b.ItemAttrSets
				if keepSets {
					d.table = &b.ItemAttrSetTable
				}
			}
			c := d.col(f.Type, n)
			d.sets, d.table = nil, nil
			if c == nil {
				break
			}
			cols = append(cols, array.MakeFromData(c))
			c.Release()
		}
		if d.err == nil {
			recs = append(recs, array.NewRecordBatch(sc, cols, int64(n)))
		}
		for _, c := range cols {
			c.Release()
		}
		d.z.Release()
		if d.err != nil {
			break
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		for _, r := range recs {
			r.Release()
		}
		return nil, d.err
	}
	b.Resources, b.Scopes = recs[0], recs[1]
	if b.Signal == otlpwire.Metrics {
		b.Metrics, b.Items = recs[2], recs[3]
	} else {
		b.Items = recs[2]
	}
	return b, nil
}
