package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	tenantpkg "github.com/sluice-dev/sluice/internal/tenant"
	"github.com/sluice-dev/sluice/stream"
)

// Ingester writes OTLP export requests to the bus. It is safe for
// concurrent use; the gRPC and HTTP servers share one.
type Ingester struct {
	cfg    Config
	bus    Bus
	log    *slog.Logger
	m      *metrics
	topics [len(otlpwire.Signals)]string
	keys   [len(otlpwire.Signals)]otlpwire.KeyMode

	inflight  atomic.Int64
	states    sync.Pool // *exportState
	bufs      sync.Pool // *[]byte: request bodies
	flushBufs sync.Pool // *flushBuf: the group commit's flushers' scratch

	// warnEvery keeps the log volume of client errors and bus failures
	// sane under a flood: at most one line per second per kind.
	badLog, busLog logLimiter

	grpcErrs grpcErrors

	// tokens are the bearer tokens in force (nil: none), replaced as a
	// whole by SetTokens when the tokens file changes.
	tokens atomic.Pointer[Tokens]

	// mu guards the lanes of the group commit (coalesce.go) and the
	// waiting requests' counts.
	mu        sync.Mutex
	lanes     map[laneKey]*lane
	freeLanes []*lane
}

// Result is what became of an accepted request.
type Result struct {
	// Items written to the bus: data points, log records or spans.
	Items int
	// Records holding its items (a record may also hold other requests'
	// items: see the group commit in coalesce.go).
	Records int
	// Rejected items: too large for a record even alone, or breaking the
	// limits of the workers' decoder (invalid UTF-8, AnyValue nested too
	// deep: see otlpwire/limits.go). They are reported to the client as
	// partial success, with RejectReason.
	Rejected     int
	RejectReason string
}

// Read-only header values shared by every record.
var (
	contentTypeValue = []byte(stream.ContentTypeOTLPProto)
	signalValues     = [len(otlpwire.Signals)][]byte{[]byte("metrics"), []byte("logs"), []byte("traces")}
)

const headersPerRecord = 5

// exportState is the per-request working memory, pooled.
type exportState struct {
	sp   otlpwire.Splitter
	recs []stream.Record
	ptrs []*stream.Record
	hdrs []stream.Header
	buf  []byte // header values

	// The group commit (coalesce.go).
	own    []otlpwire.Chunk // chunks of idle lanes, produced by the request
	runs   []*lane          // those lanes
	queued []*lane          // lanes holding the request's other chunks
	recv   time.Time        // when the request was received
	// Guarded by Ingester.mu: the queued chunks without an outcome, and
	// the first error of one. done gets one value when left reaches 0 in a
	// flusher.
	left int
	err  error
	done chan struct{}
}

// poolLimit is the largest request whose buffers go back to the pools; the
// buffers of a larger one are left to the garbage collector so that a few
// huge requests do not pin memory.
const poolLimit = 4 << 20

// New returns an Ingester writing to bus, with cfg's zero fields set to their
// defaults.
func New(cfg Config, bus Bus) (*Ingester, error) {
	if bus == nil {
		return nil, errors.New("ingest: nil bus")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	i := &Ingester{cfg: cfg, bus: bus, log: cfg.Logger.With("component", "ingest")}
	for _, sig := range otlpwire.Signals {
		i.topics[sig] = cfg.Topics.Raw(sig)
		k := cfg.Key[sig]
		if k == otlpwire.KeyDefault {
			k = otlpwire.KeyResource
			if sig == otlpwire.Traces {
				k = otlpwire.KeyTraceID
			}
		}
		i.keys[sig] = k
	}
	i.m = newMetrics(func() float64 { return float64(i.inflight.Load()) })
	if cfg.Registerer != nil {
		if err := i.m.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("ingest: registering metrics: %w", err)
		}
	}
	i.states.New = func() any { return &exportState{done: make(chan struct{}, 1)} }
	i.lanes = make(map[laneKey]*lane)
	i.grpcErrs = newGRPCErrors(cfg.RetryAfter)
	i.tokens.Store(cfg.Tokens)
	return i, nil
}

// Config returns the configuration in effect, defaults applied.
func (i *Ingester) Config() Config { return i.cfg }

