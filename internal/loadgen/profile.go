// Package loadgen is the load generator of `sluice bench`: OTLP requests
// shaped like a real cluster's telemetry, made deterministically from a
// seed, sent over OTLP/gRPC or OTLP/HTTP in a closed loop (N connections,
// one request in flight each) or an open loop (a target rate of items),
// with the latency of every request in an HDR histogram; and the capacity
// report built from what it measured and from the sluice processes' own
// metrics.
package loadgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Profile makes the requests of a load. Request j is the same for the same
// profile and seed, whatever was asked before: a run can be repeated, and
// several senders can share a profile.
type Profile interface {
	Signal() otlpwire.Signal
	// Request appends request j to dst[:0] and returns it with the number
	// of items (data points, log records, spans) it holds.
	Request(dst []byte, j int) ([]byte, int)
	// String describes the profile for the report.
	String() string
}

// ---------------------------------------------------------------- metrics

// K8sMetrics is Pods pods × Series gauge series with realistic Kubernetes
// resource attributes and a label unique per series (otlptest.K8sLoad, the
// workload of `make bench-e2e`), one point per series and Step, in requests
// of PerRequest points. Churn is the fraction of the pods replaced every
// ChurnEvery steps (a rolling deployment: new pod names, new series).
type K8sMetrics struct {
	Pods, Series, PerRequest int
	Churn                    float64
	ChurnEvery               int
	Seed                     uint64
	Start                    time.Time
	Step                     time.Duration

	mu      sync.Mutex
	perStep int
	loads   map[int]*otlptest.K8sLoad // by churn period, the last two
}

// NewK8sMetrics checks the shape and builds the first period's requests.
func NewK8sMetrics(m *K8sMetrics) (*K8sMetrics, error) {
	if m.Pods <= 0 || m.Series <= 0 || m.PerRequest <= 0 {
		return nil, fmt.Errorf("k8s metrics: pods, series and points per request must be positive")
	}
	if m.Churn < 0 || m.Churn > 1 {
		return nil, fmt.Errorf("k8s metrics: churn %v is not a fraction between 0 and 1", m.Churn)
	}
	if m.ChurnEvery <= 0 {
		m.ChurnEvery = 60
	}
	if m.Step <= 0 {
		m.Step = time.Second
	}
	if m.Start.IsZero() {
		m.Start = time.Now()
	}
	m.loads = map[int]*otlptest.K8sLoad{}
	l, err := m.load(0)
	if err != nil {
		return nil, err
	}
	m.perStep = l.RequestsPerStep()
	return m, nil
}

func (m *K8sMetrics) Signal() otlpwire.Signal { return otlpwire.Metrics }

func (m *K8sMetrics) String() string {
	s := fmt.Sprintf("k8s metrics: %d pods × %d gauge series (5 resource attributes, 6 point attributes, one unique per series), %d points per request", m.Pods, m.Series, m.PerRequest)
	if m.Churn > 0 {
		s += fmt.Sprintf(", %.0f%% of the pods replaced every %d steps", m.Churn*100, m.ChurnEvery)
	}
	return s + fmt.Sprintf(", seed %d", m.Seed)
}

func (m *K8sMetrics) Request(dst []byte, j int) ([]byte, int) {
	period := 0
	if m.Churn > 0 {
		period = j / m.perStep / m.ChurnEvery
	}
	m.mu.Lock()
	l, err := m.load(period)
	m.mu.Unlock()
	if err != nil { // the shape was checked by the first period's
		panic(err)
	}
	return l.Request(dst, j), m.PerRequest
}

// load is the K8sLoad of a churn period: pod i has been replaced
// (p·k + i) / Pods times by period p, k pods being replaced a period.
func (m *K8sMetrics) load(p int) (*otlptest.K8sLoad, error) {
	if l := m.loads[p]; l != nil {
		return l, nil
	}
	gens := make([]int, m.Pods)
	k := int(math.Ceil(m.Churn * float64(m.Pods)))
	for i := range gens {
		gens[i] = (p*k + i) / m.Pods
	}
	l, err := otlptest.NewK8sLoad(otlptest.K8sLoadConfig{Pods: m.Pods, Series: m.Series, PerRequest: m.PerRequest,
		Start: m.Start, Step: m.Step, Seed: m.Seed, PodGenerations: gens})
	if err != nil {
		return nil, err
	}
	delete(m.loads, p-2)
	m.loads[p] = l
	return l, nil
}

// ---------------------------------------------------------------- templates

// Time and id fields of a template hold sentinels, replaced in each
// request: a time is sentinelTime | its offset in ms from the request's
// base time; an id (8 bytes, or the first 8 of a trace id) is
// sentinelID | its number in the template.
const (
	sentinelTime = 0x7e5e17a5 << 32
	sentinelID   = 0x7e5e17a6 << 32
)

// template is a request marshalled once, with the places of its sentinels.
type template struct {
	b     []byte
	items int
	times []int32 // offsets of fixed64 times
	rel   []int64 // their offsets from the base time, in ns
	ids   []int32 // offsets of ids
	idn   []uint64
}

func newTemplate(msg proto.Message, items int) (*template, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	t := &template{b: b, items: items}
	for o := 0; o+8 <= len(b); o++ {
		v := binary.LittleEndian.Uint64(b[o:])
		switch v &^ 0xffffffff {
		case sentinelTime:
			t.times, t.rel = append(t.times, int32(o)), append(t.rel, int64(v&0xffffffff)*int64(time.Millisecond))
		case sentinelID:
			t.ids, t.idn = append(t.ids, int32(o)), append(t.idn, v&0xffffffff)
		default:
			continue
		}
		o += 7
	}
	return t, nil
}

// render writes the template as request j with base time base.
func (t *template) render(dst []byte, j int, base int64) []byte {
	dst = append(dst[:0], t.b...)
	for i, o := range t.times {
		binary.LittleEndian.PutUint64(dst[o:], uint64(base+t.rel[i]))
	}
	for i, o := range t.ids {
		binary.LittleEndian.PutUint64(dst[o:], mix(uint64(j)<<20|t.idn[i]))
	}
	return dst
}

// mix is splitmix64's finaliser: ids unique per request and place.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// templated is a profile of Templates request templates made from a seed,
// request j being template j mod Templates at Start + j × Every.
type templated struct {
	sig   otlpwire.Signal
	desc  string
	tmpl  []*template
	start int64
	every time.Duration
}

func (p *templated) Signal() otlpwire.Signal { return p.sig }
func (p *templated) String() string          { return p.desc }

func (p *templated) Request(dst []byte, j int) ([]byte, int) {
	t := p.tmpl[j%len(p.tmpl)]
	return t.render(dst, j, p.start+int64(j)*int64(p.every)), t.items
}

// lognormal draws from a log-normal distribution of the given median.
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}
