package nats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Bus. New uses every field; NewEmbedded ignores URL,
// CredentialsFile and TLS (it connects in process).
type Config struct {
	// URL of the server, e.g. nats://nats:4222; several comma-separated
	// URLs of one cluster are allowed.
	URL string
	// Name identifies the connection in the server's monitoring.
	Name string

	// CredentialsFile is a NATS .creds file (user JWT and NKey seed).
	CredentialsFile string
	// Token, or User and Password, authenticate without a creds file.
	// With NewEmbedded they also protect the embedded server's listener.
	Token    string
	User     string
	Password string
	TLS      *tls.Config

	// PublishTimeout bounds Produce, and Commit and the JetStream API
	// calls (EnsureTopics, Consume, Lag, Ping) when their context has no
	// deadline. Default 10s.
	PublishTimeout time.Duration
	// Logger receives connection events and, with NewEmbedded, the
	// server's log. Nil discards them.
	Logger *slog.Logger

	// MaxAckPending caps the records of one topic that a group holds
	// polled but not committed, over all its members; JetStream stops
	// delivering to the group until some are committed. Default 10000.
	MaxAckPending int
	// AckWait is how long a polled record may stay uncommitted before
	// JetStream delivers it again (to any member of the group). It must be
	// longer than the processing of one batch. Default 30s.
	AckWait time.Duration
	// MaxHold bounds how long a member keeps the records it polled and
	// did not commit: until then it sends in-progress acks every AckWait/3
	// so that a batch a stage retries (a sink whose destination is down)
	// is not delivered to another member meanwhile; after it, it stops
	// them and JetStream delivers the records again after AckWait, so
	// that a stage that hangs (neither commits nor fails) does not keep
	// them forever. At least AckWait. Default 10m, or 2 × AckWait when
	// that is longer.
	MaxHold time.Duration
	// Replicas of the streams EnsureTopics creates (1, 3 or 5 in a
	// cluster). Default 1.
	Replicas int
}

// EmbeddedConfig configures the NATS server that NewEmbedded starts inside
// the process.
type EmbeddedConfig struct {
	// DataDir holds the JetStream files (under DataDir/jetstream); records
	// and group positions survive a restart of the process. Required.
	DataDir string
	// Listen is the host:port of a client listener for other processes
	// (plain TCP, guarded by Config.Token or User/Password if set);
	// ":0" picks a free port. Empty: no listener, in-process only.
	Listen string
	// MaxStore caps the bytes JetStream may keep on disk; 0 lets the
	// server choose (a share of the free disk space).
	MaxStore int64
	// MaxPayload is the largest message the server accepts, headers
	// included; 0 keeps the server default (1 MiB). Topics'
	// MaxRecordBytes cannot exceed it.
	MaxPayload int32
	// SyncAlways makes JetStream fsync every write before it acknowledges
	// it. Otherwise it syncs every SyncInterval (0: the server's default,
	// 2 minutes): a crash of the process loses nothing, a power loss or
	// kernel crash may lose the records of the last interval.
	SyncAlways   bool
	SyncInterval time.Duration
	// Registerer, when set, receives gauges of how full the JetStream
	// store is (sluice_bus_store_used_bytes, sluice_bus_store_limit_bytes,
	// sluice_bus_stream_bytes{stream}), read from the server at each
	// scrape, and sluice_bus_positions_reset_total{stream,consumer}, the
	// groups found at start elsewhere than the last clean stop left them
	// (positions.go); Bus.Close unregisters them.
	Registerer prometheus.Registerer
}

const (
	defaultPublishTimeout = 10 * time.Second
	defaultMaxAckPending  = 10000
	defaultAckWait        = 30 * time.Second
	defaultMaxHold        = 10 * time.Minute
	defaultMaxPollRecords = 500
	readyTimeout          = 10 * time.Second
)

// withDefaults returns c with the zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = defaultPublishTimeout
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = defaultMaxAckPending
	}
	if c.AckWait <= 0 {
		c.AckWait = defaultAckWait
	}
	if c.MaxHold == 0 {
		c.MaxHold = max(defaultMaxHold, 2*c.AckWait)
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.Token != "" && (c.User != "" || c.Password != "") {
		errs = append(errs, errors.New("set either token or user and password, not both"))
	}
	if c.MaxAckPending < -1 {
		errs = append(errs, errors.New("max ack pending must be positive or -1 (unlimited)"))
	}
	if c.MaxHold < c.AckWait {
		errs = append(errs, fmt.Errorf("max hold (%s) must be at least ack wait (%s)", c.MaxHold, c.AckWait))
	}
	return errors.Join(errs...)
}
