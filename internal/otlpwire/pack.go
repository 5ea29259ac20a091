package otlpwire

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The packer turns the scanner's units, sorted by partition, into chunks.
//
// It fills one chunk at a time, next-fit: each unit goes into the current
// chunk if it fits, else into a new chunk if it fits alone, else it is cut
// into its children (a resource into scopes, a scope into metrics or items, a
// metric into data points), which are placed the same way. An item that does
// not fit alone is rejected. So messages stay whole whenever they fit in a
// record, and a message that is cut repeats its header (every field but its
// children: resource, scope, name, schema_url, unknown fields...) in each
// piece.
//
// A message is copied raw when it goes whole into a chunk. A piece of a cut
// message is written as a new message: its tag, its length, its header and
// the children placed in it. Lengths come first in the encoding, so the
// packer plans a chunk as a list of ops, keeping the size of every message it
// has open, and writes the chunk out once it is full.

// openMsg is a message of the current chunk that can still take children.
type openMsg struct {
	idx     int32 // its node at its level
	op      int32 // the op that opens it
	content int   // its size so far, without tag and length
}

// op is a step of writing a chunk: a raw copy of body[a:b] (level 0) or the
// opening of a piece of node idx at level, whose content is a bytes long.
type op struct {
	level uint8
	idx   int32
	a, b  int32
}

type packer struct {
	ix        *scanner
	limit     int // MaxRecordBytes; 0 for none
	itemLevel int

	// The chunk being planned. open[0] is the request; open[1:depth+1] the
	// messages open in it, one per level.
	part  int32
	depth int
	open  [5]openMsg
	ops   []op
	items int

	out    []byte
	pos    []rng // of each chunk in out
	chunks []Chunk

	accepted, rejected, invalid int
	reason                      string

	// invert: place only the invalid items (Splitter.Invalid); skipped
	// counts the valid ones left out.
	invert  bool
	skipped int
	err     error
}

func (p *packer) run(ix *scanner, limit int) (Result, error) {
	p.ix, p.limit = ix, limit
	p.itemLevel = 3
	if ix.sig == Metrics {
		p.itemLevel = 5
	}
	p.out, p.pos, p.chunks, p.ops = p.out[:0], p.pos[:0], p.chunks[:0], p.ops[:0]
	p.accepted, p.rejected, p.invalid, p.reason, p.err = 0, 0, 0, "", nil
	p.skipped = 0
	if ix.nbad > 0 {
		p.reason = ix.badReason // the first invalid item, in request order
	}
	p.depth, p.items = 0, 0
	p.open[0] = openMsg{content: int(ix.reqHdr.n)}

	var anc [6]int32 // the node at each level above the unit being placed
	for i, u := range ix.units {
		if i == 0 || u.part != p.part {
			p.flush()
			p.part = u.part
		}
		switch u.level {
		case 2:
			anc[1] = ix.scopes[u.idx].parent
		case 3:
			anc[2] = ix.items[u.idx].parent
			anc[1] = ix.scopes[anc[2]].parent
		}
		p.place(int(u.level), &anc, u.idx)
	}
	p.flush()
	if p.err != nil {
		return Result{}, p.err
	}
	for i, r := range p.pos {
		p.chunks[i].Value = p.out[r.off:r.end:r.end]
	}
	if p.rejected > 1 {
		p.reason += fmt.Sprintf(" (%d more items rejected)", p.rejected-1)
	}
	if p.accepted+p.rejected+p.skipped != ix.nitems {
		return Result{}, errors.New("otlpwire: internal error: items lost while splitting")
	}
	return Result{Chunks: p.chunks, Items: p.accepted, Rejected: p.rejected, RejectReason: p.reason, Invalid: p.invalid}, nil
}

