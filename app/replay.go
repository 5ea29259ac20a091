package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/rules"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/cardinality"
	"github.com/sluice-dev/sluice/stream/stage"
	"github.com/sluice-dev/sluice/stream/worker"
)

// ReplayOptions configure Replay (sluice replay).
type ReplayOptions struct {
	// From and To bound the range by time: from the first record at or
	// after From to the last before To (To zero: up to the end of each
	// partition when the replay starts).
	From, To time.Time
	// FromOffsets and ToOffsets, when set, give the range by position
	// instead (Kafka: per partition); a partition missing in FromOffsets
	// is not read, one missing in ToOffsets is read to its end.
	FromOffsets, ToOffsets stream.Positions
	// Topic is "raw" (the default: raw records through the rules) or
	// "processed" (processed records as the workers wrote them, to the
	// sink without rules).
	Topic string
	// Signals replayed; default the sink's (with DryRun and no Sink, all).
	Signals []otlpwire.Signal
	// RulesDir is the rules applied to raw records; default rules.dir.
	RulesDir string
	// Sink names the configured sink that receives the records.
	Sink string
	// DryRun runs the rules and writes nothing; the report says what
	// they did.
	DryRun bool
	// Rate and RateBytes bound the items and bytes (raw, as read from
	// the bus) read per second; 0: no bound.
	Rate, RateBytes float64
	// Checkpoint is the file the positions are kept in when the replay
	// stops before the end of its range; default
	// <bus.data_dir>/replay/<sink>.json. Resume continues from it.
	Checkpoint string
	Resume     bool
	// CheckpointInterval is how often the checkpoint file is written while
	// the replay runs (also at the end of every interrupted run). Default
	// 10s.
	CheckpointInterval time.Duration
	// MaxPollRecords bounds the records of one batch; default
	// worker.max_poll_records.
	MaxPollRecords int
	// Progress, when set, is called after every batch handed to the sink,
	// from the replay's goroutine.
	Progress func(ReplayProgress)
	Logger   *slog.Logger
}

// ReplayProgress is how far a replay got.
type ReplayProgress struct {
	Records, Items, Bytes int64 // read from the bus and handed on
	// Done and Total are positions: Done of the Total positions of the
	// range are behind (with NATS, the range ends at the first record
	// after To, which may come before Total).
	Done, Total int64
}

// ReplayReport is what a replay did.
type ReplayReport struct {
	Sink     string          `json:"sink,omitempty"`
	SinkType string          `json:"sink_type,omitempty"`
	Topic    string          `json:"topic"`
	From     time.Time       `json:"from,omitzero"`
	To       time.Time       `json:"to,omitzero"`
	RulesDir string          `json:"rules_dir,omitempty"`
	Rules    string          `json:"rules_version,omitempty"`
	DryRun   bool            `json:"dry_run"`
	Complete bool            `json:"complete"` // the whole range was handled
	Signals  []SignalReport  `json:"signals"`
	RuleHits []RuleReport    `json:"rules"`
	Series   []SeriesReport  `json:"series,omitempty"`
	Warnings []string        `json:"warnings,omitempty"`
	Ranges   map[string]Span `json:"ranges"`
	// DeadLetters counts raw records the worker could not decode (the
	// live worker dead-lettered them already; replay writes none).
	DeadLetters int64 `json:"dead_letters"`
	// Rejected counts processed records the sink refused for good
	// (replay writes them to no dead-letter topic).
	Rejected   int64  `json:"rejected_records"`
	Checkpoint string `json:"checkpoint,omitempty"` // written: the replay stopped before the end
	Progress   ReplayProgress
}

// SignalReport counts one signal's items.
type SignalReport struct {
	Signal   string `json:"signal"`
	Records  int64  `json:"records"`
	ItemsIn  int64  `json:"items_in"`  // raw items read (sluice-items)
	ItemsOut int64  `json:"items_out"` // items delivered, or that would be (merged points counted once merged)
}

// RuleReport is what one rule did over the replay.
type RuleReport struct {
	Rule    string `json:"rule"`
	Signal  string `json:"signal"`
	File    string `json:"file"`
	Matched uint64 `json:"matched"`
	Dropped uint64 `json:"dropped"`
	Changed uint64 `json:"changed"`
	Merged  uint64 `json:"merged"` // points routed to the aggregation under this rule
	Errors  uint64 `json:"errors"`
}

