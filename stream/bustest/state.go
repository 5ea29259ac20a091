package bustest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// stateStore: Put then Get gives the value back, a later Put replaces it,
// an absent key is nil, values larger than a record of the bus are kept
// whole, stores of different names are apart, and (durable buses) the
// values survive a restart.
func stateStore(e *env) {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), e.caps.wait())
	defer cancel()
	open := func(name string) stream.StateStore {
		sb, ok := e.bus.(stream.StatefulBus)
		if !ok {
			t.Fatalf("%T has no state stores", e.bus)
		}
		s, err := sb.StateStore(ctx, name)
		if err != nil {
			t.Fatalf("state store %s: %v", name, err)
		}
		return s
	}
	name := e.name("state")
	s := open(name)
	get := func(s stream.StateStore, key string) []byte {
		t.Helper()
		v, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return v
	}
	put := func(s stream.StateStore, key string, v []byte) {
		t.Helper()
		if err := s.Put(ctx, key, v); err != nil {
			t.Fatalf("put %s (%d bytes): %v", key, len(v), err)
		}
	}
	if v := get(s, "absent"); v != nil {
		t.Fatalf("absent key: %q, want nil", v)
	}
	put(s, "p0", []byte("one"))
	put(s, "p1", []byte("other"))
	put(s, "p0", []byte("two"))
	if v := get(s, "p0"); string(v) != "two" {
		t.Fatalf("p0 = %q, want the last value put", v)
	}
	// Larger than any record limit of a bus (1 MiB by default), and not
	// compressible.
	big := make([]byte, 3<<20+17)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	put(s, "big", big)
	put(s, "big", big[:5<<20/2]) // a smaller value replaces a larger one whole
	if v := get(s, "big"); !bytes.Equal(v, big[:5<<20/2]) {
		t.Fatalf("big value: got %d bytes back, want %d equal", len(v), 5<<20/2)
	}
	other := open(e.name("state"))
	if v := get(other, "p0"); v != nil {
		t.Fatalf("another store sees %q", v)
	}
	if !e.caps.Durable {
		return
	}
	e.reopen()
	s = open(name)
	if v := get(s, "p0"); string(v) != "two" {
		t.Fatalf("after a restart p0 = %q, want two", v)
	}
	if v := get(s, "p1"); string(v) != "other" {
		t.Fatalf("after a restart p1 = %q, want other", v)
	}
}

// revoked: when a second member joins, the first is told which partitions
// it gives up (OnRevoked) before the second reads any record of them, and
// the second reads only partitions the first gave up.
func revoked(e *env) {
	if e.caps.NoPartitionOwnership {
		e.t.Skip("the bus does not assign partitions to members")
	}
	t := e.t
	topic := e.topic(4)
	group := e.group()
	var (
		mu   sync.Mutex
		gone = map[int32]bool{}
	)
	first := Consume(t, e.bus, stream.ConsumerConfig{Group: group, Topics: []string{topic},
		OnRevoked: func(tp string, parts []int32) {
			mu.Lock()
			defer mu.Unlock()
			if tp != topic {
				t.Errorf("revoked partitions of %s, want %s", tp, topic)
			}
			for _, p := range parts {
				gone[p] = true
			}
		}})
	e.produce(Values(topic, "a-", 8, 4)...)
	e.drain(first, 8)
	second := Consume(t, e.bus, stream.ConsumerConfig{Group: group, Topics: []string{topic}})

	ctx, cancel := context.WithTimeout(context.Background(), 3*e.caps.wait())
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { // the first member goes on polling: rebalances happen in Poll
		for ctx.Err() == nil {
			pctx, c := context.WithTimeout(ctx, 100*time.Millisecond)
			recs, _ := first.Poll(pctx)
			c()
			if len(recs) > 0 {
				Commit(t, first, recs...)
			}
		}
	})
	var secondParts []int32
	for i := 0; len(secondParts) == 0; i++ {
		e.produce(Values(topic, fmt.Sprintf("b%d-", i), 4, 4)...)
		pctx, c := context.WithTimeout(ctx, 200*time.Millisecond)
		recs, err := second.Poll(pctx)
		c()
		if ctx.Err() != nil {
			t.Fatalf("the second member got no records: %v", err)
		}
		mu.Lock()
		for _, r := range recs {
			if !gone[r.Partition] {
				t.Errorf("the second member read partition %d before the first was told it gave it up (gave up %v)", r.Partition, gone)
			}
			if !slices.Contains(secondParts, r.Partition) {
				secondParts = append(secondParts, r.Partition)
			}
		}
		mu.Unlock()
		if len(recs) > 0 {
			Commit(t, second, recs...)
		}
	}
	cancel()
	wg.Wait()
}
