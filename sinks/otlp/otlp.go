// Package otlp is the `otlp` sink: every signal to an OTLP receiver over
// gRPC (default) or HTTP/protobuf, gzip-compressed by default.
//
// Each processed record becomes an Export*ServiceRequest (Arrow turned
// back into OTLP); consecutive records of one signal and tenant are merged
// into one request up to max_request_bytes (concatenated requests are one
// request in protobuf), and a record above it is cut into several along
// resource and scope boundaries. A request the receiver refuses for good (gRPC
// INVALID_ARGUMENT, RESOURCE_EXHAUSTED without RetryInfo...; HTTP 4xx but
// 408/429) is split into its records, sent one by one, so that only the
// refused ones are dead-lettered. A partial success (rejected_* > 0)
// cannot be traced to records: it is logged and counted in
// sluice_sink_items_rejected_total, and the records count as delivered.
// Everything else is retried by the stage, honouring gRPC RetryInfo and
// HTTP Retry-After.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
)

func init() {
	sinks.Register("otlp", func(entry *config.Sink, env sinks.Env) (sinks.Sink, error) {
		cfg := Config{}
		if err := entry.Decode(&cfg); err != nil {
			return nil, err
		}
		if errs := cfg.check(entry); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return New(cfg, entry.Name, env)
	})
}

// Config is the otlp sink's part of a sinks entry. The HTTP keys (url,
// headers, basic_auth, bearer_token(_file), tls, timeout, tenant_header)
// apply to gRPC too, as metadata and transport security.
type Config struct {
	httpsink.Config `yaml:",inline"`
	// Protocol is grpc (default) or http.
	Protocol string `yaml:"protocol"`
	// Endpoint is the gRPC receiver, host:port (an http:// or https://
	// prefix chooses plaintext or TLS).
	Endpoint string `yaml:"endpoint"`
	// Insecure makes gRPC use plaintext. Without it, tls, or a scheme in
	// endpoint, gRPC uses plaintext to loopback addresses only and TLS
	// otherwise.
	Insecure bool `yaml:"insecure"`
	// Compression is gzip (default) or none.
	Compression string `yaml:"compression"`
	// MaxRequestBytes bounds a request (uncompressed): records are merged
	// up to it, and a larger record is cut along resource and scope
	// boundaries. Default 3MiB (gRPC servers refuse messages above 4MiB by
	// default).
	MaxRequestBytes config.ByteSize `yaml:"max_request_bytes"`
}

func (c *Config) check(entry *config.Sink) []error {
	var errs []error
	switch c.Protocol {
	case "", "grpc":
		if c.Endpoint == "" {
			errs = append(errs, entry.Errorf("endpoint", "the otlp sink with protocol grpc needs an endpoint (host:port)"))
		} else if _, _, err := grpcTarget(c.Endpoint); err != nil {
			errs = append(errs, entry.Errorf("endpoint", "%v", err))
		}
		if c.URL != "" {
			errs = append(errs, entry.Errorf("url", "url is for protocol http; grpc takes an endpoint"))
		}
		if c.BasicAuth != nil && (c.BearerToken != "" || c.BearerTokenFile != "") {
			errs = append(errs, entry.Errorf("basic_auth", "basic_auth and a bearer token are exclusive"))
		}
		if c.BearerToken != "" && c.BearerTokenFile != "" {
			errs = append(errs, entry.Errorf("bearer_token_file", "bearer_token and bearer_token_file are exclusive"))
		}
		if _, err := c.TLS.ClientConfig(); err != nil {
			errs = append(errs, entry.Errorf("tls", "%v", err))
		}
		if c.Insecure && c.TLS != nil {
			errs = append(errs, entry.Errorf("insecure", "insecure and tls are exclusive"))
		}
		errs = append(errs, c.CheckBasicAuth(entry)...)
		errs = append(errs, c.CheckRetryAfterMax(entry)...)
	case "http":
		if c.Endpoint != "" {
			errs = append(errs, entry.Errorf("endpoint", "endpoint is for protocol grpc; http takes a url"))
		}
		if c.Insecure {
			errs = append(errs, entry.Errorf("insecure", "insecure is for protocol grpc; http uses the url's scheme"))
		}
		errs = append(errs, c.Config.Check(entry)...)
	default:
		errs = append(errs, entry.Errorf("protocol", "protocol %q: want grpc or http", c.Protocol))
	}
	if c.Compression != "" && c.Compression != "gzip" && c.Compression != "none" {
		errs = append(errs, entry.Errorf("compression", "compression %q: want gzip or none", c.Compression))
	}
	return errs
}

