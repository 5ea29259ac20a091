// Package status serves sluice's status page on the admin address: the
// pipeline as this process runs it, for the operator on call.
//
//	/, /status       the page: server-rendered HTML that a little
//	                 JavaScript refreshes from /api/v1/status every few
//	                 seconds; no outside assets, it works offline
//	/api/v1/status   the same numbers as JSON
//
// Every number comes from the process's own Prometheus registry: a
// Server gathers it every Interval into a small ring of samples and
// computes the rates over the last 10 seconds and minute from them, while
// totals and gauges are those of a gathering made for the request, so
// they are what /metrics says at that moment. The last dead letters come
// from the stages themselves (DeadLetters.Hook, a stream.DeadLetterHook),
// not from a second read of the dead-letter topic.
//
// The page shows names (stages, topics, groups, sinks, rules, tenants,
// metrics and labels) and numbers; it never shows config values, which
// may hold secrets (bus credentials, sink URLs and headers).
package status

import (
	"context"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/stream/cardinality"
)

// The kinds of stage.
const (
	KindIngest     = "ingest"
	KindWorker     = "worker"
	KindAggregator = "aggregator"
	KindSink       = "sink"
)

// Stage is one role of the process, as the page describes it.
type Stage struct {
	// Name is the stage's name in the metrics' stage label: ingest,
	// worker, aggregator, sink/<name>.
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Detail string   `json:"detail,omitempty"` // a sink's type and signals
	Group  string   `json:"group,omitempty"`  // its consumer group
	Reads  []string `json:"reads,omitempty"`  // topics
	Writes []string `json:"writes,omitempty"` // topics, or a sink's destination type
}

// Pipeline is what the process runs.
type Pipeline struct {
	Version string
	// Started is when the process started; default when New is called.
	Started     time.Time
	Bus         string // kind: embedded, nats, kafka
	TopicPrefix string
	// DeadLetterTopic is where the dead letters are.
	DeadLetterTopic string
	Stages          []Stage
}

// Options configure a Server.
type Options struct {
	Gatherer prometheus.Gatherer
	Pipeline Pipeline
	// Failing returns the failing readiness checks, as /readyz reports
	// them (admin.Server.Failing); nil: always ready.
	Failing func(context.Context) []string
	// Cardinality, when set, is the worker's cardinality tracker.
	Cardinality *cardinality.Tracker
	// DeadLetters holds the last dead letters; nil: none shown.
	DeadLetters *DeadLetters
	// Interval is how often the registry is sampled for rates; default 2s.
	Interval time.Duration
	Logger   *slog.Logger
}

// Server computes and serves the status.
type Server struct {
	opts    Options
	started time.Time
	hist    history
}

// The windows of the rates.
const (
	shortWindow = 10 * time.Second
	longWindow  = time.Minute
)

// New returns a Server; Run samples the registry.
func New(opts Options) *Server {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DeadLetters == nil {
		opts.DeadLetters = NewDeadLetters(0)
	}
	s := &Server{opts: opts, started: opts.Pipeline.Started}
	if s.started.IsZero() {
		s.started = time.Now()
	}
	// Enough samples to reach a minute back, and one more.
	s.hist.max = int(longWindow/opts.Interval) + 2
	return s
}

// Run samples the registry every Interval until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.sample(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sample(now time.Time) (sample, error) {
	mfs, err := s.opts.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		s.opts.Logger.Warn("status: gathering the metrics", "err", err)
		return sample{}, err
	}
	smp := extract(now, mfs, s.opts.Pipeline.Stages)
	s.hist.add(smp)
	return smp, nil
}

// Number is a counter's total and its rates per second over the last 10
// seconds and minute (nil until the process has sampled that long).
type Number struct {
	Total   float64  `json:"total"`
	Rate10s *float64 `json:"rate_10s"`
	Rate1m  *float64 `json:"rate_1m"`
}

// StageStatus is a stage and its numbers.
type StageStatus struct {
	Stage
	// Numbers: in, out, errors, dead_letters (those the stage has).
	Numbers map[string]Number `json:"numbers"`
	// Lag is sluice_consumer_lag_records of the stage; nil when the stage
	// consumes nothing or has not reported it yet.
	Lag *float64 `json:"lag"`
	// Sources name the metrics behind each number, in PromQL.
	Sources map[string]string `json:"sources"`
}

