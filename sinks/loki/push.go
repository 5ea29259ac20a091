package loki

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/stream"
)

// pair is a label or a structured metadata entry.
type pair struct{ name, value string }

// entry is a log line. Its structured metadata is shared followed by meta:
// the Arrow path keeps the metadata of a resource and scope once, in
// shared, for all their entries.
type entry struct {
	ts     int64 // unix nanoseconds
	line   string
	shared []pair
	meta   []pair
}

// metadata returns the two parts of e's structured metadata, in order.
func (e *entry) metadata() [2][]pair { return [2][]pair{e.shared, e.meta} }

type lokiStream struct {
	labels  string // {a="x", b="y"}
	pairs   []pair
	entries []entry
}

// push is the content of one push request: streams by label set, and the
// records it holds.
type push struct {
	streams map[string]*lokiStream
	order   []*lokiStream
	recs    []*stream.Record
	entries int
	bytes   int // roughly the encoded size
	key     []byte
	scratch []pair
	keys    []sortKey // scratch of sort
	keyBuf  []sortKey // scratch of sort
	runs    []int     // scratch of sort
	spare   []entry   // scratch of sort: the memory of entries sorted out
	sizes   []int32   // scratch of protobuf
}

func newPush() *push { return &push{streams: map[string]*lokiStream{}} }

// add appends e to the stream of labels (in any order; sorted here).
func (p *push) add(labels []pair, e entry) { p.append(p.stream(labels), e) }

