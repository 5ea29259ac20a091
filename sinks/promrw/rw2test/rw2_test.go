// Package rw2test tests the prometheus_remote_write sink's remote write
// 2.0 against Prometheus' own receiver: remote.NewWriteHandler of
// github.com/prometheus/prometheus/storage/remote writing into a real TSDB
// opened in a temporary directory. It is a module of its own so that
// sluice's module does not depend on Prometheus' (a large tree).
package rw2test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	clientprom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/promrw"
	"github.com/sluice-dev/sluice/stream"
)

// receiver is Prometheus' remote write handler on 127.0.0.1 in front of a
// TSDB. The TSDB stores a start time as a zero sample before the sample
// (Prometheus' created-timestamp-zero-ingestion), so that the start times
// the sink sends show in what it holds. The metadata the handler passes
// with each append is recorded on its way to the TSDB (the TSDB keeps it
// only in its WAL, which has no reader for it).
type receiver struct {
	db  *tsdb.DB
	url string

	mu   sync.Mutex
	meta map[string]metadata.Metadata // by series

	v1, v2 atomic.Int64 // requests by content type
}

func newReceiver(t *testing.T, accept remoteapi.MessageTypes) *receiver {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.EnableSTAsZeroSample = true
	opts.OutOfOrderTimeWindow = 0
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &receiver{db: db, meta: map[string]metadata.Metadata{}}
	h := remote.NewWriteHandler(slog.New(slog.DiscardHandler), clientprom.NewRegistry(), r, accept, false, true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.Header.Get("Content-Type"), "io.prometheus.write.v2.Request") {
			r.v2.Add(1)
		} else {
			r.v1.Add(1)
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/api/v1/write"
	return r
}

// AppenderV2 implements storage.AppendableV2.
func (r *receiver) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recordingAppender{ExemplarAppenderV2: r.db.AppenderV2(ctx).(storage.ExemplarAppenderV2), r: r}
}

type recordingAppender struct {
	storage.ExemplarAppenderV2
	r *receiver
}

func (a *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	a.r.mu.Lock()
	a.r.meta[ls.String()] = opts.Metadata
	a.r.mu.Unlock()
	return a.ExemplarAppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

type sample struct {
	T int64
	V float64
	H *histogram.Histogram
}

// series reads back every series of the TSDB: its labels (as text) and
// its samples.
func (r *receiver) series(t *testing.T) map[string][]sample {
	t.Helper()
	q, err := r.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]sample{}
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		var got []sample
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				got = append(got, sample{T: ts, V: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				got = append(got, sample{T: ts, H: h})
			default:
				t.Fatalf("%s: sample of type %v", s.Labels(), vt)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = got
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (r *receiver) metadata(series string) metadata.Metadata {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta[series]
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func nanos(t time.Time) uint64 { return uint64(t.UnixNano()) }

// everyType is one OTLP request with a metric of each type, two points
// each (at t0 and t0+10s), cumulative ones started at start. The tests
// start their points 10 minutes before t0: the TSDB refuses a zero sample
// older than half its block range (an hour) before its newest sample,
// which another request of the batch may have written already.
func everyType(start, t0 time.Time) *colmetricspb.ExportMetricsServiceRequest {
	t1 := t0.Add(10 * time.Second)
	num := func(ts time.Time, v float64, attrs ...*commonpb.KeyValue) *metricspb.NumberDataPoint {
		return &metricspb.NumberDataPoint{StartTimeUnixNano: nanos(start), TimeUnixNano: nanos(ts), Attributes: attrs,
			Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}}
	}
	hist := func(ts time.Time, k uint64) *metricspb.HistogramDataPoint {
		s := 1.5 * float64(k)
		return &metricspb.HistogramDataPoint{StartTimeUnixNano: nanos(start), TimeUnixNano: nanos(ts), Count: 6 * k, Sum: &s,
			ExplicitBounds: []float64{0.1, 1}, BucketCounts: []uint64{k, 2 * k, 3 * k}}
	}
	exp := func(ts time.Time, k uint64) *metricspb.ExponentialHistogramDataPoint {
		s := 100.0 * float64(k)
		return &metricspb.ExponentialHistogramDataPoint{StartTimeUnixNano: nanos(start), TimeUnixNano: nanos(ts),
			Count: 9 * k, Sum: &s, Scale: 1, ZeroCount: k, ZeroThreshold: 1e-9,
			Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{Offset: -1, BucketCounts: []uint64{k, 2 * k, 3 * k}},
			Negative: &metricspb.ExponentialHistogramDataPoint_Buckets{Offset: 2, BucketCounts: []uint64{2 * k}}}
	}
	summ := func(ts time.Time, k float64) *metricspb.SummaryDataPoint {
		return &metricspb.SummaryDataPoint{StartTimeUnixNano: nanos(start), TimeUnixNano: nanos(ts), Count: uint64(10 * k), Sum: 20 * k,
			QuantileValues: []*metricspb.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: k}, {Quantile: 0.99, Value: 2 * k}}}
	}
	cum := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			str("service.name", "shop"), str("service.instance.id", "i-1"), str("host.name", "h1")}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{
			Metrics: []*metricspb.Metric{
				{Name: "room.temperature", Unit: "Cel", Description: "Temperature of the room",
					Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{
						num(t0, 21.5, str("room", "a")), num(t1, 22, str("room", "a")), num(t0, 19, str("room", "b"))}}}},
				{Name: "requests", Unit: "1", Description: "Requests served",
					Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true, AggregationTemporality: cum,
						DataPoints: []*metricspb.NumberDataPoint{num(t0, 5, str("code", "200")), num(t1, 8, str("code", "200"))}}}},
				{Name: "queue.length", Description: "Jobs waiting",
					Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: false, AggregationTemporality: cum,
						DataPoints: []*metricspb.NumberDataPoint{num(t0, 3), num(t1, 1)}}}},
				{Name: "latency", Unit: "s", Description: "Request latency",
					Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{AggregationTemporality: cum,
						DataPoints: []*metricspb.HistogramDataPoint{hist(t0, 1), hist(t1, 2)}}}},
				{Name: "payload.size", Unit: "By", Description: "Payload sizes",
					Data: &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{AggregationTemporality: cum,
						DataPoints: []*metricspb.ExponentialHistogramDataPoint{exp(t0, 1), exp(t1, 2)}}}},
				{Name: "rpc.time", Unit: "ms", Description: "RPC times",
					Data: &metricspb.Metric_Summary{Summary: &metricspb.Summary{DataPoints: []*metricspb.SummaryDataPoint{summ(t0, 1), summ(t1, 2)}}}},
			},
		}},
	}}}
}

