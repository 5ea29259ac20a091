package nats

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testproc"
	"github.com/sluice-dev/sluice/stream"
)

func TestRemoteServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := runServer(t, dir, -1)
	_, portStr, _ := net.SplitHostPort(srv.Addr().String())
	port, _ := strconv.Atoi(portStr)

	b, err := New(Config{URL: srv.ClientURL(), Name: "test", PublishTimeout: 500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	ensure(t, b, stream.TopicSpec{Name: "remote", Partitions: 2})
	c := consume(t, b, stream.ConsumerConfig{Group: "g", Topics: []string{"remote"}})

	// Produce continuously while the server goes away.
	var (
		mu        sync.Mutex
		errs      []error
		delivered int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := b.Produce(ctx, &stream.Record{Topic: "remote", Partition: -1, Value: []byte("r" + strconv.Itoa(i))})
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				delivered++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	failures := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(errs)
	}
	time.Sleep(100 * time.Millisecond)
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, 5*time.Second, func() error {
		if failures() < 3 {
			return errors.New("Produce keeps succeeding with the server down")
		}
		return nil
	})
	if err := b.Ping(ctx); !errors.Is(err, stream.ErrUnavailable) {
		t.Errorf("Ping with the server down: %v, want ErrUnavailable", err)
	}
	start := time.Now()
	if err := b.Produce(ctx, values("remote", "down", 1)...); !stream.IsRetryable(err) {
		t.Errorf("Produce with the server down: %v, want retryable", err)
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Produce took %s with a 500ms publish timeout", d)
	}

	// Same port, same store: the bus comes back by itself.
	runServer(t, dir, port)
	eventually(t, 15*time.Second, func() error { return b.Ping(ctx) })
	mu.Lock()
	before := delivered
	mu.Unlock()
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if delivered <= before {
			return errors.New("no Produce succeeded since the restart")
		}
		return nil
	})
	close(stop)
	wg.Wait()
	for _, err := range errs {
		if !stream.IsRetryable(err) {
			t.Errorf("Produce error not retryable: %v", err)
		}
	}
	t.Logf("%d records delivered, %d Produce errors while the server was down", delivered, len(errs))

	// The consumer rides through the restart too: every acknowledged
	// record arrives (maybe with duplicates of unacknowledged ones).
	got := map[string]bool{}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for len(got) < delivered {
		recs, err := c.Poll(pctx)
		if err != nil {
			t.Fatalf("poll after restart: %d of %d records: %v", len(got), delivered, err)
		}
		for _, r := range recs {
			got[string(r.Value)] = true
		}
		commit(t, c, recs...)
	}
}

func TestNewUnreachable(t *testing.T) {
	addr := testproc.FreeAddr(t) // nothing listens there
	_, err := New(Config{URL: "nats://user:pw@" + addr})
	if !errors.Is(err, stream.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if err != nil && strings.Contains(err.Error(), "pw") {
		t.Errorf("error shows the password: %v", err)
	}
}
