package schemas

// Templated text: string mode 2 of the column codec (record format 3; README.md,
// "Wire format"). Log bodies are mostly a few message templates filled with
// numbers and ids. zstd finds the fixed text again in every line, but pays a
// match (2-4 bytes) for each piece of it and codes the variables as text. So a
// long string column is split, line by line and losslessly, into a template
// (its text with one placeholder byte per variable) and the variables; the
// distinct templates are written once, every line gets a template id, and the
// variables are written per template and position as columns of their own
// type: numbers through the integer codec (bit packed to their range), hex ids
// as their bytes, other tokens through the string codec. The idea is CLP's
// (Rodrigues et al., OSDI '21), reduced to what a stateless per-batch codec
// can do; nothing is learned across batches.
//
// A token is a maximal run of ASCII letters and digits; a token without a
// digit is template text, one with digits is a variable:
//   - textInt: only digits, at most 19, no leading zero (or "0"): the number;
//   - textHex: only digits and a-f, an even number of them: the bytes;
//   - textStr: anything else ("v2", "200ms", "0042", "DEADBEEF01").
//
// Decoding writes a number back with strconv and hex in lower case, which
// gives the token's exact text by these definitions. Template bytes 0-3 are
// the escape and the three placeholders; a literal byte 0-3 is escaped.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// seqText is the string mode of templated text.
const seqText = 2

// Template bytes with a meaning.
const (
	textEsc = 0 // the next byte is literal
	textInt = 1
	textHex = 2
	textStr = 3
)

// minTextLen is the average length (bytes) from which a string column is
// tried as templated text, when dictionary coding did not apply.
const minTextLen = 16

// Byte flags of the tokenizer.
const (
	fTok   = 1 << iota // a letter or digit
	fHexL              // a-f
	fAlpha             // a letter other than a-f
)

var textFlags = func() (f [256]uint8) {
	for b := '0'; b <= '9'; b++ {
		f[b] = fTok
	}
	for b := 'a'; b <= 'z'; b++ {
		f[b] = fTok | fAlpha
	}
	for b := 'a'; b <= 'f'; b++ {
		f[b] = fTok | fHexL
	}
	for b := 'A'; b <= 'Z'; b++ {
		f[b] = fTok | fAlpha
	}
	return
}()

// textVar is one variable of a line: the number (textInt) or the token's
// position in the column's data.
type textVar struct {
	val        uint64
	start, end int32
}

// textEnc is the encoder's storage for text columns, kept across calls.
type textEnc struct {
	tab     table
	tplData []byte  // the distinct templates, concatenated
	tplOffs []int32 // their offsets (distinct + 1)
	tids    []uint32
	vars    []textVar
	rowVar  []int32 // index in vars of each line's first variable (n + 1)
	order   []int32 // lines grouped by template, in line order
	first   []int32 // per template, its first index in order (+1 end)
	cur     []int32
	kinds   []byte    // the placeholders of one template
	tv      []textVar // its variables, slot by slot
	sOffs   []int32   // one textStr variable column
	sData   []byte
}

