package ingest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// h2Conn is a raw HTTP/2 client connection to the gRPC listener (h2c with
// prior knowledge) that opens no stream: it only pings. The frames the
// server sends are read in the background and reported on events, which
// is closed once the connection ends.
type h2Conn struct {
	mu     sync.Mutex // the framer's writes
	fr     *http2.Framer
	events chan h2Event
}

// h2Event is a PING acknowledgement, a GOAWAY, or the error that ended the
// connection.
type h2Event struct {
	pingAck *[8]byte
	goAway  *goAway
	err     error
}

type goAway struct {
	code  http2.ErrCode
	debug string
}

func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &h2Conn{fr: http2.NewFramer(conn, conn), events: make(chan h2Event, 16)}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go c.read()
	return c
}

func (c *h2Conn) read() {
	defer close(c.events)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.events <- h2Event{err: err}
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.mu.Lock()
				c.fr.WriteSettingsAck()
				c.mu.Unlock()
			}
		case *http2.PingFrame:
			if f.IsAck() {
				data := f.Data
				c.events <- h2Event{pingAck: &data}
			}
		case *http2.GoAwayFrame:
			c.events <- h2Event{goAway: &goAway{code: f.ErrCode, debug: string(f.DebugData())}}
		}
	}
}

// ping sends a PING carrying n, outside any stream.
func (c *h2Conn) ping(n byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fr.WritePing(false, [8]byte{7: n})
}

// TestGRPCKeepalivePolicy: the gRPC server enforces
// ingest.grpc.keepalive_min_time. A client that pings more often, with no
// call in flight, is told GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and
// disconnected; a client that pings no more often than that, also with no
// call in flight, stays connected (grpc's default policy would disconnect
// it too: it allows no pings without calls); and a client exporting on
// another connection is served all along.
func TestGRPCKeepalivePolicy(t *testing.T) {
	const minTime = 100 * time.Millisecond
	bus := newBus(t, 1)
	srv := NewServer(newIngester(t, Config{}, bus), ServerConfig{GRPCListen: "127.0.0.1:0", Logger: quietLogger(), GRPC: GRPCLimits{KeepaliveMinTime: minTime}})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The well-behaved client exports on its own connection until told to
	// stop.
	cc := dial(t, srv.GRPCAddr())
	var exported, failed int
	var lastErr error
	export := func() {
		if _, _, err := exportGRPC(ctx, cc, otlpwire.Logs); err != nil {
			failed, lastErr = failed+1, err
			return
		}
		exported++
	}
	export()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				export()
			}
		}
	}()

	// The flooding client pings again as soon as each ping is acknowledged
	// (microseconds, well within minTime), until the server says GOAWAY:
	// grpc allows two pings too early, and answers the third with GOAWAY.
	flood := dialH2(t, srv.GRPCAddr())
	var got *goAway
	acks := 0
	for n := byte(0); got == nil && n < 100; n++ {
		if err := flood.ping(n); err != nil {
			t.Fatalf("flooding client, ping %d: %v", n, err)
		}
		select {
		case ev := <-flood.events:
			switch {
			case ev.goAway != nil:
				got = ev.goAway
			case ev.pingAck != nil:
				acks++
			default:
				t.Fatalf("flooding client: connection closed without a GOAWAY after %d pings: %v", n+1, ev.err)
			}
		case <-ctx.Done():
			t.Fatalf("flooding client, ping %d: no answer", n)
		}
	}
	if got == nil {
		t.Fatalf("flooding client: %d pings acknowledged, no GOAWAY", acks)
	}
	if got.code != http2.ErrCodeEnhanceYourCalm || got.debug != "too_many_pings" {
		t.Errorf("flooding client: GOAWAY %v %q, want ENHANCE_YOUR_CALM \"too_many_pings\"", got.code, got.debug)
	}
	// Then the server closes the connection.
	for closed := false; !closed; {
		select {
		case ev, ok := <-flood.events:
			if !ok {
				closed = true
			} else if ev.pingAck != nil || ev.goAway != nil {
				t.Errorf("flooding client: a frame after GOAWAY: %+v", ev)
			}
		case <-ctx.Done():
			t.Fatal("flooding client: the server did not close the connection after GOAWAY")
		}
	}
	close(stop)
	<-stopped

	// The polite client pings five times, 5*minTime apart: each ping is
	// acknowledged and no GOAWAY comes (grpc's default policy would send
	// it after the fourth).
	polite := dialH2(t, srv.GRPCAddr())
	for n := range byte(5) {
		if n > 0 {
			time.Sleep(5 * minTime)
		}
		if err := polite.ping(n); err != nil {
			t.Fatalf("polite client, ping %d: %v", n, err)
		}
		select {
		case ev := <-polite.events:
			switch {
			case ev.goAway != nil:
				t.Fatalf("polite client, ping %d: GOAWAY %v %q", n, ev.goAway.code, ev.goAway.debug)
			case ev.pingAck == nil:
				t.Fatalf("polite client, ping %d: connection closed: %v", n, ev.err)
			case ev.pingAck[7] != n:
				t.Fatalf("polite client, ping %d: acknowledgement of %v", n, *ev.pingAck)
			}
		case <-ctx.Done():
			t.Fatalf("polite client, ping %d: no answer", n)
		}
		export()
	}

	if failed > 0 || exported == 0 {
		t.Errorf("well-behaved client: %d exports succeeded, %d failed (last: %v)", exported, failed, lastErr)
	}
	if got, want := busItems(t, bus, otlpwire.Logs, ""), exported*sampleItems[otlpwire.Logs]; got != want {
		t.Errorf("%d items on the bus, want %d (%d exports)", got, want, exported)
	}
}
