// Package promrw is the `prometheus_remote_write` sink: it sends metrics to
// Prometheus (--web.enable-remote-write-receiver), VictoriaMetrics, Mimir,
// Thanos receive, Cortex... with the remote write 1.0 protocol (a snappy
// compressed prometheus.WriteRequest protobuf) or 2.0
// (io.prometheus.write.v2.Request: labels as references into a symbols
// table per request, start times, metadata), both encoded here without
// the Prometheus module (proto.go, protov2.go).
//
// # Translation
//
// Records (Arrow batches, or OTLP protobuf) are translated as the
// OpenTelemetry "Prometheus and OpenMetrics compatibility" specification
// says, with github.com/prometheus/otlptranslator for names:
//
//   - Metric names get unit and type suffixes (http.server.duration, unit
//     "s" → http_server_duration_seconds; a monotonic sum "requests", unit
//     "1" → requests_total; a gauge of unit "1" → ..._ratio). Attribute keys
//     are sanitised into label names (http.method → http_method, 2xx →
//     key_2xx); keys that sanitise to the same name have their values joined
//     with ";". Non-string attribute values are written as text (ints in
//     decimal, bytes in base64, arrays and maps as JSON).
//   - Gauge → gauge samples; monotonic cumulative sum → counter (_total);
//     non-monotonic cumulative sum → gauge; histogram → _bucket{le}
//     (cumulative, with le="+Inf"), _sum (when set), _count; summary →
//     {quantile} series, _sum, _count.
//   - Exponential histogram → a native histogram (Prometheus needs
//     --enable-feature=native-histograms); scales above 8 are merged down to
//     8, scales below -4 are dropped. With `exponential_histograms: buckets`
//     they are sent as classic _bucket{le}/_sum/_count series instead (for
//     backends without native histograms, e.g. VictoriaMetrics before 1.92).
//   - Delta temporality: with `delta: reject` (default) delta sums,
//     histograms and exponential histograms are dropped and counted in
//     sluice_sink_dropped_points_total{reason="delta_temporality"} (a record
//     is not dead-lettered for it: its other points are delivered). With
//     `delta: convert` sums and histograms are turned into cumulative ones
//     by a running total per series (delta.go); delta exponential histograms
//     are still dropped. Points without temporality are dropped.
//   - Resource: job = service.namespace/service.name (or service.name),
//     instance = service.instance.id; the resource attributes listed in
//     promote_resource_attributes are copied onto every series; a
//     target_info series (value 1, at the newest point time of the resource
//     in the record) carries job, instance and every other resource
//     attribute, when there are any.
//   - Scope: otel_scope_name, otel_scope_version and otel_scope_<attribute>
//     labels (add_scope_labels: false leaves them out).
//   - Timestamps are milliseconds; a point flagged "no recorded value" is
//     sent as Prometheus' stale marker. Exemplars are not sent. Start times
//     and metric metadata are sent with 2.0 only (1.0 has no place for
//     start times; its metadata is a separate list, not sent): every series
//     gets the type of its metric (gauge; counter for a monotonic sum;
//     histogram, classic or native; summary; target_info a gauge), the
//     description as help and the unit as Prometheus names it ("s" →
//     seconds); the samples of counters, histograms and of summaries' _sum
//     and _count get the point's start time (not those of a running total
//     of delta: convert).
//
// # Cost per series, not per point
//
// The labels of a series (attribute keys made label names, the metric
// name, resource, scope and point labels merged and sorted, the label part
// of the TimeSeries protobuf) are made once and kept in the series cache
// (seriescache.go), bounded by series_cache_bytes (default 64MiB, about
// 120,000 series of a dozen labels; CLOCK eviction). A point then costs a
// key built from its raw attributes, one lookup and a copy. The samples of
// a series within a Write go out as one TimeSeries of many samples
// (collector.go), so a backlog's labels are written, compressed and parsed
// once per series and Write rather than once per point.
//
// # Delivery
//
// The series of a Write are cut into requests of at most
// max_samples_per_request samples (a native histogram counts as one), per
// tenant (the sluice-tenant header, sent in tenant_header, default
// X-Scope-OrgID) and per shard: a series always goes to the shard of its
// label hash, and each of the `concurrency` shards has one request in
// flight, so the samples of a series arrive in order. Write returns nil only
// when every request was accepted. A request refused with a 4xx other than
// 408/429 makes its records (all records with a series in it) a
// *sinks.RejectedError carrying the backend's answer, after the other
// requests were delivered; records that cannot be read are rejected too. A
// connection error, 408, 429 or 5xx makes Write return the *httpsink.Error
// (with the server's Retry-After), and the stage retries the whole batch:
// the requests the backend accepted in the failed try are not sent again
// (Prometheus would refuse their points with a 400, "out of order sample",
// when a series has newer points in the same batch). A batch read again
// after a restart is sent whole; its points are accepted only where they
// are the newest of their series or the backend takes out-of-order samples.
//
// # Protocol
//
// protocol: v1 (default) sends 1.0; v2 sends 2.0; auto sends 2.0 until the
// receiver turns it down, then 1.0 for the rest of the process's life
// (counted in sluice_sink_remote_write_protocol_fallbacks_total, logged
// once). A receiver turns 2.0 down with a 415, a 400 naming the content
// type, or a 2xx without the X-Prometheus-Remote-Write-*-Written headers a
// 2.0 receiver must send (a 1.0 receiver that ignores the content type,
// such as Prometheus 2.x, reads a 2.0 request as a 1.0 one without series
// and answers 204 having written nothing). The requests of the Write are
// then cut again as 1.0 and sent; with protocol v2 those answers are
// retried like a 404, blaming the configuration. A 2xx whose headers count
// fewer samples or histograms than the request held is a refusal of its
// records, like a 400: the receiver does not say which it dropped.
//
// Metrics: sluice_sink_samples_sent_total{sink},
// sluice_sink_requests_total{sink,code} (code "error" when there was no
// answer) and sluice_sink_request_duration_seconds{sink} (both shared with
// the other sinks, package sinkmetrics),
// sluice_sink_rejected_total{sink} (records),
// sluice_sink_remote_write_protocol_fallbacks_total{sink},
// sluice_sink_dropped_points_total{sink,reason}, and the series cache's
// sluice_sink_series_cache_lookups_total{sink,result="hit"|"miss"} (data
// points), sluice_sink_series_cache_evictions_total{sink},
// sluice_sink_series_cache_series{sink} and
// sluice_sink_series_cache_bytes{sink}.
package promrw

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sinks"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
	"github.com/sluice-dev/sluice/stream"
)

