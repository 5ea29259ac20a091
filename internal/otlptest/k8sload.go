package otlptest

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	metrics "go.opentelemetry.io/proto/otlp/metrics/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// K8sLoad is the workload of the end-to-end benchmark (bench/e2eload,
// issue 10) as a stream in time: Pods pods × Series gauge series, one point
// per series and step, cut into requests of PerRequest points. It is the
// metrics-k8s corpus made to flow: 5 resource attributes (service.name,
// service.namespace, k8s.pod.name, k8s.namespace.name, service.instance.id)
// and 6 point attributes (http.route of 10 values, one of them "/health",
// http.request.method, http.response.status_code, region, env and
// debug_id, 16 hex digits unique per series). Unlike the corpus, the
// series of a pod stay distinct without debug_id (route × method × status
// differ), so that a rule deleting debug_id collapses nothing and every
// input point is one output sample.
//
// Request j holds the points of step j / RequestsPerStep, each at
// Start + step × Step + the series' phase (a fixed offset below Step), so
// every (series, time) is sent once and every series' times increase.
// Requests are built once as templates; Request copies one and writes the
// times and values of its points in place (fixed64 fields at known
// offsets), which costs a copy and two stores per point.
type K8sLoad struct {
	cfg      K8sLoadConfig
	perStep  int
	tmpl     [][]byte
	times    [][]int32 // per template, the offset of each point's time_unix_nano
	values   [][]int32 // and of its as_double
	phase    [][]int64 // and the series' phase in ns
	excluded []int     // per template, its points on ExcludeRoute
	start    int64
}

// K8sLoadConfig shapes a K8sLoad.
type K8sLoadConfig struct {
	Pods, Series int // default 100 and 100
	// PerRequest points per request; Pods × Series must be a multiple of
	// it. Default 1000.
	PerRequest int
	// Start is the time of step 0 (truncated to Step), Step the time
	// between two points of a series (default 1s).
	Start time.Time
	Step  time.Duration
	// Partitions, when > 0, balances the pods over that many partitions
	// of the ingester's resource key (otlpwire.KeyResource): each gets
	// Pods/Partitions pods or one more, so that the partitions of a
	// backlog hold as many points per step and drain at the same pace in
	// data time (a skewed backlog makes late points for an aggregator).
	Partitions int32
	// ExcludeRoute is counted by Excluded (the route a benchmark rule
	// drops). Default "/health".
	ExcludeRoute string
	// Seed draws the ids (service.instance.id, debug_id) and phases; 0
	// keeps the benchmark's own.
	Seed uint64
	// PodGenerations, when set, is per pod how often it was replaced: a
	// pod of generation g > 0 has another name and instance id (a rolling
	// deployment's churn), the same series otherwise.
	PodGenerations []int
}

// K8sRules are the rules benchmarks apply to the Kubernetes workload (the
// corpus metrics-k8s, K8sLoad), as bench/e2e/rules-unmerged does: drop the
// route /health (one of ten), set an attribute, delete debug_id, the
// attribute unique per series.
const K8sRules = `rules:
  - name: no-health
    signal: metrics
    when: attributes["http.route"] == "/health"
    drop: true
  - name: cluster
    signal: metrics
    set:
      attributes["cluster"]: '"eu-1"'
  - name: no-debug-id
    signal: metrics
    delete: ['attributes["debug_id"]']
`

// K8sRoutes are the 10 values of http.route, one per tenth of the series.
var K8sRoutes = []string{"/", "/cart", "/checkout", "/login", "/logout", "/search", "/items/{id}", "/users/{id}", "/orders/{id}", "/health"}

// Sentinels written by proto.Marshal where Request patches: the high 32 bits
// mark the field, the low ones number the point.
const (
	sentinelTime  = 0x7e5e17a3 << 32
	sentinelValue = 0x7e5e17a4 << 32
	tagTime       = 3<<3 | 1 // NumberDataPoint.time_unix_nano, fixed64
	tagDouble     = 4<<3 | 1 // NumberDataPoint.as_double, fixed64
)

