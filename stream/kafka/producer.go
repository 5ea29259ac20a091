package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/stream"
)

// produceCall is the state of one Produce: the franz-go records and
// headers it hands to the client, and the wait for their promises. Calls
// are pooled so that a Produce of a batch allocates little.
type produceCall struct {
	left    atomic.Int64  // records without an outcome yet
	settled chan struct{} // closed when left reaches 0
	mu      sync.Mutex
	err     error       // first failure
	failed  *kgo.Record // its record
	recs    []kgo.Record
	hdrs    []kgo.RecordHeader
	promise func(*kgo.Record, error) // c.done, bound once
	// errs, when set (ProduceEach), gets each failed record's error at
	// its index.
	errs []error
}

func (c *produceCall) done(r *kgo.Record, err error) {
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err, c.failed = err, r
		}
		if c.errs != nil {
			// Failures are rare: find the index by address.
			for k := range c.recs {
				if &c.recs[k] == r {
					c.errs[k] = err
					break
				}
			}
		}
		c.mu.Unlock()
	}
	if c.left.Add(-1) == 0 {
		close(c.settled)
	}
}

// maxPooledRecords bounds the slices kept in the pool, so that one huge
// Produce does not pin its memory.
const maxPooledRecords = 4096

// Produce writes recs and waits until the brokers have acknowledged every
// one (acks=all, idempotent), or returns the first error.
//
// Records not acknowledged within Config.ProduceTimeout, or by ctx's
// deadline if it is sooner, fail with stream.ErrUnavailable. Cancelling ctx
// does not abort records already handed to franz-go: they may share a
// batch with other calls' records, which would fail with them.
//
// An idempotent producer cannot give up a record that was sent in a request
// the broker never answered (the broker may have stored it), so when a
// broker dies mid-request franz-go keeps such records until it can find
// out. Produce does not wait for that past the deadline: it returns
// stream.ErrUnavailable and leaves the records to franz-go, which may still
// write them (at least once; the caller retries). After an error the
// caller must therefore not reuse the records' Key, Value or header
// buffers. The client's buffer limit (MaxBufferedBytes, and 10000 records)
// bounds the memory such records hold; when it is full, Produce fails at
// its deadline without buffering more.
func (b *Bus) Produce(ctx context.Context, recs ...*stream.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if b.closed.Load() {
		return fmt.Errorf("kafka: produce: %w", stream.ErrClosed)
	}
	return b.produce(ctx, b.cl, recs)
}

// ProduceEach is Produce that also tells the outcome of each record:
// errs[k] is the error of recs[k], nil when the brokers acknowledged it
// (len(errs) must be len(recs)). A caller that packs several callers' data
// into records fails exactly those of a failed record. When the
// acknowledgements do not come within the deadline, every record counts as
// failed (it may still be written: at least once).
func (b *Bus) ProduceEach(ctx context.Context, errs []error, recs ...*stream.Record) error {
	if len(errs) != len(recs) {
		return fmt.Errorf("kafka: produce: %d error slots for %d records", len(errs), len(recs))
	}
	clear(errs)
	if len(recs) == 0 {
		return nil
	}
	var err error
	if b.closed.Load() {
		err = fmt.Errorf("kafka: produce: %w", stream.ErrClosed)
	} else {
		err = b.produceRecords(ctx, b.cl, recs, errs)
	}
	if err == nil {
		return nil
	}
	failed := false
	for k, e := range errs {
		if e != nil {
			errs[k] = wrapErr(fmt.Sprintf("produce to %s[%d]", recs[k].Topic, recs[k].Partition), e)
			failed = true
		}
	}
	if !failed { // the whole call failed (closed, deadline)
		for k := range errs {
			errs[k] = err
		}
	}
	return err
}

// produce is Produce with the client cl: the Bus's, or a transactional
// consumer's.
func (b *Bus) produce(ctx context.Context, cl *kgo.Client, recs []*stream.Record) error {
	return b.produceRecords(ctx, cl, recs, nil)
}

