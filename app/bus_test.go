package app

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/nats"
)

// syncBuffer is a bytes.Buffer that slog may write from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func openBus(t *testing.T, yaml string) (stream.Bus, string, error) {
	t.Helper()
	cfg, err := config.Parse("sluice.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := OpenBus(ctx, cfg, log, prometheus.NewRegistry())
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, logs.String(), err
}

// bus.embedded.token guards the embedded listener; sluice's own
// in-process connection (which created the topics) still works.
func TestEmbeddedListenerToken(t *testing.T) {
	b, logs, err := openBus(t, "bus:\n  data_dir: "+filepath.Join(t.TempDir(), "data")+"\n  embedded:\n    listen: 127.0.0.1:0\n    token: s3cret\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs, "without credentials") {
		t.Errorf("warned about missing credentials: %s", logs)
	}
	url := b.(*nats.Bus).ClientURL()
	if nc, err := natsgo.Connect(url, natsgo.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without the token connected")
	}
	nc, err := natsgo.Connect(url, natsgo.Token("s3cret"), natsgo.MaxReconnects(0))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("in-process connection: %v", err)
	}
}

// A loopback listener without credentials starts, with a warning.
func TestEmbeddedListenerWithoutCredentialsWarns(t *testing.T) {
	_, logs, err := openBus(t, "bus:\n  data_dir: "+filepath.Join(t.TempDir(), "data")+"\n  embedded:\n    listen: 127.0.0.1:0\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "without credentials") {
		t.Errorf("no warning about the open listener in %q", logs)
	}
}

// bus.nats.replicas reaches the streams sluice creates: a single server
// refuses 3, naming the key.
func TestNATSReplicasReachTheServer(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	_, _, err = openBus(t, "bus:\n  kind: nats\n  nats:\n    url: "+srv.ClientURL()+"\n    replicas: 3\n")
	if err == nil || !strings.Contains(err.Error(), "bus.nats.replicas") {
		t.Fatalf("OpenBus with 3 replicas on one server: %v", err)
	}
}
