package bustest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// commitOnlyProcessed: Poll returns at most MaxPollRecords; commits may
// come in any order; after the member closes, the next member of the
// group gets every record that was not committed, and none of those
// committed before the first gap of their partition (AckEachRecord: none
// of those committed at all). Committing twice is harmless; a closed
// member neither polls nor commits; a record Poll did not return cannot
// be committed.
func commitOnlyProcessed(e *env) {
	t := e.t
	topic := e.topic(2)
	e.produce(Values(topic, "r", 20, 2)...)
	cfg := stream.ConsumerConfig{Group: e.group(), Topics: []string{topic}, MaxPollRecords: 3}
	c := Consume(t, e.bus, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), e.caps.wait())
	defer cancel()
	var first []*stream.Record
	for len(first) < 20 {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll: got %d of 20 records: %v", len(first), err)
		}
		if len(recs) > 3 {
			t.Errorf("a poll returned %d records, MaxPollRecords is 3", len(recs))
		}
		first = append(first, recs...)
	}
	if len(first) != 20 {
		t.Fatalf("got %d records, want 20", len(first))
	}

	// In each partition: commit the first half in reverse order, and one
	// record beyond a gap of two.
	again := map[string]int{} // must come again
	var done []*stream.Record
	for _, recs := range byPartition(first) {
		slices.SortFunc(recs, func(a, b *stream.Record) int { return int(a.Offset - b.Offset) })
		half := len(recs) / 2
		for i := half - 1; i >= 0; i-- {
			done = append(done, recs[i])
		}
		for i, r := range recs[half:] {
			if i != 2 || !e.caps.AckEachRecord {
				again[string(r.Value)]++
			}
		}
		Commit(t, c, recs[half+2])
	}
	if u, ok := c.(stream.Unpinner); ok {
		// A stateful stage commits records that let go of their values.
		u.Unpin(done...)
		if done[0].Value != nil || done[0].Headers != nil {
			t.Errorf("an unpinned record kept its value or headers")
		}
	}
	Commit(t, c, done...)
	Commit(t, c, done...) // twice is harmless
	wantLag(e, c, int64(len(again)))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background()); !isClosed(err) {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := c.Commit(context.Background(), first...); !isClosed(err) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}

	c2 := e.consume(cfg.Group, topic)
	if got := ValueSet(e.drain(c2, len(again))); !maps.Equal(got, again) {
		t.Errorf("the next member got %v, want the uncommitted %v", got, again)
	}
	if others := e.untilMarkers(c2, topic, 2); len(others) > 0 {
		t.Errorf("committed records came again: %v", ValueSet(others))
	}
	wantLag(e, c2, 0)
	if err := c2.Commit(context.Background(), &stream.Record{Topic: topic, Partition: 0, Offset: first[0].Offset}); err == nil {
		t.Error("Commit of a record that Poll did not return: no error")
	}
}

// redeliveryAfterCrash (Durable): after a restart that no consumer saw
// coming, the group gets the records it had not committed, and the ones
// produced just before, and not those it had committed.
func redeliveryAfterCrash(e *env) {
	e.needDurable()
	t := e.t
	topic := e.topic(2)
	e.produce(Values(topic, "r", 10, 2)...)
	group := e.group()
	c := e.consume(group, topic)
	first := e.pollN(c, 10)
	want := map[string]int{}
	var done []*stream.Record
	for _, recs := range byPartition(first) {
		slices.SortFunc(recs, func(a, b *stream.Record) int { return int(a.Offset - b.Offset) })
		done = append(done, recs[:3]...)
		for _, r := range recs[3:] {
			want[string(r.Value)]++
		}
	}
	Commit(t, c, done...)
	late := Values(topic, "late", 4, 2)
	e.produce(late...) // acknowledged: it must survive the crash
	for v := range ValueSet(late) {
		want[v]++
	}

	e.reopen()
	c2 := e.consume(group, topic)
	if got := ValueSet(e.drain(c2, len(want))); !maps.Equal(got, want) {
		t.Errorf("after the restart the group got %v, want %v", got, want)
	}
	if others := e.untilMarkers(c2, topic, 2); len(others) > 0 {
		t.Errorf("committed records came again after the restart: %v", ValueSet(others))
	}
	fresh := e.consume(e.group(), topic)
	if got := e.drain(fresh, 10+len(late)+2); len(ValueSet(got)) != 10+len(late)+2 {
		t.Errorf("a new group found %d distinct records after the restart, want %d", len(ValueSet(got)), 10+len(late)+2)
	}
}

