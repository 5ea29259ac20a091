package promrw

import (
	"cmp"
	"context"
	"errors"
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

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/stream"
)

// v2Series is what v2ToV1 found of a TimeSeries besides its samples.
type v2Series struct {
	labels          string
	typ             uint8
	help, unit      string
	starts          []int64 // of its samples and histograms, in order
	hasSampleStarts bool
}

// v2ToV1 decodes a remote write 2.0 Request (checking what Prometheus'
// decoder checks: symbols[0] is "", refs in range, pairs of refs) into the
// 1.0 WriteRequest of the same series and samples, for decodeWrite, and
// lists each TimeSeries' metadata and start times.
func v2ToV1(t testing.TB, p []byte) ([]byte, []v2Series) {
	t.Helper()
	type rawTS struct{ b []byte }
	var symbols []string
	var series []rawTS
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 || typ != protowire.BytesType {
			t.Fatalf("Request: bad field %d/%d", num, typ)
		}
		b, m := protowire.ConsumeBytes(p[n:])
		if m < 0 {
			t.Fatal("Request: bad bytes")
		}
		p = p[n+m:]
		switch num {
		case fReqV2Symbols:
			symbols = append(symbols, string(b))
		case fReqV2TimeSeries:
			series = append(series, rawTS{b})
		default:
			t.Fatalf("Request field %d", num)
		}
	}
	if len(symbols) == 0 || symbols[0] != "" {
		t.Fatalf("symbols do not start with \"\": %q", symbols)
	}
	sym := func(ref uint64) string {
		if ref >= uint64(len(symbols)) {
			t.Fatalf("ref %d of %d symbols", ref, len(symbols))
		}
		return symbols[ref]
	}
	var out []byte
	var info []v2Series
	for _, s := range series {
		var ts []byte
		var si v2Series
		var labels []string
		for b := s.b; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if n < 0 || m < 0 {
				t.Fatal("TimeSeries: bad field")
			}
			v, _ := protowire.ConsumeBytes(b[n:])
			b = b[n+m:]
			switch num {
			case fTSV2LabelsRefs:
				var refs []uint64
				for len(v) > 0 {
					r, k := protowire.ConsumeVarint(v)
					refs = append(refs, r)
					v = v[k:]
				}
				if len(refs)%2 != 0 {
					t.Fatalf("%d label refs", len(refs))
				}
				for i := 0; i < len(refs); i += 2 {
					ts = appendLabel(ts, sym(refs[i]), sym(refs[i+1]))
					labels = append(labels, sym(refs[i])+"="+sym(refs[i+1]))
				}
			case fTSV2Samples, fTSV2Histograms:
				startField, outField := protowire.Number(fSampleV2Start), protowire.Number(fTSSamples)
				if num == fTSV2Histograms {
					startField, outField = fHistV2Start, fTSHistograms
				}
				var msg []byte
				var st int64
				for len(v) > 0 {
					fn, ft, k := protowire.ConsumeTag(v)
					l := protowire.ConsumeFieldValue(fn, ft, v[k:])
					if fn == startField {
						x, _ := protowire.ConsumeVarint(v[k:])
						st = int64(x)
						si.hasSampleStarts = true
					} else {
						msg = append(msg, v[:k+l]...)
					}
					v = v[k+l:]
				}
				si.starts = append(si.starts, st)
				ts = protowire.AppendTag(ts, outField, protowire.BytesType)
				ts = protowire.AppendBytes(ts, msg)
			case fTSV2Metadata:
				for len(v) > 0 {
					fn, _, k := protowire.ConsumeTag(v)
					x, l := protowire.ConsumeVarint(v[k:])
					switch fn {
					case fMetaV2Type:
						si.typ = uint8(x)
					case fMetaV2HelpRef:
						si.help = sym(x)
					case fMetaV2UnitRef:
						si.unit = sym(x)
					}
					v = v[k+l:]
				}
			default:
				t.Fatalf("TimeSeries field %d", num)
			}
		}
		si.labels = strings.Join(labels, ",")
		info = append(info, si)
		out = protowire.AppendTag(out, fWriteTimeSeries, protowire.BytesType)
		out = protowire.AppendBytes(out, ts)
	}
	return out, info
}