// tokenize appends the template of line s (at offset base of the column's
// data) to dst and its variables to x.vars. It jumps from digit to digit
// (8 bytes at a time) and widens each to its token; the text between
// variables is copied in runs.
func (x *textEnc) tokenize(dst, s []byte, base int32) []byte {
	ctl := hasCtl(s)
	lit := 0 // the text not yet copied
	for j := 0; ; {
		d := nextDigit(s, j)
		if d < 0 {
			break
		}
		// [start, d) are letters, [d, end) letters and digits.
		start, end, flags := d, d+1, uint8(0)
		for start > lit {
			f := textFlags[s[start-1]]
			if f&fTok == 0 {
				break
			}
			flags |= f
			start--
		}
		for end < len(s) {
			f := textFlags[s[end]]
			if f&fTok == 0 {
				break
			}
			flags |= f
			end++
		}
		tok := s[start:end]
		dst = appendLiteral(dst, s[lit:start], ctl)
		switch {
		case flags&(fHexL|fAlpha) == 0 && len(tok) <= 19 && (tok[0] != '0' || len(tok) == 1):
			v := uint64(0)
			for _, c := range tok {
				v = v*10 + uint64(c-'0')
			}
			dst = append(dst, textInt)
			x.vars = append(x.vars, textVar{val: v})
		case flags&fAlpha == 0 && len(tok)%2 == 0:
			dst = append(dst, textHex)
			x.vars = append(x.vars, textVar{start: base + int32(start), end: base + int32(end)})
		default:
			dst = append(dst, textStr)
			x.vars = append(x.vars, textVar{start: base + int32(start), end: base + int32(end)})
		}
		lit, j = end, end
	}
	return appendLiteral(dst, s[lit:], ctl)
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// nextDigit returns the index of the first ASCII digit of s at or after j, or
// -1. The SWAR test flags a byte < 10 after xor with '0' (only digits); the
// lowest flag is exact (borrows only corrupt higher bytes).
func nextDigit(s []byte, j int) int {
	for ; j+8 <= len(s); j += 8 {
		y := binary.LittleEndian.Uint64(s[j:]) ^ (ones * '0')
		if m := (y - ones*10) &^ y & highs; m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
	}
	for ; j < len(s); j++ {
		if s[j]-'0' < 10 {
			return j
		}
	}
	return -1
}

// hasCtl reports whether s holds a byte 0-3 (escaped in templates).
func hasCtl(s []byte) bool {
	j := 0
	for ; j+8 <= len(s); j += 8 {
		y := binary.LittleEndian.Uint64(s[j:])
		if (y-ones*(textStr+1))&^y&highs != 0 {
			return true
		}
	}
	for ; j < len(s); j++ {
		if s[j] <= textStr {
			return true
		}
	}
	return false
}

// appendLiteral appends template text, escaping bytes 0-3 when ctl.
func appendLiteral(dst, p []byte, ctl bool) []byte {
	if !ctl {
		return append(dst, p...)
	}
	for _, c := range p {
		if c <= textStr {
			dst = append(dst, textEsc)
		}
		dst = append(dst, c)
	}
	return dst
}

// text writes n = len(offs)-1 strings as templated text and reports true,
// or writes nothing and reports false when the column is short or has more
// than n/4 templates (free text: plain coding does better).
func (e *encoder) text(offs []int32, data []byte) bool {
	n := len(offs) - 1
	o0 := offs[0]
	if n < 8 || int(offs[n]-o0) < minTextLen*n {
		return false
	}
	x := &e.txt
	limit := n/4 + 1
	x.tab.reset(limit)
	x.tplData, x.tplOffs = x.tplData[:0], append(x.tplOffs[:0], 0)
	x.vars, x.rowVar = x.vars[:0], append(x.rowVar[:0], 0)
	if cap(x.tids) < n {
		x.tids = make([]uint32, n)
	}
	tids := x.tids[:n]
	eq := func(a, b int32) bool {
		return bytes.Equal(x.tplData[x.tplOffs[a]:x.tplOffs[a+1]], x.tplData[x.tplOffs[b]:x.tplOffs[b+1]])
	}
	for i := range n {
		at := len(x.tplData)
		x.tplData = x.tokenize(x.tplData, data[offs[i]-o0:offs[i+1]-o0], offs[i]-o0)
		cand := int32(len(x.tplOffs) - 1)
		x.tplOffs = append(x.tplOffs, int32(len(x.tplData)))
		id, ok := x.tab.find(maphash.Bytes(hashSeed, x.tplData[at:]), cand, limit, eq)
		if !ok {
			return false
		}
		if int32(id) != cand { // a known template
			x.tplData, x.tplOffs = x.tplData[:at], x.tplOffs[:len(x.tplOffs)-1]
		}
		tids[i] = id
		x.rowVar = append(x.rowVar, int32(len(x.vars)))
	}
	nt := len(x.tplOffs) - 1

	e.out = append(e.out, seqText)
	e.uvarint(uint64(nt))
	e.lengths(x.tplOffs)
	e.out = append(e.out, x.tplData...)
	u := e.scratch(n)
	for i, t := range tids {
		u[i] = uint64(t)
	}
	e.ints(u)

	// Lines grouped by template (a counting sort keeps line order).
	x.first = append(x.first[:0], make([]int32, nt+1)...)
	for _, t := range tids {
		x.first[t+1]++
	}
	for t := range nt {
		x.first[t+1] += x.first[t]
	}
	x.cur = append(x.cur[:0], x.first[:nt]...)
	if cap(x.order) < n {
		x.order = make([]int32, n)
	}
	order := x.order[:n]
	for i, t := range tids {
		order[x.cur[t]] = int32(i)
		x.cur[t]++
	}
	for t := range nt {
		e.textVars(order[x.first[t]:x.first[t+1]], x.tplData[x.tplOffs[t]:x.tplOffs[t+1]], data)
	}
	return true
}

// textVars writes the variables of one template's lines, a column per
// placeholder.
func (e *encoder) textVars(lines []int32, tpl, data []byte) {
	x := &e.txt
	x.kinds = x.kinds[:0]
	for p := 0; p < len(tpl); p++ {
		switch tpl[p] {
		case textEsc:
			p++
		case textInt, textHex, textStr:
			x.kinds = append(x.kinds, tpl[p])
		}
	}
	m, k := len(x.kinds), len(lines)
	if m == 0 {
		return
	}
	// The variables slot by slot: tv[s*k+j] is slot s of line j.
	if cap(x.tv) < m*k {
		x.tv = make([]textVar, m*k)
	}
	tv := x.tv[:m*k]
	for j, l := range lines {
		vs := x.vars[x.rowVar[l] : x.rowVar[l]+int32(m)]
		for s, v := range vs {
			tv[s*k+j] = v
		}
	}
	for s, kind := range x.kinds {
		col := tv[s*k : (s+1)*k]
		switch kind {
		case textInt:
			u := e.scratch(k)
			for j, v := range col {
				u[j] = v.val
			}
			e.ints(u)
		case textHex:
			u := e.scratch(k)
			total := 0
			for j, v := range col {
				u[j] = uint64(v.end-v.start) / 2
				total += int(u[j])
			}
			e.ints(u)
			e.out = grow(e.out, total)
			for _, v := range col {
				at := len(e.out)
				e.out = e.out[:at+int(v.end-v.start)/2]
				hex.Decode(e.out[at:], data[v.start:v.end])
			}
		case textStr:
			so, sd := append(x.sOffs[:0], 0), x.sData[:0]
			for _, v := range col {
				sd = append(sd, data[v.start:v.end]...)
				so = append(so, int32(len(sd)))
			}
			x.sOffs, x.sData = so, sd
			e.binary(so, sd, false)
		}
	}
}

// text reads n strings of templated text.
func (d *decoder) text(n int) (*memory.Buffer, *memory.Buffer) {
	nt := d.count()
	tob, total := d.lengths(nt)
	if d.err != nil {
		return nil, nil
	}
	toffs := arrow.Int32Traits.CastFromBytes(tob.Bytes())[:nt+1]
	defer tob.Release()
	tpls := d.bytes(total)
	tids := d.scratch(n)
	d.ints(tids)
	if d.err != nil {
		return nil, nil
	}
	// The scratch slices, taken for this call (a nested text column, read
	// through d.binary below, gets its own).
	x := d.txt
	if x == nil {
		x = &textScratch{}
	}
	d.txt = nil
	defer func() { d.txt = x.keep() }()

	cnt := x.ints(&x.cnt, nt)
	for _, t := range tids {
		if t >= uint64(nt) {
			d.fail("template id")
			return nil, nil
		}
		cnt[t]++
	}
	lineIDs := slices.Grow(x.lineIDs[:0], n)[:n] // tids is scratch, reused below
	x.lineIDs = lineIDs
	for i, t := range tids {
		lineIDs[i] = uint32(t)
	}

	// The variables, a column per template and placeholder: numbers in num,
	// the text of the others in txt, each variable's first index in base.
	var (
		num   = x.num[:0]
		txt   = x.txt[:0]
		toff  = append(x.toff[:0], 0)
		slots = x.ints(&x.slots, nt+1) // first slot of each template
		kinds = x.kinds[:0]
		base  = x.base[:0]
	)
	defer func() { x.num, x.txt, x.toff, x.kinds, x.base = num, txt, toff, kinds, base }()
	out := uint64(0) // the decoded size
	for t := range nt {
		tpl := tpls[toffs[t]:toffs[t+1]]
		slots[t] = len(kinds)
		lit := 0
		for p := 0; p < len(tpl); p++ {
			c := tpl[p]
			if c > textStr {
				lit++
				continue
			}
			if c == textEsc {
				if p++; p == len(tpl) {
					d.fail("template escape")
					return nil, nil
				}
				lit++
				continue
			}
			kinds = append(kinds, c)
			d.charge(uint64(cnt[t]))
			if d.err != nil {
				return nil, nil
			}
			switch c {
			case textInt:
				base = append(base, len(num))
				at := len(num)
				num = slices.Grow(num, cnt[t])[:at+cnt[t]]
				d.ints(num[at:])
				for _, v := range num[at:] {
					out += uint64(decLen(v))
				}
			case textHex:
				base = append(base, len(toff)-1)
				lens := d.scratch(cnt[t])
				d.ints(lens)
				sum := uint64(0)
				for _, l := range lens {
					if sum += l; l > uint64(len(d.b)) || sum > uint64(len(d.b)) {
						d.fail("hex length")
						return nil, nil
					}
				}
				p := d.bytes(int(sum))
				if d.err != nil {
					return nil, nil
				}
				for _, l := range lens {
					txt = hex.AppendEncode(txt, p[:l])
					p = p[l:]
					toff = append(toff, len(txt))
				}
				out += 2 * sum
			case textStr:
				base = append(base, len(toff)-1)
				d.depth++
				if d.depth > 32 {
					d.fail("nesting")
				}
				ob, db := d.binary(cnt[t])
				d.depth--
				if d.err != nil {
					return nil, nil
				}
				o := arrow.Int32Traits.CastFromBytes(ob.Bytes())[:cnt[t]+1]
				at := len(txt)
				txt = append(txt, db.Bytes()[o[0]:o[cnt[t]]]...)
				for _, end := range o[1:] {
					toff = append(toff, at+int(end-o[0]))
				}
				out += uint64(o[cnt[t]] - o[0])
				ob.Release()
				db.Release()
			}
			if d.err != nil {
				return nil, nil
			}
		}
		out += uint64(lit) * uint64(cnt[t])
	}
	slots[nt] = len(kinds)
	if out > math.MaxInt32 {
		d.fail("strings too long")
		return nil, nil
	}
	d.charge(out / 8)
	if d.err != nil {
		return nil, nil
	}

	ob := newFullBuf(d.mem, 4*(n+1))
	db := newFullBuf(d.mem, int(out))
	o := arrow.Int32Traits.CastFromBytes(ob.Bytes())
	dst := db.Bytes()[:0]
	o[0] = 0
	seen := x.ints(&x.seen, nt) // lines of each template so far
	for i, t := range lineIDs {
		tpl := tpls[toffs[t]:toffs[t+1]]
		k, j := slots[t], seen[t]
		seen[t]++
		for p := 0; p < len(tpl); p++ {
			c := tpl[p]
			switch {
			case c > textStr:
				q := p + 1
				for q < len(tpl) && tpl[q] > textStr {
					q++
				}
				dst = append(dst, tpl[p:q]...)
				p = q - 1
			case c == textEsc:
				p++
				dst = append(dst, tpl[p])
			case kinds[k] == textInt:
				dst = strconv.AppendUint(dst, num[base[k]+j], 10)
				k++
			default:
				v := base[k] + j
				dst = append(dst, txt[toff[v]:toff[v+1]]...)
				k++
			}
		}
		o[i+1] = int32(len(dst))
	}
	return ob, db
}

// textScratch is the storage of decoder.text, kept across calls.
type textScratch struct {
	cnt, slots, seen, toff, base []int
	lineIDs                      []uint32
	num                          []uint64
	txt, kinds                   []byte
}

// ints returns *s resized to n zeroes.
func (x *textScratch) ints(s *[]int, n int) []int {
	*s = slices.Grow((*s)[:0], n)[:n]
	clear(*s)
	return *s
}

// keep returns x for the next call, or nil when it grew too large to keep.
func (x *textScratch) keep() *textScratch {
	for _, size := range []int{cap(x.txt), 8 * cap(x.num), 8 * cap(x.toff), 8 * cap(x.base), 4 * cap(x.lineIDs),
		8 * cap(x.cnt), 8 * cap(x.slots), 8 * cap(x.seen)} {
		if size > maxPooled {
			return nil
		}
	}
	return x
}

// decLen is the number of decimal digits of v.
func decLen(v uint64) int {
	n := 1
	for ; v >= 10; v /= 10 {
		n++
	}
	return n
}
