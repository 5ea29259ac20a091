package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
	"github.com/sluice-dev/sluice/stream/stage"
)

// AggregatorConfig configures an Aggregator.
type AggregatorConfig struct {
	Topics stream.Topics
	// Group is the aggregators' consumer group; default
	// "sluice-aggregator".
	Group string
	Start stream.Start
	// MaxPollRecords and MaxPollBytes bound what one poll of the
	// aggregation topic returns (stream.ConsumerConfig); 0: the bus's
	// defaults.
	MaxPollRecords int
	MaxPollBytes   int
	// CheckpointInterval is how often closed intervals are written and the
	// state checkpointed (then the positions committed). Default 5s.
	CheckpointInterval time.Duration
	// CheckpointPoints also checkpoints as soon as this many points came
	// in since the last checkpoint, so that what a crash makes the next
	// owner read again, and the records held uncommitted, stay bounded
	// while a backlog is read at full speed (FlushPoints bounds what is
	// closed and not yet written). A checkpoint stores the whole state of
	// each changed partition, however few points came since the last one:
	// fewer checkpoints, less of that work. Default 1000000 (about a
	// second of a core's work to read again); negative: by time only.
	CheckpointPoints int
	// FlushPoints writes the closed intervals, between checkpoints, as
	// soon as this many points came in since they were last written: the
	// intervals a backlog closes leave the state sooner, so it stays
	// smaller. Intervals written and not yet checkpointed are written again
	// after a crash, with the same values (see Aggregator). Default 20000;
	// negative: only at checkpoints.
	FlushPoints int
	// Stale: see aggregate.Config.
	Stale time.Duration
	// TickInterval is how often the aggregator writes a tick to every
	// aggregation partition (HeaderTick): the wall clock of the moment,
	// and which raw partitions the workers are behind on. The owner of a
	// partition takes its clock from the ticks it reads, so the wall
	// clock closes intervals (a source silent for the grace no longer
	// holds the watermark; an idle watermark follows the wall) only where
	// nothing is left to read: neither its own stall nor a worker's, nor a
	// backlog the workers are still reading, makes points late. Default
	// 1s; negative: no ticks, each partition goes by the wall clock as it
	// reads (a stall longer than the grace then makes points late).
	TickInterval time.Duration
	// WorkerGroup is the workers' consumer group, whose lag on the raw
	// metrics topic tells which sources are behind. Default: Group without
	// its ".aggregate" suffix, else "sluice-worker".
	WorkerGroup string
	// MaxRecordBytes is the largest record the bus takes; 0: no limit.
	// Output batches are cut to fit.
	MaxRecordBytes int
	Allocator      memory.Allocator // default arrowpool.Default
	// OnDeadLetters, when set, is told of the dead letters once they are
	// on the bus.
	OnDeadLetters stream.DeadLetterHook
	Logger        *slog.Logger
	Metrics       *stage.Metrics
	Registerer    prometheus.Registerer
}

// Aggregator is one member of the aggregator group: it merges the points of
// the aggregation topic's partitions it owns, one aggregate.Aggregator per
// partition, and writes the closed intervals to the processed metrics
// topic.
//
// Its state follows the partitions. Every CheckpointInterval it flushes
// the closed intervals of each partition to the processed topic, then
// stores each changed partition's state in the state store (the bus's own:
// a compacted Kafka topic, a JetStream object store), and only then commits
// the positions. A member that takes a partition over (after a crash, a
// rebalance or a restart) restores its state and reads the records not
// committed again; those whose points the state already holds change
// nothing, as every point not newer than its input series' last one is
// dropped (aggregate: out of order). Records are not skipped by offset:
// JetStream redelivers unacknowledged messages after newer ones, so an
// offset says nothing of what came before it. Intervals closed but not yet
// checkpointed when a member dies are emitted again by the next owner,
// with the same values and timestamps (aggregate.Aggregator is
// deterministic), which backends take as duplicates.
//
// Kafka assigns each partition to one member. On NATS every member pulls
// from every partition: run one aggregator there (the embedded bus runs
// one process anyway).
type Aggregator struct {
	cfg   AggregatorConfig
	bus   stream.Bus
	store stream.StateStore
	stage *stage.Stage
	log   *slog.Logger
	m     *aggMetrics

	parts map[int32]*aggPartition
	// unsent holds output records a failed produce left, sent before
	// anything else at the next checkpoint.
	unsent []*stream.Record
	buf    bytes.Buffer
	hasher aggregate.Hasher
	out    []uint64 // output series hashes of the record in hand
	// sinceFlush counts the points added since the closed intervals were
	// last written (FlushPoints).
	sinceFlush int
	// flushBufs are shared by the partitions, which flush one after
	// another.
	flushBufs aggregate.FlushBuffers

	// heardAt is the wall clock (ns) of the last record read that was not
	// a tick, and pending whether the last flush left intervals open: the
	// ticks stop when neither says there is anything to close.
	heardAt  atomic.Int64
	pending  atomic.Bool
	tickIdle time.Duration // tickIdle; tests shorten it
	lastTick time.Time     // when the last tick was written (the ticks' goroutine's)

	// local: the state of a worker merging in its raw partitions
	// (localState), not a member of the aggregator group.
	local bool

	mu      sync.Mutex
	revoked []int32 // told by the bus during Poll, applied by the stage's goroutine
	stats   map[string]aggregate.RuleStats
	marks   map[int32][2]int64 // per partition: watermark, newest point time (ns)
}