// grpcTarget splits an endpoint into host:port and, when a scheme says so,
// whether to use TLS (+1) or plaintext (-1); 0 when it does not say.
func grpcTarget(endpoint string) (string, int, error) {
	tlsMode := 0
	switch {
	case strings.HasPrefix(endpoint, "https://"):
		tlsMode, endpoint = 1, strings.TrimPrefix(endpoint, "https://")
	case strings.HasPrefix(endpoint, "http://"):
		tlsMode, endpoint = -1, strings.TrimPrefix(endpoint, "http://")
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	if _, port, err := net.SplitHostPort(endpoint); err != nil || port == "" {
		return "", 0, fmt.Errorf("endpoint %q: want host:port", endpoint)
	}
	return endpoint, tlsMode, nil
}

// exporter sends one request of one signal.
type exporter interface {
	// export sends body (an Export*ServiceRequest) and returns the
	// number of items the receiver's partial success rejected, and its
	// message.
	export(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (rejected int64, msg string, err error)
	close() error
}

// permanent is an error the receiver will answer again to the same data.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Sink sends OTLP.
type Sink struct {
	cfg     Config
	exp     exporter
	log     *slog.Logger
	metrics sinkmetrics.Sink
	pb      []byte
	split   otlpwire.Splitter // of records larger than MaxRequestBytes
}

// New returns the sink of a checked config; name labels its metrics.
func New(cfg Config, name string, env sinks.Env) (*Sink, error) {
	if cfg.Protocol == "" {
		cfg.Protocol = "grpc"
	}
	if cfg.Compression == "" {
		cfg.Compression = "gzip"
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 3 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	sm := sinkmetrics.New(env.Registerer)
	s := &Sink{cfg: cfg, log: env.Logger, metrics: sm.For(name)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if sm.Err != nil {
		s.log.Warn("some sink metrics are not registered", "err", sm.Err)
	}
	var err error
	if cfg.Protocol == "http" {
		s.exp, err = newHTTP(cfg, s.metrics)
	} else {
		s.exp, err = newGRPC(cfg, s.metrics, s.log)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp sink: %w", err)
	}
	return s, nil
}

// signalPath is the OTLP/HTTP path of sig.
func signalPath(sig otlpwire.Signal) string {
	return "/v1/" + sig.String()
}

// httpURL is the URL of sig: the configured one with /v1/<signal>
// appended, unless it has a path.
func httpURL(base string, sig otlpwire.Signal) string {
	u, err := url.Parse(base)
	if err != nil || strings.Trim(u.Path, "/") != "" {
		return base
	}
	u.Path = signalPath(sig)
	return u.String()
}

type request struct {
	sig    otlpwire.Signal
	tenant string
	recs   []*stream.Record
	body   []byte
	items  int
}

// Write sends recs: merged requests of consecutive records of one signal
// and tenant.
func (s *Sink) Write(ctx context.Context, recs []*stream.Record) error {
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
	var cur *request
	var retryErr error
	flush := func() {
		req := cur
		cur = nil
		if req == nil || retryErr != nil {
			return
		}
		err := s.send(ctx, req)
		var perm *permanent
		switch {
		case err == nil:
		case !errors.As(err, &perm):
			retryErr = err
		case len(req.recs) == 1:
			s.metrics.Rejected.Add(float64(req.items))
			reject(req.recs[0], err.Error())
		default:
			// Find the refused records: send them one by one.
			for _, r := range req.recs {
				one, n, derr := s.encode(r)
				if derr != nil {
					reject(r, derr.Error())
					continue
				}
				err := s.send(ctx, &request{sig: req.sig, tenant: req.tenant, recs: []*stream.Record{r}, body: one, items: n})
				if errors.As(err, &perm) {
					s.metrics.Rejected.Add(float64(n))
					reject(r, err.Error())
				} else if err != nil {
					retryErr = err
					return
				}
			}
		}
	}
	for _, r := range recs {
		sig, err := sinks.SignalOf(r)
		if err != nil {
			reject(r, err.Error())
			continue
		}
		tenant, err := r.Tenant()
		if err != nil {
			s.log.Warn("record with an invalid tenant", "err", err)
			reject(r, err.Error())
			continue
		}
		body, n, err := s.encode(r)
		if err != nil {
			s.log.Warn("undecodable record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			reject(r, err.Error())
			continue
		}
		if cur != nil && (cur.sig != sig || cur.tenant != tenant || len(cur.body)+len(body) > int(s.cfg.MaxRequestBytes)) {
			flush()
		}
		if len(body) > int(s.cfg.MaxRequestBytes) {
			// Cut along resource and scope boundaries (as the ingester
			// does), each part a request of its own: a receiver refuses
			// a message above its limit for good.
			res, err := s.split.Split(sig, body, otlpwire.Options{Key: otlpwire.KeyNone, MaxRecordBytes: int(s.cfg.MaxRequestBytes)})
			if err != nil {
				reject(r, err.Error())
				continue
			}
			if res.Rejected > 0 {
				s.metrics.Rejected.Add(float64(res.Rejected))
				reject(r, "items larger than max_request_bytes even alone: "+res.RejectReason)
			}
			for _, c := range res.Chunks {
				cur = &request{sig: sig, tenant: tenant, recs: []*stream.Record{r}, body: c.Value, items: c.Items}
				flush()
			}
			continue
		}
		if cur == nil {
			cur = &request{sig: sig, tenant: tenant}
		}
		cur.recs = append(cur.recs, r)
		cur.body = append(cur.body, body...)
		cur.items += n
	}
	flush()
	if retryErr != nil {
		return retryErr
	}
	if len(rejected) > 0 {
		return &sinks.RejectedError{Records: rejected, Reason: strings.Join(reasons, "; ")}
	}
	return nil
}

// encode returns the OTLP protobuf of r (valid until the next call) and
// its item count.
func (s *Sink) encode(r *stream.Record) ([]byte, int, error) {
	sig, err := sinks.SignalOf(r)
	if err != nil {
		return nil, 0, err
	}
	switch ct := string(r.Header(stream.HeaderContentType)); ct {
	case stream.ContentTypeOTLPProto, "":
		n, err := otlpwire.Count(sig, r.Value)
		return r.Value, n, err
	case stream.ContentTypeArrow:
		var n int
		s.pb, n, err = schemas.BatchToOTLP(r.Value, s.pb[:0], arrowpool.Default)
		return s.pb, n, err
	default:
		return nil, 0, fmt.Errorf("content type %q (valid: %s, %s)", ct, stream.ContentTypeOTLPProto, stream.ContentTypeArrow)
	}
}

// send exports one request and counts.
func (s *Sink) send(ctx context.Context, req *request) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	rejected, msg, err := s.exp.export(ctx, req.sig, req.tenant, req.body)
	s.metrics.Duration.Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("otlp export of %d %s: %w", req.items, req.sig, err)
	}
	rejected = rejectedOf(rejected, req.items)
	if rejected > 0 {
		s.log.Warn("the receiver rejected part of a request (partial success)", "signal", req.sig.String(), "rejected", rejected, "items", req.items, "message", msg)
		s.metrics.Rejected.Add(float64(rejected))
	} else if msg != "" {
		s.log.Warn("the receiver warns", "signal", req.sig.String(), "message", msg)
	}
	s.metrics.ItemsSent.Add(float64(int64(req.items) - rejected))
	return nil
}

// rejectedOf is a receiver's count of rejected items made sensible: not
// below 0 nor above the items sent. (A count above them made the items-sent
// counter go down, which panics.)
func rejectedOf(n int64, items int) int64 {
	return min(max(n, 0), int64(items))
}

// Close closes the connection.
func (s *Sink) Close() error { return s.exp.close() }
