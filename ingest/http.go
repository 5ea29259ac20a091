package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpjson"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// OTLP/HTTP paths.
const (
	PathMetrics = "/v1/metrics"
	PathLogs    = "/v1/logs"
	PathTraces  = "/v1/traces"
)

const (
	contentTypeJSON  = "application/json"
	contentTypeProto = "application/x-protobuf"
	headerTenant     = "X-Scope-Orgid" // X-Scope-OrgID, canonical form
)

// Shared header values; net/http only reads them.
var (
	hdrProto      = []string{contentTypeProto}
	hdrJSON       = []string{contentTypeJSON}
	hdrAllow      = []string{http.MethodPost}
	hdrAuthBearer = []string{`Bearer realm="sluice"`}
)

type encodingKind uint8

const (
	encProto encodingKind = iota
	encJSON
)

// httpHandler serves OTLP/HTTP.
type httpHandler struct {
	i      *Ingester
	zstd   *zstd.Decoder
	states sync.Pool // *httpState
}

// httpState is the per-request working memory, pooled.
type httpState struct {
	wire, plain, pb []byte
	out             []byte
	br              bytes.Reader
	gz              gzip.Reader
}

// HTTPHandler returns the OTLP/HTTP handler: POST /v1/metrics, /v1/logs and
// /v1/traces with a protobuf or JSON body, identity, gzip or zstd encoded.
func (i *Ingester) HTTPHandler() http.Handler {
	// DecodeAll needs no goroutines; the concurrency is how many requests
	// decode at once.
	zd, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(i.cfg.MaxRequestBytes)),
		zstd.WithDecoderMaxWindow(uint64(max(i.cfg.MaxRequestBytes, zstd.MinWindowSize))))
	if err != nil {
		panic(err) // only for invalid options, which are constant here
	}
	h := &httpHandler{i: i, zstd: zd}
	h.states.New = func() any { return new(httpState) }
	return h
}

func pathSignal(p string) (otlpwire.Signal, bool) {
	switch p {
	case PathMetrics:
		return otlpwire.Metrics, true
	case PathLogs:
		return otlpwire.Logs, true
	case PathTraces:
		return otlpwire.Traces, true
	}
	return 0, false
}

// httpError is a refusal before or after Export, with its HTTP status.
type httpError struct {
	status int
	err    error
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sig, ok := pathSignal(r.URL.Path)
	if !ok {
		h.fail(w, r, 255, encProto, http.StatusNotFound, fmt.Errorf("no OTLP endpoint at %q (valid: %s, %s, %s)", r.URL.Path, PathMetrics, PathLogs, PathTraces))
		return
	}
	enc, ok := requestEncoding(r.Header["Content-Type"])
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = hdrAllow
		h.fail(w, r, sig, enc, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed, use POST", r.Method))
		return
	}
	if !ok {
		h.fail(w, r, sig, encProto, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Type %q (valid: %s, %s)", r.Header.Get("Content-Type"), contentTypeProto, contentTypeJSON))
		return
	}
	tenant, err := h.i.Tenant(r.Header["Authorization"], r.Header[headerTenant])
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			w.Header()["Www-Authenticate"] = hdrAuthBearer
		}
		h.failExport(w, r, sig, enc, tenantOf(r), err)
		return
	}

	// Admit the request against the in-flight budget before reading it:
	// under overload, or when its declared length does not fit, it is
	// refused without its body ever being buffered. It reserves only its
	// first bytes now, the rest as they arrive (readLimited): connections
	// that announce large bodies and send them slowly, or not at all, hold
	// little of the budget, until ReadTimeout ends them.
	bud := budget{i: h.i}
	defer bud.release()
	if !h.i.fits(r.ContentLength) || !bud.ensure(min(max(r.ContentLength, 0), bodyReserveStep)) {
		h.failExport(w, r, sig, enc, tenant, ErrOverloaded)
		return
	}
	st := h.states.Get().(*httpState)
	body, herr := h.readBody(st, r, sig, enc, &bud)
	if herr != nil {
		h.states.Put(st)
		h.fail(w, r, sig, enc, herr.status, herr.err)
		return
	}
	if len(body) == 0 {
		h.respond(w, st, sig, enc, Result{})
		h.putState(st)
		return
	}
	res, retained, err := h.i.exportAdmitted(r.Context(), sig, tenant, body)
	if err != nil {
		if !retained {
			h.putState(st)
		}
		h.failExport(w, r, sig, enc, tenant, err)
		return
	}
	h.respond(w, st, sig, enc, res)
	h.putState(st)
}

