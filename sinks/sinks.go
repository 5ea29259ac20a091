// Package sinks delivers processed records to where they are kept: a file,
// a backend, another topic. Each configured sink runs in its own consumer
// group over the processed topics of its signals, so a slow or broken sink
// holds back nothing but itself; the bus is its buffer. A sink commits a
// position only after its Write returned success for every record before it.
//
// A sink type registers a Factory under its type name (the `type` key of a
// `sinks` entry); the factory decodes the entry's own keys.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/stage"
)

// Sink delivers records. Write is called by one goroutine at a time, with
// records of the sink's signals in partition order; it returns nil only
// when the destination holds all of them durably. A failed Write is called
// again with the same records (after the delay a RetryAfter() method of the
// error asks for, if longer than the backoff), except for a *RejectedError:
// the records it names go to the dead-letter topic and the others count as
// delivered.
type Sink interface {
	Write(ctx context.Context, recs []*stream.Record) error
	Close() error
}

// RejectedError is a permanent refusal of some records by the destination
// (an HTTP 400, say): sending them again cannot help. Write returns it only
// once everything else of the batch is delivered.
type RejectedError struct {
	Records []*stream.Record // the refused records
	Reason  string           // the destination's answer, for the DLQ header
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%d records rejected: %s", len(e.Records), e.Reason)
}

// HeaderSink names, on a dead-lettered record, the sink that rejected it.
const HeaderSink = "sluice-sink"