// Type is the sink type name.
const Type = "prometheus_remote_write"

func init() {
	sinks.Register(Type, func(entry *config.Sink, env sinks.Env) (sinks.Sink, error) {
		cfg := Config{}
		if err := entry.Decode(&cfg); err != nil {
			return nil, err
		}
		if errs := cfg.check(entry); len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return New(entry.Name, cfg, env)
	})
}

// Config is the sink's part of a sinks entry.
type Config struct {
	httpsink.Config `yaml:",inline"`
	// MaxSamplesPerRequest caps a request (samples and native histograms).
	// Default 2000.
	MaxSamplesPerRequest int `yaml:"max_samples_per_request"`
	// Concurrency is the number of requests in flight (shards). Default 4.
	Concurrency int `yaml:"concurrency"`
	// PromoteResourceAttributes are resource attributes copied onto every
	// series as labels.
	PromoteResourceAttributes []string `yaml:"promote_resource_attributes"`
	// Delta says what happens to points of delta temporality: "reject"
	// (default) drops and counts them; "convert" keeps a running total per
	// series and writes cumulative sums and histograms (delta exponential
	// histograms are still dropped). See delta.go.
	Delta string `yaml:"delta"`
	// ExponentialHistograms: "native" (default) or "buckets" (classic
	// _bucket/_sum/_count series).
	ExponentialHistograms string `yaml:"exponential_histograms"`
	// AddScopeLabels adds otel_scope_name/version/<attr>; default true.
	AddScopeLabels *bool `yaml:"add_scope_labels"`
	// AddTargetInfo writes the target_info series; default true.
	AddTargetInfo *bool `yaml:"add_target_info"`
	// SeriesCacheBytes bounds the series cache (seriescache.go): the
	// labels of each series, made once and kept. Default 64MiB, about
	// 120,000 series of a dozen labels.
	SeriesCacheBytes config.ByteSize `yaml:"series_cache_bytes"`
	// Protocol is the remote write protocol: "v1" (default), "v2", or
	// "auto" (2.0 until the receiver turns it down, then 1.0 for the
	// rest of the process's life). See protov2.go.
	Protocol string `yaml:"protocol"`

	// Derived.
	DisableScopeLabels bool `yaml:"-"`
	DisableTargetInfo  bool `yaml:"-"`
}

