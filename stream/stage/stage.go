// Package stage runs one consuming stage of the pipeline: it polls a
// consumer group, hands each batch to a function that moves the records to
// the next stage (a topic, a backend, a file), and commits the batch only
// after that function returned success. A batch that fails is retried with
// backoff, unchanged and before anything newer, for as long as the stage
// runs: the bus holds the data meanwhile and the group's lag shows it.
//
// The worker (raw → processed topics) and every sink run on it, so that the
// rule "a position is committed only after the next stage has the data"
// lives in one place.
package stage

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/stream"
)

// Handler moves a batch of records to the next stage. It returns nil only
// when the next stage holds every record durably. It is called with the
// same batch again after an error, after an exponential backoff with
// jitter, or later if the error has a method RetryAfter() time.Duration
// that asks for more (an HTTP Retry-After). The stage commits recs once
// the handler returned nil (with Checkpoint: after the next checkpoint).
type Handler func(ctx context.Context, recs []*stream.Record) error

// Config configures a Stage.
type Config struct {
	// Name labels the stage's metrics and logs, e.g. "worker" or
	// "sink/archive".
	Name     string
	Consumer stream.Consumer
	Handle   Handler
	// DrainTimeout bounds how long Run goes on with the batch in hand
	// after its context is cancelled. Default 30s.
	DrainTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between retries of a
	// failed batch. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// BatchMinRecords and BatchMaxWait batch by time: after a poll
	// returns fewer than BatchMinRecords records, the stage polls again for
	// up to BatchMaxWait before it hands the batch on. Zero: no waiting.
	BatchMinRecords int
	BatchMaxWait    time.Duration
	// BatchMaxItems bounds the items (sluice-items headers) handed to the
	// handler at once: a larger batch is handed on in consecutive parts,
	// each committed once handled, so that the handler's memory follows this
	// bound rather than how many records a poll returns (up to 10,000 with
	// Kafka). A record holding more goes alone. Zero: no bound.
	BatchMaxItems int
	// Checkpoint makes the stage stateful (the aggregator): Handle only
	// adds a batch to state that the stage's owner keeps in memory, and
	// the records handled are committed once a Checkpoint call has made
	// that state durable. The stage calls Checkpoint every
	// CheckpointInterval (default 5s), also while no records arrive (so
	// that the owner can act on time, e.g. close intervals), and once more
	// before it stops. A failed Checkpoint commits nothing and is tried
	// again at the next interval.
	Checkpoint         func(ctx context.Context) error
	CheckpointInterval time.Duration
	// CheckpointItems, with Checkpoint, also checkpoints as soon as the
	// records handled since the last checkpoint hold this many items
	// (sluice-items headers), so that what the owner keeps between two
	// checkpoints (the aggregator: intervals closed and not yet written)
	// follows this bound rather than how fast a backlog is read. Zero:
	// by time only.
	CheckpointItems int
	// LagInterval is how often the group's lag is read for the metric.
	// Default 15s; negative disables it.
	LagInterval time.Duration
	Logger      *slog.Logger
	Metrics     *Metrics
}

// Stage is one running consume–handle–commit loop.
type Stage struct {
	cfg Config
	m   stageMetrics
	// held: with Checkpoint, the records handled since the last
	// checkpoint, committed after the next one; due is when it is.
	held []*stream.Record
	due  time.Time
	// heldItems counts the items handled since the last checkpoint
	// attempt (CheckpointItems), heldAll those of held (the records may
	// have let go of their headers: stream.Unpinner).
	heldItems, heldAll int64
}

// New checks cfg and returns a stage ready to Run.
func New(cfg Config) (*Stage, error) {
	if cfg.Consumer == nil || cfg.Handle == nil || cfg.Name == "" {
		return nil, errors.New("stage: a stage needs a name, a consumer and a handler")
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.LagInterval == 0 {
		cfg.LagInterval = 15 * time.Second
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("stage", cfg.Name)
	return &Stage{cfg: cfg, m: cfg.Metrics.forStage(cfg.Name)}, nil
}

// Run polls, handles and commits until ctx is cancelled or the consumer
// fails for good. On cancellation it finishes the batch in hand (bounded by
// DrainTimeout), commits it, closes the consumer and returns nil.
func (s *Stage) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if s.cfg.LagInterval > 0 {
		lagCtx, stopLag := context.WithCancel(ctx)
		defer func() { stopLag(); wg.Wait() }()
		wg.Go(func() { s.watchLag(lagCtx) })
	}
	defer func() {
		if err := s.cfg.Consumer.Close(); err != nil {
			s.cfg.Logger.Warn("closing the consumer", "err", err)
		}
	}()
	if s.cfg.Checkpoint != nil {
		s.due = time.Now().Add(s.cfg.CheckpointInterval)
		defer s.finalCheckpoint(ctx)
	}
	for {
		recs, err := s.poll(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, stream.ErrClosed) {
				return nil
			}
			if errors.Is(err, errCheckpointDue) {
				s.checkpoint(ctx)
				continue
			}
			s.m.pollErrors.Inc()
			s.cfg.Logger.Warn("poll failed; retrying", "err", err)
			if !sleep(ctx, s.cfg.MinBackoff*10) {
				return nil
			}
			continue
		}
		if len(recs) == 0 {
			continue
		}
		recs = s.fill(ctx, recs)
		for len(recs) > 0 {
			n := s.part(recs)
			if !s.deliver(ctx, recs[:n]) {
				return nil // cancelled before the part got through: it and the rest stay uncommitted
			}
			recs = recs[n:]
		}
		if s.cfg.Checkpoint != nil && (!time.Now().Before(s.due) ||
			s.cfg.CheckpointItems > 0 && s.heldItems >= int64(s.cfg.CheckpointItems)) {
			s.checkpoint(ctx)
		}
	}
}

