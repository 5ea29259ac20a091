// Package loki is the `loki` sink: log records pushed to Loki's push API
// (/loki/api/v1/push), as snappy-compressed protobuf (default) or JSON.
//
// Stream labels come from a short list of resource attributes (`labels`,
// default service.name, service.namespace, k8s.namespace.name) plus the
// severity, with names sanitised to label names (service.name →
// service_name). Nothing else becomes a label: log attributes, the other
// resource attributes, scope name and version, trace_id and span_id go to
// structured metadata, so high-cardinality values never create streams.
// The line is the body (a string as it is, other bodies as JSON). Entries
// of a stream are sorted by time (time_unix_nano, else
// observed_time_unix_nano, else the record's time).
//
// One push request per tenant (the record's sluice-tenant, sent in
// tenant_header) and per max_request_bytes. A 4xx answer other than 429
// (and 401/403/404, which are about the configuration, not the data)
// dead-letters the records of that request; 429, 5xx and connection
// errors are retried, honouring Retry-After.
package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
)

// SeverityLabel is the entry of `labels` that stands for the log record's
// severity rather than a resource attribute.
const SeverityLabel = "severity"

// DefaultLabels are the stream labels when the entry has no `labels`.
var DefaultLabels = []string{"service.name", "service.namespace", "k8s.namespace.name", SeverityLabel}

func init() {
	sinks.Register("loki", func(entry *config.Sink, env sinks.Env) (sinks.Sink, error) {
		cfg := Config{Format: "protobuf", MaxRequestBytes: 4 << 20}
		if err := entry.Decode(&cfg); err != nil {
			return nil, err
		}
		errs := cfg.Config.Check(entry)
		if cfg.Format != "protobuf" && cfg.Format != "json" {
			errs = append(errs, entry.Errorf("format", "format %q: want protobuf or json", cfg.Format))
		}
		if cfg.Labels != nil && len(cfg.Labels) == 0 {
			errs = append(errs, entry.Errorf("labels", "labels must not be empty (leave the key out for the default %v)", DefaultLabels))
		}
		for _, s := range entry.Signals {
			if s != "logs" {
				errs = append(errs, entry.Errorf("signals", "the loki sink takes logs only, not %s", s))
			}
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return New(cfg, entry.Name, env)
	})
}

// Config is the loki sink's part of a sinks entry.
type Config struct {
	httpsink.Config `yaml:",inline"`
	// Format of the push request: protobuf (snappy-compressed, default) or
	// json.
	Format string `yaml:"format"`
	// Labels are the resource attributes that become stream labels, and
	// "severity" for the log record's severity. Default DefaultLabels.
	Labels []string `yaml:"labels"`
	// MaxRequestBytes splits a Write into several pushes once the entries
	// of one exceed it (uncompressed, roughly). Default 4MiB.
	MaxRequestBytes config.ByteSize `yaml:"max_request_bytes"`
}

// Sink pushes log records to Loki.
type Sink struct {
	cfg     Config
	client  *httpsink.Client
	log     *slog.Logger
	metrics sinkmetrics.Sink
	labels  []labelSpec
	sev     bool
	arrow   *arrowDecoder // processed (Arrow) records
	pb, z   []byte        // scratch of request: protobuf, snappy
}

type labelSpec struct{ attr, name string }

// New returns the sink of a checked config; name labels its metrics.
func New(cfg Config, name string, env sinks.Env) (*Sink, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 4 << 20
	}
	if cfg.Format == "" {
		cfg.Format = "protobuf"
	}
	if cfg.Labels == nil {
		cfg.Labels = DefaultLabels
	}
	u := strings.TrimSuffix(cfg.URL, "/")
	if !strings.HasSuffix(u, "/loki/api/v1/push") && pathOf(u) == "" {
		cfg.Config.URL = u + "/loki/api/v1/push"
	}
	sm := sinkmetrics.New(env.Registerer)
	c, err := httpsink.New(cfg.Config, sm.For(name))
	if err != nil {
		return nil, fmt.Errorf("loki sink: %w", err)
	}
	s := &Sink{cfg: cfg, client: c, log: env.Logger, metrics: sm.For(name)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if sm.Err != nil {
		s.log.Warn("some sink metrics are not registered", "err", sm.Err)
	}
	for _, l := range cfg.Labels {
		if l == SeverityLabel {
			s.sev = true
			continue
		}
		s.labels = append(s.labels, labelSpec{attr: l, name: sanitize(l)})
	}
	s.arrow = newArrowDecoder(s.labels, s.sev, arrowpool.Default)
	return s, nil
}

// pathOf is the path of URL u ("" for none or "/").
func pathOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		return strings.Trim(u[i:], "/")
	}
	return ""
}