// produceRecords is produce; errs, when not nil, receives each record's
// error (unwrapped).
func (b *Bus) produceRecords(ctx context.Context, cl *kgo.Client, recs []*stream.Record, errs []error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafka: produce: %w", err)
	}
	deadline := time.Now().Add(b.cfg.ProduceTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	c := b.getCall(recs)
	c.errs = errs
	nh := 0
	for i, r := range recs {
		kr := &c.recs[i]
		*kr = kgo.Record{
			Topic:     r.Topic,
			Partition: -1,
			Key:       r.Key,
			Value:     r.Value,
			Timestamp: r.Timestamp, // zero: franz-go stamps the time of Produce
		}
		if r.Partition >= 0 {
			kr.Partition = r.Partition
		}
		if len(r.Headers) > 0 {
			start := nh
			for _, h := range r.Headers {
				c.hdrs[nh] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
				nh++
			}
			kr.Headers = c.hdrs[start:nh:nh]
		}
	}
	c.left.Store(int64(len(recs)))
	c.settled = make(chan struct{})
	for i := range recs {
		cl.Produce(ctx, &c.recs[i], c.promise)
	}
	select {
	case <-c.settled:
	case <-ctx.Done():
		select {
		case <-c.settled: // settled at the same moment
		default:
			// Records are stuck in requests the broker never answered;
			// c stays with franz-go's promises and is not pooled, and
			// stops writing into errs.
			c.mu.Lock()
			if errs != nil {
				clear(errs)
			}
			c.errs = nil
			c.mu.Unlock()
			return fmt.Errorf("kafka: produce: %w: no acknowledgement within %v: %w", stream.ErrUnavailable, b.cfg.ProduceTimeout, ctx.Err())
		}
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: not acknowledged in time: %w", stream.ErrUnavailable, err)
	}
	if err != nil {
		err = wrapErr(fmt.Sprintf("produce to %s[%d]", c.failed.Topic, c.failed.Partition), err)
	}
	b.putCall(c, len(recs), nh)
	return err
}

func (b *Bus) getCall(recs []*stream.Record) *produceCall {
	c, _ := b.calls.Get().(*produceCall)
	if c == nil {
		c = &produceCall{}
		c.promise = c.done
	}
	if cap(c.recs) < len(recs) {
		c.recs = make([]kgo.Record, len(recs))
	}
	c.recs = c.recs[:len(recs)]
	nh := 0
	for _, r := range recs {
		nh += len(r.Headers)
	}
	if cap(c.hdrs) < nh {
		c.hdrs = make([]kgo.RecordHeader, nh)
	}
	c.hdrs = c.hdrs[:nh]
	return c
}

// putCall returns c to the pool without references to the caller's
// buffers.
func (b *Bus) putCall(c *produceCall, n, nh int) {
	if cap(c.recs) > maxPooledRecords || cap(c.hdrs) > 4*maxPooledRecords {
		return
	}
	clear(c.recs[:n])
	clear(c.hdrs[:nh])
	c.err, c.failed, c.errs = nil, nil, nil
	b.calls.Put(c)
}

// partitioner sends a record whose Partition is set (>= 0) to that
// partition and leaves the others to franz-go's default: the hash of the
// key (murmur2, as the Java client), else a sticky partition that changes
// with each batch (KIP-794).
type partitioner struct{}

var defaultPartitioner = kgo.UniformBytesPartitioner(64<<10, true, true, nil)

func (partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	inner, ok := defaultPartitioner.ForTopic(topic).(kgo.TopicBackupPartitioner)
	if !ok {
		panic("kafka: franz-go's uniform bytes partitioner no longer partitions by backup")
	}
	return topicPartitioner{inner}
}

type topicPartitioner struct{ inner kgo.TopicBackupPartitioner }

// RequiresConsistency: a chosen partition must not be swapped for another
// because it is not writable right now; and with consistency franz-go
// passes all partitions, so that the index is the partition number.
func (p topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || p.inner.RequiresConsistency(r)
}

func (p topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return int(r.Partition)
	}
	return p.inner.Partition(r, n)
}

func (p topicPartitioner) PartitionByBackup(r *kgo.Record, n int, backup kgo.TopicBackupIter) int {
	if r.Partition >= 0 {
		return int(r.Partition) // out of range: franz-go fails the record
	}
	return p.inner.PartitionByBackup(r, n, backup)
}