// aggPartition is the state of one partition of the aggregation topic.
type aggPartition struct {
	agg   *aggregate.Aggregator
	last  int64 // the largest offset of a record in agg (for the log); -1: none
	dirty bool  // changed since the last checkpoint
	// clock is the time of the newest tick read; before one is newer, the
	// restored state's own clock, or the wall clock when the partition
	// was taken up without state. Zero: no ticks, the wall clock.
	clock time.Time
}

// now is the clock ps goes by: its ticks', else wall.
func (ps *aggPartition) now(wall time.Time) time.Time {
	if ps.clock.IsZero() {
		return wall
	}
	return ps.clock
}

// NewAggregator joins the aggregator group on bus, which must keep state.
func NewAggregator(ctx context.Context, bus stream.Bus, cfg AggregatorConfig) (*Aggregator, error) {
	a, err := newAggregatorState(ctx, bus, cfg, false)
	if err != nil {
		return nil, err
	}
	cfg = a.cfg
	scfg := stage.Config{Name: "aggregator", Handle: a.handle, Checkpoint: a.checkpoint,
		CheckpointInterval: cfg.CheckpointInterval, CheckpointItems: max(cfg.CheckpointPoints, 0), Logger: cfg.Logger, Metrics: cfg.Metrics}
	c, err := bus.Consume(scfg.ConsumerHooks(stream.ConsumerConfig{Group: cfg.Group, Topics: []string{cfg.Topics.Aggregate()}, Start: cfg.Start,
		MaxPollRecords: cfg.MaxPollRecords, MaxPollBytes: cfg.MaxPollBytes, OnRevoked: a.onRevoked, InOrder: true}))
	if err != nil {
		return nil, fmt.Errorf("aggregator: joining group %s: %w", cfg.Group, err)
	}
	scfg.Consumer = c
	a.stage, err = stage.New(scfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return a, nil
}

// newAggregatorState returns an Aggregator that has not joined a group:
// its state store open, its defaults set, its metrics registered. local:
// the state of a worker that merges in its raw partitions (localState),
// whose partitions are the raw metrics topic's.
func newAggregatorState(ctx context.Context, bus stream.Bus, cfg AggregatorConfig, local bool) (*Aggregator, error) {
	sb, ok := bus.(stream.StatefulBus)
	if !ok {
		return nil, fmt.Errorf("aggregator: the bus (%T) cannot keep state", bus)
	}
	if cfg.Group == "" {
		cfg.Group = "sluice-aggregator"
	}
	if cfg.Allocator == nil {
		cfg.Allocator = arrowpool.Default
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckpointPoints == 0 {
		cfg.CheckpointPoints = defaultCheckpointPoints
	}
	if cfg.FlushPoints == 0 {
		cfg.FlushPoints = defaultFlushPoints
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = defaultTickInterval
	}
	if cfg.WorkerGroup == "" {
		cfg.WorkerGroup = "sluice-worker"
		if g, ok := strings.CutSuffix(cfg.Group, ".aggregate"); ok && g != "" {
			cfg.WorkerGroup = g
		}
	}
	a := &Aggregator{cfg: cfg, bus: bus, log: cfg.Logger, parts: map[int32]*aggPartition{}, local: local}
	a.heardAt.Store(time.Now().UnixNano())
	a.tickIdle = tickIdle
	var err error
	if a.m, err = newAggMetrics(cfg.Registerer, a); err != nil {
		return nil, err
	}
	if a.store, err = sb.StateStore(ctx, cfg.Topics.AggregateState()); err != nil {
		return nil, fmt.Errorf("aggregator: opening the state store: %w", err)
	}
	return a, nil
}

// Defaults of AggregatorConfig.CheckpointPoints, FlushPoints and
// TickInterval.
const (
	defaultCheckpointPoints = 1_000_000
	defaultFlushPoints      = 20_000
	defaultTickInterval     = time.Second
)

// Run aggregates until ctx is cancelled, then checkpoints once more and
// leaves the group.
func (a *Aggregator) Run(ctx context.Context) error {
	if a.cfg.TickInterval > 0 {
		tctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.ticks(tctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	return a.stage.Run(ctx)
}

// ticks writes a tick every TickInterval until ctx is done.
func (a *Aggregator) ticks(ctx context.Context) {
	t := time.NewTicker(a.cfg.TickInterval)
	defer t.Stop()
	failing := false
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		if !a.pending.Load() && time.Since(time.Unix(0, a.heardAt.Load())) > a.tickIdle {
			continue // nothing open, nothing heard: an idle pipeline writes nothing
		}
		err := a.tick(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			// Without ticks the partitions' clocks stand still: nothing
			// is made late, and idle intervals wait.
			a.log.Warn("aggregator: tick not written or sources' lag not known; idle intervals wait for it", "err", err)
		case err == nil && failing:
			a.log.Info("aggregator: ticks written again")
		}
		failing = err != nil
	}
}

// tickTimeout bounds the writing of one tick; tickIdle is how long after
// the last record with points (or progress) an aggregator whose partitions
// hold no open interval goes on ticking.
const (
	tickTimeout = 10 * time.Second
	tickIdle    = time.Minute
)

// tick writes a tick to every aggregation partition. It asks the bus first
// which sources are behind, then writes: a source that was not behind had
// all its aggregation records on the bus before the tick. A tick without
// that answer still moves the clocks. A tick more than three intervals
// after the last (the process did not run: stopped, swapped out, starved)
// says every source is behind: the time nothing ran here is no source's
// silence, and the workers of this process, if any, did not run either.
func (a *Aggregator) tick(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, tickTimeout)
	defer cancel()
	at := time.Now()
	gap := !a.lastTick.IsZero() && at.Sub(a.lastTick) > 3*a.cfg.TickInterval
	a.lastTick = at
	hdrs := []stream.Header{{Key: HeaderTick, Value: strconv.AppendInt(nil, at.UnixNano(), 10)}}
	behind, lagErr := a.behind(ctx)
	if gap {
		behind = []byte("*")
	}
	if behind != nil {
		hdrs = append(hdrs, stream.Header{Key: HeaderBehind, Value: behind})
	}
	topic := a.cfg.Topics.Aggregate()
	recs := make([]*stream.Record, max(0, a.bus.Partitions(topic)))
	for q := range recs {
		recs[q] = &stream.Record{Topic: topic, Partition: int32(q), Timestamp: at, Headers: hdrs}
	}
	if err := a.bus.Produce(ctx, recs...); err != nil {
		a.m.tickErrors.Inc()
		return fmt.Errorf("writing ticks: %w", err)
	}
	a.m.ticks.Inc()
	switch {
	case lagErr != nil:
		a.m.tickErrors.Inc()
	case behind == nil:
		a.m.behind.Set(-1)
	case string(behind) == "-":
		a.m.behind.Set(0)
	case string(behind) == "*":
		a.m.behind.Set(float64(a.sources()))
	default:
		a.m.behind.Set(float64(bytes.Count(behind, []byte(",")) + 1))
	}
	return lagErr
}

// behind is HeaderBehind's value: the raw metrics partitions on which the
// worker group has records not committed (nil when the bus cannot tell:
// NATS JetStream tells a topic's lag, not its partitions').
func (a *Aggregator) behind(ctx context.Context) ([]byte, error) {
	gl, ok := a.bus.(stream.GroupLagger)
	if !ok {
		return nil, nil
	}
	lags, err := gl.GroupLag(ctx, a.cfg.WorkerGroup, a.cfg.Topics.Raw(otlpwire.Metrics))
	if err != nil {
		return nil, fmt.Errorf("the workers' lag: %w", err)
	}
	var v []byte
	for _, l := range lags {
		if l.Partition < 0 {
			return nil, nil
		}
		if l.Lag > 0 {
			if v != nil {
				v = append(v, ',')
			}
			v = strconv.AppendInt(v, int64(l.Partition), 10)
		}
	}
	if v == nil {
		v = []byte("-")
	}
	return v, nil
}

// readTick moves ps's clock to the tick r (whose HeaderTick is v) and
// tells its aggregate which sources were behind then. Without ticks of its
// own (TickInterval negative) the aggregator goes by the wall clock and
// ignores those of others.
func (a *Aggregator) readTick(ps *aggPartition, r *stream.Record, v []byte) error {
	if a.cfg.TickInterval <= 0 {
		return nil
	}
	ns, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || ns <= 0 {
		return fmt.Errorf("aggregator: a tick with %s %q", HeaderTick, v)
	}
	at := time.Unix(0, ns)
	if at.After(ps.clock) {
		ps.clock = at
	}
	list := r.Header(HeaderBehind)
	if list == nil {
		return nil
	}
	if string(list) == "*" {
		ps.agg.Behind(at, func(int32) bool { return true })
		return nil
	}
	var behind []int32
	if string(list) != "-" {
		for f := range bytes.SplitSeq(list, []byte(",")) {
			p, err := strconv.ParseInt(string(f), 10, 32)
			if err != nil || p < 0 {
				return fmt.Errorf("aggregator: a tick with %s %q", HeaderBehind, list)
			}
			behind = append(behind, int32(p))
		}
	}
	ps.agg.Behind(at, func(src int32) bool { return slices.Contains(behind, src) })
	return nil
}

// onRevoked is called by the bus when partitions leave this member.
func (a *Aggregator) onRevoked(topic string, partitions []int32) {
	if topic != a.cfg.Topics.Aggregate() && (!a.local || topic != a.cfg.Topics.Raw(otlpwire.Metrics)) {
		return
	}
	a.mu.Lock()
	a.revoked = append(a.revoked, partitions...)
	a.mu.Unlock()
}

// dropRevoked forgets the state of revoked partitions: their next owner
// restores it from the last checkpoint.
func (a *Aggregator) dropRevoked() {
	a.mu.Lock()
	revoked := a.revoked
	a.revoked = nil
	a.mu.Unlock()
	for _, p := range revoked {
		if a.parts[p] != nil {
			delete(a.parts, p)
			a.log.Info("aggregation partition revoked; its state is left to the next owner", "partition", p)
		}
	}
}

// sources is how many sources feed the aggregation partitions: the
// partitions of the raw metrics topic (the agents' topic when it is
// external, Topics.RawNames), whose points reach them through the workers.
// A raw partition merged in has one, itself, named by its points.
func (a *Aggregator) sources() int {
	if a.local {
		return 0
	}
	return int(max(0, a.bus.Partitions(a.cfg.Topics.Raw(otlpwire.Metrics))))
}

func (a *Aggregator) stateKey(p int32) string { return a.cfg.Group + "/" + strconv.Itoa(int(p)) }

// Checkpoint values: magic, version, the largest offset of a record the
// state holds (varint; told in the log on restore), then the aggregate
// snapshot.
const checkpointMagic = "SLAGC\x01"

// partition returns the state of p, restoring it from the store the first
// time.
func (a *Aggregator) partition(ctx context.Context, p int32) (*aggPartition, error) {
	if ps := a.parts[p]; ps != nil {
		return ps, nil
	}
	// By set: the output goes to WriteBatch only (records).
	acfg := aggregate.Config{Allocator: a.cfg.Allocator, Stale: a.cfg.Stale, FlushBuffers: &a.flushBufs, Sources: a.sources(), BySet: true}
	val, err := a.store.Get(ctx, a.stateKey(p))
	if err != nil {
		return nil, fmt.Errorf("aggregator: reading the state of partition %d: %w", p, err)
	}
	ps := &aggPartition{last: -1}
	if val == nil {
		ps.agg = aggregate.New(acfg)
	} else {
		if !bytes.HasPrefix(val, []byte(checkpointMagic)) {
			return nil, fmt.Errorf("aggregator: the state of partition %d is not a checkpoint", p)
		}
		last, n := binary.Varint(val[len(checkpointMagic):])
		if n <= 0 {
			return nil, fmt.Errorf("aggregator: the state of partition %d: %w", p, aggregate.ErrRecord)
		}
		if ps.agg, err = aggregate.Restore(bytes.NewReader(val[len(checkpointMagic)+n:]), acfg); err != nil {
			return nil, fmt.Errorf("aggregator: restoring the state of partition %d: %w", p, err)
		}
		ps.last = last
		a.log.Info("aggregation state restored", "partition", p, "offset", last, "bytes", len(val))
	}
	if a.cfg.TickInterval > 0 {
		// Time passes as the ticks read say: from now until one is
		// newer, and a restored state from its own clock, not from the
		// wall after a downtime.
		ps.clock = time.Now()
		if c, ok := ps.agg.Clock(); ok {
			ps.clock = c
		}
	}
	a.parts[p] = ps
	return ps, nil
}

func (a *Aggregator) handle(ctx context.Context, recs []*stream.Record) error {
	a.dropRevoked()
	wall := time.Now() // one for the poll: its records came together
	heard := false     // a record that is not a tick
	var dead []*stream.Record
	for _, r := range recs {
		ps, err := a.partition(ctx, r.Partition)
		if err != nil {
			return err
		}
		tick, err := a.read(ps, r, wall)
		heard = heard || !tick
		if err != nil {
			dead = append(dead, a.deadLetter(r, err))
		}
		ps.last, ps.dirty = max(ps.last, r.Offset), true
	}
	if heard {
		a.heardAt.Store(wall.UnixNano())
	}
	if _, err := stream.ProduceDeadLetters(ctx, a.bus, dead, a.log); err != nil {
		return err
	}
	if len(dead) > 0 && a.cfg.OnDeadLetters != nil {
		a.cfg.OnDeadLetters("aggregator", dead)
	}
	if a.cfg.FlushPoints > 0 && a.sinceFlush >= a.cfg.FlushPoints {
		// What is not written now is written at the checkpoint, which
		// does not commit until it is.
		if err := a.flush(ctx); err != nil {
			a.log.Warn("merged points not written before the checkpoint; retried then", "err", err)
		}
	}
	return nil
}

// read takes r into ps: a tick moves its clock, any other record goes to
// add at that clock (wall without ticks).
func (a *Aggregator) read(ps *aggPartition, r *stream.Record, wall time.Time) (tick bool, err error) {
	if v := r.Header(HeaderTick); v != nil {
		return true, a.readTick(ps, r, v)
	}
	return false, a.add(ps, r, ps.now(wall))
}

func (a *Aggregator) add(ps *aggPartition, r *stream.Record, now time.Time) error {
	_, _, err := a.addRecord(ps, r, now)
	return err
}

// addRecord adds r to ps, returning the rule that merges its points and
// how many there were (none for a progress record).
func (a *Aggregator) addRecord(ps *aggPartition, r *stream.Record, now time.Time) (rule string, points int, err error) {
	src := int32(-1) // records of workers that did not say
	if v, err := strconv.ParseInt(string(r.Header(HeaderSource)), 10, 32); err == nil && v >= 0 {
		src = int32(v)
	}
	if p := r.Header(HeaderProgress); p != nil {
		t, err := strconv.ParseInt(string(p), 10, 64)
		if err != nil || src < 0 {
			return "", 0, fmt.Errorf("aggregator: a progress record with %s %q and %s %q", HeaderProgress, p, HeaderSource, r.Header(HeaderSource))
		}
		ps.agg.Progress(src, t, now)
		return "", 0, nil
	}
	tenant, err := r.Tenant()
	if err != nil {
		return "", 0, err
	}
	b, in, spec, err := aggregate.ReadRecordSets(r.Value, a.cfg.Allocator)
	if err != nil {
		return "", 0, err
	}
	defer b.Release()
	if a.out, err = a.hasher.OutputHashes(a.out[:0], tenant, b); err != nil {
		return "", 0, err
	}
	a.m.pointsIn.Add(float64(b.Len()))
	a.sinceFlush += b.Len()
	return spec.Rule, b.Len(), ps.agg.AddFrom(src, tenant, b, in, a.out, spec, now)
}

func (a *Aggregator) deadLetter(r *stream.Record, err error) *stream.Record {
	a.m.deadLetters.Inc()
	a.log.Warn("aggregation record not merged; sent to the dead-letter topic", "partition", r.Partition, "offset", r.Offset, "err", err)
	hdrs := append(slices.Clip(r.Headers), stream.ErrorHeader(err.Error()),
		stream.Header{Key: stream.HeaderOrigin, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)})
	return &stream.Record{Topic: a.cfg.Topics.DLQ(), Partition: -1, Key: r.Key, Value: r.Value, Headers: hdrs, Timestamp: r.Timestamp}
}

// flush writes the closed intervals of every partition (and first what an
// earlier flush could not write).
func (a *Aggregator) flush(ctx context.Context) error {
	a.sinceFlush = 0 // a failed write is retried at the checkpoint, not with each record
	pending := true  // until the partitions say otherwise
	defer func() { a.pending.Store(pending) }()
	if len(a.unsent) > 0 {
		if err := a.bus.Produce(ctx, a.unsent...); err != nil {
			return fmt.Errorf("aggregator: writing merged points: %w", err)
		}
		a.unsent = nil
	}
	wall := time.Now()
	pending = false
	for _, p := range slices.Sorted(maps.Keys(a.parts)) {
		ps := a.parts[p]
		// Each part of the output is encoded and released before the
		// next is built: a backlog closes many intervals at once.
		err := ps.agg.FlushTo(ps.now(wall), false, func(o aggregate.Output) error {
			recs, err := a.records(p, o)
			o.Batch.Release()
			if err != nil {
				return err
			}
			a.unsent = append(a.unsent, recs...)
			a.m.pointsOut.Add(float64(o.Points))
			ps.dirty = true
			return nil
		})
		if err != nil {
			pending = true
			return fmt.Errorf("aggregator: partition %d: %w", p, err)
		}
		pending = pending || ps.agg.Pending()
	}
	if len(a.unsent) > 0 {
		if err := a.bus.Produce(ctx, a.unsent...); err != nil {
			return fmt.Errorf("aggregator: writing merged points: %w", err)
		}
		a.unsent = nil
	}
	return nil
}

// checkpoint writes the closed intervals of every partition, then stores
// the state of the partitions that changed. The stage commits the
// positions of the records handled before it once it returns nil.
func (a *Aggregator) checkpoint(ctx context.Context) error {
	a.dropRevoked()
	if err := a.flush(ctx); err != nil {
		return err
	}
	parts := slices.Sorted(maps.Keys(a.parts))
	var errs []error
	for _, p := range parts {
		ps := a.parts[p]
		if !ps.dirty {
			continue
		}
		a.buf.Reset()
		a.buf.WriteString(checkpointMagic)
		a.buf.Write(binary.AppendVarint(nil, ps.last))
		if err := ps.agg.Snapshot(&a.buf); err != nil {
			errs = append(errs, fmt.Errorf("aggregator: partition %d: %w", p, err))
			continue
		}
		if err := a.store.Put(ctx, a.stateKey(p), a.buf.Bytes()); err != nil {
			errs = append(errs, fmt.Errorf("aggregator: storing the state of partition %d: %w", p, err))
			continue
		}
		a.m.stateBytes.Observe(float64(a.buf.Len()))
		ps.dirty = false
	}
	a.updateStats()
	return errors.Join(errs...)
}

// records encodes an output batch as processed records of at most
// MaxRecordBytes, halving it as needed. The partition of the processed
// topic follows the aggregation partition, so each series keeps one.
func (a *Aggregator) records(p int32, o aggregate.Output) ([]*stream.Record, error) {
	topic := a.cfg.Topics.Processed(otlpwire.Metrics)
	n := o.Batch.Len()
	a.buf.Reset()
	if err := schemas.WriteBatch(&a.buf, o.Batch); err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	out := int32(-1)
	if np := a.bus.Partitions(topic); np > 0 {
		out = p % np
	}
	rec := &stream.Record{Topic: topic, Partition: out, Value: bytes.Clone(a.buf.Bytes()), Timestamp: time.Now(),
		Headers: recordHeaders(stream.ContentTypeArrow, otlpwire.Metrics, o.Tenant, n, "", nil)}
	if a.cfg.MaxRecordBytes <= 0 || len(rec.Value)+rec.Overhead() <= a.cfg.MaxRecordBytes {
		return []*stream.Record{rec}, nil
	}
	if n < 2 {
		return nil, fmt.Errorf("aggregator: one merged point makes a record of %d bytes, over the bus's max_record_bytes (%d)", len(rec.Value), a.cfg.MaxRecordBytes)
	}
	var recs []*stream.Record
	for _, half := range [][2]int{{0, n / 2}, {n / 2, n}} {
		rows := make([]int32, 0, half[1]-half[0])
		for i := half[0]; i < half[1]; i++ {
			rows = append(rows, int32(i))
		}
		sel, err := schemas.Select(o.Batch, rows, a.cfg.Allocator)
		if err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
		part, err := a.records(p, aggregate.Output{Tenant: o.Tenant, Batch: sel, Points: sel.Len()})
		sel.Release()
		if err != nil {
			return nil, err
		}
		recs = append(recs, part...)
	}
	return recs, nil
}

// updateStats sums the rules' stats over the partitions, for the metrics.
func (a *Aggregator) updateStats() {
	sum := map[string]aggregate.RuleStats{}
	for _, ps := range a.parts {
		for rule, s := range ps.agg.Stats() {
			t := sum[rule]
			t.InputSeries += s.InputSeries
			t.OutputSeries += s.OutputSeries
			t.PointsIn += s.PointsIn
			t.PointsMerged += s.PointsMerged
			t.PointsLate += s.PointsLate
			t.PointsOutOfOrder += s.PointsOutOfOrder
			t.SeriesFolded += s.SeriesFolded
			t.StateBytes += s.StateBytes
			for reason, n := range s.PointsDropped {
				if t.PointsDropped == nil {
					t.PointsDropped = map[string]uint64{}
				}
				t.PointsDropped[reason] += n
			}
			for metric, n := range s.FoldedByMetric {
				if t.FoldedByMetric == nil {
					t.FoldedByMetric = map[string]uint64{}
				}
				t.FoldedByMetric[metric] += n
			}
			sum[rule] = t
		}
	}
	marks := make(map[int32][2]int64, len(a.parts))
	for p, ps := range a.parts {
		wm, newest := ps.agg.Watermark()
		marks[p] = [2]int64{wm, newest}
	}
	a.mu.Lock()
	a.stats, a.marks = sum, marks
	a.mu.Unlock()
}

// StateBytes is the estimated memory of the aggregation state of the
// partitions this member holds, every rule's, as of the last checkpoint.
func (a *Aggregator) StateBytes() int64 {
	var n int64
	for _, s := range a.Stats() {
		n += s.StateBytes
	}
	return n
}

// Stats are the per-rule stats of the partitions this member holds, as of
// the last checkpoint.
func (a *Aggregator) Stats() map[string]aggregate.RuleStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

type aggMetrics struct {
	pointsIn, pointsOut, deadLetters prometheus.Counter
	stateBytes                       prometheus.Histogram
	ticks, tickErrors                prometheus.Counter
	behind                           prometheus.Gauge
}

// aggDescs are the metrics of an aggregator's (or a worker's local
// merge's) state, labelled merged_in: aggregator or worker.
type aggDescs struct {
	inputSeries, outSeries, pointsIn, merged, late, outOfOrder, dropped, folded, foldedBy, stateBytes, watermark, newest *prometheus.Desc
}

func newAggDescs(mergedIn string) aggDescs {
	rule := []string{"rule"}
	cl := prometheus.Labels{"merged_in": mergedIn}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	return aggDescs{
		inputSeries: desc("sluice_aggregate_input_series", "Input series the rule's aggregation tracks (in the partitions this member owns).", rule),
		outSeries:   desc("sluice_aggregate_output_series", "Output series the rule's aggregation writes.", rule),
		pointsIn:    desc("sluice_aggregate_points_in_total", "Points the rule's aggregation received (counters of a partition follow its state: they restart when it moves to another member).", rule),
		merged:      desc("sluice_aggregate_points_merged_total", "Points merged into an output point.", rule),
		late:        desc("sluice_aggregate_points_late_total", "Points whose interval had closed (sums and histograms count in the oldest open interval; gauges are dropped).", rule),
		outOfOrder:  desc("sluice_aggregate_points_out_of_order_total", "Points not newer than their input series' last point, dropped (among them the points of records read again after a crash or a redelivery).", rule),
		dropped:     desc("sluice_aggregate_points_dropped_total", "Points dropped, by reason: summary, bounds_mismatch, no_value, type_change, no_data, invalid.", []string{"rule", "reason"}),
		folded:      desc("sluice_aggregate_series_folded_total", "New series a limit refused, folded into the metric's overflow series.", rule),
		foldedBy:    desc("sluice_aggregate_metric_series_folded_total", "sluice_aggregate_series_folded_total by metric.", []string{"rule", "metric"}),
		stateBytes:  desc("sluice_aggregate_state_bytes", "Estimated memory of the rule's aggregation state.", rule),
		watermark:   desc("sluice_aggregator_watermark_seconds", "The watermark of a partition this member owns (of the aggregation topic; merged_in=worker: of the raw metrics topic), as of the last checkpoint: intervals that end a grace before it are written.", []string{"partition"}),
		newest:      desc("sluice_aggregator_newest_point_seconds", "The newest point time a partition this member owns has seen; minus the watermark, the point time it holds open.", []string{"partition"}),
	}
}

// aggCollector exports the per-rule stats of the last checkpoint.
type aggCollector struct {
	a *Aggregator
	d aggDescs
}

func (c aggCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, d := range []*prometheus.Desc{d.inputSeries, d.outSeries, d.pointsIn, d.merged, d.late, d.outOfOrder, d.dropped, d.folded, d.foldedBy, d.stateBytes, d.watermark, d.newest} {
		ch <- d
	}
}

func (c aggCollector) Collect(ch chan<- prometheus.Metric) {
	d := &c.d
	c.a.mu.Lock()
	marks := c.a.marks
	c.a.mu.Unlock()
	for p, m := range marks {
		part := strconv.Itoa(int(p))
		ch <- prometheus.MustNewConstMetric(d.watermark, prometheus.GaugeValue, float64(m[0])/1e9, part)
		ch <- prometheus.MustNewConstMetric(d.newest, prometheus.GaugeValue, float64(m[1])/1e9, part)
	}
	for rule, s := range c.a.Stats() {
		ch <- prometheus.MustNewConstMetric(d.inputSeries, prometheus.GaugeValue, float64(s.InputSeries), rule)
		ch <- prometheus.MustNewConstMetric(d.outSeries, prometheus.GaugeValue, float64(s.OutputSeries), rule)
		ch <- prometheus.MustNewConstMetric(d.pointsIn, prometheus.CounterValue, float64(s.PointsIn), rule)
		ch <- prometheus.MustNewConstMetric(d.merged, prometheus.CounterValue, float64(s.PointsMerged), rule)
		ch <- prometheus.MustNewConstMetric(d.late, prometheus.CounterValue, float64(s.PointsLate), rule)
		ch <- prometheus.MustNewConstMetric(d.outOfOrder, prometheus.CounterValue, float64(s.PointsOutOfOrder), rule)
		ch <- prometheus.MustNewConstMetric(d.folded, prometheus.CounterValue, float64(s.SeriesFolded), rule)
		ch <- prometheus.MustNewConstMetric(d.stateBytes, prometheus.GaugeValue, float64(s.StateBytes), rule)
		for reason, n := range s.PointsDropped {
			ch <- prometheus.MustNewConstMetric(d.dropped, prometheus.CounterValue, float64(n), rule, reason)
		}
		for metric, n := range s.FoldedByMetric {
			ch <- prometheus.MustNewConstMetric(d.foldedBy, prometheus.CounterValue, float64(n), rule, metric)
		}
	}
}

func newAggMetrics(reg prometheus.Registerer, a *Aggregator) (*aggMetrics, error) {
	m := &aggMetrics{
		pointsIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_aggregator_points_in_total",
			Help: "Points read from the aggregation topic."}),
		pointsOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_aggregator_points_out_total",
			Help: "Merged points written to the processed metrics topic."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_aggregator_dead_letters_total",
			Help: "Aggregation records that could not be read, sent to the dead-letter topic."}),
		stateBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sluice_aggregator_checkpoint_bytes",
			Help: "Size of a partition's checkpointed state.", Buckets: prometheus.ExponentialBuckets(1024, 4, 10)}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_aggregator_ticks_total",
			Help: "Ticks written (one record to every aggregation partition each): the partitions' clocks."}),
		tickErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_aggregator_tick_errors_total",
			Help: "Ticks not written, or written without the workers' lag: idle intervals wait for the next."}),
		behind: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_aggregator_sources_behind",
			Help: "Raw metrics partitions the workers had records of not committed at the last tick (-1: unknown): they hold the watermarks."}),
	}
	if reg != nil && a.local {
		// The counters of the aggregator group's members only; the
		// worker counts what it merges itself (sluice_worker_points_merged_total).
		if err := reg.Register(aggCollector{a, newAggDescs("worker")}); err != nil {
			return nil, fmt.Errorf("worker metrics: %w", err)
		}
		return m, nil
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pointsIn, m.pointsOut, m.deadLetters, m.stateBytes, m.ticks, m.tickErrors, m.behind, aggCollector{a, newAggDescs("aggregator")}} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("aggregator metrics: %w", err)
			}
		}
	}
	return m, nil
}