// Write pushes the log records of recs: one request per tenant and per
// MaxRequestBytes. A processed record with more than MaxRequestBytes of
// entries is cut across requests (Loki refuses a push larger than its
// ingestion burst for good); a record in a refused request goes to the
// dead-letter topic whole, once.
func (s *Sink) Write(ctx context.Context, recs []*stream.Record) error {
	var rejected []*stream.Record
	var reasons []string
	reject := func(rs []*stream.Record, reason string) {
		for _, r := range rs {
			if !slices.Contains(rejected, r) {
				rejected = append(rejected, r)
			}
		}
		if !slices.Contains(reasons, reason) {
			reasons = append(reasons, reason)
		}
	}
	pending := map[string]*push{} // by tenant
	var order []string
	var retryErr error
	flush := func(tenant string) {
		p := pending[tenant]
		if p == nil || len(p.recs) == 0 {
			return
		}
		delete(pending, tenant)
		if retryErr != nil {
			return // the whole Write is repeated anyway
		}
		if err := s.send(ctx, tenant, p); err != nil {
			if httpsink.IsRejected(err) {
				s.metrics.Rejected.Add(float64(p.entries))
				reject(p.recs, err.Error())
			} else {
				retryErr = err
			}
		}
	}
	for _, r := range recs {
		tenant, err := r.Tenant()
		if err != nil {
			s.log.Warn("record with an invalid tenant", "err", err)
			reject([]*stream.Record{r}, err.Error())
			continue
		}
		req, err := s.decode(r)
		if err != nil {
			s.log.Warn("undecodable record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			reject([]*stream.Record{r}, err.Error())
			continue
		}
		for {
			p := pending[tenant]
			if p == nil {
				p = newPush()
				pending[tenant] = p
				if !slices.Contains(order, tenant) {
					order = append(order, tenant)
				}
			}
			more := s.addDecoded(p, req, r)
			p.recs = append(p.recs, r)
			if p.bytes >= int(s.cfg.MaxRequestBytes) {
				flush(tenant)
			}
			if !more {
				break
			}
		}
	}
	for _, t := range order {
		flush(t)
	}
	if retryErr != nil {
		return retryErr
	}
	if len(rejected) > 0 {
		return &sinks.RejectedError{Records: rejected, Reason: strings.Join(reasons, "; ")}
	}
	return nil
}

// decode reads r, which addDecoded then adds to a push. A raw OTLP record
// gives its request; an Arrow record has its entries staged in s.arrow
// (and a nil request). The Arrow columns are read directly: converting
// them back to OTLP and decoding that was most of the sink's work.
func (s *Sink) decode(r *stream.Record) (*collogs.ExportLogsServiceRequest, error) {
	sig, err := sinks.SignalOf(r)
	if err != nil {
		return nil, err
	}
	if sig != otlpwire.Logs {
		return nil, fmt.Errorf("loki sink: record of signal %s, want logs", sig)
	}
	switch ct := string(r.Header(stream.HeaderContentType)); ct {
	case stream.ContentTypeOTLPProto, "":
		req := &collogs.ExportLogsServiceRequest{}
		if err := proto.Unmarshal(r.Value, req); err != nil {
			return nil, err
		}
		return req, nil
	case stream.ContentTypeArrow:
		return nil, s.arrow.decode(r.Value, r.Timestamp)
	default:
		return nil, fmt.Errorf("content type %q (valid: %s, %s)", ct, stream.ContentTypeOTLPProto, stream.ContentTypeArrow)
	}
}

// addDecoded adds the log records of r, which decode returned as req or
// staged, to p: all of them, or for a staged record as many as fit in
// MaxRequestBytes, reporting whether more remain for the next push.
func (s *Sink) addDecoded(p *push, req *collogs.ExportLogsServiceRequest, r *stream.Record) (more bool) {
	if req != nil {
		s.add(p, req, r.Timestamp)
		return false
	}
	return s.arrow.commit(p, int(s.cfg.MaxRequestBytes))
}

// maxKeptBuffer bounds the encoding buffer kept for the next request.
const maxKeptBuffer = 64 << 20

// request is the push request of p as posted: entries sorted by time and
// encoded in the configured format.
func (s *Sink) request(p *push) httpsink.Request {
	p.sort()
	if s.cfg.Format == "json" {
		return httpsink.Request{Body: p.json(), ContentType: "application/json"}
	}
	s.pb = p.protobuf(s.pb[:0])
	// EncodeSnappy needs room for the worst case (larger than the input),
	// while log lines compress several times: encode into a kept buffer
	// and copy the result out.
	if n := s2.MaxEncodedLen(len(s.pb)); len(s.z) < n {
		s.z = make([]byte, n)
	}
	body := bytes.Clone(s2.EncodeSnappy(s.z, s.pb))
	if cap(s.pb) > maxKeptBuffer {
		s.pb, s.z = nil, nil // do not keep a rare huge buffer
	}
	return httpsink.Request{Body: body, ContentType: "application/x-protobuf"}
}

// send posts p and counts.
func (s *Sink) send(ctx context.Context, tenant string, p *push) error {
	req := s.request(p)
	req.Tenant = tenant
	start := time.Now()
	err := s.client.Post(ctx, req)
	s.metrics.Duration.Observe(time.Since(start).Seconds())
	code := "200"
	var he *httpsink.Error
	if errors.As(err, &he) {
		code = "error"
		if he.Status != 0 {
			code = fmt.Sprint(he.Status)
		}
	}
	s.metrics.Requests(code).Inc()
	if err != nil {
		return fmt.Errorf("loki push: %w", err)
	}
	s.metrics.ItemsSent.Add(float64(p.entries))
	return nil
}

// add puts the log records of req into p's streams: the raw OTLP path, and
// the reference of the Arrow path (arrowDecoder), which must give the same.
func (s *Sink) add(p *push, req *collogs.ExportLogsServiceRequest, recTime time.Time) {
	var labels []pair
	for _, rl := range req.ResourceLogs {
		var resAttrs []*common.KeyValue
		if rl.Resource != nil {
			resAttrs = rl.Resource.Attributes
		}
		// Labels from the configured resource attributes; the other
		// resource attributes go to structured metadata.
		labels = labels[:0]
		var resMeta []pair
		for _, kv := range resAttrs {
			if i := slices.IndexFunc(s.labels, func(l labelSpec) bool { return l.attr == kv.Key }); i >= 0 {
				if v := valueString(kv.Value); v != "" && !slices.ContainsFunc(labels, func(p pair) bool { return p.name == s.labels[i].name }) {
					labels = append(labels, pair{s.labels[i].name, v})
				}
				continue
			}
			resMeta = append(resMeta, pair{sanitize(kv.Key), valueString(kv.Value)})
		}
		nres := len(labels)
		for _, sl := range rl.ScopeLogs {
			var scopeMeta []pair
			if sc := sl.Scope; sc != nil {
				if sc.Name != "" {
					scopeMeta = append(scopeMeta, pair{"scope_name", sc.Name})
				}
				if sc.Version != "" {
					scopeMeta = append(scopeMeta, pair{"scope_version", sc.Version})
				}
				for _, kv := range sc.Attributes {
					scopeMeta = append(scopeMeta, pair{sanitize(kv.Key), valueString(kv.Value)})
				}
			}
			for _, lr := range sl.LogRecords {
				labels = labels[:nres]
				if s.sev {
					if sev := severity(int32(lr.SeverityNumber), lr.SeverityText); sev != "" {
						labels = append(labels, pair{SeverityLabel, sev})
					}
				}
				meta := make([]pair, 0, len(resMeta)+len(scopeMeta)+len(lr.Attributes)+2)
				meta = append(meta, resMeta...)
				meta = append(meta, scopeMeta...)
				for _, kv := range lr.Attributes {
					meta = append(meta, pair{sanitize(kv.Key), valueString(kv.Value)})
				}
				if len(lr.TraceId) > 0 {
					meta = append(meta, pair{"trace_id", hexString(lr.TraceId)})
				}
				if len(lr.SpanId) > 0 {
					meta = append(meta, pair{"span_id", hexString(lr.SpanId)})
				}
				ts := int64(lr.TimeUnixNano)
				if ts == 0 {
					ts = int64(lr.ObservedTimeUnixNano)
				}
				if ts == 0 {
					if recTime.IsZero() {
						recTime = time.Now()
					}
					ts = recTime.UnixNano()
				}
				p.add(labels, entry{ts: ts, line: line(lr.Body), meta: meta})
			}
		}
	}
}

// severityNames are the severity labels of the classes of severity
// numbers (severityClass); class 0 has none.
var severityNames = [...]string{"", "trace", "debug", "info", "warn", "error", "fatal"}

// severityClass is the class of a severity number: 1 to 6 for the
// numbers 1-4 (trace), 5-8 (debug), 9-12 (info), 13-16 (warn), 17-20
// (error) and 21-24 (fatal), 0 for others.
func severityClass(n int32) int {
	if n >= 1 && n <= 24 {
		return int(n-1)/4 + 1
	}
	return 0
}

// severity is the severity label of a log record of severity number n and
// text text: the level name of n (trace, debug, info, warn, error, fatal),
// else text in lower case, else "".
func severity(n int32, text string) string {
	if c := severityClass(n); c > 0 {
		return severityNames[c]
	}
	return strings.ToLower(text)
}

// sanitize turns an attribute name into a label name: characters other
// than letters, digits and _ become _, and a leading digit gets a _ prefix.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// Close releases nothing: the HTTP client has no state to flush.
func (s *Sink) Close() error { return nil }
