package aggregate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

const (
	snapMagic   = "SLAGS"
	snapVersion = 3       // 1: without the folded series by metric; 2: a distribution for every interval; still read
	maxSnapshot = 8 << 30 // decompressed bytes
	// s2Frame starts a snapshot compressed as one S2 block; snapshots
	// without it are zstd frames (those of earlier versions).
	s2Frame = "SLS2"
)

type writer struct{ b []byte }

func (w *writer) u(v uint64)   { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) i(v int64)    { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) f(v float64)  { w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v)) }
func (w *writer) x(v uint64)   { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) s(v string)   { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) byte(v uint8) { w.b = append(w.b, v) }
func (w *writer) bool(v bool) {
	if v {
		w.byte(1)
	} else {
		w.byte(0)
	}
}

func (w *writer) u32s(v []uint32) {
	w.u(uint64(len(v)))
	for _, x := range v {
		w.u(uint64(x))
	}
}

func (w *writer) u64s(v []uint64) {
	w.u(uint64(len(v)))
	for _, x := range v {
		w.u(x)
	}
}

func (w *writer) dist(d *dist) {
	w.u(d.count)
	w.f(d.sum)
	w.f(d.min)
	w.f(d.max)
	w.byte(d.flags)
	w.u64s(d.buckets)
	w.i(int64(d.scale))
	w.u(d.zc)
	w.f(d.zt)
	w.i(int64(d.pos.off))
	w.u64s(d.pos.counts)
	w.i(int64(d.neg.off))
	w.u64s(d.neg.counts)
}

// Snapshot writes the whole state of a: series, their labels and totals,
// inputs, open intervals, the watermark and the counters, in a compact
// binary encoding compressed as one S2 block (three times faster to write
// than zstd's fastest level, at twice the size: BenchmarkSnapshot).
// Restore reads it back, and the zstd frames of earlier versions too.
func (a *Aggregator) Snapshot(out io.Writer) error {
	w := &writer{b: snapBufs.get()}
	defer func() { snapBufs.put(w.b) }()
	w.b = append(w.b, snapMagic...)
	w.byte(snapVersion)
	w.i(a.wm)
	w.i(a.wmWall)
	w.i(a.lastSweep)
	w.u(uint64(len(a.tenants)))
	for _, t := range a.tenants {
		w.s(t)
	}
	w.u(uint64(len(a.rules)))
	for i, r := range a.rules {
		w.s(r)
		c := &a.stats[i]
		for _, v := range []uint64{c.in, c.merged, c.late, c.ooo, c.folded} {
			w.u(v)
		}
		for _, v := range c.dropped {
			w.u(v)
		}
		w.u(uint64(len(c.foldedBy)))
		for _, name := range slices.Sorted(maps.Keys(c.foldedBy)) {
			w.s(name)
			w.u(*c.foldedBy[name])
		}
	}
	w.u(uint64(len(a.specs)))
	for _, s := range a.specs {
		w.b = appendSpec(w.b, s.Spec)
	}
	w.u(uint64(len(a.hdrs)))
	for i := range a.hdrs {
		h := &a.hdrs[i]
		w.s(h.blob)
		for _, c := range h.cut {
			w.u(uint64(c))
		}
		w.byte(h.kind)
		w.i(int64(h.temp))
		w.bool(h.mono)
		w.u(uint64(h.refs))
	}
	w.u32s(a.hdrFree)
	w.u(uint64(len(a.series)))
	for i := range a.series {
		s := &a.series[i]
		w.byte(s.flags)
		if s.flags&sAlive == 0 {
			continue
		}
		w.x(s.out)
		w.u(s.start)
		w.i(s.seen)
		w.x(s.tot)
		for _, v := range []uint32{s.tenant, uint32(s.spec), s.hdr, s.limit} {
			w.u(uint64(v))
		}
		h := &a.hdrs[s.hdr] // the series' type is its header's; written for version 1
		w.byte(h.kind)
		w.bool(h.mono)
		w.i(int64(h.temp))
		w.s(s.attrs)
		w.u(uint64(len(s.open)))
		for _, iv := range s.open {
			w.i(iv.k)
			w.x(iv.v)
			w.u(uint64(iv.points()))
			w.u(uint64(iv.x))
			w.bool(iv.isDouble())
		}
		w.bool(s.h != nil)
		if s.h != nil {
			w.u(uint64(len(s.h.bounds)))
			for _, b := range s.h.bounds {
				w.f(b)
			}
			w.dist(&s.h.tot)
		}
	}
	w.u32s(a.seriesFree)
	w.u(uint64(len(a.seriesIdx)))
	for k, v := range a.seriesIdx {
		w.u(uint64(k.tenant))
		w.x(k.out.u64())
		w.u(uint64(v))
	}
	w.u(uint64(len(a.inputs)))
	for i := range a.inputs {
		p := &a.inputs[i]
		w.byte(p.flags)
		if p.flags&iAlive == 0 {
			continue
		}
		w.x(p.in)
		w.u(p.start)
		w.u(p.time)
		w.x(p.val)
		w.i(p.seen)
		w.u(uint64(p.series))
		w.i(int64(p.lastPos))
		w.bool(p.d != 0)
		if p.d != 0 {
			w.dist(&a.dists[p.d])
		}
	}
	w.u32s(a.inputFree)
	w.u(uint64(len(a.inputIdx)))
	for k, v := range a.inputIdx {
		w.u(uint64(k.tenant))
		w.x(k.in.u64())
		w.x(k.out.u64())
		w.u(uint64(v))
	}
	w.u(uint64(len(a.limits)))
	for _, l := range a.limits {
		w.u(uint64(l.n))
		w.u(uint64(l.overflow))
	}
	w.u(uint64(len(a.limitIdx)))
	for k, v := range a.limitIdx {
		w.u(uint64(k.tenant))
		w.x(k.metric)
		w.u(uint64(v))
	}
	w.u(uint64(len(a.ext)))
	for i := range a.ext {
		e := &a.ext[i]
		w.u(uint64(e.n))
		for p := range int(e.n) {
			g := a.gentAt(e, p)
			w.u(uint64(g.in))
			w.bool(g.isInt)
			w.i(g.t)
			w.x(g.v)
			w.x(g.hash)
		}
		w.bool(e.d != 0)
		if e.d != 0 {
			w.dist(&a.dists[e.d])
		}
	}
	w.u32s(a.extFree)

	n := s2.MaxEncodedLen(len(w.b))
	if n < 0 {
		return fmt.Errorf("aggregate: snapshot of %d bytes is too large", len(w.b))
	}
	z := snapBufs.get()
	if cap(z) < len(s2Frame)+n {
		z = make([]byte, 0, len(s2Frame)+n)
	}
	z = append(z, s2Frame...)
	enc := s2.Encode(z[len(s2Frame):cap(z)], w.b) // in place: dst is large enough
	z = z[:len(s2Frame)+len(enc)]
	_, err := out.Write(z)
	snapBufs.put(z)
	if err != nil {
		return fmt.Errorf("aggregate: snapshot: %w", err)
	}
	return nil
}