// Env is what a factory may use besides the entry itself.
type Env struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Factory builds a sink from its config entry. Problems with the entry's
// keys are returned as *config.Error values (errors.Join of them), so that
// they name the file and line.
type Factory func(entry *config.Sink, env Env) (Sink, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a sink type available. It panics when typ is taken, as
// registration happens in init functions.
func Register(typ string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[typ]; dup {
		panic("sinks: type registered twice: " + typ)
	}
	factories[typ] = f
}

// Types lists the registered sink types.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Build builds the sink of entry with the registered factory of its type.
func Build(cfg *config.Config, entry *config.Sink, env Env) (Sink, error) {
	mu.RLock()
	f := factories[entry.Type]
	mu.RUnlock()
	if f == nil {
		return nil, cfg.Errorf(entry.Path+".type", "unknown sink type %q (valid: %s)", entry.Type, fmt.Sprint(Types()))
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	env.Logger = env.Logger.With("sink", entry.Name)
	return f(entry, env)
}

// Check builds every sink of cfg and closes it again, returning all
// problems found: config validation at start, before anything runs.
func Check(cfg *config.Config) error {
	var errs []error
	for i := range cfg.Sinks {
		s, err := Build(cfg, &cfg.Sinks[i], Env{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Close()
	}
	return errors.Join(errs...)
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Topics  stream.Topics
	Start   stream.Start
	Logger  *slog.Logger
	Metrics *stage.Metrics
	// MaxBackoff bounds the delay between retries of a failed batch
	// (stage.Config.MaxBackoff; default 30s).
	MaxBackoff time.Duration
	// Registerer receives sluice_sink_dead_letters_total; nil: none.
	Registerer prometheus.Registerer
	// OnDeadLetters, when set, is told of the records the destination
	// refused once they are on the dead-letter topic.
	OnDeadLetters stream.DeadLetterHook
}

// Runner runs one sink: its consumer group and its stage.
type Runner struct {
	sink  Sink
	stage *stage.Stage
	bus   stream.Producer
	name  string
	group string
	// topics are the processed topics it reads.
	topics []string
	dlq    string
	log    *slog.Logger

	deadLetters prometheus.Counter
	delay       prometheus.Observer
	onDead      stream.DeadLetterHook
}

// Group is the consumer group of the sink entry: entry.Group, default
// sluice-sink-<name>.
func Group(entry *config.Sink) string {
	if entry.Group != "" {
		return entry.Group
	}
	return "sluice-sink-" + entry.Name
}

// Topics are the processed topics the sink entry reads: those of its
// signals.
func Topics(entry *config.Sink, names stream.Topics) ([]string, error) {
	var topics []string
	for _, name := range entry.Signals {
		sig, err := otlpwire.ParseSignal(name)
		if err != nil {
			return nil, err
		}
		if t := names.Processed(sig); !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics, nil
}

// NewRunner joins the sink's consumer group (entry.Group, default
// sluice-sink-<name>) on the processed topics of its signals.
func NewRunner(bus stream.Bus, entry *config.Sink, sink Sink, cfg RunnerConfig) (*Runner, error) {
	group := Group(entry)
	topics, err := Topics(entry, cfg.Topics)
	if err != nil {
		return nil, err
	}
	r := &Runner{sink: sink, bus: bus, name: entry.Name, group: group, topics: topics, dlq: cfg.Topics.DLQ(), log: cfg.Logger, onDead: cfg.OnDeadLetters}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	maxItems := entry.BatchMaxItems
	if maxItems == 0 {
		maxItems = config.DefaultBatchMaxItems
	}
	scfg := stage.Config{Name: "sink/" + entry.Name, Handle: r.write, Logger: cfg.Logger, Metrics: cfg.Metrics,
		BatchMinRecords: entry.BatchMinRecords, BatchMaxWait: entry.BatchMaxWait, BatchMaxItems: maxItems, MaxBackoff: cfg.MaxBackoff}
	c, err := bus.Consume(scfg.ConsumerHooks(stream.ConsumerConfig{Group: group, Topics: topics, Start: cfg.Start}))
	if err != nil {
		return nil, fmt.Errorf("sink %s: joining group %s: %w", entry.Name, group, err)
	}
	sm := sinkmetrics.New(cfg.Registerer).For(entry.Name)
	r.deadLetters, r.delay = sm.DeadLetters, sm.DeliveryDelay
	scfg.Consumer = c
	st, err := stage.New(scfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	r.stage = st
	return r, nil
}

// Group is the runner's consumer group and Topics the topics it reads.
func (r *Runner) Group() string    { return r.group }
func (r *Runner) Topics() []string { return r.topics }

// write delivers recs; rejected records go to the dead-letter topic before
// the batch counts as handled.
func (r *Runner) write(ctx context.Context, recs []*stream.Record) error {
	err := r.sink.Write(ctx, recs)
	var rej *RejectedError
	if !errors.As(err, &rej) {
		if err == nil {
			r.observeDelay(recs, nil)
		}
		return err
	}
	r.observeDelay(recs, rej.Records)
	dead := make([]*stream.Record, len(rej.Records))
	for i, rec := range rej.Records {
		hdrs := append([]stream.Header(nil), rec.Headers...)
		hdrs = append(hdrs,
			stream.ErrorHeader(rej.Reason),
			stream.Header{Key: stream.HeaderOrigin, Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
			stream.Header{Key: HeaderSink, Value: []byte(r.name)},
		)
		dead[i] = &stream.Record{Topic: r.dlq, Partition: -1, Key: rec.Key, Value: rec.Value, Headers: hdrs, Timestamp: rec.Timestamp}
	}
	// A processed record may be as large as the bus takes, and the
	// dead-letter topic may take less (worker.dead_letter_max_bytes): those
	// it refuses as too large go without their value.
	if _, err := stream.ProduceDeadLetters(ctx, r.bus, dead, r.log.With("sink", r.name)); err != nil {
		return fmt.Errorf("sending %d rejected records to %s: %w", len(dead), r.dlq, err)
	}
	r.deadLetters.Add(float64(len(dead)))
	if r.onDead != nil {
		r.onDead("sink/"+r.name, dead)
	}
	r.log.Warn("records rejected by the destination; sent to the dead-letter topic", "sink", r.name, "records", len(dead), "reason", rej.Reason)
	return nil
}

// observeDelay observes the end-to-end delay of the records delivered:
// recs but the rejected ones.
func (r *Runner) observeDelay(recs, rejected []*stream.Record) {
	now := time.Now()
	for _, rec := range recs {
		h := rec.Header(stream.HeaderReceivedAt)
		if h == nil || slices.Contains(rejected, rec) {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, string(h)); err == nil {
			r.delay.Observe(max(0, now.Sub(t).Seconds()))
		}
	}
}

// Run delivers until ctx is cancelled, then finishes the batch in hand,
// commits, and closes the sink.
func (r *Runner) Run(ctx context.Context) error {
	err := r.stage.Run(ctx)
	if cerr := r.sink.Close(); err == nil {
		err = cerr
	}
	return err
}

// SignalOf tells the signal of a processed record from its sluice-signal
// header.
func SignalOf(r *stream.Record) (otlpwire.Signal, error) {
	h := r.Header(stream.HeaderSignal)
	if h == nil {
		return 0, fmt.Errorf("record %s/%d@%d has no %s header", r.Topic, r.Partition, r.Offset, stream.HeaderSignal)
	}
	return otlpwire.ParseSignal(string(h))
}