// NewK8sLoad builds the request templates.
func NewK8sLoad(cfg K8sLoadConfig) (*K8sLoad, error) {
	if cfg.Pods == 0 {
		cfg.Pods = 100
	}
	if cfg.Series == 0 {
		cfg.Series = 100
	}
	if cfg.PerRequest == 0 {
		cfg.PerRequest = 1000
	}
	if cfg.Step == 0 {
		cfg.Step = time.Second
	}
	if cfg.ExcludeRoute == "" {
		cfg.ExcludeRoute = "/health"
	}
	perStep := cfg.Pods * cfg.Series
	if cfg.PerRequest < 1 || perStep%cfg.PerRequest != 0 {
		return nil, fmt.Errorf("k8s load: %d points per request do not divide the %d series", cfg.PerRequest, perStep)
	}
	if cfg.PodGenerations != nil && len(cfg.PodGenerations) != cfg.Pods {
		return nil, fmt.Errorf("k8s load: %d pod generations for %d pods", len(cfg.PodGenerations), cfg.Pods)
	}
	r := rand.New(rand.NewPCG(7, 8))
	if cfg.Seed != 0 {
		r = rand.New(rand.NewPCG(cfg.Seed, 0x6b3873))
	}
	pods, err := k8sPods(cfg, r)
	if err != nil {
		return nil, err
	}
	l := &K8sLoad{cfg: cfg, perStep: perStep / cfg.PerRequest, start: cfg.Start.Truncate(cfg.Step).UnixNano()}
	// The series' attributes (the same in every pod but debug_id) and
	// phases.
	type series struct {
		attrs []*common.KeyValue
		route string
	}
	mk := func(pod, s int) series {
		route := K8sRoutes[s%10]
		attrs := append(kvs("http.route", route, "http.request.method", []string{"GET", "POST"}[(s/10)%2]),
			&common.KeyValue{Key: "http.response.status_code", Value: &common.AnyValue{Value: &common.AnyValue_IntValue{IntValue: []int64{200, 201, 404, 500, 503}[(s/20)%5]}}})
		// Beyond 100 series a pod, an extra attribute keeps them distinct.
		if s >= 100 {
			attrs = append(attrs, str("http.response.body.size", fmt.Sprint(s/100)))
		}
		attrs = append(attrs, kvs("region", []string{"eu-west-1", "us-east-1"}[pod%2], "env", "prod", "debug_id", fmt.Sprintf("%016x", r.Uint64()))...)
		return series{attrs, route}
	}
	for t := range l.perStep {
		req := &colmetrics.ExportMetricsServiceRequest{}
		var phases []int64
		excluded := 0
		var pts []*metrics.NumberDataPoint
		for i := range cfg.PerRequest {
			g := t*cfg.PerRequest + i
			pod, s := g/cfg.Series, g%cfg.Series
			if i == 0 || s == 0 {
				pts = nil
				req.ResourceMetrics = append(req.ResourceMetrics, &metrics.ResourceMetrics{
					Resource: pods[pod],
					ScopeMetrics: []*metrics.ScopeMetrics{{Scope: &common.InstrumentationScope{Name: "io.opentelemetry.http", Version: "1.30.0"},
						Metrics: []*metrics.Metric{{Name: "http.server.active_requests", Unit: "{request}",
							Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{}}}}}},
				})
			}
			se := mk(pod, s)
			if se.route == cfg.ExcludeRoute {
				excluded++
			}
			pts = append(pts, &metrics.NumberDataPoint{
				Attributes:   se.attrs,
				TimeUnixNano: sentinelTime | uint64(i),
				Value:        &metrics.NumberDataPoint_AsDouble{AsDouble: math.Float64frombits(sentinelValue | uint64(i))},
			})
			rm := req.ResourceMetrics[len(req.ResourceMetrics)-1]
			rm.ScopeMetrics[0].Metrics[0].Data.(*metrics.Metric_Gauge).Gauge.DataPoints = pts
			phases = append(phases, int64(r.Uint64N(uint64(cfg.Step/time.Millisecond)))*int64(time.Millisecond))
		}
		b, err := proto.Marshal(req)
		if err != nil {
			return nil, err
		}
		times, values := make([]int32, cfg.PerRequest), make([]int32, cfg.PerRequest)
		found := 0
		for o := 0; o+9 <= len(b); o++ {
			if b[o] != tagTime && b[o] != tagDouble {
				continue
			}
			v := binary.LittleEndian.Uint64(b[o+1:])
			i := int(v & 0xffffffff)
			switch {
			case b[o] == tagTime && v&^0xffffffff == sentinelTime && i < len(times):
				times[i] = int32(o + 1)
			case b[o] == tagDouble && v&^0xffffffff == sentinelValue && i < len(values):
				values[i] = int32(o + 1)
			default:
				continue
			}
			found++
			o += 8
		}
		if found != 2*cfg.PerRequest {
			return nil, fmt.Errorf("k8s load: found %d of the %d fields to patch in template %d", found, 2*cfg.PerRequest, t)
		}
		l.tmpl = append(l.tmpl, b)
		l.times, l.values, l.phase = append(l.times, times), append(l.values, values), append(l.phase, phases)
		l.excluded = append(l.excluded, excluded)
	}
	return l, nil
}

