// Package worker moves records from the raw topics to the processed topics.
// It consumes every raw topic of the configured signals as one member of a
// consumer group (any number of workers share the partitions), turns each
// polled batch into Apache Arrow (schemas), applies the rule set, and
// produces the result in sluice's batch record codec (schemas.WriteBatch: a
// column codec in one zstd frame). The raw positions are
// committed only after the bus acknowledged the processed records
// (stream/stage): delivery is at least once. With ExactlyOnce on Kafka, the
// processed records and the raw positions are committed in one
// transaction: exactly once.
//
// A batch of raw records becomes one processed record per (signal, tenant,
// raw partition), so per-partition order is kept and a processed record
// never mixes tenants; a group larger than MaxBatchItems is cut into several.
// A raw record that cannot be decoded, or whose tenant is not a valid
// tenant name (stream.Record.Tenant) or is named twice differently, goes to
// the dead-letter topic with the error and its origin in headers, in the
// same produce call, and the worker goes on.
//
// Raw records written by agents' Kafka exporters rather than by sluice's
// ingesters, without sluice's headers, are read too (raw.go): their tenant
// from Config.TenantHeader or Config.DefaultTenant, their encoding from
// Config.RawEncoding.
//
// NewInline runs the same code outside any group: sluice replay hands it
// batches read from a range of the raw topics and takes what it would
// write, and InlineAggregator merges the points bound for the aggregators
// in the same process.
package worker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/aggregate"
	"github.com/sluice-dev/sluice/stream/cardinality"
	"github.com/sluice-dev/sluice/stream/stage"
)

// Header names the worker adds to processed records.
const (
	HeaderRulesVersion  = "sluice-rules-version"  // version of the rule set applied
	HeaderSchemaVersion = "sluice-schema-version" // schemas.Version of the value
	// HeaderSource is the raw partition an aggregation record's points
	// were read from: the aggregator's watermark follows its slowest
	// source (aggregate.Aggregator.AddFrom).
	HeaderSource = "sluice-source"
	// HeaderProgress marks an aggregation record without points: its
	// source (HeaderSource) has sent every point up to this point time
	// (ns, decimal), to this aggregation partition or to others
	// (aggregate.Aggregator.Progress).
	HeaderProgress = "sluice-progress"

	// HeaderTick marks a tick: a record without points that an
	// aggregator writes to every aggregation partition each
	// AggregatorConfig.TickInterval, at this wall clock time (ns,
	// decimal). The partition's owner reads the time off it: its clock
	// moves with what it has read, not with the wall, so that a stall of
	// its own does not count as its sources' silence.
	HeaderTick = "sluice-tick"
	// HeaderBehind, on a tick, lists the raw partitions (decimal, comma
	// separated; "-": none; "*": all, after a gap in the ticks) whose
	// records the workers had not all committed at the tick's time:
	// sources that are behind, not silent (aggregate.Aggregator.Behind).
	// Absent: the bus could not tell.
	HeaderBehind = "sluice-behind"
)

// progressStep is how far in point time a raw partition moves before the
// worker tells the aggregation partitions that got none of its points.
const progressStep = int64(time.Second)

// Transform applies rules to a batch. It returns the batch to write, which
// may be b itself; the worker releases both. Version names the rule set.
type Transform interface {
	Apply(b *schemas.Batch) (*schemas.Batch, error)
	Version() string
}

// Config configures a Worker.
type Config struct {
	Topics  stream.Topics
	Signals []otlpwire.Signal // default: all
	Group   string            // consumer group, default "sluice-worker"
	// TenantHeader names the record header holding the tenant of raw
	// records without sluice-tenant (agents' Kafka exporters with
	// include_metadata_keys: [X-Scope-OrgID]), compared ignoring case;
	// "": none. DefaultTenant is the tenant of raw records with neither;
	// "": they have none, as before.
	TenantHeader  string
	DefaultTenant string
	// RawEncoding is the encoding of raw records without a content-type
	// header: EncodingOTLPProto (default) or EncodingOTLPJSON.
	RawEncoding string
	// Start is where a new group begins reading; default the earliest
	// retained record.
	Start stream.Start
	// MaxPollRecords and MaxPollBytes bound what one poll of the raw
	// topics returns (stream.ConsumerConfig); 0: the bus's defaults.
	MaxPollRecords int
	MaxPollBytes   int
	// MaxBatchItems caps the items of one processed record. Default 65536.
	MaxBatchItems int
	// MaxRecordBytes is the largest processed record the bus takes (the
	// bus's max_record_bytes); 0: no limit. The worker learns the bytes per
	// item of each signal and cuts batches to fit; a record that still
	// comes out too large is made again from each half of its raw records.
	MaxRecordBytes int
	// DeadLetterMaxBytes is the largest record the dead-letter topic
	// takes, headers included; 0: MaxRecordBytes. A dead letter (a raw
	// record and the headers saying why) larger than this is cut to fit
	// (fitDeadLetter).
	DeadLetterMaxBytes int
	// DeadLetterTopic, when its Name is set, is how the dead-letter topic
	// was created: when a dead letter fails, the worker ensures the topic
	// again (a topic that exists is left as it is), so that a DLQ deleted
	// while the worker runs does not stop it until the next start.
	DeadLetterTopic stream.TopicSpec
	// ExactlyOnce produces each polled batch and commits its positions in
	// one transaction (the bus must be a stream.TransactionalBus: Kafka),
	// so that a crash causes neither loss nor duplicates.
	ExactlyOnce bool
	// TransactionalID identifies this worker's transactions. It must be
	// unique among running workers and should stay the same across
	// restarts, so that a restarted worker aborts what its predecessor
	// left open at once.
	TransactionalID string
	// Allocator holds the Arrow memory of the batches; default
	// arrowpool.Default, which recycles the buffers of released batches.
	Allocator memory.Allocator
	// Cardinality, when set, sees every metrics batch before and after the
	// rules (sluice cardinality).
	Cardinality *cardinality.Tracker
	// OnDeadLetters, when set, is told of the dead letters once they are
	// on the bus.
	OnDeadLetters stream.DeadLetterHook
	// LocalMerge merges in the raw partition, rather than through the
	// aggregation topic, the points whose series the rules changed when
	// the rules change no resource (a Transform with KeepsResources) and
	// no limit counts them (local.go). It is right only when every
	// producer of the raw metrics topic sends all points of a resource to
	// one partition: sluice's ingesters with partition_key resource (the
	// default), agents' Kafka exporters with
	// partition_metrics_by_resource_attributes, but not both on one
	// topic. The bus must keep state; not with ExactlyOnce; on NATS, one
	// worker process only (every member pulls from every partition).
	// The raw positions are then committed at checkpoints, every
	// MergeCheckpointInterval (default 5s) or million points.
	LocalMerge              bool
	MergeCheckpointInterval time.Duration
	Logger                  *slog.Logger
	Metrics                 *stage.Metrics
	Registerer              prometheus.Registerer
}

