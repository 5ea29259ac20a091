package aggregate

import (
	"fmt"
	"strings"
	"time"
)

// GaugeFunc combines the inputs of a gauge or non-monotonic sum.
type GaugeFunc uint8

// The gauge functions; see the package doc.
const (
	GaugeLast GaugeFunc = iota
	GaugeSum
	GaugeMin
	GaugeMax
	GaugeAvg
	GaugeCount
)

var gaugeNames = [...]string{"last", "sum", "min", "max", "avg", "count"}

// ParseGaugeFunc parses "last", "sum", "min", "max", "avg" or "count".
func ParseGaugeFunc(s string) (GaugeFunc, error) {
	for i, n := range gaugeNames {
		if n == s {
			return GaugeFunc(i), nil
		}
	}
	return 0, fmt.Errorf("aggregate: unknown gauge function %q (valid: %s)", s, strings.Join(gaugeNames[:], ", "))
}

func (g GaugeFunc) String() string {
	if int(g) < len(gaugeNames) {
		return gaugeNames[g]
	}
	return fmt.Sprintf("GaugeFunc(%d)", uint8(g))
}

// SummaryMode says what happens to summary points.
type SummaryMode uint8

const (
	SummaryDrop     SummaryMode = iota // drop them (counted as PointsDropped["summary"])
	SummaryCountSum                    // merge count and sum, drop quantiles
)

var summaryNames = [...]string{"drop", "count_sum"}

// ParseSummaryMode parses "drop" or "count_sum".
func ParseSummaryMode(s string) (SummaryMode, error) {
	for i, n := range summaryNames {
		if n == s {
			return SummaryMode(i), nil
		}
	}
	return 0, fmt.Errorf("aggregate: unknown summary mode %q (valid: %s)", s, strings.Join(summaryNames[:], ", "))
}

func (m SummaryMode) String() string {
	if int(m) < len(summaryNames) {
		return summaryNames[m]
	}
	return fmt.Sprintf("SummaryMode(%d)", uint8(m))
}

// Spec says how the points of one output series combine. It travels with
// the points (see AppendRecord).
type Spec struct {
	Rule     string        // rule name, labels per-rule stats
	Interval time.Duration // > 0; intervals are aligned to the Unix epoch: [k*I, (k+1)*I)
	Grace    time.Duration // how long after an interval's end points of it are still waited for; 0 = Interval
	Gauge    GaugeFunc
	Summary  SummaryMode
	Limit    int // > 0: at most Limit output series per (tenant, metric name); further series fold into an overflow series
}

// Validate reports a Spec the Aggregator cannot use.
func (s Spec) Validate() error {
	switch {
	case s.Interval <= 0:
		return fmt.Errorf("aggregate: rule %q: interval %v is not positive", s.Rule, s.Interval)
	case s.Grace < 0:
		return fmt.Errorf("aggregate: rule %q: grace %v is negative", s.Rule, s.Grace)
	case int(s.Gauge) >= len(gaugeNames):
		return fmt.Errorf("aggregate: rule %q: %v", s.Rule, s.Gauge)
	case int(s.Summary) >= len(summaryNames):
		return fmt.Errorf("aggregate: rule %q: %v", s.Rule, s.Summary)
	case s.Limit < 0:
		return fmt.Errorf("aggregate: rule %q: limit %d is negative", s.Rule, s.Limit)
	}
	return nil
}

// grace is the effective grace period.
func (s Spec) grace() time.Duration {
	if s.Grace == 0 {
		return s.Interval
	}
	return s.Grace
}
