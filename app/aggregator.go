package app

import (
	"context"
	"fmt"

	"github.com/sluice-dev/sluice/app/status"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/stage"
	"github.com/sluice-dev/sluice/stream/worker"
)

// startAggregator runs a member of the aggregator group beside the worker:
// it merges the points the rules collapsed (stream/worker.Aggregator), so
// that every worker process also takes its share of the aggregation
// topic's partitions. It returns what the status page shows of it. Its
// group is aggregatorGroup.
func (p *Process) startAggregator(ctx, runCtx context.Context, topics stream.Topics, m *stage.Metrics) (status.Stage, *worker.Aggregator, error) {
	group := aggregatorGroup(p.cfg)
	a, err := worker.NewAggregator(ctx, p.bus, worker.AggregatorConfig{Topics: topics, Group: group,
		MaxRecordBytes: int(p.cfg.Bus.MaxRecordBytes), MaxPollRecords: p.cfg.Worker.MaxPollRecords, MaxPollBytes: int(p.cfg.Worker.MaxPollBytes),
		Logger: p.log, Metrics: m, Registerer: p.reg, OnDeadLetters: p.deadLetters.Hook})
	if err != nil {
		return status.Stage{}, nil, fmt.Errorf("aggregator: %w", err)
	}
	p.run(&p.workerWG, "aggregator", func() error { return a.Run(runCtx) })
	p.log.Info("aggregator started", "group", group)
	if p.cfg.Bus.Kind == "nats" {
		p.log.Warn("aggregator on a NATS bus: JetStream gives every member every partition, so run it in one process only (worker.aggregator: false in the others)", "group", group)
	}
	return status.Stage{Name: "aggregator", Kind: status.KindAggregator, Group: group, Reads: []string{topics.Aggregate()},
		Writes: []string{topics.Processed(otlpwire.Metrics), topics.DLQ()}}, a, nil
}

// aggregatorGroup is the aggregators' consumer group: the worker group's
// name with ".aggregate" appended.
func aggregatorGroup(cfg *config.Config) string { return cfg.Worker.Group + ".aggregate" }