// recorder is a remote write endpoint keeping the requests of each
// protocol; it answers 2.0 requests with the written headers.
type recorder struct {
	mu     sync.Mutex
	v1, v2 [][]byte
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := s2.Decode(nil, body)
	if err != nil {
		http.Error(w, "bad snappy", 400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Header.Get("Content-Type") == contentTypeV2 && r.Header.Get("X-Prometheus-Remote-Write-Version") == versionV2 {
		rc.v2 = append(rc.v2, raw)
		w.Header().Set(headerSamplesWritten, "1000000000")
		w.Header().Set(headerHistogramsWritten, "1000000000")
		w.Header().Set(headerExemplarsWritten, "0")
	} else {
		rc.v1 = append(rc.v1, raw)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *recorder) samples(t *testing.T, v2 bool) ([]rwSample, []v2Series) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []rwSample
	var info []v2Series
	reqs := rc.v1
	if v2 {
		reqs = rc.v2
	}
	for _, raw := range reqs {
		if v2 {
			var si []v2Series
			raw, si = v2ToV1(t, raw)
			info = append(info, si...)
		}
		s, _ := decodeWrite(t, raw)
		out = append(out, s...)
	}
	slices.SortStableFunc(out, func(a, b rwSample) int {
		return cmp.Or(strings.Compare(a.series, b.series), cmp.Compare(a.ts, b.ts))
	})
	return out, info
}

// mixedKinds is a record of histogram series whose points are every
// third a stale marker (a float sample): series of items of two fields,
// in runs.
func mixedKinds(t *testing.T, ts time.Time) *stream.Record {
	var pts []*metricspb.ExponentialHistogramDataPoint
	for k := range 12 {
		flags := uint32(0)
		if k%3 == 1 {
			flags = 1
		}
		pts = append(pts, &metricspb.ExponentialHistogramDataPoint{TimeUnixNano: uint64(ts.Add(time.Duration(k) * time.Second).UnixNano()),
			Count: uint64(k), Flags: flags, Positive: &metricspb.ExponentialHistogramDataPoint_Buckets{BucketCounts: []uint64{uint64(k)}}})
	}
	m := &metricspb.Metric{Name: "mixed", Data: &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
		AggregationTemporality: cumulative, DataPoints: pts}}}
	return record(t, otlpRequest([]*commonpb.KeyValue{str("service.name", "mixed")}, m), "")
}

// TestV2SameSamples: every type, series of mixed kinds, and the realistic corpora, sent with
// protocol v1 and with v2 (requests of 7 samples on 3 shards, so that
// series are cut across requests): the 2.0 requests decode to the same
// series and samples as the 1.0 ones, with one symbols table per request;
// each series has the metadata of its metric, and the start times are
// where the data has them.
func TestV2SameSamples(t *testing.T) {
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	recs := []*stream.Record{everyType(t, ts, ""), mixedKinds(t, ts)}
	for _, c := range otlptest.Corpora() {
		if c.Signal == otlpwire.Metrics {
			recs = append(recs, corpusRecord(t, c, ""))
		}
	}
	for _, max := range []int{7, 2000} {
		v1, v2 := &recorder{}, &recorder{}
		for _, p := range []struct {
			rc    *recorder
			proto string
		}{{v1, protoV1}, {v2, protoV2}} {
			srv := httptest.NewServer(p.rc)
			s := newSink(t, Config{Config: httpSinkConfig(srv.URL), Protocol: p.proto, MaxSamplesPerRequest: max, Concurrency: 3})
			for _, r := range recs {
				if err := s.Write(context.Background(), []*stream.Record{r}); err != nil {
					t.Fatal(err)
				}
			}
			srv.Close()
		}
		want, _ := v1.samples(t, false)
		got, info := v2.samples(t, true)
		if len(v1.v2) != 0 || len(v2.v1) != 0 || len(want) < 1000 {
			t.Fatalf("%d 1.0 samples; 2.0 requests from v1: %d, 1.0 from v2: %d", len(want), len(v1.v2), len(v2.v1))
		}
		if len(got) != len(want) {
			t.Fatalf("max %d: %d samples in 2.0, %d in 1.0", max, len(got), len(want))
		}
		for i := range want {
			if w, g := want[i], got[i]; w.series != g.series || w.ts != g.ts || math.Float64bits(w.value) != math.Float64bits(g.value) || w.hist != g.hist {
				t.Fatalf("max %d, sample %d: 2.0 %+v, 1.0 %+v", max, i, g, w)
			}
		}
		meta := map[string]v2Series{}
		for _, si := range info {
			meta[si.labels] = si
		}
		for _, c := range []struct {
			prefix     string
			typ        uint8
			unit       string
			withStarts bool
		}{
			{"__name__=requests_total,", metaCounter, "", true},
			{"__name__=queue_size,", metaGauge, "", false},
			{"__name__=http_server_duration_seconds_bucket,", metaHistogram, "seconds", false}, // no start time in the data
			{"__name__=rpc_latency_milliseconds,", metaHistogram, "milliseconds", false},       // no start time in the data
			{"__name__=rpc_size_bytes,", metaSummary, "bytes", false},
			{"__name__=process_memory_usage_bytes,", metaGauge, "bytes", false},
			{"__name__=target_info,", metaGauge, "", false},
		} {
			found := false
			for l, si := range meta {
				if !strings.HasPrefix(l, c.prefix) || !strings.Contains(l, "job=shop/checkout") {
					continue
				}
				found = true
				if si.typ != c.typ || si.unit != c.unit || si.hasSampleStarts != c.withStarts {
					t.Errorf("%s: type %d unit %q starts %v, want %d %q %v", l, si.typ, si.unit, si.starts, c.typ, c.unit, c.withStarts)
				}
			}
			if !found {
				t.Errorf("no series %s...", c.prefix)
			}
		}
	}
}