// Export writes body, an Export{Metrics,Logs,Trace}ServiceRequest of sig in
// the protobuf encoding, to the signal's raw topic for tenant ("" means
// Config.DefaultTenant; Tenant decides a request's), and returns once the bus has acknowledged every
// record. Body is only read, and not retained after Export returns.
//
// Errors: *BadRequestError (malformed body or tenant), ErrTooLarge,
// ErrOverloaded and ErrUnavailable (both retryable), ErrInternal.
func (i *Ingester) Export(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (Result, error) {
	res, _, err := i.export(ctx, sig, tenant, body)
	return res, err
}

// export is Export that also says whether the bus may still reference body
// (Produce failed, perhaps with records still queued): the caller must not
// reuse body then.
func (i *Ingester) export(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (res Result, retained bool, err error) {
	if sig > otlpwire.Traces {
		return res, false, fmt.Errorf("%w: unknown signal %v", ErrInternal, sig)
	}
	if tenant == "" {
		tenant = i.cfg.DefaultTenant
	} else if err := tenantpkg.Validate(tenant); err != nil {
		return res, false, badRequest(err, "X-Scope-OrgID: %v", err)
	}
	n := int64(len(body))
	if n > int64(i.cfg.MaxRequestBytes) {
		return res, false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, i.cfg.MaxRequestBytes)
	}
	if n == 0 {
		return res, false, nil // an empty request: nothing to write
	}
	if !i.acquire(n) {
		return res, false, ErrOverloaded
	}
	defer i.inflight.Add(-n)
	return i.exportAdmitted(ctx, sig, tenant, body)
}

// exportAdmitted is export for a body whose bytes the caller has already
// counted in the in-flight budget (see budget).
func (i *Ingester) exportAdmitted(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (res Result, retained bool, err error) {
	n := int64(len(body))
	st := i.states.Get().(*exportState)
	opt := otlpwire.Options{
		Partitions:     i.bus.Partitions(i.topics[sig]),
		Key:            i.keys[sig],
		MaxRecordBytes: i.cfg.MaxRecordBytes - headerRoom,
		// Refuse here, in the partial success answer, the items the
		// workers' decoder would refuse (otlpwire/limits.go), rather
		// than write them for a worker to dead-letter.
		Check: true,
	}
	if opt.Partitions <= 0 {
		opt.Partitions, opt.Key = 0, otlpwire.KeyNone
	}
	split, err := st.sp.Split(sig, body, opt)
	if err != nil {
		i.putState(st, n)
		var fe *otlpwire.FormatError
		if errors.As(err, &fe) {
			return res, false, badRequest(err, "malformed %s request: %v", sig, fe)
		}
		return res, false, fmt.Errorf("%w: split: %w", ErrInternal, err)
	}
	res = Result{Items: split.Items, Records: len(split.Chunks), Rejected: split.Rejected, RejectReason: split.RejectReason}
	if len(split.Chunks) > 0 {
		now := time.Now()
		st.recv = now
		queued := i.enqueue(st, sig, tenant, split.Chunks)
		if len(st.own) > 0 {
			recs := st.build(i.topics[sig], sig, tenant, now, st.own)
			pctx, cancel := context.WithTimeout(ctx, i.cfg.ProduceTimeout)
			err = i.bus.Produce(pctx, recs...)
			cancel()
			i.releaseRuns(st)
			if err != nil {
				// The bus may hold on to records it failed to send,
				// and a flusher may hold the request's queued chunks:
				// leave the state (and body) to the garbage collector.
				i.withdraw(st)
				return Result{}, true, produceError(err)
			}
			i.m.records[sig].Add(float64(len(recs)))
		}
		err = i.wait(ctx, st, queued)
		i.m.produce[sig].Observe(time.Since(now).Seconds())
		if err != nil {
			// A failed record may have aliased the body, and chunks
			// still in a record under way will settle st.
			return Result{}, true, produceError(err)
		}
		i.m.items[sig].Add(float64(split.Items))
	}
	if n := split.Rejected - split.Invalid; n > 0 {
		i.m.rejected.WithLabelValues(sig.String(), "too_large").Add(float64(n))
	}
	if split.Invalid > 0 {
		i.m.rejected.WithLabelValues(sig.String(), "invalid").Add(float64(split.Invalid))
	}
	i.putState(st, n)
	return res, false, nil
}

// acquire admits n request bytes unless that would pass MaxInflightBytes.
// A request larger than the whole limit is admitted when nothing else is in
// flight, so that it is never refused forever.
func (i *Ingester) acquire(n int64) bool {
	for {
		cur := i.inflight.Load()
		if cur > 0 && cur+n > i.cfg.MaxInflightBytes {
			return false
		}
		if i.inflight.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// fits reports whether n more bytes would be admitted now (see acquire),
// without admitting them.
func (i *Ingester) fits(n int64) bool {
	cur := i.inflight.Load()
	return n <= 0 || cur == 0 || cur+n <= i.cfg.MaxInflightBytes
}

// budget is one request's share of MaxInflightBytes, held from before its
// body is read until its answer is sent, and grown as decompression and
// JSON conversion need more memory: the in-flight limit bounds every
// buffer a request holds, not only the final protobuf.
type budget struct {
	i    *Ingester
	held int64
}

// ensure grows the share to n bytes; false (overloaded) if the limit does
// not allow it. The first call of a request admits it even past the limit
// when nothing else is in flight (see acquire).
func (b *budget) ensure(n int64) bool {
	if n <= b.held {
		return true
	}
	if !b.i.acquire(n - b.held) {
		return false
	}
	b.held = n
	return true
}

func (b *budget) release() {
	b.i.inflight.Add(-b.held)
	b.held = 0
}

func (i *Ingester) putState(st *exportState, n int64) {
	if n <= poolLimit {
		i.states.Put(st)
	}
}

// build makes one record per chunk. Values alias the chunks (and so the
// body or the Splitter's buffer); header values live in st.buf.
func (st *exportState) build(topic string, sig otlpwire.Signal, tenant string, now time.Time, chunks []otlpwire.Chunk) []*stream.Record {
	n := len(chunks)
	if cap(st.recs) < n {
		st.recs = make([]stream.Record, n)
		st.ptrs = make([]*stream.Record, n)
		st.hdrs = make([]stream.Header, n*headersPerRecord)
	}
	recs, ptrs, hdrs := st.recs[:n], st.ptrs[:n], st.hdrs[:n*headersPerRecord]
	// Size the buffer up front: the header values below slice into it.
	need := len(tenant) + 64 + 20*n
	if cap(st.buf) < need {
		st.buf = make([]byte, 0, need)
	}
	b := append(st.buf[:0], tenant...)
	tenantV := b[0:len(b):len(b)]
	b = now.AppendFormat(b, time.RFC3339Nano)
	recvV := b[len(tenantV):len(b):len(b)]
	for k, c := range chunks {
		start := len(b)
		b = strconv.AppendInt(b, int64(c.Items), 10)
		h := hdrs[k*headersPerRecord : (k+1)*headersPerRecord : (k+1)*headersPerRecord]
		h[0] = stream.Header{Key: stream.HeaderContentType, Value: contentTypeValue}
		h[1] = stream.Header{Key: stream.HeaderTenant, Value: tenantV}
		h[2] = stream.Header{Key: stream.HeaderReceivedAt, Value: recvV}
		h[3] = stream.Header{Key: stream.HeaderItems, Value: b[start:len(b):len(b)]}
		h[4] = stream.Header{Key: stream.HeaderSignal, Value: signalValues[sig]}
		recs[k] = stream.Record{Topic: topic, Partition: c.Partition, Value: c.Value, Headers: h, Timestamp: now}
		ptrs[k] = &recs[k]
	}
	st.buf = b
	return ptrs
}

// getBuf returns a pooled buffer of length 0.
func (i *Ingester) getBuf() *[]byte {
	if b, ok := i.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (i *Ingester) putBuf(b *[]byte) {
	if b != nil && cap(*b) <= poolLimit {
		i.bufs.Put(b)
	}
}

// appendResponse appends the Export*ServiceResponse for res: empty, or with
// partial_success when items were rejected. The three signals' responses
// have the same field numbers.
func appendResponse(dst []byte, sig otlpwire.Signal, res Result) []byte {
	if res.Rejected == 0 {
		return dst
	}
	msg := fmt.Sprintf("%d %s rejected: %s", res.Rejected, itemNoun(sig), res.RejectReason)
	inner := protowire.SizeTag(1) + protowire.SizeVarint(uint64(res.Rejected)) +
		protowire.SizeTag(2) + protowire.SizeBytes(len(msg))
	dst = protowire.AppendTag(dst, 1, protowire.BytesType) // partial_success
	dst = protowire.AppendVarint(dst, uint64(inner))
	dst = protowire.AppendTag(dst, 1, protowire.VarintType) // rejected_*
	dst = protowire.AppendVarint(dst, uint64(res.Rejected))
	dst = protowire.AppendTag(dst, 2, protowire.BytesType) // error_message
	dst = protowire.AppendString(dst, msg)
	return dst
}

func itemNoun(sig otlpwire.Signal) string {
	switch sig {
	case otlpwire.Metrics:
		return "data points"
	case otlpwire.Logs:
		return "log records"
	}
	return "spans"
}

// logFailure counts a failed request and logs it at a level and rate that
// suit its cause.
func (i *Ingester) logFailure(protocol int, sig otlpwire.Signal, tenant string, err error) {
	reason := errReason(err)
	i.m.errors.WithLabelValues(signalLabel(sig), reason).Inc()
	switch reason {
	case "bad_request", "too_large", "unauthenticated", "forbidden":
		if i.log.Enabled(context.Background(), slog.LevelDebug) {
			i.log.Debug("request refused", "protocol", protocolNames[protocol], "signal", signalLabel(sig), "tenant", tenant, "err", err)
		} else if i.badLog.allow() {
			i.log.Warn("request refused (more are logged at debug level)", "protocol", protocolNames[protocol], "signal", signalLabel(sig), "tenant", tenant, "err", err)
		}
	case "overloaded":
		if i.busLog.allow() {
			i.log.Warn("request refused: in-flight limit reached", "protocol", protocolNames[protocol], "signal", signalLabel(sig), "limit_bytes", i.cfg.MaxInflightBytes)
		}
	default:
		if i.busLog.allow() {
			i.log.Error("request failed", "protocol", protocolNames[protocol], "signal", signalLabel(sig), "tenant", tenant, "reason", reason, "err", err)
		}
	}
}

// logLimiter lets one log line through per second.
type logLimiter struct{ next atomic.Int64 }

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	next := l.next.Load()
	return now >= next && l.next.CompareAndSwap(next, now+int64(time.Second))
}
