package otlpwire_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	. "github.com/sluice-dev/sluice/internal/otlpwire" // the tests are outside the package: see export_test.go
)

// Helpers to write requests field by field, malformed ones included.

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func tag(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }

func fLen(num protowire.Number, content ...[]byte) []byte {
	return protowire.AppendBytes(tag(num, protowire.BytesType), cat(content...))
}

func fStr(num protowire.Number, s string) []byte { return fLen(num, []byte(s)) }

func fVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(tag(num, protowire.VarintType), v)
}

// fTrunc is a length-delimited field that claims n bytes and holds content.
func fTrunc(num protowire.Number, n uint64, content []byte) []byte {
	return append(protowire.AppendVarint(tag(num, protowire.BytesType), n), content...)
}

// wrap nests content as request > resource > scope, with the item or metric
// fields given.
func wrap(children ...[]byte) []byte {
	return fLen(1, fLen(2, children...))
}

func TestFormatErrors(t *testing.T) {
	point := fLen(1, fVarint(2, 1))
	tests := []struct {
		name  string
		sig   Signal
		key   KeyMode // checked with Split only when set
		body  []byte
		path  string
		msg   string // prefix of Msg
		count bool   // Count accepts it (it is only wrong for Split's key)
	}{
		{
			name: "truncated histogram",
			body: wrap(fLen(2, fStr(1, "ok")), fLen(2, fStr(1, "h"), fTrunc(9, 50, []byte{1, 2, 3}))),
			path: "resource_metrics[0].scope_metrics[0].metrics[1]",
			msg:  "truncated length-delimited field 9 (histogram): length 50 exceeds the 3 bytes left",
		},
		{
			name: "scope_metrics as varint",
			body: fLen(1, fVarint(2, 7)),
			path: "resource_metrics[0]",
			msg:  "wrong wire type 0 for field 2 (scope_metrics)",
		},
		{
			name: "field number 0",
			body: []byte{0x00},
			msg:  "invalid field number 0",
		},
		{
			name: "field number above 2^29-1",
			body: protowire.AppendVarint(nil, uint64(1<<29)<<3),
			msg:  "invalid field number 536870912",
		},
		{
			name: "wire type 7",
			body: []byte{1<<3 | 7},
			msg:  "invalid wire type 7 for field 1 (resource_metrics)",
		},
		{
			name: "truncated tag",
			body: []byte{0x80},
			msg:  "malformed tag: unexpected EOF",
		},
		{
			name: "stray end-group",
			sig:  Logs,
			body: fLen(1, fLen(2, tag(5, protowire.EndGroupType))),
			path: "resource_logs[0].scope_logs[0]",
			msg:  "end-group tag for field 5 with no group open",
		},
		{
			name: "unclosed group",
			body: wrap(fLen(2, tag(100, protowire.StartGroupType), fVarint(1, 1))),
			path: "resource_metrics[0].scope_metrics[0].metrics[0]",
			msg:  "malformed group field 100: unexpected EOF",
		},
		{
			name: "truncated varint in resource",
			body: fLen(1, fLen(1, tag(2, protowire.VarintType), []byte{0x80})),
			path: "resource_metrics[0].resource",
			msg:  "malformed varint field 2 (dropped_attributes_count): unexpected EOF",
		},
		{
			name: "varint overflow",
			body: fLen(1, fLen(1, tag(2, protowire.VarintType), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
			path: "resource_metrics[0].resource",
			msg:  "malformed varint field 2 (dropped_attributes_count): variable length integer overflow",
		},
		{
			name: "truncated length",
			body: cat(tag(1, protowire.BytesType), []byte{0x80}),
			msg:  "malformed length of field 1 (resource_metrics): unexpected EOF",
		},
		{
			name: "truncated fixed64",
			body: cat(tag(9, protowire.Fixed64Type), []byte{1, 2, 3}),
			msg:  "truncated fixed64 field 9",
		},
		{
			name: "metric name not UTF-8",
			body: wrap(fLen(2, fStr(1, "bad\xff"))),
			path: "resource_metrics[0].scope_metrics[0].metrics[0]",
			msg:  "invalid UTF-8 in string field 1 (name)",
		},
		{
			name: "scope name not UTF-8",
			body: fLen(1, fLen(2, fLen(1, fStr(1, "\xc0")))),
			path: "resource_metrics[0].scope_metrics[0].scope",
			msg:  "invalid UTF-8 in string field 1 (name)",
		},
		{
			name: "gauge and sum",
			body: wrap(fLen(2, fLen(5, point), fLen(7, point))),
			path: "resource_metrics[0].scope_metrics[0].metrics[0]",
			msg:  "field 5 (gauge) and field 7 (sum) both set",
		},
		{
			name: "temporality as bytes",
			body: wrap(fLen(2, fLen(7, point, fStr(2, "x")))),
			path: "resource_metrics[0].scope_metrics[0].metrics[0].sum",
			msg:  "wrong wire type 2 for field 2 (aggregation_temporality)",
		},
		{
			name: "truncated data point",
			body: wrap(fLen(2, fLen(10, fTrunc(1, 9, []byte{1})))),
			path: "resource_metrics[0].scope_metrics[0].metrics[0].exponential_histogram",
			msg:  "truncated length-delimited field 1 (data_points)",
		},
		{
			name: "second resource",
			sig:  Logs,
			body: cat(fLen(1), fLen(1, fStr(3, "ok"), fLen(2), fLen(2, fVarint(3, 1)))),
			path: "resource_logs[1].scope_logs[1]",
			msg:  "wrong wire type 0 for field 3 (schema_url)",
		},
		{
			name:  "trace id as varint",
			sig:   Traces,
			key:   KeyTraceID,
			body:  fLen(1, fLen(2, fLen(2, fVarint(1, 5)))),
			path:  "resource_spans[0].scope_spans[0].spans[0]",
			msg:   "wrong wire type 0 for field 1 (trace_id)",
			count: true,
		},
		{
			name:  "log record truncated inside",
			sig:   Logs,
			key:   KeyTraceID,
			body:  fLen(1, fLen(2, fLen(2, fTrunc(9, 16, []byte{1})))),
			path:  "resource_logs[0].scope_logs[0].log_records[0]",
			msg:   "truncated length-delimited field 9 (trace_id)",
			count: true,
		},
	}
	var s Splitter
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("%s: got %v, want a *FormatError", what, err)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: %v does not wrap ErrMalformed", what, err)
				}
				if fe.Path != tt.path || !strings.HasPrefix(fe.Msg, tt.msg) {
					t.Errorf("%s:\n got %q: %q\nwant %q: %q...", what, fe.Path, fe.Msg, tt.path, tt.msg)
				}
				if fe.Offset < 0 || fe.Offset >= len(tt.body) {
					t.Errorf("%s: offset %d outside the body", what, fe.Offset)
				}
			}
			if _, err := Count(tt.sig, tt.body); tt.count {
				if err != nil {
					t.Errorf("Count: %v", err)
				}
			} else {
				check("Count", err)
			}
			key := tt.key
			if key == 0 {
				key = KeyNone
			}
			_, err := s.Split(tt.sig, tt.body, Options{Partitions: 4, Key: key})
			check("Split", err)
		})
	}
}

