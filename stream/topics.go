package stream

import "github.com/sluice-dev/sluice/internal/otlpwire"

// Topics names the bus topics of one pipeline. Every name starts with the
// configured prefix so that several pipelines can share one cluster, but
// for raw topics named in RawNames.
type Topics struct {
	Prefix string
	// RawNames, where set for a signal, is its raw topic instead of
	// <prefix>.raw.<signal>: a topic written by agents' Kafka exporters
	// (the OpenTelemetry Collector's, Grafana Alloy's), which the pipeline
	// reads (and its ingesters, if any, write) but does not own.
	RawNames [len(otlpwire.Signals)]string
}

// Raw is the topic the ingesters write a signal's OTLP requests to, and
// the workers read.
func (t Topics) Raw(s otlpwire.Signal) string {
	if s.Valid() && t.RawNames[s] != "" {
		return t.RawNames[s]
	}
	return t.Prefix + ".raw." + s.String()
}

// External reports whether the raw topic of s is named in RawNames: a
// topic of others, which sluice does not create or configure unless told.
func (t Topics) External(s otlpwire.Signal) bool { return s.Valid() && t.RawNames[s] != "" }

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
