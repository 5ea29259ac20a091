package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/backendtest"
	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// Counters and histograms of 1,000 pods, aggregated without the pod by 3
// worker processes over 6 partitions of a real Kafka broker: one worker
// is killed with SIGKILL mid-stream and the rules are reloaded (with the
// aggregation unchanged) mid-stream; pods restart (counter resets), come
// and go, one sends late and one out of order. At the end the last merged
// point of every route equals the sum of the pods' counters computed here
// from what was sent, exactly.
func TestAggregationExactAcrossWorkers(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := kafkatest.Topic(t, "agg")
	prom := backendtest.Prometheus(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	rule := `rules:
  - name: without-pod
    signal: metrics
    aggregate:
      without: [k8s.pod.name]
      interval: 1s
      grace: 2s
`
	os.WriteFile(filepath.Join(rulesDir, "agg.yaml"), []byte(rule), 0o644)
	config := func(admin string) string {
		path := filepath.Join(dir, "sluice-"+admin[len("127.0.0.1:"):]+".yaml")
		os.WriteFile(path, fmt.Appendf(nil, `
bus:
  kind: kafka
  topic_prefix: %s
  partitions: 6
  kafka:
    brokers: [%q]
    session_timeout: 6s
admin:
  listen: %s
worker:
  group: %s-worker
rules:
  dir: %q
  reload_interval: 500ms
sinks:
  - name: prom
    type: prometheus_remote_write
    signals: [metrics]
    url: %s
log:
  level: warn
`, prefix, brokers[0], admin, prefix, rulesDir, prom.WriteURL), 0o644)
		return path
	}
	worker := func() *role {
		admin := testproc.FreeAddr(t)
		r, _ := sluiceRole(t, "worker -c "+config(admin), admin)
		return r
	}
	workers := []*role{worker(), worker(), worker()}
	sinkAdmin := testproc.FreeAddr(t)
	sluiceRole(t, "sink -c "+config(sinkAdmin), sinkAdmin)

	bus, err := kafka.New(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	topics := stream.Topics{Prefix: prefix}
	ctx := context.Background()

	g := newPodFleet(1000, 2)
	// 26 rounds of 400 ms: the aggregators checkpoint every 5 s, so the
	// kill at round 20 comes after the pods that stopped (800..899, after
	// round 7) and the restarts (round 6) are checkpointed and their
	// records committed: only a restored state still holds them.
	const rounds = 26
	for round := range rounds {
		recs := g.round(round, time.Now())
		for _, r := range recs {
			r.Topic = topics.Raw(otlpwire.Metrics)
		}
		if err := bus.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
		switch round {
		case 20:
			workers[1].Process.Signal(syscall.SIGKILL)
			workers[1].Wait()
		case 14: // a reload that leaves the aggregation as it is
			os.WriteFile(filepath.Join(rulesDir, "agg.yaml"), []byte(rule+`  - name: no-debug
    signal: logs
    when: severity_text == "DEBUG"
    drop: true
`), 0o644)
		case 23:
			workers[1] = worker()
		}
		time.Sleep(400 * time.Millisecond)
	}

	want := g.truth()
	c, err := bus.Consume(stream.ConsumerConfig{Group: prefix + "-reader", Topics: []string{topics.Processed(otlpwire.Metrics)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]latest{}
	deltas := map[string]map[uint64]float64{}
	deadline := time.Now().Add(90 * time.Second)
	for !sameTotals(got, want) {
		if time.Now().After(deadline) {
			for k, w := range want {
				if g := got[k]; g.value != w.value || g.buckets != w.buckets {
					t.Errorf("%s: last merged point %v %v, want %v %v", k, g.value, g.buckets, w.value, w.buckets)
				}
			}
			t.FailNow()
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		recs, _ := c.Poll(pctx)
		cancel()
		for _, r := range recs {
			pb, _, err := schemas.BatchToOTLP(r.Value, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			readMerged(t, pb, got, deltas)
		}
		sumDeltas(got, deltas)
	}
	// Prometheus, fed by a sink process, ends at the same numbers (for
	// the cumulative series: Prometheus stores no deltas).
	for k, w := range want {
		name, route, _ := strings.Cut(k, " ")
		if name == "orders" {
			continue
		}
		q := map[string]string{"requests": `requests_total{http_route="%s"}`, "latency": `latency_count{http_route="%s"}`}[name]
		q = fmt.Sprintf(q, route)
		var got []backendtest.Sample
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if got = backendtest.Query(t, prom.URL, q, time.Time{}); len(got) == 1 && got[0].Value == w.value {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("Prometheus: %s = %+v, want %v", q, got, w.value)
				break
			}
		}
	}
	t.Logf("%d merged series exact in the processed topic and in Prometheus; %d input series, %d points sent", len(want), g.series(), g.points)
}

// latest is the last merged point of an output series: its time and
// cumulative value (the count, for a histogram, with its buckets).
type latest struct {
	time    uint64
	value   float64
	buckets [3]uint64
}

// deltas are the merged delta points of an output series by time (an
// interval emitted again after a takeover is the same point).

type truthEntry struct{ latest }

func sameTotals(got map[string]latest, want map[string]truthEntry) bool {
	for k, w := range want {
		g := got[k]
		if g.value != w.value || g.buckets != w.buckets {
			return false
		}
	}
	return true
}

// sumDeltas sets got's "orders" entries to the sums of the delta points.
func sumDeltas(got map[string]latest, deltas map[string]map[uint64]float64) {
	for k, byTime := range deltas {
		sum := 0.0
		for _, v := range byTime {
			sum += v
		}
		got[k] = latest{value: sum}
	}
}

// readMerged keeps, per (metric, route), the point with the latest time.
func readMerged(t *testing.T, pb []byte, into map[string]latest, deltas map[string]map[uint64]float64) {
	var req colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(pb, &req); err != nil {
		t.Fatal(err)
	}
	readMergedReq(t, &req, into, deltas)
}

func readMergedReq(t *testing.T, req *colmetrics.ExportMetricsServiceRequest, into map[string]latest, deltas map[string]map[uint64]float64) {
	route := func(kvs []*commonpb.KeyValue) string {
		for _, kv := range kvs {
			if kv.Key == "http.route" {
				return kv.GetValue().GetStringValue()
			}
		}
		return ""
	}
	for _, rm := range req.ResourceMetrics {
		for _, kv := range rm.GetResource().GetAttributes() {
			if kv.Key == "k8s.pod.name" {
				t.Fatalf("a merged point still has the pod %s", kv.GetValue().GetStringValue())
			}
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case *metricspb.Metric_Sum:
					for _, p := range d.Sum.DataPoints {
						k := m.Name + " " + route(p.Attributes)
						if d.Sum.AggregationTemporality == metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA {
							if deltas[k] == nil {
								deltas[k] = map[uint64]float64{}
							}
							deltas[k][p.TimeUnixNano] = p.GetAsDouble() + float64(p.GetAsInt())
							continue
						}
						if p.TimeUnixNano >= into[k].time {
							into[k] = latest{time: p.TimeUnixNano, value: p.GetAsDouble() + float64(p.GetAsInt())}
						}
					}
				case *metricspb.Metric_Histogram:
					for _, p := range d.Histogram.DataPoints {
						k := m.Name + " " + route(p.Attributes)
						if p.TimeUnixNano >= into[k].time {
							l := latest{time: p.TimeUnixNano, value: float64(p.Count)}
							copy(l.buckets[:], p.BucketCounts)
							into[k] = l
						}
					}
				}
			}
		}
	}
}

// podFleet makes the points of pods, each with a counter and a histogram
// per route, and keeps what their sums must be.
type podFleet struct {
	pods, routes int
	rng          *rand.Rand
	state        []podState // per pod
	held         []*stream.Record
	points       int
}

type podState struct {
	start       uint64
	counter     []int64     // per route
	orders      []int64     // per route: delta of the current point
	ordersTotal []int64     // per route: every delta sent once
	hist        [][3]uint64 // per route: bucket counts (bounds 0.1, 1)
	// totals: what this pod adds to the sums over its lives (a restart
	// starts a new life; the last point of each life counts).
	doneCounter []int64
	doneHist    [][3]uint64
}

func newPodFleet(pods, routes int) *podFleet {
	f := &podFleet{pods: pods, routes: routes, rng: rand.New(rand.NewPCG(9, 9)), state: make([]podState, pods)}
	for i := range f.state {
		f.state[i] = podState{counter: make([]int64, routes), orders: make([]int64, routes), ordersTotal: make([]int64, routes), hist: make([][3]uint64, routes), doneCounter: make([]int64, routes), doneHist: make([][3]uint64, routes)}
	}
	return f
}

func (f *podFleet) series() int { return f.pods * f.routes * 3 }

// Pods come and go: the last tenth of the pods (900.. of 1,000) start at
// round 4; the tenth before (800..899) stop after round 7. Every 50th pod restarts at round 6. Pod 7's points of rounds
// 3..8 are held back and sent at round 9 (late, in order); pod 11 sends its
// round 4 point again at round 5 and 9 (out of order).
func (f *podFleet) round(round int, now time.Time) []*stream.Record {
	var recs []*stream.Record
	ts := uint64(now.UnixNano())
	for pod := range f.pods {
		late, gone := pod >= f.pods*9/10, pod >= f.pods*8/10 && pod < f.pods*9/10
		if (late && round < 4) || (gone && round > 7) {
			continue
		}
		s := &f.state[pod]
		if s.start == 0 || (pod%50 == 0 && round == 6) {
			if s.start != 0 { // a restart: the old life is done
				for r := range f.routes {
					s.doneCounter[r] += s.counter[r]
					for b := range 3 {
						s.doneHist[r][b] += s.hist[r][b]
					}
				}
			}
			s.start = ts - 1
			clear(s.counter)
			clear(s.hist)
		}
		for r := range f.routes {
			s.counter[r] += int64(f.rng.IntN(10))
			s.orders[r] = int64(f.rng.IntN(5))
			s.ordersTotal[r] += s.orders[r]
			s.hist[r][f.rng.IntN(3)] += uint64(1 + f.rng.IntN(3))
		}
		rec := f.request(pod, s, ts)
		switch {
		case pod == 7 && round >= 3 && round <= 8:
			f.held = append(f.held, rec)
			continue
		case pod == 11 && round == 4:
			f.held = append(f.held, rec) // sent now and again later
		}
		recs = append(recs, rec)
	}
	if round == 9 { // before pod 7's point of this round
		recs = append(slices.Clip(f.held), recs...)
	}
	if round == 5 {
		for _, h := range f.held {
			if h.Partition == 11%6 {
				recs = append(recs, h)
			}
		}
	}
	return recs
}

// request is one pod's OTLP request: a counter and a histogram per route.
func (f *podFleet) request(pod int, s *podState, ts uint64) *stream.Record {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	var sums []*metricspb.NumberDataPoint
	var hists []*metricspb.HistogramDataPoint
	var orders []*metricspb.NumberDataPoint
	for r := range f.routes {
		attrs := []*commonpb.KeyValue{str("http.route", fmt.Sprintf("/r%d", r))}
		sums = append(sums, &metricspb.NumberDataPoint{Attributes: attrs, StartTimeUnixNano: s.start, TimeUnixNano: ts,
			Value: &metricspb.NumberDataPoint_AsInt{AsInt: s.counter[r]}})
		orders = append(orders, &metricspb.NumberDataPoint{Attributes: attrs, StartTimeUnixNano: ts - 1, TimeUnixNano: ts,
			Value: &metricspb.NumberDataPoint_AsInt{AsInt: s.orders[r]}})
		h := s.hist[r]
		hists = append(hists, &metricspb.HistogramDataPoint{Attributes: attrs, StartTimeUnixNano: s.start, TimeUnixNano: ts,
			Count: h[0] + h[1] + h[2], BucketCounts: h[:], ExplicitBounds: []float64{0.1, 1}})
		f.points += 3
	}
	req := &colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "shop"), str("k8s.pod.name", fmt.Sprintf("shop-%d", pod))}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{
			{Name: "requests", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true,
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: sums}}},
			{Name: "orders", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{IsMonotonic: true,
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA, DataPoints: orders}}},
			{Name: "latency", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
				AggregationTemporality: metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, DataPoints: hists}}},
		}}},
	}}}
	body, err := proto.Marshal(req)
	if err != nil {
		panic(err)
	}
	return &stream.Record{Partition: int32(pod % 6), Value: body, Headers: []stream.Header{
		{Key: stream.HeaderSignal, Value: []byte("metrics")}, {Key: stream.HeaderTenant, Value: []byte("t")}}}
}