// place puts node idx of level, whose ancestors are anc[1:level], in chunks:
// whole if it fits, else cut into its children.
func (p *packer) place(level int, anc *[6]int32, idx int32) {
	off, end, items := p.node(level, idx)
	if items == 0 {
		return
	}
	if p.invert {
		switch bad := p.bad(level, idx); {
		case bad == 0:
			p.skipped += items
			return
		case bad == items && p.fit(level, anc, off, end, items):
			return
		case level == p.itemLevel:
			p.reject(anc, idx)
			return
		}
	} else if bad := p.bad(level, idx); bad > 0 && level == p.itemLevel {
		p.rejected++
		p.invalid++
		return
	} else if bad == 0 && !p.dirty(level, idx) && p.fit(level, anc, off, end, items) {
		return
	}
	// Else cut it, leaving its invalid items out, and the scopes and
	// metrics without items that the decoder would refuse.
	if level == p.itemLevel {
		p.reject(anc, idx)
		return
	}
	anc[level] = idx
	next := level + 1
	if level == 3 { // a Metric: its data message opens with it
		anc[4] = idx
		next = 5
	}
	lo, hi := p.children(level, idx)
	for c := lo; c < hi; c++ {
		p.place(next, anc, c)
	}
}

// fit adds body[off:end], the whole node of level, to the current chunk if it
// fits there, or else to a new chunk if it fits alone. It reports whether it
// did either.
func (p *packer) fit(level int, anc *[6]int32, off, end, items int) bool {
	n := end - off
	k := 0 // levels of anc already open in the chunk
	for k < p.depth && k+1 < level && p.open[k+1].idx == anc[k+1] {
		k++
	}
	p.closeTo(k)
	if p.limit == 0 || p.sizeWith(k, p.wrap(level, anc, k, n)) <= p.limit {
		p.add(level, anc, k, off, end, items)
		return true
	}
	if p.items == 0 || int(p.ix.reqHdr.n)+p.wrap(level, anc, 0, n) > p.limit {
		return false
	}
	p.flush()
	p.add(level, anc, 0, off, end, items)
	return true
}

// wrap returns the size of n bytes of fields at level once wrapped in new
// pieces of their ancestors below level k.
func (p *packer) wrap(level int, anc *[6]int32, k, n int) int {
	for j := level - 1; j > k; j-- {
		n = LenFieldSize(int(p.hdr(j, anc[j]).n) + n)
	}
	return n
}

// sizeWith returns the size of the chunk with n more bytes in the open
// message of level k.
func (p *packer) sizeWith(k, n int) int {
	c := p.open[k].content + n
	for j := k; j >= 1; j-- {
		c = p.open[j-1].content + LenFieldSize(c)
	}
	return c
}

// add appends body[off:end] at level, opening the pieces of anc[k+1:level].
func (p *packer) add(level int, anc *[6]int32, k, off, end, items int) {
	for j := k + 1; j < level; j++ {
		p.ops = append(p.ops, op{level: uint8(j), idx: anc[j]})
		p.open[j] = openMsg{idx: anc[j], op: int32(len(p.ops) - 1), content: int(p.hdr(j, anc[j]).n)}
	}
	p.depth = level - 1
	p.ops = append(p.ops, op{a: int32(off), b: int32(end)})
	p.open[level-1].content += end - off
	p.items += items
}

// closeTo closes the open messages below level k, which will get no more
// children, adding their sizes to their parents'.
func (p *packer) closeTo(k int) {
	for ; p.depth > k; p.depth-- {
		m := &p.open[p.depth]
		p.ops[m.op].a = int32(m.content)
		p.open[p.depth-1].content += LenFieldSize(m.content)
	}
}

// flush writes out the chunk planned so far and starts a new one.
func (p *packer) flush() {
	p.closeTo(0)
	if p.items > 0 {
		ix := p.ix
		start := len(p.out)
		p.out = p.appendHdr(p.out, ix.reqHdr)
		for _, o := range p.ops {
			if o.level == 0 {
				p.out = append(p.out, ix.b[o.a:o.b]...)
				continue
			}
			p.out = AppendTag(p.out, p.field(int(o.level), o.idx), WireLen)
			p.out = protowire.AppendVarint(p.out, uint64(o.a))
			p.out = p.appendHdr(p.out, p.hdr(int(o.level), o.idx))
		}
		if len(p.out)-start != p.open[0].content && p.err == nil {
			p.err = fmt.Errorf("otlpwire: internal error: chunk of %d bytes planned as %d", len(p.out)-start, p.open[0].content)
		}
		p.pos = append(p.pos, rng{int32(start), int32(len(p.out))})
		p.chunks = append(p.chunks, Chunk{Partition: p.part, Items: p.items})
		p.accepted += p.items
	}
	p.ops = p.ops[:0]
	p.items = 0
	p.open[0].content = int(p.ix.reqHdr.n)
}

