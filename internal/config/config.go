// Package config reads sluice's YAML configuration: strict decoding (an
// unknown key is an error), defaults in one place (Default), and one
// Validate for rules that span fields. Every error names the file, line,
// column and key.
package config

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-dev/sluice/internal/tenant"
)

// Config is the whole configuration file.
type Config struct {
	Bus    Bus    `yaml:"bus"`
	Ingest Ingest `yaml:"ingest"`
	Worker Worker `yaml:"worker"`
	Admin  Admin  `yaml:"admin"`
	Rules  Rules  `yaml:"rules"`
	Sinks  []Sink `yaml:"sinks"`
	Log    Log    `yaml:"log"`
	// MemoryLimit is a soft limit on the memory of the process's Go
	// runtime (debug.SetMemoryLimit): near it the garbage collector runs
	// more often instead of letting the heap grow to twice what is live.
	// Auto (the default) gives a process that runs the worker without the
	// ingester 192MiB, one that runs only sinks 96MiB, and leaves a
	// process with the ingester (whose in-flight bytes have bounds of
	// their own) to the runtime's default; a size sets it whatever the
	// roles, 0 leaves the default. GOMEMLIMIT in the environment wins.
	// Auto in a process with an aggregator grows the limit by twice the
	// aggregation state beyond AutoStateAllowance. Raise a size when the
	// cardinality tracker or a sink's series cache hold more: with the
	// live heap above it the collector takes up to half the CPU.
	MemoryLimit MemoryLimit `yaml:"memory_limit"`

	file string
	root *yaml.Node
}

// Bus selects and configures the message bus.
type Bus struct {
	Kind           string        `yaml:"kind"` // embedded | nats | kafka
	DataDir        string        `yaml:"data_dir"`
	TopicPrefix    string        `yaml:"topic_prefix"`
	Partitions     int32         `yaml:"partitions"`
	Retention      time.Duration `yaml:"retention"`
	MaxRecordBytes ByteSize      `yaml:"max_record_bytes"`
	ProduceTimeout time.Duration `yaml:"produce_timeout"`
	// AckWait (NATS and embedded) is how long a polled record may stay
	// uncommitted before JetStream hands it out again, e.g. after a
	// crash. It must exceed the time one batch takes. Default 30s.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxHold (NATS and embedded) bounds how long a stage keeps a batch
	// it polled and did not commit (a sink retrying a destination that is
	// down): after it, the records are delivered again after ack_wait, to
	// any member of the group, so that a stage that hangs does not keep
	// them forever. At least ack_wait. 0: 10m, or 2 × ack_wait when that
	// is longer.
	MaxHold  time.Duration `yaml:"max_hold"`
	Kafka    Kafka         `yaml:"kafka"`
	NATS     NATS          `yaml:"nats"`
	Embedded Embedded      `yaml:"embedded"`
}

// Kafka configures the Kafka bus.
type Kafka struct {
	Brokers     []string `yaml:"brokers"`
	ClientID    string   `yaml:"client_id"`
	Compression string   `yaml:"compression"` // zstd | lz4 | snappy | gzip | none
	// CompressionLevel is the codec's level, 0 its default (zstd 1):
	// zstd 1-4, gzip 1-9, lz4 1-9 (0: its fast mode); snappy and none
	// have none.
	CompressionLevel int `yaml:"compression_level"`
	// SmallBatchBytes: with zstd or gzip, a batch (one partition's records
	// in one produce request) smaller than this is compressed with snappy,
	// which is 8-12x faster on small batches for ~25% more bytes. Default
	// 16KiB (0 too); -1: every batch with compression.
	SmallBatchBytes SignedByteSize `yaml:"small_batch_bytes"`
	// ZstdRawLiterals: with zstd, literals are stored as they are, not
	// Huffman-coded: ~20% more bytes on the bus for 30-40% less CPU to
	// decompress and ~20% less to compress (README, "Compression of the
	// raw topics").
	ZstdRawLiterals   bool  `yaml:"zstd_raw_literals"`
	ReplicationFactor int16 `yaml:"replication_factor"`
	// MinInsyncReplicas is min.insync.replicas of the topics sluice
	// creates: with fewer replicas in sync, produces fail (and the
	// ingester answers "retry") instead of resting on fewer copies. 0:
	// the brokers' default. At most ReplicationFactor when both are set.
	MinInsyncReplicas int16 `yaml:"min_insync_replicas"`
	// SessionTimeout is how long a group waits for a member that stopped
	// answering (a crashed worker or sink) before its partitions move to
	// the others. 0 keeps the client default (45s).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	TLS            *TLS          `yaml:"tls"`
	SASL           *SASL         `yaml:"sasl"`
}

