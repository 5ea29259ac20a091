package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

func TestGroupSharesPartitions(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 4)
	cfg := stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, MaxPollRecords: 5}
	members := []stream.Consumer{consume(t, b, cfg), consume(t, b, cfg)}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu       sync.Mutex
		got      = []map[string]int{{}, {}}
		produced = map[string]int{}
		doneProd bool
	)
	total := func() (n int) {
		for _, g := range got {
			for _, c := range g {
				n += c
			}
		}
		return n
	}
	var wg sync.WaitGroup
	// Produce in small batches until both members have had records (the
	// second one joins while the first consumes), then stop.
	wg.Go(func() {
		defer func() { mu.Lock(); doneProd = true; mu.Unlock() }()
		for i := 0; ctx.Err() == nil; i++ {
			mu.Lock()
			both := len(got[0]) > 0 && len(got[1]) > 0
			mu.Unlock()
			if both && i >= 20 {
				return
			}
			recs := values(name, fmt.Sprintf("b%d-", i), 8, 4)
			if err := b.Produce(ctx, recs...); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for v := range valueSet(recs) {
				produced[v]++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})
	for i, c := range members {
		wg.Go(func() {
			for {
				mu.Lock()
				done := doneProd && total() >= len(produced)
				mu.Unlock()
				if done || ctx.Err() != nil {
					return
				}
				pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				recs, err := c.Poll(pctx)
				pcancel()
				if errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if err := c.Commit(ctx, recs...); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, r := range recs {
					got[i][string(r.Value)]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("gave up: members got %d and %d of %d records", len(got[0]), len(got[1]), len(produced))
	}
	union := maps.Clone(got[0])
	for v, n := range got[1] {
		union[v] += n
	}
	if !maps.Equal(union, produced) {
		t.Errorf("members together got %d distinct records (%d total), want each of %d once", len(union), total(), len(produced))
	}
	for _, c := range members {
		if lag, err := c.Lag(context.Background()); err != nil || lag != 0 {
			t.Errorf("lag %d, %v; want 0", lag, err)
		}
	}
}

func TestUncommittedComeAgain(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 2)
	in := values(name, "r", 20, 2)
	produce(t, b, in...)
	cfg := stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, MaxPollRecords: 3}

	c := consume(t, b, cfg)
	first := pollN(t, c, 20, 20*time.Second)
	// Commit the first half of each partition, in reverse order (the
	// position follows the committed prefix, whatever the order), and
	// one record beyond the half, which must not move the position past
	// the uncommitted ones before it.
	byPart := map[int32][]*stream.Record{}
	for _, r := range first {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	var done []*stream.Record
	want := map[string]int{}
	for _, recs := range byPart {
		half := len(recs) / 2
		for i := half - 1; i >= 0; i-- {
			done = append(done, recs[i])
		}
		for _, r := range recs[half:] {
			want[string(r.Value)]++
		}
		commit(t, c, recs[half+2]) // a gap at half, half+1
	}
	commit(t, c, done...)
	if lag, err := c.Lag(context.Background()); err != nil || lag != 10 {
		t.Errorf("lag after committing half: %d, %v; want 10", lag, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := c.Commit(context.Background(), first...); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}

	c2 := consume(t, b, cfg)
	again := pollN(t, c2, 10, 20*time.Second)
	if got := valueSet(again); !maps.Equal(got, want) {
		t.Errorf("after reopening got %v, want %v", got, want)
	}
	commit(t, c2, again...)
	commit(t, c2, again...) // twice is harmless
	if lag, err := c2.Lag(context.Background()); err != nil || lag != 0 {
		t.Errorf("lag after committing all: %d, %v; want 0", lag, err)
	}
	if err := c2.Commit(context.Background(), &stream.Record{Topic: name}); err == nil {
		t.Error("Commit of a record not from Poll: no error")
	}
	pollNone(t, c2, time.Second)
}

func TestStartPositions(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 1)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	old, later := values(name, "old", 5, 0), values(name, "new", 5, 0)
	for i, r := range old {
		r.Timestamp = base.Add(time.Duration(i) * time.Second)
	}
	for i, r := range later {
		r.Timestamp = base.Add(30*time.Minute + time.Duration(i)*time.Second)
	}
	produce(t, b, old...)
	produce(t, b, later...)
	group := func(s stream.Start) stream.ConsumerConfig {
		return stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}, Start: s}
	}

	all := pollN(t, consume(t, b, group(stream.Start{})), 10, 20*time.Second)
	if got, want := valueSet(all), valueSet(append(old, later...)); !maps.Equal(got, want) {
		t.Errorf("earliest: got %v, want %v", got, want)
	}

	atTime := consume(t, b, group(stream.Start{Kind: stream.StartAtTime, Time: base.Add(10 * time.Minute)}))
	if got, want := valueSet(pollN(t, atTime, 5, 20*time.Second)), valueSet(later); !maps.Equal(got, want) {
		t.Errorf("at time: got %v, want %v", got, want)
	}

	atOffset := consume(t, b, group(stream.Start{Kind: stream.StartAtOffset, Offset: 7}))
	recs := pollN(t, atOffset, 3, 20*time.Second)
	if recs[0].Offset != 7 || string(recs[0].Value) != "new2" {
		t.Errorf("at offset 7: first record %q at %d", recs[0].Value, recs[0].Offset)
	}

	// Latest: records written before the member has its partition are
	// skipped. Probe until the member receives, then expect only what
	// comes after.
	latest := consume(t, b, group(stream.Start{Kind: stream.StartLatest}))
	var seen []*stream.Record
	for i := 0; len(seen) == 0; i++ {
		if i == 60 {
			t.Fatal("latest: no probe record arrived")
		}
		produce(t, b, &stream.Record{Topic: name, Partition: -1, Value: fmt.Appendf(nil, "probe%d", i)})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		got, err := latest.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		seen = append(seen, got...)
	}
	produce(t, b, values(name, "after", 3, 0)...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !hasAll(seen, "after0", "after1", "after2") {
		got, err := latest.Poll(ctx)
		if err != nil {
			t.Fatalf("latest: %v; got %v", err, valueSet(seen))
		}
		seen = append(seen, got...)
	}
	for _, r := range seen {
		if v := string(r.Value); len(v) < 5 || (v[:5] != "probe" && v[:5] != "after") {
			t.Errorf("latest: got %q, written before the member joined", v)
		}
	}
}

func hasAll(recs []*stream.Record, vals ...string) bool {
	set := valueSet(recs)
	for _, v := range vals {
		if set[v] == 0 {
			return false
		}
	}
	return true
}

func TestLagAndBusClose(t *testing.T) {
	b := newBus(t, Config{})
	name := topic(t, b, 2)
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{name}})
	if lag, err := c.Lag(context.Background()); err != nil || lag != 0 {
		t.Errorf("lag of an empty topic: %d, %v", lag, err)
	}
	produce(t, b, values(name, "r", 10, 2)...)
	if lag, err := c.Lag(context.Background()); err != nil || lag != 10 {
		t.Errorf("lag before polling: %d, %v; want 10", lag, err)
	}
	recs := pollN(t, c, 10, 20*time.Second)
	commit(t, c, recs...)
	if lag, err := c.Lag(context.Background()); err != nil || lag != 0 {
		t.Errorf("lag after committing: %d, %v; want 0", lag, err)
	}

	// Closing the bus closes its consumers.
	b.Close()
	if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll after the bus closed: %v, want ErrClosed", err)
	}
	if _, err := b.Consume(stream.ConsumerConfig{Group: "g", Topics: []string{name}}); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Consume after Close: %v, want ErrClosed", err)
	}
}

func TestPollHonoursContext(t *testing.T) {
	b := newBus(t, Config{})
	c := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{topic(t, b, 1)}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Poll(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll with a canceled context: %v", err)
	}
}
