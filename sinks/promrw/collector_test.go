package promrw

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/stream"
)

// rwSample is one sample or histogram of a decoded WriteRequest.
type rwSample struct {
	series string   // the labels, name=value joined with ","
	names  []string // the label names, in order
	ts     int64
	value  float64 // NaN bits kept; histograms: their count
	hist   bool
}

// decodeWrite decodes a WriteRequest: its samples in order, and how many
// TimeSeries it has.
func decodeWrite(t *testing.T, p []byte) (out []rwSample, series int) {
	t.Helper()
	field := func(p []byte) (protowire.Number, protowire.Type, []byte, uint64, []byte) {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			t.Fatal("bad tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, p[n:])
		if m < 0 {
			t.Fatal("bad field")
		}
		var b []byte
		var v uint64
		switch typ {
		case protowire.BytesType:
			b, _ = protowire.ConsumeBytes(p[n:])
		case protowire.VarintType:
			v, _ = protowire.ConsumeVarint(p[n:])
		case protowire.Fixed64Type:
			v, _ = protowire.ConsumeFixed64(p[n:])
		}
		return num, typ, b, v, p[n+m:]
	}
	for len(p) > 0 {
		_, _, ts, _, rest := field(p)
		p = rest
		series++
		var labels, names []string
		var items []rwSample
		kinds := map[bool]bool{}
		for len(ts) > 0 {
			num, _, b, _, rest := field(ts)
			ts = rest
			switch num {
			case fTSLabels:
				var name, value string
				for len(b) > 0 {
					n, _, s, _, r := field(b)
					b = r
					if n == fLabelName {
						name = string(s)
					} else {
						value = string(s)
					}
				}
				labels = append(labels, name+"="+value)
				names = append(names, name)
			case fTSSamples, fTSHistograms:
				it := rwSample{hist: num == fTSHistograms}
				kinds[it.hist] = true
				for len(b) > 0 {
					n, _, _, v, r := field(b)
					b = r
					switch {
					case !it.hist && n == fSampleValue:
						it.value = math.Float64frombits(v)
					case !it.hist && n == fSampleTimestamp, it.hist && n == fHistTimestamp:
						it.ts = int64(v)
					case it.hist && n == fHistCountInt:
						it.value = float64(v)
					}
				}
				items = append(items, it)
			}
		}
		if len(kinds) != 1 {
			t.Fatalf("a TimeSeries with %d kinds of items", len(kinds))
		}
		for i := range items {
			items[i].series = strings.Join(labels, ",")
			items[i].names = names
		}
		out = append(out, items...)
	}
	return out, series
}

// TestCollectorGroupsSeries: 20 records of the same 10 series (and a
// native histogram series with stale markers between its histograms) in
// one Write, with requests of at most 7 samples on 3 shards. Every sample
// arrives once; each series' samples in order, as one TimeSeries per
// request (but where floats and histograms alternate); each request
// names exactly the records whose samples it holds.
func TestCollectorGroupsSeries(t *testing.T) {
	var mu sync.Mutex
	type got struct {
		samples []rwSample
		series  int
	}
	var reqs []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		raw, err := s2.Decode(nil, body)
		if err != nil {
			t.Error(err)
			return
		}
		s, n := decodeWrite(t, raw)
		mu.Lock()
		reqs = append(reqs, got{s, n})
		mu.Unlock()
	}))
	defer srv.Close()

	const records, series = 20, 10
	base := time.Now().Truncate(time.Second)
	var recs []*stream.Record
	for k := range records {
		ts := base.Add(time.Duration(k) * time.Second)
		var ms []*metricspb.Metric
		for i := range series {
			ms = append(ms, gauge("g", "", ts, float64(k*100+i), intAttr("i", int64(i))))
		}
		flags := uint32(0)
		if k%3 == 1 {
			flags = 1 // no recorded value: a stale marker, a float sample
		}
		ms = append(ms, &metricspb.Metric{Name: "h", Data: &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
			AggregationTemporality: cumulative,
			DataPoints: []*metricspb.ExponentialHistogramDataPoint{{TimeUnixNano: uint64(ts.UnixNano()), Count: uint64(k), Flags: flags,
				Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{BucketCounts: []uint64{uint64(k)}}}}}}})
		recs = append(recs, record(t, otlpRequest([]*commonpb.KeyValue{str("service.name", "svc")}, ms...), ""))
	}
	s := newSink(t, Config{Config: httpSinkConfig(srv.URL), MaxSamplesPerRequest: 7, Concurrency: 3, AddTargetInfo: new(false)})
	if err := s.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}

	perSeries := map[string][]rwSample{}
	total, timeSeries := 0, 0
	for _, r := range reqs {
		if len(r.samples) > 7 {
			t.Errorf("a request of %d samples, max 7", len(r.samples))
		}
		total += len(r.samples)
		timeSeries += r.series
		for _, x := range r.samples {
			perSeries[x.series] = append(perSeries[x.series], x)
		}
	}
	if total != records*(series+1) || len(perSeries) != series+1 {
		t.Fatalf("%d samples of %d series, want %d of %d", total, len(perSeries), records*(series+1), series+1)
	}
	for name, xs := range perSeries {
		for k, x := range xs {
			if x.ts != base.Add(time.Duration(k)*time.Second).UnixMilli() {
				t.Fatalf("%s: sample %d at %d, out of order", name, k, x.ts)
			}
			if wantHist := strings.HasPrefix(name, "__name__=h,") && k%3 != 1; x.hist != wantHist {
				t.Fatalf("%s: item %d histogram %v", name, k, x.hist)
			}
		}
	}
	// 220 samples in 32 requests of at most 7: grouped, far fewer than 220
	// TimeSeries.
	if timeSeries >= total/2 {
		t.Errorf("%d TimeSeries for %d samples: not grouped", timeSeries, total)
	}
	t.Logf("%d samples in %d requests, %d TimeSeries", total, len(reqs), timeSeries)

	// The records of each request: those of its samples.
	s.col.reset()
	s.col.tenant("")
	for i, r := range recs {
		s.col.rec = int32(i)
		if err := s.translate(r, int32(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.col.finish(false)
	for _, sh := range s.col.tenants[0].shards {
		for _, r := range sh {
			samples, _ := decodeWrite(t, r.body)
			var want []int32
			for _, x := range samples {
				want = append(want, int32((x.ts-base.UnixMilli())/1000))
			}
			slices.Sort(want)
			if want = slices.Compact(want); !slices.Equal(r.recs, want) {
				t.Errorf("request records %v, want %v", r.recs, want)
			}
		}
	}
}