const defaultSeriesCacheBytes = 64 << 20

const (
	expNative    = "native"
	expBuckets   = "buckets"
	deltaRej     = "reject"
	deltaConvert = "convert"
)

func (c *Config) check(entry *config.Sink) []error {
	errs := c.Config.Check(entry)
	for _, s := range entry.Signals {
		if s != "metrics" {
			errs = append(errs, entry.Errorf("signals", "the %s sink takes metrics only, not %s", Type, s))
		}
	}
	if c.MaxSamplesPerRequest < 0 {
		errs = append(errs, entry.Errorf("max_samples_per_request", "max_samples_per_request must be positive"))
	}
	if c.Concurrency < 0 || c.Concurrency > 256 {
		errs = append(errs, entry.Errorf("concurrency", "concurrency must be between 1 and 256"))
	}
	switch c.Delta {
	case "", deltaRej, deltaConvert:
	default:
		errs = append(errs, entry.Errorf("delta", "delta must be reject or convert, not %q", c.Delta))
	}
	switch c.ExponentialHistograms {
	case "", expNative, expBuckets:
	default:
		errs = append(errs, entry.Errorf("exponential_histograms", "exponential_histograms must be native or buckets, not %q", c.ExponentialHistograms))
	}
	switch c.Protocol {
	case "", protoV1, protoV2, protoAuto:
	default:
		errs = append(errs, entry.Errorf("protocol", "protocol must be v1, v2 or auto, not %q", c.Protocol))
	}
	return errs
}

