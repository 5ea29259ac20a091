package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
	"github.com/sluice-dev/sluice/stream/nats"
)

// OpenBus connects to (or, for kind embedded, starts) the configured bus and
// creates the pipeline's topics that do not exist yet.
func OpenBus(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (stream.Bus, error) {
	bus, err := connectBus(cfg, log, reg)
	if err != nil {
		return nil, err
	}
	if err := bus.EnsureTopics(ctx, TopicSpecs(cfg)...); err != nil {
		bus.Close()
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	return bus, nil
}

// connectBus connects to (or starts) the configured bus.
func connectBus(cfg *config.Config, log *slog.Logger, reg prometheus.Registerer) (stream.Bus, error) {
	b := cfg.Bus
	var (
		bus stream.Bus
		err error
	)
	switch b.Kind {
	case "embedded":
		e := b.Embedded
		syncAlways, syncInterval, serr := e.SyncPolicy()
		if serr != nil {
			return nil, cfg.Errorf("bus.embedded.sync", "%v", serr)
		}
		if e.Listen != "" && e.Token == "" && e.Username == "" {
			log.Warn("the embedded NATS listener accepts clients without credentials: anyone on this machine can read and write every tenant's records; set bus.embedded.token", "listen", e.Listen)
		}
		var nb *nats.Bus
		nb, err = nats.NewEmbedded(nats.EmbeddedConfig{
			DataDir:      filepath.Join(b.DataDir, "bus"),
			Listen:       e.Listen,
			MaxStore:     int64(e.MaxStore),
			MaxPayload:   int32(b.MaxRecordBytes),
			SyncAlways:   syncAlways,
			SyncInterval: syncInterval,
			Registerer:   reg,
		}, nats.Config{Name: "sluice", Token: e.Token, User: e.Username, Password: e.Password,
			PublishTimeout: b.ProduceTimeout, AckWait: b.AckWait, MaxHold: b.MaxHold, Logger: log.With("bus", "embedded")})
		if err == nil && b.Embedded.Listen != "" {
			log.Info("embedded NATS server listening", "url", nb.ClientURL())
		}
		bus = nb
	case "nats":
		var tlsCfg *tls.Config
		if tlsCfg, err = b.NATS.TLS.ClientConfig(); err != nil {
			return nil, cfg.Errorf("bus.nats.tls", "%v", err)
		}
		bus, err = nats.New(nats.Config{URL: b.NATS.URL, Name: "sluice", CredentialsFile: b.NATS.CredsFile, Token: b.NATS.Token,
			User: b.NATS.Username, Password: b.NATS.Password, TLS: tlsCfg, PublishTimeout: b.ProduceTimeout, AckWait: b.AckWait, MaxHold: b.MaxHold, Replicas: b.NATS.Replicas, Logger: log.With("bus", "nats")})
	case "kafka":
		k := b.Kafka
		var tlsCfg *tls.Config
		if tlsCfg, err = k.TLS.ClientConfig(); err != nil {
			return nil, cfg.Errorf("bus.kafka.tls", "%v", err)
		}
		var mech sasl.Mechanism
		if k.SASL != nil {
			pass, err := k.SASL.Secret()
			if err != nil {
				return nil, cfg.Errorf("bus.kafka.sasl.password_file", "%v", err)
			}
			switch k.SASL.Mechanism {
			case "PLAIN":
				mech = plain.Auth{User: k.SASL.Username, Pass: pass}.AsMechanism()
			case "SCRAM-SHA-256":
				mech = scram.Auth{User: k.SASL.Username, Pass: pass}.AsSha256Mechanism()
			case "SCRAM-SHA-512":
				mech = scram.Auth{User: k.SASL.Username, Pass: pass}.AsSha512Mechanism()
			}
		}
		bus, err = kafka.New(kafka.Config{Brokers: k.Brokers, ClientID: k.ClientID, Compression: k.Compression, CompressionLevel: k.CompressionLevel,
			SmallBatchBytes: int(k.SmallBatchBytes), ZstdRawLiterals: k.ZstdRawLiterals, ProduceTimeout: b.ProduceTimeout, MaxRecordBytes: int32(b.MaxRecordBytes), ReplicationFactor: k.ReplicationFactor, MinInsyncReplicas: k.MinInsyncReplicas, SessionTimeout: k.SessionTimeout,
			TLS: tlsCfg, SASL: mech, Logger: log.With("bus", "kafka"), Registerer: reg})
	default:
		return nil, cfg.Errorf("bus.kind", "unknown bus kind %q", b.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the %s bus: %w", b.Kind, err)
	}
	return bus, nil
}

// Topics names the pipeline's topics: those under bus.topic_prefix, and
// the raw topics of worker.raw_topics.
func Topics(cfg *config.Config) stream.Topics {
	t := stream.Topics{Prefix: cfg.Bus.TopicPrefix}
	for name, topic := range cfg.Worker.RawTopics {
		if sig, err := otlpwire.ParseSignal(name); err == nil { // Validate refused others
			t.RawNames[sig] = topic
		}
	}
	return t
}

// checkRawTopics fails when a raw topic of worker.raw_topics does not
// exist (sluice creates it only with worker.create_raw_topics): the worker
// would wait on it for ever, and the ingesters could not write to it.
func checkRawTopics(cfg *config.Config, bus stream.Bus) error {
	t := Topics(cfg)
	var errs []error
	for _, s := range otlpwire.Signals {
		if t.External(s) && bus.Partitions(t.Raw(s)) <= 0 {
			errs = append(errs, cfg.Errorf("worker.raw_topics."+s.String(),
				"raw topic %q does not exist on the bus (no partitions found): create it (as the agents' Kafka exporter expects it), or set worker.create_raw_topics: true to have sluice create it", t.Raw(s)))
		}
	}
	return errors.Join(errs...)
}

// deadLetterSpec is the dead-letter topic's entry of TopicSpecs.
func deadLetterSpec(cfg *config.Config) stream.TopicSpec {
	dlq := stream.Topics{Prefix: cfg.Bus.TopicPrefix}.DLQ()
	for _, s := range TopicSpecs(cfg) {
		if s.Name == dlq {
			return s
		}
	}
	return stream.TopicSpec{}
}

// TopicSpecs are the topics sluice creates: raw (but for the agents' topics
// of worker.raw_topics, unless worker.create_raw_topics) and processed per
// signal, the dead-letter topic and the aggregation topic. Topics that
// exist are left as they are.
func TopicSpecs(cfg *config.Config) []stream.TopicSpec {
	t := Topics(cfg)
	spec := func(name string) stream.TopicSpec {
		return stream.TopicSpec{Name: name, Partitions: cfg.Bus.Partitions, Retention: cfg.Bus.Retention, MaxRecordBytes: int32(cfg.Bus.MaxRecordBytes)}
	}
	var out []stream.TopicSpec
	for _, s := range otlpwire.Signals {
		if !t.External(s) || cfg.Worker.CreateRawTopics {
			out = append(out, spec(t.Raw(s)))
		}
		out = append(out, spec(t.Processed(s)))
	}
	dlq := spec(t.DLQ())
	dlq.MaxRecordBytes = int32(cfg.DeadLetterMaxBytes())
	return append(out, dlq, spec(t.Aggregate()))
}

// OpenReplayBus opens the bus for sluice replay, which runs beside the
// pipeline: as OpenToolBus does (the running sluice's server at
// bus.embedded.listen, else the embedded bus's files while no sluice has
// them), with the pipeline's topics there.
func OpenReplayBus(ctx context.Context, cfg *config.Config, log *slog.Logger) (stream.Bus, error) {
	bus, err := OpenToolBus(cfg, log, false)
	if err != nil {
		return nil, err
	}
	if err := bus.EnsureTopics(ctx, TopicSpecs(cfg)...); err != nil {
		bus.Close()
		return nil, fmt.Errorf("reading topics: %w", err)
	}
	return bus, nil
}