// truth is what every route's merged series must end at: the sum over the
// pods of the last value of each of their lives.
func (f *podFleet) truth() map[string]truthEntry {
	out := map[string]truthEntry{}
	for r := range f.routes {
		var c, o int64
		var h [3]uint64
		for _, s := range f.state {
			if s.start == 0 {
				continue
			}
			c += s.counter[r] + s.doneCounter[r]
			o += s.ordersTotal[r]
			for b := range 3 {
				h[b] += s.hist[r][b] + s.doneHist[r][b]
			}
		}
		out[fmt.Sprintf("requests /r%d", r)] = truthEntry{latest{value: float64(c)}}
		out[fmt.Sprintf("orders /r%d", r)] = truthEntry{latest{value: float64(o)}}
		out[fmt.Sprintf("latency /r%d", r)] = truthEntry{latest{value: float64(h[0] + h[1] + h[2]), buckets: h}}
	}
	return out
}

// The same on the embedded bus: one `sluice run` process (ingest, worker,
// aggregator, file sink) killed with SIGKILL mid-stream and started again
// on its data directory; the clients retry what was not acknowledged, as
// exporters do. Every merged series in the file sink's output ends at the
// sum computed from what was sent.
func TestAggregationSurvivesKillOnEmbeddedBus(t *testing.T) {
	dir := t.TempDir()
	httpAddr, admin := testproc.FreeAddr(t), testproc.FreeAddr(t)
	rulesDir := filepath.Join(dir, "rules")
	os.MkdirAll(rulesDir, 0o755)
	os.WriteFile(filepath.Join(rulesDir, "agg.yaml"), []byte(`rules:
  - name: without-pod
    signal: metrics
    aggregate: {without: [k8s.pod.name], interval: 1s, grace: 2s}
`), 0o644)
	out := filepath.Join(dir, "out")
	cfg := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `
bus:
  kind: embedded
  data_dir: %q
  partitions: 3
  ack_wait: 5s
ingest:
  grpc_listen: ""
  http_listen: %s
admin:
  listen: %s
rules:
  dir: %q
sinks:
  - name: archive
    type: file
    signals: [metrics]
    path: %q
log:
  level: warn
`, filepath.Join(dir, "data"), httpAddr, admin, rulesDir, out), 0o644)

	p, _ := sluiceRole(t, "run -c "+cfg, admin)
	g := newPodFleet(300, 2)
	// post sends a round as one request (concatenated requests are one
	// request), again until it is acknowledged.
	post := func(recs []*stream.Record) {
		var body []byte
		for _, r := range recs {
			body = append(body, r.Value...)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Post("http://"+httpAddr+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("round not acknowledged: %v", err)
			}
		}
	}
	const rounds = 26
	for round := range rounds {
		post(g.round(round, time.Now()))
		if round == 20 { // after the checkpoints of the pods that stopped and restarted
			p.Process.Signal(syscall.SIGKILL)
			p.Wait()
			sluiceRole(t, "run -c "+cfg, admin)
		}
		time.Sleep(400 * time.Millisecond)
	}

	want := g.truth()
	got := map[string]latest{}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		clear(got)
		deltas := map[string]map[uint64]float64{}
		files, _ := filepath.Glob(filepath.Join(out, "*", "metrics*.jsonl")) // one directory per tenant
		for _, f := range files {
			data, _ := os.ReadFile(f)
			for line := range bytes.Lines(data) {
				var req colmetrics.ExportMetricsServiceRequest
				if protojson.Unmarshal(line, &req) != nil {
					continue // the line being written
				}
				readMergedReq(t, &req, got, deltas)
			}
		}
		sumDeltas(got, deltas)
		if sameTotals(got, want) {
			break
		}
		if time.Now().After(deadline) {
			for k, w := range want {
				if g := got[k]; g.value != w.value || g.buckets != w.buckets {
					t.Errorf("%s: last merged point %v %v, want %v %v", k, g.value, g.buckets, w.value, w.buckets)
				}
			}
			t.FailNow()
		}
	}
	t.Logf("%d merged series exact after a SIGKILL; %d input series, %d points sent; %v points read again after the restart",
		len(want), g.series(), g.points, metricSum(admin, "sluice_aggregate_points_out_of_order_total"))
}
