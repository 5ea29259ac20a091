package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
)

// runCluster starts n nats-servers with JetStream on 127.0.0.1, routed to
// the first, and waits until they have a JetStream meta leader. It returns
// their client URLs, comma-separated.
func runCluster(t *testing.T, n int) string {
	t.Helper()
	// Route ports are chosen before the servers start so that each
	// lists all the others (a clustered JetStream server does not open
	// its route listener until it is well under way).
	routes := make([]*url.URL, n)
	for i := range routes {
		routes[i] = &url.URL{Scheme: "nats-route", Host: testproc.FreeAddr(t)}
	}
	srvs := make([]*server.Server, n)
	for i := range srvs {
		port := routes[i].Port()
		p, _ := strconv.Atoi(port)
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("s%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "sluice-test", Host: "127.0.0.1", Port: p},
			Routes:     routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		srvs[i] = srv
	}
	var urls []string
	for i, srv := range srvs {
		if !srv.ReadyForConnections(30 * time.Second) {
			t.Fatalf("server %d not ready", i)
		}
		urls = append(urls, srv.ClientURL())
	}
	eventually(t, 30*time.Second, func() error {
		for _, s := range srvs {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		return errors.New("no JetStream meta leader")
	})
	return strings.Join(urls, ",")
}

// The streams EnsureTopics creates carry Config.Replicas: on a three-server
// cluster, three replicas.
func TestReplicasOnACluster(t *testing.T) {
	urls := runCluster(t, 3)
	b, err := New(Config{URL: urls, Replicas: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.EnsureTopics(ctx, stream.TopicSpec{Name: "replicated", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	st, err := b.js.Stream(ctx, streamName("replicated"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("stream replicas = %d, cluster %+v; want 3 (a leader and 2 replicas)", info.Config.Replicas, info.Cluster)
	}
	produce(t, b, values("replicated", "r", 5)...)
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"replicated"}})
	commit(t, c, pollN(t, c, 5, 10*time.Second)...)
}

// A single server cannot place three replicas: EnsureTopics says so, and
// which setting asks for them.
func TestReplicasOnASingleServer(t *testing.T) {
	srv := runServer(t, t.TempDir(), -1)
	b, err := New(Config{URL: srv.ClientURL(), Replicas: 3, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = b.EnsureTopics(ctx, stream.TopicSpec{Name: "lonely", Partitions: 1})
	if err == nil {
		t.Fatal("a single server created a stream with 3 replicas")
	}
	if stream.IsRetryable(err) {
		t.Errorf("error %q is retryable: a single server never places 3 replicas", err)
	}
	for _, want := range []string{"3 replicas", "bus.nats.replicas", "cluster of at least 3 servers", "not supported in non-clustered mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