// SASL configures Kafka authentication.
type SASL struct {
	Mechanism string `yaml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	// PasswordFile, instead of Password, names a file holding the password
	// (a mounted Kubernetes Secret, so that the config holds no secret).
	// It is read at start; one trailing newline is not part of it.
	PasswordFile string `yaml:"password_file"`
}

// Secret is the password: Password, or the content of PasswordFile.
func (s *SASL) Secret() (string, error) {
	if s.PasswordFile == "" {
		return s.Password, nil
	}
	return ReadSecretFile(s.PasswordFile)
}

// ReadSecretFile reads a secret kept in a file of its own (a mounted
// Secret): its content without one trailing newline. An empty file is an
// error.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("%s: empty", path)
	}
	return string(b), nil
}

// NATS configures a remote NATS JetStream bus.
type NATS struct {
	URL       string `yaml:"url"`
	CredsFile string `yaml:"creds_file"`
	Token     string `yaml:"token"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	TLS       *TLS   `yaml:"tls"`
	// Replicas of the streams sluice creates (1..5; a cluster needs at
	// least as many servers). Default 1. Existing streams keep theirs.
	Replicas int `yaml:"replicas"`
}

// Embedded configures the NATS server sluice runs inside its own process.
type Embedded struct {
	// Listen, when set, also serves NATS clients on this address (for
	// inspection with the nats CLI); empty keeps the server in-process.
	Listen   string   `yaml:"listen"`
	MaxStore ByteSize `yaml:"max_store"`
	// Token, or Username and Password, are required of every client of
	// the listener (sluice itself connects in process). A listener on a
	// non-loopback address must have them.
	Token    string `yaml:"token"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Sync is when JetStream fsyncs its files: "always" (every write,
	// before the ack) or an interval. Default 1s.
	Sync string `yaml:"sync"`
}

// SyncPolicy parses Sync: always, or the interval between fsyncs.
func (e Embedded) SyncPolicy() (always bool, interval time.Duration, err error) {
	if e.Sync == "always" {
		return true, 0, nil
	}
	d, err := time.ParseDuration(e.Sync)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("sync %q: want always or a positive interval such as 1s", e.Sync)
	}
	return false, d, nil
}

// LoopbackListen reports whether a listen address only accepts
// connections from this machine (a loopback IP or localhost).
func LoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLS configures a client or server TLS connection.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ClientConfig builds the TLS configuration of a client; nil when t is nil.
func (t *TLS) ClientConfig() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	out := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificates found", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// Ingest configures the OTLP receivers.
type Ingest struct {
	GRPCListen       string            `yaml:"grpc_listen"`
	HTTPListen       string            `yaml:"http_listen"`
	MaxRequestBytes  ByteSize          `yaml:"max_request_bytes"`
	MaxInflightBytes ByteSize          `yaml:"max_inflight_bytes"`
	RetryAfter       time.Duration     `yaml:"retry_after"`
	PartitionKey     map[string]string `yaml:"partition_key"` // signal → resource | trace_id | none
	TokensFile       string            `yaml:"tokens_file"`
	TLS              *TLS              `yaml:"tls"`
	DefaultTenant    string            `yaml:"default_tenant"`
	// TrustTenantHeader honours X-Scope-OrgID without tokens_file (or
	// with a token of the one-per-line format): for a trusted gateway in
	// front that sets it. Default false: such requests are default_tenant.
	TrustTenantHeader bool `yaml:"trust_tenant_header"`
	// ReloadInterval is how often tokens_file and the TLS files are
	// checked for changes (SIGHUP reloads them at once). Default 10s.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	GRPC           IngestGRPC    `yaml:"grpc"`
	HTTP           IngestHTTP    `yaml:"http"`
}

// IngestGRPC bounds what one OTLP/gRPC client may hold.
type IngestGRPC struct {
	MaxConcurrentStreams  uint32        `yaml:"max_concurrent_streams"`
	KeepaliveMinTime      time.Duration `yaml:"keepalive_min_time"`
	MaxConnectionIdle     time.Duration `yaml:"max_connection_idle"`
	MaxConnectionAge      time.Duration `yaml:"max_connection_age"` // 0: no limit
	MaxConnectionAgeGrace time.Duration `yaml:"max_connection_age_grace"`
}

// IngestHTTP bounds the time an OTLP/HTTP client may take.
type IngestHTTP struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
}

// Worker configures the workers that move raw records to processed topics.
type Worker struct {
	Group string `yaml:"group"`
	// ExactlyOnce uses Kafka transactions: the processed records of a
	// batch and the commit of its raw positions become visible together.
	ExactlyOnce bool `yaml:"exactly_once"`
	// TransactionalID, with exactly_once, names this worker's
	// transactions: unique among running workers, stable across restarts
	// (e.g. the pod name of a StatefulSet). Default sluice-worker-<host name>.
	TransactionalID string `yaml:"transactional_id"`
	// Cardinality tracks the active series of each metric and the distinct
	// values of its labels, before and after the rules, for
	// GET /api/v1/cardinality on the admin port and `sluice cardinality`.
	Cardinality Cardinality `yaml:"cardinality"`
	// Aggregator runs a member of the aggregator group in the process
	// (default true): it merges the metric points whose series the rules
	// collapsed. On a NATS bus exactly one process may run it (JetStream
	// gives every member every partition); turn it off in the others.
	Aggregator bool `yaml:"aggregator"`
	// LocalMerge merges the points whose series the rules changed in the
	// worker that reads their raw partition, rather than through the
	// aggregation topic and the aggregators, when the rules change no
	// resource and no limit counts the points: about a third less of the
	// worker's CPU on a merged workload. Right only when every producer of
	// the raw metrics topic sends all points of a resource to one
	// partition: sluice's ingesters with partition_key.metrics resource
	// (the default), or agents' Kafka exporters with
	// partition_metrics_by_resource_attributes, not both on one topic. Not
	// with exactly_once; on NATS, in one worker process only. Default
	// false.
	LocalMerge bool `yaml:"local_merge"`
	// MaxPollRecords and MaxPollBytes bound what the worker, and its
	// aggregator, read from the bus at once, whatever the backlog: records
	// per poll, and bytes per poll as stored on the bus (Kafka: compressed;
	// one fetch of this size is buffered beside the poll in hand).
	MaxPollRecords int      `yaml:"max_poll_records"`
	MaxPollBytes   ByteSize `yaml:"max_poll_bytes"`
	// MaxBatchItems bounds the items the worker decodes into one Arrow
	// batch, applies the rules to and writes as one processed record.
	MaxBatchItems int `yaml:"max_batch_items"`
	// DeadLetterMaxBytes is the largest record of the dead-letter topic
	// (the topic is created with it): a dead letter, a raw record with the
	// headers saying why, that is larger is cut into several or truncated.
	// 0: bus.max_record_bytes, the most it may be (the bus's clients and
	// the embedded server take no larger record).
	DeadLetterMaxBytes ByteSize `yaml:"dead_letter_max_bytes"`
	// RawTopics names, per signal (metrics, logs, traces), a raw topic
	// written by agents' Kafka exporters (the OpenTelemetry Collector's
	// and Grafana Alloy's default otlp_metrics, otlp_logs, otlp_spans), to
	// read instead of <topic_prefix>.raw.<signal>; the ingesters of the
	// same config write there too. sluice does not create these topics,
	// nor change their settings, unless CreateRawTopics.
	RawTopics map[string]string `yaml:"raw_topics"`
	// CreateRawTopics creates raw_topics that do not exist, with the
	// bus's partitions, retention and max_record_bytes; topics that exist
	// are left as they are either way. false: a missing one stops the
	// start with an error naming it.
	CreateRawTopics bool `yaml:"create_raw_topics"`
	// TenantHeader is the record header holding the tenant of raw records
	// without sluice-tenant (e.g. X-Scope-OrgID, which the Collector's
	// Kafka exporter writes with include_metadata_keys); compared
	// ignoring case. Empty: none.
	TenantHeader string `yaml:"tenant_header"`
	// DefaultTenant is the tenant of raw records with neither header.
	// Empty: they keep none.
	DefaultTenant string `yaml:"default_tenant"`
	// RawEncoding is the encoding of raw records without a content-type
	// header (agents' records): otlp_proto or otlp_json.
	RawEncoding string `yaml:"raw_encoding"`
}

// Cardinality bounds the worker's cardinality tracker (stream/cardinality,
// whose package doc gives the memory these bounds allow).
type Cardinality struct {
	Enabled bool `yaml:"enabled"`
	// MaxMetrics is the metrics tracked by name per tenant; the series of
	// further metrics are counted together.
	MaxMetrics int `yaml:"max_metrics"`
	// MaxLabels is the label keys tracked per metric.
	MaxLabels int `yaml:"max_labels"`
	// Window: a series counts as active for one to two windows after it
	// was last seen.
	Window time.Duration `yaml:"window"`
	// MaxTenants is the tenants tracked; batches of further tenants are
	// counted as dropped.
	MaxTenants int `yaml:"max_tenants"`
}

// Admin configures the admin HTTP server.
type Admin struct {
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on Listen. Off by
	// default: it exposes the command line and memory contents and lets
	// any caller start CPU profiles; turn it on only where Listen is
	// reachable by operators alone.
	Pprof bool `yaml:"pprof"`
}

// Rules points at the rule files.
type Rules struct {
	Dir string `yaml:"dir"`
	// ReloadInterval is how often the worker looks for changed rule
	// files (SIGHUP reloads at once).
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Log configures structured logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// Sink is one entry of the sinks list. Name, Type and Signals are common to
// every sink; the other keys belong to the sink type, which decodes them
// from Node with DecodeStrict.
type Sink struct {
	Name    string   `yaml:"name"`
	Type    string   `yaml:"type"`
	Signals []string `yaml:"signals"`
	// Group is the consumer group; default sluice-sink-<name>.
	Group string `yaml:"group"`
	// BatchMinRecords and BatchMaxWait batch by time: a sink waits up to
	// BatchMaxWait for BatchMinRecords processed records before it sends.
	// Default 0: it sends what one poll of the bus returns.
	BatchMinRecords int           `yaml:"batch_min_records"`
	BatchMaxWait    time.Duration `yaml:"batch_max_wait"`
	// BatchMaxItems bounds the items a sink handles at once (what it holds
	// in memory while it sends); a larger batch goes in parts, each
	// committed when delivered. 0: DefaultBatchMaxItems.
	BatchMaxItems int `yaml:"batch_max_items"`
	// MaxAge is how old data the destination accepts (its out-of-order or
	// old-sample window); 0: unknown. sluice replay warns before it sends
	// older data.
	MaxAge time.Duration `yaml:"max_age"`

	// Node is the whole entry, for the sink type's own keys.
	Node *yaml.Node `yaml:"-"`
	// Path is the entry's key path in the file (sinks[2]), for errors.
	Path string `yaml:"-"`
	file string
}

// UnmarshalYAML keeps the node so the sink type can decode its own keys.
func (s *Sink) UnmarshalYAML(n *yaml.Node) error {
	type common struct {
		Name            string        `yaml:"name"`
		Type            string        `yaml:"type"`
		Signals         []string      `yaml:"signals"`
		Group           string        `yaml:"group"`
		BatchMinRecords int           `yaml:"batch_min_records"`
		BatchMaxWait    time.Duration `yaml:"batch_max_wait"`
		BatchMaxItems   int           `yaml:"batch_max_items"`
		MaxAge          time.Duration `yaml:"max_age"`
	}
	var c common
	if err := n.Decode(&c); err != nil {
		return err
	}
	*s = Sink{Name: c.Name, Type: c.Type, Signals: c.Signals, Group: c.Group,
		BatchMinRecords: c.BatchMinRecords, BatchMaxWait: c.BatchMaxWait, BatchMaxItems: c.BatchMaxItems, MaxAge: c.MaxAge, Node: n}
	return nil
}

// CommonSinkKeys are the keys every sink entry may have.
var CommonSinkKeys = []string{"name", "type", "signals", "group", "batch_min_records", "batch_max_wait", "batch_max_items", "max_age"}

// DefaultBatchMaxItems is a sink's batch_max_items when the entry has none:
// about 10 MB of remote-write requests in hand.
const DefaultBatchMaxItems = 100_000

// Errorf returns an error located at the entry's key (or at the entry when
// the key is absent), e.g. Errorf("url", "...") for sinks[1].url.
func (s *Sink) Errorf(key, format string, args ...any) *Error {
	e := &Error{File: s.file, Path: s.Path + "." + key, Msg: fmt.Sprintf(format, args...)}
	n := s.Node
	if n == nil {
		return e
	}
	if v := lookup(n, key); v != nil {
		n = v
	}
	e.Line, e.Column = n.Line, n.Column
	return e
}

// Decode decodes the sink type's own keys into out (a pointer to a struct)
// and reports keys that neither out nor CommonSinkKeys know, each as an
// *Error with its line, joined with errors.Join; nil when all is well.
func (s *Sink) Decode(out any) error {
	var errs []error
	for _, e := range DecodeStrict(s.Node, s.Path, out) {
		if e.unknownKey != "" && slices.Contains(CommonSinkKeys, e.unknownKey) && e.Path == s.Path+"."+e.unknownKey {
			continue
		}
		e.File = s.file
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Bus: Bus{
			Kind:           "embedded",
			DataDir:        "./data",
			TopicPrefix:    "sluice",
			Partitions:     6,
			Retention:      24 * time.Hour,
			MaxRecordBytes: 1 << 20,
			ProduceTimeout: 10 * time.Second,
			// SmallBatchBytes is stream/kafka's DefaultSmallBatchBytes.
			Kafka:    Kafka{Compression: "zstd", ClientID: "sluice", SmallBatchBytes: 16 << 10},
			NATS:     NATS{URL: "nats://127.0.0.1:4222", Replicas: 1},
			Embedded: Embedded{Sync: "1s"},
		},
		Ingest: Ingest{
			GRPCListen:       "127.0.0.1:4317",
			HTTPListen:       "127.0.0.1:4318",
			MaxRequestBytes:  16 << 20,
			MaxInflightBytes: 256 << 20,
			RetryAfter:       5 * time.Second,
			PartitionKey:     map[string]string{"metrics": "resource", "logs": "resource", "traces": "trace_id"},
			DefaultTenant:    "anonymous",
			ReloadInterval:   10 * time.Second,
			GRPC:             IngestGRPC{MaxConcurrentStreams: 100, KeepaliveMinTime: 10 * time.Second, MaxConnectionIdle: 5 * time.Minute, MaxConnectionAgeGrace: 30 * time.Second},
			HTTP:             IngestHTTP{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute},
		},
		// The cardinality bounds are stream/cardinality's defaults
		// (internal/ imports nothing above it; app's tests pin that they
		// agree).
		Worker: Worker{Group: "sluice-worker", Aggregator: true, MaxPollRecords: 10000, MaxPollBytes: 1 << 20, MaxBatchItems: 1 << 14, RawEncoding: "otlp_proto", Cardinality: Cardinality{Enabled: true, MaxMetrics: 10000, MaxLabels: 64, Window: 10 * time.Minute, MaxTenants: 1000}},
		Admin:  Admin{Listen: "127.0.0.1:9464"},
		Rules:  Rules{Dir: "./rules", ReloadInterval: 5 * time.Second},
		Log:    Log{Level: "info", Format: "text"},

		MemoryLimit: MemoryLimit{Auto: true},
	}
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes and validates data; file is used in error messages. All
// problems found are returned together.
func Parse(file string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.file = file
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cfg.root = &root
	if root.Kind == 0 { // empty file: all defaults
		return &cfg, cfg.Validate()
	}
	// Partition keys given in the file replace the defaults as a whole map
	// entry by entry, so decode them separately.
	defKeys := cfg.Ingest.PartitionKey
	cfg.Ingest.PartitionKey = nil
	errs := DecodeStrict(&root, "", &cfg)
	for k, v := range defKeys {
		if _, ok := cfg.Ingest.PartitionKey[k]; !ok {
			if cfg.Ingest.PartitionKey == nil {
				cfg.Ingest.PartitionKey = map[string]string{}
			}
			cfg.Ingest.PartitionKey[k] = v
		}
	}
	for i := range cfg.Sinks {
		cfg.Sinks[i].Path = fmt.Sprintf("sinks[%d]", i)
		cfg.Sinks[i].file = file
	}
	if len(errs) > 0 {
		return nil, cfg.join(errs)
	}
	return &cfg, cfg.Validate()
}

// File is the path the config was read from.
func (c *Config) File() string { return c.file }

// DeadLetterMaxBytes is worker.dead_letter_max_bytes, or
// bus.max_record_bytes when it is 0.
func (c *Config) DeadLetterMaxBytes() ByteSize {
	if c.Worker.DeadLetterMaxBytes > 0 {
		return c.Worker.DeadLetterMaxBytes
	}
	return c.Bus.MaxRecordBytes
}

// Errorf returns an error located at the key path (e.g. "bus.kind" or
// "sinks[1].url"); it falls back to the nearest enclosing key that exists in
// the file.
func (c *Config) Errorf(path, format string, args ...any) *Error {
	e := &Error{File: c.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if c.root == nil {
		return e
	}
	for p := path; p != ""; {
		if n := lookup(c.root, p); n != nil {
			e.Line, e.Column = n.Line, n.Column
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return e
}

func (c *Config) join(errs []*Error) error {
	out := make([]error, len(errs))
	for i, e := range errs {
		e.File = c.file
		out[i] = e
	}
	return errors.Join(out...)
}

// Validate checks the rules that span fields. It reports every problem.
func (c *Config) Validate() error {
	var errs []*Error
	bad := func(path, format string, args ...any) { errs = append(errs, c.Errorf(path, format, args...)) }

	switch c.Bus.Kind {
	case "embedded":
		if c.Bus.DataDir == "" {
			bad("bus.data_dir", "the embedded bus needs a data_dir")
		}
		e := c.Bus.Embedded
		if _, _, err := e.SyncPolicy(); err != nil {
			bad("bus.embedded.sync", "%v", err)
		}
		if e.Token != "" && (e.Username != "" || e.Password != "") {
			bad("bus.embedded.token", "set either token or username and password, not both")
		}
		if (e.Username == "") != (e.Password == "") {
			bad("bus.embedded.username", "username and password go together")
		}
		if e.Listen != "" && e.Token == "" && e.Username == "" && !LoopbackListen(e.Listen) {
			bad("bus.embedded.listen", "listen %q is reachable from other machines: set bus.embedded.token (or username and password), or listen on 127.0.0.1", e.Listen)
		}
	case "nats":
		if c.Bus.NATS.URL == "" {
			bad("bus.nats.url", "the nats bus needs a url")
		}
		if r := c.Bus.NATS.Replicas; r < 1 || r > 5 {
			bad("bus.nats.replicas", "replicas must be between 1 and 5, not %d", r)
		}
	case "kafka":
		if len(c.Bus.Kafka.Brokers) == 0 {
			bad("bus.kafka.brokers", "the kafka bus needs at least one broker")
		}
		switch c.Bus.Kafka.Compression {
		case "zstd", "lz4", "snappy", "gzip", "none":
		default:
			bad("bus.kafka.compression", "unknown compression %q (valid: zstd, lz4, snappy, gzip, none)", c.Bus.Kafka.Compression)
		}
		if lvl := c.Bus.Kafka.CompressionLevel; lvl != 0 {
			switch hi := map[string]int{"zstd": 4, "gzip": 9, "lz4": 9}[c.Bus.Kafka.Compression]; {
			case hi == 0:
				bad("bus.kafka.compression_level", "compression %s has no levels: remove compression_level or set it to 0", c.Bus.Kafka.Compression)
			case lvl < 1 || lvl > hi:
				bad("bus.kafka.compression_level", "compression level %d for %s: want 1 to %d (0: the default)", lvl, c.Bus.Kafka.Compression, hi)
			}
		}
		if c.Bus.Kafka.ZstdRawLiterals && c.Bus.Kafka.Compression != "zstd" {
			bad("bus.kafka.zstd_raw_literals", "zstd_raw_literals needs compression: zstd, not %s", c.Bus.Kafka.Compression)
		}
		if n := c.Bus.Kafka.SmallBatchBytes; n < -1 {
			bad("bus.kafka.small_batch_bytes", "small_batch_bytes must be a size or -1 (every batch with compression), not %d", n)
		}
		if k := c.Bus.Kafka; k.MinInsyncReplicas < 0 {
			bad("bus.kafka.min_insync_replicas", "min_insync_replicas must be at least 1, or 0 for the brokers' default, not %d", k.MinInsyncReplicas)
		} else if k.ReplicationFactor > 0 && k.MinInsyncReplicas > k.ReplicationFactor {
			bad("bus.kafka.min_insync_replicas", "min_insync_replicas (%d) exceeds replication_factor (%d): every produce would fail", k.MinInsyncReplicas, k.ReplicationFactor)
		}
		if s := c.Bus.Kafka.SASL; s != nil {
			switch s.Mechanism {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				bad("bus.kafka.sasl.mechanism", "unknown SASL mechanism %q (valid: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", s.Mechanism)
			}
			if s.Password != "" && s.PasswordFile != "" {
				bad("bus.kafka.sasl.password_file", "password and password_file are exclusive")
			}
		}
	default:
		bad("bus.kind", "unknown bus kind %q (valid: embedded, nats, kafka)", c.Bus.Kind)
	}
	if c.Bus.TopicPrefix == "" || strings.ContainsAny(c.Bus.TopicPrefix, " */>") {
		bad("bus.topic_prefix", "topic_prefix %q must be non-empty and free of spaces, '*', '/' and '>'", c.Bus.TopicPrefix)
	}
	if c.Bus.Partitions < 1 || c.Bus.Partitions > 10000 {
		bad("bus.partitions", "partitions must be between 1 and 10000, not %d", c.Bus.Partitions)
	}
	if c.Bus.MaxRecordBytes < 1<<10 {
		bad("bus.max_record_bytes", "max_record_bytes must be at least 1KiB, not %d", c.Bus.MaxRecordBytes)
	}
	if d := c.Worker.DeadLetterMaxBytes; d != 0 && (d < 1<<10 || d > c.Bus.MaxRecordBytes) {
		bad("worker.dead_letter_max_bytes", "dead_letter_max_bytes must be between 1KiB and bus.max_record_bytes (%d), not %d; 0 is bus.max_record_bytes", c.Bus.MaxRecordBytes, d)
	}
	if c.Bus.AckWait < 0 {
		bad("bus.ack_wait", "ack_wait must not be negative")
	}
	if ackWait := cmp.Or(c.Bus.AckWait, 30*time.Second); c.Bus.MaxHold < 0 || c.Bus.MaxHold > 0 && c.Bus.MaxHold < ackWait {
		// 30s: stream/nats's default AckWait.
		bad("bus.max_hold", "max_hold (%s) must be at least ack_wait (%s), or 0 for the default", c.Bus.MaxHold, ackWait)
	}
	if c.Bus.ProduceTimeout <= 0 {
		bad("bus.produce_timeout", "produce_timeout must be positive")
	}
	if c.Ingest.GRPCListen == "" && c.Ingest.HTTPListen == "" {
		bad("ingest", "at least one of grpc_listen and http_listen must be set")
	}
	if c.Ingest.MaxRequestBytes < 1<<10 {
		bad("ingest.max_request_bytes", "max_request_bytes must be at least 1KiB")
	}
	if c.Ingest.MaxInflightBytes < c.Ingest.MaxRequestBytes {
		bad("ingest.max_inflight_bytes", "max_inflight_bytes (%d) must be at least max_request_bytes (%d)", c.Ingest.MaxInflightBytes, c.Ingest.MaxRequestBytes)
	}
	for sig, key := range c.Ingest.PartitionKey {
		path := "ingest.partition_key." + sig
		switch sig {
		case "metrics":
			if key != "resource" && key != "none" {
				bad(path, "metrics can be partitioned by resource or none, not %q", key)
			}
		case "logs", "traces":
			if key != "resource" && key != "trace_id" && key != "none" {
				bad(path, "%s can be partitioned by resource, trace_id or none, not %q", sig, key)
			}
		default:
			bad(path, "unknown signal %q (valid: metrics, logs, traces)", sig)
		}
	}
	if err := tenant.Validate(c.Ingest.DefaultTenant); err != nil {
		bad("ingest.default_tenant", "default_tenant: %v", err)
	}
	if c.Ingest.ReloadInterval <= 0 {
		bad("ingest.reload_interval", "reload_interval must be positive, not %s", c.Ingest.ReloadInterval)
	}
	if c.Ingest.GRPC.MaxConcurrentStreams < 1 {
		bad("ingest.grpc.max_concurrent_streams", "max_concurrent_streams must be at least 1")
	}
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{{"grpc.keepalive_min_time", c.Ingest.GRPC.KeepaliveMinTime}, {"grpc.max_connection_idle", c.Ingest.GRPC.MaxConnectionIdle},
		{"grpc.max_connection_age_grace", c.Ingest.GRPC.MaxConnectionAgeGrace}, {"http.read_header_timeout", c.Ingest.HTTP.ReadHeaderTimeout},
		{"http.read_timeout", c.Ingest.HTTP.ReadTimeout}, {"http.write_timeout", c.Ingest.HTTP.WriteTimeout}, {"http.idle_timeout", c.Ingest.HTTP.IdleTimeout}} {
		if kd.d <= 0 {
			bad("ingest."+kd.key, "%s must be positive, not %s", kd.key[strings.IndexByte(kd.key, '.')+1:], kd.d)
		}
	}
	if c.Ingest.GRPC.MaxConnectionAge < 0 {
		bad("ingest.grpc.max_connection_age", "max_connection_age must not be negative (0: no limit)")
	}
	if c.Worker.ExactlyOnce && c.Bus.Kind != "kafka" {
		bad("worker.exactly_once", "exactly_once needs bus kind kafka (transactions), not %q", c.Bus.Kind)
	}
	if c.Worker.LocalMerge && c.Worker.ExactlyOnce {
		bad("worker.local_merge", "local_merge and exactly_once do not go together: the merge state is not part of the transaction")
	}
	if c.Worker.LocalMerge && c.Ingest.PartitionKey["metrics"] == "none" {
		bad("worker.local_merge", "local_merge needs each resource's points in one raw partition, and ingest.partition_key.metrics is none (use resource)")
	}
	c.validateRawTopics(bad)
	if c.Worker.MaxPollRecords < 1 {
		bad("worker.max_poll_records", "max_poll_records must be at least 1, not %d", c.Worker.MaxPollRecords)
	}
	if c.Worker.MaxBatchItems < 1 || c.Worker.MaxBatchItems > 1<<16 {
		bad("worker.max_batch_items", "max_batch_items must be from 1 to 65536, not %d", c.Worker.MaxBatchItems)
	}
	if c.Worker.MaxPollBytes < 64<<10 {
		bad("worker.max_poll_bytes", "max_poll_bytes must be at least 64KiB, not %d", c.Worker.MaxPollBytes)
	}
	cc := c.Worker.Cardinality
	positive := func(key string, n int) {
		if n < 1 {
			bad("worker.cardinality."+key, "%s must be at least 1, not %d", key, n)
		}
	}
	positive("max_metrics", cc.MaxMetrics)
	positive("max_labels", cc.MaxLabels)
	positive("max_tenants", cc.MaxTenants)
	if cc.Window < time.Second {
		bad("worker.cardinality.window", "window must be at least 1s, not %s", cc.Window)
	}
	if c.Rules.ReloadInterval <= 0 {
		bad("rules.reload_interval", "reload_interval must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "unknown log level %q (valid: debug, info, warn, error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "unknown log format %q (valid: text, json)", c.Log.Format)
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		p := fmt.Sprintf("sinks[%d]", i)
		if s.Name == "" {
			bad(p, "a sink needs a name")
		} else if names[s.Name] {
			bad(p+".name", "sink name %q is used twice", s.Name)
		}
		names[s.Name] = true
		if s.Type == "" {
			bad(p, "sink %q needs a type", s.Name)
		}
		if len(s.Signals) == 0 {
			bad(p, "sink %q needs signals (metrics, logs, traces)", s.Name)
		}
		if s.BatchMinRecords < 0 || s.BatchMaxWait < 0 || s.BatchMaxItems < 0 {
			bad(p, "sink %q: batch_min_records, batch_max_wait and batch_max_items must not be negative", s.Name)
		}
		if s.MaxAge < 0 {
			bad(p+".max_age", "sink %q: max_age must not be negative", s.Name)
		}
		for j, sig := range s.Signals {
			if sig != "metrics" && sig != "logs" && sig != "traces" {
				bad(fmt.Sprintf("%s.signals[%d]", p, j), "unknown signal %q (valid: metrics, logs, traces)", sig)
			}
		}
	}
	if len(errs) > 0 {
		return c.join(errs)
	}
	return nil
}

// ByteSize is a size in bytes, written in the file as a number or with a
// unit: 512KiB, 16MiB, 1GiB (also KB, MB, GB as powers of 1000).
type ByteSize int64

// UnmarshalYAML accepts plain integers and sizes with units.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &Error{Line: n.Line, Column: n.Column, Msg: err.Error()}
	}
	*b = v
	return nil
}

// MemoryLimit is Config.MemoryLimit: auto, or a size (0: none).
type MemoryLimit struct {
	Auto  bool
	Bytes ByteSize
}

// The limits auto gives (Config.MemoryLimit).
const (
	AutoWorkerMemoryLimit = 192 << 20
	AutoSinkMemoryLimit   = 96 << 20
	// AutoStateAllowance is the aggregation state the worker's auto limit
	// has room for; beyond it, the limit grows with the state.
	AutoStateAllowance = 32 << 20
)

// Limit is the soft memory limit of a process with these roles; 0: none.
func (m MemoryLimit) Limit(ingest, worker, sinks bool) int64 {
	switch {
	case !m.Auto:
		return int64(m.Bytes)
	case ingest:
		return 0
	case worker:
		return AutoWorkerMemoryLimit
	case sinks:
		return AutoSinkMemoryLimit
	}
	return 0
}

// UnmarshalYAML accepts auto or a size.
func (m *MemoryLimit) UnmarshalYAML(n *yaml.Node) error {
	if strings.TrimSpace(n.Value) == "auto" {
		*m = MemoryLimit{Auto: true}
		return nil
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &Error{Line: n.Line, Column: n.Column, Msg: "memory_limit must be auto or a size: " + err.Error()}
	}
	*m = MemoryLimit{Bytes: v}
	return nil
}

// SignedByteSize is a ByteSize that may be negative, for the keys where -1
// turns a threshold off; Validate rejects the other negative values.
type SignedByteSize int64

// UnmarshalYAML accepts what ByteSize accepts, with an optional minus sign.
func (b *SignedByteSize) UnmarshalYAML(n *yaml.Node) error {
	s, neg := strings.CutPrefix(strings.TrimSpace(n.Value), "-")
	v, err := ParseByteSize(s)
	if err != nil {
		return &Error{Line: n.Line, Column: n.Column, Msg: err.Error()}
	}
	if neg {
		v = -v
	}
	*b = SignedByteSize(v)
	return nil
}

// ParseByteSize parses "16MiB", "1GB", "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (use a number of bytes or a unit: KiB, MiB, GiB)", s)
	}
	return ByteSize(n * mult), nil
}
