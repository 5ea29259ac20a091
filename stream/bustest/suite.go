package bustest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/stream"
)

// Harness connects the conformance suite (Run) to one bus implementation.
type Harness struct {
	// Start prepares the store of one test — a server, a data directory,
	// the address of a broker — releases it when t ends, and returns Open.
	Start func(t *testing.T) Open
	Caps
}

// Open opens a new Bus on the store of one test, failing the test if it
// cannot. On a Durable bus every Bus it returns sees the records, topics
// and group positions of the ones before. The suite closes what it opens,
// the previous bus always before it opens the next (a restart).
type Open func() stream.Bus

// Caps are the ways in which a bus may legitimately differ from the others.
// The zero value is a bus like Kafka with nanosecond timestamps that keeps
// nothing across a restart.
type Caps struct {
	// Durable: records, topics and group positions survive Close, and a
	// reopened bus finds them (the restart and crash cases need it).
	Durable bool
	// Wait bounds how long a record may take to arrive, including while
	// a new member joins its group. Default 10s.
	Wait time.Duration
	// RedeliveryDelay is how long the uncommitted records of a member
	// that closed or crashed may take to come to the next member (NATS:
	// the ack wait); 0 if they come as soon as it polls. The suite also
	// waits this long to see that committed records do not come again.
	RedeliveryDelay time.Duration
	// AckEachRecord: Commit acknowledges each record on its own (NATS),
	// so a record committed after an uncommitted one never comes again.
	// Otherwise a partition's position holds at its first uncommitted
	// record (Kafka) and the committed records after it come again.
	AckEachRecord bool
	// TextHeaders: header values travel as text (NATS); the suite sends
	// no binary values and no white space at their ends.
	TextHeaders bool
	// SortedHeaders: headers come back sorted by key (NATS); the values
	// of one key keep their order.
	SortedHeaders bool
	// TimestampResolution is what a timestamp keeps (Kafka:
	// milliseconds); 0 for nanoseconds.
	TimestampResolution time.Duration
	// StartAtStoreTime: StartAtTime compares the time the bus stored each
	// record, not Record.Timestamp (NATS).
	StartAtStoreTime bool
	// NoPartitionOwnership: the members of a group do not own partitions
	// (NATS JetStream), so ConsumerConfig.OnRevoked is never called.
	NoPartitionOwnership bool
}

func (c Caps) wait() time.Duration {
	if c.Wait <= 0 {
		return 10 * time.Second
	}
	return c.Wait
}

// Run runs the conformance suite against the bus of h: one parallel
// sub-test per part of the contract, each on its own store (from
// h.Start) with topics and groups of its own.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		run  func(*env)
	}{
		{"EnsureTopics", ensureTopics},
		{"RoundTrip", roundTrip},
		{"Headers", headers},
		{"Timestamps", timestamps},
		{"OrderWithinPartition", orderWithinPartition},
		{"RecordTooLarge", recordTooLarge},
		{"ConcurrentProduce", concurrentProduce},
		{"CommitOnlyProcessed", commitOnlyProcessed},
		{"RedeliveryAfterCrash", redeliveryAfterCrash},
		{"StartPositions", startPositions},
		{"StartAtRecordTime", startAtRecordTime},
		{"GroupSharesPartitions", groupSharesPartitions},
		{"SeveralTopicsAndLag", severalTopicsAndLag},
		{"Close", closeAndContext},
		{"StateStore", stateStore},
		{"Revoked", revoked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := &env{t: t, caps: h.Caps, open: h.Start(t)}
			e.bus = e.openBus()
			c.run(e)
		})
	}
}

// env is one sub-test's bus and what it needs to use it.
type env struct {
	t    *testing.T
	caps Caps
	open Open
	bus  stream.Bus
}

func (e *env) openBus() stream.Bus {
	b := e.open()
	e.t.Cleanup(func() { b.Close() })
	return b
}

// reopen closes the bus, as a crash of the process would (no consumer is
// closed first, nothing more is committed), and opens it again on the
// same store.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.bus.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	e.bus = e.openBus()
}