// startPositions: a new group starts at the oldest record, at the end, at
// a time or at an offset; a group with positions resumes from them
// whatever its Start says.
func startPositions(e *env) {
	t := e.t
	topic := e.topic(1)
	tick := max(e.caps.TimestampResolution, time.Millisecond)
	old, newer := Values(topic, "old", 5, 1), Values(topic, "new", 5, 1)
	e.produce(old...)
	time.Sleep(2 * tick) // the clock moves past the time the bus gave the old records
	mid := time.Now()
	time.Sleep(2 * tick)
	e.produce(newer...)
	start := func(group string, s stream.Start) stream.Consumer {
		return Consume(t, e.bus, stream.ConsumerConfig{Group: group, Topics: []string{topic}, Start: s})
	}
	vals := func(recs []*stream.Record) []string {
		out := make([]string, len(recs))
		for i, r := range recs {
			out[i] = string(r.Value)
		}
		return out
	}

	earliestGroup := e.group()
	earliest := start(earliestGroup, stream.Start{Kind: stream.StartEarliest})
	all := e.drain(earliest, 10)
	if got, want := vals(all), vals(append(old, newer...)); !slices.Equal(got, want) {
		t.Errorf("earliest: %v, want %v", got, want)
	}

	atTime := start(e.group(), stream.Start{Kind: stream.StartAtTime, Time: mid})
	if got, want := vals(e.drain(atTime, 5)), vals(newer); !slices.Equal(got, want) {
		t.Errorf("at %v, between old and new: %v, want %v", mid, got, want)
	}

	atOffset := start(e.group(), stream.Start{Kind: stream.StartAtOffset, Offset: all[6].Offset})
	if got, want := vals(e.drain(atOffset, 4)), vals(newer[1:]); !slices.Equal(got, want) {
		t.Errorf("at offset %d: %v, want %v", all[6].Offset, got, want)
	}

	// Latest: what is written before the member has its partitions is
	// not for it. Probe until one arrives, then expect only what follows.
	latest := start(e.group(), stream.Start{Kind: stream.StartLatest})
	var since []*stream.Record // produced after the latest member joined
	var seen []*stream.Record
	deadline := time.Now().Add(e.caps.wait())
	for i := 0; len(seen) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("latest: no probe record arrived")
		}
		probe := &stream.Record{Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "probe%d", i)}
		e.produce(probe)
		since = append(since, probe)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		recs, err := latest.Poll(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		Commit(t, latest, recs...)
		seen = append(seen, recs...)
	}
	after := Values(topic, "after", 3, 1)
	e.produce(after...)
	since = append(since, after...)
	ctx, cancel := context.WithTimeout(context.Background(), e.caps.wait())
	defer cancel()
	for !hasAll(seen, after) {
		recs, err := latest.Poll(ctx)
		if err != nil {
			t.Fatalf("latest: %v; got %v", err, ValueSet(seen))
		}
		Commit(t, latest, recs...)
		seen = append(seen, recs...)
	}
	for _, r := range seen {
		if v := string(r.Value); !strings.HasPrefix(v, "probe") && !strings.HasPrefix(v, "after") {
			t.Errorf("latest: got %q, written before the member joined", v)
		}
	}

	// The earliest group committed everything it read: a member starting
	// "at the end" gets exactly what was written since.
	earliest.Close()
	again := start(earliestGroup, stream.Start{Kind: stream.StartLatest})
	if got, want := ValueSet(e.untilMarkers(again, topic, 1)), ValueSet(since); !maps.Equal(got, want) {
		t.Errorf("a group with positions got %v, want what came after its position %v", got, want)
	}
}