// errCheckpointDue: a stateful stage's poll gave way to its checkpoint.
var errCheckpointDue = errors.New("checkpoint due")

// poll polls the consumer; a stateful stage polls only until its next
// checkpoint is due.
func (s *Stage) poll(ctx context.Context) ([]*stream.Record, error) {
	if s.cfg.Checkpoint == nil {
		return s.cfg.Consumer.Poll(ctx)
	}
	pctx, cancel := context.WithDeadline(ctx, s.due)
	defer cancel()
	recs, err := s.cfg.Consumer.Poll(pctx)
	// A bus may give up a moment before the deadline (NATS, with a
	// millisecond left): a deadline error is the deadline's.
	if err != nil && ctx.Err() == nil && (pctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		return nil, errCheckpointDue
	}
	return recs, err
}

// checkpoint calls Checkpoint and, when it succeeds, commits the records
// handled before it.
func (s *Stage) checkpoint(ctx context.Context) {
	s.due = time.Now().Add(s.cfg.CheckpointInterval)
	s.heldItems = 0 // items handled since this attempt
	work, cancel := drainContext(ctx, s.cfg.DrainTimeout)
	defer cancel()
	if err := s.cfg.Checkpoint(work); err != nil {
		s.m.handleErrors.Inc()
		s.cfg.Logger.Warn("checkpoint failed; the records since the last one stay uncommitted", "records", len(s.held), "err", err)
		return
	}
	if len(s.held) > 0 {
		s.commit(work, s.held, s.heldAll)
		clear(s.held)
		s.held, s.heldAll = s.held[:0], 0
	}
}

// finalCheckpoint is the checkpoint of a stateful stage that stops.
func (s *Stage) finalCheckpoint(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.DrainTimeout)
	defer cancel()
	s.checkpoint(ctx)
}

// part is how many of recs, from the first, the handler gets at once: all
// of them, or as many as hold at most BatchMaxItems items (at least one).
func (s *Stage) part(recs []*stream.Record) int {
	if s.cfg.BatchMaxItems <= 0 {
		return len(recs)
	}
	var sum int64
	for i, r := range recs {
		if sum += recordItems(r); sum > int64(s.cfg.BatchMaxItems) && i > 0 {
			return i
		}
	}
	return len(recs)
}

// fill polls for more records until the batch has BatchMinRecords or
// BatchMaxWait has passed since its first record (batching by time); with
// BatchMaxWait 0 the batch is what one poll returned.
func (s *Stage) fill(ctx context.Context, recs []*stream.Record) []*stream.Record {
	if s.cfg.BatchMaxWait <= 0 || len(recs) >= s.cfg.BatchMinRecords {
		return recs
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.BatchMaxWait)
	defer cancel()
	for len(recs) < s.cfg.BatchMinRecords {
		more, err := s.cfg.Consumer.Poll(wctx)
		if err != nil {
			break // the wait is over (or the stage stops: deliver what we have)
		}
		recs = append(recs, more...)
	}
	return recs
}

// deliver hands recs to the handler until it succeeds, then commits them.
// It reports false when it gave up because the stage is stopping.
func (s *Stage) deliver(ctx context.Context, recs []*stream.Record) bool {
	// The batch in hand may finish after ctx is cancelled, within the
	// drain timeout, so that a shutdown does not redo work already sent.
	work, cancel := drainContext(ctx, s.cfg.DrainTimeout)
	defer cancel()
	retry := s.backoff()
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.cfg.Handle(work, recs)
		s.m.handleSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		s.m.handleErrors.Inc()
		if work.Err() != nil || ctx.Err() != nil {
			s.cfg.Logger.Info("stopping with a batch not delivered; it stays uncommitted and is read again on restart",
				"records", len(recs), "err", err)
			return false
		}
		wait := retry.NextBackOff()
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) && ra.RetryAfter() > wait {
			wait = ra.RetryAfter() // the next stage said when to come back
		}
		s.cfg.Logger.Warn("batch not delivered; retrying", "records", len(recs), "attempt", attempt+1, "retry_in", wait, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
	if s.cfg.Checkpoint != nil {
		n := items(recs)
		s.heldItems += n
		s.heldAll += n
		if u, ok := s.cfg.Consumer.(stream.Unpinner); ok {
			u.Unpin(recs...) // held until the checkpoint, without their values
		}
		s.held = append(s.held, recs...)
		return true
	}
	s.commit(work, recs, items(recs))
	return true
}

