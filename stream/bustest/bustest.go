// Package bustest is the bus contract as a test, and the helpers that the
// tests of every stream.Bus implementation, and of the stages built on
// them, share: producing, polling a known number of records, commits, and
// a logger that writes to the test's log.
//
// # The conformance suite
//
// Run checks one implementation against the contract of stream.Bus and
// stream.Consumer. Every bus runs it from its own tests, with a Harness
// that opens the bus (stream/memory, stream/nats on an embedded and on a
// remote server, stream/kafka on the test broker); tests of what only one
// bus does stay beside it. The suite covers:
//
//   - topics: EnsureTopics creates topics with their partitions, is
//     idempotent and leaves an existing topic as it is (after a restart
//     too); a partition beyond the topic's is refused for good;
//   - producing: Produce returns when the records are stored; they come
//     back byte for byte (topic, key, value, explicit partition, producer
//     timestamp, or the bus's time when there is none), and the caller's
//     buffers are its own again when Produce returns; one key, one
//     partition; concurrent Produce calls;
//   - headers: several, repeated keys, empty values, mixed case, binary
//     values, in order;
//   - order: a member alone gets each partition in the order produced,
//     offsets rising;
//   - record limits: a record above the topic's MaxRecordBytes, by its
//     value or its headers, fails with stream.ErrRecordTooLarge (not
//     retryable) and is not stored;
//   - commits: Poll returns at most MaxPollRecords; commits in any order;
//     the next member gets every uncommitted record, and no record
//     committed before the first gap of its partition; Lag counts what is
//     not committed, polled or not, over several topics; a record that
//     Poll did not return cannot be committed;
//   - crashes (durable buses): after a restart that no consumer saw
//     coming, the group gets what it had not committed and what was
//     acknowledged just before, and not what it had committed;
//   - start positions of a new group: earliest, latest, at a time, at an
//     offset; a group with positions resumes there whatever Start says;
//   - groups: two members share the records, each record going to one of
//     them; another group gets every record again;
//   - state stores: a value put comes back whole, a later one replaces
//     it (also a smaller one of a larger), values larger than a record
//     of the bus, stores apart by name, and (durable buses) across a
//     restart;
//   - partition ownership: when a member joins, the one that gives
//     partitions up is told (ConsumerConfig.OnRevoked) before the new
//     member reads any record of them;
//   - closing: Poll ends at its context, and with stream.ErrClosed when
//     its member or the bus closes; a closed bus or member refuses
//     everything with stream.ErrClosed; Close twice is harmless.
//
// Where a bus legitimately differs — NATS acknowledges each record, sends
// header values as text and sorts them by key, starts at a time by the
// time it stored a record, and redelivers only after its ack wait; Kafka
// keeps milliseconds — the Harness says so in its Caps, and the suite
// checks the bus's documented behaviour instead.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// Logger logs to tb at level until the test ends; lines from goroutines
// that outlive the test (asynchronous client callbacks) are dropped.
func Logger(tb testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{t: tb}
	tb.Cleanup(w.stop) // registered early, so it runs after later cleanups (Close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Ensure creates topics or fails the test.
func Ensure(tb testing.TB, b stream.Bus, specs ...stream.TopicSpec) {
	tb.Helper()
	if err := b.EnsureTopics(context.Background(), specs...); err != nil {
		tb.Fatal(err)
	}
}

// Produce produces recs or fails the test.
func Produce(tb testing.TB, p stream.Producer, recs ...*stream.Record) {
	tb.Helper()
	if err := p.Produce(context.Background(), recs...); err != nil {
		tb.Fatal(err)
	}
}

// Consume joins a group, leaving it when the test ends.
func Consume(tb testing.TB, b stream.Bus, cfg stream.ConsumerConfig) stream.Consumer {
	tb.Helper()
	c, err := b.Consume(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// PollN polls until it has n records, failing after timeout or when more
// than n come.
func PollN(tb testing.TB, c stream.Consumer, n int, timeout time.Duration) []*stream.Record {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*stream.Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			tb.Fatalf("poll: got %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	if len(out) > n {
		tb.Fatalf("poll: got %d records, want %d", len(out), n)
	}
	return out
}

// LargestPoll polls c until it has n records, committing each poll's
// records when commit is set, and returns the most value bytes one Poll
// returned. It fails the test on a Poll error, or when the n records do
// not come within 30s.
func LargestPoll(tb testing.TB, c stream.Consumer, n int, commit bool) int {
	tb.Helper()
	got, most := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for got < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := c.Poll(ctx)
		cancel()
		if err != nil {
			tb.Fatalf("poll after %d records: %v", got, err)
		}
		bytes := 0
		for _, r := range recs {
			bytes += len(r.Value)
		}
		got, most = got+len(recs), max(most, bytes)
		if commit {
			Commit(tb, c, recs...)
		}
	}
	if got != n {
		tb.Fatalf("%d of %d records", got, n)
	}
	return most
}

// PollNone checks that nothing comes within d.
func PollNone(tb testing.TB, c stream.Consumer, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	recs, err := c.Poll(ctx)
	if len(recs) > 0 {
		tb.Fatalf("poll: got %d records (first %q), want none", len(recs), recs[0].Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("poll: %v, want deadline exceeded", err)
	}
}

// Commit commits recs or fails the test.
func Commit(tb testing.TB, c stream.Consumer, recs ...*stream.Record) {
	tb.Helper()
	if err := c.Commit(context.Background(), recs...); err != nil {
		tb.Fatal(err)
	}
}

// Values builds n records for topic with values prefix0..prefixN-1, on
// partition i mod partitions (partitions 0: the bus chooses).
func Values(topic, prefix string, n int, partitions int32) []*stream.Record {
	recs := make([]*stream.Record, n)
	for i := range recs {
		p := int32(-1)
		if partitions > 0 {
			p = int32(i) % partitions
		}
		recs[i] = &stream.Record{Topic: topic, Partition: p, Value: []byte(prefix + strconv.Itoa(i))}
	}
	return recs
}

// ValueSet counts the records by value.
func ValueSet(recs []*stream.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

// Eventually retries f until it returns nil, failing after timeout.
func Eventually(tb testing.TB, timeout time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