// TestLenient lists what the scanner accepts although it looks odd: it is
// valid protobuf and decodes to what the sender meant.
func TestLenient(t *testing.T) {
	point := fLen(1, fVarint(2, 1))
	tests := []struct {
		name  string
		sig   Signal
		body  []byte
		items int
	}{
		{"empty request", Metrics, nil, 0},
		{"empty resource and scope", Logs, fLen(1, fLen(2)), 0},
		{"gauge with a field 2 of any type", Metrics, wrap(fLen(2, fLen(5, point, fStr(2, "x")))), 1},
		{"sum in two fields", Metrics, wrap(fLen(2, fLen(7, point), fLen(7, point, point))), 3},
		{"unknown fields and groups at every level", Traces, cat(
			fVarint(99, 1),
			fLen(1, fStr(100, "r"), fLen(2, fLen(2), tag(7, protowire.StartGroupType), fVarint(1, 1), tag(7, protowire.EndGroupType), fLen(2))),
			protowire.AppendFixed32(tag(98, protowire.Fixed32Type), 1)), 2},
		{"non-minimal tag and length", Logs, fLen(1, []byte{0x92, 0x00, 0x80, 0x00}), 0},
		{"fields in reverse order", Logs, fLen(1, fStr(3, "s"), fLen(2, fStr(3, "u"), fLen(2), fLen(1)), fLen(1)), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Count(tt.sig, tt.body)
			if err != nil || n != tt.items {
				t.Errorf("Count = %d, %v; want %d", n, err, tt.items)
			}
		})
	}
}

func TestFormatErrorString(t *testing.T) {
	_, err := Count(Metrics, fLen(1, fVarint(2, 7)))
	const want = "otlpwire: resource_metrics[0]: wrong wire type 0 for field 2 (scope_metrics) (protobuf offset 2)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
