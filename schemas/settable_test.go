package schemas_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
)

// TestSetTableBuilder: a table of sets holds each set as the Builder
// decodes it as a data point's attributes, every value type and encoding
// alike, from table to table of one builder; bad input is refused.
func TestSetTableBuilder(t *testing.T) {
	s := func(v string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
	}
	i := func(v int64) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
	}
	sets := [][]*commonpb.KeyValue{
		{{Key: "http.route", Value: s("/cart")}, {Key: "code", Value: i(200)}, {Key: "big", Value: i(1 << 40)}, {Key: "neg", Value: i(-3)}},
		{},
		{{Key: "d", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}},
			{Key: "b", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
			{Key: "raw", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 2}}}},
			{Key: "long", Value: s(strings.Repeat("x", 300))},
			{Key: "list", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{s("a"), i(1)}}}}},
			{Key: "kv", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "in", Value: s("side")}}}}}},
			{Key: "empty"}},
		{{Key: "http.route", Value: s("/cart")}, {Key: "code", Value: i(200)}, {Key: "big", Value: i(1 << 40)}, {Key: "neg", Value: i(-3)}},
		{{Key: "ü", Value: s("ß")}},
	}
	// As the Builder decodes them: one data point per set.
	var pts []*metricspb.NumberDataPoint
	for _, kvs := range sets {
		pts = append(pts, &metricspb.NumberDataPoint{Attributes: kvs, TimeUnixNano: 1, Value: &metricspb.NumberDataPoint_AsInt{AsInt: 1}})
	}
	body, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{ScopeMetrics: []*metricspb.ScopeMetrics{{
		Metrics: []*metricspb.Metric{{Name: "g", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: pts}}}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	mem := arrowpool.NewPoisoned()
	b := schemas.NewBuilder(otlpwire.Metrics, mem)
	defer b.Release()
	if _, err := b.Append(body); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	want := batch.Items.Column(schemas.PtAttributes)

	tb := schemas.NewSetTableBuilder(mem)
	for round := range 3 { // buffers sized from the table before
		for _, kvs := range sets {
			enc, err := proto.Marshal(&resourcepb.Resource{Attributes: kvs}) // attributes = 1
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Add(string(enc)); err != nil {
				t.Fatal(err)
			}
		}
		if tb.Len() != len(sets) {
			t.Fatalf("round %d: %d rows, want %d", round, tb.Len(), len(sets))
		}
		got, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		if !array.Equal(got, want) {
			t.Fatalf("round %d: table\n%v\nwant the points' attributes\n%v", round, got, want)
		}
		got.Release()
	}

	bad, _ := proto.Marshal(&resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "k", Value: s("ok")}}})
	bad[len(bad)-1] = 0xff // the value's last byte: not UTF-8
	if err := tb.Add(string(bad)); err != nil {
		t.Fatalf("Add checks later: %v", err)
	}
	if _, err := tb.Build(); !errors.Is(err, schemas.ErrMalformed) {
		t.Errorf("a string that is not UTF-8: %v", err)
	}
	for _, enc := range []string{"\x0a\x05ab", "\x08\x01"} { // truncated; not length-delimited
		if err := tb.Add(enc); !errors.Is(err, schemas.ErrMalformed) {
			t.Errorf("Add(%q): %v", enc, err)
		}
		tb.Reset()
	}
	// usable again after an error
	tb.Add("")
	if got, err := tb.Build(); err != nil || got.Len() != 1 {
		t.Fatalf("after Reset: %v", err)
	} else {
		got.Release()
	}
}
