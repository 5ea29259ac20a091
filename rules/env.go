package rules

import (
	"fmt"
	"reflect"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Env is the item a rule looks at and edits: a *MetricEnv, *LogEnv or
// *SpanEnv. Its fields are the names an expression can use; the `expr`
// tags give their spelling in rules.
type Env interface {
	signal() otlpwire.Signal
	common() *Common
}

// Scope is the instrumentation scope of an item.
type Scope struct {
	Name    string `expr:"name"`
	Version string `expr:"version"`
}

// Common holds what items of every signal have. Attributes are the data
// point, log record or span attributes; Resource the resource attributes.
// Values should be string, bool, int64, float64, []byte, []any or
// map[string]any, as in OTLP. A nil map reads as empty and is created when
// a rule sets a key in it.
type Common struct {
	Attributes map[string]any `expr:"attributes"`
	Resource   map[string]any `expr:"resource"`
	Scope      Scope          `expr:"scope"`

	// ev is the Evaluator running rules on the item, set for the time of
	// its Apply: top_k, handed the item as a hidden argument, finds its
	// batch and tenant there.
	ev *Evaluator
}

func (c *Common) common() *Common { return c }

// MetricEnv is one metric data point.
type MetricEnv struct {
	Common `expr:"-"`
	Name   string `expr:"name"`
	Unit   string `expr:"unit"`
	// Type is "gauge", "sum", "histogram", "exponential_histogram" or
	// "summary".
	Type string `expr:"type"`
	// Value is the point's value for gauges and sums, its sum for
	// histograms and summaries.
	Value float64 `expr:"value"`
}

// LogEnv is one log record.
type LogEnv struct {
	Common         `expr:"-"`
	Body           any    `expr:"body"` // usually a string; any OTLP value
	SeverityNumber int    `expr:"severity_number"`
	SeverityText   string `expr:"severity_text"`
	TraceID        string `expr:"trace_id"` // lowercase hex, "" if none
	SpanID         string `expr:"span_id"`  // lowercase hex, "" if none
}

// SpanEnv is one span.
type SpanEnv struct {
	Common `expr:"-"`
	Name   string `expr:"name"`
	// Kind is "unspecified", "internal", "server", "client", "producer"
	// or "consumer".
	Kind string `expr:"kind"`
	// StatusCode is "unset", "ok" or "error".
	StatusCode    string  `expr:"status_code"`
	StatusMessage string  `expr:"status_message"`
	DurationMs    float64 `expr:"duration_ms"`
	TraceID       string  `expr:"trace_id"`       // lowercase hex
	SpanID        string  `expr:"span_id"`        // lowercase hex
	ParentSpanID  string  `expr:"parent_span_id"` // lowercase hex, "" for a root span
}

func (*MetricEnv) signal() otlpwire.Signal { return otlpwire.Metrics }
func (*LogEnv) signal() otlpwire.Signal    { return otlpwire.Logs }
func (*SpanEnv) signal() otlpwire.Signal   { return otlpwire.Traces }

// envProto returns the value expressions of sig are type checked against.
func envProto(sig otlpwire.Signal) any {
	switch sig {
	case otlpwire.Metrics:
		return &MetricEnv{}
	case otlpwire.Logs:
		return &LogEnv{}
	default:
		return &SpanEnv{}
	}
}

// envNames lists the names an expression of sig can use, from the expr
// tags of its Env type.
func envNames(sig otlpwire.Signal) []string {
	var names []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if tag := f.Tag.Get("expr"); tag != "" && tag != "-" {
				names = append(names, tag)
			}
		}
	}
	walk(reflect.TypeOf(envProto(sig)).Elem())
	return names
}

// field is a settable field of an Env, a target of set.
type field struct {
	name string
	kind reflect.Kind // the value's kind; Interface takes any value
	set  func(Env, any) error
}

// fields lists the settable fields of each signal.
var fields = [len(otlpwire.Signals)][]field{
	otlpwire.Metrics: {
		{"name", reflect.String, func(e Env, v any) error { return setString(&e.(*MetricEnv).Name, v) }},
		{"unit", reflect.String, func(e Env, v any) error { return setString(&e.(*MetricEnv).Unit, v) }},
	},
	otlpwire.Logs: {
		{"body", reflect.Interface, func(e Env, v any) error { e.(*LogEnv).Body = v; return nil }},
		{"severity_text", reflect.String, func(e Env, v any) error { return setString(&e.(*LogEnv).SeverityText, v) }},
		{"severity_number", reflect.Int, func(e Env, v any) error {
			n, ok := v.(int)
			if !ok {
				return fmt.Errorf("severity_number: want an int, got %T", v)
			}
			e.(*LogEnv).SeverityNumber = n
			return nil
		}},
	},
	otlpwire.Traces: {
		{"name", reflect.String, func(e Env, v any) error { return setString(&e.(*SpanEnv).Name, v) }},
		{"status_message", reflect.String, func(e Env, v any) error { return setString(&e.(*SpanEnv).StatusMessage, v) }},
	},
}

func setString(dst *string, v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a string, got %T", v)
	}
	*dst = s
	return nil
}

func fieldNames(sig otlpwire.Signal) []string {
	var out []string
	for _, f := range fields[sig] {
		out = append(out, f.name)
	}
	return out
}
