package rules

import (
	"math"
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"
	"go.yaml.in/yaml/v3"
)

// sample: F keeps the fraction F (0 to 1) of the matching items and drops
// the rest. The decision is a hash compared with a threshold, so it is the
// same on every worker: spans by trace id (a trace is kept or dropped
// whole, and a smaller fraction keeps a subset of what a larger one keeps),
// logs by trace id when they have one and at random otherwise, metric
// points by series (name, attributes and resource), so a series is kept or
// dropped whole.
type sampleAction struct {
	rate      float64
	threshold uint64 // keep when hash < threshold
}

func decodeSample(d *fileDecoder, r *Rule, k, v *yaml.Node) action {
	var f float64
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!float" && v.Tag != "!!int") || v.Decode(&f) != nil || f < 0 || f > 1 || math.IsNaN(f) {
		d.errorf(v, "sample", "want a fraction from 0 to 1, e.g. 0.1 to keep 10%%, not %q", scalar(v))
		return nil
	}
	return &sampleAction{rate: f, threshold: sampleThreshold(f)}
}

func sampleThreshold(f float64) uint64 {
	if t := math.Ldexp(f, 64); t < math.Ldexp(1, 64) {
		return uint64(t)
	}
	return math.MaxUint64
}

func (a *sampleAction) apply(c *call) (outcome, error) {
	switch {
	case a.rate >= 1:
		return unchanged, nil
	case a.rate <= 0:
		return dropped, nil
	}
	if sampleHash(c.env, &c.ev.buf) < a.threshold {
		return unchanged, nil
	}
	return dropped, nil
}

// sampleHash is the hash an item is sampled by; buf is scratch space.
func sampleHash(env Env, buf *[]byte) uint64 {
	switch e := env.(type) {
	case *SpanEnv:
		if e.TraceID != "" {
			return xxhash.Sum64String(e.TraceID)
		}
	case *LogEnv:
		if e.TraceID != "" {
			return xxhash.Sum64String(e.TraceID)
		}
	case *MetricEnv:
		return seriesHash(e, buf)
	}
	return rand.Uint64()
}

// seriesHash hashes a point's metric name, attributes and resource. The
// pairs of a map are combined by addition, so their order does not matter
// and no sorting is needed.
func seriesHash(e *MetricEnv, buf *[]byte) uint64 {
	h := xxhash.Sum64String(e.Name)
	for _, m := range [2]map[string]any{e.Attributes, e.Resource} {
		var sum uint64
		for k, v := range m {
			b := append((*buf)[:0], k...)
			b = append(b, 0)
			b = appendValue(b, v)
			*buf = b
			sum += xxhash.Sum64(b)
		}
		h = h*0x9E3779B97F4A7C15 + sum
	}
	return xxhash.Sum64(append((*buf)[:0],
		byte(h), byte(h>>8), byte(h>>16), byte(h>>24), byte(h>>32), byte(h>>40), byte(h>>48), byte(h>>56)))
}
