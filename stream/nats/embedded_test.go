package nats

import (
	"context"
	"net"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/stream"
)

// The conformance suite restarts the embedded server on its directory;
// here, how other processes reach it.
func TestEmbeddedListener(t *testing.T) {
	if url := newEmbedded(t, Config{}).ClientURL(); url != "" {
		t.Errorf("ClientURL = %q, want none without Listen", url)
	}
	b, err := NewEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"},
		Config{Token: "s3cret", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	url := b.ClientURL()
	if _, _, err := net.SplitHostPort(url[len("nats://"):]); err != nil {
		t.Fatalf("ClientURL = %q: %v", url, err)
	}
	ensure(t, b, stream.TopicSpec{Name: "shared", Partitions: 1})

	// Another process reaches it over TCP with the token, not without.
	if nc, err := natsgo.Connect(url, natsgo.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("connected without the token")
	}
	remote, err := New(Config{URL: url, Token: "s3cret", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Close() })
	produce(t, remote, values("shared", "r", 3)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"shared"}})
	pollN(t, c, 3, 5*time.Second)
	if err := remote.Ping(context.Background()); err != nil {
		t.Error(err)
	}
}