// ResourceKeeper is a Transform that tells whether its rules keep every
// point's resource as it came (rules.Set.KeepsResources): the points a
// merged series takes then all come with its resource (Config.LocalMerge).
// HasLimits tells whether some rule limits a metric's series: those points
// merge through the aggregators whatever the resources.
type ResourceKeeper interface {
	KeepsResources() bool
	HasLimits() bool
}

// Worker is one member of the worker group.
type Worker struct {
	cfg   Config
	bus   stream.Bus
	out   stream.Producer // the bus, or the transaction of the current batch
	stage *stage.Stage
	log   *slog.Logger
	m     *metrics
	// signalOf maps each consumed raw topic to its signal.
	signalOf map[string]otlpwire.Signal

	transform atomic.Pointer[transformBox]
	builders  [len(otlpwire.Signals)]*schemas.Builder
	buf       bytes.Buffer
	hasher    aggregate.Hasher
	merges    []Merge
	inH       []uint64 // input series hash per merge
	// parts, partOf and rest are split's scratch, kept from poll to poll:
	// the points bound for each (aggregation partition, spec), and the
	// rows written as a processed record.
	parts  []*aggPart
	partOf map[aggKey]*aggPart
	rest   []int32
	sets   []uint32 // the attribute sets of the batch in hand (schemas.Batch.FindItemAttrSets)
	inSets []uint32 // those of its input, before the rules
	// told is, per raw partition, the point time the aggregation
	// partitions were last told (see progressStep); pending what the
	// batch in hand tells (see progress).
	told    map[int32]int64
	pending map[int32]pendingProgress
	// fitItems is, per signal, how many raw items make a processed record
	// of about half of MaxRecordBytes, from the last record written.
	fitItems [len(otlpwire.Signals)]int
	// split cuts a refused raw record into its valid and invalid items
	// (see salvage).
	cutter otlpwire.Splitter
	// written is the batch whose processed records the bus took while
	// its dead letters failed: its retry writes only the dead letters.
	written batchID
	// json: raw records without a content-type are OTLP/JSON.
	json bool
	// local merges in the raw partitions (Config.LocalMerge); nil: off.
	// now is the wall clock of the batch in hand, localOK whether its
	// rules allow it, and localAll whether they send no point to the
	// aggregators (no limit either): then the aggregators are not told
	// the raw partitions' progress.
	local             *localState
	now               time.Time
	localOK, localAll bool
}

type transformBox struct{ t Transform }

// Merger is a Transform that also says which metric points of its output
// are merged by the aggregators rather than written as they are: the
// points whose series the rules changed, and so may have collapsed with
// others, and the points a limit counts (see rules.Mark). The worker routes
// them to the aggregation topic by output series.
type Merger interface {
	Transform
	// ApplyMerge is Apply that also appends the merged points of the
	// output to dst, in row order.
	ApplyMerge(b *schemas.Batch, dst []Merge) (*schemas.Batch, []Merge, error)
}

// Merge is one point of ApplyMerge's output bound for the aggregators.
type Merge struct {
	Row  int32           // row in the output batch
	Orig int32           // row in the input batch
	Spec *aggregate.Spec // how its series merge; the same pointer for the same spec
}

