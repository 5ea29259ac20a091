package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// RawReq is a gRPC message already in wire form; RawCodec sends it as it
// is, and receives into it the bytes as they came.
type RawReq struct{ B []byte }

// RawCodec is gRPC's "proto" codec for RawReq as well as for protobuf
// messages: requests are encoded once, before they are sent.
type RawCodec struct{}

func (RawCodec) Name() string { return "proto" }

func (RawCodec) Marshal(v any) ([]byte, error) {
	if r, ok := v.(*RawReq); ok {
		return r.B, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (RawCodec) Unmarshal(data []byte, v any) error {
	if r, ok := v.(*RawReq); ok {
		r.B = append(r.B[:0], data...)
		return nil
	}
	return proto.Unmarshal(data, v.(proto.Message))
}

// Target is where a load goes: an OTLP endpoint of sluice (or of anything
// that speaks OTLP).
type Target struct {
	// Protocol is grpc or http.
	Protocol string
	// Addr is host:port of the OTLP/gRPC or OTLP/HTTP listener.
	Addr string
	// Token is sent as "Authorization: Bearer <token>" when set, Tenant
	// as X-Scope-OrgID.
	Token, Tenant string
	// Timeout bounds each request (default 30s).
	Timeout time.Duration
}

// sender sends requests on one connection.
type sender interface {
	send(ctx context.Context, body []byte) error
	close()
}

var grpcMethod = map[otlpwire.Signal]string{
	otlpwire.Metrics: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
	otlpwire.Logs:    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
	otlpwire.Traces:  "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}

var httpPath = map[otlpwire.Signal]string{otlpwire.Metrics: "/v1/metrics", otlpwire.Logs: "/v1/logs", otlpwire.Traces: "/v1/traces"}

func (t Target) dial(sig otlpwire.Signal) (sender, error) {
	if t.Timeout <= 0 {
		t.Timeout = 30 * time.Second
	}
	var md []string
	if t.Token != "" {
		md = append(md, "authorization", "Bearer "+t.Token)
	}
	if t.Tenant != "" {
		md = append(md, "x-scope-orgid", t.Tenant)
	}
	switch t.Protocol {
	case "grpc", "":
		conn, err := grpc.NewClient(t.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(RawCodec{})))
		if err != nil {
			return nil, err
		}
		return &grpcSender{conn: conn, method: grpcMethod[sig], md: metadata.Pairs(md...), timeout: t.Timeout}, nil
	case "http":
		// One connection per sender: a transport of its own.
		c := &http.Client{Timeout: t.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		h := http.Header{"Content-Type": {"application/x-protobuf"}}
		for i := 0; i+1 < len(md); i += 2 {
			h.Set(md[i], md[i+1])
		}
		return &httpSender{c: c, url: "http://" + t.Addr + httpPath[sig], h: h}, nil
	}
	return nil, fmt.Errorf("protocol %q: want grpc or http", t.Protocol)
}

type grpcSender struct {
	conn    *grpc.ClientConn
	method  string
	md      metadata.MD
	timeout time.Duration
	resp    RawReq
}

func (s *grpcSender) send(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(ctx, s.md), s.timeout)
	defer cancel()
	return s.conn.Invoke(ctx, s.method, &RawReq{B: body}, &s.resp)
}

func (s *grpcSender) close() { s.conn.Close() }

type httpSender struct {
	c   *http.Client
	url string
	h   http.Header
}

func (s *httpSender) send(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = s.h.Clone()
	resp, err := s.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s: %.200q", resp.Status, msg)
	}
	return nil
}

func (s *httpSender) close() { s.c.CloseIdleConnections() }
