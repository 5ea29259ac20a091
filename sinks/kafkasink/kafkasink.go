// Package kafkasink is the `kafka` sink: every signal to topics of another
// Kafka cluster as OTLP protobuf Export*ServiceRequest values — what the
// OpenTelemetry Collector's kafka receiver reads with encoding otlp_proto.
// Default topics are the Collector kafka exporter's: otlp_metrics,
// otlp_logs, otlp_spans. One Kafka record per processed record (Arrow
// turned back into OTLP), cut along resource and scope boundaries into
// several when it is larger than max_record_bytes; the sluice-tenant header
// is copied. Produce waits for all in-sync replicas (idempotent producer,
// stream/kafka). A record with an item larger than max_record_bytes, or
// larger than the topic accepts, is dead-lettered; every other failure is
// retried.
package kafkasink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/kafka"
)

// DefaultTopics are the Collector kafka exporter's default topics.
var DefaultTopics = map[otlpwire.Signal]string{otlpwire.Metrics: "otlp_metrics", otlpwire.Logs: "otlp_logs", otlpwire.Traces: "otlp_spans"}

func init() {
	sinks.Register("kafka", func(entry *config.Sink, env sinks.Env) (sinks.Sink, error) {
		var cfg Config
		if err := entry.Decode(&cfg); err != nil {
			return nil, err
		}
		var errs []error
		if len(cfg.Brokers) == 0 {
			errs = append(errs, entry.Errorf("brokers", "the kafka sink needs brokers (host:port)"))
		}
		switch cfg.Compression {
		case "", "zstd", "lz4", "snappy", "gzip", "none":
		default:
			errs = append(errs, entry.Errorf("compression", "compression %q: want zstd, lz4, snappy, gzip or none", cfg.Compression))
		}
		switch cfg.Key {
		case "", "none", "tenant", "source":
		default:
			errs = append(errs, entry.Errorf("key", "key %q: want none, tenant or source", cfg.Key))
		}
		for name := range cfg.Topics {
			if _, err := otlpwire.ParseSignal(name); err != nil {
				errs = append(errs, entry.Errorf("topics."+name, "%v", err))
			}
		}
		if cfg.MaxRecordBytes != 0 && cfg.MaxRecordBytes < 1024 {
			errs = append(errs, entry.Errorf("max_record_bytes", "max_record_bytes must be at least 1KiB"))
		}
		if cfg.Topic != "" && len(cfg.Topics) > 0 {
			errs = append(errs, entry.Errorf("topics", "topic and topics are exclusive"))
		}
		if _, err := cfg.TLS.ClientConfig(); err != nil {
			errs = append(errs, entry.Errorf("tls", "%v", err))
		}
		if s := cfg.SASL; s != nil {
			if s.Password != "" && s.PasswordFile != "" {
				errs = append(errs, entry.Errorf("sasl.password_file", "password and password_file are exclusive"))
			} else if _, err := s.Secret(); err != nil {
				errs = append(errs, entry.Errorf("sasl.password_file", "%v", err))
			} else if _, err := mechanism(s); err != nil {
				errs = append(errs, entry.Errorf("sasl.mechanism", "%v", err))
			}
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		if cfg.ClientID == "" {
			cfg.ClientID = "sluice-sink-" + entry.Name
		}
		return New(cfg, entry.Name, env)
	})
}

// Config is the kafka sink's part of a sinks entry.
type Config struct {
	Brokers []string `yaml:"brokers"`
	// Topic receives every signal; Topics names one per signal (metrics,
	// logs, traces). Default DefaultTopics.
	Topic  string            `yaml:"topic"`
	Topics map[string]string `yaml:"topics"`
	// Key of the Kafka records: none (default: the producer spreads
	// records), tenant (the sluice-tenant), or source (the processed
	// record's own key: its partitioning is kept).
	Key         string `yaml:"key"`
	Compression string `yaml:"compression"` // zstd (default) | lz4 | snappy | gzip | none
	ClientID    string `yaml:"client_id"`   // default sluice-sink-<name>
	// MaxRecordBytes is the largest record produced (at most the topic's
	// max.message.bytes); larger ones are dead-lettered. Default 1MiB.
	MaxRecordBytes config.ByteSize `yaml:"max_record_bytes"`
	ProduceTimeout time.Duration   `yaml:"produce_timeout"` // default 10s
	TLS            *config.TLS     `yaml:"tls"`
	SASL           *config.SASL    `yaml:"sasl"`
	// CreateTopics creates missing topics at the first Write, with
	// Partitions partitions (default 6).
	CreateTopics bool  `yaml:"create_topics"`
	Partitions   int32 `yaml:"partitions"`
}

func mechanism(s *config.SASL) (sasl.Mechanism, error) {
	pass, err := s.Secret()
	if err != nil {
		return nil, err
	}
	switch s.Mechanism {
	case "PLAIN":
		return plain.Auth{User: s.Username, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// Sink produces OTLP protobuf to Kafka.
type Sink struct {
	cfg     Config
	bus     *kafka.Bus
	topics  [len(otlpwire.Signals)]string
	log     *slog.Logger
	metrics sinkmetrics.Sink
	created bool
	split   otlpwire.Splitter // of records larger than MaxRecordBytes
}

// New returns the sink of a checked config; name labels its metrics. It
// does not contact the brokers.
func New(cfg Config, name string, env sinks.Env) (*Sink, error) {
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	sm := sinkmetrics.New(env.Registerer)
	s := &Sink{cfg: cfg, log: env.Logger, metrics: sm.For(name)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if sm.Err != nil {
		s.log.Warn("some sink metrics are not registered", "err", sm.Err)
	}
	for _, sig := range otlpwire.Signals {
		switch {
		case cfg.Topic != "":
			s.topics[sig] = cfg.Topic
		case cfg.Topics[sig.String()] != "":
			s.topics[sig] = cfg.Topics[sig.String()]
		default:
			s.topics[sig] = DefaultTopics[sig]
		}
	}
	tlsCfg, err := cfg.TLS.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	var mech sasl.Mechanism
	if cfg.SASL != nil {
		if mech, err = mechanism(cfg.SASL); err != nil {
			return nil, fmt.Errorf("kafka sink: %w", err)
		}
	}
	s.bus, err = kafka.New(kafka.Config{Brokers: cfg.Brokers, ClientID: cfg.ClientID, Compression: cfg.Compression,
		ProduceTimeout: cfg.ProduceTimeout, MaxRecordBytes: int32(cfg.MaxRecordBytes), TLS: tlsCfg, SASL: mech,
		Logger: s.log.With("bus", "kafka-sink")})
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return s, nil
}

// Write produces one Kafka record per record and waits for all
// acknowledgements.
func (s *Sink) Write(ctx context.Context, recs []*stream.Record) error {
	if s.cfg.CreateTopics && !s.created {
		var specs []stream.TopicSpec
		for _, t := range s.topics {
			if !slices.ContainsFunc(specs, func(sp stream.TopicSpec) bool { return sp.Name == t }) {
				specs = append(specs, stream.TopicSpec{Name: t, Partitions: s.cfg.Partitions})
			}
		}
		if err := s.bus.EnsureTopics(ctx, specs...); err != nil {
			return fmt.Errorf("kafka sink: creating topics: %w", err)
		}
		s.created = true
	}
	var rejected []*stream.Record
	var reasons []string
	reject := func(r *stream.Record, reason string) {
		if !slices.Contains(rejected, r) { // a cut record may be refused in several parts
			rejected = append(rejected, r)
		}
		if !slices.Contains(reasons, reason) {
			reasons = append(reasons, reason)
		}
	}
	out := make([]*stream.Record, 0, len(recs))
	src := make([]*stream.Record, 0, len(recs))
	items := make([]int, 0, len(recs))
	for _, r := range recs {
		rec, n, err := s.convert(r)
		if err != nil {
			s.log.Warn("undecodable record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			reject(r, err.Error())
			continue
		}
		room := int(s.cfg.MaxRecordBytes) - rec.Overhead() - 64 // and the record batch's framing
		if len(rec.Value) <= room {
			out, src, items = append(out, rec), append(src, r), append(items, n)
			continue
		}
		// Cut along resource and scope boundaries, as the ingester cuts
		// requests: each part is a record of its own.
		sig, _ := sinks.SignalOf(r) // convert checked it
		res, err := s.split.Split(sig, rec.Value, otlpwire.Options{Key: otlpwire.KeyNone, MaxRecordBytes: room})
		if err != nil {
			reject(r, err.Error())
			continue
		}
		if res.Rejected > 0 {
			reject(r, "items larger than max_record_bytes even alone: "+res.RejectReason)
			s.metrics.Rejected.Add(float64(res.Rejected))
		}
		for _, c := range res.Chunks {
			part := *rec
			part.Value = bytes.Clone(c.Value) // the splitter's buffers are reused
			out, src, items = append(out, &part), append(src, r), append(items, c.Items)
		}
	}
	err := s.produce(ctx, out, items)
	if errors.Is(err, stream.ErrRecordTooLarge) {
		// The topic takes less than max_record_bytes: find the records.
		err = nil
		for i, rec := range out {
			e := s.produce(ctx, []*stream.Record{rec}, items[i:i+1])
			switch {
			case errors.Is(e, stream.ErrRecordTooLarge):
				s.metrics.Rejected.Add(float64(items[i]))
				reject(src[i], e.Error())
			case e != nil:
				return e
			}
		}
	}
	if err != nil {
		return err
	}
	if len(rejected) > 0 {
		return &sinks.RejectedError{Records: rejected, Reason: strings.Join(reasons, "; ")}
	}
	return nil
}

func (s *Sink) produce(ctx context.Context, out []*stream.Record, items []int) error {
	if len(out) == 0 {
		return nil
	}
	start := time.Now()
	err := s.bus.Produce(ctx, out...)
	s.metrics.Duration.Observe(time.Since(start).Seconds())
	code := "ok"
	switch {
	case errors.Is(err, stream.ErrRecordTooLarge):
		code = "too_large"
	case err != nil:
		code = "error"
	}
	s.metrics.Requests(code).Inc()
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	n := 0
	for _, i := range items {
		n += i
	}
	s.metrics.ItemsSent.Add(float64(n))
	return nil
}

// convert returns the Kafka record of r (a value of its own) and its item
// count.
func (s *Sink) convert(r *stream.Record) (*stream.Record, int, error) {
	sig, err := sinks.SignalOf(r)
	if err != nil {
		return nil, 0, err
	}
	if _, err := r.Tenant(); err != nil {
		return nil, 0, err
	}
	var value []byte
	n := 0
	switch ct := string(r.Header(stream.HeaderContentType)); ct {
	case stream.ContentTypeOTLPProto, "":
		value = r.Value
		fmt.Sscan(string(r.Header(stream.HeaderItems)), &n)
	case stream.ContentTypeArrow:
		if value, n, err = schemas.BatchToOTLP(r.Value, nil, arrowpool.Default); err != nil {
			return nil, 0, err
		}
	default:
		return nil, 0, fmt.Errorf("content type %q (valid: %s, %s)", ct, stream.ContentTypeOTLPProto, stream.ContentTypeArrow)
	}
	out := &stream.Record{Topic: s.topics[sig], Partition: -1, Value: value}
	if t := r.Header(stream.HeaderTenant); t != nil {
		out.Headers = append(out.Headers, stream.Header{Key: stream.HeaderTenant, Value: t})
	}
	switch s.cfg.Key {
	case "tenant":
		out.Key = r.Header(stream.HeaderTenant)
	case "source":
		out.Key = r.Key
	}
	return out, n, nil
}

// Close closes the producer.
func (s *Sink) Close() error { return s.bus.Close() }
