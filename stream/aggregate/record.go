package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/sluice-dev/sluice/schemas"
)

// ErrRecord is returned for a record or snapshot that is not one, or is
// truncated or corrupt.
var ErrRecord = errors.New("aggregate: malformed record")

const (
	recordMagic = "SLAGG"
	// recordVersion 4 compresses the hashes and the batch as one S2
	// block; 3 had them in one zstd frame, 2 had the hashes as they are,
	// then the batch in its own zstd frame, and 1 also carried the output
	// hashes: all still read.
	recordVersion = 4
	// maxBody bounds the uncompressed body of a record read.
	maxBody = 256 << 20
)

var (
	// zdec reads the records of version 3.
	zdec = sync.OnceValue(func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxBody))
		return d
	})
	// bodies holds the uncompressed bodies of records being written or
	// read (everything read is copied out of them).
	bodies sync.Pool
)

// maxPooledBody is the largest body kept in bodies.
const maxPooledBody = 16 << 20

func getBody() *[]byte {
	if p, ok := bodies.Get().(*[]byte); ok {
		return p
	}
	return new([]byte)
}

func putBody(p *[]byte) {
	if cap(*p) <= maxPooledBody {
		*p = (*p)[:0]
		bodies.Put(p)
	}
}

func appendSpec(dst []byte, s Spec) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s.Rule)))
	dst = append(dst, s.Rule...)
	dst = binary.AppendVarint(dst, int64(s.Interval))
	dst = binary.AppendVarint(dst, int64(s.Grace))
	dst = append(dst, byte(s.Gauge), byte(s.Summary))
	return binary.AppendUvarint(dst, uint64(s.Limit))
}

// AppendRecord appends the value of a record of the aggregation topic to
// dst: magic "SLAGG" and a version byte (4), then one S2 block holding
// the Spec, uvarint n, the n input hashes (8 bytes little endian each) and
// the batch as schemas.AppendBatchRaw writes it. The output hashes do not
// travel: the reader computes them from the batch (Hasher.Series), 8
// bytes a point fewer on the bus. One block compresses the hashes too
// (they repeat from one step of a series to the next). S2, not zstd: the
// column codec leaves little but repeats to find, which S2 finds as well
// as zstd's fastest level (1% more bytes on the realistic corpus) in a
// sixth of its time, and reads back in less than half (stream/worker
// BenchmarkAggRecordCodec). The bus sends the value as it is (its
// content type says it is compressed: stream.CompressedContent).
func AppendRecord(dst []byte, b *schemas.Batch, in []uint64, spec Spec) ([]byte, error) {
	if n := b.Len(); len(in) != n {
		return dst, fmt.Errorf("aggregate: %d points but %d input hashes", n, len(in))
	}
	if err := spec.Validate(); err != nil {
		return dst, err
	}
	p := getBody()
	defer putBody(p)
	body := appendSpec((*p)[:0], spec)
	body = binary.AppendUvarint(body, uint64(len(in)))
	body = slices.Grow(body, 8*len(in))
	for _, h := range in {
		body = binary.LittleEndian.AppendUint64(body, h)
	}
	body, err := schemas.AppendBatchRaw(body, b)
	*p = body
	if err != nil {
		return dst, fmt.Errorf("aggregate: %w", err)
	}
	// The block goes to a second pooled buffer, then to dst at its size:
	// dst is the record's value, kept until the bus has it.
	zp := getBody()
	defer putBody(zp)
	if n := s2.MaxEncodedLen(len(body)); n < 0 {
		return dst, fmt.Errorf("aggregate: a record of %d bytes is too large", len(body))
	} else if cap(*zp) < n {
		*zp = make([]byte, n)
	}
	*zp = s2.Encode((*zp)[:cap(*zp)], body)
	dst = slices.Grow(dst, len(recordMagic)+1+len(*zp))
	dst = append(dst, recordMagic...)
	dst = append(dst, recordVersion)
	return append(dst, *zp...), nil
}

// reader is a bounds-checked decoder; the first error sticks.
type reader struct {
	p   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrRecord
	}
	r.p = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.p)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.p) < 1 {
		r.fail()
		return 0
	}
	b := r.p[0]
	r.p = r.p[1:]
	return b
}

