package stream

import "github.com/sluice-dev/sluice/internal/otlpwire"

// Topics names the bus topics of one pipeline. Every name starts with the
// configured prefix so that several pipelines can share one cluster.
type Topics struct {
	Prefix string
}

// Raw is the topic the ingesters write a signal's OTLP requests to.
func (t Topics) Raw(s otlpwire.Signal) string { return t.Prefix + ".raw." + s.String() }

// Processed is the topic the workers write a signal's processed records to.
func (t Topics) Processed(s otlpwire.Signal) string { return t.Prefix + ".processed." + s.String() }

// DLQ is the dead-letter topic: records that could not be decoded or were
// rejected permanently by a backend, with the reason in their headers.
func (t Topics) DLQ() string { return t.Prefix + ".dlq" }

// Aggregate is the aggregation topic: metric points whose series the rules
// collapsed, keyed by output series, on their way from the workers to the
// aggregators (stream/aggregate).
func (t Topics) Aggregate() string { return t.Prefix + ".agg.metrics" }

// AggregateState names the state store of the aggregators' checkpoints.
func (t Topics) AggregateState() string { return t.Prefix + ".agg.state" }
