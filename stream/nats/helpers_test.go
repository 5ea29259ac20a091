package nats

import (
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/bustest"
)

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

// values builds n unkeyed records for topic with values prefix0..prefixN-1.
func values(topic, prefix string, n int) []*stream.Record {
	return bustest.Values(topic, prefix, n, 0)
}

// The helpers every bus's tests share.
var (
	consume = func(t testing.TB, b *Bus, cfg stream.ConsumerConfig) stream.Consumer {
		t.Helper()
		return bustest.Consume(t, b, cfg)
	}
	ensure     = func(t testing.TB, b *Bus, specs ...stream.TopicSpec) { t.Helper(); bustest.Ensure(t, b, specs...) }
	produce    = func(t testing.TB, b *Bus, recs ...*stream.Record) { t.Helper(); bustest.Produce(t, b, recs...) }
	pollN      = bustest.PollN
	pollNone   = bustest.PollNone
	commit     = bustest.Commit
	valueSet   = bustest.ValueSet
	eventually = bustest.Eventually
)

// testLogger logs to t until the test ends.
func testLogger(t testing.TB) *slog.Logger { return bustest.Logger(t, slog.LevelInfo) }