// commit commits recs, which the next stage holds. Nothing of recs is read
// after the Commit call, so that a consumer may reuse their memory from
// then on.
func (s *Stage) commit(ctx context.Context, recs []*stream.Record, items int64) {
	n := len(recs)
	if err := s.cfg.Consumer.Commit(ctx, recs...); err != nil {
		// The next stage has the batch; a lost commit means it is
		// delivered again after a rebalance or restart (at least once).
		s.m.commitErrors.Inc()
		s.cfg.Logger.Warn("commit failed; the batch may be delivered again", "records", n, "err", err)
	}
	s.m.records.Add(float64(n))
	s.m.items.Add(float64(items))
}

// backoff gives the delays between the attempts of one batch: MinBackoff,
// doubling up to MaxBackoff. It adds no jitter: sleep adds up to 20% to
// the delay, or to a longer Retry-After, so that the next stage's request
// is honoured and never undercut (backoff.Retry, which replaces the delay
// with a Retry-After and resets the growth, and gives up after 15 minutes,
// does not fit a stage that retries for as long as it runs).
func (s *Stage) backoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: s.cfg.MinBackoff, Multiplier: 2, MaxInterval: s.cfg.MaxBackoff}
}

func (s *Stage) watchLag(ctx context.Context) {
	t := time.NewTicker(s.cfg.LagInterval)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.LagInterval)
		lag, err := s.cfg.Consumer.Lag(lctx)
		cancel()
		if err == nil {
			s.m.lag.Set(float64(lag))
		} else if ctx.Err() == nil {
			s.cfg.Logger.Debug("reading consumer lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drainContext is a context that outlives parent's cancellation by at most
// timeout.
func drainContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.AfterFunc(timeout, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}

// sleep waits d plus up to 20% jitter; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	d += time.Duration(rand.Int64N(int64(d)/5 + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// items sums the sluice-items headers of recs (records without one count 0).
func items(recs []*stream.Record) int64 {
	var n int64
	for _, r := range recs {
		n += recordItems(r)
	}
	return n
}

// recordItems is the sluice-items header of r, 0 when it has none.
func recordItems(r *stream.Record) int64 {
	if v := r.Header(stream.HeaderItems); v != nil {
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i
		}
	}
	return 0
}

// Metrics are the stage metrics of one process, labelled by stage.
type Metrics struct {
	records, items, handleErrors, commitErrors, pollErrors *prometheus.CounterVec
	handleSeconds                                          *prometheus.HistogramVec
	lag                                                    *prometheus.GaugeVec
	lost, holdExpired                                      *prometheus.CounterVec // by stage and topic
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	l := []string{"stage"}
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_stage_records_total",
			Help: "Records handed to the next stage and committed."}, l),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_stage_items_total",
			Help: "Datapoints, log records or spans in the committed records."}, l),
		handleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_stage_handle_errors_total",
			Help: "Failed attempts to hand a batch to the next stage (each is retried)."}, l),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_stage_commit_errors_total",
			Help: "Commits that failed after the next stage had the batch."}, l),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_stage_poll_errors_total",
			Help: "Failed polls of the bus."}, l),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_stage_handle_duration_seconds",
			Help: "Time to hand one batch to the next stage.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, l),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_consumer_lag_records",
			Help: "Records in the stage's topics that its consumer group has not committed."}, l),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bus_records_lost_total",
			Help: "Records the bus removed (retention, size limits) before the stage's consumer group read them."}, []string{"stage", "topic"}),
		holdExpired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_bus_records_hold_expired_total",
			Help: "Records the stage held uncommitted for longer than bus.max_hold (NATS, embedded; a stage that hangs): the bus delivers them again after ack_wait."}, []string{"stage", "topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.items, m.handleErrors, m.commitErrors, m.pollErrors, m.handleSeconds, m.lag, m.lost, m.holdExpired)
	}
	return m
}

type stageMetrics struct {
	records, items, handleErrors, commitErrors, pollErrors prometheus.Counter
	handleSeconds                                          prometheus.Observer
	lag                                                    prometheus.Gauge
}

func (m *Metrics) forStage(name string) stageMetrics {
	if m == nil {
		m = NewMetrics(nil)
	}
	return stageMetrics{
		records: m.records.WithLabelValues(name), items: m.items.WithLabelValues(name),
		handleErrors: m.handleErrors.WithLabelValues(name), commitErrors: m.commitErrors.WithLabelValues(name),
		pollErrors: m.pollErrors.WithLabelValues(name), handleSeconds: m.handleSeconds.WithLabelValues(name),
		lag: m.lag.WithLabelValues(name),
	}
}
