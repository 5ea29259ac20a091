package ingest

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/stream"
)

// Bus is what the ingester needs of a message bus: every stream.Bus is one.
type Bus interface {
	stream.Producer
	// Partitions is the partition count of topic; 0 if unknown, in which
	// case the ingester lets the bus choose (otlpwire.KeyNone).
	Partitions(topic string) int32
}

// Defaults applied by New to zero fields of Config.
const (
	DefaultMaxRecordBytes   = 1 << 20
	DefaultMaxRequestBytes  = 16 << 20
	DefaultMaxInflightBytes = 256 << 20
	DefaultRetryAfter       = 5 * time.Second
	DefaultProduceTimeout   = 10 * time.Second
	DefaultTenant           = "anonymous"
	// headerRoom is what the ingester leaves below MaxRecordBytes for the
	// record's headers and the bus's own framing.
	headerRoom = 512
)

// Config configures an Ingester. The zero value of each field means its
// default.
type Config struct {
	// Topics names the raw topics requests are written to.
	Topics stream.Topics
	// Key chooses how each signal's items are spread over partitions. A
	// missing entry means otlpwire.KeyDefault: resource for metrics and
	// logs, trace id for traces.
	Key map[otlpwire.Signal]otlpwire.KeyMode
	// MaxRecordBytes is the largest record the bus accepts (value plus
	// headers); requests are split below it. Default 1 MiB.
	MaxRecordBytes int
	// MaxRequestBytes bounds a request body, both as received and once
	// decompressed. Default 16 MiB.
	MaxRequestBytes int
	// MaxInflightBytes bounds the request bytes being split and produced at
	// once; requests beyond it are refused as overloaded (retryable).
	// Default 256 MiB.
	MaxInflightBytes int64
	// RetryAfter is the delay clients are told to wait after an overload or
	// an unavailable bus. Default 5s.
	RetryAfter time.Duration
	// ProduceTimeout bounds the wait for the bus acknowledgement. Default
	// 10s.
	ProduceTimeout time.Duration
	// DefaultTenant is the tenant of requests without X-Scope-OrgID (and
	// without a token bound to a tenant). Default "anonymous".
	DefaultTenant string
	// Tokens, when not nil, are the bearer tokens a request must carry,
	// each bound to the tenants it may write as (see Tenant). SetTokens
	// replaces them.
	Tokens *Tokens
	// TrustTenantHeader honours any valid X-Scope-OrgID from a request
	// without tokens (or with a token bound to no tenant): for a trusted
	// gateway in front that authenticates clients and sets the header.
	// Otherwise such requests may only be DefaultTenant.
	TrustTenantHeader bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the ingester's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = DefaultProduceTimeout
	}
	if c.DefaultTenant == "" {
		c.DefaultTenant = DefaultTenant
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate reports every problem with c at once.
func (c *Config) validate() error {
	var errs []string
	if c.MaxRecordBytes < 4*headerRoom {
		errs = append(errs, fmt.Sprintf("MaxRecordBytes %d is below the minimum of %d", c.MaxRecordBytes, 4*headerRoom))
	}
	if c.MaxRequestBytes < 0 {
		errs = append(errs, "MaxRequestBytes must not be negative")
	}
	if c.MaxInflightBytes < 0 {
		errs = append(errs, "MaxInflightBytes must not be negative")
	}
	if c.RetryAfter < 0 || c.ProduceTimeout < 0 {
		errs = append(errs, "RetryAfter and ProduceTimeout must not be negative")
	}
	if err := tenant.Validate(c.DefaultTenant); err != nil {
		errs = append(errs, "DefaultTenant: "+err.Error())
	}
	for sig, k := range c.Key {
		if sig > otlpwire.Traces {
			errs = append(errs, fmt.Sprintf("Key: unknown signal %v", sig))
		}
		if k > otlpwire.KeyNone || (sig == otlpwire.Metrics && k == otlpwire.KeyTraceID) {
			errs = append(errs, fmt.Sprintf("Key: %v is not valid for %v", k, sig))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ingest config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ParseKeyMode maps a partition_key setting (resource, trace_id, none; ""
// for the signal's default) to its otlpwire.KeyMode.
func ParseKeyMode(s string) (otlpwire.KeyMode, error) {
	switch s {
	case "":
		return otlpwire.KeyDefault, nil
	case "resource":
		return otlpwire.KeyResource, nil
	case "trace_id":
		return otlpwire.KeyTraceID, nil
	case "none":
		return otlpwire.KeyNone, nil
	}
	return 0, fmt.Errorf("unknown partition key %q (valid: resource, trace_id, none)", s)
}