// TestConfigProtocol: protocol takes v1 (the default), v2 and auto; any
// other value is an error naming the key.
func TestConfigProtocol(t *testing.T) {
	cfg := &config.Config{}
	for _, c := range []struct{ yaml, want string }{{"", protoV1}, {"protocol: v1\n", protoV1}, {"protocol: v2\n", protoV2}, {"protocol: auto\n", protoAuto}} {
		e := parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\n"+c.yaml)
		s, err := sinks.Build(cfg, e, sinks.Env{})
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if p := s.(*Sink); p.cfg.Protocol != c.want || p.v2 != (c.want != protoV1) {
			t.Errorf("%q: protocol %q, v2 %v", c.yaml, p.cfg.Protocol, p.v2)
		}
		s.Close()
	}
	e := parseEntry(t, "name: prom\ntype: prometheus_remote_write\nsignals: [metrics]\nurl: http://x/\nprotocol: 2.0\n")
	_, err := sinks.Build(cfg, e, sinks.Env{})
	if err == nil || !strings.Contains(err.Error(), `protocol must be v1, v2 or auto, not "2.0"`) || !strings.HasPrefix(err.Error(), "5:11: sinks[0].protocol: ") {
		t.Errorf("protocol: 2.0: %v", err)
	}
}

// TestParseWritten: the written headers of a 2.0 answer.
func TestParseWritten(t *testing.T) {
	for _, c := range []struct {
		h    http.Header
		want written
		err  bool
	}{
		{http.Header{}, written{}, false},
		{http.Header{headerSamplesWritten: {"12"}, headerHistogramsWritten: {"3"}, headerExemplarsWritten: {"0"}}, written{12, 3, 0, true}, false},
		{http.Header{headerSamplesWritten: {""}}, written{confirmed: true}, false},
		{http.Header{headerHistogramsWritten: {" 7 "}}, written{histograms: 7, confirmed: true}, false},
		{http.Header{headerSamplesWritten: {"-1"}}, written{}, true},
		{http.Header{headerSamplesWritten: {"lots"}}, written{}, true},
		{http.Header{headerSamplesWritten: {"99999999999999999999"}}, written{}, true},
		{http.Header{headerSamplesWritten: {"1", "2"}}, written{}, true},
	} {
		got, err := parseWritten(c.h)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%v: %+v, %v; want %+v, error %v", c.h, got, err, c.want, c.err)
		}
	}
}

// FuzzWrittenHeaders: whatever a receiver puts in the written headers,
// parseWritten returns counts that are never negative, or an error, and
// confirmed exactly when one of the headers is there.
func FuzzWrittenHeaders(f *testing.F) {
	for _, c := range [][3]string{{"1", "0", "0"}, {"", "", ""}, {"-5", "x", "1e3"}, {" 42 ", "0x10", "+3"}, {"99999999999999999999", "1", "2"}} {
		f.Add(c[0], c[1], c[2], uint8(7))
	}
	f.Fuzz(func(t *testing.T, s, hs, ex string, present uint8) {
		h := http.Header{}
		for i, kv := range [][2]string{{headerSamplesWritten, s}, {headerHistogramsWritten, hs}, {headerExemplarsWritten, ex}} {
			if present&(1<<i) != 0 {
				h.Add(kv[0], kv[1])
			}
		}
		w, err := parseWritten(h)
		if err != nil {
			if w != (written{}) {
				t.Fatalf("error %v with %+v", err, w)
			}
			return
		}
		if w.samples < 0 || w.histograms < 0 || w.exemplars < 0 {
			t.Fatalf("negative count: %+v", w)
		}
		if w.confirmed != (present&7 != 0) {
			t.Fatalf("confirmed %v, headers %v", w.confirmed, h)
		}
	})
}

