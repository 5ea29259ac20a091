package promrw

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// otlpRequest wraps metrics in one resource and scope.
func otlpRequest(res []*commonpb.KeyValue, ms ...*metricspb.Metric) *colmetricspb.ExportMetricsServiceRequest {
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: res},
		ScopeMetrics: []*metricspb.ScopeMetrics{{
			Scope:   &commonpb.InstrumentationScope{Name: "io.sluice.test", Version: "1.2"},
			Metrics: ms,
		}},
	}}}
}

func gauge(name, unit string, ts time.Time, v float64, attrs ...*commonpb.KeyValue) *metricspb.Metric {
	return &metricspb.Metric{Name: name, Unit: unit, Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{
		DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: uint64(ts.UnixNano()), Attributes: attrs,
			Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}}}}}}
}

func sum(name, unit string, mono bool, temp metricspb.AggregationTemporality, ts time.Time, v int64, attrs ...*commonpb.KeyValue) *metricspb.Metric {
	return &metricspb.Metric{Name: name, Unit: unit, Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
		IsMonotonic: mono, AggregationTemporality: temp,
		DataPoints: []*metricspb.NumberDataPoint{{TimeUnixNano: uint64(ts.UnixNano()), StartTimeUnixNano: uint64(ts.Add(-time.Hour).UnixNano()),
			Attributes: attrs, Value: &metricspb.NumberDataPoint_AsInt{AsInt: v}}}}}}
}

// record turns req into a processed record, as the worker does.
func record(t testing.TB, req *colmetricspb.ExportMetricsServiceRequest, tenant string) *stream.Record {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	b := schemas.NewBuilder(otlpwire.Metrics, nil)
	defer b.Release()
	if _, err := b.Append(body); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	var buf bytes.Buffer
	if err := schemas.WriteBatch(&buf, batch); err != nil {
		t.Fatal(err)
	}
	hdrs := []stream.Header{
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeArrow)},
		{Key: stream.HeaderSignal, Value: []byte("metrics")},
	}
	if tenant != "" {
		hdrs = append(hdrs, stream.Header{Key: stream.HeaderTenant, Value: []byte(tenant)})
	}
	return &stream.Record{Topic: "sluice.metrics.processed", Value: buf.Bytes(), Headers: hdrs}
}

func newSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s, err := New("prom", cfg, sinks.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// query runs an instant PromQL query at ts.
func query(t testing.TB, base, q string, ts time.Time) []backendtest.Sample {
	t.Helper()
	return backendtest.Query(t, base, q, ts)
}

// fakeRW is a remote write endpoint that decodes requests; answer picks
// the status for each request from the metric names in it.
type fakeRW struct {
	answer func(names []string) (int, string)
	got    chan []string
}

func (f *fakeRW) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := s2.Decode(nil, body)
	if err != nil || r.Header.Get("Content-Encoding") != "snappy" {
		http.Error(w, "bad snappy", 400)
		return
	}
	names := metricNames(raw)
	status, retry := f.answer(names)
	if retry != "" {
		w.Header().Set("Retry-After", retry)
	}
	if status != 200 {
		http.Error(w, "refused "+names[0], status)
		return
	}
	if f.got != nil {
		f.got <- names
	}
}

// metricNames returns the __name__ of every TimeSeries of a WriteRequest.
func metricNames(p []byte) []string {
	var names []string
	for len(p) > 0 {
		_, _, n := protowire.ConsumeTag(p)
		ts, m := protowire.ConsumeBytes(p[n:])
		p = p[n+m:]
		for len(ts) > 0 {
			num, typ, n := protowire.ConsumeTag(ts)
			ts = ts[n:]
			m := protowire.ConsumeFieldValue(num, typ, ts)
			if num == fTSLabels {
				l, _ := protowire.ConsumeBytes(ts)
				_, _, k := protowire.ConsumeTag(l)
				name, kl := protowire.ConsumeBytes(l[k:])
				if string(name) == "__name__" {
					_, _, k2 := protowire.ConsumeTag(l[k+kl:])
					v, _ := protowire.ConsumeBytes(l[k+kl+k2:])
					names = append(names, string(v))
				}
			}
			ts = ts[m:]
		}
	}
	return names
}

func httpSinkConfig(u string) httpsink.Config { return httpsink.Config{URL: u} }
