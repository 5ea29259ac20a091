package worker

import (
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// InlineAggregator merges, in the process, the records of the aggregation
// topic that an inline worker (NewInline) makes, as the aggregator group
// merges them from the bus: points whose series the rules changed or
// collapsed, and points a limit counts. It has one aggregate.Aggregator
// for every aggregation partition, fed in the order the worker made the
// records, and no state store: its state lives as long as it does (sluice
// replay). Its output is processed records of the metrics topic, as the
// aggregator writes them.
type InlineAggregator struct {
	a  *Aggregator // the aggregator group's code: add and records
	ps *aggPartition
}

// NewInlineAggregator returns an InlineAggregator; bus only tells the
// partitions of the topics. cfg's Group, Start, poll, checkpoint and
// flush keys do not apply.
func NewInlineAggregator(bus stream.Bus, cfg AggregatorConfig) (*InlineAggregator, error) {
	if cfg.Allocator == nil {
		cfg.Allocator = arrowpool.Default
	}
	a := &Aggregator{cfg: cfg, bus: bus, log: cfg.Logger, parts: map[int32]*aggPartition{}}
	var err error
	if a.m, err = newAggMetrics(nil, a); err != nil {
		return nil, err
	}
	acfg := aggregate.Config{Allocator: cfg.Allocator, Stale: cfg.Stale, FlushBuffers: &a.flushBufs, BySet: true,
		Sources: int(max(0, bus.Partitions(cfg.Topics.Raw(otlpwire.Metrics))))}
	return &InlineAggregator{a: a, ps: &aggPartition{agg: aggregate.New(acfg), last: -1}}, nil
}

// Add merges r, a record of the aggregation topic (or a progress record,
// which moves the watermark). It returns the rule that merges its points
// and how many it held.
func (ia *InlineAggregator) Add(r *stream.Record, now time.Time) (rule string, points int, err error) {
	if r.Topic != ia.a.cfg.Topics.Aggregate() {
		return "", 0, fmt.Errorf("aggregator: record of topic %s, not %s", r.Topic, ia.a.cfg.Topics.Aggregate())
	}
	return ia.a.addRecord(ia.ps, r, now)
}

// Flush returns the intervals closed by the watermark (with force, every
// open interval) as processed records of the metrics topic.
func (ia *InlineAggregator) Flush(now time.Time, force bool) ([]*stream.Record, error) {
	var out []*stream.Record
	err := ia.ps.agg.FlushTo(now, force, func(o aggregate.Output) error {
		recs, err := ia.a.records(0, o)
		o.Batch.Release()
		out = append(out, recs...)
		return err
	})
	return out, err
}