// SeriesReport is a metric's distinct series before and after the rules
// (exact up to 1,536 series, then HyperLogLog estimates).
type SeriesReport struct {
	Tenant string `json:"tenant"`
	Metric string `json:"metric"`
	Before uint64 `json:"before"`
	After  uint64 `json:"after"`
}

// Span is the positions of one topic's range.
type Span struct {
	From stream.Positions `json:"from"`
	To   stream.Positions `json:"to"`
}

// replayer is one run of Replay.
type replayer struct {
	cfg     *config.Config
	opts    ReplayOptions
	bus     stream.Bus
	log     *slog.Logger
	topics  stream.Topics
	entry   *config.Sink
	sink    sinks.Sink
	w       *worker.Worker
	agg     *worker.InlineAggregator
	set     *rules.Set
	card    *cardinality.Tracker
	capture capture
	rep     *ReplayReport
	signals map[string]otlpwire.Signal // topic → signal
	sigRep  map[otlpwire.Signal]*SignalReport
	merged  map[string]uint64
	// pending is what the batch in hand sends to the sink: kept while
	// the sink retries, so that the rules run once per batch.
	pending []*stream.Record
	ck      *checkpoint
	ckPath  string
	ckDue   time.Time
}

// Replay re-processes a range of a raw (or processed) topic of bus
// through the rules into one configured sink, or, with DryRun, through
// the rules only. It reads outside every consumer group, so the live
// pipeline is left as it is, and returns when the range is done or ctx is
// cancelled (then the batch in hand is delivered and a checkpoint
// written).
func Replay(ctx context.Context, cfg *config.Config, bus stream.Bus, opts ReplayOptions) (*ReplayReport, error) {
	r := &replayer{cfg: cfg, opts: opts, bus: bus, log: opts.Logger, topics: stream.Topics{Prefix: cfg.Bus.TopicPrefix},
		signals: map[string]otlpwire.Signal{}, sigRep: map[otlpwire.Signal]*SignalReport{}, merged: map[string]uint64{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	defer r.close()
	if err := r.setup(); err != nil {
		return nil, err
	}
	ranger, ok := bus.(stream.Ranger)
	if !ok {
		return nil, fmt.Errorf("replay: the bus (%T) cannot read ranges", bus)
	}
	if err := r.plan(ctx, ranger); err != nil {
		return nil, err
	}
	for _, w := range r.rep.Warnings {
		r.log.Warn(w)
	}
	return r.rep, r.run(ctx, ranger)
}

// setup checks the options and builds the rules, the worker and the sink.
func (r *replayer) setup() error {
	o := &r.opts
	switch o.Topic {
	case "", "raw":
		o.Topic = "raw"
	case "processed":
		if o.RulesDir != "" {
			return errors.New("replay: --rules applies to the raw topic; processed records have been through the rules already")
		}
	default:
		return fmt.Errorf("replay: unknown topic %q (valid: raw, processed)", o.Topic)
	}
	if o.Sink == "" && !o.DryRun {
		return errors.New("replay: a sink is required (--sink NAME), or --dry-run")
	}
	if o.FromOffsets == nil && o.From.IsZero() && !o.Resume {
		return errors.New("replay: the range needs a start (--from or --from-offset)")
	}
	if !o.To.IsZero() && !o.From.IsZero() && !o.To.After(o.From) {
		return fmt.Errorf("replay: --to (%s) is not after --from (%s)", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	r.rep = &ReplayReport{Sink: o.Sink, Topic: o.Topic, From: o.From, To: o.To, DryRun: o.DryRun, Ranges: map[string]Span{}}
	sigs := o.Signals
	if o.Sink != "" {
		i := slices.IndexFunc(r.cfg.Sinks, func(s config.Sink) bool { return s.Name == o.Sink })
		if i < 0 {
			var names []string
			for _, s := range r.cfg.Sinks {
				names = append(names, s.Name)
			}
			return fmt.Errorf("replay: no sink named %q in %s (configured: %v)", o.Sink, r.cfg.File(), names)
		}
		r.entry = &r.cfg.Sinks[i]
		r.rep.SinkType = r.entry.Type
		var own []otlpwire.Signal
		for _, name := range r.entry.Signals {
			s, err := otlpwire.ParseSignal(name)
			if err != nil {
				return err
			}
			own = append(own, s)
		}
		if len(sigs) == 0 {
			sigs = own
		}
		for _, s := range sigs {
			if !slices.Contains(own, s) {
				return fmt.Errorf("replay: sink %s does not take %s (its signals: %v)", o.Sink, s, r.entry.Signals)
			}
		}
	}
	if len(sigs) == 0 {
		sigs = otlpwire.Signals[:]
	}
	for _, s := range sigs {
		topic := r.topics.Raw(s)
		if o.Topic == "processed" {
			topic = r.topics.Processed(s)
		}
		r.signals[topic] = s
		r.sigRep[s] = &SignalReport{Signal: s.String()}
	}
	if o.MaxPollRecords <= 0 {
		o.MaxPollRecords = r.cfg.Worker.MaxPollRecords
	}
	if o.CheckpointInterval <= 0 {
		o.CheckpointInterval = 10 * time.Second
	}
	r.ckPath = o.Checkpoint
	if r.ckPath == "" {
		name := o.Sink
		if name == "" {
			name = "dry-run"
		}
		r.ckPath = filepath.Join(r.cfg.Bus.DataDir, "replay", name+".json")
	}
	if o.Topic == "raw" {
		if err := r.setupRules(sigs); err != nil {
			return err
		}
	}
	if !o.DryRun {
		s, err := sinks.Build(r.cfg, r.entry, sinks.Env{Logger: r.log})
		if err != nil {
			return err
		}
		r.sink = s
	}
	return nil
}

// setupRules loads the rules and builds the worker's code path in process:
// the inline worker, whose output the capture takes, and the aggregation
// of the points the rules merge.
func (r *replayer) setupRules(sigs []otlpwire.Signal) error {
	dir := r.opts.RulesDir
	if dir == "" {
		dir = r.cfg.Rules.Dir
	}
	var t worker.Transform
	if _, err := os.Stat(dir); err == nil || r.opts.RulesDir != "" {
		set, err := rules.Load(dir)
		if err != nil {
			return fmt.Errorf("replay: rules: %w", err)
		}
		m, err := newMerging(set)
		if err != nil {
			return fmt.Errorf("replay: rules: %w", err)
		}
		r.set, t = set, m
		r.rep.RulesDir, r.rep.Rules = dir, set.Version()
	} else {
		r.log.Warn("no rules directory: records pass through unchanged", "dir", dir)
	}
	r.capture.topics = r.topics
	if r.opts.DryRun {
		// The live worker's bounds; a window that holds the whole range.
		c := r.cfg.Worker.Cardinality
		r.card = cardinality.New(cardinality.Config{MaxMetrics: c.MaxMetrics, MaxLabels: c.MaxLabels, MaxTenants: c.MaxTenants, Window: 100 * 365 * 24 * time.Hour})
	}
	var err error
	r.w, err = worker.NewInline(r.bus, worker.Config{Topics: r.topics, Signals: sigs, Logger: r.log, Cardinality: r.card,
		MaxRecordBytes: int(r.cfg.Bus.MaxRecordBytes), MaxBatchItems: r.cfg.Worker.MaxBatchItems}, t, &r.capture)
	if err != nil {
		return err
	}
	r.agg, err = worker.NewInlineAggregator(r.bus, worker.AggregatorConfig{Topics: r.topics, MaxRecordBytes: int(r.cfg.Bus.MaxRecordBytes), Logger: r.log})
	return err
}

func (r *replayer) close() {
	if r.w != nil {
		r.w.Close()
		r.w = nil
	}
	if r.sink != nil {
		if err := r.sink.Close(); err != nil {
			r.log.Warn("closing the sink", "sink", r.opts.Sink, "err", err)
		}
		r.sink = nil
	}
}

// plan finds the range of every topic: from the checkpoint when resuming,
// else from the bus's time index or the offsets given.
func (r *replayer) plan(ctx context.Context, ranger stream.Ranger) error {
	r.ck = &checkpoint{Version: 1, Sink: r.opts.Sink, Topic: r.opts.Topic, From: r.opts.From, To: r.opts.To,
		RulesDir: r.rep.RulesDir, DryRun: r.opts.DryRun, Ranges: map[string]*ckRange{}}
	for _, sig := range r.signals {
		r.ck.Signals = append(r.ck.Signals, sig.String())
	}
	slices.Sort(r.ck.Signals)
	if r.opts.Resume {
		old, err := readCheckpoint(r.ckPath)
		if err != nil {
			return err
		}
		o := &r.opts
		if o.From.IsZero() && o.To.IsZero() && o.FromOffsets == nil && o.ToOffsets == nil {
			// No range given: the checkpoint's.
			o.From, o.To = old.From, old.To
			r.ck.From, r.ck.To, r.rep.From, r.rep.To = old.From, old.To, old.From, old.To
		}
		if err := old.matches(r.ck); err != nil {
			return fmt.Errorf("replay: %s: %w", r.ckPath, err)
		}
		r.ck.Ranges = old.Ranges
	} else {
		for _, topic := range slices.Sorted(maps.Keys(r.signals)) {
			rg, err := r.rangeOf(ctx, ranger, topic)
			if err != nil {
				return err
			}
			r.ck.Ranges[topic] = rg
		}
	}
	if r.entry != nil {
		r.rep.Warnings = maxAgeWarnings(r.entry, r.opts.From, time.Now())
	}
	for topic, rg := range r.ck.Ranges {
		r.rep.Ranges[topic] = Span{From: rg.Next, To: rg.To}
		for k, to := range rg.To {
			if from, ok := rg.Next[k]; ok && to > from {
				r.rep.Progress.Total += to - from
			}
		}
	}
	return nil
}

// rangeOf is the positions of topic's range.
func (r *replayer) rangeOf(ctx context.Context, ranger stream.Ranger, topic string) (*ckRange, error) {
	end, err := ranger.PositionsAt(ctx, topic, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("replay: the end of %s: %w", topic, err)
	}
	from := r.opts.FromOffsets
	if from == nil {
		if from, err = ranger.PositionsAt(ctx, topic, r.opts.From); err != nil {
			return nil, fmt.Errorf("replay: the position of --from in %s: %w", topic, err)
		}
	} else if from, err = partitionsOf(from, end, topic); err != nil {
		return nil, err
	}
	to := end
	_, spans := end[stream.AllPartitions]
	switch {
	case r.opts.ToOffsets != nil:
		given, err := partitionsOf(r.opts.ToOffsets, end, topic)
		if err != nil {
			return nil, err
		}
		to = stream.Positions{}
		for k, e := range end {
			to[k] = e
			if t, ok := given[k]; ok {
				to[k] = min(t, e)
			}
		}
	case !r.opts.To.IsZero() && !spans:
		// The time index is the records' own timestamps: exact.
		at, err := ranger.PositionsAt(ctx, topic, r.opts.To)
		if err != nil {
			return nil, fmt.Errorf("replay: the position of --to in %s: %w", topic, err)
		}
		to = stream.Positions{}
		for k, e := range end {
			to[k] = min(at[k], e)
		}
	}
	next := stream.Positions{}
	for k, f := range from {
		if _, ok := end[k]; ok {
			next[k] = f
		}
	}
	return &ckRange{Next: next, To: to, ByTime: spans}, nil
}

// partitionsOf checks that the positions given name partitions of the
// topic; one position under stream.AllPartitions on a bus with positions
// per partition stands for every partition.
func partitionsOf(given, end stream.Positions, topic string) (stream.Positions, error) {
	if all, ok := given[stream.AllPartitions]; ok && len(given) == 1 {
		if _, spans := end[stream.AllPartitions]; !spans {
			out := stream.Positions{}
			for k := range end {
				out[k] = all
			}
			return out, nil
		}
	}
	for k := range given {
		if _, ok := end[k]; !ok {
			return nil, fmt.Errorf("replay: %s has no partition %d", topic, k)
		}
	}
	return given, nil
}

// run reads the ranges one topic after the other through one stage: the
// worker's consume → handle → commit loop, where commit moves the
// checkpoint's positions.
func (r *replayer) run(ctx context.Context, ranger stream.Ranger) error {
	rc := &rangeConsumer{r: r, ranger: ranger, topics: slices.Sorted(maps.Keys(r.ck.Ranges))}
	if r.opts.Rate > 0 {
		rc.items = rate.NewLimiter(rate.Limit(r.opts.Rate), max(1, int(r.opts.Rate)))
	}
	if r.opts.RateBytes > 0 {
		rc.bytes = rate.NewLimiter(rate.Limit(r.opts.RateBytes), max(1, int(r.opts.RateBytes)))
	}
	name := "replay"
	if r.opts.Sink != "" {
		name += "/" + r.opts.Sink
	}
	batchItems := 0
	if r.entry != nil {
		batchItems = r.entry.BatchMaxItems
		if batchItems == 0 {
			batchItems = config.DefaultBatchMaxItems
		}
	}
	st, err := stage.New(stage.Config{Name: name, Consumer: rc, Handle: r.handle, Logger: r.log, LagInterval: -1, BatchMaxItems: batchItems})
	if err != nil {
		return err
	}
	r.ckDue = time.Now().Add(r.opts.CheckpointInterval)
	if err := st.Run(ctx); err != nil {
		return err
	}
	if rc.err != nil {
		return rc.err
	}
	// What the aggregation still holds is written now, at the end of the
	// range or when stopped: the positions behind it are committed.
	if err := r.flushAggregation(ctx); err != nil {
		r.writeCheckpoint()
		return err
	}
	r.finish()
	r.rep.Complete = rc.done
	if !rc.done {
		r.writeCheckpoint()
		r.rep.Checkpoint = r.ckPath
		return nil
	}
	if r.opts.Resume || fileExists(r.ckPath) {
		if err := os.Remove(r.ckPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("replay done; its checkpoint file not removed", "file", r.ckPath, "err", err)
		}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// handle takes one batch of raw (or processed) records through the
// worker's code path to the sink. A failed sink write is retried by the
// stage with the same batch: the rules ran once, pending holds their
// output.
func (r *replayer) handle(ctx context.Context, recs []*stream.Record) error {
	if r.pending == nil {
		out, err := r.process(ctx, recs)
		if err != nil {
			return err
		}
		r.pending = out
	}
	if err := r.deliver(ctx, r.pending); err != nil {
		return err
	}
	r.pending = nil
	return nil
}

// process is the records a batch gives the sink, counted in the report.
func (r *replayer) process(ctx context.Context, recs []*stream.Record) ([]*stream.Record, error) {
	for _, rec := range recs {
		sr := r.sigRep[r.signals[rec.Topic]]
		sr.Records++
		sr.ItemsIn += itemsOf(rec)
	}
	if r.w == nil { // processed records: as they are
		r.countOut(recs)
		return slices.Clone(recs), nil
	}
	r.capture.reset()
	if err := r.w.Process(ctx, recs); err != nil {
		return nil, err
	}
	r.rep.DeadLetters += int64(len(r.capture.dead))
	now := time.Now()
	for _, a := range r.capture.agg {
		rule, n, err := r.agg.Add(a, now)
		if err != nil {
			return nil, fmt.Errorf("replay: merging points: %w", err)
		}
		r.merged[rule] += uint64(n)
	}
	merged, err := r.agg.Flush(now, false)
	if err != nil {
		return nil, fmt.Errorf("replay: merging points: %w", err)
	}
	out := append(slices.Clone(r.capture.processed), merged...)
	r.countOut(out)
	return out, nil
}

func (r *replayer) countOut(recs []*stream.Record) {
	for _, rec := range recs {
		sig, err := sinks.SignalOf(rec)
		if err != nil {
			continue
		}
		if sr := r.sigRep[sig]; sr != nil {
			sr.ItemsOut += itemsOf(rec)
		}
	}
}

// deliver writes recs to the sink (not with DryRun). A permanent refusal
// is counted and logged: replay writes no dead letters.
func (r *replayer) deliver(ctx context.Context, recs []*stream.Record) error {
	if r.sink == nil || len(recs) == 0 {
		return nil
	}
	err := r.sink.Write(ctx, recs)
	var rej *sinks.RejectedError
	if errors.As(err, &rej) {
		r.rep.Rejected += int64(len(rej.Records))
		r.log.Warn("records rejected by the destination; not replayed", "sink", r.opts.Sink, "records", len(rej.Records), "reason", rej.Reason)
		return nil
	}
	return err
}

// flushAggregation writes every interval the aggregation still holds,
// retrying the sink until it takes them, or up to 30s after ctx ends.
func (r *replayer) flushAggregation(ctx context.Context) error {
	if r.agg == nil {
		return nil
	}
	out, err := r.agg.Flush(time.Now(), true)
	if err != nil {
		return fmt.Errorf("replay: merging points: %w", err)
	}
	r.countOut(out)
	if r.sink == nil || len(out) == 0 {
		return nil
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(30*time.Second, cancel) })
	defer stop()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := r.deliver(wctx, out)
		if err == nil {
			return nil
		}
		r.log.Warn("merged points not delivered; retrying", "err", err)
		select {
		case <-wctx.Done():
			return fmt.Errorf("replay: the merged points of the last intervals not delivered: %w", err)
		case <-time.After(wait):
		}
	}
}

// committed moves the checkpoint past recs, which the sink holds.
func (r *replayer) committed(recs []*stream.Record) {
	for _, rec := range recs {
		rg := r.ck.Ranges[rec.Topic]
		k := rg.Next.Key(rec)
		if rec.Offset+1 > rg.Next[k] {
			r.rep.Progress.Done += rec.Offset + 1 - rg.Next[k]
			rg.Next[k] = rec.Offset + 1
		}
		r.rep.Progress.Records++
		r.rep.Progress.Items += itemsOf(rec)
		r.rep.Progress.Bytes += int64(len(rec.Value))
	}
	if r.opts.Progress != nil {
		r.opts.Progress(r.rep.Progress)
	}
	if !r.opts.DryRun && time.Now().After(r.ckDue) {
		r.ckDue = time.Now().Add(r.opts.CheckpointInterval)
		r.writeCheckpoint()
	}
}

// finish fills the report's rule and series counts.
func (r *replayer) finish() {
	for _, s := range otlpwire.Signals {
		if sr := r.sigRep[s]; sr != nil {
			r.rep.Signals = append(r.rep.Signals, *sr)
		}
	}
	if r.set != nil {
		for _, st := range r.set.Stats() {
			if _, ok := r.sigRep[st.Signal]; !ok {
				continue
			}
			r.rep.RuleHits = append(r.rep.RuleHits, RuleReport{Rule: st.Rule, Signal: st.Signal.String(), File: st.File,
				Matched: st.Matched, Dropped: st.Dropped, Changed: st.Changed, Errors: st.Errors, Merged: r.merged[st.Rule]})
		}
	}
	// Points merged under no aggregate or limit rule: a rule changed
	// their series ("default", see the aggregation's specs).
	for _, name := range slices.Sorted(maps.Keys(r.merged)) {
		if name != "" && !slices.ContainsFunc(r.rep.RuleHits, func(h RuleReport) bool { return h.Rule == name }) {
			r.rep.RuleHits = append(r.rep.RuleHits, RuleReport{Rule: name, Signal: otlpwire.Metrics.String(), Merged: r.merged[name]})
		}
	}
	if r.card != nil {
		for _, t := range r.card.Report("", 0, time.Now()).Tenants {
			for _, m := range t.Metrics {
				r.rep.Series = append(r.rep.Series, SeriesReport{Tenant: t.Tenant, Metric: m.Name, Before: m.SeriesBefore, After: m.SeriesAfter})
			}
		}
	}
}

func (r *replayer) writeCheckpoint() {
	if r.opts.DryRun {
		return
	}
	if err := r.ck.write(r.ckPath); err != nil {
		r.log.Warn("replay checkpoint not written", "file", r.ckPath, "err", err)
	}
}

// itemsOf is a record's sluice-items header; 0 when absent.
func itemsOf(r *stream.Record) int64 {
	n, _ := strconv.ParseInt(string(r.Header(stream.HeaderItems)), 10, 64)
	return n
}

// capture is the inline worker's bus: it keeps what the worker writes.
type capture struct {
	mu                   sync.Mutex
	topics               stream.Topics
	processed, agg, dead []*stream.Record
}

func (c *capture) reset() {
	c.processed, c.agg, c.dead = c.processed[:0], c.agg[:0], c.dead[:0]
}

// Produce implements stream.Producer.
func (c *capture) Produce(_ context.Context, recs ...*stream.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		switch r.Topic {
		case c.topics.DLQ():
			c.dead = append(c.dead, r)
		case c.topics.Aggregate():
			c.agg = append(c.agg, r)
		default:
			c.processed = append(c.processed, r)
		}
	}
	return nil
}

// rangeConsumer is the stage's consumer over the ranges: it reads each
// topic's range in turn, and its Commit moves the checkpoint.
type rangeConsumer struct {
	r      *replayer
	ranger stream.Ranger
	topics []string
	i      int
	cur    stream.RangeReader
	items  *rate.Limiter
	bytes  *rate.Limiter
	held   []*stream.Record // polled, beyond what the rates let through yet
	done   bool             // every range read to its end
	err    error            // a failure that ends the replay
}

// Poll returns the next records of the current topic's range.
func (c *rangeConsumer) Poll(ctx context.Context) ([]*stream.Record, error) {
	if len(c.held) > 0 {
		return c.paced(ctx, c.held)
	}
	for c.i < len(c.topics) {
		topic := c.topics[c.i]
		rg := c.r.ck.Ranges[topic]
		if c.cur == nil {
			rd, err := c.ranger.ReadRange(ctx, topic, rg.Next, rg.To, c.r.opts.MaxPollRecords)
			if err != nil {
				c.err = fmt.Errorf("replay: reading %s: %w", topic, err)
				return nil, fmt.Errorf("%w: %w", stream.ErrClosed, c.err)
			}
			c.cur = rd
		}
		recs, err := c.cur.Poll(ctx)
		if errors.Is(err, io.EOF) {
			c.cur.Close()
			c.cur = nil
			c.i++
			continue
		}
		if err != nil {
			return nil, err
		}
		recs = c.inTime(rg, recs)
		if len(recs) == 0 {
			continue
		}
		return c.paced(ctx, recs)
	}
	c.done = true
	return nil, fmt.Errorf("replay: range done: %w", stream.ErrClosed)
}

// inTime applies the times of a range whose positions span partitions
// (NATS: positions by store time): records before From are skipped, and
// the first record at or after To ends the range.
func (c *rangeConsumer) inTime(rg *ckRange, recs []*stream.Record) []*stream.Record {
	if !rg.ByTime {
		return recs
	}
	from, to := c.r.opts.From, c.r.opts.To
	out := recs[:0]
	for _, rec := range recs {
		if !to.IsZero() && !rec.Timestamp.Before(to) {
			c.cur.Close()
			c.cur = nil
			c.i++
			break
		}
		if !from.IsZero() && rec.Timestamp.Before(from) {
			continue
		}
		out = append(out, rec)
	}
	return out
}

// paced returns the records of recs that one burst of the rates allows
// (at least one), once the rates allow them, and holds the rest for the
// next Poll: with a rate, batches are small enough for the progress to
// move and for a stop to come soon.
func (c *rangeConsumer) paced(ctx context.Context, recs []*stream.Record) ([]*stream.Record, error) {
	n := len(recs)
	if c.items != nil || c.bytes != nil {
		var items, bytes int64
		for i, r := range recs {
			items += itemsOf(r)
			bytes += int64(len(r.Value))
			if i > 0 && (c.items != nil && items > int64(c.items.Burst()) || c.bytes != nil && bytes > int64(c.bytes.Burst())) {
				n = i
				break
			}
		}
	}
	if err := c.wait(ctx, recs[:n]); err != nil {
		c.held = recs
		return nil, err
	}
	c.held = recs[n:]
	return recs[:n], nil
}

// wait holds the records back to the rates.
func (c *rangeConsumer) wait(ctx context.Context, recs []*stream.Record) error {
	var items, bytes int64
	for _, r := range recs {
		items += itemsOf(r)
		bytes += int64(len(r.Value))
	}
	for _, l := range []struct {
		lim *rate.Limiter
		n   int64
	}{{c.items, items}, {c.bytes, bytes}} {
		for n := l.n; l.lim != nil && n > 0; {
			step := min(n, int64(l.lim.Burst()))
			if err := l.lim.WaitN(ctx, int(step)); err != nil {
				return err
			}
			n -= step
		}
	}
	return nil
}

// Commit moves the checkpoint past recs.
func (c *rangeConsumer) Commit(_ context.Context, recs ...*stream.Record) error {
	c.r.committed(recs)
	return nil
}

// Lag is not tracked: the progress says how far the replay is.
func (c *rangeConsumer) Lag(context.Context) (int64, error) { return 0, nil }

func (c *rangeConsumer) Close() error {
	if c.cur != nil {
		c.cur.Close()
		c.cur = nil
	}
	return nil
}
