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

// The sync settings reach the embedded server's JetStream.
func TestEmbeddedSync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    EmbeddedConfig
		always bool
		every  time.Duration
	}{
		{"interval", EmbeddedConfig{SyncInterval: 250 * time.Millisecond}, false, 250 * time.Millisecond},
		{"always", EmbeddedConfig{SyncAlways: true}, true, 0},
		{"server default", EmbeddedConfig{}, false, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir = t.TempDir()
			b, err := NewEmbedded(tc.cfg, Config{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			js := b.srv.JetStreamConfig()
			if js.SyncAlways != tc.always || (!tc.always && js.SyncInterval != tc.every) {
				t.Errorf("JetStream sync always %v every %s, want %v %s", js.SyncAlways, js.SyncInterval, tc.always, tc.every)
			}
		})
	}
}

// Username and password guard the listener like a token; sluice's own
// in-process connection uses them too.
func TestEmbeddedListenerUserPassword(t *testing.T) {
	b, err := NewEmbedded(EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0"},
		Config{User: "sluice", Password: "pw", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ensure(t, b, stream.TopicSpec{Name: "t", Partitions: 1})
	produce(t, b, values("t", "in-process", 2)...)
	for _, bad := range []natsgo.Option{natsgo.UserInfo("sluice", "wrong"), natsgo.Token("pw")} {
		if nc, err := natsgo.Connect(b.ClientURL(), bad, natsgo.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Error("connected with wrong credentials")
		}
	}
	remote, err := New(Config{URL: b.ClientURL(), User: "sluice", Password: "pw", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Close() })
	c := consume(t, remote, stream.ConsumerConfig{Group: "g", Topics: []string{"t"}})
	commit(t, c, pollN(t, c, 2, 5*time.Second)...)
}