// bodyReserveStep is the most a request reserves of the in-flight budget
// before its bytes arrive: its first read, and the least by which its share
// grows.
const bodyReserveStep = 16 << 10

func (h *httpHandler) putState(st *httpState) {
	if max(cap(st.wire), cap(st.plain), cap(st.pb)) <= poolLimit {
		h.states.Put(st)
	}
}

// requestEncoding parses a Content-Type value, ignoring parameters such as
// charset.
func requestEncoding(v []string) (encodingKind, bool) {
	if len(v) == 0 {
		return encProto, false
	}
	mt := v[0]
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, contentTypeProto):
		return encProto, true
	case strings.EqualFold(mt, contentTypeJSON):
		return encJSON, true
	}
	return encProto, false
}

// readBody reads, decompresses and (for JSON) converts the body to
// protobuf, within MaxRequestBytes at every step.
// Every buffer it fills is counted in bud first; *httpError carries
// ErrOverloaded (429) when the budget cannot grow.
func (h *httpHandler) readBody(st *httpState, r *http.Request, sig otlpwire.Signal, enc encodingKind, bud *budget) ([]byte, *httpError) {
	limit := h.i.cfg.MaxRequestBytes
	if r.ContentLength > int64(limit) {
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes exceeds the limit of %d", r.ContentLength, limit)}
	}
	var err error
	var tooLarge bool
	// grow counts a buffer about to reach size bytes, on top of those
	// already filled.
	var filled int64
	grow := func(size int) bool { return bud.ensure(filled + int64(size)) }
	st.wire, tooLarge, err = readLimited(st.wire[:0], r.Body, int(r.ContentLength), limit, grow)
	filled += int64(len(st.wire))
	switch {
	case errors.Is(err, ErrOverloaded):
		return nil, &httpError{http.StatusTooManyRequests, err}
	case tooLarge:
		return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("body exceeds the limit of %d bytes", limit)}
	case err != nil:
		return nil, &httpError{http.StatusBadRequest, fmt.Errorf("reading body: %w", err)}
	}
	h.i.m.bytes[sig].Add(float64(len(st.wire)))

	body := st.wire
	ce := ""
	if v := r.Header["Content-Encoding"]; len(v) > 0 {
		ce = strings.ToLower(strings.TrimSpace(v[0]))
	}
	switch ce {
	case "", "identity":
	case "gzip":
		st.br.Reset(st.wire)
		if err := st.gz.Reset(&st.br); err != nil {
			return nil, &httpError{http.StatusBadRequest, fmt.Errorf("bad gzip body: %w", err)}
		}
		st.plain, tooLarge, err = readLimited(st.plain[:0], &st.gz, 0, limit, grow)
		switch {
		case errors.Is(err, ErrOverloaded):
			return nil, &httpError{http.StatusTooManyRequests, err}
		case tooLarge:
			return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed body exceeds the limit of %d bytes", limit)}
		case err != nil:
			return nil, &httpError{http.StatusBadRequest, fmt.Errorf("bad gzip body: %w", err)}
		}
		body = st.plain
		filled += int64(len(st.plain))
	case "zstd":
		// The frame header usually states the decompressed size; count
		// it (or the limit, when it does not) before decoding.
		want := limit
		var fh zstd.Header
		if fh.Decode(st.wire) == nil && fh.HasFCS && fh.FrameContentSize <= uint64(limit) {
			want = int(fh.FrameContentSize)
		}
		if !grow(want) {
			return nil, &httpError{http.StatusTooManyRequests, ErrOverloaded}
		}
		st.plain, err = h.zstd.DecodeAll(st.wire, st.plain[:0])
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded), err == nil && len(st.plain) > limit:
			return nil, &httpError{http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed body exceeds the limit of %d bytes", limit)}
		case err != nil:
			return nil, &httpError{http.StatusBadRequest, fmt.Errorf("bad zstd body: %w", err)}
		}
		body = st.plain
		filled += int64(len(st.plain))
	default:
		return nil, &httpError{http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q (valid: gzip, zstd, identity)", ce)}
	}

	if enc == encJSON {
		// The protobuf form of OTLP/JSON is smaller than the JSON.
		if !grow(len(body)) {
			return nil, &httpError{http.StatusTooManyRequests, ErrOverloaded}
		}
		st.pb, err = otlpjson.UnmarshalRequest(sig, body, st.pb[:0])
		if err != nil {
			return nil, &httpError{http.StatusBadRequest, fmt.Errorf("malformed OTLP/JSON %s request: %w", sig, err)}
		}
		body = st.pb
	}
	return body, nil
}

