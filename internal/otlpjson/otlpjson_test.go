package otlpjson

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func spans(ss ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: ss}},
	}}}
}

// TestExamples decodes the examples of the opentelemetry-proto repository
// and checks a few fields by hand, then encodes them back.
func TestExamples(t *testing.T) {
	for _, tc := range []struct {
		file  string
		sig   otlpwire.Signal
		check func(t *testing.T, m proto.Message)
	}{
		{"trace.json", otlpwire.Traces, func(t *testing.T, m proto.Message) {
			span := m.(*coltracepb.ExportTraceServiceRequest).ResourceSpans[0].ScopeSpans[0].Spans[0]
			if !bytes.Equal(span.TraceId, unhex("5b8efff798038103d269b633813fc60c")) ||
				!bytes.Equal(span.SpanId, unhex("eee19b7ec3c1b174")) ||
				!bytes.Equal(span.ParentSpanId, unhex("eee19b7ec3c1b173")) {
				t.Errorf("ids: %x %x %x", span.TraceId, span.SpanId, span.ParentSpanId)
			}
			if span.Kind != tracepb.Span_SPAN_KIND_SERVER || span.StartTimeUnixNano != 1544712660000000000 {
				t.Errorf("span: %v", span)
			}
		}},
		{"metrics.json", otlpwire.Metrics, func(t *testing.T, m proto.Message) {
			ms := m.(*colmetricspb.ExportMetricsServiceRequest).ResourceMetrics[0].ScopeMetrics[0].Metrics
			if len(ms) != 3 || ms[0].GetSum().AggregationTemporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA ||
				ms[1].GetGauge().DataPoints[0].GetAsDouble() != 10 ||
				ms[2].GetHistogram().DataPoints[0].GetMax() != 1 {
				t.Errorf("metrics: %v", ms)
			}
		}},
		{"logs.json", otlpwire.Logs, func(t *testing.T, m proto.Message) {
			rec := m.(*collogspb.ExportLogsServiceRequest).ResourceLogs[0].ScopeLogs[0].LogRecords[0]
			if !bytes.Equal(rec.TraceId, unhex("5b8efff798038103d269b633813fc60c")) || len(rec.Attributes) != 6 ||
				rec.Attributes[2].Value.GetIntValue() != 10 || rec.Attributes[5].Value.GetKvlistValue().Values[0].Key != "some.map.key" {
				t.Errorf("log record: %v", rec)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := checkUnmarshal(t, tc.sig, false, body)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
			pb, _ := proto.Marshal(m)
			js, err := checkMarshal(t, tc.sig, false, pb)
			if err != nil {
				t.Fatal(err)
			}
			back, err := checkUnmarshal(t, tc.sig, false, js)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(m, back) {
				t.Errorf("round trip:\n%v\n%v", m, back)
			}
		})
	}
}

func TestUnmarshalRequest(t *testing.T) {
	traceID := unhex("5b8efff798038103d269b633813fc60c")
	spanID := unhex("eee19b7ec3c1b174")
	for _, tc := range []struct {
		name string
		sig  otlpwire.Signal
		body string
		want proto.Message
	}{
		{
			name: "snake_case names",
			sig:  otlpwire.Traces,
			body: `{"resource_spans":[{"schema_url":"u","scope_spans":[{"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c",
				"span_id":"EEE19B7EC3C1B174","parent_span_id":"","start_time_unix_nano":"7","dropped_attributes_count":2}]}]}]}`,
			want: &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				SchemaUrl:  "u",
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{TraceId: traceID, SpanId: spanID, StartTimeUnixNano: 7, DroppedAttributesCount: 2}}}},
			}}},
		},
		{
			name: "unknown fields ignored at every level",
			sig:  otlpwire.Traces,
			body: `{"extra":{"a":[1,{"b":null},"c",true,-2.5e3]},"resourceSpans":[{"resource":{"foo":[[]],"attributes":[]},
				"scopeSpans":[{"spans":[{"name":"s","future":{"traceId":"not hex"},"droppedLinksCount":1}],"more":[]}]}],"last":"x"}`,
			want: &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				Resource:   &resourcepb.Resource{},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "s", DroppedLinksCount: 1}}}},
			}}},
		},
		{
			name: "enum as number",
			sig:  otlpwire.Traces,
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":3,"status":{"code":2}}]}]}]}`,
			want: spans(&tracepb.Span{Kind: tracepb.Span_SPAN_KIND_CLIENT, Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}}),
		},
		{
			name: "enum as name",
			sig:  otlpwire.Traces,
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}`,
			want: spans(&tracepb.Span{Kind: tracepb.Span_SPAN_KIND_CLIENT, Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}}),
		},
		{
			name: "enum unknown name ignored, unknown number kept",
			sig:  otlpwire.Traces,
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_TELEPATHY","status":{"code":9}}]}]}]}`,
			want: spans(&tracepb.Span{Status: &tracepb.Status{Code: 9}}),
		},
		{
			name: "attribute named traceId is data",
			sig:  otlpwire.Traces,
			body: `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","attributes":[
				{"key":"traceId","value":{"stringValue":"not hex at all"}},
				{"key":"spanId","value":{"bytesValue":"AQID"}},
				{"key":"m","value":{"kvlistValue":{"values":[{"key":"parentSpanId","value":{"stringValue":"zz"}}]}}}]}]}]}]}`,
			want: spans(&tracepb.Span{TraceId: traceID, Attributes: []*commonpb.KeyValue{
				{Key: "traceId", Value: str("not hex at all")},
				{Key: "spanId", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2, 3}}}},
				{Key: "m", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
					Values: []*commonpb.KeyValue{{Key: "parentSpanId", Value: str("zz")}},
				}}}},
			}}),
		},
		{
			name: "64-bit integers as strings and numbers",
			sig:  otlpwire.Metrics,
			body: `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"dataPoints":[
				{"timeUnixNano":"18446744073709551615","asInt":"-9223372036854775808"},
				{"timeUnixNano":1.5e3,"asInt":-42,"startTimeUnixNano":"1e2"}]}}]}]}]}`,
			want: &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
				ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
					DataPoints: []*metricspb.NumberDataPoint{
						{TimeUnixNano: math.MaxUint64, Value: &metricspb.NumberDataPoint_AsInt{AsInt: math.MinInt64}},
						{TimeUnixNano: 1500, StartTimeUnixNano: 100, Value: &metricspb.NumberDataPoint_AsInt{AsInt: -42}},
					},
				}}}}}},
			}}},
		},
		{
			name: "doubles: special values, zero with presence",
			sig:  otlpwire.Metrics,
			body: `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[
				{"sum":"NaN","min":"-Infinity","max":0,"explicitBounds":[1,"2.5",-0]}]}}]}]}]}`,
			want: &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
				ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
					DataPoints: []*metricspb.HistogramDataPoint{{
						Sum: proto.Float64(math.NaN()), Min: proto.Float64(math.Inf(-1)), Max: proto.Float64(0),
						ExplicitBounds: []float64{1, 2.5, math.Copysign(0, -1)},
					}},
				}}}}}},
			}}},
		},
		{
			name: "null is an absent field",
			sig:  otlpwire.Logs,
			body: `{"resourceLogs":[{"resource":null,"scopeLogs":[{"logRecords":[{"traceId":null,"body":null,"severityNumber":null,"attributes":null,"eventName":"e"}]}]}]}`,
			want: &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
				ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{EventName: "e"}}}},
			}}},
		},
		{
			name: "strings with escapes",
			sig:  otlpwire.Logs,
			body: `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityText":"a\"b\\c\/\u00e9\ud83d\ude00\n","body":{"stringValue":""}}]}]}]}`,
			want: &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
				ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{SeverityText: "a\"b\\c/é😀\n", Body: str("")}}}},
			}}},
		},
		{
			name: "empty request",
			sig:  otlpwire.Logs,
			body: " {}\n",
			want: &collogspb.ExportLogsServiceRequest{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkUnmarshal(t, tc.sig, false, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalRequestErrors(t *testing.T) {
	const span = `{"resourceSpans":[{"scopeSpans":[{"spans":[{},{},%s]}]}]}`
	wrap := func(s string) string { return strings.Replace(span, "%s", s, 1) }
	for _, tc := range []struct {
		name string
		sig  otlpwire.Signal
		body string
		want string // the whole error message
	}{
		{"invalid hex", otlpwire.Traces, wrap(`{"traceId":"zz8efff798038103d269b633813fc60c"}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].traceId: invalid hex "zz8efff798038103d269b633813fc60c" in trace id (line 1, column 61)`},
		{"short trace id", otlpwire.Traces, wrap(`{"traceId":"5b8e"}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].traceId: invalid trace id "5b8e": want 32 hex digits (16 bytes) (line 1, column 61)`},
		{"base64 span id", otlpwire.Traces, wrap(`{"spanId":"7uGbfsPBsXQ="}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].spanId: invalid span id "7uGbfsPBsXQ=": want 16 hex digits (8 bytes) (line 1, column 60)`},
		{"parent span id", otlpwire.Traces, wrap(`{"parentSpanId":"eee19b7ec3c1b1"}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].parentSpanId: invalid span id "eee19b7ec3c1b1": want 16 hex digits (8 bytes) (line 1, column 66)`},
		{"link span id", otlpwire.Traces, wrap(`{"links":[{},{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"xyz"}]}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].links[1].spanId: invalid span id "xyz": want 16 hex digits (8 bytes) (line 1, column 118)`},
		{"log record trace id", otlpwire.Logs, `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"5b8efff798038103d269b633813fc60"}]}]}]}`,
			`otlpjson: resourceLogs[0].scopeLogs[0].logRecords[0].traceId: invalid trace id "5b8efff798038103d269b633813fc60": want 32 hex digits (16 bytes) (line 1, column 58)`},
		{"exemplar span id", otlpwire.Metrics, `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"exemplars":[{"spanId":"eee19b7ec3c1b17g"}]}]}}]}]}]}`,
			`otlpjson: resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].exemplars[0].spanId: invalid hex "eee19b7ec3c1b17g" in span id (line 1, column 98)`},
		{"id not a string", otlpwire.Traces, wrap(`{"traceId":5}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].traceId: invalid value 5 for a field of type id (hex) (line 1, column 61)`},
		{"wrong type", otlpwire.Traces, wrap(`{"name":true}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].name: invalid value true for a field of type string (line 1, column 58)`},
		{"int out of range", otlpwire.Traces, wrap(`{"droppedEventsCount":4294967296}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].droppedEventsCount: invalid value 4294967296 for a field of type uint32 (line 1, column 72)`},
		{"fraction in an integer", otlpwire.Traces, wrap(`{"startTimeUnixNano":"1.5"}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: invalid value "1.5" for a field of type fixed64 (line 1, column 71)`},
		{"duplicate field", otlpwire.Traces, wrap(`{"name":"a","name":"b"}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2]: duplicate field "name" (line 1, column 62)`},
		{"duplicate field in both spellings", otlpwire.Traces, wrap(`{"traceId":null,"trace_id":null}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2]: duplicate field "traceId" (line 1, column 66)`},
		{"two members of a oneof", otlpwire.Traces, wrap(`{"attributes":[{"key":"k","value":{"stringValue":"a","intValue":1}}]}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].attributes[0].value: fields "stringValue" and "intValue" are both set; only one of them may be (line 1, column 103)`},
		{"list expected", otlpwire.Traces, `{"resourceSpans":{}}`,
			`otlpjson: resourceSpans: expected '[', found "{" (line 1, column 18)`},
		{"missing comma", otlpwire.Traces, "{\n\"resourceSpans\":[]\n\"x\":1}",
			`otlpjson: expected ',' or '}', found "\"x\"" (line 3, column 1)`},
		{"trailing comma", otlpwire.Traces, `{"resourceSpans":[],}`,
			`otlpjson: expected a field name, found "}" (line 1, column 21)`},
		{"data after the object", otlpwire.Traces, `{} {}`,
			`otlpjson: unexpected "{" after the top-level object (line 1, column 4)`},
		{"empty body", otlpwire.Traces, ``,
			`otlpjson: expected '{', found end of input (line 1, column 1)`},
		{"array body", otlpwire.Traces, `[]`,
			`otlpjson: expected '{', found "[" (line 1, column 1)`},
		{"invalid UTF-8", otlpwire.Logs, "{\"resourceLogs\":[{\"schemaUrl\":\"a\xffb\"}]}",
			`otlpjson: resourceLogs[0].schemaUrl: invalid UTF-8 in string (line 1, column 33)`},
		{"invalid UTF-8 in an unknown field", otlpwire.Logs, "{\"x\":\"\xc3\"}",
			`otlpjson: invalid UTF-8 in string (line 1, column 7)`},
		{"lone surrogate", otlpwire.Logs, `{"resourceLogs":[{"schemaUrl":"\ud800"}]}`,
			`otlpjson: resourceLogs[0].schemaUrl: invalid escape "\\ud800\"}]}" in string: half of a surrogate pair (line 1, column 32)`},
		{"control character", otlpwire.Logs, "{\"resourceLogs\":[{\"schemaUrl\":\"\t\"}]}",
			`otlpjson: resourceLogs[0].schemaUrl: invalid control character '\t' in string (line 1, column 32)`},
		{"number then letter", otlpwire.Logs, `{"x":1x}`,
			`otlpjson: invalid number "1x" (line 1, column 6)`},
		{"exponent without digits", otlpwire.Traces, wrap(`{"startTimeUnixNano":1e}`),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: invalid value 1e for a field of type fixed64 (line 1, column 71)`},
		{"unterminated", otlpwire.Traces, `{"resourceSpans":[{"scopeSpans":[`,
			`otlpjson: resourceSpans[0].scopeSpans[0]: expected '{', found end of input (line 1, column 34)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkUnmarshal(t, tc.sig, false, []byte(tc.body))
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%T is not an *Error", err)
			}
		})
	}
}

func TestUnmarshalKeepsDst(t *testing.T) {
	dst := []byte("prefix")
	out, err := UnmarshalRequest(otlpwire.Traces, []byte(`{"resourceSpans":[{}]}`), dst)
	if err != nil {
		t.Fatal(err)
	}
	if string(out[:6]) != "prefix" || !bytes.Equal(out[6:], []byte{0x0a, 0x00}) {
		t.Errorf("got %q", out)
	}
	out, err = UnmarshalRequest(otlpwire.Traces, []byte(`{"resourceSpans":[{"x":}]}`), dst)
	if err == nil || string(out) != "prefix" {
		t.Errorf("on error got %q, %v", out, err)
	}
}

func TestUnknownSignal(t *testing.T) {
	if _, err := UnmarshalRequest(otlpwire.Signal(9), []byte(`{}`), nil); err == nil || !strings.Contains(err.Error(), "signal(9)") {
		t.Errorf("UnmarshalRequest: %v", err)
	}
	if _, err := MarshalRequest(otlpwire.Signal(9), nil, nil); err == nil {
		t.Error("MarshalRequest: no error")
	}
}

func TestResponses(t *testing.T) {
	for _, tc := range []struct {
		sig  otlpwire.Signal
		body string
		want proto.Message
	}{
		{otlpwire.Traces, `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"too old"}}`,
			&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"}}},
		{otlpwire.Metrics, `{"partial_success":{"rejected_data_points":5}}`,
			&colmetricspb.ExportMetricsServiceResponse{PartialSuccess: &colmetricspb.ExportMetricsPartialSuccess{RejectedDataPoints: 5}}},
		{otlpwire.Logs, `{"partialSuccess":{}}`,
			&collogspb.ExportLogsServiceResponse{PartialSuccess: &collogspb.ExportLogsPartialSuccess{}}},
		{otlpwire.Logs, `{}`, &collogspb.ExportLogsServiceResponse{}},
	} {
		got, err := checkUnmarshal(t, tc.sig, true, []byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s: got %v", tc.body, got)
		}
		pb, _ := proto.Marshal(tc.want)
		js, err := checkMarshal(t, tc.sig, true, pb)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v: %s", tc.sig, js)
	}
	js, err := MarshalResponse(otlpwire.Traces, mustMarshal(&coltracepb.ExportTraceServiceResponse{
		PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "too old"},
	}), nil)
	if want := `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"too old"}}`; err != nil || string(js) != want {
		t.Errorf("MarshalResponse: %s, %v; want %s", js, err, want)
	}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// TestMarshalRequest pins the output format.
func TestMarshalRequest(t *testing.T) {
	req := spans(&tracepb.Span{
		TraceId: unhex("5b8efff798038103d269b633813fc60c"), SpanId: unhex("eee19b7ec3c1b174"),
		Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1544712660000000000, Flags: 0x101,
		Attributes: []*commonpb.KeyValue{
			{Key: "traceId", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0xff, 1}}}},
			{Key: "d", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1e-7}}},
			{Key: "zero", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{}}},
		},
		Links:  []*tracepb.Span_Link{{SpanId: unhex("0000000000000001"), TraceState: "a=\"<b>\"\x01"}},
		Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
	})
	want := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",` +
		`"flags":257,"name":"GET /","kind":2,"startTimeUnixNano":"1544712660000000000","attributes":[` +
		`{"key":"traceId","value":{"bytesValue":"/wE="}},{"key":"d","value":{"doubleValue":1e-7}},{"key":"zero","value":{"intValue":"0"}}],` +
		`"links":[{"spanId":"0000000000000001","traceState":"a=\"<b>\"\u0001"}],"status":{"code":1}}]}]}]}`
	got, err := checkMarshal(t, otlpwire.Traces, false, mustMarshal(req))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	dst, err := MarshalRequest(otlpwire.Traces, mustMarshal(req), []byte("x"))
	if err != nil || string(dst) != "x"+want {
		t.Errorf("appending to dst: %s, %v", dst, err)
	}
}

// TestMarshalWire feeds the encoder wire encodings proto.Marshal does not
// write but other encoders may: fields out of order, repeated numbers
// unpacked, a message split in two, oneofs set twice, unknown fields.
func TestMarshalWire(t *testing.T) {
	tag := protowire.AppendTag
	msg := func(b []byte, num protowire.Number, body ...[]byte) []byte {
		return protowire.AppendBytes(tag(b, num, protowire.BytesType), bytes.Join(body, nil))
	}
	anyInt := func(n uint64) []byte { return protowire.AppendVarint(tag(nil, 3, protowire.VarintType), n) }
	anyStr := func(s string) []byte { return msg(nil, 1, []byte(s)) }
	kv := func(key string, val ...[]byte) []byte {
		return msg(msg(nil, 1, []byte(key)), 2, val...)
	}
	attrsReq := func(kvs ...[]byte) []byte { // a span with these attributes
		var span []byte
		for _, kv := range kvs {
			span = msg(span, 9, kv)
		}
		return msg(nil, 1, msg(nil, 2, msg(nil, 2, span)))
	}
	hist := func(dp []byte) []byte { // a metric with one histogram point
		return msg(nil, 1, msg(nil, 2, msg(nil, 2, msg(nil, 9, msg(nil, 1, dp)))))
	}
	unknown := protowire.AppendVarint(tag(nil, 99, protowire.VarintType), 1)
	for _, tc := range []struct {
		name string
		sig  otlpwire.Signal
		pb   []byte
		want string // empty: only compared with the reference
	}{
		{"oneof set twice, last wins", otlpwire.Traces, attrsReq(kv("k", anyStr("a"), anyInt(5))), ``},
		{"oneof switched back", otlpwire.Traces, attrsReq(kv("k", anyStr("a"), anyInt(5), anyStr("b"))), ``},
		{"message split in two merges", otlpwire.Traces,
			msg(nil, 1, msg(nil, 1, msg(nil, 1, kv("a", anyStr("x")))), msg(nil, 1, msg(nil, 1, kv("b", anyStr("y"))))),
			`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"x"}},{"key":"b","value":{"stringValue":"y"}}]}}]}`},
		{"unknown fields", otlpwire.Traces, append(unknown, attrsReq(append(kv("k", anyInt(1)), unknown...))...), ``},
		{"known field with another wire type is unknown", otlpwire.Traces,
			attrsReq(kv("k", protowire.AppendFixed32(tag(nil, 3, protowire.Fixed32Type), 7))), ``},
		{"repeated numbers unpacked and packed", otlpwire.Metrics, hist(bytes.Join([][]byte{
			protowire.AppendFixed64(tag(nil, 6, protowire.Fixed64Type), 1),
			protowire.AppendBytes(tag(nil, 6, protowire.BytesType), protowire.AppendFixed64(protowire.AppendFixed64(nil, 2), 3)),
			protowire.AppendFixed64(tag(nil, 6, protowire.Fixed64Type), 4),
			protowire.AppendBytes(tag(nil, 7, protowire.BytesType), nil),
		}, nil)), ``},
		{"fields out of order", otlpwire.Traces, msg(nil, 1, msg(nil, 2, msg(nil, 2,
			msg(nil, 5, []byte("n")), msg(nil, 1, unhex("5b8efff798038103d269b633813fc60c"))))),
			`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","name":"n"}]}]}]}`},
		{"int32 with high bits", otlpwire.Traces, msg(nil, 1, msg(nil, 2, msg(nil, 2,
			protowire.AppendVarint(tag(nil, 6, protowire.VarintType), 1<<32|2)))), ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkMarshal(t, tc.sig, false, tc.pb)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestMarshalRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  otlpwire.Signal
		pb   []byte
		want string
	}{
		{"short trace id", otlpwire.Traces, mustMarshal(spans(&tracepb.Span{}, &tracepb.Span{TraceId: []byte{1, 2}})),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[1].traceId: trace id has 2 bytes, want 16 (protobuf offset 10)`},
		{"invalid UTF-8", otlpwire.Traces, bytes.Replace(mustMarshal(spans(&tracepb.Span{}, &tracepb.Span{TraceState: "~"})), []byte("~"), []byte{0xff}, 1),
			`otlpjson: resourceSpans[0].scopeSpans[0].spans[1].traceState: invalid UTF-8 in string (protobuf offset 10)`},
		{"truncated", otlpwire.Traces, mustMarshal(spans(&tracepb.Span{Name: "abc"}))[:9],
			`otlpjson: resourceSpans: unexpected EOF (protobuf offset 1)`},
		{"string longer than its message", otlpwire.Traces, []byte{0x0a, 0x04, 0x12, 0x02, 0x12, 0x05},
			`otlpjson: resourceSpans[0].scopeSpans[0].spans: unexpected EOF (protobuf offset 5)`},
		{"not protobuf", otlpwire.Traces, []byte("{}"),
			`otlpjson: field 15: unexpected EOF (protobuf offset 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkMarshal(t, tc.sig, false, tc.pb)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

// TestDepth checks the nesting limit against protojson and proto.Unmarshal
// right at the limit.
func TestDepth(t *testing.T) {
	// An attribute value nests 2 messages per level (AnyValue, ArrayValue);
	// the span around it sits at depth 5 (request, ResourceSpans,
	// ScopeSpans, Span, KeyValue).
	for _, levels := range []int{100, maxDepth/2 - 3, maxDepth/2 - 2} {
		body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":` +
			strings.Repeat(`{"arrayValue":{"values":[`, levels) + `{}` + strings.Repeat(`]}}`, levels) + `}]}]}]}]}`
		// json.Valid stops at 10000 levels of brackets, fewer than the
		// messages here: compare with protojson without it.
		_, err := UnmarshalRequest(otlpwire.Traces, []byte(body), nil)
		hm := loadReference().newHexMessage(otlpwire.Traces, false)
		refErr := protojsonUnmarshal([]byte(body), hm)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("%d levels: otlpjson %v, protojson %v", levels, err, refErr)
		}
		t.Logf("%d levels: %v", levels, err)
		if err != nil {
			continue
		}
		// And back: json.Compact, which checkMarshal uses, has the same
		// limit as json.Valid, so compare messages here.
		js, err := MarshalRequest(otlpwire.Traces, mustMarshal(hm), nil)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := UnmarshalRequest(otlpwire.Traces, js, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, got := loadReference().newMessage(otlpwire.Traces, false), loadReference().newMessage(otlpwire.Traces, false)
		if err := proto.Unmarshal(mustMarshal(hm), want); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(pb, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%d levels: round trip differs", levels)
		}
	}
}

// TestOutputIsOneLine checks MarshalRequest writes no newline even when the
// data has some.
func TestOutputIsOneLine(t *testing.T) {
	js, err := MarshalRequest(otlpwire.Logs, mustMarshal(&collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{Body: str("a\nb\r\n")}}}},
	}}}), nil)
	if err != nil || bytes.ContainsAny(js, "\r\n") || !json.Valid(js) {
		t.Errorf("%q, %v", js, err)
	}
}

// TestLinear feeds both directions input whose naive handling is quadratic
// or worse: a long string at the bottom of deep nesting (each level's length
// would move it again), and messages that occur twice at every level of a
// deep nesting (each level's merge would read them again).
func TestLinear(t *testing.T) {
	t.Run("decode deep and large", func(t *testing.T) {
		const levels = 4000
		body := `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":` +
			strings.Repeat(`{"arrayValue":{"values":[`, levels) + `{"stringValue":"` + strings.Repeat("x", 4<<20) + `"}` +
			strings.Repeat(`]}}`, levels) + `}]}]}]}]}`
		start := time.Now()
		pb, err := UnmarshalRequest(otlpwire.Traces, []byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		var m coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(pb, &m); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("encode merges nested deep", func(t *testing.T) {
		tag := protowire.AppendTag
		msg := func(b []byte, num protowire.Number, body []byte) []byte {
			return protowire.AppendBytes(tag(b, num, protowire.BytesType), body)
		}
		value := msg(nil, 1, []byte("leaf")) // AnyValue{stringValue}
		for range 60 {
			kv := msg(msg(nil, 1, []byte("k")), 2, value)
			value = msg(msg(nil, 6, msg(nil, 1, kv)), 6, nil) // kvlistValue, twice
		}
		span := msg(nil, 9, msg(msg(nil, 1, []byte("k")), 2, value))
		pb := msg(nil, 1, msg(nil, 2, msg(nil, 2, span)))
		start := time.Now()
		if _, err := checkMarshal(t, otlpwire.Traces, false, pb); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

// TestConcurrent runs both directions from several goroutines, for the race
// detector: the schema is shared and the codec state pooled.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		r := benchRequests[g%len(benchRequests)]
		pb := mustMarshal(r.new())
		want, err := MarshalRequest(r.sig, pb, nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			var js, back []byte
			for range 20 {
				var err error
				if back, err = UnmarshalRequest(r.sig, want, back[:0]); err != nil {
					t.Error(err)
					return
				}
				if js, err = MarshalRequest(r.sig, back, js[:0]); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(js, want) {
					t.Error("output differs")
					return
				}
			}
		})
	}
	wg.Wait()
}
