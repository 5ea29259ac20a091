package ingest

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // gzip request decompression
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/types/known/durationpb"
)

// gRPC service and method names of the OTLP collector services.
var grpcServices = [len(otlpwire.Signals)]struct{ service, file string }{
	otlpwire.Metrics: {"opentelemetry.proto.collector.metrics.v1.MetricsService", "opentelemetry/proto/collector/metrics/v1/metrics_service.proto"},
	otlpwire.Logs:    {"opentelemetry.proto.collector.logs.v1.LogsService", "opentelemetry/proto/collector/logs/v1/logs_service.proto"},
	otlpwire.Traces:  {"opentelemetry.proto.collector.trace.v1.TraceService", "opentelemetry/proto/collector/trace/v1/trace_service.proto"},
}

// NewGRPCServer returns a gRPC server with the OTLP services registered and
// the options they need (GRPCServerOptions), then opts.
func NewGRPCServer(ing *Ingester, opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append(ing.GRPCServerOptions(), opts...)...)
	ing.RegisterGRPC(s)
	return s
}

// GRPCServerOptions are the options a server needs for RegisterGRPC: the
// codec that passes requests through undecoded (other services keep the
// standard proto codec), and the MaxRequestBytes limit (which grpc also
// applies to the decompressed size).
func (i *Ingester) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(rawCodec{fallback: encoding.GetCodecV2(proto.Name)}),
		grpc.MaxRecvMsgSize(i.cfg.MaxRequestBytes),
		grpc.InTapHandle(i.admitGRPC),
		grpc.NumStreamWorkers(grpcStreamWorkers),
		grpc.InitialWindowSize(grpcStreamWindow),
		grpc.InitialConnWindowSize(2 * grpcStreamWindow),
	}
}

// grpc-go's cost per call, measured with one data point per request
// (bench/ingest.sh -k8s 1; bench/ingestload -serve-empty for grpc alone):
//
//   - by default every call runs on a new goroutine whose stack grows (and
//     is copied) on the way to the handler: stream workers reuse
//     goroutines whose stacks have already grown;
//   - with its dynamic flow-control window, grpc sends a BDP ping on
//     almost every request of a connection that has one call in flight
//     (and reads its ack): a static window sends none. 4 MiB per stream
//     (8 MiB per connection) passes a 16 MiB request in a few round trips
//     and bounds what one connection may have sent before the handler
//     reads it.
//
// Both together take 6-10% off the ingester's CPU per request.
const (
	grpcStreamWorkers = 64
	grpcStreamWindow  = 4 << 20
)

// admitGRPC runs when a call arrives, on its headers, before grpc reads
// its message or starts a handler: a call without a valid token, or naming
// a tenant it may not write as, is refused there (Tenant), and its message
// is never read or decompressed. At the in-flight limit the call is
// refused too (RESOURCE_EXHAUSTED with RetryInfo) without its message
// being buffered. The message's bytes are counted once it is read
// (Export), so the limit may be passed by the calls admitted in the same
// instant, each at most MaxRequestBytes. The tenant decided here reaches
// the handler in the call's context. Calls of other services registered on
// the same server pass untouched.
func (i *Ingester) admitGRPC(ctx context.Context, info *tap.Info) (context.Context, error) {
	sig, ok := grpcMethodSignal(info.FullMethodName)
	if !ok {
		return ctx, nil
	}
	tenant, err := i.Tenant(info.Header["authorization"], info.Header["x-scope-orgid"])
	if err != nil {
		return ctx, i.grpcFail(ctx, sig, firstValue(info.Header["x-scope-orgid"]), err)
	}
	if i.inflight.Load() >= i.cfg.MaxInflightBytes {
		i.m.request(protoGRPC, sig, codes.ResourceExhausted.String())
		i.m.errors.WithLabelValues(sig.String(), errReason(ErrOverloaded)).Inc()
		return ctx, i.grpcErrs.overloaded
	}
	return withTenant(ctx, tenant), nil
}

// RegisterGRPC registers the OTLP metrics, logs and trace services on s,
// which must have been built with GRPCServerOptions. Interceptors see
// requests as *RawMessage and responses as RawMessage, not generated
// structs.
func (i *Ingester) RegisterGRPC(s grpc.ServiceRegistrar) {
	for _, sig := range otlpwire.Signals {
		svc := grpcServices[sig]
		s.RegisterService(&grpc.ServiceDesc{
			ServiceName: svc.service,
			HandlerType: (*any)(nil),
			Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: i.grpcHandler(sig, "/"+svc.service+"/Export")}},
			Metadata:    svc.file,
		}, i)
	}
}

// RawMessage is a protobuf message kept as its encoding: requests arrive as
// *RawMessage, responses leave as RawMessage.
type RawMessage []byte

