package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/sluice-dev/sluice/schemas"
)

// ErrRecord is returned for a record or snapshot that is not one, or is
// truncated or corrupt.
var ErrRecord = errors.New("aggregate: malformed record")

const (
	recordMagic   = "SLAGG"
	recordVersion = 2 // 1 also carried the output hashes; still read
)

func appendSpec(dst []byte, s Spec) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s.Rule)))
	dst = append(dst, s.Rule...)
	dst = binary.AppendVarint(dst, int64(s.Interval))
	dst = binary.AppendVarint(dst, int64(s.Grace))
	dst = append(dst, byte(s.Gauge), byte(s.Summary))
	return binary.AppendUvarint(dst, uint64(s.Limit))
}

// AppendRecord appends the value of a record of the aggregation topic to
// dst: magic "SLAGG" and a version byte (2), the Spec, uvarint n, the n
// input hashes (8 bytes little endian each), then the batch as
// schemas.WriteBatch writes it. The output hashes do not travel: the reader
// computes them from the batch (Hasher.Series), 8 bytes a point fewer on
// the bus.
func AppendRecord(dst []byte, b *schemas.Batch, in []uint64, spec Spec) ([]byte, error) {
	if n := b.Len(); len(in) != n {
		return dst, fmt.Errorf("aggregate: %d points but %d input hashes", n, len(in))
	}
	if err := spec.Validate(); err != nil {
		return dst, err
	}
	// Room for the hashes and the batch (a merged point's columns take
	// a few bytes once compressed), so neither regrows the record.
	dst = slices.Grow(dst, 256+len(spec.Rule)+16*len(in))
	dst = append(dst, recordMagic...)
	dst = append(dst, recordVersion)
	dst = appendSpec(dst, spec)
	dst = binary.AppendUvarint(dst, uint64(len(in)))
	for _, h := range in {
		dst = binary.LittleEndian.AppendUint64(dst, h)
	}
	w := bytes.NewBuffer(dst)
	if err := schemas.WriteBatch(w, b); err != nil {
		return dst, fmt.Errorf("aggregate: %w", err)
	}
	return w.Bytes(), nil
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

// ReadRecord decodes a value written by AppendRecord (or by version 1,
// whose output hashes it skips). The batch is the caller's to release.
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
	if v != 1 && v != recordVersion {
		return nil, nil, Spec{}, fmt.Errorf("%w: version %d", ErrRecord, v)
	}
	r := reader{p: data[len(recordMagic)+1:]}
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