// record is req as a record of the processed topic, in OTLP protobuf.
func record(t *testing.T, req *colmetricspb.ExportMetricsServiceRequest, offset int64) *stream.Record {
	t.Helper()
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &stream.Record{Topic: "t.processed.metrics", Offset: offset, Value: body, Headers: []stream.Header{
		{Key: stream.HeaderContentType, Value: []byte(stream.ContentTypeOTLPProto)},
		{Key: stream.HeaderSignal, Value: []byte("metrics")},
	}}
}

func newSink(t *testing.T, url, protocol string, reg clientprom.Registerer) *promrw.Sink {
	t.Helper()
	s, err := promrw.New("prom", promrw.Config{Config: httpsink.Config{URL: url}, Protocol: protocol, Concurrency: 2},
		sinks.Env{Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// want is what Prometheus holds once everyType(start, t0) went through the
// sink, as labels → samples. With start times (sent by 2.0 only), every
// series of a counter, histogram or the _sum and _count of a summary
// starts with a zero sample at the start time.
func want(start, t0 time.Time, withStart bool) map[string][]sample {
	t1 := t0.Add(10 * time.Second)
	f := func(v0, v1 float64) []sample { return []sample{{T: ms(t0), V: v0}, {T: ms(t1), V: v1}} }
	cnt := func(v0, v1 float64) []sample {
		if !withStart {
			return f(v0, v1)
		}
		return append([]sample{{T: ms(start)}}, f(v0, v1)...)
	}
	const res = `instance="i-1", job="shop"`
	w := map[string][]sample{
		`{__name__="room_temperature_celsius", ` + res + `, room="a"}`:     f(21.5, 22),
		`{__name__="room_temperature_celsius", ` + res + `, room="b"}`:     {{T: ms(t0), V: 19}},
		`{__name__="requests_total", code="200", ` + res + `}`:             cnt(5, 8),
		`{__name__="queue_length", ` + res + `}`:                           f(3, 1),
		`{__name__="latency_seconds_bucket", ` + res + `, le="0.1"}`:       cnt(1, 2),
		`{__name__="latency_seconds_bucket", ` + res + `, le="1"}`:         cnt(3, 6),
		`{__name__="latency_seconds_bucket", ` + res + `, le="+Inf"}`:      cnt(6, 12),
		`{__name__="latency_seconds_sum", ` + res + `}`:                    cnt(1.5, 3),
		`{__name__="latency_seconds_count", ` + res + `}`:                  cnt(6, 12),
		`{__name__="rpc_time_milliseconds", ` + res + `, quantile="0.5"}`:  f(1, 2),
		`{__name__="rpc_time_milliseconds", ` + res + `, quantile="0.99"}`: f(2, 4),
		`{__name__="rpc_time_milliseconds_sum", ` + res + `}`:              cnt(20, 40),
		`{__name__="rpc_time_milliseconds_count", ` + res + `}`:            cnt(10, 20),
		`{__name__="target_info", host_name="h1", ` + res + `}`:            {{T: ms(t1), V: 1}},
	}
	return w
}

const nativeSeries = `{__name__="payload_size_bytes", instance="i-1", job="shop"}`

// bucket is a native histogram bucket as Prometheus reads it back.
type bucket struct {
	Lower, Upper float64
	Count        uint64
}

func buckets(h *histogram.Histogram) (pos, neg []bucket) {
	for it := h.PositiveBucketIterator(); it.Next(); {
		b := it.At()
		pos = append(pos, bucket{b.Lower, b.Upper, b.Count})
	}
	for it := h.NegativeBucketIterator(); it.Next(); {
		b := it.At()
		neg = append(neg, bucket{b.Lower, b.Upper, b.Count})
	}
	return pos, neg
}

// checkNative checks the native histogram series against the OTLP points
// of everyType: OTLP bucket k of scale 1 is (√2^k, √2^(k+1)], so offset -1
// and counts k, 2k, 3k are (1/√2, 1], (1, √2], (√2, 2], and the negative
// bucket of offset 2 is [-2√2, -2).
func checkNative(t *testing.T, got []sample, start, t0 time.Time, withStart bool) {
	t.Helper()
	var hs []sample
	for _, s := range got {
		if s.H == nil {
			t.Fatalf("native histogram series has a float sample %v", s)
		}
		hs = append(hs, s)
	}
	times := []int64{ms(t0), ms(t0.Add(10 * time.Second))}
	if withStart {
		times = append([]int64{ms(start)}, times...)
	}
	if len(hs) != len(times) {
		t.Fatalf("native histogram: %d samples, want %d (%v)", len(hs), len(times), hs)
	}
	r2 := math.Sqrt2
	for i, s := range hs {
		if s.T != times[i] {
			t.Errorf("native histogram %d at %d, want %d", i, s.T, times[i])
		}
		if withStart && i == 0 {
			if s.H.Count != 0 || s.H.Sum != 0 {
				t.Errorf("zero histogram at the start time: %v", s.H)
			}
			continue
		}
		k := uint64(i)
		if !withStart {
			k++
		}
		if s.H.Schema != 1 || s.H.Count != 9*k || s.H.Sum != 100*float64(k) || s.H.ZeroCount != k || s.H.ZeroThreshold != 1e-9 {
			t.Errorf("native histogram %d: schema %d count %d sum %v zero %d/%v", i, s.H.Schema, s.H.Count, s.H.Sum, s.H.ZeroCount, s.H.ZeroThreshold)
		}
		pos, neg := buckets(s.H)
		wantPos := []bucket{{1 / r2, 1, k}, {1, r2, 2 * k}, {r2, 2, 3 * k}}
		wantNeg := []bucket{{-2 * r2, -2, 2 * k}}
		approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-12 })
		if d := cmp.Diff(wantPos, pos, approx); d != "" {
			t.Errorf("native histogram %d positive buckets (-want +got):\n%s", i, d)
		}
		if d := cmp.Diff(wantNeg, neg, approx); d != "" {
			t.Errorf("native histogram %d negative buckets (-want +got):\n%s", i, d)
		}
	}
}

func checkSeries(t *testing.T, r *receiver, start, t0 time.Time, withStart bool) {
	t.Helper()
	got := r.series(t)
	checkNative(t, got[nativeSeries], start, t0, withStart)
	delete(got, nativeSeries)
	if d := cmp.Diff(want(start, t0, withStart), got); d != "" {
		t.Errorf("series in Prometheus (-want +got):\n%s", d)
	}
}

// TestV2EveryType: every metric type through the sink with protocol v2
// into Prometheus' receiver (2.0 only): every sample with its labels and
// time, the start times of counters, histograms and summaries' _sum and
// _count (as zero samples), native histogram buckets from the
// exponential histogram, and each series' metadata (type, unit, help).
func TestV2EveryType(t *testing.T) {
	r := newReceiver(t, remoteapi.MessageTypes{remoteapi.WriteV2MessageType})
	reg := clientprom.NewRegistry()
	s := newSink(t, r.url, "v2", reg)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	start := t0.Add(-10 * time.Minute)
	if err := s.Write(context.Background(), []*stream.Record{record(t, everyType(start, t0), 1)}); err != nil {
		t.Fatal(err)
	}
	checkSeries(t, r, start, t0, true)
	if r.v1.Load() != 0 || r.v2.Load() == 0 {
		t.Errorf("%d 1.0 and %d 2.0 requests, want 2.0 only", r.v1.Load(), r.v2.Load())
	}
	res := `instance="i-1", job="shop"`
	for series, m := range map[string]metadata.Metadata{
		`{__name__="room_temperature_celsius", ` + res + `, room="a"}`: {Type: model.MetricTypeGauge, Unit: "celsius", Help: "Temperature of the room"},
		`{__name__="requests_total", code="200", ` + res + `}`:         {Type: model.MetricTypeCounter, Help: "Requests served"},
		`{__name__="queue_length", ` + res + `}`:                       {Type: model.MetricTypeGauge, Help: "Jobs waiting"},
		`{__name__="latency_seconds_bucket", ` + res + `, le="0.1"}`:   {Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Request latency"},
		`{__name__="latency_seconds_count", ` + res + `}`:              {Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Request latency"},
		nativeSeries: {Type: model.MetricTypeHistogram, Unit: "bytes", Help: "Payload sizes"},
		`{__name__="rpc_time_milliseconds", ` + res + `, quantile="0.99"}`: {Type: model.MetricTypeSummary, Unit: "milliseconds", Help: "RPC times"},
		`{__name__="rpc_time_milliseconds_sum", ` + res + `}`:              {Type: model.MetricTypeSummary, Unit: "milliseconds", Help: "RPC times"},
		`{__name__="target_info", host_name="h1", ` + res + `}`:            {Type: model.MetricTypeGauge, Help: "Target metadata"},
	} {
		if got := r.metadata(series); got != m {
			t.Errorf("metadata of %s: %+v, want %+v", series, got, m)
		}
	}
	if n := counter(t, reg, "sluice_sink_samples_sent_total"); n != 28 {
		t.Errorf("sluice_sink_samples_sent_total %v, want 28", n)
	}
}

// counter is the value of counter name (of the one sink) in reg, 0 when
// it has none.
func counter(t *testing.T, reg *clientprom.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestV1Baseline: the same data with protocol v1 (into the same receiver,
// taking 1.0 only): the same samples, without start times or metadata,
// so the checks above tell the protocols apart.
func TestV1Baseline(t *testing.T) {
	r := newReceiver(t, remoteapi.MessageTypes{remoteapi.WriteV1MessageType})
	s := newSink(t, r.url, "v1", nil)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	start := t0.Add(-10 * time.Minute)
	if err := s.Write(context.Background(), []*stream.Record{record(t, everyType(start, t0), 1)}); err != nil {
		t.Fatal(err)
	}
	checkSeries(t, r, start, t0, false)
	if m := r.metadata(`{__name__="requests_total", code="200", instance="i-1", job="shop"}`); m != (metadata.Metadata{}) {
		t.Errorf("metadata over 1.0: %+v", m)
	}
}

// TestAutoFallback: protocol auto against a receiver that takes 1.0 only
// (it answers 415 to 2.0): the first batch is sent as 2.0, refused, and
// sent again as 1.0 with nothing lost; later batches go as 1.0 at once;
// the fallback is counted once.
func TestAutoFallback(t *testing.T) {
	r := newReceiver(t, remoteapi.MessageTypes{remoteapi.WriteV1MessageType})
	reg := clientprom.NewRegistry()
	s := newSink(t, r.url, "auto", reg)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	start := t0.Add(-10 * time.Minute)
	if err := s.Write(context.Background(), []*stream.Record{record(t, everyType(start, t0), 1)}); err != nil {
		t.Fatal(err)
	}
	checkSeries(t, r, start, t0, false)
	v2 := r.v2.Load()
	if v2 == 0 || r.v1.Load() == 0 {
		t.Fatalf("%d 2.0 and %d 1.0 requests, want both", v2, r.v1.Load())
	}
	later := t0.Add(time.Minute)
	if err := s.Write(context.Background(), []*stream.Record{record(t, everyType(start, later), 2)}); err != nil {
		t.Fatal(err)
	}
	if r.v2.Load() != v2 {
		t.Errorf("2.0 requests after the fallback: %d", r.v2.Load()-v2)
	}
	if got := r.series(t)[`{__name__="requests_total", code="200", instance="i-1", job="shop"}`]; len(got) != 4 {
		t.Errorf("requests_total after two batches: %v", got)
	}
	if n := counter(t, reg, "sluice_sink_remote_write_protocol_fallbacks_total"); n != 1 {
		t.Errorf("sluice_sink_remote_write_protocol_fallbacks_total %v, want 1", n)
	}
}

// TestAutoTakesV2: protocol auto against a receiver that takes both sends
// 2.0 only, with start times.
func TestAutoTakesV2(t *testing.T) {
	r := newReceiver(t, remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType})
	s := newSink(t, r.url, "auto", nil)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	start := t0.Add(-10 * time.Minute)
	if err := s.Write(context.Background(), []*stream.Record{record(t, everyType(start, t0), 1)}); err != nil {
		t.Fatal(err)
	}
	checkSeries(t, r, start, t0, true)
	if r.v1.Load() != 0 {
		t.Errorf("%d 1.0 requests", r.v1.Load())
	}
}

// TestV2PartialWrite: a batch of which Prometheus writes a part (a sample
// older than what the series holds is refused, the others written, and
// it answers 400 with the written headers): the records of the request
// are refused for good (to the dead-letter topic), as a 400 is with 1.0;
// the samples it wrote are there.
func TestV2PartialWrite(t *testing.T) {
	r := newReceiver(t, remoteapi.MessageTypes{remoteapi.WriteV2MessageType})
	s := newSink(t, r.url, "v2", nil)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	gauge := func(name string, ts time.Time) *metricspb.Metric {
		return &metricspb.Metric{Name: name, Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{
			{TimeUnixNano: nanos(ts), Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: 1}}}}}}
	}
	req := func(ms ...*metricspb.Metric) *colmetricspb.ExportMetricsServiceRequest {
		return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
			ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: ms}}}}}
	}
	if err := s.Write(context.Background(), []*stream.Record{record(t, req(gauge("a", t0)), 1)}); err != nil {
		t.Fatal(err)
	}
	rec := record(t, req(gauge("a", t0.Add(-time.Minute)), gauge("b", t0)), 2)
	err := s.Write(context.Background(), []*stream.Record{rec})
	var rej *sinks.RejectedError
	if !errors.As(err, &rej) || len(rej.Records) != 1 || rej.Records[0] != rec {
		t.Fatalf("Write: %v, want the record rejected", err)
	}
	if !strings.Contains(rej.Reason, "out of order") {
		t.Errorf("reason %q", rej.Reason)
	}
	got := r.series(t)
	if len(got[`{__name__="b"}`]) != 1 || len(got[`{__name__="a"}`]) != 1 {
		t.Errorf("Prometheus holds %v", got)
	}
}

// TestV2WrittenFewer: a 2xx answer whose written headers count fewer
// samples than the request held (a receiver that dropped some and still
// answered 2xx) refuses the request's records, as a 400 does; one
// without the headers at all (a 1.0 receiver that read nothing of a 2.0
// request) is retried, blamed on the configuration, with protocol v2.
func TestV2WrittenFewer(t *testing.T) {
	var mode atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		switch mode.Load() {
		case 0:
			w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "1")
			w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", "0")
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := newSink(t, srv.URL, "v2", nil)
	t0 := time.Now().Truncate(time.Millisecond)
	rec := record(t, everyType(t0.Add(-time.Hour), t0), 1)
	var rej *sinks.RejectedError
	if err := s.Write(context.Background(), []*stream.Record{rec}); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "wrote 1 of") {
		t.Fatalf("Write with 1 sample written: %v", err)
	}
	mode.Store(1)
	err := s.Write(context.Background(), []*stream.Record{record(t, everyType(t0.Add(-time.Hour), t0.Add(time.Second)), 2)})
	var he *httpsink.Error
	if !errors.As(err, &he) || !he.Retryable || !he.Config {
		t.Fatalf("Write answered 2xx without headers: %v, want a retryable configuration error", err)
	}
}