// snapBufs keeps the buffers snapshots are written and compressed in, shared
// by the Aggregators of a process, which checkpoint one after another. Not a
// sync.Pool: that empties at every garbage collection, and a snapshot is as
// large as the state (megabytes per partition) and taken every few seconds,
// so a pooled buffer was usually gone by the next checkpoint and grown anew
// by appending (19% of the worker's CPU under live merged load, and
// garbage that made the collector run more often).
var snapBufs bufList

// bufList holds up to maxSnapBufs free buffers, the largest ones.
type bufList struct {
	mu   sync.Mutex
	free [][]byte
}

const maxSnapBufs = 2 // the encoding and its compressed copy

// get returns an empty buffer, the largest one free.
func (l *bufList) get() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) == 0 {
		return nil
	}
	k := 0
	for i, b := range l.free {
		if cap(b) > cap(l.free[k]) {
			k = i
		}
	}
	b := l.free[k]
	l.free = slices.Delete(l.free, k, k+1)
	return b[:0]
}

// put gives b back, dropping the smallest buffer when more than
// maxSnapBufs would be free.
func (l *bufList) put(b []byte) {
	if cap(b) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, b[:0])
	if len(l.free) > maxSnapBufs {
		k := 0
		for i, x := range l.free {
			if cap(x) < cap(l.free[k]) {
				k = i
			}
		}
		l.free = slices.Delete(l.free, k, k+1)
	}
}

func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

func (r *reader) boolean() bool {
	b := r.byte()
	if b > 1 {
		r.fail()
	}
	return b == 1
}

// idx reads an index that must be below n.
func (r *reader) idx(n int) uint32 {
	v := r.uvarint()
	if v >= uint64(n) {
		r.fail()
		return 0
	}
	return uint32(v)
}

func (r *reader) u32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.fail()
	}
	return uint32(v)
}

func (r *reader) i32() int32 {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail()
	}
	return int32(v)
}

func (r *reader) idxs(n int) []uint32 {
	m := r.count(1)
	v := make([]uint32, m)
	for i := range v {
		v[i] = r.idx(n)
	}
	return v
}

func (r *reader) u64s() []uint64 {
	n := r.count(1)
	if n == 0 {
		return nil
	}
	v := make([]uint64, n)
	for i := range v {
		v[i] = r.uvarint()
	}
	return v
}

