package nats

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/stream"
)

// testLogger logs to t until the test ends (asynchronous connection
// callbacks may fire later; they are dropped then).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after the bus's Close
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEmbedded starts an embedded bus in a fresh directory, closed when the
// test ends.
func newEmbedded(t testing.TB, cfg Config) *Bus {
	t.Helper()
	return openEmbedded(t, t.TempDir(), cfg)
}

func openEmbedded(t testing.TB, dir string, cfg Config) *Bus {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := NewEmbedded(EmbeddedConfig{DataDir: dir}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runServer starts a nats-server with JetStream on a TCP port of
// 127.0.0.1 (-1: any free port), its store in dir.
func runServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

func ensure(t testing.TB, b *Bus, specs ...stream.TopicSpec) {
	t.Helper()
	if err := b.EnsureTopics(context.Background(), specs...); err != nil {
		t.Fatal(err)
	}
}

func produce(t testing.TB, b *Bus, recs ...*stream.Record) {
	t.Helper()
	if err := b.Produce(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// values builds n unkeyed records for topic with values prefix0..prefixN-1.
func values(topic, prefix string, n int) []*stream.Record {
	recs := make([]*stream.Record, n)
	for i := range recs {
		recs[i] = &stream.Record{Topic: topic, Partition: -1, Value: []byte(prefix + strconv.Itoa(i))}
	}
	return recs
}

func consume(t testing.TB, b *Bus, cfg stream.ConsumerConfig) stream.Consumer {
	t.Helper()
	c, err := b.Consume(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pollN polls until it has n records, failing after timeout.
func pollN(t testing.TB, c stream.Consumer, n int, timeout time.Duration) []*stream.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*stream.Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll: got %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	if len(out) > n {
		t.Fatalf("poll: got %d records, want %d", len(out), n)
	}
	return out
}

// pollNone checks that nothing comes within d.
func pollNone(t testing.TB, c stream.Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	recs, err := c.Poll(ctx)
	if len(recs) > 0 {
		t.Fatalf("poll: got %d records (first %q), want none", len(recs), recs[0].Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("poll: %v, want deadline exceeded", err)
	}
}

func commit(t testing.TB, c stream.Consumer, recs ...*stream.Record) {
	t.Helper()
	if err := c.Commit(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

func valueSet(recs []*stream.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

// eventually retries f until it returns nil, failing after timeout.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