func (c *Config) defaults() {
	if c.MaxSamplesPerRequest <= 0 {
		c.MaxSamplesPerRequest = 2000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Delta == "" {
		c.Delta = deltaRej
	}
	if c.ExponentialHistograms == "" {
		c.ExponentialHistograms = expNative
	}
	if c.SeriesCacheBytes == 0 {
		c.SeriesCacheBytes = defaultSeriesCacheBytes
	}
	if c.Protocol == "" {
		c.Protocol = protoV1
	}
	c.DisableScopeLabels = c.AddScopeLabels != nil && !*c.AddScopeLabels
	c.DisableTargetInfo = c.AddTargetInfo != nil && !*c.AddTargetInfo
}

// Sink sends to one remote write URL.
type Sink struct {
	name   string
	cfg    Config
	client *httpsink.Client
	log    *slog.Logger
	m      *sinkMetrics
	tr     *translator
	col    collector
	batch  *schemas.Builder
	// v2: requests are remote write 2.0 ones (protocol v2, or auto until
	// the receiver turned 2.0 down).
	v2 bool

	// accepted holds the requests (hashes of tenant and body) the backend
	// accepted during the Write of the batch in hand, when that Write
	// failed: the stage calls Write again with the same records, and those
	// requests are not sent again, since Prometheus refuses points older
	// than the newest of their series with a 400 ("out of order sample")
	// even when it already holds them.
	accepted     map[uint64]bool
	acceptedOf   [2]*stream.Record // first and last record of that batch
	acceptedLen  int
	acceptedSeed maphash.Seed
}

// New builds a sink named name (the sink label of its metrics).
func New(name string, cfg Config, env sinks.Env) (*Sink, error) {
	cfg.defaults()
	m := newMetrics(env.Registerer, name)
	client, err := httpsink.New(cfg.Config, m.shared)
	if err != nil {
		return nil, fmt.Errorf("%s sink: %w", Type, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{name: name, cfg: cfg, client: client, log: log, m: m,
		accepted: map[uint64]bool{}, acceptedSeed: maphash.MakeSeed()}
	s.col = collector{maxSamples: cfg.MaxSamplesPerRequest, shards: cfg.Concurrency}
	s.tr = newTranslator(&s.cfg, &s.col)
	s.v2 = cfg.Protocol != protoV1
	return s, nil
}

// Close releases nothing of importance.
func (s *Sink) Close() error {
	if s.batch != nil {
		s.batch.Release()
		s.batch = nil
	}
	return nil
}

// Write translates recs and sends them; see the package doc.
func (s *Sink) Write(ctx context.Context, recs []*stream.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if batch := [2]*stream.Record{recs[0], recs[len(recs)-1]}; batch != s.acceptedOf || len(recs) != s.acceptedLen {
		clear(s.accepted) // not a retry of the failed batch
		s.acceptedOf, s.acceptedLen = batch, len(recs)
	}
	s.col.reset()
	clear(s.tr.dropped)
	bad := map[int32]bool{}
	var badReason string
	for i, r := range recs {
		if err := s.translate(r, int32(i)); err != nil {
			bad[int32(i)] = true
			if badReason == "" {
				badReason = err.Error()
			}
		}
	}
	s.col.finish(s.v2)
	s.cacheStats()
	for reason, n := range s.tr.dropped {
		s.m.dropped.WithLabelValues(s.name, reason).Add(float64(n))
		if reason == dropDelta {
			s.log.Debug("dropped data points of delta temporality (delta: reject)", "points", n)
		}
	}

	rejected, err := s.send(ctx)
	if errors.Is(err, errFallback) {
		// The receiver takes 1.0 only: the batch goes again as 1.0, and
		// every later one.
		s.v2, s.tr.v2 = false, false // no more start times and metadata to make
		s.m.fallbacks.WithLabelValues(s.name).Inc()
		s.log.Warn("the remote write receiver does not take 2.0 messages: sending 1.0 from now on (protocol: auto)", "reason", err.Error())
		s.col.recut(false)
		rejected, err = s.send(ctx)
	}
	if s.tr.delta != nil {
		if err != nil {
			s.tr.delta.discard() // the retry counts these deltas again
		} else {
			s.tr.delta.commit(time.Now())
		}
	}
	if err != nil {
		return err
	}
	if len(rejected.recs) == 0 && len(bad) == 0 {
		return nil
	}
	rej := &sinks.RejectedError{Reason: badReason}
	for i, r := range recs {
		if bad[int32(i)] || rejected.recs[int32(i)] {
			rej.Records = append(rej.Records, r)
		}
	}
	if rejected.reason != "" {
		if rej.Reason != "" {
			rej.Reason += "; "
		}
		rej.Reason += rejected.reason
	}
	s.m.rejected.WithLabelValues(s.name).Add(float64(len(rej.Records)))
	return rej
}

// translate adds the series of record r (index rec) to the collector.
func (s *Sink) translate(r *stream.Record, rec int32) error {
	if sig := string(r.Header(stream.HeaderSignal)); sig != "" && sig != otlpwire.Metrics.String() {
		return fmt.Errorf("%s sink: record %s/%d@%d is %s, not metrics", Type, r.Topic, r.Partition, r.Offset, sig)
	}
	tenant, err := r.Tenant()
	if err != nil {
		return fmt.Errorf("%s sink: %w", Type, err)
	}
	s.col.tenant(tenant)
	var b *schemas.Batch
	switch ct := string(r.Header(stream.HeaderContentType)); ct {
	case stream.ContentTypeArrow:
		// by set: a series is looked up once per resource, metric and
		// attribute set, and the sets need not be expanded per point
		b, err = schemas.ReadBatchSets(r.Value, arrowpool.Default)
	case stream.ContentTypeOTLPProto, "":
		if s.batch == nil {
			s.batch = schemas.NewBuilder(otlpwire.Metrics, arrowpool.Default)
		}
		if _, err = s.batch.Append(r.Value); err == nil {
			b = s.batch.Build()
		}
	default:
		err = fmt.Errorf("content type %q (valid: %s, %s)", ct, stream.ContentTypeArrow, stream.ContentTypeOTLPProto)
	}
	if err != nil {
		return fmt.Errorf("%s sink: record %s/%d@%d: %w", Type, r.Topic, r.Partition, r.Offset, err)
	}
	defer b.Release()
	if err := s.tr.translate(b, rec); err != nil {
		return fmt.Errorf("%s sink: record %s/%d@%d: %w", Type, r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// cacheStats moves the series cache's counts to the metrics.
func (s *Sink) cacheStats() {
	c := s.tr.cache
	if c == nil {
		return
	}
	s.m.cacheLookups.WithLabelValues(s.name, "hit").Add(float64(c.hits))
	s.m.cacheLookups.WithLabelValues(s.name, "miss").Add(float64(c.misses))
	s.m.cacheEvictions.WithLabelValues(s.name).Add(float64(c.evictions))
	c.hits, c.misses, c.evictions = 0, 0, 0
	s.m.cacheSeries.WithLabelValues(s.name).Set(float64(c.len()))
	s.m.cacheBytes.WithLabelValues(s.name).Set(float64(c.bytes))
}

type rejection struct {
	recs   map[int32]bool
	reason string
}

// errFallback: with protocol auto, the receiver turned a 2.0 request down
// (415, a 400 naming the content type, or a 2xx without the written
// headers of 2.0: a 1.0 receiver that read the request as a 1.0 one and
// found nothing in it).
var errFallback = errors.New("the receiver takes remote write 1.0 only")

// send posts the collected requests, one shard per goroutine. It returns
// the records of refused requests, or the first retryable error, or
// errFallback (wrapped) when the requests must go again as 1.0 ones.
func (s *Sink) send(ctx context.Context) (rejection, error) {
	rej := rejection{recs: map[int32]bool{}}
	var (
		mu       sync.Mutex
		retryErr error
		fallback error
		wg       sync.WaitGroup
	)
	for sh := 0; sh < s.col.shards; sh++ {
		var reqs []*request
		for _, t := range s.col.tenants {
			reqs = append(reqs, t.shards[sh]...)
		}
		if len(reqs) == 0 {
			continue
		}
		wg.Go(func() {
			var buf []byte
			for _, r := range reqs {
				// The request's identity is its compressed body: the same
				// for the same body, and a fifth of its bytes to hash.
				buf = s2.EncodeSnappy(buf[:cap(buf)], r.body)
				h := s.requestHash(r.tenant, buf)
				mu.Lock()
				done := s.accepted[h]
				mu.Unlock()
				if done {
					continue // accepted by an earlier try of this batch
				}
				err := s.post(ctx, r, buf)
				mu.Lock()
				if err == nil {
					s.accepted[h] = true
					mu.Unlock()
					continue
				}
				if errors.Is(err, errFallback) {
					if fallback == nil {
						fallback = err
					}
					mu.Unlock()
					return
				}
				if httpsink.IsRejected(err) {
					for _, i := range r.recs {
						rej.recs[i] = true
					}
					if rej.reason == "" {
						rej.reason = err.Error()
					}
					mu.Unlock()
					continue
				}
				if retryErr == nil {
					retryErr = err
				}
				mu.Unlock()
				return // keep this shard's order: nothing after a failed request
			}
		})
	}
	wg.Wait()
	if fallback != nil {
		return rejection{}, fallback
	}
	if retryErr != nil {
		return rejection{}, fmt.Errorf("%s sink %s: %w", Type, s.name, retryErr)
	}
	return rej, nil
}

// requestHash identifies a request among those of a batch by its tenant
// and compressed body.
func (s *Sink) requestHash(tenant string, compressed []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(s.acceptedSeed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.Write(compressed)
	return h.Sum64()
}

var (
	headersV1 = map[string]string{"X-Prometheus-Remote-Write-Version": versionV1}
	headersV2 = map[string]string{"X-Prometheus-Remote-Write-Version": versionV2}
)

func (s *Sink) post(ctx context.Context, r *request, body []byte) error {
	start := time.Now()
	hr := httpsink.Request{Body: body, ContentType: contentTypeV1, ContentEncoding: "snappy", Tenant: r.tenant, Headers: headersV1}
	var err error
	if r.v2 {
		hr.ContentType, hr.Headers = contentTypeV2, headersV2
		var h http.Header
		h, err = s.client.PostForHeader(ctx, hr)
		err = s.checkV2(r, h, err)
	} else {
		err = s.client.Post(ctx, hr)
	}
	s.m.shared.Duration.Observe(time.Since(start).Seconds())
	if errors.Is(err, errFallback) {
		return err // no answer to count: the request goes again as 1.0
	}
	code := "200"
	var he *httpsink.Error
	switch {
	case errors.As(err, &he) && he.Status != 0:
		code = strconv.Itoa(he.Status)
	case err != nil:
		code = "error"
	}
	s.m.shared.Requests(code).Inc()
	if err == nil {
		s.m.samples.WithLabelValues(s.name).Add(float64(r.samples))
	} else if he != nil && !he.Retryable {
		s.log.Warn("remote write request refused", "status", he.Status, "answer", truncate(he.Body, 200), "samples", r.samples)
	}
	return err
}

// checkV2 sorts the answer to a 2.0 request r: err is the POST's, h the
// header of a 2xx answer. A receiver that does not take 2.0 (415, a 400
// naming the content type, a 2xx without the written headers) gives
// errFallback with protocol auto; with protocol v2 it is a refusal that
// blames the configuration, retried like a 404. A 2xx whose headers count
// fewer samples or histograms than r holds is a refusal of the data, like
// a 400 (the receiver wrote the rest; which samples it dropped it does
// not say).
func (s *Sink) checkV2(r *request, h http.Header, err error) error {
	var he *httpsink.Error
	if err != nil {
		if !errors.As(err, &he) || !unsupportedV2(he) {
			return err
		}
		if s.cfg.Protocol == protoAuto {
			return fmt.Errorf("%w: %v", errFallback, err)
		}
		s.m.shared.ConfigRefusals(strconv.Itoa(he.Status)).Inc()
		return &httpsink.Error{Status: he.Status, Body: he.Body + " (protocol: v2; this receiver may take v1 only)", Retryable: true, Config: true, Err: he.Err}
	}
	w, perr := parseWritten(h)
	if perr != nil {
		return &httpsink.Error{Status: http.StatusOK, Body: "remote write 2.0 answer: " + perr.Error(), Retryable: true}
	}
	if !w.confirmed {
		msg := "2xx without X-Prometheus-Remote-Write-*-Written headers: a remote write 1.0 receiver, which wrote none of the request"
		if s.cfg.Protocol == protoAuto {
			return fmt.Errorf("%w: %s", errFallback, msg)
		}
		s.m.shared.ConfigRefusals("2xx").Inc()
		return &httpsink.Error{Status: http.StatusOK, Body: msg + " (protocol: v2; this receiver may take v1 only)", Retryable: true, Config: true}
	}
	if floats := int64(r.samples - r.hists); w.samples < floats || w.histograms < int64(r.hists) {
		return &httpsink.Error{Status: http.StatusOK, Body: fmt.Sprintf("the receiver wrote %d of %d samples and %d of %d histograms",
			w.samples, floats, w.histograms, r.hists)}
	}
	return nil
}

// unsupportedV2 reports whether an answer says the receiver does not take
// 2.0 messages: 415, or a 400 naming the content type or message.
func unsupportedV2(e *httpsink.Error) bool {
	if e.Status == http.StatusUnsupportedMediaType {
		return true
	}
	if e.Status != http.StatusBadRequest {
		return false
	}
	b := strings.ToLower(e.Body)
	return strings.Contains(b, "content-type") || strings.Contains(b, "content type") ||
		strings.Contains(b, "media type") || strings.Contains(b, "io.prometheus.write.v2")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return strings.TrimSpace(s)
}

type sinkMetrics struct {
	samples, rejected, dropped   *prometheus.CounterVec
	fallbacks                    *prometheus.CounterVec
	cacheLookups, cacheEvictions *prometheus.CounterVec
	cacheSeries, cacheBytes      *prometheus.GaugeVec
	shared                       sinkmetrics.Sink // requests_total, request_duration_seconds
}

func newMetrics(reg prometheus.Registerer, name string) *sinkMetrics {
	m := &sinkMetrics{
		shared: sinkmetrics.New(reg).For(name),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_samples_sent_total",
			Help: "Samples (and native histograms) accepted by the remote write backend."}, []string{"sink"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_rejected_total",
			Help: "Records refused for good (sent to the dead-letter topic)."}, []string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_dropped_points_total",
			Help: "Data points not translated (delta temporality, unsupported scale, ...)."}, []string{"sink", "reason"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_remote_write_protocol_fallbacks_total",
			Help: "Times the receiver turned remote write 2.0 down and the sink went on with 1.0 (protocol: auto)."}, []string{"sink"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_series_cache_lookups_total",
			Help: "Data points whose series labels were found in the series cache (result hit) or made (miss)."}, []string{"sink", "result"}),
		cacheEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_series_cache_evictions_total",
			Help: "Series evicted from the series cache to make room (series_cache_bytes)."}, []string{"sink"}),
		cacheSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sink_series_cache_series",
			Help: "Series in the series cache."}, []string{"sink"}),
		cacheBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_sink_series_cache_bytes",
			Help: "Bytes the series cache counts against series_cache_bytes."}, []string{"sink"}),
	}
	if reg == nil {
		return m
	}
	m.samples = register(reg, m.samples)
	m.rejected = register(reg, m.rejected)
	m.dropped = register(reg, m.dropped)
	m.fallbacks = register(reg, m.fallbacks)
	m.cacheLookups = register(reg, m.cacheLookups)
	m.cacheEvictions = register(reg, m.cacheEvictions)
	m.cacheSeries = register(reg, m.cacheSeries)
	m.cacheBytes = register(reg, m.cacheBytes)
	return m
}

// register registers c, or returns the collector already registered under
// its name (several sinks share the metrics, told apart by the sink label).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