// startAtRecordTime: StartAtTime compares the producer's timestamps
// (unless StartAtStoreTime).
func startAtRecordTime(e *env) {
	if e.caps.StartAtStoreTime {
		e.t.Skip("StartAtTime compares the time the bus stored a record")
	}
	t := e.t
	topic := e.topic(1)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	old, later := Values(topic, "old", 5, 1), Values(topic, "later", 5, 1)
	for i, r := range old {
		r.Timestamp = base.Add(time.Duration(i) * time.Second)
	}
	for i, r := range later {
		r.Timestamp = base.Add(30*time.Minute + time.Duration(i)*time.Second)
	}
	e.produce(old...)
	e.produce(later...)
	c := Consume(t, e.bus, stream.ConsumerConfig{Group: e.group(), Topics: []string{topic},
		Start: stream.Start{Kind: stream.StartAtTime, Time: base.Add(10 * time.Minute)}})
	if got, want := ValueSet(e.drain(c, 5)), ValueSet(later); !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// groupSharesPartitions: two members of a group, one joining while the
// other consumes, both get records and together get every record once;
// another group gets every record again.
func groupSharesPartitions(e *env) {
	t := e.t
	topic := e.topic(4)
	cfg := stream.ConsumerConfig{Group: e.group(), Topics: []string{topic}, MaxPollRecords: 5}
	members := []stream.Consumer{Consume(t, e.bus, cfg), Consume(t, e.bus, cfg)}

	ctx, cancel := context.WithTimeout(context.Background(), 3*e.caps.wait())
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
	// Produce in small batches until both members have had records,
	// then stop.
	wg.Go(func() {
		defer func() { mu.Lock(); doneProd = true; mu.Unlock() }()
		for i := 0; ctx.Err() == nil; i++ {
			mu.Lock()
			both := len(got[0]) > 0 && len(got[1]) > 0
			mu.Unlock()
			if both && i >= 10 {
				return
			}
			recs := Values(topic, fmt.Sprintf("b%d-", i), 8, 4)
			if err := e.bus.Produce(ctx, recs...); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for v := range ValueSet(recs) {
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
				pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
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
		t.Errorf("members together got %d distinct records (%d in all), want each of %d once", len(union), total(), len(produced))
	}
	if len(got[0]) == 0 || len(got[1]) == 0 {
		t.Errorf("members got %d and %d records, want both some", len(got[0]), len(got[1]))
	}
	for _, c := range members {
		wantLag(e, c, 0)
	}

	other := e.consume(e.group(), topic)
	if got := ValueSet(e.drain(other, len(produced))); !maps.Equal(got, produced) {
		t.Errorf("another group got %d distinct records, want all %d", len(got), len(produced))
	}
}

// severalTopicsAndLag: a member reads several topics; Lag counts the
// records of all of them that the group has not committed (polled or
// not).
func severalTopicsAndLag(e *env) {
	t := e.t
	a, b := e.topic(2), e.topic(1)
	e.produce(Values(a, "a", 10, 2)...)
	e.produce(Values(b, "b", 3, 1)...)
	c := Consume(t, e.bus, stream.ConsumerConfig{Group: e.group(), Topics: []string{a, b}, MaxPollRecords: 100})
	wantLag(e, c, 13)
	recs := e.pollN(c, 13)
	for _, r := range recs {
		if want := map[byte]string{'a': a, 'b': b}[r.Value[0]]; r.Topic != want {
			t.Errorf("record %q: topic %q, want %q", r.Value, r.Topic, want)
		}
	}
	wantLag(e, c, 13) // polled is not committed
	var prefix, rest []*stream.Record
	for _, r := range recs {
		if r.Topic == b || r.Value[1] < '4' { // b, and a0 to a3: the first two of each partition of a
			prefix = append(prefix, r)
		} else {
			rest = append(rest, r)
		}
	}
	Commit(t, c, prefix...)
	wantLag(e, c, 6)
	Commit(t, c, rest...)
	wantLag(e, c, 0)
	e.quiet(c)
}

// closeAndContext: Ping answers; Poll gives up at its context; closing
// the member or the bus ends a waiting Poll with ErrClosed; a closed bus
// refuses everything with ErrClosed; Close twice is harmless.
func closeAndContext(e *env) {
	t := e.t
	ctx := context.Background()
	if err := e.bus.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	topic := e.topic(1)
	c := e.consume(e.group(), topic)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Poll(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Poll with a cancelled context: %v, want context.Canceled", err)
	}
	PollNone(t, c, 200*time.Millisecond) // and DeadlineExceeded at its deadline

	for _, closeBus := range []bool{false, true} {
		c := e.consume(e.group(), topic)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Poll(ctx)
			errc <- err
		}()
		time.Sleep(100 * time.Millisecond) // let it wait
		if closeBus {
			e.bus.Close()
		} else {
			c.Close()
		}
		select {
		case err := <-errc:
			if !isClosed(err) {
				t.Errorf("closeBus=%v: Poll returned %v, want ErrClosed", closeBus, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("closeBus=%v: Poll still waiting 5s after Close", closeBus)
		}
		if err := c.Close(); err != nil {
			t.Errorf("closeBus=%v: closing the member again: %v", closeBus, err)
		}
	}
	if err := e.bus.Produce(ctx, &stream.Record{Topic: topic, Partition: -1, Value: []byte("x")}); !isClosed(err) {
		t.Errorf("Produce after Close: %v, want ErrClosed", err)
	}
	if err := e.bus.Ping(ctx); !isClosed(err) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	if err := e.bus.EnsureTopics(ctx, stream.TopicSpec{Name: e.name("t"), Partitions: 1}); !isClosed(err) {
		t.Errorf("EnsureTopics after Close: %v, want ErrClosed", err)
	}
	if _, err := e.bus.Consume(stream.ConsumerConfig{Group: e.group(), Topics: []string{topic}}); !isClosed(err) {
		t.Errorf("Consume after Close: %v, want ErrClosed", err)
	}
	if err := e.bus.Close(); err != nil {
		t.Errorf("closing the bus again: %v", err)
	}
}

// hasAll reports whether recs has a record of each value of want.
func hasAll(recs, want []*stream.Record) bool {
	set := ValueSet(recs)
	for _, r := range want {
		if set[string(r.Value)] == 0 {
			return false
		}
	}
	return true
}

// wantLag waits until c's Lag is want (some buses count asynchronously).
func wantLag(e *env, c stream.Consumer, want int64) {
	e.t.Helper()
	Eventually(e.t, e.caps.wait(), func() error {
		lag, err := c.Lag(context.Background())
		if err != nil {
			return err
		}
		if lag != want {
			return fmt.Errorf("lag %d, want %d", lag, want)
		}
		return nil
	})
}
