package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/nats"
)

// ToolBus is the bus as the operator's commands use it: a Bus that can
// also tap topics and describe topics and groups.
type ToolBus interface {
	stream.Bus
	stream.Tapper
	stream.Admin
}

// OpenToolBus opens the configured bus for an operator command (sluice
// tap, lag, topics) and creates no topic. Kafka and NATS: a client as the
// pipeline's. Embedded: a client of the running sluice's server at
// bus.embedded.listen when it answers there; else the data directory
// itself, which the embedded server locks while it has it open, so that
// this fails rather than open a store that a running sluice is writing.
// Without newStore, a data directory that holds no bus yet is an error
// (the wrong bus.data_dir, or a sluice running elsewhere) rather than a
// new, empty bus.
func OpenToolBus(cfg *config.Config, log *slog.Logger, newStore bool) (ToolBus, error) {
	var (
		bus stream.Bus
		err error
	)
	if e := cfg.Bus.Embedded; cfg.Bus.Kind == "embedded" && e.Listen != "" {
		url := "nats://" + localAddr(e.Listen)
		bus, err = nats.New(nats.Config{URL: url, Name: "sluice-tool", Token: e.Token, User: e.Username, Password: e.Password,
			PublishTimeout: cfg.Bus.ProduceTimeout, AckWait: cfg.Bus.AckWait, MaxHold: cfg.Bus.MaxHold, Logger: log.With("bus", "embedded")})
		if err == nil {
			return bus.(ToolBus), nil
		}
		if !errors.Is(err, stream.ErrUnavailable) {
			return nil, fmt.Errorf("connecting to the embedded bus at %s (bus.embedded.listen): %w", url, err)
		}
		log.Debug("no sluice answers at bus.embedded.listen; opening the data directory", "url", url, "err", err)
	}
	open := cfg
	if cfg.Bus.Kind == "embedded" {
		dir := filepath.Join(cfg.Bus.DataDir, "bus")
		if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil && !newStore {
			return nil, fmt.Errorf("%s: no embedded bus in %s (bus.data_dir): %w", cfg.File(), dir, err)
		}
		// The tool's own server opens no port: the listener is the
		// running sluice's to open.
		c := *cfg
		c.Bus.Embedded.Listen = ""
		open = &c
	}
	bus, err = connectBus(open, log, nil)
	switch {
	case errors.Is(err, nats.ErrDataDirInUse) && cfg.Bus.Embedded.Listen != "":
		return nil, fmt.Errorf("%w; the sluice running on it does not answer at bus.embedded.listen %s", err, cfg.Bus.Embedded.Listen)
	case errors.Is(err, nats.ErrDataDirInUse):
		return nil, fmt.Errorf("%w; a sluice is running on it: set bus.embedded.listen (and a token) in %s so that the tools can reach it", err, cfg.File())
	}
	if err != nil {
		return nil, err
	}
	return bus.(ToolBus), nil
}

// localAddr makes a listen address one to dial: a listener on every
// interface is reached on the loopback one.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Group is a consumer group of the pipeline.
type Group struct {
	Role   string // worker, aggregator or sink <name>
	Name   string
	Topics []string
}

// Groups are the consumer groups the configured pipeline runs: the
// workers' on the raw topics, the aggregators' on the aggregation topic
// (with worker.aggregator) and each sink's on the processed topics of its
// signals.
func Groups(cfg *config.Config) ([]Group, error) {
	t := stream.Topics{Prefix: cfg.Bus.TopicPrefix}
	var raw []string
	for _, s := range otlpwire.Signals {
		raw = append(raw, t.Raw(s))
	}
	out := []Group{{Role: "worker", Name: cfg.Worker.Group, Topics: raw}}
	if cfg.Worker.Aggregator {
		out = append(out, Group{Role: "aggregator", Name: aggregatorGroup(cfg), Topics: []string{t.Aggregate()}})
	}
	for i := range cfg.Sinks {
		e := &cfg.Sinks[i]
		topics, err := sinks.Topics(e, t)
		if err != nil {
			return nil, fmt.Errorf("%s: sink %s: %w", cfg.File(), e.Name, err)
		}
		out = append(out, Group{Role: "sink " + e.Name, Name: sinks.Group(e), Topics: topics})
	}
	return out, nil
}