func (e *env) needDurable() {
	if !e.caps.Durable {
		e.t.Skip("the bus keeps nothing across a restart")
	}
}

var (
	runID   = randomHex(3) // tells this run's names from an earlier run's on a long-lived broker
	nameSeq atomic.Uint64
	invalid = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// name is unique to this call, made of characters every bus allows in a
// topic and a group.
func (e *env) name(kind string) string {
	n := invalid.ReplaceAllString(e.t.Name(), "_")
	if len(n) > 80 {
		n = n[len(n)-80:]
	}
	return fmt.Sprintf("bustest.%s.%s.%s%d", kind, n, runID, nameSeq.Add(1))
}

// topic creates a topic of its own with the given partitions.
func (e *env) topic(partitions int32) string {
	e.t.Helper()
	name := e.name("t")
	Ensure(e.t, e.bus, stream.TopicSpec{Name: name, Partitions: partitions})
	return name
}

func (e *env) group() string { return e.name("g") }

func (e *env) consume(group string, topics ...string) stream.Consumer {
	e.t.Helper()
	return Consume(e.t, e.bus, stream.ConsumerConfig{Group: group, Topics: topics})
}

func (e *env) produce(recs ...*stream.Record) {
	e.t.Helper()
	Produce(e.t, e.bus, recs...)
}

// pollN polls exactly n records (see PollN), allowing for a redelivery.
func (e *env) pollN(c stream.Consumer, n int) []*stream.Record {
	e.t.Helper()
	return PollN(e.t, c, n, e.caps.wait()+e.caps.RedeliveryDelay)
}

// drain polls until it has n records, committing each poll's at once so
// that a bus with an ack wait does not send them again meanwhile.
func (e *env) drain(c stream.Consumer, n int) []*stream.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.caps.wait()+e.caps.RedeliveryDelay)
	defer cancel()
	var out []*stream.Record
	for len(out) < n {
		recs, err := c.Poll(ctx)
		if err != nil {
			e.t.Fatalf("poll: got %d of %d records: %v", len(out), n, err)
		}
		Commit(e.t, c, recs...)
		out = append(out, recs...)
	}
	if len(out) > n {
		e.t.Fatalf("poll: got %d records, want %d", len(out), n)
	}
	return out
}

// untilMarkers produces a marker to each partition of topic, then polls
// c (committing) until every marker has come, and returns the records
// that came besides. A bus delivers a partition in order, so anything
// that was due before the markers is among them. Then it checks that
// nothing else comes within the redelivery delay.
func (e *env) untilMarkers(c stream.Consumer, topic string, partitions int32) []*stream.Record {
	e.t.Helper()
	mark := "marker-" + strconv.FormatUint(nameSeq.Add(1), 10) + "-"
	for p := range partitions {
		e.produce(&stream.Record{Topic: topic, Partition: p, Value: []byte(mark + strconv.Itoa(int(p)))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.caps.wait())
	defer cancel()
	var others []*stream.Record
	for seen := int32(0); seen < partitions; {
		recs, err := c.Poll(ctx)
		if err != nil {
			e.t.Fatalf("poll for markers: %d of %d came: %v; other records meanwhile: %v", seen, partitions, err, ValueSet(others))
		}
		Commit(e.t, c, recs...)
		for _, r := range recs {
			if len(r.Value) > len(mark) && string(r.Value[:len(mark)]) == mark {
				seen++
			} else {
				others = append(others, r)
			}
		}
	}
	e.quiet(c)
	return others
}

// quiet checks that nothing comes to c within the redelivery delay (and
// a moment).
func (e *env) quiet(c stream.Consumer) {
	e.t.Helper()
	PollNone(e.t, c, e.caps.RedeliveryDelay+200*time.Millisecond)
}

// byPartition groups recs by partition, keeping their order.
func byPartition(recs []*stream.Record) map[int32][]*stream.Record {
	m := map[int32][]*stream.Record{}
	for _, r := range recs {
		m[r.Partition] = append(m[r.Partition], r)
	}
	return m
}

func isClosed(err error) bool { return errors.Is(err, stream.ErrClosed) }
