package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
)

// Merging in the raw partition (Config.LocalMerge).
//
// When every producer of the raw metrics topic sends all points of a
// resource to one partition (sluice's ingesters do: partition_key resource,
// the default for metrics) and the rules change no resource
// (rules.Set.KeepsResources), all the inputs of a merged series come
// through the raw partition its resource is in. The worker reading that
// partition merges them itself, in one aggregate.Aggregator per raw
// partition, and writes the closed intervals to the processed topic: the
// points never go through the aggregation topic, its encoding, the bus
// and an aggregator's decoding. Points under a limit, which counts a
// metric's series across resources, still do.
//
// The state follows the raw partition as an aggregator's follows its
// aggregation partition: the worker's stage commits the raw positions only
// at checkpoints (stage.Config.Checkpoint), after the closed intervals are
// written and the state of each changed partition stored under
// "<group>.local/<partition>"; the next owner restores it and reads the
// records not committed again, whose merged points the state already holds
// (aggregate: out of order) and whose other points are written again (at
// least once, as ever).
//
// The watermark of a raw partition's state is its own progress: the
// newest point time of each poll, told after all its records
// (Worker.progress, aggregate.Aggregator.Progress); its points never move
// it. The wall clock closes the last
// intervals of a partition that falls quiet, but not while the worker is
// behind on it: a partition is held (aggregate.Aggregator.Behind) when
// its records were just read, and while the newest record read from it
// was written more than behindSlack before it was read, until a
// checkpoint interval passes without a record of it; every partition is
// held after the process did not run for longer than stallGap (stopped,
// swapped out: a goroutine notes every stallTick that it runs). Neither a
// backlog nor a stall then makes points late.

// behindSlack is how much older than the moment it is read a raw record
// may be for the worker to count as keeping up with its partition.
const behindSlack = 2 * time.Second

// stallTick is how often the worker notes that it runs; a gap of more than
// stallGap between two notes is a stall.
const (
	stallTick = 250 * time.Millisecond
	stallGap  = time.Second
)

// localState is what a worker keeps of the raw partitions it merges in.
type localState struct {
	agg *Aggregator // an Aggregator of no group: its partitions are raw partitions
	// lagging is, per raw partition, whether the worker was behind on it
	// at its last read; read, whether it was read since the last
	// checkpoint; readNow, in the batch in hand.
	lagging, read, readNow map[int32]bool
	interval               time.Duration
	// ran is when the worker last noted that it runs (watch), gapAt when
	// it last found a gap between two notes (ns); heldAt is when the
	// partitions were last held.
	ran, gapAt atomic.Int64
	heldAt     int64
}

// newLocalState opens the state store of the worker's local merge.
func newLocalState(ctx context.Context, bus stream.Bus, cfg Config) (*localState, error) {
	a, err := newAggregatorState(ctx, bus, AggregatorConfig{Topics: cfg.Topics, Group: cfg.Group + ".local", TickInterval: -1,
		MaxRecordBytes: cfg.MaxRecordBytes, Allocator: cfg.Allocator, Logger: cfg.Logger, Registerer: cfg.Registerer}, true)
	if err != nil {
		return nil, fmt.Errorf("worker: local_merge: %w", err)
	}
	l := &localState{agg: a, lagging: map[int32]bool{}, read: map[int32]bool{}, readNow: map[int32]bool{}, interval: cfg.MergeCheckpointInterval}
	l.ran.Store(time.Now().UnixNano())
	if l.interval <= 0 {
		l.interval = defaultCheckpointInterval
	}
	return l, nil
}

// defaultCheckpointInterval is the stage's (and the aggregator's) default.
const defaultCheckpointInterval = 5 * time.Second

// take readies the states of the raw metrics partitions of groups
// (restoring them the first time) and notes whether the worker is behind
// on each, as of now.
func (l *localState) take(ctx context.Context, groups []*group, now time.Time) error {
	l.agg.dropRevoked()
	for _, g := range groups {
		if g.sig != otlpwire.Metrics {
			continue
		}
		ps, err := l.agg.partition(ctx, g.partition)
		if err != nil {
			return err
		}
		// The worker tells the partition's progress after every batch
		// (Worker.progress): its points never move the watermark, not
		// even the first batch's, whose series each span the batch.
		ps.agg.Progress(g.partition, 0, now)
		var newest time.Time
		for _, r := range g.recs {
			if r.Timestamp.After(newest) {
				newest = r.Timestamp
			}
		}
		l.read[g.partition], l.readNow[g.partition] = true, true
		l.lagging[g.partition] = now.Sub(newest) > behindSlack
	}
	return nil
}

// add merges the points rows of b (the rules' output, of g's tenant),
// whose input and output series hashes are in and out, under spec.
func (l *localState) add(g *group, b *schemas.Batch, in, out []uint64, spec *aggregate.Spec, now time.Time) error {
	ps := l.agg.parts[g.partition]
	if ps == nil {
		return fmt.Errorf("worker: local_merge: raw partition %d has no state", g.partition)
	}
	l.agg.m.pointsIn.Add(float64(b.Len()))
	l.agg.sinceFlush += b.Len()
	ps.dirty = true
	return ps.agg.AddFrom(g.partition, g.tenant, b, in, out, *spec, now)
}

// progress tells the state of raw partition p that it reached point time
// t (after the points of the batch that did).
func (l *localState) progress(p int32, t int64, now time.Time) {
	if ps := l.agg.parts[p]; ps != nil && t > 0 {
		ps.agg.Progress(p, t, now)
		ps.dirty = true
	}
}

// watch notes every stallTick that the worker runs, until ctx is done.
func (l *localState) watch(ctx context.Context) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-t.C:
			now := at.UnixNano()
			if last := l.ran.Swap(now); now-last > int64(stallGap) {
				l.gapAt.Store(now)
			}
		}
	}
}

// hold tells the state of each partition, just before a flush, whether it
// is behind (itself its one source): all are after a stall of the
// process, else those read in the batch in hand and those the worker was
// behind on when last read.
func (l *localState) hold() {
	now := time.Now()
	n := now.UnixNano()
	stalled := n-l.ran.Load() > int64(stallGap) || l.gapAt.Load() > l.heldAt
	l.heldAt = n
	for p, ps := range l.agg.parts {
		if stalled || l.readNow[p] || l.lagging[p] {
			ps.agg.Behind(now, func(src int32) bool { return src == p })
		}
	}
}

// flush writes the closed intervals once FlushPoints points came in since
// the last time, as the aggregator does.
func (l *localState) flush(ctx context.Context) error {
	defer clear(l.readNow)
	if l.agg.sinceFlush < l.agg.cfg.FlushPoints && len(l.agg.unsent) == 0 {
		return nil
	}
	l.hold()
	return l.agg.flush(ctx)
}

// checkpoint writes the closed intervals and stores the changed states;
// a partition not read since the last checkpoint no longer counts as one
// the worker is behind on.
func (l *localState) checkpoint(ctx context.Context) error {
	l.agg.dropRevoked()
	l.hold()
	for p := range l.lagging {
		if !l.read[p] {
			delete(l.lagging, p)
		}
	}
	clear(l.read)
	return l.agg.checkpoint(ctx)
}
