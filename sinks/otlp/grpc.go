package otlp

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
)

var grpcMethods = [...]string{
	otlpwire.Metrics: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
	otlpwire.Logs:    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
	otlpwire.Traces:  "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}

// rawCodec sends the request bytes as they are and keeps the answer's
// bytes: the records already hold the encoded requests.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

type grpcExporter struct {
	cfg       Config
	conn      *grpc.ClientConn
	md        []string // static metadata, key/value pairs
	tenantKey string
	opts      []grpc.CallOption
	metrics   sinkmetrics.Sink
}

func newGRPC(cfg Config, m sinkmetrics.Sink, log *slog.Logger) (*grpcExporter, error) {
	target, scheme, err := grpcTarget(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	useTLS := true
	switch {
	case cfg.Insecure:
		useTLS = false
	case cfg.TLS != nil:
	case scheme != 0:
		useTLS = scheme > 0
	default:
		useTLS = !loopback(target)
	}
	creds := insecure.NewCredentials()
	if useTLS {
		tlsCfg, err := cfg.TLS.ClientConfig()
		if err != nil {
			return nil, err
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	log.Debug("otlp gRPC exporter", "endpoint", target, "tls", useTLS)
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	e := &grpcExporter{cfg: cfg, conn: conn, metrics: m, opts: []grpc.CallOption{grpc.ForceCodec(rawCodec{})}}
	if cfg.Compression != "none" {
		e.opts = append(e.opts, grpc.UseCompressor(gzip.Name))
	}
	for k, v := range cfg.Headers {
		e.md = append(e.md, strings.ToLower(k), v)
	}
	if cfg.BasicAuth != nil {
		pass, err := cfg.BasicAuth.Secret()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("basic_auth password_file: %w", err)
		}
		e.md = append(e.md, "authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cfg.BasicAuth.Username+":"+pass)))
	} else if cfg.BearerToken != "" {
		e.md = append(e.md, "authorization", "Bearer "+cfg.BearerToken)
	}
	switch cfg.TenantHeader {
	case "":
		e.tenantKey = "x-scope-orgid"
	case "none":
	default:
		e.tenantKey = strings.ToLower(cfg.TenantHeader)
	}
	return e, nil
}

// loopback reports whether host:port names this machine.
func loopback(target string) bool {
	host, _, _ := net.SplitHostPort(target)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (e *grpcExporter) export(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (int64, string, error) {
	md := e.md
	if e.tenantKey != "" && tenant != "" {
		md = append(md[:len(md):len(md)], e.tenantKey, tenant)
	}
	if e.cfg.BearerTokenFile != "" {
		tok, err := os.ReadFile(e.cfg.BearerTokenFile)
		if err != nil {
			return 0, "", fmt.Errorf("bearer token: %w", err)
		}
		md = append(md[:len(md):len(md)], "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var resp []byte
	err := e.conn.Invoke(ctx, grpcMethods[sig], &body, &resp, e.opts...)
	st := status.Convert(err)
	e.metrics.Requests(st.Code().String()).Inc()
	if err != nil {
		return 0, "", e.grpcError(st)
	}
	return partialSuccess(sig, resp)
}

// partialSuccess reads the partial_success of an Export*ServiceResponse.
func partialSuccess(sig otlpwire.Signal, resp []byte) (int64, string, error) {
	if len(resp) == 0 {
		return 0, "", nil
	}
	switch sig {
	case otlpwire.Metrics:
		var r colmetrics.ExportMetricsServiceResponse
		if err := proto.Unmarshal(resp, &r); err != nil {
			return 0, "", nil // delivered; the answer is only informative
		}
		return r.GetPartialSuccess().GetRejectedDataPoints(), r.GetPartialSuccess().GetErrorMessage(), nil
	case otlpwire.Logs:
		var r collogs.ExportLogsServiceResponse
		if err := proto.Unmarshal(resp, &r); err != nil {
			return 0, "", nil
		}
		return r.GetPartialSuccess().GetRejectedLogRecords(), r.GetPartialSuccess().GetErrorMessage(), nil
	default:
		var r coltrace.ExportTraceServiceResponse
		if err := proto.Unmarshal(resp, &r); err != nil {
			return 0, "", nil
		}
		return r.GetPartialSuccess().GetRejectedSpans(), r.GetPartialSuccess().GetErrorMessage(), nil
	}
}

// retryable is an error the stage retries, after RetryAfter at least.
type retryable struct {
	err   error
	after time.Duration
}

func (r *retryable) Error() string             { return r.err.Error() }
func (r *retryable) Unwrap() error             { return r.err }
func (r *retryable) RetryAfter() time.Duration { return r.after }

// grpcError sorts a failed export (the OTLP specification's rules, except
// that errors about the sink's configuration — UNAUTHENTICATED,
// PERMISSION_DENIED, UNIMPLEMENTED, NOT_FOUND — and server faults are
// retried rather than dead-lettering the data; the former are counted in
// sluice_sink_config_refusals_total). A RetryInfo delay is capped at
// retry_after_max, as an HTTP Retry-After is.
func (e *grpcExporter) grpcError(st *status.Status) error {
	err := st.Err()
	var after time.Duration
	hasRetryInfo := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hasRetryInfo = true
			after = ri.GetRetryDelay().AsDuration()
		}
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists:
		return &permanent{err}
	case codes.ResourceExhausted:
		if !hasRetryInfo { // e.g. a message larger than the server accepts
			return &permanent{err}
		}
	case codes.Unauthenticated, codes.PermissionDenied, codes.NotFound, codes.Unimplemented:
		e.metrics.ConfigRefusals(st.Code().String()).Inc()
	}
	return &retryable{err: err, after: httpsink.CapRetryAfter(after, e.cfg.RetryAfterMax, e.metrics)}
}

func (e *grpcExporter) close() error { return e.conn.Close() }