func (r *reader) dist(d *dist) {
	d.count = r.uvarint()
	d.sum = r.f64()
	d.min = r.f64()
	d.max = r.f64()
	d.flags = r.byte()
	d.buckets = r.u64s()
	d.scale = r.i32()
	d.zc = r.uvarint()
	d.zt = r.f64()
	d.pos.off = r.i32()
	d.pos.counts = r.u64s()
	d.neg.off = r.i32()
	d.neg.counts = r.u64s()
	if d.scale < -10 || d.scale > 20 || len(d.pos.counts) > 1<<20 || len(d.neg.counts) > 1<<20 {
		r.fail()
	}
}

// Restore reads a snapshot written by Snapshot into a new Aggregator that
// behaves exactly as the one snapshotted. A truncated or corrupt snapshot
// is an error (ErrRecord).
func Restore(in io.Reader, cfg Config) (*Aggregator, error) {
	br := bufio.NewReader(in)
	if head, _ := br.Peek(len(s2Frame)); string(head) != s2Frame {
		return restoreZstd(br, cfg)
	}
	comp, err := io.ReadAll(br)
	if err != nil {
		return nil, fmt.Errorf("%w: restore: %v", ErrRecord, err)
	}
	comp = comp[len(s2Frame):]
	n, err := s2.DecodedLen(comp)
	if err != nil || n > maxSnapshot {
		return nil, fmt.Errorf("%w: restore: S2 block of %d bytes: %v", ErrRecord, n, err)
	}
	data, err := s2.Decode(make([]byte, n), comp)
	if err != nil {
		return nil, fmt.Errorf("%w: restore: %v", ErrRecord, err)
	}
	return decodeSnapshot(data, cfg)
}

// restoreZstd restores a snapshot of an earlier version, a zstd frame.
func restoreZstd(in io.Reader, cfg Config) (*Aggregator, error) {
	dec, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxSnapshot))
	if err != nil {
		return nil, fmt.Errorf("aggregate: restore: %w", err)
	}
	defer dec.Close()
	data, err := io.ReadAll(dec)
	if err != nil {
		return nil, fmt.Errorf("%w: restore: %v", ErrRecord, err)
	}
	return decodeSnapshot(data, cfg)
}

