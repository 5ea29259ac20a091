package ingest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Connections that announce a large body and then send nothing, or
// trickle it, hold almost none of the in-flight budget: a working client's
// requests all succeed meanwhile. The server closes the slow connections
// once ReadTimeout has passed.
func TestHTTPSlowClientsDoNotStarveOthers(t *testing.T) {
	const slow = 16
	pb := samples(t)[otlpwire.Metrics]
	ing := newIngester(t, Config{MaxInflightBytes: 1 << 20, MaxRequestBytes: 1 << 20}, newBus(t, 1))
	srv := NewServer(ing, ServerConfig{HTTPListen: "127.0.0.1:0", HTTP: HTTPTimeouts{ReadTimeout: 2 * time.Second}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	conns := make([]net.Conn, slow)
	for k := range conns {
		c, err := net.Dial("tcp", srv.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", PathMetrics, contentTypeProto, 1<<20)
		if k%2 == 1 {
			c.Write([]byte{0x0a}) // a trickle: its first byte
		}
		conns[k] = c
	}
	// Wait until every slow request is being read by a handler.
	for deadline := time.Now().Add(10 * time.Second); ing.inflight.Load() < slow && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := ing.inflight.Load(); got > slow*bodyReserveStep {
		t.Errorf("the slow requests hold %d bytes of the budget, more than %d", got, slow*bodyReserveStep)
	}
	var ok, failed int
	for range 20 {
		resp := httpReq{path: PathMetrics, contentType: contentTypeProto, body: pb}.do(t, srv.HTTPAddr())
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			ok++
		} else {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("working client: %d requests succeeded, %d failed while %d slow connections were open", ok, failed, slow)
	}
	// The server ends the slow connections: each reads a response or EOF.
	var wg sync.WaitGroup
	closed := make([]bool, slow)
	for k, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.Copy(io.Discard, bufio.NewReader(c))
			closed[k] = err == nil // EOF: closed by the server
		})
	}
	wg.Wait()
	for k, ok := range closed {
		if !ok {
			t.Errorf("slow connection %d was not closed by the server", k)
		}
	}
}

// A gRPC call is refused on its headers: a call without a valid token gets
// UNAUTHENTICATED before it sends its message (which it never does here).
func TestGRPCAuthenticatesBeforeTheMessage(t *testing.T) {
	srv := startServer(t, newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-a"})}, newBus(t, 1)))
	cc := dial(t, srv.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, md := range []metadata.MD{{"authorization": {"Bearer nope"}}, {}} {
		desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
		s, err := cc.NewStream(metadata.NewOutgoingContext(ctx, md), desc, "/"+grpcServices[otlpwire.Metrics].service+"/Export")
		if err != nil {
			t.Fatal(err)
		}
		var resp RawMessage
		err = s.RecvMsg(&resp) // no message sent
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("metadata %v: got %v before sending the message, want UNAUTHENTICATED", md, err)
		}
	}
}

// Streams opened and left idle do not stop a working gRPC client; a
// connection holds at most MaxConcurrentStreams of them, and a connection
// without calls is closed after MaxConnectionIdle.
func TestGRPCIdleStreamsDoNotStarveOthers(t *testing.T) {
	ing := newIngester(t, Config{Tokens: mustTokens(t, Token{Token: "tok", Tenant: "team-a"})}, newBus(t, 1))
	srv := NewServer(ing, ServerConfig{GRPCListen: "127.0.0.1:0", GRPC: GRPCLimits{MaxConcurrentStreams: 4, MaxConnectionIdle: time.Second}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	auth := metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer tok"))
	method := "/" + grpcServices[otlpwire.Metrics].service + "/Export"

	idle := dial(t, srv.GRPCAddr())
	for range 4 { // the connection's whole allowance, open and silent
		if _, err := idle.NewStream(auth, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method); err != nil {
			t.Fatal(err)
		}
	}
	// A fifth call on the same connection waits for a stream.
	short, cancelShort := context.WithTimeout(auth, 500*time.Millisecond)
	defer cancelShort()
	if _, _, err := exportGRPC(short, idle, otlpwire.Metrics); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("fifth call on a connection with 4 streams open: %v, want it to wait (DEADLINE_EXCEEDED)", err)
	}
	working := dial(t, srv.GRPCAddr())
	var ok, failed int
	for range 20 {
		if _, _, err := exportGRPC(auth, working, otlpwire.Metrics); err != nil {
			failed++
		} else {
			ok++
		}
	}
	if failed > 0 {
		t.Errorf("working client: %d calls succeeded, %d failed", ok, failed)
	}

	// A connection without calls: the server says GOAWAY and closes it.
	c, err := net.Dial("tcp", srv.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")) // preface, empty SETTINGS
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	if !strings.Contains(string(got), "\x07") { // a GOAWAY frame (type 7) came first
		t.Errorf("no GOAWAY before the close: %q", got)
	}
}