// rawCodec is the server's "proto" codec: it copies requests into a
// *RawMessage and writes a RawMessage as it is, and leaves every other type to
// the standard codec.
type rawCodec struct{ fallback encoding.CodecV2 }

func (rawCodec) Name() string { return proto.Name }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(RawMessage); ok {
		if len(m) == 0 {
			return nil, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	}
	return c.fallback.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*RawMessage); ok {
		n := data.Len()
		if cap(*m) < n {
			*m = make([]byte, n)
		}
		*m = (*m)[:n]
		data.CopyTo(*m)
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

func (i *Ingester) grpcHandler(sig otlpwire.Signal, method string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		buf := i.getBuf()
		defer func() { i.putBuf(buf) }()
		req := (*RawMessage)(buf)
		if err := dec(req); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return i.exportGRPC(ctx, sig, req)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
		return interceptor(ctx, req, info, func(ctx context.Context, r any) (any, error) {
			return i.exportGRPC(ctx, sig, r.(*RawMessage))
		})
	}
}

func (i *Ingester) exportGRPC(ctx context.Context, sig otlpwire.Signal, req *RawMessage) (any, error) {
	tenant, ok := ctx.Value(tenantKey{}).(string)
	if !ok { // a server without admitGRPC
		md, _ := metadata.FromIncomingContext(ctx)
		var err error
		if tenant, err = i.Tenant(md["authorization"], md["x-scope-orgid"]); err != nil {
			return nil, i.grpcFail(ctx, sig, firstValue(md["x-scope-orgid"]), err)
		}
	}
	i.m.bytes[sig].Add(float64(len(*req)))
	res, retained, err := i.export(ctx, sig, tenant, *req)
	if retained {
		*req = nil // the bus may still read it: do not pool it
	}
	if err != nil {
		return nil, i.grpcFail(ctx, sig, tenant, err)
	}
	i.m.request(protoGRPC, sig, "OK")
	if res.Rejected == 0 {
		return RawMessage(nil), nil
	}
	return RawMessage(appendResponse(nil, sig, res)), nil
}

func (i *Ingester) grpcFail(ctx context.Context, sig otlpwire.Signal, tenant string, err error) error {
	i.logFailure(protoGRPC, sig, tenant, err)
	var st error
	var bad *BadRequestError
	switch {
	case ctx.Err() != nil:
		st = status.FromContextError(ctx.Err()).Err()
	case errors.As(err, &bad):
		st = status.Error(codes.InvalidArgument, bad.Msg)
	case errors.Is(err, ErrUnauthenticated):
		st = i.grpcErrs.unauthenticated
	case errors.Is(err, ErrForbidden):
		st = status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrOverloaded):
		st = i.grpcErrs.overloaded
	case errors.Is(err, ErrUnavailable):
		st = i.grpcErrs.withRetry(codes.Unavailable, err.Error())
	case errors.Is(err, ErrTooLarge):
		// Without RetryInfo, RESOURCE_EXHAUSTED tells the client not to
		// retry (as grpc's own message size limit does).
		st = status.Error(codes.ResourceExhausted, err.Error())
	default:
		st = status.Error(codes.Internal, err.Error())
	}
	i.m.request(protoGRPC, sig, status.Code(st).String())
	return st
}

// grpcErrors are the status errors that do not depend on the request.
type grpcErrors struct {
	retryAfter      time.Duration
	overloaded      error
	unauthenticated error
}

func newGRPCErrors(retryAfter time.Duration) grpcErrors {
	e := grpcErrors{retryAfter: retryAfter, unauthenticated: status.Error(codes.Unauthenticated, ErrUnauthenticated.Error())}
	e.overloaded = e.withRetry(codes.ResourceExhausted, ErrOverloaded.Error())
	return e
}

// withRetry makes a status error with a google.rpc.RetryInfo detail, which is
// what makes OTLP clients retry RESOURCE_EXHAUSTED and what they wait by.
func (e grpcErrors) withRetry(c codes.Code, msg string) error {
	st, err := status.New(c, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.retryAfter)})
	if err != nil {
		return status.Error(c, msg)
	}
	return st.Err()
}

// firstValue is v's first value, or "".
func firstValue(v []string) string {
	if len(v) > 0 {
		return v[0]
	}
	return ""
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value, or "".
func bearerToken(h string) string {
	const prefix = "bearer "
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}

// grpcMethodSignal tells the signal of a full OTLP Export method name.
func grpcMethodSignal(method string) (otlpwire.Signal, bool) {
	for _, sig := range otlpwire.Signals {
		if method == "/"+grpcServices[sig].service+"/Export" {
			return sig, true
		}
	}
	return 0, false
}