// TestV2Answers: how the sink reads the answers to 2.0 requests.
func TestV2Answers(t *testing.T) {
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for _, c := range []struct {
		name, proto string
		status      int
		body        string
		headers     map[string]string
		// want: nil, "rejected", "config" (retryable, blaming the
		// configuration), "fallback" (sent again as 1.0)
		want string
	}{
		{"written", protoV2, 204, "", map[string]string{headerSamplesWritten: "100", headerHistogramsWritten: "1"}, ""},
		{"fewer samples", protoV2, 204, "", map[string]string{headerSamplesWritten: "3", headerHistogramsWritten: "1"}, "rejected"},
		{"fewer histograms", protoV2, 200, "", map[string]string{headerSamplesWritten: "100", headerHistogramsWritten: "0"}, "rejected"},
		{"no headers", protoV2, 204, "", nil, "config"},
		{"415", protoV2, 415, "unsupported", nil, "config"},
		{"bad header", protoV2, 204, "", map[string]string{headerSamplesWritten: "many"}, "retry"},
		{"400", protoV2, 400, "out of order sample", nil, "rejected"},
		{"auto 415", protoAuto, 415, "unsupported", nil, "fallback"},
		{"auto 400 content type", protoAuto, 400, "unexpected Content-Type application/x-protobuf;proto=io.prometheus.write.v2.Request", nil, "fallback"},
		{"auto no headers", protoAuto, 204, "", nil, "fallback"},
		{"auto 400", protoAuto, 400, "out of order sample", nil, "rejected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var cts []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				cts = append(cts, r.Header.Get("Content-Type"))
				mu.Unlock()
				if r.Header.Get("Content-Type") == contentTypeV1 {
					w.WriteHeader(204)
					return
				}
				for k, v := range c.headers {
					w.Header().Set(k, v)
				}
				if c.status >= 400 {
					http.Error(w, c.body, c.status)
					return
				}
				w.WriteHeader(c.status)
			}))
			defer srv.Close()
			s := newSink(t, Config{Config: httpSinkConfig(srv.URL), Protocol: c.proto, Concurrency: 1})
			err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "")})
			var rej *sinks.RejectedError
			var he *httpsink.Error
			switch c.want {
			case "":
				if err != nil {
					t.Fatal(err)
				}
			case "rejected":
				if !errors.As(err, &rej) || len(rej.Records) != 1 {
					t.Fatalf("%v, want the record rejected", err)
				}
			case "config", "retry":
				if !errors.As(err, &he) || !he.Retryable || he.Config != (c.want == "config") || httpsink.IsRejected(err) {
					t.Fatalf("%v (%+v), want a retryable error, config %v", err, he, c.want == "config")
				}
			case "fallback":
				if err != nil {
					t.Fatal(err)
				}
				if len(cts) != 2 || cts[0] != contentTypeV2 || cts[1] != contentTypeV1 || s.v2 {
					t.Fatalf("requests %q, v2 %v: want one 2.0 then one 1.0", cts, s.v2)
				}
				if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts.Add(time.Second), "")}); err != nil || len(cts) != 3 || cts[2] != contentTypeV1 {
					t.Fatalf("after the fallback: %v, requests %q", err, cts)
				}
			}
		})
	}
}

// TestPrometheusAuto: protocol auto against Debian's Prometheus (2.x),
// which reads every request as 1.0 whatever its content type: it answers
// a 2.0 request 204 without the written headers, having written nothing.
// The sink takes that for a 1.0 receiver and sends the batch again as
// 1.0; every sample arrives.
func TestPrometheusAuto(t *testing.T) {
	be := backendtest.Prometheus(t)
	s := newSink(t, Config{Config: httpSinkConfig(be.WriteURL), PromoteResourceAttributes: []string{"deployment.environment"}, Protocol: protoAuto})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "team-a")}); err != nil {
		t.Fatal(err)
	}
	if s.v2 {
		t.Fatal("still sending 2.0")
	}
	checkBackend(t, be.URL, func() {}, ts, true)
}

// TestVictoriaMetricsAuto: the same against VictoriaMetrics.
func TestVictoriaMetricsAuto(t *testing.T) {
	be := backendtest.VictoriaMetrics(t)
	s := newSink(t, Config{Config: httpSinkConfig(be.WriteURL), PromoteResourceAttributes: []string{"deployment.environment"},
		ExponentialHistograms: expBuckets, Protocol: protoAuto})
	ts := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := s.Write(context.Background(), []*stream.Record{everyType(t, ts, "")}); err != nil {
		t.Fatal(err)
	}
	if s.v2 {
		t.Fatal("still sending 2.0")
	}
	checkBackend(t, be.URL, func() { be.Flush(t) }, ts, false)
}