// k8sPods makes the resources of the pods; with cfg.Partitions, each pod's
// service.instance.id is drawn until its partition has room.
func k8sPods(cfg K8sLoadConfig, r *rand.Rand) ([]*resource.Resource, error) {
	var sp otlpwire.Splitter
	// Each partition takes floor(Pods/Partitions) pods, and Pods mod
	// Partitions of them one more.
	count := make([]int, max(cfg.Partitions, 1))
	floor, extra := cfg.Pods/int(max(cfg.Partitions, 1)), cfg.Pods%int(max(cfg.Partitions, 1))
	out := make([]*resource.Resource, cfg.Pods)
	for pod := range cfg.Pods {
		svc := fmt.Sprintf("svc-%d", pod%10)
		name, gen := fmt.Sprintf("%s-7d9f8b-%05d", svc, pod), uint64(0)
		if cfg.PodGenerations != nil && cfg.PodGenerations[pod] > 0 {
			gen = uint64(cfg.PodGenerations[pod])
			name = fmt.Sprintf("%s-%06x-%05d", svc, gen*0x9e3779b1&0xffffff, pod)
		}
		for try := 0; ; try++ {
			res := &resource.Resource{Attributes: kvs("service.name", svc, "service.namespace", "shop", "k8s.pod.name", name,
				"k8s.namespace.name", "prod", "service.instance.id", fmt.Sprintf("%016x", r.Uint64()^gen*0x9e3779b97f4a7c15))}
			out[pod] = res
			if cfg.Partitions <= 0 {
				break
			}
			if try > 10000 {
				return nil, fmt.Errorf("k8s load: cannot balance %d pods over %d partitions", cfg.Pods, cfg.Partitions)
			}
			b, err := proto.Marshal(&colmetrics.ExportMetricsServiceRequest{ResourceMetrics: []*metrics.ResourceMetrics{{Resource: res,
				ScopeMetrics: []*metrics.ScopeMetrics{{Metrics: []*metrics.Metric{{Name: "m", Data: &metrics.Metric_Gauge{Gauge: &metrics.Gauge{
					DataPoints: []*metrics.NumberDataPoint{{TimeUnixNano: 1}}}}}}}}}}})
			if err != nil {
				return nil, err
			}
			res2, err := sp.Split(otlpwire.Metrics, b, otlpwire.Options{Partitions: cfg.Partitions, Key: otlpwire.KeyResource})
			if err != nil {
				return nil, err
			}
			if p := res2.Chunks[0].Partition; count[p] < floor || count[p] == floor && extra > 0 {
				if count[p] == floor {
					extra--
				}
				count[p]++
				break
			}
		}
	}
	return out, nil
}

// PerRequest is the number of points in every request.
func (l *K8sLoad) PerRequest() int { return l.cfg.PerRequest }

// RequestsPerStep is the number of requests that hold one point of every
// series.
func (l *K8sLoad) RequestsPerStep() int { return l.perStep }

// Excluded is the number of points on ExcludeRoute in requests 0 to n-1.
func (l *K8sLoad) Excluded(n int) int {
	full, rest := n/l.perStep, n%l.perStep
	ex := 0
	for t, e := range l.excluded {
		ex += full * e
		if t < rest {
			ex += e
		}
	}
	return ex
}

// End is the time after the last point of requests 0 to n-1.
func (l *K8sLoad) End(n int) time.Time {
	steps := (n + l.perStep - 1) / l.perStep
	return time.Unix(0, l.start+int64(steps)*int64(l.cfg.Step))
}

// Request writes request j into dst (grown as needed) and returns it.
func (l *K8sLoad) Request(dst []byte, j int) []byte {
	t, step := j%l.perStep, j/l.perStep
	dst = append(dst[:0], l.tmpl[t]...)
	base := l.start + int64(step)*int64(l.cfg.Step)
	seed := uint64(j) * 0x9e3779b97f4a7c15
	for i, off := range l.times[t] {
		binary.LittleEndian.PutUint64(dst[off:], uint64(base+l.phase[t][i]))
		// splitmix64: a value per point, without a generator to share.
		z := seed + uint64(i+1)*0xbf58476d1ce4e5b9
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		binary.LittleEndian.PutUint64(dst[l.values[t][i]:], math.Float64bits(float64(z%100_000)/10))
	}
	return dst
}