func (r *reader) u64() uint64 {
	if len(r.p) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.p)
	r.p = r.p[8:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if uint64(len(r.p)) < n {
		r.fail()
		return nil
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

// count reads a length of items of at least size bytes each that must fit
// in the rest of the input (so a corrupt length cannot allocate much).
func (r *reader) count(size int) int {
	n := r.uvarint()
	if n > uint64(len(r.p))/uint64(max(size, 1)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) str() string { return string(r.bytes(uint64(r.count(1)))) }

func (r *reader) spec() Spec {
	var s Spec
	s.Rule = r.str()
	s.Interval = time.Duration(r.varint())
	s.Grace = time.Duration(r.varint())
	s.Gauge = GaugeFunc(r.byte())
	s.Summary = SummaryMode(r.byte())
	l := r.uvarint()
	if l > 1<<31 {
		r.fail()
	}
	s.Limit = int(l)
	return s
}

// ReadRecord decodes a value written by AppendRecord, or by its earlier
// versions (2; 1, whose output hashes it skips). The batch is the caller's
// to release.
func ReadRecord(data []byte, mem memory.Allocator) (b *schemas.Batch, in []uint64, spec Spec, err error) {
	return readRecord(data, mem, false)
}

// ReadRecordSets is ReadRecord for the Aggregator (AddFrom, Hasher): the
// points' attributes stay as the record stored them, a table of sets when
// they repeat (schemas.ReadBatchSets), rather than copied out to every
// point; the Aggregator reads a point's attributes only for a series it
// has not met.
func ReadRecordSets(data []byte, mem memory.Allocator) (b *schemas.Batch, in []uint64, spec Spec, err error) {
	return readRecord(data, mem, true)
}

func readRecord(data []byte, mem memory.Allocator, sets bool) (b *schemas.Batch, in []uint64, spec Spec, err error) {
	if len(data) < len(recordMagic)+1 || string(data[:len(recordMagic)]) != recordMagic {
		return nil, nil, Spec{}, fmt.Errorf("%w: no SLAGG magic", ErrRecord)
	}
	v := data[len(recordMagic)]
	body := data[len(recordMagic)+1:]
	switch v {
	case 1, 2:
	case 3:
		p := getBody()
		defer putBody(p)
		*p, err = zdec().DecodeAll(body, (*p)[:0])
		if err != nil {
			return nil, nil, Spec{}, fmt.Errorf("%w: %v", ErrRecord, err)
		}
		body = *p
	case recordVersion:
		n, err := s2.DecodedLen(body)
		if err != nil {
			return nil, nil, Spec{}, fmt.Errorf("%w: %v", ErrRecord, err)
		}
		if n > maxBody {
			return nil, nil, Spec{}, fmt.Errorf("%w: a body of %d bytes (at most %d)", ErrRecord, n, maxBody)
		}
		p := getBody()
		defer putBody(p)
		if cap(*p) < n {
			*p = make([]byte, n)
		}
		if *p, err = s2.Decode((*p)[:n], body); err != nil {
			return nil, nil, Spec{}, fmt.Errorf("%w: %v", ErrRecord, err)
		}
		body = *p
	default:
		return nil, nil, Spec{}, fmt.Errorf("%w: version %d", ErrRecord, v)
	}
	r := reader{p: body}
	spec = r.spec()
	hashes := 1
	if v == 1 {
		hashes = 2
	}
	n := r.count(8 * hashes)
	in = make([]uint64, n)
	for i := range in {
		in[i] = r.u64()
	}
	if hashes == 2 {
		r.bytes(uint64(8 * n))
	}
	if r.err != nil {
		return nil, nil, Spec{}, r.err
	}
	if err := spec.Validate(); err != nil {
		return nil, nil, Spec{}, fmt.Errorf("%w: %v", ErrRecord, err)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	if sets {
		b, err = schemas.ReadBatchSets(r.p, mem)
	} else {
		b, err = schemas.ReadBatch(r.p, mem)
	}
	if err != nil {
		return nil, nil, Spec{}, fmt.Errorf("aggregate: %w", err)
	}
	if b.Len() != n || b.Metrics == nil {
		b.Release()
		return nil, nil, Spec{}, fmt.Errorf("%w: %d hashes for a batch of %d metric points", ErrRecord, n, b.Len())
	}
	return b, in, spec, nil
}

// OutputHashes appends to dst the output series hash of every point of b,
// a batch of tenant read from a record: what the worker routed it by.
func (h *Hasher) OutputHashes(dst []uint64, tenant string, b *schemas.Batch) ([]uint64, error) {
	if err := h.Reset(b); err != nil {
		return dst, err
	}
	for i := range b.Len() {
		dst = append(dst, h.Series(tenant, i))
	}
	return dst, nil
}