func (p *packer) appendHdr(dst []byte, h hdrRef) []byte {
	for _, r := range p.ix.hdrs[h.lo:h.hi] {
		dst = append(dst, p.ix.b[r.off:r.end]...)
	}
	return dst
}

// node returns the field of node idx at level and its number of items.
func (p *packer) node(level int, idx int32) (off, end, items int) {
	ix := p.ix
	switch {
	case level == 1:
		r := &ix.res[idx]
		return int(r.off), int(r.end), int(r.items)
	case level == 2:
		s := &ix.scopes[idx]
		return int(s.off), int(s.end), int(s.items)
	case level == 3 && p.itemLevel == 5:
		m := &ix.metrics[idx]
		return int(m.off), int(m.end), int(m.hi - m.lo)
	}
	it := &ix.items[idx]
	return int(it.off), int(it.end), 1
}

// children returns the range of the children of node idx at level, at the
// next level down (for a Metric, its data points two levels down).
func (p *packer) children(level int, idx int32) (lo, hi int32) {
	ix := p.ix
	switch level {
	case 1:
		return ix.res[idx].lo, ix.res[idx].hi
	case 2:
		return ix.scopes[idx].lo, ix.scopes[idx].hi
	}
	return ix.metrics[idx].lo, ix.metrics[idx].hi
}

func (p *packer) hdr(level int, idx int32) hdrRef {
	ix := p.ix
	switch level {
	case 1:
		return ix.res[idx].hdr
	case 2:
		return ix.scopes[idx].hdr
	case 3:
		return ix.metrics[idx].hdr
	}
	return ix.metrics[idx].data
}

// field returns the field number of a message at level in its parent. All
// are below 16, so the size of a piece is LenFieldSize of its content.
func (p *packer) field(level int, idx int32) FieldNum {
	switch level {
	case 1:
		return RequestResourceX
	case 2:
		return ResourceXScopeX
	case 3:
		return ScopeXItems
	case 4:
		return p.ix.metrics[idx].dataNum
	}
	return DataPoints
}

// reject counts the item idx, which does not fit in a record alone, and
// describes the first one.
func (p *packer) reject(anc *[6]int32, idx int32) {
	p.rejected++
	if p.reason != "" {
		return
	}
	ix := p.ix
	off, end, _ := p.node(p.itemLevel, idx)
	size := int(ix.reqHdr.n) + p.wrap(p.itemLevel, anc, 0, end-off)
	n := &names[ix.sig]
	parent := ix.items[idx].parent
	var path string
	if ix.sig == Metrics {
		m := &ix.metrics[parent]
		sc := &ix.scopes[m.parent]
		r := &ix.res[sc.parent]
		path = fmt.Sprintf("%s[%d].%s[%d].%s[%d].%s.data_points[%d]",
			n.resources, sc.parent, n.scopes, m.parent-r.lo, n.items, parent-sc.lo, dataName(m.dataNum), idx-m.lo)
	} else {
		sc := &ix.scopes[parent]
		r := &ix.res[sc.parent]
		path = fmt.Sprintf("%s[%d].%s[%d].%s[%d]",
			n.resources, sc.parent, n.scopes, parent-r.lo, n.items, idx-sc.lo)
	}
	p.reason = fmt.Sprintf("%s %s takes %d bytes in a record of its own, over MaxRecordBytes %d",
		n.item, path, size, p.limit)
}

// dirty reports whether node idx of level holds a scope or metric without
// items whose attributes break the limits.
func (p *packer) dirty(level int, idx int32) bool {
	switch {
	case p.ix.ndirty == 0:
		return false
	case level == 1:
		return p.ix.res[idx].dirty
	case level == 2:
		return p.ix.scopes[idx].dirty
	}
	return false
}

// bad returns the number of invalid items (Options.Check) in node idx of
// level.
func (p *packer) bad(level int, idx int32) int {
	ix := p.ix
	if ix.nbad == 0 {
		return 0
	}
	switch {
	case level == 1:
		return int(ix.res[idx].bad)
	case level == 2:
		return int(ix.scopes[idx].bad)
	case level == 3 && p.itemLevel == 5:
		return int(ix.metrics[idx].bad)
	}
	if ix.items[idx].bad {
		return 1
	}
	return 0
}
