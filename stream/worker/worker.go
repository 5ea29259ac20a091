// Package worker moves records from the raw topics to the processed topics.
// It consumes every raw topic of the configured signals as one member of a
// consumer group (any number of workers share the partitions), processes a
// batch, produces the result and commits the raw positions only after the
// bus acknowledged the processed records.
//
// Until the rule engine lands, processing passes every record through
// unchanged: same value, key, partition and headers.
package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/stage"
)

// Config configures a Worker.
type Config struct {
	Topics  stream.Topics
	Signals []stream.Signal // default: all
	Group   string          // consumer group, default "sluice-worker"
	// Start is where a new group begins reading; default the earliest
	// retained record.
	Start          stream.Start
	MaxPollRecords int
	Logger         *slog.Logger
	Metrics        *stage.Metrics
}

// Worker is one member of the worker group.
type Worker struct {
	cfg   Config
	bus   stream.Bus
	stage *stage.Stage
	// rawToProcessed maps each consumed topic to its output topic.
	rawToProcessed map[string]string
}

// New joins the worker group on bus.
func New(bus stream.Bus, cfg Config) (*Worker, error) {
	if len(cfg.Signals) == 0 {
		cfg.Signals = stream.Signals[:]
	}
	if cfg.Group == "" {
		cfg.Group = "sluice-worker"
	}
	w := &Worker{cfg: cfg, bus: bus, rawToProcessed: map[string]string{}}
	topics := make([]string, 0, len(cfg.Signals))
	for _, s := range cfg.Signals {
		raw := cfg.Topics.Raw(s)
		topics = append(topics, raw)
		w.rawToProcessed[raw] = cfg.Topics.Processed(s)
	}
	c, err := bus.Consume(stream.ConsumerConfig{Group: cfg.Group, Topics: topics, Start: cfg.Start, MaxPollRecords: cfg.MaxPollRecords})
	if err != nil {
		return nil, fmt.Errorf("worker: joining group %s: %w", cfg.Group, err)
	}
	w.stage, err = stage.New(stage.Config{Name: "worker", Consumer: c, Handle: w.handle, Logger: cfg.Logger, Metrics: cfg.Metrics})
	if err != nil {
		c.Close()
		return nil, err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info("the rule engine is not in this build yet: the worker passes records through unchanged")
	}
	return w, nil
}

// Run processes until ctx is cancelled, then finishes the batch in hand,
// commits and leaves the group.
func (w *Worker) Run(ctx context.Context) error { return w.stage.Run(ctx) }

func (w *Worker) handle(ctx context.Context, recs []*stream.Record) error {
	out := make([]*stream.Record, len(recs))
	outs := make([]stream.Record, len(recs))
	for i, r := range recs {
		topic, ok := w.rawToProcessed[r.Topic]
		if !ok {
			return fmt.Errorf("worker: record from unexpected topic %s", r.Topic)
		}
		outs[i] = stream.Record{Topic: topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
		if w.bus.Partitions(topic) <= r.Partition {
			outs[i].Partition = -1 // processed topic has fewer partitions: let the key decide
		}
		out[i] = &outs[i]
	}
	return w.bus.Produce(ctx, out...)
}