// readLimited appends r's content to dst; it stops reading once more than
// limit bytes came. hint, when positive, is the expected length.
// grow is asked before each read for the bytes dst will then hold at most,
// so that what a request holds of the budget follows what it sent: each
// read may add as much as came before (at least bodyReserveStep), and the
// buffer grows as it fills, up to hint. false stops with ErrOverloaded.
func readLimited(dst []byte, r io.Reader, hint, limit int, grow func(size int) bool) (_ []byte, tooLarge bool, _ error) {
	for {
		if len(dst) == cap(dst) {
			n := max(2*cap(dst), bodyReserveStep)
			if hint >= len(dst) {
				n = min(n, hint+1) // +1: EOF is seen without growing
			}
			dst = slices.Grow(dst, n-len(dst))
		}
		end := min(cap(dst), limit+1, len(dst)+max(len(dst), bodyReserveStep))
		if hint >= len(dst) {
			end = min(end, hint+1) // not the allocator's rounding up
		}
		if !grow(end) {
			return dst, false, ErrOverloaded
		}
		n, err := r.Read(dst[len(dst):end])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, true, nil
		}
		if err == io.EOF {
			return dst, false, nil
		}
		if err != nil {
			return dst, false, err
		}
	}
}

func (h *httpHandler) respond(w http.ResponseWriter, st *httpState, sig otlpwire.Signal, enc encodingKind, res Result) {
	st.out = appendResponse(st.out[:0], sig, res)
	hdr := w.Header()
	if enc == encJSON {
		hdr["Content-Type"] = hdrJSON
		js, err := otlpjson.MarshalResponse(sig, st.out, nil)
		if err != nil { // cannot happen: the response is ours
			js = []byte("{}")
		}
		st.out = js
	} else {
		hdr["Content-Type"] = hdrProto
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(st.out))}
	w.WriteHeader(http.StatusOK)
	w.Write(st.out)
	h.i.m.request(protoHTTP, sig, "200")
}

// failExport answers an error of Authenticate or export.
func (h *httpHandler) failExport(w http.ResponseWriter, r *http.Request, sig otlpwire.Signal, enc encodingKind, tenant string, err error) {
	h.i.logFailure(protoHTTP, sig, tenant, err)
	var bad *BadRequestError
	code := http.StatusInternalServerError
	switch {
	case errors.As(err, &bad):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		code = http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrOverloaded):
		code = http.StatusTooManyRequests
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	h.writeStatus(w, sig, enc, code, err)
}

// fail answers a refusal found before export.
func (h *httpHandler) fail(w http.ResponseWriter, r *http.Request, sig otlpwire.Signal, enc encodingKind, code int, err error) {
	switch code {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		h.i.m.errors.WithLabelValues(signalLabel(sig), "bad_request").Inc()
	case http.StatusRequestEntityTooLarge:
		h.i.logFailure(protoHTTP, sig, tenantOf(r), fmt.Errorf("%w: %w", ErrTooLarge, err))
	default:
		h.i.logFailure(protoHTTP, sig, tenantOf(r), &BadRequestError{Msg: err.Error(), Err: err})
	}
	h.writeStatus(w, sig, enc, code, err)
}

func tenantOf(r *http.Request) string {
	if v := r.Header[headerTenant]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// writeStatus writes an error response: a google.rpc.Status in the request's
// encoding, as OTLP/HTTP asks, with Retry-After when retrying helps.
func (h *httpHandler) writeStatus(w http.ResponseWriter, sig otlpwire.Signal, enc encodingKind, code int, err error) {
	msg := err.Error()
	var bad *BadRequestError
	if errors.As(err, &bad) {
		msg = bad.Msg
	}
	s := &statuspb.Status{Code: int32(httpToGRPC(code)), Message: msg}
	var body []byte
	hdr := w.Header()
	if enc == encJSON {
		body, _ = protojson.Marshal(s)
		hdr["Content-Type"] = hdrJSON
	} else {
		body, _ = proto.Marshal(s)
		hdr["Content-Type"] = hdrProto
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		secs := int64((h.i.cfg.RetryAfter + 999_999_999) / 1_000_000_000)
		hdr["Retry-After"] = []string{strconv.FormatInt(max(secs, 1), 10)}
	}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	w.Write(body)
	h.i.m.request(protoHTTP, sig, strconv.Itoa(code))
}

func httpToGRPC(code int) codes.Code {
	switch code {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusMethodNotAllowed:
		return codes.Unimplemented
	case http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Internal
}