// stream returns the stream of labels (in any order; sorted here), new if
// p has none of them yet.
func (p *push) stream(labels []pair) *lokiStream {
	labels = append(p.scratch[:0], labels...) // the caller's slice stays as it is
	if len(labels) == 0 {
		labels = append(labels, pair{"service_name", "unknown_service"}) // Loki needs a label
	}
	p.scratch = labels
	slices.SortFunc(labels, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	p.key = append(p.key[:0], '{')
	for i, l := range labels {
		if i > 0 {
			p.key = append(p.key, ", "...)
		}
		p.key = append(p.key, l.name...)
		p.key = append(p.key, '=')
		p.key = strconv.AppendQuote(p.key, l.value)
	}
	p.key = append(p.key, '}')
	st := p.streams[string(p.key)] // no allocation for the lookup
	if st == nil {
		key := string(p.key)
		st = &lokiStream{labels: key, pairs: slices.Clone(labels)}
		p.streams[key] = st
		p.order = append(p.order, st)
		p.bytes += len(key) + 8
	}
	return st
}

// append adds e to st, a stream of p.
func (p *push) append(st *lokiStream, e entry) {
	st.entries = append(st.entries, e)
	p.entries++
	p.bytes += len(e.line) + 16
	for _, ms := range e.metadata() {
		for _, m := range ms {
			p.bytes += len(m.name) + len(m.value) + 6
		}
	}
}

// sortKey is an entry's time and index in its stream.
type sortKey struct {
	ts int64
	i  int32
}

// sort orders the entries of each stream by time (stable: equal times keep
// their order).
func (p *push) sort() {
	for _, st := range p.order {
		if slices.IsSortedFunc(st.entries, func(a, b entry) int { return cmp.Compare(a.ts, b.ts) }) {
			continue // the usual case
		}
		// Sort small keys rather than entries, which are larger and hold
		// pointers, then put the entries in order once.
		keys := p.keys[:0]
		for i, e := range st.entries {
			keys = append(keys, sortKey{e.ts, int32(i)})
		}
		keys = p.sortKeys(keys)
		sorted := slices.Grow(p.spare[:0], len(keys))
		for _, key := range keys {
			sorted = append(sorted, st.entries[key.i])
		}
		p.spare, st.entries = st.entries, sorted
	}
}

// sortKeys sorts keys, in index order, by time, stably: a natural merge
// sort. Entries come in a few runs in time order, one per resource or
// record of the stream, so this costs O(n log runs). The result is keys
// or p.keyBuf; both are kept for the next stream.
func (p *push) sortKeys(keys []sortKey) []sortKey {
	n := len(keys)
	p.keyBuf = slices.Grow(p.keyBuf[:0], n)[:n]
	runs := append(p.runs[:0], 0)
	for i := 1; i < n; i++ {
		if keys[i].ts < keys[i-1].ts {
			runs = append(runs, i)
		}
	}
	runs = append(runs, n)
	p.runs = runs
	src, dst := keys, p.keyBuf
	for len(runs) > 2 { // more than one run: merge them in pairs
		k := len(runs) - 1
		w := 0
		for r := 0; r < k; r += 2 {
			lo, mid, hi := runs[r], runs[min(r+1, k)], runs[min(r+2, k)]
			merge(dst[lo:hi], src[lo:mid], src[mid:hi])
			runs[w] = lo
			w++
		}
		runs[w] = n
		runs = runs[:w+1]
		src, dst = dst, src
	}
	p.keys, p.keyBuf = src, dst
	return src
}

// merge merges the sorted a and b into dst, a first among equal times.
func merge(dst, a, b []sortKey) {
	i, j, k := 0, 0, 0
	for i < len(a) && j < len(b) {
		if b[j].ts < a[i].ts {
			dst[k] = b[j]
			j++
		} else {
			dst[k] = a[i]
			i++
		}
		k++
	}
	k += copy(dst[k:], a[i:])
	copy(dst[k:], b[j:])
}

// protobuf appends to dst p encoded as a logproto.PushRequest
// (grafana/loki pkg/push):
//
//	PushRequest   { repeated StreamAdapter streams = 1; }
//	StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; }
//	EntryAdapter  { Timestamp timestamp = 1; string line = 2; repeated LabelPairAdapter structuredMetadata = 3; }
//	LabelPairAdapter { string name = 1; string value = 2; }
//	Timestamp     { int64 seconds = 1; int32 nanos = 2; }
//
// The sizes of the messages are computed first, so that everything is
// written once, in place. All field numbers are below 16: a tag is one
// byte.
func (p *push) protobuf(dst []byte) []byte {
	// p.sizes: the size of each stream followed by those of its entries.
	sizes := p.sizes[:0]
	total := 0
	for _, s := range p.order {
		at := len(sizes)
		sizes = append(sizes, 0)
		n := 1 + sizeLen(len(s.labels))
		for i := range s.entries {
			es := entrySize(&s.entries[i])
			sizes = append(sizes, int32(es))
			n += 1 + sizeLen(es)
		}
		sizes[at] = int32(n)
		total += 1 + sizeLen(n)
	}
	p.sizes = sizes
	out := slices.Grow(dst, total)
	for _, s := range p.order {
		out = appendLen(out, lenTag(1), int(sizes[0]))
		out = appendLen(out, lenTag(1), len(s.labels))
		out = append(out, s.labels...)
		sizes = sizes[1:]
		for i := range s.entries {
			e := &s.entries[i]
			out = appendLen(out, lenTag(2), int(sizes[i]))
			sec, nanos := splitTime(e.ts)
			out = appendLen(out, lenTag(1), timestampSize(sec, nanos))
			if sec != 0 {
				out = protowire.AppendTag(out, 1, protowire.VarintType)
				out = protowire.AppendVarint(out, uint64(sec))
			}
			if nanos != 0 {
				out = protowire.AppendTag(out, 2, protowire.VarintType)
				out = protowire.AppendVarint(out, uint64(nanos))
			}
			if e.line != "" {
				out = appendLen(out, lenTag(2), len(e.line))
				out = append(out, e.line...)
			}
			for _, ms := range e.metadata() {
				for _, m := range ms {
					out = appendLen(out, lenTag(3), pairSize(m))
					out = appendLen(out, lenTag(1), len(m.name))
					out = append(out, m.name...)
					out = appendLen(out, lenTag(2), len(m.value))
					out = append(out, m.value...)
				}
			}
		}
		sizes = sizes[len(s.entries):]
	}
	return out
}

// lenTag is the tag of length-delimited field num (below 16: one byte).
func lenTag(num protowire.Number) byte { return byte(num)<<3 | byte(protowire.BytesType) }

// appendLen appends tag (lenTag) and length n. Most lengths take one
// byte: that case is inlined.
func appendLen(b []byte, tag byte, n int) []byte {
	if n < 0x80 {
		return append(b, tag, byte(n))
	}
	return appendLongLen(b, tag, n)
}

// appendLongLen is appendLen's rare case, kept out of line so that
// appendLen stays within the inlining budget.
//
//go:noinline
func appendLongLen(b []byte, tag byte, n int) []byte {
	return protowire.AppendVarint(append(b, tag), uint64(n))
}

// sizeLen is the size of a length-delimited field's payload of n bytes
// and its length (protowire.SizeBytes), inlined for short ones.
func sizeLen(n int) int {
	if n < 0x80 {
		return 1 + n
	}
	return protowire.SizeBytes(n)
}

// entrySize is the size of the EntryAdapter encoding of e.
func entrySize(e *entry) int {
	n := 1 + sizeLen(timestampSize(splitTime(e.ts)))
	if e.line != "" {
		n += 1 + sizeLen(len(e.line))
	}
	for _, ms := range e.metadata() {
		for _, m := range ms {
			n += 1 + sizeLen(pairSize(m))
		}
	}
	return n
}

// pairSize is the size of the LabelPairAdapter encoding of m.
func pairSize(m pair) int {
	return 2 + sizeLen(len(m.name)) + sizeLen(len(m.value))
}

// timestampSize is the size of the Timestamp encoding of sec and nanos.
func timestampSize(sec, nanos int64) int {
	n := 0
	if sec != 0 {
		n += 1 + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += 1 + protowire.SizeVarint(uint64(nanos))
	}
	return n
}

// splitTime splits unix nanoseconds into seconds and nanoseconds in
// [0, 1e9), as a Timestamp holds them.
func splitTime(ts int64) (sec, nanos int64) {
	sec = floorDiv(ts, 1e9)
	return sec, ts - sec*1e9
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// json encodes p in the JSON form of the push API:
//
//	{"streams":[{"stream":{"label":"value"},"values":[["<unix ns>","<line>",{"meta":"value"}]]}]}
func (p *push) json() []byte {
	type jsonStream struct {
		Stream map[string]string `json:"stream"`
		Values [][]any           `json:"values"`
	}
	body := struct {
		Streams []jsonStream `json:"streams"`
	}{Streams: make([]jsonStream, 0, len(p.order))}
	for _, s := range p.order {
		js := jsonStream{Stream: make(map[string]string, len(s.pairs)), Values: make([][]any, 0, len(s.entries))}
		for _, l := range s.pairs {
			js.Stream[l.name] = l.value
		}
		for _, e := range s.entries {
			v := []any{strconv.FormatInt(e.ts, 10), e.line}
			if n := len(e.shared) + len(e.meta); n > 0 {
				m := make(map[string]string, n)
				for _, ms := range e.metadata() {
					for _, kv := range ms {
						m[kv.name] = kv.value // a repeated name keeps the last value
					}
				}
				v = append(v, m)
			}
			js.Values = append(js.Values, v)
		}
		body.Streams = append(body.Streams, js)
	}
	b, _ := json.Marshal(body) // strings and maps of strings: cannot fail
	return b
}

// line is the log line of a body: a string as it is, "" for none, other
// values as JSON.
func line(v *common.AnyValue) string {
	if v == nil || v.Value == nil {
		return ""
	}
	if s, ok := v.Value.(*common.AnyValue_StringValue); ok {
		return s.StringValue
	}
	return valueString(v)
}

// valueString renders an attribute value for a label or structured
// metadata: strings as they are, numbers and booleans in Go syntax, bytes
// in base64, arrays and maps as JSON.
func valueString(v *common.AnyValue) string {
	if v == nil {
		return ""
	}
	switch x := v.Value.(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *common.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *common.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *common.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case nil:
		return ""
	}
	b, err := json.Marshal(plain(v, 0))
	if err != nil {
		return ""
	}
	return string(b)
}

// plain converts v to a value encoding/json renders as JSON would show it.
func plain(v *common.AnyValue, depth int) any {
	if v == nil || depth > 64 {
		return nil
	}
	switch x := v.Value.(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return x.IntValue
	case *common.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
		}
		return x.DoubleValue
	case *common.AnyValue_BoolValue:
		return x.BoolValue
	case *common.AnyValue_BytesValue:
		return x.BytesValue // base64 by encoding/json
	case *common.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, plain(e, depth+1))
		}
		return out
	case *common.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.Key] = plain(kv.Value, depth+1)
		}
		return out
	}
	return nil
}