func decodeSnapshot(data []byte, cfg Config) (*Aggregator, error) {
	if len(data) < len(snapMagic)+1 || string(data[:len(snapMagic)]) != snapMagic || data[len(snapMagic)] < 1 || data[len(snapMagic)] > snapVersion {
		return nil, fmt.Errorf("%w: not a snapshot of version 1 to %d", ErrRecord, snapVersion)
	}
	version := data[len(snapMagic)]
	r := &reader{p: data[len(snapMagic)+1:]}
	a := New(cfg)
	a.wm, a.wmWall, a.lastSweep = r.varint(), r.varint(), r.varint()
	for range r.count(1) {
		a.tenantID(r.str())
	}
	for range r.count(1 + 5 + nDrop) {
		a.ruleID(r.str())
		c := &a.stats[len(a.stats)-1]
		for _, p := range []*uint64{&c.in, &c.merged, &c.late, &c.ooo, &c.folded} {
			*p = r.uvarint()
		}
		for i := range c.dropped {
			c.dropped[i] = r.uvarint()
		}
		if version < 2 {
			continue
		}
		if n := r.count(2); n > 0 {
			c.foldedBy = make(map[string]*uint64, n)
			for range n {
				name := r.str()
				x := r.uvarint()
				c.foldedBy[name] = &x
			}
		}
	}
	nRules := len(a.rules)
	for range r.count(6) {
		s := r.spec()
		if r.err != nil || s.Validate() != nil {
			r.fail()
			break
		}
		if _, err := a.specID(s); err != nil {
			r.fail()
			break
		}
	}
	if len(a.rules) != nRules {
		r.fail()
	}
	for range r.count(5) {
		var h header
		h.blob = r.str()
		for i := range h.cut {
			h.cut[i] = r.u32()
		}
		h.kind = r.byte()
		h.temp = r.i32()
		h.mono = r.boolean()
		h.refs = r.u32()
		if h.refs > 0 && !(h.cut[0] <= h.cut[1] && h.cut[1] <= h.cut[2] && int(h.cut[2])+headerTail <= len(h.blob)) {
			r.fail()
		}
		if r.err != nil {
			break
		}
		a.hdrs = append(a.hdrs, h)
		if h.refs > 0 {
			a.hdrIdx[h.blob] = uint32(len(a.hdrs) - 1)
		}
	}
	a.hdrFree = r.idxs(len(a.hdrs))
	nSeries := r.count(1)
	a.series = make([]series, nSeries)
	for i := range a.series {
		s := &a.series[i]
		s.flags = r.byte()
		if s.flags&sAlive == 0 || r.err != nil {
			continue
		}
		s.out = r.u64()
		s.start = r.uvarint()
		s.seen = r.varint()
		s.tot = r.u64()
		s.tenant = r.idx(len(a.tenants))
		s.spec = uint16(r.idx(len(a.specs))) // len(a.specs) <= maxSpecs
		s.hdr = r.idx(len(a.hdrs))
		s.limit = r.u32()
		kind, mono, temp := r.byte(), r.boolean(), r.i32()
		if r.err == nil { // then s.hdr is in range
			if h := &a.hdrs[s.hdr]; h.kind != kind || h.mono != mono || h.temp != temp {
				r.fail()
			}
		}
		s.attrs = r.str()
		n := r.count(5)
		for range n {
			iv := ival{k: r.varint(), v: r.u64()}
			iv.n = min(r.u32(), ivCount)
			iv.x = r.u32()
			iv.setDouble(r.boolean())
			if len(s.open) > 0 && iv.k <= s.open[len(s.open)-1].k {
				r.fail()
			}
			s.open = append(s.open, iv)
		}
		if r.boolean() {
			s.h = &histState{}
			nb := r.count(8)
			for range nb {
				s.h.bounds = append(s.h.bounds, r.f64())
			}
			r.dist(&s.h.tot)
		}
		cls := classOf(kind, temp, mono)
		if cls == clsNone || (cls == clsCumDist || cls == clsDeltaDist) != (s.h != nil) {
			r.fail()
		}
	}
	a.seriesFree = r.idxs(len(a.series))
	for range r.count(10) {
		k := seriesKey{tenant: r.idx(len(a.tenants)), out: h64(r.u64())}
		a.seriesIdx[k] = r.idx(len(a.series))
	}
	nInputs := r.count(1)
	a.inputs = make([]input, nInputs)
	for i := range a.inputs {
		p := &a.inputs[i]
		p.flags = r.byte()
		if p.flags&iAlive == 0 || r.err != nil {
			continue
		}
		p.in = r.u64()
		p.start = r.uvarint()
		p.time = r.uvarint()
		p.val = r.u64()
		p.seen = r.varint()
		p.series = r.idx(len(a.series))
		p.lastPos = r.i32()
		if r.boolean() {
			p.d = a.newDist()
			r.dist(&a.dists[p.d])
		}
	}
	a.inputFree = r.idxs(len(a.inputs))
	for range r.count(18) { // tenant, input and output hashes, index: at least 1+8+8+1 bytes
		k := inputKey{tenant: r.idx(len(a.tenants)), in: h64(r.u64()), out: h64(r.u64())}
		a.inputIdx[k] = r.idx(len(a.inputs))
	}
	for range r.count(2) {
		a.limits = append(a.limits, limitState{n: int(r.u32()), overflow: r.u32()})
	}
	for range r.count(10) {
		k := limitKey{tenant: r.idx(len(a.tenants)), metric: r.u64()}
		a.limitIdx[k] = r.idx(len(a.limits))
	}
	nExt := r.count(2)
	a.ext = make([]ext, nExt)
	for i := range a.ext {
		e := &a.ext[i]
		for range r.count(19) {
			a.addGent(e, gent{in: r.u32(), isInt: r.boolean(), t: r.varint(), v: r.u64(), hash: r.u64()})
		}
		switch {
		case r.boolean():
			e.d = a.newDist()
			r.dist(&a.dists[e.d])
		case version < 3: // an empty distribution follows
			var none dist
			r.dist(&none)
		}
		if r.err != nil {
			break
		}
	}
	a.extFree = r.idxs(len(a.ext))
	if r.err == nil && len(r.p) != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: corrupt snapshot", ErrRecord)
	}
	// References between the tables: checked so a corrupt snapshot cannot
	// make a later Add or Flush index out of range.
	if len(a.ext) == 0 {
		return nil, fmt.Errorf("%w: corrupt snapshot (interval table)", ErrRecord)
	}
	for i := range a.series {
		s := &a.series[i]
		if s.flags&sAlive == 0 {
			continue
		}
		if s.limit > uint32(len(a.limits)) || a.hdrs[s.hdr].refs == 0 {
			return nil, fmt.Errorf("%w: corrupt snapshot (series %d)", ErrRecord, i)
		}
		for _, iv := range s.open {
			if iv.x >= uint32(len(a.ext)) {
				return nil, fmt.Errorf("%w: corrupt snapshot (series %d)", ErrRecord, i)
			}
		}
	}
	for _, l := range a.limits {
		if l.overflow > uint32(len(a.series)) {
			return nil, fmt.Errorf("%w: corrupt snapshot (limits)", ErrRecord)
		}
	}
	return a, nil
}
