package nats

import (
	"context"
	"maps"
	"net"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/sluice-dev/sluice/stream"
)

func TestEmbeddedPersistence(t *testing.T) {
	dir := t.TempDir()
	const topic = "sluice.raw.logs"
	cfg := Config{AckWait: time.Second}
	in := values(topic, "r", 20)

	b := openEmbedded(t, dir, cfg)
	if b.ClientURL() != "" {
		t.Errorf("ClientURL = %q, want none without Listen", b.ClientURL())
	}
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 2})
	produce(t, b, in...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	first := pollN(t, c, 20, 5*time.Second)
	commit(t, c, first[:10]...)
	c.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Same directory, new server: the records and the group's position
	// are still there.
	b = openEmbedded(t, dir, cfg)
	if got := b.Partitions(topic); got != 0 {
		t.Errorf("Partitions before EnsureTopics = %d", got)
	}
	ensure(t, b, stream.TopicSpec{Name: topic, Partitions: 8})
	if got := b.Partitions(topic); got != 2 {
		t.Errorf("Partitions = %d, want 2", got)
	}
	c = consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{topic}})
	rest := pollN(t, c, 10, 5*time.Second)
	if got, want := valueSet(rest), valueSet(first[10:]); !maps.Equal(got, want) {
		t.Errorf("after restart the group got %v, want the uncommitted %v", got, want)
	}
	commit(t, c, rest...)
	pollNone(t, c, 1500*time.Millisecond)

	fresh := consume(t, b, stream.ConsumerConfig{Group: "fresh", Topics: []string{topic}})
	if got := pollN(t, fresh, 20, 5*time.Second); !maps.Equal(valueSet(got), valueSet(in)) {
		t.Error("a new group does not see every stored record")
	}
}

func TestEmbeddedListener(t *testing.T) {
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
