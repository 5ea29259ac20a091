package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/stream"
)

// TestBrokerRestart stops the broker while records are being produced and
// starts it again: Produce fails with retryable errors meanwhile, works
// again afterwards, and every acknowledged record is on the topic.
func TestBrokerRestart(t *testing.T) {
	kb := kafkatest.Start(t)
	b := newBus(t, Config{Brokers: []string{kb.Addr()}, ProduceTimeout: 2 * time.Second})
	name := topic(t, b, 2)

	var (
		mu            sync.Mutex
		acked         = map[string]bool{}
		okCount, errs int
		firstErr      error
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		for batch := 0; ctx.Err() == nil; batch++ {
			recs := values(name, fmt.Sprintf("b%d-", batch), 10, 0)
			err := b.Produce(ctx, recs...)
			mu.Lock()
			if err == nil {
				okCount++
				for _, r := range recs {
					acked[string(r.Value)] = true
				}
			} else {
				errs++
				if !stream.IsRetryable(err) {
					t.Errorf("produce while the broker is away: %v, not retryable", err)
				}
				if firstErr == nil {
					firstErr = err
				}
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if !cond() {
				return errors.New(what)
			}
			return nil
		})
	}

	waitFor("no batch produced", func() bool { return okCount >= 5 })
	kb.Stop()
	waitFor("produce did not fail while the broker was stopped", func() bool { return errs > 0 })
	if err := b.Ping(context.Background()); !errors.Is(err, stream.ErrUnavailable) {
		t.Errorf("Ping while stopped: %v, want ErrUnavailable", err)
	}
	mu.Lock()
	t.Logf("while stopped: %v", firstErr)
	okBefore := okCount
	mu.Unlock()

	kb.Restart()
	waitFor("produce did not recover", func() bool { return okCount >= okBefore+5 })
	stop()
	wg.Wait()
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping after restart: %v", err)
	}

	// Every acknowledged record is there (failed batches may be too: at
	// least once).
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	seen := map[string]bool{}
	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for missing := len(acked); missing > 0; {
		recs, err := c.Poll(pctx)
		if err != nil {
			t.Fatalf("%d of %d acknowledged records missing: %v", missing, len(acked), err)
		}
		for _, r := range recs {
			if v := string(r.Value); acked[v] && !seen[v] {
				seen[v] = true
				missing--
			}
		}
	}
	t.Logf("%d records acknowledged, %d batches failed", len(acked), errs)
}
