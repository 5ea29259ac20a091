package loki

import (
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

type entry struct {
	ts   int64 // unix nanoseconds
	line string
	meta []pair
}

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
	key     strings.Builder
	scratch []pair
}

func newPush() *push { return &push{streams: map[string]*lokiStream{}} }

// add appends e to the stream of labels (in any order; sorted here).
func (p *push) add(labels []pair, e entry) {
	labels = append(p.scratch[:0], labels...) // the caller's slice stays as it is
	if len(labels) == 0 {
		labels = append(labels, pair{"service_name", "unknown_service"}) // Loki needs a label
	}
	p.scratch = labels
	slices.SortFunc(labels, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	p.key.Reset()
	p.key.WriteByte('{')
	for i, l := range labels {
		if i > 0 {
			p.key.WriteString(", ")
		}
		p.key.WriteString(l.name)
		p.key.WriteByte('=')
		p.key.WriteString(strconv.Quote(l.value))
	}
	p.key.WriteByte('}')
	st := p.streams[p.key.String()]
	if st == nil {
		key := p.key.String()
		st = &lokiStream{labels: key, pairs: slices.Clone(labels)}
		p.streams[key] = st
		p.order = append(p.order, st)
		p.bytes += len(key) + 8
	}
	st.entries = append(st.entries, e)
	p.entries++
	p.bytes += len(e.line) + 16
	for _, m := range e.meta {
		p.bytes += len(m.name) + len(m.value) + 6
	}
}

// sort orders the entries of each stream by time (stable: equal times keep
// their order).
func (p *push) sort() {
	for _, st := range p.order {
		slices.SortStableFunc(st.entries, func(a, b entry) int {
			switch {
			case a.ts < b.ts:
				return -1
			case a.ts > b.ts:
				return 1
			}
			return 0
		})
	}
}

// protobuf encodes p as a logproto.PushRequest (grafana/loki pkg/push):
//
//	PushRequest   { repeated StreamAdapter streams = 1; }
//	StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; }
//	EntryAdapter  { Timestamp timestamp = 1; string line = 2; repeated LabelPairAdapter structuredMetadata = 3; }
//	LabelPairAdapter { string name = 1; string value = 2; }
func (p *push) protobuf() []byte {
	out := make([]byte, 0, p.bytes+64)
	var st, en, ts []byte
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
			for _, m := range e.meta {
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
			if len(e.meta) > 0 {
				m := make(map[string]string, len(e.meta))
				for _, kv := range e.meta {
					m[kv.name] = kv.value // a repeated name keeps the last value
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