// New joins the worker group on bus. t may be nil: records pass through
// with no rules applied (still as Arrow).
func New(bus stream.Bus, cfg Config, t Transform) (*Worker, error) {
	w, topics, err := newWorker(bus, cfg, t)
	if err != nil {
		return nil, err
	}
	cfg = w.cfg
	scfg := stage.Config{Name: "worker", Handle: w.handle, Logger: cfg.Logger, Metrics: cfg.Metrics}
	ccfg := scfg.ConsumerHooks(stream.ConsumerConfig{Group: cfg.Group, Topics: topics, Start: cfg.Start, MaxPollRecords: cfg.MaxPollRecords, MaxPollBytes: cfg.MaxPollBytes})
	if cfg.LocalMerge {
		if cfg.ExactlyOnce {
			return nil, fmt.Errorf("worker: local_merge and exactly_once do not go together (the merge state is not part of the transaction)")
		}
		if w.local, err = newLocalState(context.Background(), bus, cfg); err != nil {
			return nil, err
		}
		w.local.agg.m.pointsIn, w.local.agg.m.pointsOut = w.m.pointsMerged, w.m.mergedOut
		scfg.Checkpoint, scfg.CheckpointInterval, scfg.CheckpointItems = w.local.checkpoint, w.local.interval, defaultCheckpointPoints
		ccfg.OnRevoked, ccfg.InOrder = w.local.agg.onRevoked, true
	}
	var c stream.Consumer
	w.out = bus
	if cfg.ExactlyOnce {
		tb, ok := bus.(stream.TransactionalBus)
		if !ok {
			return nil, fmt.Errorf("worker: exactly_once needs a bus with transactions (kafka), not %T", bus)
		}
		if cfg.TransactionalID == "" {
			return nil, fmt.Errorf("worker: exactly_once needs a transactional id")
		}
		tx, err := tb.ConsumeTransactional(ccfg, cfg.TransactionalID)
		if err != nil {
			return nil, fmt.Errorf("worker: joining group %s: %w", cfg.Group, err)
		}
		c, w.out = tx, tx
	} else if c, err = bus.Consume(ccfg); err != nil {
		return nil, fmt.Errorf("worker: joining group %s: %w", cfg.Group, err)
	}
	scfg.Consumer = c
	w.stage, err = stage.New(scfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

// NewInline returns a worker that joins no group: Process hands it raw
// records, and what it would write to the bus (processed records, records
// of the aggregation topic, dead letters) goes to out instead, one Produce
// call for the processed and aggregation records and one for the dead
// letters of each batch. bus only tells the partitions of the topics
// (Partitions). sluice replay runs the rules of the live workers this way.
// Close releases it.
func NewInline(bus stream.Bus, cfg Config, t Transform, out stream.Producer) (*Worker, error) {
	if cfg.ExactlyOnce {
		return nil, fmt.Errorf("worker: an inline worker has no transactions")
	}
	w, _, err := newWorker(bus, cfg, t)
	if err != nil {
		return nil, err
	}
	w.out = out
	return w, nil
}

func newWorker(bus stream.Bus, cfg Config, t Transform) (*Worker, []string, error) {
	if len(cfg.Signals) == 0 {
		cfg.Signals = otlpwire.Signals[:]
	}
	if cfg.Group == "" {
		cfg.Group = "sluice-worker"
	}
	if cfg.MaxBatchItems <= 0 {
		cfg.MaxBatchItems = 1 << 16
	}
	if cfg.DeadLetterMaxBytes <= 0 {
		cfg.DeadLetterMaxBytes = cfg.MaxRecordBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Allocator == nil {
		cfg.Allocator = arrowpool.Default
	}
	w := &Worker{cfg: cfg, bus: bus, log: cfg.Logger, signalOf: map[string]otlpwire.Signal{}}
	switch cfg.RawEncoding {
	case "", EncodingOTLPProto:
	case EncodingOTLPJSON:
		w.json = true
	default:
		return nil, nil, fmt.Errorf("worker: raw encoding %q (valid: %s, %s)", cfg.RawEncoding, EncodingOTLPProto, EncodingOTLPJSON)
	}
	if cfg.DefaultTenant != "" {
		if err := tenant.Validate(cfg.DefaultTenant); err != nil {
			return nil, nil, fmt.Errorf("worker: default tenant: %w", err)
		}
	}
	var err error
	if w.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, nil, err
	}
	w.SetTransform(t)
	topics := make([]string, 0, len(cfg.Signals))
	for _, s := range cfg.Signals {
		raw := cfg.Topics.Raw(s)
		topics = append(topics, raw)
		w.signalOf[raw] = s
		w.builders[s] = schemas.NewBuilder(s, cfg.Allocator)
	}
	return w, topics, nil
}

// Process is what the worker does with each polled batch (NewInline): it
// returns once out took every record made of recs, or with out's error
// (then Process may be called again with the same records).
func (w *Worker) Process(ctx context.Context, recs []*stream.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return w.handle(ctx, recs)
}

// Close releases the worker's builders (NewInline; Run releases them
// itself).
func (w *Worker) Close() { w.release() }

func (w *Worker) release() {
	for i, b := range w.builders {
		if b != nil {
			b.Release()
			w.builders[i] = nil
		}
	}
}

// StateBytes is the estimated memory of the state of the raw partitions
// the worker merges in (Config.LocalMerge), as of the last checkpoint; 0
// without.
func (w *Worker) StateBytes() int64 {
	if w.local == nil {
		return 0
	}
	return w.local.agg.StateBytes()
}

// SetTransform swaps the rule set; the next batch uses it. It is safe to
// call while the worker runs (a reload).
func (w *Worker) SetTransform(t Transform) { w.transform.Store(&transformBox{t}) }

// Run processes until ctx is cancelled, then finishes the batch in hand,
// commits and leaves the group.
func (w *Worker) Run(ctx context.Context) error {
	defer w.release()
	if w.local != nil {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.local.watch(wctx)
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	return w.stage.Run(ctx)
}

// group is the raw records of one (signal, tenant, partition).
type group struct {
	sig       otlpwire.Signal
	tenant    string
	partition int32
	recs      []*stream.Record
}

func (w *Worker) handle(ctx context.Context, recs []*stream.Record) error {
	w.now = time.Now()
	var groups []*group
	index := map[groupKey]*group{}
	var out, dead []*stream.Record
	for _, r := range recs {
		sig, ok := w.signalOf[r.Topic]
		if !ok {
			return fmt.Errorf("worker: record from unexpected topic %s", r.Topic)
		}
		tenant, err := recordTenant(r, w.cfg.TenantHeader, w.cfg.DefaultTenant)
		if err == nil {
			err = w.toProto(sig, r)
		}
		if err != nil {
			// Not from an ingester (they validate every tenant): kept
			// apart from every tenant's data, the partition goes on.
			dead = append(dead, w.fitDeadLetter(sig, w.deadLetter(r, err))...)
			continue
		}
		k := groupKey{sig, tenant, r.Partition}
		g := index[k]
		if g == nil {
			g = &group{sig: k.sig, tenant: k.tenant, partition: k.partition}
			index[k] = g
			groups = append(groups, g)
		}
		g.recs = append(g.recs, r)
	}
	t := w.transform.Load().t
	clear(w.pending)
	if w.local != nil {
		w.localRules(t)
		if err := w.local.take(ctx, groups, w.now); err != nil {
			return err
		}
	}
	for _, g := range groups {
		recs, d, err := w.process(g, t)
		if err != nil {
			return err
		}
		for _, d := range d {
			dead = append(dead, w.fitDeadLetter(g.sig, d)...)
		}
		out = append(out, recs...)
	}
	out = w.progress(out)
	if w.cfg.ExactlyOnce {
		// One transaction: a failure aborts both, and the retry writes both.
		if err := w.produce(ctx, append(dead, out...)); err != nil {
			return err
		}
		w.toldDeadLetters(dead)
		return nil
	}
	// The processed records first, then the dead letters: when the DLQ
	// refuses them (its stream deleted, the store full), only they are
	// retried, and the processed records of the batch are not written
	// again with each attempt. The batch's positions are committed once
	// both are on the bus.
	id := batchID{recs[0], recs[len(recs)-1], len(recs)}
	if w.written != id {
		if err := w.produce(ctx, out); err != nil {
			return err
		}
		w.written = id
	}
	if w.local != nil {
		// What is not written now is written first next time (a retry
		// of this batch adds nothing: its merged points are in).
		if err := w.local.flush(ctx); err != nil {
			return err
		}
	}
	_, err := stream.ProduceDeadLetters(ctx, w.out, dead, w.log)
	if err != nil && w.ensureDLQ(ctx) {
		_, err = stream.ProduceDeadLetters(ctx, w.out, dead, w.log)
	}
	if err != nil {
		return fmt.Errorf("worker: dead-lettering %d records (retried; the batch's processed records are written): %w", len(dead), err)
	}
	w.written = batchID{}
	w.toldDeadLetters(dead)
	return nil
}

// toldDeadLetters passes dead letters on the bus to Config.OnDeadLetters.
func (w *Worker) toldDeadLetters(dead []*stream.Record) {
	if len(dead) > 0 && w.cfg.OnDeadLetters != nil {
		w.cfg.OnDeadLetters("worker", dead)
	}
}

// toProto makes r's value OTLP protobuf: an OTLP/JSON record (an agent's
// Kafka exporter with encoding otlp_json) is converted, and its
// content-type set to say so: a dead letter made of it later says what it
// holds, and the retry of a failed batch, which hands handle the same
// records, does not convert it twice.
func (w *Worker) toProto(sig otlpwire.Signal, r *stream.Record) error {
	json, err := recordJSON(r, w.json)
	if err != nil || !json {
		return err
	}
	pb, err := otlpjson.UnmarshalRequest(sig, r.Value, nil)
	if err != nil {
		return fmt.Errorf("record %s/%d@%d: OTLP/JSON: %w", r.Topic, r.Partition, r.Offset, err)
	}
	r.Value = pb
	setHeader(r, stream.HeaderContentType, []byte(stream.ContentTypeOTLPProto))
	return nil
}

// ensureDLQ creates the dead-letter topic if it is missing, reporting
// whether it exists now.
func (w *Worker) ensureDLQ(ctx context.Context) bool {
	if w.cfg.DeadLetterTopic.Name == "" {
		return false
	}
	if err := w.bus.EnsureTopics(ctx, w.cfg.DeadLetterTopic); err != nil {
		w.log.Warn("dead-letter topic not ensured after a failed dead letter", "topic", w.cfg.DeadLetterTopic.Name, "err", err)
		return false
	}
	return true
}

// batchID tells the batch the stage hands to handle again after an error
// (the same records) from the next one.
type batchID struct {
	first, last *stream.Record
	n           int
}

func (w *Worker) produce(ctx context.Context, recs []*stream.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return w.out.Produce(ctx, recs...)
}

type groupKey struct {
	sig       otlpwire.Signal
	tenant    string
	partition int32
}

// process turns one group into processed records (one per MaxBatchItems
// items, each within MaxRecordBytes) and dead letters for records the
// decoder refuses.
func (w *Worker) process(g *group, t Transform) (out, dead []*stream.Record, err error) {
	b := w.builders[g.sig]
	var pending []*stream.Record // appended since the last Build
	flush := func() error {
		if b.Len() == 0 && len(pending) == 0 {
			return nil
		}
		recs, deadRecs, err := w.encodeFitting(g, b, b.Build(), pending, t)
		pending = pending[:0]
		out, dead = append(out, recs...), append(dead, deadRecs...)
		return err
	}
	for _, r := range g.recs {
		n, err := b.Append(r.Value)
		if err == nil && r.Header(stream.HeaderItems) == nil {
			// An agent's record: the stage counts its items from the
			// header, as it does an ingester's.
			r.Headers = append(r.Headers, stream.Header{Key: stream.HeaderItems, Value: strconv.AppendInt(nil, int64(n), 10)})
		}
		if err != nil {
			// The builder dropped what it held since the last Build:
			// decode those records again, and dead-letter this one -
			// or, when it holds valid items beside items that break
			// the decoder's limits, only the latter.
			if err := appendAll(b, pending); err != nil {
				return nil, nil, err
			}
			err = fmt.Errorf("record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			good, bad, why := w.salvage(g.sig, r)
			if good == nil {
				dead = append(dead, w.deadLetter(r, err))
				continue
			}
			if _, err2 := b.Append(good.Value); err2 != nil {
				if err := appendAll(b, pending); err != nil {
					return nil, nil, err
				}
				dead = append(dead, w.deadLetter(r, err))
				continue
			}
			if bad != nil {
				dead = append(dead, w.deadLetter(bad, why))
			}
			r = good
		}
		pending = append(pending, r)
		if b.Len() >= w.batchItems(g.sig) {
			if err := flush(); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	return out, dead, nil
}

// salvage cuts r, a raw record the decoder refused, into a record of its
// valid items (good) and one of the items that break the decoder's limits
// (bad, with why naming the first one's field), when it holds both; else
// good is nil. bad is nil too when the only fault is a scope or metric
// without items, which good leaves out. Both keep r's position and
// headers, their item counts set: the raw position is committed only once
// both are produced. A record
// from an older ingester or an outside producer may hold such items; this
// ingester refuses them (otlpwire.Options.Check).
func (w *Worker) salvage(sig otlpwire.Signal, r *stream.Record) (good, bad *stream.Record, why error) {
	res, err := w.cutter.Split(sig, r.Value, otlpwire.Options{Key: otlpwire.KeyNone, Check: true})
	if err != nil || len(res.Chunks) != 1 {
		return nil, nil, nil // not OTLP, or nothing valid
	}
	if res.Invalid == 0 {
		// No bad item: what the decoder refused is a scope or metric
		// without items, which the check leaves out, or not the limits.
		if bytes.Equal(res.Chunks[0].Value, r.Value) {
			return nil, nil, nil
		}
		return withValue(r, bytes.Clone(res.Chunks[0].Value), res.Chunks[0].Items), nil, nil
	}
	good = withValue(r, bytes.Clone(res.Chunks[0].Value), res.Chunks[0].Items) // before the cutter's buffers are used again
	inv, err := w.cutter.Invalid(sig, r.Value, 0)
	if err != nil || len(inv.Chunks) != 1 || inv.Chunks[0].Items != res.Invalid {
		return nil, nil, nil
	}
	why = fmt.Errorf("%d items break the decoder's limits: %s", res.Invalid, inv.RejectReason)
	return good, withValue(r, bytes.Clone(inv.Chunks[0].Value), res.Invalid), why
}

// withValue is a copy of r with value, holding items (its items header
// set).
func withValue(r *stream.Record, value []byte, items int) *stream.Record {
	c := *r
	c.Value = value
	c.Headers = make([]stream.Header, 0, len(r.Headers)+1)
	for _, h := range r.Headers {
		if h.Key != stream.HeaderItems {
			c.Headers = append(c.Headers, h)
		}
	}
	c.Headers = append(c.Headers, stream.Header{Key: stream.HeaderItems, Value: strconv.AppendInt(nil, int64(items), 10)})
	return &c
}

// batchItems is how many items of sig a processed record takes: at most
// MaxBatchItems, and about half of MaxRecordBytes' worth.
func (w *Worker) batchItems(sig otlpwire.Signal) int {
	if n := w.fitItems[sig]; n > 0 && n < w.cfg.MaxBatchItems {
		return n
	}
	return w.cfg.MaxBatchItems
}

// appendAll decodes recs into b again (they decoded before).
func appendAll(b *schemas.Builder, recs []*stream.Record) error {
	for _, r := range recs {
		if _, err := b.Append(r.Value); err != nil {
			return fmt.Errorf("worker: re-decoding %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	return nil
}

// encodeFitting encodes batch, made of the raw records from, as records
// within MaxRecordBytes: when one comes out larger, each half of from is
// decoded (into b) and encoded again. A single raw record whose processed
// record is still too large goes to the dead-letter topic rather than
// stopping the worker (a raw record fits the bus, and its processed form is
// several times smaller: this takes an unusual record).
func (w *Worker) encodeFitting(g *group, b *schemas.Builder, batch *schemas.Batch, from []*stream.Record, t Transform) (out, dead []*stream.Record, err error) {
	in := batch.Len()
	recs, err := w.encode(g, batch, from, t)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 { // all dropped by the rules, or merged here
		w.m.itemsIn[g.sig].Add(float64(in))
		return nil, nil, nil
	}
	size, largest := 0, 0
	var big *stream.Record
	for _, r := range recs {
		size += len(r.Value)
		if n := len(r.Value) + r.Overhead(); n > largest {
			largest, big = n, r
		}
	}
	if w.cfg.MaxRecordBytes > 0 && in > 0 {
		limit := w.cfg.MaxRecordBytes - big.Overhead()
		w.fitItems[g.sig] = max(1, int(int64(in)*int64(limit)/2/int64(size+1)))
	}
	if w.cfg.MaxRecordBytes <= 0 || largest <= w.cfg.MaxRecordBytes {
		w.count(g.sig, in, recs)
		return recs, nil, nil
	}
	if len(from) == 1 {
		return nil, []*stream.Record{w.deadLetter(from[0], fmt.Errorf("its processed record of %d bytes exceeds the bus's max_record_bytes (%d)", len(big.Value), w.cfg.MaxRecordBytes))}, nil
	}
	half := len(from) / 2
	for _, part := range [][]*stream.Record{from[:half], from[half:]} {
		if err := appendAll(b, part); err != nil {
			return nil, nil, err
		}
		o, d, err := w.encodeFitting(g, b, b.Build(), part, t)
		if err != nil {
			return nil, nil, err
		}
		out, dead = append(out, o...), append(dead, d...)
	}
	return out, dead, nil
}

// count adds written records to the metrics: in raw items became recs.
func (w *Worker) count(sig otlpwire.Signal, in int, recs []*stream.Record) {
	w.m.itemsIn[sig].Add(float64(in))
	for _, r := range recs {
		n, _ := strconv.Atoi(string(r.Header(stream.HeaderItems)))
		if r.Topic == w.cfg.Topics.Aggregate() {
			w.m.pointsAggregated.Add(float64(n))
			w.m.bytesAggregated.Add(float64(len(r.Value)))
			continue
		}
		w.m.itemsOut[sig].Add(float64(n))
		w.m.bytesOut[sig].Add(float64(len(r.Value)))
	}
}

// encode applies the rules to batch and writes the result: the points the
// rules marked for merging as records of the aggregation topic (one per
// aggregation partition and merge spec), the rest as one processed record.
// It returns no record when the rules dropped every item. The caller
// counts the records in the metrics once they are kept (see
// encodeFitting).
func (w *Worker) encode(g *group, batch *schemas.Batch, from []*stream.Record, t Transform) ([]*stream.Record, error) {
	batch.Tenant = g.tenant
	version := ""
	w.merges = w.merges[:0]
	told := int64(-1) // the point time to tell the aggregators (progress); -1: none
	if t != nil {
		version = t.Version()
		w.findInputSets(g, batch)
		var res *schemas.Batch
		var err error
		if m, ok := t.(Merger); ok && g.sig == otlpwire.Metrics {
			told = newestPoint(batch)
			res, w.merges, err = m.ApplyMerge(batch, w.merges)
		} else {
			res, err = t.Apply(batch)
		}
		if err != nil {
			batch.Release()
			return nil, fmt.Errorf("worker: applying rules %s: %w", version, err)
		}
		if len(w.merges) > 0 {
			err = w.inputHashes(g.tenant, batch) // before the input goes
		}
		if res != batch {
			w.observe(g, cardinality.Before, batch)
			w.findSets(res)
			w.observe(g, cardinality.After, res)
			batch.Release()
			batch = res
		} else {
			if batch.ItemAttrSets == nil { // else found before the rules
				w.findSets(batch)
			}
			w.observe(g, cardinality.Both, batch) // the rules changed nothing: one pass
		}
		if err != nil {
			batch.Release()
			return nil, err
		}
	} else {
		w.findSets(batch)
		w.observe(g, cardinality.Both, batch)
	}
	defer batch.Release()
	var recs []*stream.Record
	switch {
	case batch.Len() == 0: // all dropped by the rules
	case len(w.merges) == 0:
		rec, err := w.processed(g, batch, version, from)
		if err != nil {
			return nil, err
		}
		recs = []*stream.Record{rec}
	default:
		var err error
		if recs, err = w.split(g, batch, version, from); err != nil {
			return nil, err
		}
	}
	w.tell(g, told, from)
	return recs, nil
}

// newestPoint is the newest point time of the metrics batch b (ns; 0
// when none has one).
func newestPoint(b *schemas.Batch) int64 {
	times, ok := b.Items.Column(schemas.PtTimeUnixNano).(*array.Uint64)
	if !ok {
		return 0
	}
	var t uint64
	for _, v := range times.Uint64Values() {
		t = max(t, v)
	}
	return int64(min(t, math.MaxInt64))
}

// findInputSets numbers the attribute sets of the decoded input b when
// they repeat (the same series in several steps of a backlog): the rules
// then evaluate and edit a set's later rows as its first, and the tracker
// hashes the series once per set. Metrics only: the other signals' items
// rarely repeat their attributes. The decoder mostly numbered them
// already (FindItemAttrSets then keeps its numbers).
func (w *Worker) findInputSets(g *group, b *schemas.Batch) {
	if g.sig != otlpwire.Metrics {
		return
	}
	b.FindItemAttrSets(w.inSets)
	if b.ItemAttrSets != nil {
		w.inSets = b.ItemAttrSets[:0]
	}
}

// findSets numbers the attribute sets of the items of b, the batch to be
// written, when they repeat: found once, they serve the cardinality
// tracker (a series hashed per set) and WriteBatch (which would find them
// again). The decoded input is not worth it: its sets repeat rarely before
// the rules make series alike.
func (w *Worker) findSets(b *schemas.Batch) {
	if len(w.merges) > 0 && (w.cfg.Cardinality == nil || b.Signal != otlpwire.Metrics) {
		return // written in parts (split), and no tracker to use them
	}
	b.FindItemAttrSets(w.sets)
	if b.ItemAttrSets != nil {
		w.sets = b.ItemAttrSets[:0]
	}
}

// observe feeds the cardinality tracker.
func (w *Worker) observe(g *group, st cardinality.Stage, b *schemas.Batch) {
	if w.cfg.Cardinality == nil || g.sig != otlpwire.Metrics {
		return
	}
	if err := w.cfg.Cardinality.Observe(g.tenant, st, b, time.Now()); err != nil {
		w.log.Debug("cardinality not tracked for a batch", "err", err)
	}
}

// inputHashes sets the input series hash of every merge from the batch the
// rules read.
func (w *Worker) inputHashes(tenant string, in *schemas.Batch) error {
	if err := w.hasher.Reset(in); err != nil {
		return fmt.Errorf("worker: hashing series: %w", err)
	}
	w.inH = w.inH[:0]
	for _, m := range w.merges {
		w.inH = append(w.inH, w.hasher.Series(tenant, int(m.Orig)))
	}
	return nil
}

// aggPart is the points of a batch bound for one aggregation partition
// under one spec.
type aggPart struct {
	partition int32 // -1: merged here (Config.LocalMerge)
	spec      *aggregate.Spec
	rows      []int32
	in, out   []uint64 // input series hashes; output ones, merged here
}

// split writes the merged points of batch to the aggregation topic,
// routed by output series (by metric under a limit, which counts a
// metric's series in one place), and the others as a processed record.
func (w *Worker) split(g *group, batch *schemas.Batch, version string, from []*stream.Record) ([]*stream.Record, error) {
	topic := w.cfg.Topics.Aggregate()
	np := w.bus.Partitions(topic)
	if np <= 0 {
		return nil, fmt.Errorf("worker: the rules merge series but the aggregation topic %s does not exist", topic)
	}
	if err := w.hasher.Reset(batch); err != nil {
		return nil, fmt.Errorf("worker: hashing series: %w", err)
	}
	used, rest := 0, w.rest[:0]
	if w.partOf == nil {
		w.partOf = map[aggKey]*aggPart{}
	}
	clear(w.partOf)
	var last *aggPart // the points of a metric row come together
	next := 0
	for i, m := range w.merges {
		for ; next < int(m.Row); next++ {
			rest = append(rest, int32(next))
		}
		next = int(m.Row) + 1
		// Routed by family (tenant, resource, scope, metric): a series'
		// points go together, and so do a metric row's, which keeps the
		// selections below runs of rows. A limit counts per metric.
		var k aggKey
		if w.localOK && m.Spec.Limit == 0 {
			k = aggKey{-1, m.Spec}
		} else {
			route := w.hasher.Family(g.tenant, int(m.Row))
			if m.Spec.Limit > 0 {
				route = w.hasher.Metric(g.tenant, int(m.Row))
			}
			k = aggKey{int32(route % uint64(np)), m.Spec}
		}
		p := last
		if p == nil || p.partition != k.partition || p.spec != k.spec {
			if p = w.partOf[k]; p == nil {
				if used == len(w.parts) {
					w.parts = append(w.parts, &aggPart{})
				}
				p = w.parts[used] // its slices' room kept from earlier polls
				used++
				*p = aggPart{partition: k.partition, spec: k.spec, rows: p.rows[:0], in: p.in[:0], out: p.out[:0]}
				w.partOf[k] = p
			}
			last = p
		}
		p.rows, p.in = append(p.rows, m.Row), append(p.in, w.inH[i])
		if p.partition < 0 {
			p.out = append(p.out, w.hasher.Series(g.tenant, int(m.Row)))
		}
	}
	for ; next < batch.Len(); next++ {
		rest = append(rest, int32(next))
	}
	w.rest = rest
	parts := w.parts[:used]
	var recs []*stream.Record
	if len(rest) > 0 {
		sel, err := schemas.Select(batch, rest, w.cfg.Allocator)
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		rec, err := w.processed(g, sel, version, from)
		sel.Release()
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	for _, p := range parts {
		if p.partition < 0 {
			if err := w.mergeHere(g, batch, p); err != nil {
				return nil, err
			}
			continue
		}
		sel, err := schemas.Select(batch, p.rows, w.cfg.Allocator)
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		val, err := aggregate.AppendRecord(nil, sel, p.in, *p.spec)
		sel.Release()
		if err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
		recs = append(recs, &stream.Record{Topic: topic, Partition: p.partition, Value: val, Timestamp: from[0].Timestamp,
			Headers: append(w.headers(g, stream.ContentTypeAggregate, len(p.rows), version, from),
				stream.Header{Key: HeaderSource, Value: strconv.AppendInt(nil, int64(g.partition), 10)})})
	}
	return recs, nil
}

// localRules notes whether t lets the worker merge in the raw partition
// (localOK) and whether it sends the aggregators nothing (localAll).
func (w *Worker) localRules(t Transform) {
	rk, ok := t.(ResourceKeeper)
	w.localOK = ok && rk.KeepsResources()
	w.localAll = w.localOK && !rk.HasLimits()
}

// mergeHere merges the points of p, rows of batch, in the state of g's
// raw partition (Config.LocalMerge).
func (w *Worker) mergeHere(g *group, batch *schemas.Batch, p *aggPart) error {
	sel := batch
	if len(p.rows) < batch.Len() {
		var err error
		if sel, err = schemas.Select(batch, p.rows, w.cfg.Allocator); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		defer sel.Release()
	}
	if err := w.local.add(g, sel, p.in, p.out, p.spec, w.now); err != nil {
		return fmt.Errorf("worker: merging in raw partition %d: %w", g.partition, err)
	}
	return nil
}

// pendingProgress is what the batch in hand tells of a raw partition's
// progress (see progress): the newest point time, and the group and raw
// record its progress records take their headers from.
type pendingProgress struct {
	t    int64
	g    *group
	from *stream.Record
}

// tell notes that the raw partition of g reached point time t (the newest
// point of a metrics batch just encoded; -1: the rules merge nothing).
func (w *Worker) tell(g *group, t int64, from []*stream.Record) {
	if t <= 0 {
		return
	}
	if w.pending == nil {
		w.pending = map[int32]pendingProgress{}
	}
	if p, ok := w.pending[g.partition]; !ok || t > p.t {
		w.pending[g.partition] = pendingProgress{t, g, from[0]}
	}
}

// progress tells, after every record of the batch in hand, how far each of
// its raw partitions has come in point time (tell): the state of a raw
// partition merged here (Config.LocalMerge), and, once the partition has
// moved progressStep past what they were last told, the aggregation
// partitions, with a record without points for each, appended to recs.
// Their watermark follows the raw partition whether its points went
// there, elsewhere, or nowhere (the rules merged none of this batch),
// rather than waiting for it to fall silent; a raw partition the workers
// are behind on holds it until then (aggregate.Aggregator.Behind). Every
// point of the batch, whatever its tenant, is judged against the
// watermark as it stood before the batch (aggregate.Aggregator.Progress).
// Nothing is told of a batch that fails: its retry's points would be late.
func (w *Worker) progress(recs []*stream.Record) []*stream.Record {
	if len(w.pending) == 0 {
		return recs
	}
	np := w.bus.Partitions(w.cfg.Topics.Aggregate())
	if w.told == nil {
		w.told = map[int32]int64{}
	}
	for _, part := range slices.Sorted(maps.Keys(w.pending)) {
		p := w.pending[part]
		if w.local != nil {
			w.local.progress(part, p.t, w.now)
		}
		if w.localAll || np <= 0 || p.t-w.told[part] < progressStep {
			continue
		}
		w.told[part] = p.t
		src := strconv.AppendInt(nil, int64(part), 10)
		at := strconv.AppendInt(nil, p.t, 10)
		from := []*stream.Record{p.from}
		for q := range np {
			recs = append(recs, &stream.Record{Topic: w.cfg.Topics.Aggregate(), Partition: q, Timestamp: p.from.Timestamp,
				Headers: append(w.headers(p.g, stream.ContentTypeAggregate, 0, "", from),
					stream.Header{Key: HeaderSource, Value: src}, stream.Header{Key: HeaderProgress, Value: at})})
		}
	}
	return recs
}

type aggKey struct {
	partition int32
	spec      *aggregate.Spec
}

// processed writes batch as a record of the processed topic, in the raw
// record's partition when the processed topic has as many.
func (w *Worker) processed(g *group, batch *schemas.Batch, version string, from []*stream.Record) (*stream.Record, error) {
	w.buf.Reset()
	if err := schemas.WriteBatch(&w.buf, batch); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	topic := w.cfg.Topics.Processed(g.sig)
	p := g.partition
	if w.bus.Partitions(topic) <= p {
		p = -1 // the processed topic has fewer partitions
	}
	return &stream.Record{Topic: topic, Partition: p, Value: bytes.Clone(w.buf.Bytes()), Timestamp: from[0].Timestamp,
		Headers: w.headers(g, stream.ContentTypeArrow, batch.Len(), version, from)}, nil
}

// headers are the headers of a record the worker writes.
func (w *Worker) headers(g *group, contentType string, items int, version string, from []*stream.Record) []stream.Header {
	return recordHeaders(contentType, g.sig, g.tenant, items, version, from[0].Header(stream.HeaderReceivedAt))
}

// recordHeaders are the headers of a record written by a worker or an
// aggregator; version (the rules') and receivedAt are left out when empty.
func recordHeaders(contentType string, sig otlpwire.Signal, tenant string, items int, version string, receivedAt []byte) []stream.Header {
	hdrs := []stream.Header{
		{Key: stream.HeaderContentType, Value: []byte(contentType)},
		{Key: stream.HeaderSignal, Value: []byte(sig.String())},
		{Key: stream.HeaderTenant, Value: []byte(tenant)},
		{Key: stream.HeaderItems, Value: strconv.AppendInt(nil, int64(items), 10)},
		{Key: HeaderSchemaVersion, Value: []byte(schemas.Version)},
	}
	if version != "" {
		hdrs = append(hdrs, stream.Header{Key: HeaderRulesVersion, Value: []byte(version)})
	}
	if receivedAt != nil {
		hdrs = append(hdrs, stream.Header{Key: stream.HeaderReceivedAt, Value: receivedAt})
	}
	return hdrs
}

// HeaderTruncated is set on a dead letter whose value was cut to fit the
// bus: the size in bytes of the raw record's value.
const HeaderTruncated = stream.HeaderTruncated

// busFraming is what a bus may add to a record beyond Record.Overhead.
const busFraming = 128

// fitDeadLetter makes d, a dead letter, fit DeadLetterMaxBytes: a raw
// record from an outside producer may be larger than what the dead-letter
// topic takes with the dead letter's extra headers, and a dead letter that
// never fits would stop the worker on its partition for good. A well-formed request is cut
// along its items into several dead letters; anything else (or an item too
// large alone) is truncated, with HeaderTruncated giving the original size
// (the raw record itself stays in the raw topic for its retention).
// busFraming bytes are left for what the bus adds (NATS: its own key and
// timestamp headers and the header block's framing).
func (w *Worker) fitDeadLetter(sig otlpwire.Signal, d *stream.Record) []*stream.Record {
	limit := w.cfg.DeadLetterMaxBytes - busFraming
	if w.cfg.DeadLetterMaxBytes <= 0 || len(d.Value)+d.Overhead() <= limit {
		return []*stream.Record{d}
	}
	room := limit - d.Overhead() - len(stream.HeaderItems) - 8 - 20
	if room > 0 {
		res, err := w.cutter.Split(sig, d.Value, otlpwire.Options{Key: otlpwire.KeyNone, MaxRecordBytes: room})
		if err == nil && res.Rejected == 0 && len(res.Chunks) > 0 {
			out := make([]*stream.Record, len(res.Chunks))
			for k, c := range res.Chunks {
				out[k] = withValue(d, bytes.Clone(c.Value), c.Items)
			}
			return out
		}
	}
	t := stream.Truncated(d, 0)
	t.Value = d.Value[:max(0, min(len(d.Value), limit-t.Overhead()))]
	w.log.Warn("dead letter truncated to fit the bus", "origin", string(d.Header(stream.HeaderOrigin)), "bytes", len(d.Value), "limit", limit)
	return []*stream.Record{t}
}

// deadLetter is r bound for the DLQ topic, with why and where from.
func (w *Worker) deadLetter(r *stream.Record, err error) *stream.Record {
	w.m.deadLetters.Inc()
	w.log.Warn("raw record not processed; sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
	hdrs := append([]stream.Header(nil), r.Headers...)
	hdrs = append(hdrs,
		stream.ErrorHeader(err.Error()),
		stream.Header{Key: stream.HeaderOrigin, Value: fmt.Appendf(nil, "%s/%d/%d", r.Topic, r.Partition, r.Offset)},
	)
	return &stream.Record{Topic: w.cfg.Topics.DLQ(), Partition: -1, Key: r.Key, Value: r.Value, Headers: hdrs, Timestamp: r.Timestamp}
}

type metrics struct {
	itemsIn, itemsOut, bytesOut       [len(otlpwire.Signals)]prometheus.Counter
	deadLetters                       prometheus.Counter
	pointsAggregated, bytesAggregated prometheus.Counter
	pointsMerged, mergedOut           prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_worker_items_in_total",
		Help: "Items (data points, log records, spans) read from the raw topics and decoded."}, []string{"signal"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_worker_items_out_total",
		Help: "Items written to the processed topics, after the rules."}, []string{"signal"})
	bytesOut := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_worker_bytes_out_total",
		Help: "Bytes of batch records (schemas.WriteBatch) written to the processed topics."}, []string{"signal"})
	m := &metrics{deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_dead_letters_total",
		Help: "Raw records sent to the dead-letter topic because they could not be decoded or named an invalid tenant."}),
		pointsAggregated: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_points_aggregated_total",
			Help: "Metric points written to the aggregation topic (their series were changed by the rules, or a limit counts them)."}),
		bytesAggregated: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_aggregated_bytes_total",
			Help: "Bytes of records written to the aggregation topic."}),
		pointsMerged: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_points_merged_total",
			Help: "Metric points the worker merged in their raw partition (worker.local_merge) rather than writing them to the aggregation topic."}),
		mergedOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_worker_merged_points_out_total",
			Help: "Merged points the worker wrote to the processed metrics topic (worker.local_merge)."}),
	}
	for _, s := range otlpwire.Signals {
		m.itemsIn[s], m.itemsOut[s], m.bytesOut[s] = in.WithLabelValues(s.String()), out.WithLabelValues(s.String()), bytesOut.WithLabelValues(s.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{in, out, bytesOut, m.deadLetters, m.pointsAggregated, m.bytesAggregated, m.pointsMerged, m.mergedOut} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("worker metrics: %w", err)
			}
		}
	}
	return m, nil
}