// RuleStatus is a rule's counters.
type RuleStatus struct {
	Rule    string `json:"rule"`
	Signal  string `json:"signal"`
	File    string `json:"file"`
	Matched Number `json:"matched"`
	Dropped Number `json:"dropped"`
	Changed Number `json:"changed"`
	Errors  Number `json:"errors"`
}

// Status is what /api/v1/status serves and the page shows.
type Status struct {
	Version       string    `json:"version"`
	Now           time.Time `json:"now"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Ready         bool      `json:"ready"`
	// NotReady are the failing readiness checks, as /readyz says them.
	NotReady        []string      `json:"not_ready"`
	Bus             string        `json:"bus"`
	TopicPrefix     string        `json:"topic_prefix"`
	DeadLetterTopic string        `json:"dead_letter_topic"`
	Stages          []StageStatus `json:"stages"`
	Rules           []RuleStatus  `json:"rules"`
	// Cardinality is the worker's report (top metrics and labels per
	// tenant); nil without a worker tracking cardinality.
	Cardinality *cardinality.Report `json:"cardinality"`
	DeadLetters []DeadLetter        `json:"dead_letters"`
	// DeadLettersSeen counts the dead letters since the start; the page
	// keeps the last few.
	DeadLettersSeen uint64 `json:"dead_letters_seen"`
}

// cardinalityTop bounds the metrics per tenant, and labels per metric, of
// the page's cardinality view.
const cardinalityTop = 10

// Status gathers the registry now and computes the status.
func (s *Server) Status(ctx context.Context) (*Status, error) {
	now := time.Now()
	mfs, err := s.opts.Gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return nil, err
	}
	cur := extract(now, mfs, s.opts.Pipeline.Stages)
	short, okShort := s.hist.since(now, shortWindow, s.opts.Interval)
	long, okLong := s.hist.since(now, longWindow, s.opts.Interval)
	number := func(v float64, old func(sample) float64) Number {
		n := Number{Total: v}
		if okShort {
			r := rate(v, old(short), now.Sub(short.t))
			n.Rate10s = &r
		}
		if okLong {
			r := rate(v, old(long), now.Sub(long.t))
			n.Rate1m = &r
		}
		return n
	}

	st := &Status{Version: s.opts.Pipeline.Version, Now: now, Started: s.started, UptimeSeconds: now.Sub(s.started).Seconds(),
		Bus: s.opts.Pipeline.Bus, TopicPrefix: s.opts.Pipeline.TopicPrefix, DeadLetterTopic: s.opts.Pipeline.DeadLetterTopic, Stages: []StageStatus{}, Rules: []RuleStatus{}, NotReady: []string{}}
	if s.opts.Failing != nil {
		st.NotReady = append(st.NotReady, s.opts.Failing(ctx)...)
	}
	st.Ready = len(st.NotReady) == 0
	for _, stg := range s.opts.Pipeline.Stages {
		ss := StageStatus{Stage: stg, Numbers: map[string]Number{}, Sources: map[string]string{}}
		for _, q := range quantities(stg.Kind, stg.Name) {
			k := stageKey(stg.Name, q.name)
			ss.Sources[q.name] = q.source()
			if q.name == "lag" {
				if cur.has[k] {
					v := cur.stages[k]
					ss.Lag = &v
				}
				continue
			}
			ss.Numbers[q.name] = number(cur.stages[k], func(o sample) float64 { return o.stages[k] })
		}
		st.Stages = append(st.Stages, ss)
	}
	for k, v := range cur.rules {
		at := func(i int) Number {
			return number(v[i], func(o sample) float64 { return o.rules[k][i] })
		}
		st.Rules = append(st.Rules, RuleStatus{Rule: k.rule, Signal: k.signal, File: k.file,
			Matched: at(0), Dropped: at(1), Changed: at(2), Errors: at(3)})
	}
	sort.Slice(st.Rules, func(i, j int) bool {
		a, b := st.Rules[i], st.Rules[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Signal != b.Signal {
			return a.Signal < b.Signal
		}
		return a.Rule < b.Rule
	})
	if s.opts.Cardinality != nil {
		rep := s.opts.Cardinality.Report("", cardinalityTop, now)
		st.Cardinality = &rep
	}
	st.DeadLetters, st.DeadLettersSeen = s.opts.DeadLetters.Last()
	return st, nil
}
